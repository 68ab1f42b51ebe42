#!/usr/bin/env bash
# CA load (issue #4 targets: ≥ 500 SM2 certificate issuances/s through the API; OCSP ≥ 5,000
# responses/s on 2 cores, cached responses allowed). Starts a release `medsign serve` (SQLite) on
# loopback, imports USERS users, then with wrk (installed when missing):
#   1. POST /api/v1/users/{no}/certificates with an SM2 CSR, a different user per request;
#   2. GET /pki/ocsp/{base64} (RFC 5019 form, no nonce) for an issued RSA certificate;
#   3. POST /pki/ocsp with a fresh nonce-less request body (the same bytes; cached answer);
# and side by side, as baselines in the same run: `openssl x509 -req` signing SM2 certificates in
# a loop (one process per certificate, as a shell-driven CA does), and `openssl ocsp -port` (the
# OpenSSL responder) under the same wrk load. Prints the ratios.
# Usage: bench/pki.sh [SECONDS=10] [CONNECTIONS=32] [USERS=30000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; CONNS=${2:-32}; USERS=${3:-30000}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
cargo build --release -q -p medsign
BIN=$PWD/target/release/medsign
WORK=$(mktemp -d)
trap 'kill $PID $OPID 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
OPID=
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" 2> "$WORK/serve.log" &
PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.log" && break; sleep 0.1; done
ADDR=$(awk '/listening on/ {print $3}' "$WORK/serve.log")
TOKEN=$(grep -A1 "bootstrap token" "$WORK/serve.log" | tail -1 | tr -d ' ')
for from in $(seq 0 5000 $((USERS - 1))); do
  python3 -c "import json; print(json.dumps([{'employee_no': 'E%06d' % i, 'name': '医生%d' % i} for i in range($from, min($from + 5000, $USERS))]))" > "$WORK/users.json"
  curl -sf -o /dev/null -X POST "http://$ADDR/api/v1/users" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' --data-binary @"$WORK/users.json"
done
cd "$WORK"
openssl genpkey -algorithm SM2 -out sm2.key 2>/dev/null
openssl req -new -key sm2.key -subj /CN=bench -sm3 -out sm2.csr 2>/dev/null
CSR_JSON=$(python3 -c 'import json; print(json.dumps({"csr": open("sm2.csr").read()}))')

