#!/usr/bin/env bash
# Measures the CPU a sandbox stack uses at steady load: starts a throw-away stack (release build)
# at TPS payments/s, waits WARMUP seconds, then reads utime+stime from /proc/PID/stat of every
# process over DURATION seconds and prints per-process and total figures — the sandbox's own
# processes (nodes, gateway, simulator) against the budget of 10 % of one core, Prometheus apart.
#
# Usage: scripts/measure-sandbox-cpu.sh            (DURATION=30 TPS=300 WARMUP=5 PORT_BASE=31500)
#        BIN=target/debug/f3-sandbox scripts/measure-sandbox-cpu.sh   (measure another build)
#        UP_ARGS="--gateway-profile slow" scripts/measure-sandbox-cpu.sh   (other stack settings)
# Exit status: 0 when the sandbox processes stay under BUDGET_PCT (default 10) % of one core, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
TPS=${TPS:-300}
PORT_BASE=${PORT_BASE:-31500}
BUDGET_PCT=${BUDGET_PCT:-10}
BIN=${BIN:-target/release/f3-sandbox}
STACK=cpu-measure

if [[ ! -x $BIN ]]; then
  echo "Building $BIN (release)…" >&2
  cargo build --release -p f3-sandbox --bins >&2
fi
STATE=$(mktemp -d)
cleanup() {
  "$BIN" down --stack "$STACK" --state-dir "$STATE" >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT

# shellcheck disable=SC2086 # UP_ARGS is a list of extra `up` arguments
"$BIN" up --stack "$STACK" --state-dir "$STATE" --port-base "$PORT_BASE" --tps "$TPS" ${UP_ARGS:-} >/dev/null
echo "Stack up at $TPS payments/s; warming up for ${WARMUP}s, then measuring for ${DURATION}s ($BIN)."
sleep "$WARMUP"

# NAME ROLE PID from the status table (rows after the header line).
mapfile -t rows < <("$BIN" status --stack "$STACK" --state-dir "$STATE" | awk '/^NAME /{t=1;next} t&&NF{print $1, $2, $3}')
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A start
for row in "${rows[@]}"; do
  read -r name _ pid <<<"$row"
  start[$name]=$(ticks "$pid")
done
sleep "$DURATION"

hz=$(getconf CLK_TCK)
sandbox_ticks=0
prometheus_ticks=0
printf '%-14s %-13s %8s %10s %8s\n' NAME ROLE PID CPU_SECS '%CORE'
for row in "${rows[@]}"; do
  read -r name role pid <<<"$row"
  used=$(($(ticks "$pid") - ${start[$name]}))
  awk -v n="$name" -v r="$role" -v p="$pid" -v u="$used" -v hz="$hz" -v d="$DURATION" \
    'BEGIN{printf "%-14s %-13s %8s %10.2f %7.2f%%\n", n, r, p, u/hz, 100*u/hz/d}'
  case $role in
    prometheus | alertmanager) prometheus_ticks=$((prometheus_ticks + used)) ;;
    *) sandbox_ticks=$((sandbox_ticks + used)) ;;
  esac
done

rate=$(curl -sf "http://127.0.0.1:$((PORT_BASE + 90))/api/v1/query" \
  --data-urlencode "query=sum(rate(payments_total[${DURATION}s]))" 2>/dev/null |
  sed -n 's/.*"value":\[[^,]*,"\([^"]*\)".*/\1/p' || true)
echo
awk -v t="$sandbox_ticks" -v hz="$hz" -v d="$DURATION" \
  'BEGIN{printf "sandbox processes (nodes, gateway, simulator): %.2f%% of one core\n", 100*t/hz/d}'
awk -v t="$prometheus_ticks" -v hz="$hz" -v d="$DURATION" \
  'BEGIN{printf "prometheus (scraping every 1 s):               %.2f%% of one core\n", 100*t/hz/d}'
[[ -n $rate ]] && printf 'measured load: %.1f payments/s\n' "$rate"
if awk -v t="$sandbox_ticks" -v hz="$hz" -v d="$DURATION" -v b="$BUDGET_PCT" 'BEGIN{exit !(100*t/hz/d < b)}'; then
  echo "within budget (< ${BUDGET_PCT}% of one core)"
else
  echo "OVER budget (>= ${BUDGET_PCT}% of one core)"
  exit 1
fi
