#!/usr/bin/env bash
# Daemon footprint benchmark (issue 6): idle RSS and CPU of `f3-chaos daemon`, and CPU of the
# assertion engine with 13 concurrent runs x 50 assertions evaluated every second against a real
# Prometheus. Prints its figures. Needs `prometheus` on PATH (scripts/test.sh installs it).
#   scripts/bench-daemon.sh            dev build (what the tests use; an upper bound)
#   scripts/bench-daemon.sh --release  release build (what deploy/Dockerfile ships; the figures that count)
# BENCH_IDLE_SECONDS (default 30) and BENCH_LOAD_SECONDS (default 60) set the measuring spans.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
flags=()
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  flags=(--release)
fi
cargo build "${flags[@]}" -p f3-chaos --bin f3-chaos -p f3-chaos-tests --bin bench-daemon
exec "$(pwd)/target/$profile/bench-daemon"
