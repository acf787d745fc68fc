#!/usr/bin/env bash
# Dashboard render benchmark over one year of history (≈ 100,000 runs, 1,000,000 steps in SQLite):
# seeds target/bench-dashboard/history-v2.db on first use (a few minutes; cached afterwards), then
# prints p50/p95 request times of the night, scenario, run and team pages and of the lists
# (/nights, /scenarios, /teams, /stacks). Exits 1 when any page's p95 exceeds 100 ms. See
# orchestrator/benches/dashboard.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p f3-chaos --bench dashboard "$@"
