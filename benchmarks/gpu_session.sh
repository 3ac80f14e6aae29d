#!/usr/bin/env bash
# One lent-GPU session in one command (about 9 minutes), for loans of 15 minutes that leave no time
# for a second start. Three steps, one after the other (the GPU is never shared):
#   1. speed (CHECK_S, default 170 s): benchmarks/gpu.sh on the eager/fp16/CUDA-graph variants and
#      torch.compile reduce-overhead, each timed end to end, pipelined (two frames in flight) and on the device;
#   2. the shipped deblurrer's next training stage (DEB_S, default 200 s; benchmarks/gpu_train_deblurrer.sh,
#      DEB_ITERS steps: an H200 alone does about 14 steps/s at batch 32, 128 px);
#   3. a translator sweep (SWEEP_S, default 150 s; benchmarks/translator_sweep.py train --parallel 1, the
#      VARIANTS below in order, cpu-quick preset, SWEEP_ITERS steps) on the quality benchmark's unknown
#      camera (B and S frames, lossless WebP, in .devdata/cam/). A run cut by the limit keeps its newest
#      checkpoint's generator.
# (2026-11-27: the first version ran the deblurrer and seven translator processes at once on one H200; none
# of the eight reached its 100th step in 330 s, where the deblurrer alone does 2400 steps in 170 s. Keep
# one training process on the GPU at a time.)
# Everything comes back as at most five files under $OUT (the device tool returns at most 8):
# check.tar, deblurrer.tar, sweep_a.tar, sweep_b.tar, session.log.
#
# Prepare here: .devdata/images, .devdata/frames (see gpu_train_deblurrer.sh) and .devdata/cam/{B,S}
# (the B and S folders of `benchmarks/quality.py --budget quick --work W`, W/quick/camera/, any image
# format); carry [".devdata"]. Afterwards, here: the deblurrer as in b2b_train/weights/README.md, and the
# translators scored with
#   python benchmarks/translator_sweep.py score --work W2 --test-blurry W/quick/camera/test/blurry \
#       --test-gt W/quick/camera/test/gt --write
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
W=/tmp/b2b-gpu-session
rm -rf "$W" && mkdir -p "$W"
exec > >(tee "$OUT/session.log") 2>&1
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

el "1. speed check"
OUT="$W/check" B2B_GPU_BUDGET="${CHECK_S:-170}" timeout $(( ${CHECK_S:-170} + 15 )) \
    bash benchmarks/gpu.sh --only "${CHECK_GROUPS:-quick,reduce-overhead}" > "$W/check.out" 2>&1
el "check exit $?"; grep -E "^\s+[a-z0-9+-]+: \{" "$W/check.out" || tail -5 "$W/check.out"

el "2. deblurrer training"
OUT="$W/deb" ITERS="${DEB_ITERS:-2400}" BUDGET_S="${DEB_S:-200}" bash benchmarks/gpu_train_deblurrer.sh > "$W/deb.out" 2>&1
el "deblurrer exit $?"; tail -4 "$W/deb.out"

el "3. translator sweep"
SMOOTH="model.generator_kwargs={zero_init_output: true, smooth_upsample_init: true}"
VARIANTS=(--variant base --variant "rec4:loss.lambda_rec=4" --variant "smooth:$SMOOTH"
          --variant "base-s1:train.seed=1" --variant "rec4-s1:loss.lambda_rec=4;train.seed=1"
          --variant "smooth-rec2:$SMOOTH;loss.lambda_rec=2" --variant "rec8:loss.lambda_rec=8")
python3 benchmarks/translator_sweep.py train --blurry .devdata/cam/B --sharp .devdata/cam/S --work "$W/sweep" \
    --config cpu-quick --iters "${SWEEP_ITERS:-1000}" --limit "${SWEEP_S:-150}" --parallel 1 --threads 4 \
    --device "${SWEEP_DEVICE:-cuda}" "${VARIANTS[@]}" > "$W/sweep.out" 2>&1
el "sweep exit $?"; grep "\[sweep\]" "$W/sweep.out"

el "4. packing"
tar -C "$W" -cf "$OUT/check.tar" check check.out 2>/dev/null
tar -C "$W" -cf "$OUT/deblurrer.tar" deb deb.out 2>/dev/null
runs=$(cd "$W/sweep" 2>/dev/null && ls -d */ | tr -d /)
n=0
for r in $runs; do
  n=$((n + 1)); part=a; [ $n -gt 4 ] && part=b
  (cd "$W/sweep" && tar -rf "$OUT/sweep_$part.tar" $(ls -d "$r"/translator.safetensors* "$r"/*.csv "$r"/*.json \
      "$r"/train.log "$r"/command.txt "$r"/val.png 2>/dev/null))
done
[ -f "$W/sweep/train_status.json" ] && tar -C "$W" -rf "$OUT/sweep_a.tar" sweep/train_status.json sweep.out
ls -la "$OUT"
el "done"
