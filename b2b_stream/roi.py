"""Deblurring where the hands are: ``--roi hands``.

MediaPipe looks at a hand through a small crop, so on a CPU most of a whole-frame deblur is spent on
pixels the tracker never reads. :class:`RoiEngine` wraps per-size engines and deblurs only boxes
around the hands tracked most recently (one per hand, or one for two hands where that is cheaper) (the pipeline feeds them back through :meth:`observe_hands`),
pasting the result into the raw frame before tracking. The box is one of a few fixed sizes
(``buckets``, square sides in pixels, clipped to the frame) so static-shape engines (ONNX Runtime,
TensorRT) are built once per size and stay cached. The whole frame is deblurred when no hand is
tracked, when a hand needs a box larger than the largest bucket, when the boxes together would cover
more than ``max_share`` of the frame, and every ``full_every`` frames
(so a new hand entering elsewhere is found on a deblurred frame).

The box functions are pure (pixels in, pixels out) so they are tested without an engine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from b2b_train.errors import B2BError

from .closing import close_quietly

__all__ = ["Box", "hands_box", "hand_boxes", "bucket_box", "paste", "RoiEngine", "require_tracking", "DEFAULT_BUCKETS"]

DEFAULT_BUCKETS = (160, 224, 288, 352)


@dataclass(frozen=True)
class Box:
    """A pixel rectangle: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def hands_box(hands: Sequence[dict] | None, width: int, height: int, margin: float = 0.5) -> Box | None:
    """The box around the landmarks (normalised 0..1) of all ``hands``, grown by ``margin`` x its larger
    side on each side and clipped to the frame; None without hands."""
    pts = [p for hand in hands or [] for p in hand.get("landmarks", [])]
    if not pts:
        return None
    xy = np.asarray([[p[0] * width, p[1] * height] for p in pts], dtype=np.float64)
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    grow = margin * max(x1 - x0, y1 - y0, 1.0)
    x0, y0 = max(0.0, x0 - grow), max(0.0, y0 - grow)
    x1, y1 = min(float(width), x1 + grow), min(float(height), y1 + grow)
    if x1 <= x0 or y1 <= y0:  # landmarks entirely outside the frame
        return None
    return Box(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1 - x0)), int(np.ceil(y1 - y0)))


def bucket_sizes(buckets: Sequence[int], width: int, height: int) -> list[tuple[int, int]]:
    """The fixed box sizes ``(w, h)`` for a frame: each square bucket clipped to the frame, smallest first."""
    if not buckets or any(int(b) < 16 for b in buckets):
        raise B2BError(f"roi buckets must be box sides of at least 16 px (got {list(buckets)})")
    sizes = sorted({(min(int(b), width), min(int(b), height)) for b in buckets}, key=lambda s: s[0] * s[1])
    return sizes


def bucket_box(box: Box | None, buckets: Sequence[int], width: int, height: int) -> Box | None:
    """The smallest fixed-size box holding ``box``, centred on it and shifted to lie inside the frame;
    None when no bucket holds it (the caller deblurs the whole frame)."""
    if box is None:
        return None
    for bw, bh in bucket_sizes(buckets, width, height):
        if bw >= box.w and bh >= box.h:
            cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
            x = int(round(min(max(cx - bw / 2.0, 0), width - bw)))
            y = int(round(min(max(cy - bh / 2.0, 0), height - bh)))
            return Box(x, y, bw, bh)
    return None


def hand_boxes(hands: Sequence[dict] | None, buckets: Sequence[int], width: int, height: int,
               margin: float = 0.5) -> list[Box] | None:
    """Fixed-size boxes covering every hand: one per hand, two merged into one where a bucket holds both
    in no more pixels than their two boxes. ``[]`` without hands; None when some hand fits no bucket."""
    hands = [h for h in hands or [] if h.get("landmarks")]
    groups = [[h] for h in hands]
    merged = True
    while merged and len(groups) > 1:  # merge while one box costs no more than two
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = (bucket_box(hands_box(g, width, height, margin), buckets, width, height) for g in (groups[i], groups[j]))
                both = bucket_box(hands_box(groups[i] + groups[j], width, height, margin), buckets, width, height)
                if a is not None and b is not None and both is not None and both.area <= a.area + b.area:
                    groups[i] = groups[i] + groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    boxes = [bucket_box(hands_box(g, width, height, margin), buckets, width, height) for g in groups]
    return None if any(b is None for b in boxes) else boxes


def paste(frame: np.ndarray, patch: np.ndarray, box: Box) -> np.ndarray:
    """A copy of ``frame`` with ``patch`` written into ``box`` (the rest left as it was)."""
    if patch.shape[:2] != (box.h, box.w):
        raise ValueError(f"patch {patch.shape[:2]} does not fit box {box}")
    out = frame.copy()
    out[box.y : box.y + box.h, box.x : box.x + box.w] = patch
    return out


