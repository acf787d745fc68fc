#!/usr/bin/env bash
# Benchmarks of the main job against a real sandbox and Prometheus: orchestration overhead per run
# and abort latency. Both are dominated by waits and I/O, not CPU, so the dev profile (optimised
# dependencies, see Cargo.toml) is representative and reuses the test build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p f3-sandbox -p f3-chaos --bins
F3_SANDBOX_BIN="$PWD/target/debug/f3-sandbox" F3_CHAOS_BIN="$PWD/target/debug/f3-chaos" cargo bench --profile dev -p f3-chaos --bench run_overhead
