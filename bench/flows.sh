#!/usr/bin/env bash
# Signing flows under load (issue #6 targets: data-sign API p99 < 20 ms at 500 req/s; 1,000
# one-page PDFs, each with a visible seal and a timestamp, in < 10 s). Starts chronyd -x on
# loopback and a release `medsign serve` (SQLite), then with wrk:
#   1. POST /api/v1/sign-flows, kind=data, signer = hospital seal (SM2 CMS + SM2 timestamp);
#   2. the same with a doctor under server custody and the seal (two signers, two timestamps);
#   3. POST /api/v1/sign-flows, kind=file, a one-page PDF, the hospital seal in a visible box (RSA);
#   4. POST /api/v1/batches: 1,000 lab reports rendered from the shipped template, each sealed in its
#      signature box (seal image, Chinese text, RSA signature + timestamp), timed until completed.
# Baseline in the same run: `openssl cms -sign` of the same content, one process per signature.
#   5. (issue #20) the PDF flow of 3. beside pyHanko signing the same PDF in one process, in
#      ROUNDS (3) interleaved rounds; needs the pyHanko venv of scripts/test (adds fontTools).
# Usage: [ROUNDS=3] bench/flows.sh [SECONDS=10] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}; CONNS=${2:-16}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
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
ADMIN=$(grep -A1 "bootstrap token" "$WORK/serve.log" | tail -1 | tr -d ' ')
for _ in $(seq 1 50); do curl -s "http://$ADDR/readyz" | grep -q '"INSYNC"' && break; sleep 0.2; done
H=(-H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json')
curl -sf "${H[@]}" -X POST "http://$ADDR/api/v1/users" -d '{"employee_no":"1001","name":"张三"}' >/dev/null
curl -sf "${H[@]}" -X POST "http://$ADDR/admin/v1/users/1001/custody" -d '{"reason":"benchmark"}' >/dev/null
cd "$WORK"
CONTENT='Rp: 阿莫西林胶囊 0.5g tid ×3d；患者 王某 门诊号 20261127-0042'
python3 - "$CONTENT" <<'PY'
import json, sys, base64
c = sys.argv[1]
json.dump({"kind": "data", "title": "门诊处方", "content": c, "signers": [{"seal": "hospital"}]}, open("seal.json", "w"), ensure_ascii=False)
json.dump({"kind": "data", "title": "门诊处方", "content": c, "signers": [{"employee_no": "1001"}, {"seal": "hospital"}]}, open("two.json", "w"), ensure_ascii=False)
# a one-page PDF with a classic xref table
objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
out = bytearray(b"%PDF-1.7\n"); offs = []
for i, o in enumerate(objs):
    offs.append(len(out)); out += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
x = len(out); out += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offs)
out += b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % x
json.dump({"kind": "file", "title": "检验报告单", "alg": "rsa", "content_base64": base64.b64encode(bytes(out)).decode(),
           "signers": [{"seal": "hospital", "placement": {"page": 1, "rect": [40, 60, 200, 130]}}]}, open("pdf.json", "w"))
open("content.txt", "w").write(c)
PY
cat > post.lua <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $ADMIN"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "rb"); wrk.body = f:read("*all"); f:close()
LUA
run() { # name body connections
  BODY=$2 wrk -t1 -c"$3" -d"${SECS}s" --latency -s post.lua "http://$ADDR/api/v1/sign-flows" > "wrk-$1.out"
  echo "== $1 ($3 connections)"; grep -E "Requests/sec|Latency |50%|99%|Non-2xx|Socket errors" "wrk-$1.out"
}
run data-seal-4 seal.json 4
run data-seal seal.json "$CONNS"
run data-doctor+seal two.json "$CONNS"
run pdf-seal pdf.json "$CONNS"

# issue #20 goal 4: PDF flows beside pyHanko signing the same one-page PDF in one process, with an
# RSA-2048 key, the same seal image and three lines in a CJK font, timestamped by medsign's /tsa/rsa
# — interleaved rounds of $SECS s, medians
PY=${MEDSIGN_TEST_PYTHON:-$HOME/.cache/medsign-test-tools/venv/bin/python3}
PYHANKO=
if [ -x "$PY" ] && { "$PY" -c 'import pyhanko, fontTools, uharfbuzz' 2>/dev/null \
    || "$PY" -m pip install -q 'pyHanko[opentype]==0.38.0' >/dev/null 2>&1; }; then
  curl -sf "${H[@]}" "http://$ADDR/admin/v1/seals/hospital/image.png" -o seal.png
  python3 -c 'import json, base64; open("one.pdf", "wb").write(base64.b64decode(json.load(open("pdf.json"))["content_base64"]))'
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ph.key -out ph.pem -days 2 -subj "/CN=pyHanko bench/O=bench/C=CN" 2>/dev/null
  FONT="$ROOT/crates/pdf/assets/NotoSansSC-medsign.otf"
  for r in $(seq 1 "${ROUNDS:-3}"); do
    run "pdf-seal-r$r" pdf.json "$CONNS" | grep Requests/sec
    for f in cjk latin; do
      "$PY" "$ROOT/bench/pyhanko-sign.py" one.pdf ph.key ph.pem seal.png "$([ $f = cjk ] && echo "$FONT" || echo latin)" \
        "http://$ADDR/tsa/rsa" "$SECS" > "pyhanko-$f-r$r.out"
      echo "pyHanko ($f text): $(cat "pyhanko-$f-r$r.out") signatures/s"
    done
  done
  median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  MS=$(for r in $(seq 1 "${ROUNDS:-3}"); do awk '/Requests\/sec/ {print $2}' "wrk-pdf-seal-r$r.out"; done | median)
  PC=$(cat pyhanko-cjk-r*.out | median); PL=$(cat pyhanko-latin-r*.out | median)
  PYHANKO=$(awk -v a="$MS" -v c="$PC" -v l="$PL" 'BEGIN {printf "%.0f/s; pyHanko, Chinese lines (embedded CJK subset) %.1f/s = %.1f×, English lines (built-in font) %.1f/s = %.1f× (target ≥ 10×)", a, c, a / c, l, a / l}')
