#!/usr/bin/env bash
# TSA load (issue #5 target: ≥ 5,000 SM2 tokens/s over HTTP on this 2-core machine, p99 < 5 ms,
# load generator on the same machine). Starts chronyd -x on loopback as the time source and a
# release `medsign serve` (SQLite: every token is recorded before it is returned), then wrk POSTs
# one SM3 TimeStampReq to /tsa/sm2 (and a SHA-256 one to /tsa/rsa). Baseline in the same run:
# `openssl ts -reply` answering the same kind of request, one process per request (how a
# shell/CGI OpenSSL TSA works); uts-server is not packaged for Debian 12 and was not built.
# Usage: bench/tsa.sh [SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; CONNS=${2:-32}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
[ -x /usr/sbin/chronyd ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chrony >/dev/null; }
cargo build --release -q -p medsign
BIN=$PWD/target/release/medsign
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null; [ -s "$WORK/chrony.pid" ] && kill "$(cat "$WORK/chrony.pid")"; wait 2>/dev/null; rm -rf "$WORK"' EXIT
NTPPORT=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'port %s\nbindaddress 127.0.0.1\nallow 127.0.0.1\ncmdport 0\nlocal stratum 3\npidfile %s/chrony.pid\n' "$NTPPORT" "$WORK" > "$WORK/chrony.conf"
/usr/sbin/chronyd -x -u root -f "$WORK/chrony.conf" -L 0 -l "$WORK/chrony.log"
MEDSIGN_SERVER_PUBLIC_RATE_PER_MINUTE=0 MEDSIGN_TIME_SOURCES=127.0.0.1:$NTPPORT "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" 2> "$WORK/serve.log" &
PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.log" && break; sleep 0.1; done
ADDR=$(awk '/listening on/ {print $3}' "$WORK/serve.log")
for _ in $(seq 1 50); do curl -s "http://$ADDR/readyz" | grep -q '"INSYNC"' && break; sleep 0.2; done
curl -s "http://$ADDR/readyz"; echo
cd "$WORK"
head -c 1000 /dev/urandom > data.bin
openssl ts -query -data data.bin -sm3 -cert -out sm3.tsq 2>/dev/null
openssl ts -query -data data.bin -sha256 -cert -out sha256.tsq 2>/dev/null
cat > post.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/timestamp-query"
local f = io.open(os.getenv("TSQ"), "rb"); wrk.body = f:read("*all"); f:close()
LUA
run() { # profile query-file
  TSQ=$2 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s post.lua "http://$ADDR/tsa/$1" > "wrk-$1.out"
  grep -E "Requests/sec|Latency |50%|99%|Non-2xx|Socket errors" "wrk-$1.out"
}
echo "== /tsa/sm2 (SM3withSM2), ${SECS}s, $CONNS connections"
run sm2 sm3.tsq
SM2=$(awk '/Requests\/sec/ {print $2}' wrk-sm2.out)
SM2_P99=$(awk '$1 == "99%" {print $2}' wrk-sm2.out)
echo "== /tsa/rsa (SHA-256 with RSA-2048)"
run rsa sha256.tsq
RSA=$(awk '/Requests\/sec/ {print $2}' wrk-rsa.out)
curl -s "http://$ADDR/tsa/sm2" -H 'Content-Type: application/timestamp-query' --data-binary @sm3.tsq -o one.tsr
openssl ts -reply -in one.tsr -text 2>/dev/null | grep -E "^Status:|^Serial|^Accuracy"

echo "== baseline: openssl ts -reply, one process per request (RSA-2048 TSA key, SHA-256)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout tsa.key -out tsa.pem -days 2 -subj /CN=bench-tsa \
  -addext extendedKeyUsage=critical,timeStamping 2>/dev/null
cat > tsa.cnf <<'CNF'
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = ./serial
crypto_device = builtin
signer_cert = ./tsa.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 0.4.0.2023.1.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
CNF
echo 01 > serial
N=300
start=$(date +%s.%N)
for _ in $(seq 1 $N); do openssl ts -reply -config tsa.cnf -queryfile sha256.tsq -out /dev/null 2>/dev/null; done
end=$(date +%s.%N)
OSSL=$(awk -v a="$start" -v b="$end" -v n=$N 'BEGIN {printf "%.1f", n / (b - a)}')
echo "openssl ts -reply: $OSSL tokens/s"
RECORDED=$(curl -s "http://$ADDR/admin/v1/timestamps?page_size=1" -H "Authorization: Bearer $(grep -A1 'bootstrap token' serve.log 2>/dev/null | tail -1 | tr -d ' ')" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("total"))' 2>/dev/null || echo "?")

echo "== summary"
printf "/tsa/sm2   %10s tokens/s  p99 %s   (target 5000/s, p99 < 5 ms)\n" "$SM2" "$SM2_P99"
printf "/tsa/rsa   %10s tokens/s   openssl ts -reply %s /s   ratio %s\n" "$RSA" "$OSSL" "$(awk -v a="$RSA" -v b="$OSSL" 'BEGIN {printf "%.0fx", a / b}')"
printf "sm2 vs openssl ts -reply: %s\n" "$(awk -v a="$SM2" -v b="$OSSL" 'BEGIN {printf "%.0fx", a / b}')"
echo "tokens on record: $RECORDED"
echo "RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
