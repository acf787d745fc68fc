#!/usr/bin/env bash
# The main job on one machine: installs Prometheus when missing, builds f3-chaos, starts the bundled
# sandbox (three clouds of payment nodes, a gateway, a 300 TPS payment simulator, Prometheus) and
# runs gcp-failover-validation with --wait-for-assertions against it. Exits with the run's exit
# code (0 = passed; see the README). Extra arguments go to `f3-chaos run`, e.g.
#   scripts/demo.sh --junit report.xml      scripts/demo.sh --output json
# Set F3_DEMO_GATEWAY_PROFILE=slow to start the sandbox with slow health checks (the run fails).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null; then
  echo "Installing Prometheus (Debian package)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
# Debian starts its packaged Prometheus on :9090 where it can; the sandbox runs its own on :19090.

# The dev profile optimises dependencies and the sandbox (see Cargo.toml), and is what the tests
# use: building once serves both.
cargo build --quiet --bins
bin=target/debug
profile="${F3_DEMO_GATEWAY_PROFILE:-aggressive}"
if "$bin/f3-sandbox" status --stack local >/dev/null 2>&1; then
  "$bin/f3-sandbox" reconfigure --stack local --gateway-profile "$profile" >/dev/null
else
  "$bin/f3-sandbox" up --stack local --gateway-profile "$profile" >/dev/null
fi
echo "Sandbox stack 'local' is up (gateway profile: $profile). Running the scenario…"
set +e
"$bin/f3-chaos" run --config config/local --scenario gcp-failover-validation --wait-for-assertions "$@"
code=$?
set -e
echo "exit code: $code. The sandbox is still up: '$bin/f3-sandbox status' shows it, '$bin/f3-sandbox down' stops it."
exit $code
