#!/usr/bin/env bash
# Train the shipped default deblurrer (nafnet-lite on the default kernel-bank domain) on a lent GPU, in one
# short command. The data is ../shared/data's photos plus a few frames of its clips, copied beforehand into
# .devdata/ (images/ and frames/, PNG), because the GPU machine has neither ../shared nor PyAV.
# Prepare it here (the folder is git-ignored; name it in the device tool's carry):
#   cp -r ../shared/data/images .devdata/ && python -c 'from pathlib import Path; from b2b_train.data.io import *
#   [write_image(f".devdata/frames/{c.stem}_{i:04d}.png", im) for c in Path("../shared/data/videos").rglob("*.m[kp][v4]")
#    for i, _t, im in list(iter_video_frames(c, step=12, max_frames=6))[::2]]'
#
#   OUT=gpu_out ITERS=20000 BUDGET_S=420 bash benchmarks/gpu_train_deblurrer.sh
#
# Trains from the current shipped weights with a fresh cosine schedule over ITERS steps, checkpointing every
# ITERS/20 steps. If BUDGET_S runs out first (an H200 did about 13 steps/s at batch 32, 128 px), the newest
# checkpoint's network is exported instead, so a time limit never loses the run. Leaves
# OUT/deblurrer.safetensors (+ .json), OUT/log.csv, OUT/train.log.
# (2026-11-27: a first version sized the run from two short probes whose difference was all start-up; it
# ran out of time before its first checkpoint and returned nothing.)
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-./gpu_out}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
D=.devdata
ITERS="${ITERS:-20000}"
BUDGET_S="${BUDGET_S:-420}"
RUN=/tmp/b2b-gpu-deblurrer
VAL=""
for v in kodak/kodim03.png kodak/kodim07.png kodak/kodim12.png kodak/kodim15.png skimage/chelsea.png sklearn/flower.jpg; do
  VAL="$VAL --val $D/images/$v"
done
timeout "$BUDGET_S" python3 -m b2b_train.cli deblurrer --config shipped --sharp $D/images --sharp $D/frames $VAL \
    --no-progress --out "$RUN" --iters "$ITERS" batch_size=32 data.crop=128 threads=8 log_every=100 seed=3 \
    init=b2b_train/weights/deblurrer-lite.safetensors val_every=$((ITERS / 4)) ckpt_every=$((ITERS / 20)) \
    > "$OUT/train.log" 2>&1
status=$?
tail -5 "$OUT/train.log"
cp "$RUN/log.csv" "$OUT/" 2>/dev/null
if [ -f "$RUN/deblurrer.safetensors" ]; then
  cp "$RUN/deblurrer.safetensors" "$RUN/deblurrer.safetensors.json" "$OUT/"
else
  echo "time limit before the end (status $status): exporting the newest checkpoint"
  python3 - "$RUN" "$OUT" <<'PY'
import sys
from b2b_train.nets.registry import save_network
from b2b_train.nets import build
from b2b_train.trainutil import CheckpointManager
run, out = sys.argv[1], sys.argv[2]
got = CheckpointManager(f"{run}/checkpoints").latest(warn=print)
if got is None:
    sys.exit("no checkpoint was written")
state, meta = got
net = build("nafnet-lite")
net.load_state_dict(state["model"])
save_network(f"{out}/deblurrer.safetensors", net, "nafnet-lite", step=int(state["step"]), partial_run=True)
print("exported step", state["step"])
PY
fi
ls -la "$OUT"
