#!/usr/bin/env bash
# Train the shipped default deblurrer (nafnet-lite on the default kernel-bank domain) on a lent GPU, in one
# short command. The data is ../shared/data's photos plus a few frames of its clips, copied beforehand into
# .devdata/ (images/ and frames/, PNG), because the GPU machine has neither ../shared nor PyAV.
#
#   OUT=gpu_out BUDGET_S=210 bash benchmarks/gpu_train_deblurrer.sh
#
# It times a short probe, sizes the run to fit BUDGET_S seconds of training, trains from the current
# shipped weights with a fresh cosine schedule, and leaves OUT/deblurrer.safetensors (+ .json, log, loss plot).
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-./gpu_out}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
D=.devdata
BUDGET_S="${BUDGET_S:-210}"
VAL=""
for v in kodak/kodim03.png kodak/kodim07.png kodak/kodim12.png kodak/kodim15.png skimage/chelsea.png sklearn/flower.jpg; do
  VAL="$VAL --val $D/images/$v"
done
ARGS="--config shipped --sharp $D/images --sharp $D/frames $VAL --no-progress"
SET="batch_size=32 data.crop=128 threads=8 log_every=50 init=b2b_train/weights/deblurrer-lite.safetensors"
t0=$(date +%s.%N)
python3 -m b2b_train.cli deblurrer $ARGS --out /tmp/probe20 --iters 20 $SET val_every=100000 ckpt_every=100000 > "$OUT/probe.log" 2>&1 || { tail -30 "$OUT/probe.log"; exit 1; }
t1=$(date +%s.%N)
python3 -m b2b_train.cli deblurrer $ARGS --out /tmp/probe120 --iters 120 $SET val_every=100000 ckpt_every=100000 >> "$OUT/probe.log" 2>&1 || { tail -30 "$OUT/probe.log"; exit 1; }
t2=$(date +%s.%N)
ITERS=$(python3 -c "a=$t1-$t0; b=$t2-$t1; per=max(1e-3,(b-a)/100); print(int(max(200, min(40000, ($BUDGET_S - a) / per))) // 100 * 100)")
echo "probe: 20 iters $(python3 -c "print(round($t1-$t0,1))") s, 120 iters $(python3 -c "print(round($t2-$t1,1))") s -> $ITERS iterations"
timeout $((BUDGET_S + 120)) python3 -m b2b_train.cli deblurrer $ARGS --out /tmp/gpurun --iters "$ITERS" $SET seed=2 \
    val_every=$((ITERS / 4)) ckpt_every=$((ITERS / 4)) > "$OUT/train.log" 2>&1
status=$?
tail -15 "$OUT/train.log"
cp /tmp/gpurun/deblurrer.safetensors /tmp/gpurun/deblurrer.safetensors.json /tmp/gpurun/log.csv /tmp/gpurun/loss.png "$OUT/" 2>/dev/null
ls -la "$OUT"
exit $status
