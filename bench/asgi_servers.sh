#!/usr/bin/env bash
# Which ASGI server: uvicorn (uvloop + httptools) vs granian, one worker each, same run, same load.
# Routes: the bare ping app and the hub's GET /v1/transactions/{id} (embedded store, bench policy).
# Needs wrk and `pip install granian` (granian is not a project dependency). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DUR=${DUR:-8}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }

key="asgi-bench-key-0123456789"
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
sed -e "s/cdb261f25818c0b9927e93c353bdc05dddfa18e4ede433d264e910cc94b47aeb/$hash/" \
    -e 's/^limit = [0-9]*/limit = 1000000/' policies/default.toml > "$tmp/policy.toml"
export BILLING_HUB_POLICY_FILE="$tmp/policy.toml" BILLING_HUB_TARGETS=erp BILLING_HUB_LOG_LEVEL=WARNING

run() {  # name url
  wrk -t1 -c32 -d"${DUR}s" -H "X-API-Key: $key" "$2" | awk -v n="$1" '/Requests\/sec/ {printf "%-28s %10s req/s\n", n, $2}'
}

p1=$(port); p2=$(port); h1=$(port); h2=$(port)
$PY bench/ping_app.py --port "$p1" >/dev/null 2>&1 & pids+=($!)
.venv/bin/granian --interface asgi --host 127.0.0.1 --port "$p2" --workers 1 --loop uvloop --log-level warning \
  --factory bench.ping_app:create_app >/dev/null 2>&1 & pids+=($!)
BILLING_HUB_DATA_DIR="$tmp/h1" .venv/bin/billing-hub serve --port "$h1" >/dev/null 2>&1 & pids+=($!)
BILLING_HUB_DATA_DIR="$tmp/h2" .venv/bin/granian --interface asgi --host 127.0.0.1 --port "$h2" --workers 1 \
  --loop uvloop --log-level warning --factory gateway.app:create_app >/dev/null 2>&1 & pids+=($!)
for u in "http://127.0.0.1:$p1/ping" "http://127.0.0.1:$p2/ping" "http://127.0.0.1:$h1/health" "http://127.0.0.1:$h2/health"; do
  wait_up "$u"
done
txn() {
  curl -s -X POST "http://127.0.0.1:$1/v1/journals" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -d '{"ledger":"GL","accounting_date":"2026-11-15","description":"x","external_reference":"asgi-bench",
         "lines":[{"account":"1000","debit":"1.00"},{"account":"1100","credit":"1.00"}]}' | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
t1=$(txn "$h1"); t2=$(txn "$h2")
for round in 1 2; do
  run "uvicorn  ping (round $round)" "http://127.0.0.1:$p1/ping"
  run "granian  ping (round $round)" "http://127.0.0.1:$p2/ping"
  run "uvicorn  GET txn (round $round)" "http://127.0.0.1:$h1/v1/transactions/$t1"
  run "granian  GET txn (round $round)" "http://127.0.0.1:$h2/v1/transactions/$t2"
done
