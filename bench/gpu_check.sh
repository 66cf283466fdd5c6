#!/usr/bin/env bash
# The one-shot device check (bench/gpu_check.py): runs from the source tree, nothing installed, synthetic
# data only, <= 5 minutes (--cpu-smoke: tiny sizes on a CPU, <= 60 s). Writes gpu_check.json and
# gpu_check.md under $OUT (a new temp dir when OUT is unset).
#   OUT=/tmp/check bench/gpu_check.sh [--cpu-smoke] [--budget S] [--sections env,train_fastnet,...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# the device may lack a writable home: cifarb's cache goes to a temp dir, removed at the end
if [[ -z "${CIFARB_CACHE:-}" ]]; then
  CIFARB_CACHE="$(mktemp -d -t cifarb-cache-XXXXXX)"
  export CIFARB_CACHE
  trap 'rm -rf "$CIFARB_CACHE"' EXIT
fi
if [[ -n "${OUT:-}" ]]; then mkdir -p "$OUT"; fi
"${PYTHON:-python}" "$here/bench/gpu_check.py" ${OUT:+--out "$OUT"} "$@"
