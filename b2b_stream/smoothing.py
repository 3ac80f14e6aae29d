"""Landmark smoothing for apps: the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A hand that holds still should not shimmer, and a hand that moves should not trail behind. The
One-Euro filter is a first-order low-pass whose cutoff rises with the signal's speed:
``cutoff = min_cutoff + beta * |speed|``, the speed itself low-passed at ``d_cutoff``. Slow motion
is smoothed hard (jitter goes), fast motion barely (lag stays small).

Landmarks are normalised image coordinates, so the speed is measured in hand sizes per second
(the hand's bounding-box diagonal, as MediaPipe's own landmark smoothing scales by the object):
the same settings suit a hand near the camera and one far away.

    smoother = LandmarkSmoother()                    # or wrap a tracker: SmoothedTracker(tracker)
    hands = smoother(tracker.track(frame, t), t)     # same structure, smoothed x, y, z

:func:`one_euro` is the pure function (one step, arrays); :class:`LandmarkSmoother` keeps one
filter state per hand, following each hand from frame to frame by its wrist and starting afresh
for a hand that is new or was lost for longer than ``reset_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OneEuroState", "one_euro", "smoothing_factor", "LandmarkSmoother", "SmoothedTracker"]


def smoothing_factor(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    """Exponential smoothing weight of a first-order low-pass at ``cutoff`` Hz over ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroState:
    """The filter's memory: last output, last speed (per coordinate) and its time in seconds."""

    value: np.ndarray
    speed: np.ndarray
    t: float


def one_euro(state: OneEuroState | None, x: np.ndarray, t: float, min_cutoff: float = 1.0, beta: float = 0.0,
             d_cutoff: float = 1.0, scale: float = 1.0) -> OneEuroState:
    """One step of the One-Euro filter on the array ``x`` at time ``t`` (seconds); returns the new state
    (its ``value`` is the output). ``scale`` divides the speed before ``beta`` weighs it (the signal's
    natural size, e.g. a hand's diagonal). The first step (``state`` None) passes ``x`` through."""
    x = np.asarray(x, dtype=np.float64)
    if state is None:
        return OneEuroState(x.copy(), np.zeros_like(x), float(t))
    dt = float(t) - state.t
    if dt <= 0:  # a repeated or out-of-order time stamp: nothing to filter over
        return state
    speed_raw = (x - state.value) / dt
    a_d = smoothing_factor(dt, d_cutoff)
    speed = a_d * speed_raw + (1 - a_d) * state.speed
    cutoff = min_cutoff + beta * np.abs(speed) / max(float(scale), 1e-9)
    a = smoothing_factor(dt, cutoff)
    return OneEuroState(a * x + (1 - a) * state.value, speed, float(t))


def _hand_array(hand: dict) -> np.ndarray:
    return np.asarray(hand["landmarks"], dtype=np.float64).reshape(-1, 3)


def _diagonal(points: np.ndarray) -> float:
    span = points[:, :2].max(0) - points[:, :2].min(0)
    return float(np.hypot(*span))


class LandmarkSmoother:
    """One-Euro smoothing of every hand's 21 landmarks across frames (see the module docstring).

    ``min_cutoff`` (Hz) sets how hard a still hand is smoothed, ``beta`` how fast the cutoff rises
    with speed (per hand diagonal per second), ``d_cutoff`` (Hz) how the speed itself is smoothed.
    A hand is the previous frame's hand of the same handedness whose wrist is within ``max_jump``
    diagonals; any other hand starts a new filter."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 4.0, d_cutoff: float = 1.0, reset_s: float = 0.5,
                 max_jump: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One-Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset_s, self.max_jump = float(reset_s), float(max_jump)
        self._tracks: list[tuple[str | None, OneEuroState]] = []

    def reset(self) -> None:
        self._tracks = []

    def _match(self, hand: dict, points: np.ndarray, t: float, taken: set[int]) -> OneEuroState | None:
        best, best_d = None, None
        diag = max(_diagonal(points), 1e-6)
        for i, (label, st) in enumerate(self._tracks):
            if i in taken or label != hand.get("handedness") or t - st.t > self.reset_s:
                continue
            d = float(np.linalg.norm(st.value[0, :2] - points[0, :2])) / diag
            if d <= self.max_jump and (best_d is None or d < best_d):
                best, best_d = i, d
        if best is None:
            return None
        taken.add(best)
        return self._tracks[best][1]

    def __call__(self, hands: list[dict], t: float) -> list[dict]:
        """``hands`` as :meth:`HandTracker.track` gives them, at capture time ``t`` seconds; returns
        new dicts with smoothed ``landmarks`` (other keys kept)."""
        out, tracks, taken = [], [], set()
        for hand in hands or []:
            pts = _hand_array(hand)
            st = one_euro(self._match(hand, pts, t, taken), pts, t, self.min_cutoff, self.beta, self.d_cutoff,
                          scale=max(_diagonal(pts), 1e-6))
            tracks.append((hand.get("handedness"), st))
            out.append({**hand, "landmarks": [[round(float(v), 5) for v in p] for p in st.value]})
        # hands not seen this frame are kept until reset_s, so a one-frame miss does not restart them
        kept = [tr for i, tr in enumerate(self._tracks) if i not in taken and t - tr[1].t <= self.reset_s]
        self._tracks = tracks + kept
        return out


class SmoothedTracker:
    """A tracker whose hands come out One-Euro smoothed: ``track`` and ``close`` as the tracker's."""

    def __init__(self, tracker, smoother: LandmarkSmoother | None = None):
        self.tracker = tracker
        self.smoother = smoother or LandmarkSmoother()
        self._frames = 0

    def track(self, image: np.ndarray, t_seconds: float | None = None) -> list[dict]:
        t = t_seconds if t_seconds is not None else self._frames / 30.0
        self._frames += 1
        return self.smoother(self.tracker.track(image, t_seconds), t)

    def close(self) -> None:
        self.tracker.close()

    def __getattr__(self, name):  # frames, frames_with_hands, model_path ... of the tracker
        return getattr(self.tracker, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
