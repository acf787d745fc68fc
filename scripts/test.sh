#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the tests need when it
# is missing (Prometheus, Alertmanager, PostgreSQL, Chromium and chromedriver for the dashboard's
# browser tests, from Debian packages), starts PostgreSQL with a
# test database, builds the binaries the end-to-end tests drive, then runs `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
[[ -x /usr/bin/chromium ]] || need+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv) # scripts/deploy-tools.sh
if ((${#need[@]})); then
  echo "Installing test dependencies: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts packaged Prometheus/Alertmanager services where it can; the tests start their own.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  pkill -x "$svc" 2>/dev/null || true
done

# PostgreSQL: the Debian cluster, and a role that may create the store tests' throwaway databases.
pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_ctlcluster "$pg_version" main start 2>/dev/null || true # "already running" is fine
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1; then
  echo "PostgreSQL $pg_version is not accepting connections on 127.0.0.1:5432 (see pg_lsclusters and /var/log/postgresql/)." >&2
  exit 1
fi
# Over the local socket with peer authentication: no password, never a prompt. The ALTER keeps the
# password right on machines where the role already existed.
su postgres -c "cd / && psql -w -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'f3chaos') THEN
    CREATE ROLE f3chaos LOGIN PASSWORD 'f3chaos' CREATEDB;
  END IF;
END $$;
ALTER ROLE f3chaos LOGIN PASSWORD 'f3chaos' CREATEDB;
SQL
export F3_CHAOS_TEST_POSTGRES_URL="${F3_CHAOS_TEST_POSTGRES_URL:-postgres://f3chaos:f3chaos@127.0.0.1:5432/postgres}"

# deploy/ as shipped: every overlay rendered by kubectl kustomize and validated (docs/deploy.md).
mkdir -p target
scripts/check-deploy.sh >target/check-deploy.log 2>&1 || { cat target/check-deploy.log; exit 1; }
tail -1 target/check-deploy.log
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
