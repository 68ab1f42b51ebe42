#!/usr/bin/env bash
# Gateway cost (issue #17: p99 added per message < 2 ms, ≥ 10,000 messages/s per gateway on 2 cores),
# beside a plain nginx reverse proxy doing the same forwarding, in the same run.
#
# A release `medsign serve` (SQLite) keeps its tunnel open to a release `medsign gateway` (mutual TLS,
# certificates by `medsign gateway cert`); nginx proxies to the same server over plain HTTP/1.1 with
# keep-alive. wrk sends the same phone message three ways — to the server directly, through nginx,
# through the gateway — in interleaved rounds, and the script prints each round and the medians:
#   channel  GET /mobile/v1/channel: the channel key (the one plain call of the phone API), answered
#            from memory, so the forwarding itself dominates (the gateway checks the answer's type)
#   refused  POST /mobile/v1/sealed, a 0.6 KB envelope for a key the server does not have: refused
#            409 before any key agreement or write (the gateway checks the envelope and the error)
# A sealed call that is carried out costs the server a key agreement and a database write besides;
# wrk cannot seal, and the gateway's share of such a call is the same forwarding as `refused`.
# Everything (wrk, nginx, gateway, server) shares this machine's cores: the figures are what one
# box does, not what a DMZ host alone would.
# Usage: bench/gateway.sh [SECONDS=5] [ROUNDS=3] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}; ROUNDS=${2:-3}; CONNS=${3:-32}
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }; }
need wrk wrk
[ -x /usr/sbin/nginx ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null; }
cargo build --release -q -p medsign
BIN=$PWD/target/release/medsign
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; [ -s "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")"; wait 2>/dev/null; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_line() { for _ in $(seq 1 200); do grep -q "listening on" "$1" && return; sleep 0.05; done; cat "$1"; exit 1; }

# first start: the hospital CA exists; then the tunnel certificates
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" 2> "$WORK/first.log" & PIDS+=($!)
wait_line "$WORK/first.log"
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()
"$BIN" gateway cert --data-dir "$WORK/data" --role gateway --name 127.0.0.1 --out-cert "$WORK/gw.pem" --out-key "$WORK/gw.key" --out-ca "$WORK/ca.pem" 2>/dev/null
"$BIN" gateway cert --data-dir "$WORK/data" --role server --name bench-server --out-cert "$WORK/srv.pem" --out-key "$WORK/srv.key" 2>/dev/null

GW_PUBLIC=$(port); GW_TUNNEL=$(port); NGINX=$(port)
# every wrk connection comes from one address: the per-address cap is lifted to the gateway's total
MEDSIGN_GATEWAY_LISTEN=127.0.0.1:$GW_PUBLIC MEDSIGN_GATEWAY_TUNNEL_LISTEN=127.0.0.1:$GW_TUNNEL \
MEDSIGN_GATEWAY_TUNNEL_CERT=$WORK/gw.pem MEDSIGN_GATEWAY_TUNNEL_KEY=$WORK/gw.key MEDSIGN_GATEWAY_TUNNEL_CA=$WORK/ca.pem \
MEDSIGN_GATEWAY_PER_ADDRESS_IN_FLIGHT=256 MEDSIGN_LOG=warn "$BIN" gateway 2> "$WORK/gateway.log" & PIDS+=($!)
wait_line "$WORK/gateway.log"
MEDSIGN_SERVER_PUBLIC_RATE_PER_MINUTE=0 MEDSIGN_TUNNEL_GATEWAYS=127.0.0.1:$GW_TUNNEL MEDSIGN_TUNNEL_CERT=$WORK/srv.pem \
MEDSIGN_TUNNEL_KEY=$WORK/srv.key MEDSIGN_TUNNEL_CA=$WORK/ca.pem MEDSIGN_LOG=warn \
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" 2> "$WORK/serve.log" & PIDS+=($!)
wait_line "$WORK/serve.log"
SERVER=$(awk '/listening on/ {print $3}' "$WORK/serve.log")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GW_PUBLIC/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$GW_PUBLIC/readyz"; echo

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream medsign { server $SERVER; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://medsign; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header X-Forwarded-For \$remote_addr; }
  }
}
NGINX
/usr/sbin/nginx -c "$WORK/nginx.conf"

BLOB=$(head -c 420 /dev/urandom | base64 -w0)
cat > "$WORK/refused.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"v":1,"kid":"0123456789abcdef","blob":"$BLOB"}'
LUA

cd "$WORK"
# run <label> <base> <workload>  → "rps p50 p99" (ms)
run() {
  local script=() path=/mobile/v1/channel; [ "$3" = refused ] && { script=(-s refused.lua); path=/mobile/v1/sealed; }
  wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "${script[@]}" "$2$path" > "wrk.out"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' wrk.out)
  p50=$(awk '$1=="50%" {print $2}' wrk.out); p99=$(awk '$1=="99%" {print $2}' wrk.out)
  ms() { case "$1" in *us) echo "${1%us}" | awk '{print $1/1000}';; *ms) echo "${1%ms}";; *s) echo "${1%s}" | awk '{print $1*1000}';; esac; }
  echo "$1 $3 $rps $(ms "$p50") $(ms "$p99")"
}
: > results
for r in $(seq 1 "$ROUNDS"); do
  for w in channel refused; do
    run direct "http://$SERVER" $w | tee -a results
    run nginx "http://127.0.0.1:$NGINX" $w | tee -a results
    run gateway "http://127.0.0.1:$GW_PUBLIC" $w | tee -a results
  done
done
python3 - "$CONNS" <<'PY'
import statistics, sys
rows = [l.split() for l in open("results")]
med = lambda via, w, i: statistics.median(float(r[i]) for r in rows if r[0] == via and r[1] == w)
print(f"\n== medians over rounds, {sys.argv[1]} connections (messages/s; p50, p99 in ms)")
for w in ("channel", "refused"):
    d, n, g = (med(v, w, 2) for v in ("direct", "nginx", "gateway"))
    print(f"{w:8} direct {d:8.0f}/s p99 {med('direct', w, 4):6.2f} | nginx {n:8.0f}/s p99 {med('nginx', w, 4):6.2f} | "
          f"gateway {g:8.0f}/s p99 {med('gateway', w, 4):6.2f} | gateway/nginx {g / n:4.2f}x")
    print(f"{'':8} p99 added: nginx {med('nginx', w, 4) - med('direct', w, 4):+6.2f} ms, gateway {med('gateway', w, 4) - med('direct', w, 4):+6.2f} ms")
PY