def require_tracking(roi: str | None, track) -> None:
    """``--roi hands`` follows the tracked hands: refuse it without hand tracking (run, bench, open)."""
    if roi == "hands" and track in (None, "none", False):
        raise B2BError("--roi hands (roi='hands') follows the tracked hands: it needs --track hands")


class RoiEngine:
    """An engine that deblurs only the box around the last tracked hands; see the module docstring.

    Args:
        make_engine: builds an engine for a frame size ``(W, H)`` (called for the frame and each bucket).
        size: the camera's frame size ``(W, H)``.
        buckets: square box sides in pixels.
        margin: box growth around the hands, in units of the hands' larger side, per side.
        full_every: deblur the whole frame every N frames even while hands are tracked (0: never).
        max_share: use the whole frame when the box would cover more than this share of it (no gain).
    """

    def __init__(self, make_engine: Callable[[tuple[int, int]], object], size: tuple[int, int],
                 buckets: Sequence[int] = DEFAULT_BUCKETS, margin: float = 0.5, full_every: int = 30,
                 max_share: float = 0.75):
        if margin < 0:
            raise B2BError(f"roi margin must be >= 0 (got {margin})")
        if full_every < 0:
            raise B2BError(f"roi full_every must be >= 0 (got {full_every})")
        self.size = (int(size[0]), int(size[1]))
        w, h = self.size
        self.buckets = [int(b) for b in buckets]
        self.margin = float(margin)
        self.full_every = int(full_every)
        self.max_share = float(max_share)
        self.full = make_engine(self.size)
        sizes = [s for s in bucket_sizes(self.buckets, w, h) if s[0] * s[1] <= max_share * w * h]
        self._engines: dict[tuple[int, int], object] = {}
        try:
            for s in sizes:
                self._engines[s] = make_engine(s)
        except BaseException:
            self.close()
            raise
        # the bucket sides whose (clipped) boxes pay off; bucket_box maps them back to those sizes
        self._usable = [b for b in self.buckets if (min(b, w), min(b, h)) in self._engines]
        self._sizes = sizes
        self._lock = threading.Lock()
        self._hands: list = []
        self._count = 0
        self.last_boxes: list[Box] | None = None
        self.frames_roi = 0
        self.frames_full = 0
        self.backend = getattr(self.full, "backend", "?")
        self.device = getattr(self.full, "device", "cpu")
        self.precision = getattr(self.full, "precision", "-")
        self.info = dict(getattr(self.full, "info", {}) or {})
        self.info["roi"] = {"buckets": [list(s) for s in sizes], "margin": self.margin, "full_every": self.full_every}

    @classmethod
    def from_config(cls, make_engine: Callable[[tuple[int, int]], object], size: tuple[int, int], cfg) -> "RoiEngine":
        """The engine a :class:`~b2b_stream.pipeline.StreamConfig`'s ``roi_*`` settings describe."""
        return cls(make_engine, size, buckets=cfg.roi_buckets, margin=cfg.roi_margin, full_every=cfg.roi_full_every)

    def observe_hands(self, hands: list | None) -> None:
        """The hands tracked on the latest frame (called from the tracking thread)."""
        with self._lock:
            self._hands = list(hands or [])

    def boxes_for(self, hands: list | None) -> list[Box] | None:
        """The fixed-size boxes the next frame would be deblurred in (None: the whole frame)."""
        w, h = self.size
        boxes = hand_boxes(hands, self._usable, w, h, self.margin) if self._usable else None
        if not boxes or sum(b.area for b in boxes) > self.max_share * w * h:
            return None
        return boxes

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if (w, h) != self.size:
            raise B2BError(f"--roi engine built for {self.size[0]}x{self.size[1]} frames got {w}x{h}")
        with self._lock:
            hands = self._hands
        periodic = self.full_every > 0 and self._count % self.full_every == 0
        self._count += 1
        boxes = None if periodic else self.boxes_for(hands)
        if boxes is None:
            self.last_boxes = None
            self.frames_full += 1
            return self.full(frame)
        out = frame
        for box in boxes:  # each box deblurred from the raw frame, so overlaps never deblur twice
            crop = np.ascontiguousarray(frame[box.y : box.y + box.h, box.x : box.x + box.w])
            out = paste(out, self._engines[(box.w, box.h)](crop), box)
        self.last_boxes = boxes
        self.frames_roi += 1
        return out

    def reset(self) -> None:
        """Forget the tracked hands and the counters (a new run on the same engines)."""
        with self._lock:
            self._hands = []
        self._count = self.frames_roi = self.frames_full = 0
        self.last_boxes = None

    def report(self) -> dict:
        total = self.frames_roi + self.frames_full
        return {"frames_roi": self.frames_roi, "frames_full": self.frames_full,
                "roi_share": round(self.frames_roi / total, 3) if total else None,
                "buckets": [list(s) for s in self._sizes]}

    def close(self) -> None:
        close_quietly(getattr(self, "full", None), *getattr(self, "_engines", {}).values())
