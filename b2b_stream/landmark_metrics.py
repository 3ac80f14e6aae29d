"""How well tracked hand landmarks agree with reference landmarks of the same frames.

Hands are given as the tracker gives them (``[{"landmarks": [[x, y, z] * 21], ...}]`` per frame,
``x, y`` normalised to the image) and compared in pixels, so a non-square frame weighs both axes
alike. Per clip (:func:`score_clip`, consecutive frames, for jitter) and summed over clips
(:meth:`ClipScore.__add__`, :meth:`ClipScore.summary`):

* **detection share**: of the frames with a reference hand, those where at least one tracked hand
  matches a reference hand;
* **landmark error**: per matched hand, the mean distance over the 21 points divided by the
  reference hand's bounding-box diagonal;
* **false hands**: tracked hands on frames without any reference hand;
* **jitter**: on frames where a reference hand barely moved since the previous frame (mean point
  motion below ``still`` diagonals), the mean point motion of the tracked hand matched to it, in
  diagonals. A tracker that stays put where the hand stays put scores near the reference's own motion.

Landmark errors are kept per reference hand, so :func:`paired_error` can compare trackers on the
hands all of them found (a tracker that finds only the easy hands would look better on plain means).

Hands are matched by wrist (landmark 0): nearest pairs first, and a pair only counts while the
wrists are closer than ``max_wrist`` reference diagonals (a hand found elsewhere is not this hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = [
    "WRIST",
    "hand_points",
    "bbox_diagonal",
    "landmark_error",
    "match_by_wrist",
    "ClipScore",
    "score_clip",
    "paired_error",
]

WRIST = 0


def hand_points(hand: dict, size: tuple[int, int]) -> np.ndarray:
    """A hand's landmarks as ``(21, 2)`` pixel coordinates in an image of ``size = (width, height)``."""
    p = np.asarray(hand["landmarks"], dtype=np.float64)[:, :2]
    return p * np.asarray(size, dtype=np.float64)


def bbox_diagonal(points: np.ndarray) -> float:
    """Diagonal of the points' axis-aligned bounding box (at least 1 px, so a degenerate hand never divides by 0)."""
    return max(float(np.linalg.norm(points.max(0) - points.min(0))), 1.0)


def landmark_error(reference: np.ndarray, tracked: np.ndarray) -> float:
    """Mean point distance between two ``(21, 2)`` hands, in reference bounding-box diagonals."""
    return float(np.linalg.norm(tracked - reference, axis=1).mean() / bbox_diagonal(reference))


def match_by_wrist(reference: Sequence[np.ndarray], tracked: Sequence[np.ndarray],
                   max_wrist: float = 0.5) -> list[tuple[int, int]]:
    """Pairs ``(reference index, tracked index)``: nearest wrists first, each hand used once.

    A pair is kept only while its wrists are closer than ``max_wrist`` times the reference hand's diagonal.
    """
    cand = []
    for i, r in enumerate(reference):
        limit = max_wrist * bbox_diagonal(r)
        for j, t in enumerate(tracked):
            d = float(np.linalg.norm(t[WRIST] - r[WRIST]))
            if d < limit:
                cand.append((d, i, j))
    pairs, used_r, used_t = [], set(), set()
    for _d, i, j in sorted(cand):
        if i not in used_r and j not in used_t:
            pairs.append((i, j))
            used_r.add(i)
            used_t.add(j)
    return sorted(pairs)