echo "== 1. SM2 certificate issuance through the API (${SECS}s, $CONNS connections)"
cat > issue.lua <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$CSR_JSON]]
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, string.format("/api/v1/users/E%06d/certificates", (n - 1) % $USERS))
end
LUA
wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s issue.lua "http://$ADDR" > issue.out
grep -E "Requests/sec|Latency |99%|Non-2xx" issue.out
ISSUE=$(awk '/Requests\/sec/ {print $2}' issue.out)
ISSUED=$(curl -sf "http://$ADDR/api/v1/certificates?page_size=1" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
echo "certificates in the database: $ISSUED"

echo "== baseline: openssl x509 -req, SM2, one process per certificate (200 certificates)"
openssl req -x509 -new -key sm2.key -subj /CN=bench-ca -sm3 -days 3650 -out ca.pem 2>/dev/null
start=$(date +%s.%N)
for i in $(seq 1 200); do
  openssl x509 -req -in sm2.csr -CA ca.pem -CAkey sm2.key -sm3 -days 365 -set_serial $i -out /dev/null 2>/dev/null
done
end=$(date +%s.%N)
OSSL_ISSUE=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", 200 / (b - a)}')
echo "openssl x509 -req: $OSSL_ISSUE certificates/s"

echo "== 2. OCSP GET (RFC 5019, cacheable) for an RSA staff certificate"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl req -new -key rsa.key -subj /CN=bench -out rsa.csr 2>/dev/null
curl -sf -X POST "http://$ADDR/api/v1/users/E000000/certificates" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary "$(python3 -c 'import json; print(json.dumps({"csr": open("rsa.csr").read()}))')" \
  | python3 -c 'import json,sys; open("leaf.pem","w").write(json.load(sys.stdin)["certificate_pem"])'
curl -sf "http://$ADDR/pki/rsa/ca.pem" > rsa-chain.pem
awk 'BEGIN{n=0} /BEGIN CERT/{n++} n==2' rsa-chain.pem > issuing.pem
openssl ocsp -issuer issuing.pem -cert leaf.pem -no_nonce -reqout req.der >/dev/null 2>&1
B64=$(base64 -w0 req.der | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "http://$ADDR/pki/ocsp/$B64" > get.out
grep -E "Requests/sec|Latency |99%|Non-2xx" get.out
OCSP_GET=$(awk '/Requests\/sec/ {print $2}' get.out)

echo "== 3. OCSP POST (no nonce)"
cat > post.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"
local f = io.open("req.der", "rb"); wrk.body = f:read("*all"); f:close()
LUA
wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s post.lua "http://$ADDR/pki/ocsp" > post.out
grep -E "Requests/sec|Latency |99%|Non-2xx" post.out
OCSP_POST=$(awk '/Requests\/sec/ {print $2}' post.out)

echo "== baseline: openssl ocsp -port (OpenSSL's responder, RSA-2048 signer, same request)"
openssl req -x509 -new -key rsa.key -subj /CN=bench-ocsp-ca -days 30 -out oca.pem 2>/dev/null
openssl x509 -req -in rsa.csr -CA oca.pem -CAkey rsa.key -days 30 -set_serial 7 -out oleaf.pem 2>/dev/null
printf 'V\t301231000000Z\t\t07\tunknown\t/CN=bench\n' > index.txt
OPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl ocsp -port "$OPORT" -index index.txt -CA oca.pem -rsigner oca.pem -rkey rsa.key -nrequest 100000000 >/dev/null 2>&1 &
OPID=$!
sleep 1
openssl ocsp -issuer oca.pem -cert oleaf.pem -no_nonce -reqout oreq.der >/dev/null 2>&1
# OpenSSL's responder answers one connection at a time and does not work with wrk's keep-alive,
# so both responders get the same sequential client here: one new connection per request.
cat > seq.py <<'PY'
import http.client, sys, time
host, port, path, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], open(sys.argv[4], "rb").read()
n, t0 = 0, time.time()
while time.time() - t0 < float(sys.argv[5]):
    c = http.client.HTTPConnection(host, port)
    c.request("POST", path, body, {"Content-Type": "application/ocsp-request", "Connection": "close"})
    r = c.getresponse(); r.read(); c.close()
    assert r.status == 200, r.status
    n += 1
print("%.0f" % (n / (time.time() - t0)))
PY
OSSL_OCSP=$(python3 seq.py 127.0.0.1 "$OPORT" / oreq.der 5)
MS_OCSP_SEQ=$(python3 seq.py "${ADDR%:*}" "${ADDR##*:}" /pki/ocsp req.der 5)
echo "one client, new connection per request: openssl ocsp -port $OSSL_OCSP/s, medsign $MS_OCSP_SEQ/s"

echo "== summary"
printf "SM2 issuance via API   %10s /s   openssl x509 -req %8s /s   ratio %s   (target 500/s)\n" "$ISSUE" "$OSSL_ISSUE" "$(awk -v a="$ISSUE" -v b="$OSSL_ISSUE" 'BEGIN {printf "%.1fx", a / b}')"
printf "OCSP GET               %10s /s\n" "$OCSP_GET"
printf "OCSP POST              %10s /s   (target 5000/s)\n" "$OCSP_POST"
printf "OCSP sequential client %10s /s   openssl ocsp -port %8s /s   ratio %s\n" "$MS_OCSP_SEQ" "$OSSL_OCSP" "$(awk -v a="$MS_OCSP_SEQ" -v b="$OSSL_OCSP" 'BEGIN {printf "%.1fx", a / b}')"
echo "RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
