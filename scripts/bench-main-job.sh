#!/usr/bin/env bash
# Benchmark of the main job: runs the shipped gcp-failover-validation against the bundled sandbox
# N times (default 3) and prints each run's overhead — its wall time minus the durations the
# scenario declares (every fault's `duration` plus the longest `recover-within`, which the run
# waits out whatever the platform does). Everything else counts: load settling, steady-state
# checks, the waits for Prometheus to hold a window's closing sample, store writes, process start.
#   scripts/bench-main-job.sh [RUNS]
# F3_CHAOS_BIN / F3_SANDBOX_BIN choose other builds (e.g. an older commit's, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
if [[ -z "${F3_CHAOS_BIN:-}" || -z "${F3_SANDBOX_BIN:-}" ]]; then
  cargo build --quiet --bins
fi
chaos="${F3_CHAOS_BIN:-$PWD/target/debug/f3-chaos}"
sandbox="${F3_SANDBOX_BIN:-$PWD/target/debug/f3-sandbox}"
scenario=scenarios/gcp-failover-validation.yaml

# Declared durations, in seconds, from the scenario file itself (PyYAML ships with Debian's python3).
declared=$(python3 - "$scenario" <<'PY'
import re, sys, yaml
def seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)))
spec = yaml.safe_load(open(sys.argv[1]))["spec"]
faults = sum(seconds(step.get("duration", 0)) for step in spec["when"])
recover = [seconds(t["hold"]["recover-within"]) for t in spec["then"] if isinstance(t.get("hold"), dict)]
print(faults + max(recover, default=0))
PY
)

if "$sandbox" status --stack local >/dev/null 2>&1; then
  "$sandbox" reconfigure --stack local --gateway-profile aggressive >/dev/null
else
  "$sandbox" up --stack local --gateway-profile aggressive >/dev/null
fi
overheads=()
for i in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  code=0
  "$chaos" run --config config/local --scenario gcp-failover-validation --wait-for-assertions \
    --output json >/dev/null || code=$?
  end=$(date +%s.%N)
  overhead=$(python3 -c "print(f'{$end - $start - $declared:.2f}')")
  wall=$(python3 -c "print(f'{$end - $start:.2f}')")
  echo "main job run $i: exit $code, wall $wall s, overhead $overhead s (declared $declared s)"
  overheads+=("$overhead")
  sleep 20 # let the 15 s rate windows roll past the last fault
done
python3 -c "import statistics, sys; v = sorted(map(float, sys.argv[1:])); print(f'main job overhead per run: median {statistics.median(v):.2f} s, max {v[-1]:.2f} s over {len(v)} runs')" "${overheads[@]}"