@dataclass
class ClipScore:
    """Counts and per-hand values of one or more clips; add two to pool them."""

    frames: int = 0
    reference_frames: int = 0  # frames with at least one reference hand
    found_frames: int = 0  # ... of which at least one reference hand was matched
    reference_hands: int = 0
    matched_hands: int = 0
    empty_frames: int = 0  # frames without a reference hand
    false_hand_frames: int = 0  # ... with at least one tracked hand
    false_hands: int = 0  # tracked hands on those frames
    errors: dict = field(default_factory=dict)  # (clip tag, frame, reference hand) -> error in diagonals
    jitter: list = field(default_factory=list)  # one per matched hand on a still frame, in diagonals

    def __add__(self, other: "ClipScore") -> "ClipScore":
        counts = {k: getattr(self, k) + getattr(other, k) for k in (
            "frames", "reference_frames", "found_frames", "reference_hands", "matched_hands",
            "empty_frames", "false_hand_frames", "false_hands")}
        return ClipScore(**counts, errors={**self.errors, **other.errors}, jitter=self.jitter + other.jitter)

    def summary(self) -> dict:
        """Shares and means (None where there is nothing to average)."""
        def mean(v):
            return float(np.mean(v)) if v else None

        errors = list(self.errors.values())

        return {
            "frames": self.frames,
            "reference_frames": self.reference_frames,
            "detection_share": self.found_frames / self.reference_frames if self.reference_frames else None,
            "hand_recall": self.matched_hands / self.reference_hands if self.reference_hands else None,
            "error_mean": mean(errors),
            "error_median": float(np.median(errors)) if errors else None,
            "empty_frames": self.empty_frames,
            "false_hands": self.false_hands,
            "false_hand_share": self.false_hand_frames / self.empty_frames if self.empty_frames else None,
            "jitter_mean": mean(self.jitter),
            "jitter_hands": len(self.jitter),
        }


def score_clip(reference: Sequence[list], tracked: Sequence[list], size: tuple[int, int], still: float = 0.02,
               max_wrist: float = 0.5, tag: str = "") -> ClipScore:
    """Score one clip's tracked hands per frame against the reference hands of the same frames.

    ``reference``, ``tracked``: one list of hands per frame, in frame order (same length).
    ``size``: ``(width, height)`` of the frames. ``still``: a reference hand moving less than this
    many diagonals (mean over its points) since the previous frame counts as still, for jitter.
    ``tag``: names the clip in the keys of ``errors``, so that pooled clips keep their hands apart.
    """
    if len(reference) != len(tracked):
        raise ValueError(f"{len(reference)} reference frames but {len(tracked)} tracked frames")
    sc = ClipScore()
    prev_ref: list[np.ndarray] = []
    prev_tracked: dict[int, np.ndarray] = {}  # previous frame's reference index -> its matched tracked hand
    for k, (ref_hands, got_hands) in enumerate(zip(reference, tracked)):
        ref = [hand_points(h, size) for h in ref_hands or []]
        got = [hand_points(h, size) for h in got_hands or []]
        sc.frames += 1
        pairs = match_by_wrist(ref, got, max_wrist)
        matched = {i: got[j] for i, j in pairs}
        if ref:
            sc.reference_frames += 1
            sc.reference_hands += len(ref)
            sc.matched_hands += len(pairs)
            sc.found_frames += bool(pairs)
            sc.errors.update({(tag, k, i): landmark_error(ref[i], got[j]) for i, j in pairs})
        else:
            sc.empty_frames += 1
            sc.false_hands += len(got)
            sc.false_hand_frames += bool(got)
        # the same reference hand on the previous frame, and whether it stood still
        for i, j_prev in match_by_wrist(ref, prev_ref, max_wrist):
            if landmark_error(ref[i], prev_ref[j_prev]) < still and i in matched and j_prev in prev_tracked:
                motion = np.linalg.norm(matched[i] - prev_tracked[j_prev], axis=1).mean()
                sc.jitter.append(float(motion / bbox_diagonal(ref[i])))
        prev_ref, prev_tracked = ref, matched
    return sc


def paired_error(*scores: ClipScore) -> tuple[list[float | None], int]:
    """Mean error of each score over the reference hands that all of them matched, and how many those are.

    Comparing plain means favours a tracker that finds only the easy hands; on the hands every
    variant found, the comparison is like for like.
    """
    common = set.intersection(*(set(s.errors) for s in scores)) if scores else set()
    if not common:
        return [None] * len(scores), 0
    return [float(np.mean([s.errors[key] for key in common])) for s in scores], len(common)
