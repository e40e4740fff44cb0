#!/usr/bin/env bash
# `make run`: the three stub servers and the hub with the embedded SQLite store, on loopback.
set -euo pipefail
export BILLING_HUB_DATA_DIR="${BILLING_HUB_DATA_DIR:-.data}"
# The demo client's key; only its SHA-256 is in policies/default.toml.
demo_key="demo-key-0123456789abcdef"
port="${BILLING_HUB_PORT:-8080}"

billing-hub stubs &
stubs_pid=$!
trap 'kill $stubs_pid 2>/dev/null || true' EXIT

cat <<MSG

  Billing Integration Hub
  hub        http://127.0.0.1:$port
  OpenAPI UI http://127.0.0.1:$port/schema/swagger   (JSON: /schema/openapi.json)
  readiness  http://127.0.0.1:$port/ready
  stubs      EHR http://127.0.0.1:8081/fhir  clearinghouse http://127.0.0.1:8082  ERP http://127.0.0.1:8083/erp
  demo key   X-API-Key: $demo_key   (client "demo", every scope; see policies/default.toml)
  data       $BILLING_HUB_DATA_DIR/hub.sqlite3

MSG
billing-hub serve --port "$port" &
hub_pid=$!
# A TERM for `make run` (a process manager, `kill <pid>`) reaches this shell only: pass it on, or the
# hub and the stubs are left running. Ctrl-C reaches the whole group, the hub included, by itself.
trap 'kill -TERM $hub_pid 2>/dev/null || true' TERM
trap 'kill -HUP $hub_pid 2>/dev/null || true' HUP
status=0
while kill -0 "$hub_pid" 2>/dev/null; do
  wait "$hub_pid" || status=$?  # a trapped signal ends the wait early: wait again until the hub is gone
done
exit "$status"
