#!/usr/bin/env bash
# GET /api/v1/users/{employee_no} under load (issue #3 target: ≥ 5,000 req/s, p99 < 10 ms on this
# 2-core machine with SQLite, load generator on the same machine). Starts a release `medsign serve`
# on a free loopback port with a fresh data directory, imports USERS users, then runs wrk
# (Debian package `wrk`, installed when missing) with a random employee number per request.
# Usage: bench/api-users.sh [SECONDS=10] [CONNECTIONS=32] [USERS=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; CONNS=${2:-32}; USERS=${3:-10000}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
cargo build --release -q -p medsign
BIN=target/release/medsign
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" 2> "$WORK/serve.log" &
PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.log" && break; sleep 0.1; done
ADDR=$(awk '/listening on/ {print $3}' "$WORK/serve.log")
TOKEN=$(grep -A1 "bootstrap token" "$WORK/serve.log" | tail -1 | tr -d ' ')
python3 - "$USERS" > "$WORK/users.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps([{"employee_no": "E%06d" % i, "name": "医生%d" % i, "department": "D%02d" % (i % 40), "role": "doctor"} for i in range(n)]))
PY
python3 -c 'import json; print(json.dumps([{"code": "D%02d" % i, "name": "科室%d" % i} for i in range(40)]))' > "$WORK/deps.json"
curl -sf -o /dev/null -X POST "http://$ADDR/admin/v1/departments" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary @"$WORK/deps.json"
start=$(date +%s.%N)
code=$(curl -s -o "$WORK/create.out" -w '%{http_code}' -X POST "http://$ADDR/api/v1/users" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary @"$WORK/users.json")
end=$(date +%s.%N)
echo "created $USERS users in one call: HTTP $code, $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s"
cat > "$WORK/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("/api/v1/users/E%06d", math.random(0, $USERS - 1)))
end
LUA
echo "RSS before load: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/get.lua" "http://$ADDR" | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors"
echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
