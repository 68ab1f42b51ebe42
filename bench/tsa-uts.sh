#!/usr/bin/env bash
# Issue #20, goal 1: medsign's TSA beside uts-server v0.2.2 (C, OpenSSL, civetweb v1.16) in the same
# run, interleaved pairs, wrk with keep-alive on both, medians printed with their ratio:
#   RSA-2048 tokens/s at 8 and at 32 connections (goal ≥ 1.3×, p99 no worse than uts-server's),
#   medsign /tsa/p256 against uts-server with a P-256 key (goal ≥ 1.0×),
#   medsign /tsa/sm2 against uts-server with a P-256 key (goal ≥ 1.0×; uts-server cannot do SM2).
# Then, without a goal, /tsa/p256 and uts-server with a different imprint in every request (as real
# documents have), and what this machine can sign with RSA-2048 on every core, beside 1.3× uts-server.
# medsign records every token in its database (SQLite, the default install) before it answers;
# uts-server records nothing.
#
# uts-server is not packaged for Debian. The script builds it (gcc, libssl-dev) from its source and
# civetweb's, each given as a checkout or a bare git directory (the tag is read from it):
#   UTS_SERVER_SRC=…/uts-server (tag 0.2.2)  CIVETWEB_SRC=…/civetweb (tag v1.16)
# or takes a built binary: UTS_SERVER_BIN=…/uts-server. Without either it says so and stops.
# Usage: bench/tsa-uts.sh [SECONDS=8] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}; ROUNDS=${2:-3}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
[ -x /usr/sbin/chronyd ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chrony >/dev/null; }
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -s "$WORK/chrony.pid" ] && kill "$(cat "$WORK/chrony.pid")"; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------- uts-server
export_tree() { # src-dir-or-git-dir tag dest [paths...]: the files of `tag` (or a plain checkout) into dest
  local src=$1 tag=$2 dest=$3; shift 3
  mkdir -p "$dest"
  if [ -d "$src/objects" ] || [ -d "$src/.git" ]; then
    local g=$src; [ -d "$src/.git" ] && g=$src/.git
    # file by file: a mirror may lack large objects the build does not need
    git --git-dir "$g" ls-tree -r --name-only "$tag" -- "$@" | while read -r f; do
      mkdir -p "$dest/$(dirname "$f")"
      git --git-dir "$g" show "$tag:$f" > "$dest/$f" 2>/dev/null || rm -f "$dest/$f"
    done
  else
    for p in "$@"; do cp -r "$src/$p" "$dest/"; done
  fi
}
UTS=${UTS_SERVER_BIN:-}
if [ -z "$UTS" ]; then
  if [ -z "${UTS_SERVER_SRC:-}" ] || [ -z "${CIVETWEB_SRC:-}" ]; then
    echo "uts-server 不可用：请设置 UTS_SERVER_SRC 与 CIVETWEB_SRC（源码目录或 git 目录），或 UTS_SERVER_BIN"
    echo "uts-server is absent: set UTS_SERVER_SRC and CIVETWEB_SRC (checkouts or git directories), or UTS_SERVER_BIN"
    exit 2
  fi
  export_tree "$UTS_SERVER_SRC" 0.2.2 "$WORK/uts" inc src
  export_tree "$CIVETWEB_SRC" v1.16 "$WORK/civetweb" include src/civetweb.c src/handle_form.inl src/md5.inl \
    src/sha1.inl src/response.inl src/sort.inl src/match.inl src/timer.inl src/openssl_dl.inl src/http2.inl \
    src/wolfssl_extras.inl src/mod_zlib.inl src/mod_http2.inl src/hpack_tables.h src/mod_lua.inl \
    src/mod_duktape.inl src/mod_mbedtls.inl src/mod_gnutls.inl src/mod_lua_shared.inl
  gcc -O2 -std=c11 -D_DEFAULT_SOURCE -D_XOPEN_SOURCE=700 -DUTS_VERSION='"0.2.2"' -DNO_SSL_DL -DOPENSSL_API_3_0 \
    -DUSE_IPV6 -I"$WORK/uts/inc" -I"$WORK/civetweb/include" "$WORK/uts/src/cmd/uts-server.c" "$WORK"/uts/src/lib/*.c \
    "$WORK/civetweb/src/civetweb.c" -o "$WORK/uts-server" -lssl -lcrypto -lpthread -ldl
  UTS=$WORK/uts-server
fi
echo "uts-server: $("$UTS" -V 2>&1 | head -1)"

# its PKI: a CA, an RSA-2048 and a P-256 TSA certificate (critical timeStamping, as RFC 3161 asks)
cd "$WORK"
mkdir -p pki
openssl req -x509 -newkey rsa:2048 -nodes -keyout pki/ca.key -out pki/ca.pem -days 30 -subj "/CN=bench CA" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=critical,timeStamping\n' > pki/tsa.ext
for k in rsa p256; do
  case $k in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pki/$k.key 2>/dev/null ;;
    p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out pki/$k.key 2>/dev/null ;;
  esac
  openssl req -new -key pki/$k.key -subj "/CN=bench TSA $k" -out pki/$k.csr 2>/dev/null
  openssl x509 -req -in pki/$k.csr -CA pki/ca.pem -CAkey pki/ca.key -CAcreateserial -days 30 -extfile pki/tsa.ext -out pki/$k.pem 2>/dev/null
done
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A UPORT
for k in rsa p256; do
  UPORT[$k]=$(free_port)
  cat > uts-$k.cnf <<EOF
oid_section = oids
[ oids ]
tsa_policy1 = 1.2.3.4.1
[ main ]
listening_ports = 127.0.0.1:${UPORT[$k]}
enable_keep_alive = yes
tcp_nodelay = 1
num_threads = 50
request_timeout_ms = 30000
log_level = err
log_to_syslog = no
log_to_stdout = no
[ tsa ]
signer_cert = $WORK/pki/$k.pem
certs = $WORK/pki/ca.pem
signer_key = $WORK/pki/$k.key
default_policy = tsa_policy1
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
EOF
  "$UTS" -c "$WORK/uts-$k.cnf" > "uts-$k.log" 2>&1 &
  PIDS+=($!)
done

# ---------------------------------------------------------------- medsign
cd - >/dev/null
cargo build --release -q -p medsign
BIN=$PWD/target/release/medsign
cd "$WORK"
NTPPORT=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'port %s\nbindaddress 127.0.0.1\nallow 127.0.0.1\ncmdport 0\nlocal stratum 3\npidfile %s/chrony.pid\n' "$NTPPORT" "$WORK" > chrony.conf
/usr/sbin/chronyd -x -u root -f "$WORK/chrony.conf" -L 0 -l "$WORK/chrony.log"
start_medsign() {
  # emptied here, not only by the redirection in the child: a restart must not read the last start's address
  : > serve.log
  MEDSIGN_SERVER_PUBLIC_RATE_PER_MINUTE=0 MEDSIGN_TIME_SOURCES=127.0.0.1:$NTPPORT "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" 2> serve.log &
  MPID=$!
  PIDS+=($MPID)
  for _ in $(seq 1 100); do grep -q "listening on" serve.log && break; sleep 0.1; done
  ADDR=$(awk '/listening on/ {print $3}' serve.log)
  for _ in $(seq 1 50); do curl -s "http://$ADDR/readyz" | grep -q '"INSYNC"' && break; sleep 0.2; done
}
# goal 5: medsign's memory idle — 3 s after it is ready, on the first start (which creates the keys,
# the certificates and the database) and after a restart (what an installation runs as) — and its
# peak under the load, printed at the end
rss() { awk -v k="$1" '$1 == k":" {printf "%.1f MB", $2 / 1024}' "/proc/$MPID/status"; }
start_medsign
sleep 3
FIRST_RSS=$(rss VmRSS)
kill -TERM "$MPID"
wait "$MPID" || true
unset 'PIDS[-1]'
start_medsign
sleep 3
IDLE_RSS=$(rss VmRSS)

head -c 1000 /dev/urandom > data.bin
openssl ts -query -data data.bin -sm3 -cert -out sm3.tsq 2>/dev/null
openssl ts -query -data data.bin -sha256 -cert -out sha256.tsq 2>/dev/null
# every server answers a granted, verifiable token before it is measured
check() { # url query-file
  curl -s -H 'Content-Type: application/timestamp-query' --data-binary @"$2" "$1" -o check.tsr
  openssl ts -reply -in check.tsr -text 2>/dev/null | grep -q "Status: Granted." || { echo "no token from $1"; exit 1; }
}
check "http://$ADDR/tsa/rsa" sha256.tsq; check "http://$ADDR/tsa/p256" sha256.tsq; check "http://$ADDR/tsa/sm2" sm3.tsq
check "http://127.0.0.1:${UPORT[rsa]}/" sha256.tsq; check "http://127.0.0.1:${UPORT[p256]}/" sha256.tsq
openssl ts -verify -in check.tsr -queryfile sha256.tsq -CAfile pki/ca.pem 2>/dev/null | grep -q OK || { echo "uts-server P-256 token does not verify"; exit 1; }
cat > post.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/timestamp-query"
local f = io.open(os.getenv("TSQ"), "rb"); local body = f:read("*all"); f:close()
wrk.body = body
-- DISTINCT=1: the first 8 bytes of the imprint random in each request, as real documents' digests
-- are (the rest of the query as it was: the servers parse and sign the same sizes)
if os.getenv("DISTINCT") == "1" then
  local at = body:find("\4\32", 1, true) + 2
  local head, tail = body:sub(1, at - 1), body:sub(at + 8)
  -- another sequence in every run and round: a repeated one would find its index pages cached
  math.randomseed(os.time() * 1000 + tonumber(os.getenv("SEED") or "0"))
  local r = math.random
  request = function()
    return wrk.format(nil, nil, nil, head .. string.char(r(0, 255), r(0, 255), r(0, 255), r(0, 255),
      r(0, 255), r(0, 255), r(0, 255), r(0, 255)) .. tail)
  end
end
LUA
# one wrk run → "tokens/s p99_ms"
measure() { # url query-file connections [distinct]
  DISTINCT=${4:-0} SEED=$RANDOM TSQ=$2 wrk -t1 -c"$3" -d"${SECS}s" --latency -s post.lua "$1" > wrk.out
  if grep -q "Non-2xx" wrk.out; then echo "errors from $1:"; cat wrk.out; exit 1; fi
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' wrk.out)
  p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; print v}' wrk.out)
  echo "$rps $p99"
}
# comparisons: name medsign-url medsign-query uts-url connections [distinct imprints: 1]
COMPARE=(
  "rsa-8 http://$ADDR/tsa/rsa sha256.tsq http://127.0.0.1:${UPORT[rsa]}/ 8"
  "rsa-32 http://$ADDR/tsa/rsa sha256.tsq http://127.0.0.1:${UPORT[rsa]}/ 32"
  "p256-8 http://$ADDR/tsa/p256 sha256.tsq http://127.0.0.1:${UPORT[p256]}/ 8"
  "p256-32 http://$ADDR/tsa/p256 sha256.tsq http://127.0.0.1:${UPORT[p256]}/ 32"
  "sm2-vs-p256-8 http://$ADDR/tsa/sm2 sm3.tsq http://127.0.0.1:${UPORT[p256]}/ 8"
  "sm2-vs-p256-32 http://$ADDR/tsa/sm2 sm3.tsq http://127.0.0.1:${UPORT[p256]}/ 32"
  # no goal: every request with an imprint of its own, which lands at a random place in medsign's
  # imprint index (uts-server keeps none); printed beside the goals' rows
  "p256-distinct-8 http://$ADDR/tsa/p256 sha256.tsq http://127.0.0.1:${UPORT[p256]}/ 8 1"
)
: > results.txt
for r in $(seq 1 "$ROUNDS"); do
  for c in "${COMPARE[@]}"; do
    read -r name murl mq uurl conns distinct <<< "$c"
    # alternate who goes first, round by round
    if [ $((r % 2)) = 1 ]; then
      m=$(measure "$murl" "$mq" "$conns" "$distinct"); u=$(measure "$uurl" sha256.tsq "$conns" "$distinct")
    else
      u=$(measure "$uurl" sha256.tsq "$conns" "$distinct"); m=$(measure "$murl" "$mq" "$conns" "$distinct")
    fi
    # a server that stopped answering (uts-server v0.2.2 has been seen to crash under the RSA load)
    # leaves a measurement without its two numbers: say which, rather than fail at the summary
    if [ "$(wc -w <<< "$m")" != 2 ] || [ "$(wc -w <<< "$u")" != 2 ]; then
      echo "$name, round $r: a server stopped answering (medsign: '$m', uts-server: '$u')"
      for l in serve.log uts-*.log; do echo "--- $l"; tail -n 5 "$l"; done
      exit 1
    fi
    echo "$name $r $m $u" | tee -a results.txt
  done
done
TOKENS=$(sqlite3 "$WORK/data/medsign.db" "SELECT COUNT(*) FROM timestamps" 2>/dev/null || echo "?")
echo "medsign RSS idle: $FIRST_RSS on the first start, $IDLE_RSS after a restart (goal < 30 MB)"
echo "medsign RSS under the load: peak $(rss VmHWM), now $(rss VmRSS) (goal < 150 MB)"
echo
echo "== medians of $ROUNDS interleaved rounds, ${SECS}s each (medsign recorded $TOKENS tokens; uts-server none)"
printf '%-16s %12s %10s %12s %10s %8s %s\n' comparison medsign/s p99_ms uts-server/s p99_ms ratio goal
python3 - "$WORK/results.txt" <<'PY'
import sys, statistics as st
rows = {}
for l in open(sys.argv[1]):
    n, _, mr, mp, ur, up = l.split()
    rows.setdefault(n, []).append(tuple(map(float, (mr, mp, ur, up))))
goals = {"rsa": 1.3, "p256": 1.0, "sm2-vs-p256": 1.0}
for n, v in rows.items():
    mr, mp, ur, up = (st.median(x[i] for x in v) for i in range(4))
    ratios = [x[0] / x[2] for x in v]
    g = goals.get(n.rsplit("-", 1)[0])
    if g is None:
        print(f"{n:16} {mr:12.0f} {mp:10.2f} {ur:12.0f} {up:10.2f} {st.median(ratios):7.2f}× (no goal)")
        continue
    ok = st.median(ratios) >= g and (not n.startswith("rsa") or mp <= up)
    print(f"{n:16} {mr:12.0f} {mp:10.2f} {ur:12.0f} {up:10.2f} {st.median(ratios):7.2f}× ≥{g}{' p99≤' if n.startswith('rsa') else ''} {'✔' if ok else '✘'}")
PY
# goal 1's RSA row against what this machine can sign at all: every core making RSA-2048 signatures and
# nothing else (OpenSSL; aws-lc, which medsign signs with, reads within a few per cent of it on one core).
# A token is one signature, so no TSA here issues more RSA tokens per second than this.
CEIL=$(openssl speed -multi "$(nproc)" -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $(NF-1)}')
python3 - "$WORK/results.txt" "${CEIL:-0}" <<'PY'
import sys, statistics as st
ceil = float(sys.argv[2])
uts = [float(l.split()[4]) for l in open(sys.argv[1]) if l.startswith("rsa-")]
if ceil and uts:
    need = 1.3 * st.median(uts)
    left = ("more than this machine can sign" if need >= ceil else
            f"leaving {1 - need / ceil:.0%} of the cores for all the rest: HTTP, the record, the load generator")
    print(f"RSA-2048 on every core, signing only: {ceil:,.0f}/s; 1.3× uts-server's median RSA rate: {need:,.0f}/s"
          f" = {need / ceil:.0%} of it, {left}")
PY
