#!/usr/bin/env bash
# Train a deblurrer stage on a lent GPU (or any machine), in one short command, on the batched data path.
# The data is .devdata/ as benchmarks/prepare_campaign.py writes it (the GPU machine has neither ../shared
# nor PyAV; name .devdata in the device tool's carry):
#
#   OUT=gpu_out NET=nafnet-lite ITERS=20000 BUDGET_S=420 bash benchmarks/gpu_train_deblurrer.sh
#
# NET: nafnet-lite (default; starts from the shipped file) or nafnet-mid (the GPU-grade class; starts from
# .devdata/resume/deblurrer-mid.safetensors when an earlier run brought one back, else from scratch).
# INIT overrides the start ("none" = from scratch); BATCH, CROP, SEED, DEVICE, CONFIG as named; EXTRA adds
# KEY=VALUE overrides. A fresh cosine schedule runs over ITERS steps, checkpointing every ITERS/20. If
# BUDGET_S runs out first, the newest checkpoint's network is exported instead, so a time limit never loses
# the run. Leaves OUT/deblurrer.safetensors (+ .json), OUT/log.csv, OUT/train.log.
# (2026-11-27: a first version sized the run from two short probes whose difference was all start-up; it
# ran out of time before its first checkpoint and returned nothing.)
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-./gpu_out}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
D="${DEVDATA:-.devdata}"
NET="${NET:-nafnet-lite}"
ITERS="${ITERS:-20000}"
BUDGET_S="${BUDGET_S:-420}"
DEVICE="${DEVICE:-auto}"
RUN="${RUN:-/tmp/b2b-gpu-$NET}"
if [ "$NET" = nafnet-lite ]; then
  INIT="${INIT:-b2b_train/weights/deblurrer-lite.safetensors}"; BATCH="${BATCH:-64}"; CROP="${CROP:-128}"
else
  INIT="${INIT:-$D/resume/deblurrer-mid.safetensors}"; BATCH="${BATCH:-32}"; CROP="${CROP:-256}"
  [ -f "$INIT" ] || INIT=none
fi
INIT_ARG="init=$INIT"; [ "$INIT" = none ] && INIT_ARG="init=null"
VAL=""
for v in kodak/kodim03 kodak/kodim07 kodak/kodim12 kodak/kodim15 skimage/chelsea sklearn/flower; do
  f=$(ls "$D"/images/$v.* 2>/dev/null | head -1)
  [ -n "$f" ] && VAL="$VAL --val $f"
done
echo "training $NET from $INIT: $ITERS steps of batch $BATCH at $CROP px, $BUDGET_S s at most"
rm -rf "$RUN"
timeout "$BUDGET_S" python3 -m b2b_train.cli deblurrer --config "${CONFIG:-shipped}" --sharp "$D/images" --sharp "$D/frames" $VAL \
    --no-progress --out "$RUN" --iters "$ITERS" net="$NET" batch_size="$BATCH" data.crop="$CROP" threads=8 \
    log_every=100 seed="${SEED:-3}" "$INIT_ARG" device="$DEVICE" val_every=$((ITERS / 4)) ckpt_every=$((ITERS / 20 > 0 ? ITERS / 20 : 1)) \
    ${EXTRA:-} > "$OUT/train.log" 2>&1
status=$?
tail -5 "$OUT/train.log"
cp "$RUN/log.csv" "$OUT/" 2>/dev/null
if [ -f "$RUN/deblurrer.safetensors" ]; then
  cp "$RUN/deblurrer.safetensors" "$RUN/deblurrer.safetensors.json" "$OUT/"
else
  echo "time limit before the end (status $status): exporting the newest checkpoint"
  python3 - "$RUN" "$OUT" "$NET" <<'PY'
import sys
from b2b_train.nets.registry import save_network
from b2b_train.nets import build
from b2b_train.trainutil import CheckpointManager
run, out, name = sys.argv[1:4]
got = CheckpointManager(f"{run}/checkpoints").latest(warn=print)
if got is None:
    sys.exit("no checkpoint was written")
state, meta = got
net = build(name)
net.load_state_dict(state["model"])
save_network(f"{out}/deblurrer.safetensors", net, name, step=int(state["step"]), partial_run=True,
             config=meta.get("config"))
print("exported step", state["step"])
PY
fi
ls -la "$OUT"
