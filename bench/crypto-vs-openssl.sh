#!/usr/bin/env bash
# medsign crypto vs OpenSSL, one core, interleaved in the same run (issues #2 and #20).
# Usage: bench/crypto-vs-openssl.sh [SECONDS=2] [ROUNDS=3]
# Each round runs medsign's `speed` example, then `openssl speed`, on the same core; the table
# gives the median of the rounds for sign/s and verify/s of SM2, P-256 and RSA-2048, the ratio
# medsign/OpenSSL, the ratio of our SM2 to our P-256 (issue #20, goal 2), and the two-party SM2
# signature. Appends nothing anywhere: copy the table into docs/BENCHMARKS.md with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-2}
ROUNDS=${2:-3}
CORE=${BENCH_CORE:-0}
cargo build --release -q -p medsign-crypto --example speed
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  taskset -c "$CORE" target/release/examples/speed "$SECS" >"$out/ours.$r"
  taskset -c "$CORE" openssl speed -seconds "$SECS" sm2 ecdsap256 rsa2048 2>/dev/null >"$out/theirs.$r"
  echo "round $r/$ROUNDS done" >&2
done
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ours KEY COLUMN (2 = sign/s, 3 = verify/s)
ours() { cat "$out"/ours.* | awk -v k="$1" -v c="$2" '$1 == k { print $c }' | median; }
# theirs PATTERN COLUMN-FROM-END (1 = verify/s, 0 = sign/s)
theirs() { cat "$out"/theirs.* | awk -v p="$1" -v c="$2" '$0 ~ p { print $(NF - c) }' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  core: $CORE  rounds: $ROUNDS x ${SECS}s  $(openssl version)"
printf '%-10s %12s %12s %12s %12s %8s %8s\n' alg "sign/s" "verify/s" "ossl sign/s" "ossl ver/s" "sign x" "verify x"
row() {
  local name=$1 key=$2 pat=$3
  local s v os ov
  s=$(ours "$key" 2) v=$(ours "$key" 3) os=$(theirs "$pat" 1) ov=$(theirs "$pat" 0)
  printf '%-10s %12.0f %12.0f %12.0f %12.0f %8s %8s\n' "$name" "$s" "$v" "$os" "$ov" "$(ratio "$s" "$os")" "$(ratio "$v" "$ov")"
}
row SM2 sm2 'SM2'
row sm2-crate sm2-crate 'SM2'
row P-256 p256 'nistp256'
row RSA-2048 rsa2048 '^rsa 2048'
printf 'SM2 / our P-256 (goal 2: sign >= 1.0, verify >= 0.8): sign %s, verify %s\n' \
  "$(ratio "$(ours sm2 2)" "$(ours p256 2)")" "$(ratio "$(ours sm2 3)" "$(ours p256 3)")"
printf 'SM2 two-party: %.0f signatures/s (both halves, one process); server half alone %.0f/s\n' \
  "$(ours sm2-2p 2)" "$(ours sm2-2p-server-half 2)"
