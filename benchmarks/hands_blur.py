"""Hand tracking under simulated motion blur, measured against the sharp frames the blur was made from.

Each sharp ASL clip of ``../shared/data/videos/asl_gestures/`` is turned into blurry clips by a
simulated camera (:mod:`b2b_train.data.exposure`: exposure integrated over 1, 2 and 3 frame
intervals by optical-flow interpolation, a little camera shake, a tone curve, sensor noise, JPEG).
Every blurry frame keeps its sharp reference (the exposure's middle instant). MediaPipe's
HandLandmarker runs on the references, on the raw blurry frames, on them deblurred by the shipped
default deblurrer, and (``--profile NAME``) through a calibrated profile, each through the same path
as ``b2b-stream run`` (``b2b_stream.open`` on an image-folder source: source -> engine -> tracker
threads). Scores (:mod:`b2b_stream.landmark_metrics`): share of reference-hand frames where a hand
is found, landmark error, false hands, jitter. Writes BENCHMARKS.md section ``hands-blur``, a
picture (reference | raw | deblurred, landmarks drawn) and ``benchmarks/out/hands_blur.json``.

    python benchmarks/hands_blur.py [--clips 6] [--size 320x240] [--max-frames N] [--exposures 1,2,3] [--profile NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402  (OpenCV before PyAV, see README "Windows and OpenCV")
import numpy as np  # noqa: E402

OUT = REPO / "benchmarks" / "out"

# The simulated webcam besides its exposure. Fixed before any result was seen and not tuned on the
# results: shake of ~0.5 px per interval at 320 px wide, a mild S-curve, low-light-ish noise, and a
# webcam's JPEG quality.
SHAKE_PER_WIDTH = 0.0015
TONE = 0.15
SHOT_NOISE = 1e-3
READ_NOISE = 4e-3
JPEG_QUALITY = 85


def track(frames, engine, hand_model=None, keep_images=False):
    """Hands per frame (and optionally the engine's output images) through ``b2b_stream.open``.

    The frames are written as an image folder, the same kind of source ``b2b-stream run --camera DIR``
    reads, and played without real-time pacing so that no frame is dropped.
    """
    import b2b_stream
    from b2b_train.data.io import write_image

    if callable(getattr(engine, "reset", None)):  # --roi hands: no boxes left over from the last clip
        engine.reset()
    with tempfile.TemporaryDirectory(prefix="b2b-hands-blur-") as tmp:
        for k, img in enumerate(frames):
            write_image(Path(tmp) / f"{k:05d}.png", img)
        hands, images = [], []
        with b2b_stream.open(camera=tmp, engine=engine, track="hands", hand_model=hand_model, realtime=False) as stream:
            for f in stream:
                hands.append(f.hands)
                if keep_images:
                    images.append(f.image)
    if len(hands) != len(frames):
        raise RuntimeError(f"the stream gave {len(hands)} frames for {len(frames)} written (frames were dropped)")
    return hands, images


def fastest_frame(reference_hands, size) -> int | None:
    """The frame whose reference hand moved most since the previous one: where blur shows most (chosen
    from the reference alone, so the picture does not favour any variant)."""
    from b2b_stream.landmark_metrics import hand_points, landmark_error, match_by_wrist

    best, best_k = -1.0, None
    for k in range(1, len(reference_hands)):
        ref = [hand_points(h, size) for h in reference_hands[k]]
        prev = [hand_points(h, size) for h in reference_hands[k - 1]]
        for i, j in match_by_wrist(ref, prev):
            m = landmark_error(ref[i], prev[j])
            if m > best:
                best, best_k = m, k
    return best_k


def hands_box(hands, size, margin=0.6, min_side=96):
    """A 4:3 box (x0, y0, x1, y1) around the hands, ``margin`` of their extent added on each side, inside the frame."""
    from b2b_stream.landmark_metrics import hand_points

    pts = np.concatenate([hand_points(h, size) for h in hands])
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h = max(min_side, (1 + 2 * margin) * max(y1 - y0, (x1 - x0) * 3 / 4))
    h = min(h, size[1])
    w = min(h * 4 / 3, size[0])
    bx0 = int(np.clip(cx - w / 2, 0, size[0] - w))
    by0 = int(np.clip(cy - h / 2, 0, size[1] - h))
    return bx0, by0, bx0 + int(w), by0 + int(h)


def crop(img, box, height=240):
    """``img`` cut to the 4:3 ``box`` and scaled to ``height`` rows, so that the hands fill the picture."""
    x0, y0, x1, y1 = box
    part = img[y0:y1, x0:x1]
    return cv2.resize(part, (height * 4 // 3, height), interpolation=cv2.INTER_CUBIC)  # rows of equal width stack


def labelled(img, text):
    """A copy of ``img`` with ``text`` in its top-left corner (white on a dark band)."""
    out = img.copy()
    cv2.rectangle(out, (0, 0), (9 * len(text) + 8, 20), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def change(raw: dict, deblurred: dict) -> str:
    """One line: what deblurring changed against the raw frames (the issue's evidence questions)."""
    if raw["detection_share"] is None:
        return "no reference hands"
    parts = [f"deblurred finds hands in {100 * (deblurred['detection_share'] - raw['detection_share']):+.1f} points "
             "of reference-hand frames vs raw"]
    if raw["error_mean"] and deblurred["error_mean"] is not None:
        parts.append(f"landmark error {100 * (deblurred['error_mean'] / raw['error_mean'] - 1):+.1f} %")
    if raw.get("paired_error") and deblurred.get("paired_error") is not None:
        parts.append(f"paired error {100 * (deblurred['paired_error'] / raw['paired_error'] - 1):+.1f} %")
    return "; ".join(parts) + "."


def fmt(v, pct=False, digits=3):
    if v is None:
        return "-"
    return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("B2B_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--clips", type=int, default=None, help="the first N clips in name order (default: all)")
    ap.add_argument("--max-frames", type=int, default=None, help="frames per clip (default: all)")
    ap.add_argument("--size", default="640x480", help="frame size WxH the clips are resized to (default 640x480)")
    ap.add_argument("--exposures", default="1,2,3", help="exposures in frame intervals, comma-separated")
    ap.add_argument("--samples-per-interval", type=int, default=8)
    ap.add_argument("--profile", default=None, help="also track through this calibrated profile (translator + deblurrer)")
    ap.add_argument("--roi", action="store_true", help="also track with the deblurrer run as `--roi hands`")
    ap.add_argument("--section", default="hands-blur", help="BENCHMARKS.md section to write")
    ap.add_argument("--backend", default="torch", choices=["auto", "torch", "onnxruntime"])
    ap.add_argument("--hand-model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rich.progress import Progress

    from b2b_stream.engines import parse_size
    from b2b_stream.landmark_metrics import ClipScore, paired_error, score_clip
    from b2b_stream.pipeline import StreamConfig, make_engine
    from b2b_stream.tracking import draw_hands
    from b2b_train.data.exposure import CameraSim, clip_flows, simulate_camera
    from b2b_train.data.io import iter_video_frames

    from benchmarks._report import header, update_section

    clip_dir = Path(args.data) / "videos" / "asl_gestures"
    if not clip_dir.is_dir():
        sys.exit(f"no ASL clips: {clip_dir} does not exist (set --data or B2B_DATA to the shared data folder)")
    clips = sorted(clip_dir.glob("*.mkv"))[: args.clips]
    if not clips:
        sys.exit(f"no clips (*.mkv) under {clip_dir}")
    size = parse_size(args.size)
    try:
        exposures = [float(e) for e in args.exposures.split(",")]
    except ValueError:
        sys.exit(f"--exposures wants numbers like 1,2,3 (got {args.exposures!r})")

    variants = {"raw": make_engine(None, "none"), "deblurred": make_engine(None, args.backend, size=size)}
    if args.roi:
        variants["roi"] = make_engine(None, args.backend, size=size, config=StreamConfig(roi="hands"))
    if args.profile:
        variants["profile"] = make_engine(args.profile, args.backend, size=size)
    identity = variants["raw"]
    scores = {(e, v): ClipScore() for e in exposures for v in ["reference", *variants]}
    examples = []  # (reference motion rank key, row image) per clip at the longest exposure
    t0 = time.time()
    n_frames = 0
    with Progress(transient=False) as bar:
        task = bar.add_task("clips", total=len(clips) * len(exposures))
        for clip in clips:
            frames = [cv2.resize(img, size, interpolation=cv2.INTER_AREA) if img.shape[1::-1] != size else img
                      for _i, _t, img in iter_video_frames(clip, max_frames=args.max_frames)]
            if len(frames) < 2:
                sys.exit(f"{clip}: fewer than 2 frames")
            n_frames += len(frames)
            flows = clip_flows(frames)
            ref_hands, _ = track(frames, identity, args.hand_model)
            ref_score = score_clip(ref_hands, ref_hands, size, tag=clip.stem)
            for e in exposures:
                sim = CameraSim(exposure=e, samples_per_interval=args.samples_per_interval,
                                shake_px=SHAKE_PER_WIDTH * size[0], tone=TONE, shot_noise=SHOT_NOISE,
                                read_noise=READ_NOISE, jpeg_quality=JPEG_QUALITY, seed=args.seed)
                blurry = simulate_camera(frames, sim, flows=flows).blurry
                scores[(e, "reference")] += ref_score
                keep = e == max(exposures)
                outs = {}
                for name, engine in variants.items():
                    hands, images = track(blurry, engine, args.hand_model, keep_images=keep)
                    clip_score = score_clip(ref_hands, hands, size, tag=clip.stem)
                    scores[(e, name)] += clip_score
                    outs[name] = (hands, images, clip_score)
                if keep and (k := fastest_frame(ref_hands, size)) is not None:
                    box = hands_box(ref_hands[k], size)
                    panels = [labelled(crop(draw_hands(frames[k], ref_hands[k], thickness=1), box), "reference")]
                    panels += [labelled(crop(draw_hands(outs[name][1][k], outs[name][0][k], thickness=1), box), f"{name}, E={e:g}")
                               for name in variants]
                    examples.append((clip.stem, k, np.concatenate(panels, 1)))
                bar.update(task, advance=1, description=f"{clip.stem} exposure {e:g}")
                if not bar.console.is_terminal:  # a log file gets one line per step instead of a bar
                    found = {v: outs[v][2].summary()["detection_share"] for v in variants}
                    print(f"{clip.stem} ({len(frames)} frames) exposure {e:g}: found "
                          + ", ".join(f"{v} {fmt(x, pct=True)}" for v, x in found.items()) + f"  [{time.time() - t0:.0f} s]",
                          flush=True)
    elapsed = time.time() - t0
    stem = args.section.replace("-", "_")  # hands_blur for the default section
    picture = OUT / f"{stem}.png"

    OUT.mkdir(parents=True, exist_ok=True)
    rows = examples[:: max(1, len(examples) // 3)][:3]  # up to three clips spread over the list
    if rows:
        pic = np.concatenate([r[2] for r in rows], 0)
        cv2.imwrite(str(picture), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
    summary = {f"{e:g}/{v}": s.summary() for (e, v), s in scores.items()}
    for e in exposures:  # the error on the hands that every tracked variant found, like for like
        errs, n_common = paired_error(*(scores[(e, v)] for v in variants))
        for v, err in zip(variants, errs):
            summary[f"{e:g}/{v}"].update(paired_error=err, paired_hands=n_common)
    (OUT / f"{stem}.json").write_text(json.dumps({"size": list(size), "clips": [c.stem for c in clips],
                                                    "frames": n_frames, "summary": summary}, indent=1))

    names = ["reference", *variants]
    label = {"reference": "reference (sharp)", "raw": "raw blurry", "deblurred": "deblurred (shipped default)",
             "roi": "deblurred, `--roi hands`", "profile": f"profile `{args.profile}`"}
    lines = [
        header(f"Hand tracking under simulated motion blur, against sharp references (`{args.section}`)"),
        f"{len(clips)} ASL clips ({n_frames} frames{'' if args.max_frames is None else f', at most {args.max_frames} per clip'}) at "
        f"{size[0]}x{size[1]}, each made blurry by the simulated camera of `b2b_train/data/exposure.py`: exposure over "
        f"E frame intervals by DIS optical-flow interpolation ({args.samples_per_interval} instants per interval, averaged "
        f"in linear light, gamma 2.2), camera drift {SHAKE_PER_WIDTH * size[0]:.2f} px per interval (random direction, "
        f"x0.5-1.5), S-curve tone {TONE}, shot noise {SHOT_NOISE}, read noise {READ_NOISE}, JPEG q{JPEG_QUALITY}. "
        f"The reference is the exposure's middle (sharp) frame; MediaPipe HandLandmarker (VIDEO mode, 2 hands) runs on "
        f"the references, the raw blurry frames and the deblurred ones through `b2b_stream.open` (the `b2b-stream run` "
        f"pipeline; {args.backend} backend, {args.threads} thread(s)). "
        + ("`--roi hands` deblurs only boxes around the hands tracked on the frame before (whole frame without "
           "hands and every 30 frames; `b2b_stream/roi.py`). " if args.roi else "")
        + (f"Profile `{args.profile}` is included. " if args.profile else
           "No `--profile` was given, so there is no calibrated-profile (translator) column. ")
        + f"{elapsed:.0f} s.\n",
        "found = share of frames with a reference hand where a tracked hand matches one (by wrist, within half the "
        "reference hand's box diagonal); error = mean over the 21 points of the distance to the reference, in reference "
        "box diagonals (mean over matched hands; median in brackets); false hands = hands on frames without a reference "
        "hand (share of those frames); jitter = frame-to-frame landmark motion, in diagonals, on frames where the "
        "reference hand moved less than 0.02 diagonals (the reference row gives the reference's own motion there).\n",
        f"paired error = mean error on the reference hands that {' and '.join(variants)} all found (their number in "
        "brackets): like for like, since a tracker that finds more of the hard, fast hands pays for them in its plain mean.\n",
        "| exposure | tracked on | found | error (median) | paired error (hands) | false hands | jitter |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for e in exposures:
        for v in names:
            s = summary[f"{e:g}/{v}"]
            err = "0 (reference)" if v == "reference" else f"{fmt(s['error_mean'])} ({fmt(s['error_median'])})"
            paired = "-" if v == "reference" else f"{fmt(s['paired_error'])} ({s['paired_hands']})"
            lines.append(f"| {e:g} | {label[v]} | {fmt(s['detection_share'], pct=True)} | {err} | {paired} | "
                         f"{s['false_hands']} ({fmt(s['false_hand_share'], pct=True)} of {s['empty_frames']}) | "
                         f"{fmt(s['jitter_mean'], digits=4)} |")
    lines.append("")
    for e in exposures:
        lines.append(f"- exposure {e:g}: {change(summary[f'{e:g}/raw'], summary[f'{e:g}/deblurred'])}")
        if args.roi:
            lines.append(f"- exposure {e:g}, `--roi hands`: {change(summary[f'{e:g}/raw'], summary[f'{e:g}/roi'])}")
    if rows:
        cols = " | ".join(label[v] for v in names)
        lines.append(f"\n![{cols}](benchmarks/out/{picture.name})\n\n*{cols}, landmarks drawn, cut to the hands and enlarged; longest exposure; per clip the "
                     f"frame where the reference hand moves fastest ({', '.join(f'{r[0]} frame {r[1]}' for r in rows)}).*")
    update_section(args.section, "\n".join(lines))
    print("\n".join(lines[2:]))


if __name__ == "__main__":
    main()
