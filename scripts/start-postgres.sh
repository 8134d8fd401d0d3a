#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback for the tests and prints the URL to use as
# INFOPARQUET_TEST_POSTGRES_URL. Uses Debian's postgresql package (installed by .ci/run).
# Usage: eval "$(scripts/start-postgres.sh [DIR] [PORT])"
set -euo pipefail
dir=${1:-/tmp/infoparquet-pg}
port=${2:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
# The postgres user may not enter the caller's private directory.
cd /
run_as=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  run_as=(runuser -u postgres --)
fi
if [ ! -f "$dir/PG_VERSION" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  "${run_as[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
if ! "${run_as[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  # fsync stays on: durability matters to what the tests claim. Loopback only.
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300" start >/dev/null
fi
echo "export INFOPARQUET_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
