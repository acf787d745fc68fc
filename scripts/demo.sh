#!/usr/bin/env bash
# The main job on one machine: installs Prometheus when missing, builds f3-chaos, starts the bundled
# sandbox (three clouds of payment nodes, gateway, 300 TPS simulator, Prometheus) and runs
# gcp-failover-validation with --wait-for-assertions against it. Exits with the run's exit code.
# Extra arguments go to `f3-chaos run` (e.g. --output json, --junit report.xml).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null; then
  echo "Installing Prometheus (Debian package)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  pkill -x prometheus 2>/dev/null || true # the packaged service; the sandbox starts its own
fi

cargo build --release --quiet --bins
bin=target/release
"$bin/f3-sandbox" up --stack local
set +e
"$bin/f3-chaos" run --config config/local --scenario gcp-failover-validation --wait-for-assertions "$@"
code=$?
set -e
echo "exit code: $code (0 = passed; see README for the others). The sandbox is still up: 'target/release/f3-sandbox down' stops it."
exit $code
