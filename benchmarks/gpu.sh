#!/usr/bin/env bash
# The GPU check, in one command, for a lent NVIDIA machine (H100/H200): CUDA, then the fused engine's
# speed with every available backend at 1280x720, in under 5 minutes. Needs only the CUDA build of
# torch, numpy, safetensors and pyyaml; the repository is put on PYTHONPATH (no install, no internet).
# Results: $OUT/gpu_check.{json,md} and $OUT/gpu_check.log ($OUT defaults to ./gpu_out).
#
#   bash benchmarks/gpu.sh                       # full check (about 4-5 min)
#   bash benchmarks/gpu.sh --only quick          # eager / fp16 / channels-last / CUDA graph only (~1 min)
#   B2B_GPU_LITE=1 bash benchmarks/gpu.sh        # then also the deblurrer alone (--translator none: the shape
#                                                # of a --lite, distilled engine), quick variants, ~1 min more
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/b2b-inductor-cache}"
PY="${PYTHON:-python3}"
{ nvidia-smi || echo "nvidia-smi not available"; } > "$OUT/nvidia-smi.txt" 2>&1
"$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
timeout 295 "$PY" benchmarks/gpu_check.py --budget "${B2B_GPU_BUDGET:-270}" --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
status=${PIPESTATUS[0]}
if [ "${B2B_GPU_LITE:-0}" = "1" ]; then
  mkdir -p "$OUT/lite"
  timeout 100 "$PY" benchmarks/gpu_check.py --translator none --only quick --budget 80 --out "$OUT/lite" 2>&1 | tee "$OUT/lite/gpu_check.log"
fi
echo "gpu_check exit status: $status"
exit "$status"
