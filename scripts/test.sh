#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the tests need when it
# is missing (Prometheus, Alertmanager, PostgreSQL from Debian packages), starts PostgreSQL with a
# test database, builds the binaries the end-to-end tests drive, then runs `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  echo "Installing test dependencies: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts packaged Prometheus/Alertmanager services where it can; the tests start their own.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  pkill -x "$svc" 2>/dev/null || true
done

# PostgreSQL: the Debian cluster, a throwaway database for the store tests.
pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_ctlcluster "$pg_version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 0.5
done
su postgres -c "psql -q -h 127.0.0.1 -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'f3chaos') THEN CREATE ROLE f3chaos LOGIN PASSWORD 'f3chaos' CREATEDB; END IF; END \\\$\\\$;\"" 2>/dev/null \
  || su postgres -c "psql -q -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'f3chaos') THEN CREATE ROLE f3chaos LOGIN PASSWORD 'f3chaos' CREATEDB; END IF; END \\\$\\\$;\""
export F3_CHAOS_TEST_POSTGRES_URL="${F3_CHAOS_TEST_POSTGRES_URL:-postgres://f3chaos:f3chaos@127.0.0.1:5432/postgres}"

cargo build --workspace --bins
cargo test --workspace "$@"
