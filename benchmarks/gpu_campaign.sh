#!/usr/bin/env bash
# One lent-GPU run that trains everything, in at most about 9 minutes (a loan is 15, a start costs 1-2).
# Prepare here, once per campaign (one command; the folder is git-ignored, about 41 MiB):
#   python benchmarks/prepare_campaign.py [--resume gpu_back/mid/deblurrer.safetensors]
# then: device run, carry [".devdata"], command `OUT=$OUT bash benchmarks/gpu_campaign.sh`.
# Stages, one after the other (the GPU is never shared; 2026-11-27: eight processes at once all stalled):
#   0. speed (SPEED_S, default 70 s): benchmarks/train_speed.py, old vs new data path, JSON;
#   1. the shipped lite deblurrer's next stage (LITE_S, default 140 s) from b2b_train/weights/deblurrer-lite;
#   2. the GPU-grade deblurrer nafnet-mid (MID_S, default 180 s) from .devdata/resume/ (else from scratch);
#   3. translator experiments (SWEEP_S, default 100 s; benchmarks/translator_sweep.py, VARIANTS below) on
#      the quality benchmark's unknown camera (.devdata/cam/B, S); SWEEP_S=0 skips them.
# Each deblurrer stage exports its newest checkpoint when its time runs out, and is scored on held-apart
# photos against the file it started from (benchmarks/gate_deblurrer.py, gate.json in its tar) before it
# may replace anything; back here, rerun the gate and benchmarks/deblurrer.py before copying a file into
# b2b_train/weights/ (b2b_train/weights/README.md says how). Everything comes back as at most 5 files
# under $OUT (the device tool returns at most 8, 16 MiB each): speed.json, lite.tar, mid.tar, sweep.tar,
# campaign.log. Test it anywhere with tiny budgets: DEVICE=cpu SMOKE=1 OUT=/tmp/c bash benchmarks/gpu_campaign.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-auto}"
W=/tmp/b2b-gpu-campaign
rm -rf "$W" && mkdir -p "$W"
exec > >(tee "$OUT/campaign.log") 2>&1
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
[ -d .devdata/images ] || { echo "no .devdata: run python benchmarks/prepare_campaign.py here and carry .devdata"; exit 2; }
if [ "${SMOKE:-0}" = 1 ]; then  # every stage for a few steps: the script's own test
  SPEED_ARGS="--only deblurrer-lite --steps 1 --rounds 1 --batch 2"; LITE="ITERS=6 BATCH=2 CROP=96"
  MID="ITERS=4 BATCH=2 CROP=96"; SWEEP="--iters 4 --set data.batch=2"
else
  SPEED_ARGS="${SPEED_ARGS:---steps 20 --rounds 2}"; LITE="ITERS=${LITE_ITERS:-3000}"; MID="ITERS=${MID_ITERS:-3000}"
  SWEEP="--iters ${SWEEP_ITERS:-1000}"
fi

el "0. training speed, old vs new path"
timeout "${SPEED_S:-70}" python3 benchmarks/train_speed.py --images .devdata/images --cam .devdata/cam \
    --device "$DEVICE" $SPEED_ARGS --json "$OUT/speed.json" > "$W/speed.out" 2>&1
el "speed exit $?"; grep -E "crops/s" "$W/speed.out" || tail -3 "$W/speed.out"

stage() {  # stage NAME NET BUDGET REFERENCE SETTINGS...
  local name=$1 net=$2 budget=$3 ref=$4; shift 4
  el "deblurrer stage $name ($net, $budget s)"
  env "$@" OUT="$W/$name" NET="$net" BUDGET_S="$budget" DEVICE="$DEVICE" RUN="$W/run-$name" \
      bash benchmarks/gpu_train_deblurrer.sh > "$W/$name.out" 2>&1
  el "$name exit $?"; tail -3 "$W/$name.out"
  if [ -f "$W/$name/deblurrer.safetensors" ]; then
    python3 - "$W/$name/deblurrer.safetensors" <<'PY'
import sys
from b2b_train.deblur_trainer import export_weights
p = sys.argv[1]
export_weights(p, p, fp16=True)  # half the size: a mid-size file must fit the 16 MiB a returned file may have
PY
    local refarg=""; [ -f "$ref" ] && refarg="--reference $ref"
    python3 benchmarks/gate_deblurrer.py --candidate "$W/$name/deblurrer.safetensors" $refarg \
        --images .devdata/images --device "$DEVICE" > "$W/$name/gate.json"
    el "$name gate exit $? (0 = better than the file it started from): $(cat "$W/$name/gate.json")"
  fi
  cp "$W/$name.out" "$W/$name/" 2>/dev/null
  tar -C "$W" -cf "$OUT/$name.tar" "$name"
}
stage lite nafnet-lite "${LITE_S:-140}" b2b_train/weights/deblurrer-lite.safetensors $LITE
stage mid nafnet-mid "${MID_S:-180}" .devdata/resume/deblurrer-mid.safetensors $MID

if [ "${SWEEP_S:-100}" = 0 ]; then el "3. translator experiments skipped (SWEEP_S=0)"; ls -la "$OUT"; el "done"; exit 0; fi
el "3. translator experiments"
VARIANTS=(--variant base --variant "rec4:loss.lambda_rec=4" --variant "smooth:model.generator_kwargs={zero_init_output: true, smooth_upsample_init: true}")
timeout $(( ${SWEEP_S:-100} + 30 )) python3 benchmarks/translator_sweep.py train --blurry .devdata/cam/B --sharp .devdata/cam/S \
    --work "$W/sweep" --config cpu-quick $SWEEP --limit "${SWEEP_S:-100}" --parallel 1 --threads 4 \
    --device "$DEVICE" "${VARIANTS[@]}" > "$W/sweep.out" 2>&1
el "sweep exit $?"; grep "\[sweep\]" "$W/sweep.out" | tail -5
(cd "$W" && tar -cf "$OUT/sweep.tar" sweep.out $(cd "$W" && ls -d sweep/*/translator.safetensors* sweep/*/*.csv \
    sweep/*/*.json sweep/*/train.log sweep/*/command.txt sweep/train_status.json 2>/dev/null))
ls -la "$OUT"
el "done"
