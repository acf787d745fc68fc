#!/usr/bin/env bash
# Benchmarks of the main job against a real sandbox and Prometheus: orchestration overhead per run
# and abort latency. Builds the release binaries first (the sandbox's processes run f3-sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p f3-sandbox --bins
F3_SANDBOX_BIN="$PWD/target/release/f3-sandbox" cargo bench -p f3-chaos --bench run_overhead
