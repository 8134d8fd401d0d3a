#!/usr/bin/env bash
# Runs examples/send_referral.py against the running demo: the example sends a referral with two
# documents and waits; meanwhile the bureau d'ordre of Blois registers it through the API; the
# example must then print the numéro parquet and exit 0.
# Usage: scripts/example-client.sh [PATH_TO_INFOPARQUET_BINARY]
set -euo pipefail
binary=$(readlink -f "${1:-target/debug/infoparquet}")
example=$(readlink -f "$(dirname "$0")/../examples/send_referral.py")
work=$(mktemp -d)
port=18098
cd "$work"
"$binary" demo --no-serve >/dev/null
agent=$("$binary" token create --email agent.ddpp41@demo.infoparquet.fr 2>/dev/null | tail -n 1)
clerk=$("$binary" token create --email greffe.blois@demo.infoparquet.fr 2>/dev/null | tail -n 1)
"$binary" serve --listen 127.0.0.1:$port >serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
printf '%%PDF-1.4\n%% procès-verbal de démonstration\n' >pv.pdf
printf 'Relevé des constatations\n' >constatations.txt
python3 -u "$example" --url "http://127.0.0.1:$port" --token "$agent" --wait-seconds 120 \
  pv.pdf constatations.txt >example.log 2>&1 &
client=$!
id=""
for _ in $(seq 1 100); do
  id=$(sed -n 's/^Draft \([0-9a-f-]*\) created\.$/\1/p' example.log)
  grep -q '^Sent as' example.log && break
  sleep 0.2
done
[ -n "$id" ] || { cat example.log; exit 1; }
curl -fs -X POST "http://127.0.0.1:$port/api/v1/referrals/$id/register" \
  -H "Authorization: Bearer $clerk" -H 'Content-Type: application/json' \
  -d '{"parquet_number": "26109099001"}' >/dev/null
if wait $client && grep -q 'numéro parquet 26109099001' example.log; then
  cat example.log
  echo "example client: OK"
else
  cat example.log
  echo "example client: FAILED" >&2
  exit 1
fi
