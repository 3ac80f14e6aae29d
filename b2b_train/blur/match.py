"""Match the known blur's strength to a camera's blur (``data.match_known_blur`` of the translator).

The translator G learns to make the camera's blurry frames B look like K (its sharp frames S
re-blurred with the known blur). When K is much blurrier than B, the only way G can fool the
discriminator is to *add* blur, and the deblurrer then has more to undo than the camera ever put
in: a webcam watching hands has mild, mostly local blur, while the default kernel bank goes up to
21 px of whole-frame shake. This picks the largest kernel extent whose K is about as blurry as B.

Blur degree here is the Laplacian variance (:func:`b2b_train.data.frames.blur_degree`) of the frame
shrunk 2x (area), so sensor noise, which dominates the full-resolution Laplacian of a webcam
frame, counts four times less. Since B and S come from the same camera, the ratio
``median(degree B) / median(degree S)`` says how much the camera's blur removes; for each
candidate extent, ``median(degree K) / median(degree S)`` says how much the known blur removes
from the same S frames. The candidate whose ratio is closest (in log) to B's wins.

K is made here with whole-frame blur only (``whole_frame=True``, the default), whatever the configured
mix of uniform, varying and local blur: the extent is a property of the kernels, and comparing
medians over a mix in which a third of the frames stay mostly sharp pulls the choice towards the
longest kernels. On the quality benchmark's camera (whole-frame vibration, B 26.8 dB from its ground
truth) matching over the default mix chose 3-17/19 px, a K of 24.5 dB that the deblurrer restores to
only 27.9 dB, below the 28.35 dB it reaches on B itself, so the translator could only do harm
(-2.5 dB); whole-frame matching chooses 3-7 px, and the translator then costs nothing after 1000
iterations (-0.01 dB; BENCHMARKS.md, `quality-history`). Open question: over the mix, K at 3-7 px is
milder than that camera's B (28.4 vs 26.8 dB), and 3000 iterations then drift to -1.95 dB, while K
at 3-11 px (as blurry as B) stays harmless (`translator-sweep`); matching the mix's K to B's strength
without ground truth is the next step.

    extent, report = match_extent(known_cfg, blurry_frames, sharp_frames)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

from .known_blur_config import KnownBlurConfig
from .synth import KnownBlur

__all__ = ["frame_degree", "known_degree", "match_extent", "evenly", "DEFAULT_CANDIDATES", "MAX_FRAMES"]

DEFAULT_CANDIDATES = (3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0, 21.0)
MAX_FRAMES = 24  # frames of B and of S compared (evenly spaced)


def frame_degree(img: np.ndarray) -> float:
    """Blur degree of a uint8 RGB frame at half size (low = blurry; noise counts 4x less)."""
    import cv2

    from ..data.frames import blur_degree

    h, w = img.shape[:2]
    if h >= 8 and w >= 8:
        img = cv2.resize(np.ascontiguousarray(img), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return blur_degree(img)


def known_degree(known, frames: Sequence[np.ndarray], seed: int = 0) -> float:
    """Median :func:`frame_degree` of uint8 ``frames`` re-blurred one by one with ``known`` (seeded)."""
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for x in frames:
        t = torch.from_numpy(np.array(x, dtype=np.uint8)).permute(2, 0, 1)[None].float().div_(255.0)
        y = known(t, generator=g)[0]
        out.append(frame_degree((y.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)))
    return float(np.median(out))


def evenly(count: int, n: int) -> list[int]:
    """At most ``n`` evenly spaced positions out of ``count`` (all of them when ``count <= n``)."""
    if count <= n:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, n).round()]


def _subsample(frames: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    return [frames[i] for i in evenly(len(frames), n)]


def match_extent(
    cfg: KnownBlurConfig,
    blurry: Sequence[np.ndarray],
    sharp: Sequence[np.ndarray],
    candidates: Sequence[float] | None = None,
    max_frames: int = MAX_FRAMES,
    seed: int = 0,
    whole_frame: bool = True,
) -> tuple[tuple[float, float], dict]:
    """The kernel extent range ``(lo, e)`` whose known blur on ``sharp`` is as blurry as ``blurry``.

    ``blurry``/``sharp``: uint8 HxWx3 RGB frames of one camera (B and S; any sizes). Candidates
    are the upper ends ``e`` tried (default 3..21 px, capped at the config's own upper end); the
    lower end stays the config's, capped at ``e``. ``whole_frame``: compare with K blurred over the
    whole frame (see the module's note) rather than with the configured spatial mix. Deterministic for
    a given ``seed``.

    Returns the chosen range and a report: ``target`` (B/S degree ratio), ``ratios`` (K/S per
    candidate), ``chosen``, ``configured`` and ``note`` (a warning when B is barely blurrier than S,
    or blurrier than the strongest candidate).
    """
    lo, hi = (float(v) for v in cfg.kernels.extent)
    cands = sorted({float(c) for c in (candidates or DEFAULT_CANDIDATES) if float(c) <= hi} | {hi})
    b = _subsample(blurry, max_frames)
    s = _subsample(sharp, max_frames)
    if not b or not s:
        raise ValueError("strength matching needs blurry and sharp frames")
    ds = float(np.median([frame_degree(x) for x in s]))
    db = float(np.median([frame_degree(x) for x in b]))
    target = db / max(ds, 1e-9)
    ratios: dict[float, float] = {}
    spatial = (dataclasses.replace(cfg.spatial, p_uniform=1.0, p_varying=0.0, p_local=0.0) if whole_frame
               else cfg.spatial)
    for e in cands:
        kc = dataclasses.replace(cfg.kernels, extent=(min(lo, e), e), size=0, bank=0)
        kb = KnownBlur(dataclasses.replace(cfg, kernels=kc, spatial=spatial))
        ratios[e] = known_degree(kb, s, seed) / max(ds, 1e-9)
    best = min(cands, key=lambda e: abs(math.log(max(ratios[e], 1e-9)) - math.log(max(target, 1e-9))))
    note = ""
    if target >= ratios[cands[0]]:
        note = (f"the blurry frames are barely blurrier than the sharp ones (blur-degree ratio {target:.2f}; the mildest "
                f"known blur gives {ratios[cands[0]]:.2f}): record blurrier clips (faster motion) or sharper ones "
                f"(slower motion, more light) so the translator has a difference to learn")
    elif target < ratios[cands[-1]]:
        note = (f"the camera's blur (ratio {target:.2f}) is stronger than the strongest known blur "
                f"({ratios[cands[-1]]:.2f} at {cands[-1]:g} px): the known domain keeps its full range")
    chosen = (min(lo, best), best)
    return chosen, {
        "target": target,
        "ratios": {f"{e:g}": r for e, r in ratios.items()},
        "chosen": list(chosen),
        "configured": [lo, hi],
        "frames": {"blurry": len(b), "sharp": len(s)},
        "compared_with": "whole-frame blur" if whole_frame else "the configured spatial mix",
        "note": note,
    }
