#!/usr/bin/env bash
# Run a command with REDIS_URL pointing at a real Redis server.
# Uses $REDIS_URL if it answers, else 127.0.0.1:6379 ($REDIS_DEFAULT_URL) if it answers, else starts a throw-away
# redis-server on a free port (and stops it afterwards). Fails loudly when none can be had,
# because the Redis-backend tests must run, never be skipped.
set -euo pipefail

answers() { "$PY_BIN" - "$1" <<'PY'
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
except Exception:
    sys.exit(1)
PY
}
PY_BIN="${1:-python3}"

started_pid=""
cleanup() { [ -n "$started_pid" ] && kill "$started_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [ -n "${REDIS_URL:-}" ] && answers "$REDIS_URL"; then
  :
elif answers "${REDIS_DEFAULT_URL:=redis://127.0.0.1:6379/0}"; then
  export REDIS_URL="$REDIS_DEFAULT_URL"
elif command -v redis-server >/dev/null 2>&1; then
  port=$("$PY_BIN" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize no \
    >"$dir/redis.log" 2>&1 &
  started_pid=$!
  export REDIS_URL="redis://127.0.0.1:$port/0"
  for _ in $(seq 50); do answers "$REDIS_URL" && break; sleep 0.1; done
  answers "$REDIS_URL" || { echo "redis-server did not start on $port" >&2; exit 1; }
  echo "started redis-server on port $port for the tests" >&2
else
  echo "no Redis server answers and redis-server is not installed (apt-get install redis-server)" >&2
  exit 1
fi
"$@"
