#!/usr/bin/env bash
# One GPU check in under 8 minutes: bf16 train-step images/s and model FLOP utilisation
# (diffae-64, vertebra-96), decode throughput at 30 and 100 steps, LSD-EBM full-chain
# reconstruction per 128^3 sample, an LDM train step; writes one JSON (see gpu_check.py).
#
#   benchmarks/gpu_check.sh --out gpu_check.json [--peak-tflops 989] [--compile]
#   benchmarks/gpu_check.sh --dry-run --out /tmp/dry.json     # tiny sizes on the CPU (the test suite runs it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