else
  echo "pyHanko (with fontTools, uharfbuzz) not available at $PY: the comparison is skipped"
fi

echo "== batch: 1,000 lab reports rendered from the template, each sealed (image) in its box, RSA + timestamp"
python3 - <<'PY'
import json
items = [{"kind": "file", "title": f"检验报告单 S-{i}", "alg": "rsa", "template_id": "lab-report",
          "data": {"hospital": "某某县人民医院", "patient_name": "患者", "gender": "女", "age": "32岁", "patient_id": f"ZY{i:05}",
                   "sample_no": f"S-{i}", "department": "内科", "specimen": "血清",
                   "items": [{"code": "GLU", "name": "葡萄糖", "result": "5.1", "unit": "mmol/L", "reference": "3.9–6.1"}]},
          "signers": [{"seal": "hospital", "field": "lab_seal"}]} for i in range(1000)]
json.dump({"items": items}, open("batch.json", "w"), ensure_ascii=False)
PY
start=$(date +%s.%N)
BID=$(curl -sf "${H[@]}" -X POST "http://$ADDR/api/v1/batches" --data-binary @batch.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
while ! curl -sf "${H[@]}" "http://$ADDR/api/v1/batches/$BID" | grep -q '"state":"completed"'; do sleep 0.1; done
end=$(date +%s.%N)
BATCH=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
curl -sf "${H[@]}" "http://$ADDR/api/v1/batches/$BID" | python3 -c 'import json,sys; b = json.load(sys.stdin); print("done", b["done"], "failed", b["failed"])'
SEAL4=$(awk '/Requests\/sec/ {print $2}' wrk-data-seal-4.out); SEAL4_99=$(awk '$1 == "99%" {print $2}' wrk-data-seal-4.out)
SEAL=$(awk '/Requests\/sec/ {print $2}' wrk-data-seal.out); SEAL99=$(awk '$1 == "99%" {print $2}' wrk-data-seal.out)
TWO=$(awk '/Requests\/sec/ {print $2}' wrk-data-doctor+seal.out)
PDF=$(awk '/Requests\/sec/ {print $2}' wrk-pdf-seal.out)

echo "== baseline: openssl cms -sign (SM2 key, one process per signature)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:SM2 -nodes -keyout k.pem -out c.pem -days 2 -subj /CN=bench 2>/dev/null \
  || openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 2 -subj /CN=bench 2>/dev/null
N=200; start=$(date +%s.%N)
for _ in $(seq 1 $N); do openssl cms -sign -binary -in content.txt -signer c.pem -inkey k.pem -outform DER -out /dev/null 2>/dev/null || true; done
end=$(date +%s.%N)
OSSL=$(awk -v a="$start" -v b="$end" -v n=$N 'BEGIN {printf "%.1f", n / (b - a)}')
echo "openssl cms -sign: $OSSL signatures/s"
echo "== summary"
printf "data flow, seal, 4 conns: %9s flows/s  p99 %s   (target: p99 < 20 ms at 500/s)\n" "$SEAL4" "$SEAL4_99"
printf "data flow, seal, %s conns: %9s flows/s  p99 %s\n" "$CONNS" "$SEAL" "$SEAL99"
printf "data flow, doctor + seal: %9s flows/s\n" "$TWO"
printf "PDF flow, visible seal:   %9s PDFs/s → 1,000 PDFs in %s s (target < 10 s)\n" "$PDF" "$(awk -v r="$PDF" 'BEGIN {printf "%.1f", 1000 / r}')"
[ -n "$PYHANKO" ] && printf "PDF flow, visible seal, medians of %s rounds: %s\n" "${ROUNDS:-3}" "$PYHANKO"
printf "batch, 1,000 template lab reports with seal image + timestamp: %s s (issue #20 target < 5 s)\n" "$BATCH"
printf "vs openssl cms -sign per process: %s× (seal flow)\n" "$(awk -v a="$SEAL" -v b="$OSSL" 'BEGIN {printf "%.0f", a / b}')"
echo "RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status) (peak $(awk '/VmHWM/ {print $2, $3}' /proc/$PID/status))"
