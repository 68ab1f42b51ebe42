#!/usr/bin/env bash
# Issue #7 targets: the server half of a two-party signature p99 < 5 ms (issue #20: < 2 ms); a
# doctor's batch of 200 documents signed end to end (phone half in WebAssembly under Node) in
# < 3 s. Builds the release
# binary and the wasm module, runs bench/phone-batch.mjs (which starts `medsign serve` with a local
# fake NTP server, SQLite) and, in the same run, the baseline `openssl speed sm2` (one core).
# Then the server half once more with medsign on CPU 0 and the Node client on CPU 1 (taskset), as
# when the load does not come from the server's own machine: on this 2-vCPU VM, sharing both cores
# with the client costs cross-core wake-ups between tokio and sqlx's SQLite worker threads.
# Each timed answer is followed by a timed GET /healthz on the same connection: the floor that
# this machine's loopback, scheduler and Node client put under any request, printed beside it.
# Where tcpdump can capture the loopback (root), both runs are also timed at the server's socket
# (bench/wire-latency.py: the request's last segment in to the response's first out), which
# leaves out the Node client's own scheduling; without tcpdump the script says so and goes on.
# Usage: bench/phone.sh [BATCH=200] [ROUNDS=500]
set -euo pipefail
cd "$(dirname "$0")/.."
export BATCH=${1:-200} ROUNDS=${2:-500}
cargo build --release -q -p medsign
scripts/build-wasm >/dev/null
OUT=$(mktemp)
PINNED=$(mktemp)
WRAP=$(mktemp)
CAP=$(mktemp -d)
TD=
trap '[ -z "$TD" ] || kill "$TD" 2>/dev/null; rm -rf "$OUT" "$PINNED" "$WRAP" "$CAP"' EXIT
# capture NAME [CPUS]: start a loopback capture into $CAP/NAME.pcap, on CPUS if given (no-op
# without tcpdump or the right to capture)
capture() {
  TD=
  command -v tcpdump >/dev/null || return 0
  ${2:+taskset -c "$2"} tcpdump -i lo -U -B 32768 -s 256 -w "$CAP/$1.pcap" tcp 2>/dev/null & TD=$!
  sleep 1
  kill -0 "$TD" 2>/dev/null || TD=
}
# wire NAME FILE: stop the capture and add its server-side latencies to FILE (and show them);
# called in this shell, never in a pipeline, so that it can wait for tcpdump
wire() {
  local w
  if [ -z "$TD" ]; then
    w='"absent: tcpdump is not installed or may not capture on lo (run as root)"'
  else
    sleep 1  # the last packets reach the file (-U writes each one as it comes)
    kill "$TD" 2>/dev/null || true
    wait "$TD" 2>/dev/null || true
    TD=
    w=$(python3 bench/wire-latency.py "$CAP/$1.pcap" /mobile/v1/sign-rounds/answers /healthz) || w='"the capture could not be read"'
  fi
  echo "{\"wire\": $w}" | tee -a "$2"
}
capture shared
MEDSIGN_BIN=$PWD/target/release/medsign node bench/phone-batch.mjs | tee "$OUT"
wire shared "$OUT"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  printf '#!/bin/sh\nexec taskset -c 0 %s/target/release/medsign "$@"\n' "$PWD" > "$WRAP"
  chmod +x "$WRAP"
  echo "== server half again: medsign pinned to CPU 0, the Node client to CPU 1"
  capture pinned 1  # beside the client, off medsign's core
  BATCH=1 MEDSIGN_BIN=$WRAP taskset -c 1 node bench/phone-batch.mjs | grep server-half | tee "$PINNED"
  wire pinned "$PINNED"
fi
SPEED=$(openssl speed -seconds 3 sm2 2>/dev/null | grep 'SM2 (' | tail -1)
echo "== baseline: openssl speed sm2 (one core): sign, verify, sign/s, verify/s"; echo "$SPEED"
OSSL_SIGN=$(echo "$SPEED" | awk '{print $(NF-1)}')
python3 - "$OUT" "${OSSL_SIGN:-0}" "$PINNED" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rows = {l["bench"]: l for l in lines if "bench" in l}
b, h = rows["batch"], rows["server-half"]
ossl = float(sys.argv[2])
pinned_lines = [json.loads(l) for l in open(sys.argv[3]) if l.startswith("{")]
pinned = [p for p in pinned_lines if "bench" in p]
def at_socket(rows, what):
    timed = next((r["requests"] for r in rows if r.get("bench") == "server-half"), "?")
    for w in (r["wire"] for r in rows if "wire" in r):
        if isinstance(w, str):
            print(f"{what}, at the server's socket: {w}")
            continue
        a, f = w["/mobile/v1/sign-rounds/answers"], w["/healthz"]
        if not a["requests"]:
            print(f"{what}, at the server's socket: no timed answer found in the capture")
            continue
        print(f"{what}, at the server's socket ({a['requests']} of {timed} answers captured): p50 {a['p50_ms']} ms, "
              f"p90 {a['p90_ms']} ms, p99 {a['p99_ms']} ms, max {a['max_ms']} ms (target p99 < 2 ms, issue #20); "
              f"GET /healthz p50 {f.get('p50_ms')} ms, p99 {f.get('p99_ms')} ms")
print(f"batch of {b['documents']}: {b['total_ms'] / 1000:.2f} s ({b['completed']} completed; target < 3 s) "
      f"= {b['total_ms'] / b['documents']:.1f} ms per document")
print(f"server half over HTTP, seen by the Node client: p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms, max {h['max_ms']} ms "
      f"(targets p99 < 5 ms, issue #7; < 2 ms, issue #20)")
print(f"  floor of this machine in the same run, GET /healthz after each answer: p50 {h['floor_p50_ms']} ms, p99 {h['floor_p99_ms']} ms")
print(f"server half inside medsign (/metrics histogram): mean {h['server_mean_ms']} ms; "
      f"<= 1 ms {h['server_le_1ms']:.1%}, <= 2.5 ms {h['server_le_2_5ms']:.1%}, <= 5 ms {h['server_le_5ms']:.1%}")
at_socket(lines, "server half, client and medsign sharing both cores")
for p in pinned:
    print(f"server half, medsign on its own core: client-observed p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms "
          f"(floor p50 {p['floor_p50_ms']} ms, p99 {p['floor_p99_ms']} ms); inside medsign "
          f"mean {p['server_mean_ms']} ms, <= 1 ms {p['server_le_1ms']:.1%}, <= 5 ms {p['server_le_5ms']:.1%} (target p99 < 5 ms)")
at_socket(pinned_lines, "server half, medsign on its own core")
if ossl:
    print(f"ratio: server-half round trip p50 vs one openssl SM2 signature ({1000 / ossl:.3f} ms): {h['p50_ms'] / (1000 / ossl):.1f}x")
PY
