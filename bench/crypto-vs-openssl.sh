#!/usr/bin/env bash
# medsign crypto vs OpenSSL, one core, in the same run (issue #2 performance targets).
# Usage: bench/crypto-vs-openssl.sh [SECONDS=3]
# Prints a table of sign/s and verify/s for SM2, P-256, RSA-2048 and the two-party SM2
# signature, with the ratio medsign/OpenSSL, and appends nothing anywhere: copy the table into
# docs/BENCHMARKS.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
CORE=${BENCH_CORE:-0}
cargo build --release -q -p medsign-crypto --example speed
ours=$(taskset -c "$CORE" target/release/examples/speed "$SECS")
theirs=$(taskset -c "$CORE" openssl speed -seconds "$SECS" sm2 ecdsap256 rsa2048 2>/dev/null)
o_sm2=$(echo "$theirs" | awk '/SM2/ {print $(NF-1), $NF}')
o_p256=$(echo "$theirs" | awk '/nistp256/ {print $(NF-1), $NF}')
o_rsa=$(echo "$theirs" | awk '/^rsa 2048/ {print $(NF-1), $NF}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  core: $CORE  $(openssl version)"
printf '%-10s %12s %12s %12s %12s %8s %8s\n' alg "sign/s" "verify/s" "ossl sign/s" "ossl ver/s" "sign x" "verify x"
row() {
  local name=$1 key=$2 o=$3
  read -r s v <<<"$(echo "$ours" | awk -v k="$key" '$1 == k {print $2, $3}')"
  read -r os ov <<<"$o"
  printf '%-10s %12.0f %12.0f %12.0f %12.0f %8s %8s\n' "$name" "$s" "$v" "$os" "$ov" "$(ratio "$s" "$os")" "$(ratio "$v" "$ov")"
}
row SM2 sm2 "$o_sm2"
row sm2-crate sm2-crate "$o_sm2"
row P-256 p256 "$o_p256"
row RSA-2048 rsa2048 "$o_rsa"
read -r tp _ <<<"$(echo "$ours" | awk '$1 == "sm2-2p" {print $2, $3}')"
read -r sh _ <<<"$(echo "$ours" | awk '$1 == "sm2-2p-server-half" {print $2, $3}')"
printf '%-10s %12.0f %12s   (both halves, one process; server half alone: %.0f/s)\n' "SM2 2-party" "$tp" "-" "$sh"
