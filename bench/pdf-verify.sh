#!/usr/bin/env bash
# PDF verification speed (issue #16): files/s for a 3-signature prescription and a 100-page report
# (RSA, PAdES B-T), medsign's engine beside pyHanko's validator (the engine behind `pyhanko sign
# validate`) in interleaved rounds, each in its own process with its start not counted.
# Needs the pyHanko venv that scripts/test installs. Usage: bench/pdf-verify.sh [ROUNDS=5] [SECONDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
export MEDSIGN_TEST_PYTHON=${MEDSIGN_TEST_PYTHON:-$HOME/.cache/medsign-test-tools/venv/bin/python3}
cargo run -q --release -p medsign-pdf --example verify_bench -- "${1:-5}" "${2:-3}"
