"""Landmark smoothing (``--smooth``): how much jitter the One-Euro filter removes and how much lag it adds.

Every frame of the ASL clips (``../shared/data/videos/asl_gestures``, 640x480, their own time stamps)
goes through MediaPipe's HandLandmarker once; the smoothers then run on those landmarks exactly as
``b2b-stream run --smooth`` runs them (causally, frame by frame, at capture time). There is no
ground truth for where a hand really is, so the reference path is the raw landmarks smoothed
*non-causally* over time (Gaussian, sigma 2 frames, centred: no lag, little jitter). Per setting:

* **jitter**: mean landmark motion from one frame to the next, in hand diagonals, on frames where
  the reference hand barely moves (``landmark_metrics.score_clip``'s jitter);
* **lag**: the delay (ms) that best aligns the output with the reference on frames where the hand
  moves (least mean landmark distance over shifts of 0..8 frames);
* **error**: mean landmark distance to the reference, in hand diagonals, on all frames.

    python benchmarks/smoothing.py [--max-frames N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402,F401  (OpenCV before PyAV, see README "Windows and OpenCV")
import numpy as np  # noqa: E402

from b2b_stream.landmark_metrics import landmark_error  # noqa: E402


def single_hand_tracks(frames_hands: list[list[dict]]) -> np.ndarray:
    """``(T, 21, 3)`` landmarks of the first hand per frame (NaN where none): the ASL clips show one signer."""
    out = np.full((len(frames_hands), 21, 3), np.nan)
    for k, hands in enumerate(frames_hands):
        if hands:
            out[k] = np.asarray(hands[0]["landmarks"], dtype=np.float64)
    return out


def centred_reference(track: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Non-causal Gaussian smoothing over time of a ``(T, 21, 3)`` track, NaN frames left out."""
    r = int(3 * sigma)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    ok = ~np.isnan(track[:, 0, 0])
    ref = np.full_like(track, np.nan)
    for k in np.flatnonzero(ok):
        lo, hi = max(0, k - r), min(len(track), k + r + 1)
        m = ok[lo:hi]
        ww = w[lo - k + r: hi - k + r][m]
        ref[k] = np.tensordot(ww / ww.sum(), track[lo:hi][m], axes=1)
    return ref


def _px(points: np.ndarray, size) -> np.ndarray:
    """``(21, 2)`` pixel coordinates of one frame's ``(21, 3)`` normalised landmarks."""
    return points[:, :2] * np.asarray(size, dtype=np.float64)


def lag_ms(out: np.ndarray, ref: np.ndarray, times: np.ndarray, size, moving: np.ndarray, max_shift: int = 8) -> float:
    """Delay that best aligns ``out`` with ``ref`` on ``moving`` frames, in ms (median frame interval)."""
    best, best_err = 0, None
    for s in range(max_shift + 1):
        errs = []
        for k in np.flatnonzero(moving):
            if k + s < len(out) and not np.isnan(out[k + s, 0, 0]) and not np.isnan(ref[k, 0, 0]):
                errs.append(landmark_error(_px(ref[k], size), _px(out[k + s], size)))
        if errs and (best_err is None or np.mean(errs) < best_err):
            best, best_err = s, float(np.mean(errs))
    return best * float(np.median(np.diff(times))) * 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("B2B_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from b2b_stream.landmark_metrics import score_clip
    from b2b_stream.smoothing import LandmarkSmoother
    from b2b_stream.tracking import HandTracker
    from b2b_train.data.io import iter_video_frames

    from benchmarks._report import header, update_section

    clips = sorted((Path(args.data) / "videos" / "asl_gestures").glob("*.mkv"))
    if not clips:
        sys.exit(f"no clips under {args.data}/videos/asl_gestures")
    settings = {"off (raw tracker)": None}
    for mc, beta in [(0.5, 0.5), (1.0, 0.5), (1.0, 2.0), (1.0, 4.0), (1.0, 8.0), (0.5, 4.0), (2.0, 4.0)]:
        label = f"min_cutoff {mc} Hz, beta {beta}" + (" (default)" if (mc, beta) == (1.0, 4.0) else "")
        settings[label] = (mc, beta)
    t0 = time.time()
    per: dict[str, dict[str, list]] = {k: {"jitter": [], "lag": [], "error": []} for k in settings}
    n_frames = 0
    for clip in clips:
        frames, times, raw = [], [], []
        with HandTracker() as tr:
            for _i, t, img in iter_video_frames(clip, max_frames=args.max_frames):
                raw.append(tr.track(img, t))
                times.append(t)
                frames.append(img.shape[1::-1])
        size = np.asarray(frames[0], dtype=np.float64)
        times = np.asarray(times)
        n_frames += len(raw)
        ref_track = centred_reference(single_hand_tracks(raw))
        ref_hands = [[{"landmarks": r.tolist()}] if not np.isnan(r[0, 0]) else [] for r in ref_track]
        step = np.array([np.nan] + [landmark_error(_px(ref_track[k], size), _px(ref_track[k - 1], size))
                                    for k in range(1, len(ref_track))])
        moving = np.nan_to_num(step, nan=0.0) > 0.05
        for label, p in settings.items():
            if p is None:
                out = raw
            else:
                sm = LandmarkSmoother(min_cutoff=p[0], beta=p[1])
                out = [sm(h, t) for h, t in zip(raw, times)]
            sc = score_clip(ref_hands, out, tuple(int(v) for v in size), still=0.02)
            s = sc.summary()
            track = single_hand_tracks(out)
            per[label]["jitter"].append((s["jitter_mean"], s["jitter_hands"]))
            per[label]["error"].append((s["error_mean"], sc.matched_hands))
            per[label]["lag"].append((lag_ms(track, ref_track, times, size, moving), int(moving.sum())))
        print(f"[smoothing] {clip.stem}: {len(raw)} frames", flush=True)

    def wmean(pairs):
        pairs = [(v, n) for v, n in pairs if v is not None and n]
        return sum(v * n for v, n in pairs) / sum(n for _, n in pairs) if pairs else float("nan")

    md = [header("Landmark smoothing (`smoothing`)"), "",
          f"{len(clips)} ASL clips, {n_frames} frames at 640x480, tracked once; smoothers run causally on the "
          "tracked landmarks at the clips' time stamps. Reference: the raw landmarks smoothed non-causally "
          "(Gaussian over time, sigma 2 frames). Jitter on frames where the reference moves < 0.02 hand "
          "diagonals; lag on frames where it moves > 0.05 (the shift of 0-8 frames that best aligns output "
          "and reference); error vs the reference on all frames. Means weighted by frames per clip.", "",
          "| setting | jitter (diagonals/frame) | lag (ms) | error vs reference (diagonals) |", "|---|---:|---:|---:|"]
    for label in settings:
        md.append(f"| {label} | {wmean(per[label]['jitter']):.4f} | {wmean(per[label]['lag']):.0f} | "
                  f"{wmean(per[label]['error']):.4f} |")
    md.append(f"\nThis run: {time.time() - t0:.0f} s.")
    print("\n".join(md))
    if not args.no_write:
        update_section("smoothing", "\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
