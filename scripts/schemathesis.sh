#!/usr/bin/env bash
# Runs schemathesis (PyPI) against the running application's own OpenAPI document, with a token
# of the demo data: zero server errors and zero responses that violate the schema, or it fails.
# Usage: scripts/schemathesis.sh [PATH_TO_INFOPARQUET_BINARY]
set -euo pipefail
binary=${1:-target/debug/infoparquet}
binary=$(readlink -f "$binary")
work=$(mktemp -d)
port=18099
cd "$work"
"$binary" demo --no-serve >/dev/null
token=$("$binary" token create --email agent.ddpp41@demo.infoparquet.fr 2>/dev/null | tail -n 1)
# The per-token budget is tested elsewhere; here every generated case must reach its handler.
INFOPARQUET__API_REQUESTS_PER_MINUTE=1000000 "$binary" serve --listen 127.0.0.1:$port >serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
st run "http://127.0.0.1:$port/api/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples 10 --workers 2 --seed 2026
