#!/usr/bin/env bash
# The Flower comparison in its own virtual environment (Flower's simulation engine pulls Ray and gRPC,
# which hffm itself does not need):
#
#     benchmarks/flower_venv.sh [benchmarks/flower.py options]
#
# Creates $FLOWER_VENV (default /tmp/hffm-flower-venv) with torch 2.13.0 CPU (as hffm's .venv), hffm and
# flwr[simulation], then runs benchmarks/flower.py in it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FLOWER_VENV:-/tmp/hffm-flower-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -c constraints.txt torch==2.13.0
    "$VENV/bin/pip" install --quiet -c constraints.txt -e . "flwr[simulation]==1.42.0"
fi
exec "$VENV/bin/python" benchmarks/flower.py "$@"
