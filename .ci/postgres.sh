#!/usr/bin/env bash
# Starts a local PostgreSQL (Debian's package) for the multi-worker storage tests and prints
# the Optuna storage URL. Loopback only. Installs the server when the machine lacks it.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h | grep -q "^$ver main" || pg_createcluster "$ver" main >&2
pg_ctlcluster "$ver" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='evo'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE evo LOGIN PASSWORD 'evo'\"" >&2
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='evo_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O evo evo_test" >&2
echo "postgresql://evo:evo@127.0.0.1:5432/evo_test"
