#!/usr/bin/env bash
# Daemon footprint benchmark (issue 6): idle RSS and CPU of `f3-chaos daemon`, and CPU of the
# assertion engine with 13 concurrent runs x 50 assertions evaluated every second against a real
# Prometheus. Prints its figures. Needs `prometheus` on PATH (scripts/test.sh installs it).
# BENCH_IDLE_SECONDS (default 30) and BENCH_LOAD_SECONDS (default 60) set the measuring spans.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
exec "$(pwd)/target/debug/bench-daemon"
