"""Hand-detection rate on the blurry ASL clips: raw frames vs frames deblurred by b2b.

For each clip of ``../shared/data/videos/asl_gestures/`` every frame is run through MediaPipe's
HandLandmarker (VIDEO mode, one tracker per clip and variant) as it comes from the file (raw) and after
the fused engine (the shipped default deblurrer alone, or a profile's translator + deblurrer with
``--profile``). Reports the share of frames with at least one hand and the mean top handedness
score, per clip and overall, and writes BENCHMARKS.md section ``hands``.

    python benchmarks/hands.py [--profile NAME] [--size 640x480] [--max-frames N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402  (OpenCV before PyAV, see README "Windows and OpenCV")
import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("B2B_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--profile", default=None)
    ap.add_argument("--size", default=None, help="resize frames to WxH first (default: native 640x480)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from b2b_stream.engines import get_engine, parse_size
    from b2b_stream.tracking import HandTracker
    from b2b_train.data.io import iter_video_frames

    from benchmarks._report import header, update_section

    clips = sorted((Path(args.data) / "videos" / "asl_gestures").glob("*.mkv"))
    if not clips:
        sys.exit(f"no clips under {args.data}/videos/asl_gestures")
    size = parse_size(args.size) if args.size else (640, 480)
    engine = get_engine(args.profile, backend="torch", size=size, say=lambda m: None)
    rows, tot = [], {"frames": 0, "raw": 0, "b2b": 0, "raw_score": [], "b2b_score": []}
    t0 = time.time()
    for clip in clips:
        frames = [img for _i, _t, img in iter_video_frames(clip, max_frames=args.max_frames)]
        if args.size:
            frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        res = {}
        for variant in ("raw", "b2b"):
            hits, scores = 0, []
            with HandTracker() as tr:
                for k, img in enumerate(frames):
                    hands = tr.track(img if variant == "raw" else engine(img), k / 30.0)
                    hits += bool(hands)
                    if hands:
                        scores.append(max(h["score"] or 0.0 for h in hands))
            res[variant] = (hits, float(np.mean(scores)) if scores else 0.0)
            tot[variant] += hits
            tot[f"{variant}_score"] += scores
        tot["frames"] += len(frames)
        rows.append((clip.stem, len(frames), res))
        print(clip.stem, len(frames), res, flush=True)
    n = tot["frames"]
    what = f"profile `{args.profile}` (translator + deblurrer)" if args.profile else "the shipped default deblurrer alone (no profile)"
    lines = [
        header("Hand detection on the blurry ASL clips: raw vs deblurred (`hands`)"),
        f"MediaPipe HandLandmarker (bundle from mediapipe 0.10.21's models, VIDEO mode, 2 hands) on every frame of the 12 "
        f"ASL clips at {size[0]}x{size[1]}; deblurred with {what}, torch backend on the CPU. A frame counts when at least one "
        f"hand is found; score = mean of the best hand's handedness score on frames with a hand. {time.time() - t0:.0f} s.\n",
        "| clip | frames | raw: frames with hands | deblurred: frames with hands | raw score | deblurred score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, nf, res in rows:
        lines.append(f"| {name} | {nf} | {res['raw'][0]} ({100 * res['raw'][0] / nf:.0f} %) | {res['b2b'][0]} ({100 * res['b2b'][0] / nf:.0f} %) | "
                     f"{res['raw'][1]:.3f} | {res['b2b'][1]:.3f} |")
    lines.append(f"| **all** | {n} | {tot['raw']} ({100 * tot['raw'] / n:.1f} %) | {tot['b2b']} ({100 * tot['b2b'] / n:.1f} %) | "
                 f"{np.mean(tot['raw_score']):.3f} | {np.mean(tot['b2b_score']):.3f} |")
    update_section("hands", "\n".join(lines))
    out = REPO / "benchmarks" / "out" / "hands.json"
    out.write_text(json.dumps({"rows": [[r[0], r[1], r[2]] for r in rows], "total": {k: v for k, v in tot.items() if not k.endswith("score")}}, indent=1))
    print(f"all: {tot['raw']}/{n} raw, {tot['b2b']}/{n} deblurred")


if __name__ == "__main__":
    main()
