"""Unpaired training sets B (blurry, unknown blur) and S (sharp) of one camera, and their sampler.

Paper §4.1: the training material is divided into two scene-disjoint subsets at a ratio of 0.6:0.4;
the blurry images of the first form B, the sharp images of the second form S (Table 3 sweeps the
ratio from 5:5 to 9:1). K (known blur) is made on the fly from S crops by the trainer with
``b2b_train.blur.make_known_blur``; nothing here blurs.

* :func:`parse_ratio` - ``0.6``, ``"6:4"``, ``"0.6:0.4"`` or ``(6, 4)`` -> share of B (0.6).
* :func:`split_scenes` - whole scenes to B or S so that B's share of the frames is as close to the
  ratio as scene sizes allow (within half of the largest scene).
* :func:`make_unpaired` - B and S :class:`~b2b_train.data.frames.FrameSet` from cached frames.
* :class:`UnpairedDataset` - endless batches of augmented B crops (with their blur degrees) and S
  crops, every random choice from one ``torch.Generator``; ``state_dict()`` / ``load_state_dict()``
  make a resumed run draw exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping, Sequence

import numpy as np
import torch

from ..errors import DataError
from .frames import FrameOptions, FrameSet, extract_frames
from .transforms import AugmentConfig, apply_params, crop_region, sample_params

__all__ = [
    "parse_ratio",
    "split_scenes",
    "UnpairedSplit",
    "make_unpaired",
    "UnpairedBatch",
    "UnpairedDataset",
    "load_unpaired",
]


def parse_ratio(ratio: float | str | Sequence[float]) -> float:
    """B's share of the data: ``0.6`` / ``"6:4"`` / ``"0.6:0.4"`` / ``(6, 4)`` -> 0.6 (in (0, 1))."""
    try:
        if isinstance(ratio, str):
            parts = [float(p) for p in ratio.replace("/", ":").split(":")]
            if len(parts) == 1:
                val = parts[0]
            elif len(parts) == 2:
                val = parts[0] / (parts[0] + parts[1])
            else:
                raise ValueError
        elif isinstance(ratio, (list, tuple)):
            if len(ratio) != 2:
                raise ValueError
            val = float(ratio[0]) / (float(ratio[0]) + float(ratio[1]))
        else:
            val = float(ratio)
    except (ValueError, ZeroDivisionError, TypeError):
        raise DataError(f"B:S ratio {ratio!r} is not a number in (0, 1) or 'B:S' like '6:4'") from None
    if not 0.0 < val < 1.0:
        raise DataError(f"B:S ratio {ratio!r} gives B a share of {val:g}; it must be strictly between 0 and 1")
    return val


def split_scenes(
    weights: Mapping[str, float], ratio: float | str | Sequence[float] = 0.6, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split scenes (whole) into B and S.

    Scenes are shuffled with ``seed``; B takes the prefix of the shuffled order whose summed weight
    (frames) is closest to ``ratio`` of the total, so |B share - ratio| <= max weight / 2 / total.
    Each side gets at least one scene (two or more scenes are needed).
    """
    r = parse_ratio(ratio)
    names = sorted(weights)
    if len(names) < 2:
        raise DataError(
            f"a scene-disjoint B/S split needs at least 2 scenes (clips), got {len(names)}; "
            "record more clips or give blurry and sharp material separately"
        )
    g = torch.Generator().manual_seed(int(seed))
    order = [names[i] for i in torch.randperm(len(names), generator=g).tolist()]
    w = np.array([float(weights[n]) for n in order])
    if (w < 0).any() or w.sum() <= 0:
        raise DataError("scene weights must be positive")
    share = np.cumsum(w) / w.sum()
    k = int(np.argmin(np.abs(share[:-1] - r))) + 1  # 1 .. len-1 scenes in B
    return sorted(order[:k]), sorted(order[k:])


@dataclass
class UnpairedSplit:
    """B and S frame sets and how they were made."""

    b: FrameSet
    s: FrameSet
    mode: str  # "labels" (given blurry/sharp, used whole) or "split" (scene-disjoint split)
    ratio: float | None
    b_scenes: list[str]
    s_scenes: list[str]

    def summary(self) -> dict:
        nb, ns = len(self.b), len(self.s)
        return {
            "mode": self.mode,
            "ratio": self.ratio,
            "b_frames": nb,
            "s_frames": ns,
            "b_scenes": len(self.b_scenes),
            "s_scenes": len(self.s_scenes),
            "b_share_of_frames": nb / (nb + ns) if nb + ns else None,
        }


def make_unpaired(
    frames: FrameSet,
    ratio: float | str | Sequence[float] = 0.6,
    seed: int = 0,
    mode: Literal["auto", "split", "labels"] = "auto",
) -> UnpairedSplit:
    """B and S from cached frames.

    ``labels``: B = every frame labelled (or learned) blurry, S = every sharp frame; used when the
    labelled material is already scene-disjoint (``auto`` picks it when every frame has a given label
    and no scene holds both labels). ``split``: scenes go wholly to B or S at ``ratio`` (weighted by
    their frame counts); B keeps the blurry frames of its scenes, S the sharp frames of its scenes.
    Unlabelled frames use the learned blur threshold. The ratio is only applied by ``split``.
    """
    if len(frames) == 0:
        raise DataError("no frames to split into B and S")
    if any(r.effective_label is None for r in frames.records):
        raise DataError(
            "some frames are unlabelled and have no learned blur label "
            "(the blur threshold could not be learned: give labelled blurry/sharp material or a threshold)"
        )
    scene_labels: dict[str, set] = {}
    for r in frames.records:
        scene_labels.setdefault(r.scene, set()).add(r.label)
    all_given = all(r.label is not None for r in frames.records)
    if mode == "auto":
        mode = "labels" if all_given and all(len(v) == 1 for v in scene_labels.values()) else "split"
    if mode == "labels":
        b, s = frames.with_label("blurry"), frames.with_label("sharp")
        bs = sorted({r.scene for r in b.records})
        ss = sorted({r.scene for r in s.records})
        shared = sorted(set(bs) & set(ss))
        if shared:
            raise DataError(
                f"blurry and sharp material share scene(s) {', '.join(shared[:5])}; use mode 'split' "
                "for a scene-disjoint split"
            )
        r = None
    elif mode == "split":
        weights = {k: float(len(v)) for k, v in frames.scenes().items()}
        bs, ss = split_scenes(weights, ratio, seed)
        bset, sset = set(bs), set(ss)
        b = frames.where(lambda rec: rec.scene in bset and rec.effective_label == "blurry")
        s = frames.where(lambda rec: rec.scene in sset and rec.effective_label == "sharp")
        r = parse_ratio(ratio)
    else:
        raise DataError(f"unknown split mode {mode!r} (auto, split, labels)")
    if len(b) == 0 or len(s) == 0:
        how = "labels" if mode == "labels" else f"scene split at B share {parse_ratio(ratio):g} (seed {seed})"
        hint = "" if mode == "labels" else (
            "; the scenes drawn for " + ("B hold no blurry" if len(b) == 0 else "S hold no sharp")
            + " frames: try another ratio or seed, more clips, or blur_split='per-clip'"
        )
        raise DataError(
            f"the {how} left B with {len(b)} and S with {len(s)} frames "
            f"(labels: {frames.summary()['labels']}, blur threshold: {frames.threshold}){hint}"
        )
    return UnpairedSplit(b, s, mode, r, bs, ss)


# ----------------------------------------------------------------------------- sampler

@dataclass
class UnpairedBatch:
    """One training batch: ``blurry`` (N,3,c,c) from B, ``sharp`` (N,3,c,c) from S, float [0,1]."""

    blurry: torch.Tensor
    sharp: torch.Tensor
    blurry_degree: torch.Tensor  # (N,) blur degree of each augmented B crop by the dataset's measure (low = blurry)
    sharp_degree: torch.Tensor  # (N,)
    blurry_ids: list[tuple[str, int]] = field(default_factory=list)  # (clip, frame index)
    sharp_ids: list[tuple[str, int]] = field(default_factory=list)

    def to(self, device, non_blocking: bool = True) -> "UnpairedBatch":
        return UnpairedBatch(
            self.blurry.to(device, non_blocking=non_blocking),
            self.sharp.to(device, non_blocking=non_blocking),
            self.blurry_degree.to(device),
            self.sharp_degree.to(device),
            self.blurry_ids,
            self.sharp_ids,
        )


class _Order:
    """Endless epochs of a random permutation of ``n`` items (state: permutation + position)."""

    def __init__(self, n: int):
        self.n = n
        self.perm = torch.empty(0, dtype=torch.int64)
        self.pos = 0
        self.epoch = 0

    def next(self, g: torch.Generator) -> int:
        if self.pos >= self.perm.numel():
            self.perm = torch.randperm(self.n, generator=g)
            self.pos = 0
            self.epoch += 1
        i = int(self.perm[self.pos])
        self.pos += 1
        return i

    def state(self, prefix: str) -> dict:
        return {f"{prefix}_perm": self.perm.clone(), f"{prefix}_pos": self.pos, f"{prefix}_epoch": self.epoch}

    def load(self, st: Mapping, prefix: str) -> None:
        perm = torch.as_tensor(st[f"{prefix}_perm"], dtype=torch.int64)
        if perm.numel() and int(perm.max()) >= self.n:
            raise DataError("sampler state does not fit this dataset (it has fewer frames than when saved)")
        self.perm, self.pos, self.epoch = perm.clone(), int(st[f"{prefix}_pos"]), int(st[f"{prefix}_epoch"])


class UnpairedDataset:
    """Endless batches of B and S crops (independent draws; B and S are unpaired).

    Args:
        b, s: frame sets (from :func:`make_unpaired`).
        batch_size: crops of each per batch (paper: 16).
        augment: crop size and augmentation (paper: 256², rotation, flip, colour jitter).
        seed: seed of the one generator behind every draw; ``rank`` (DDP) offsets it so each
            process sees different crops.
        degree: the blur measure of ``blurry_degree`` / ``sharp_degree`` (``laplacian`` or
            ``reblur``, :func:`b2b_train.data.curriculum.blur_degrees`), computed here so a
            prefetching thread does it off the training step.

    Each epoch of B (and of S) visits every frame once in a random order. ``state_dict()`` holds the
    generator state and the epoch positions (tensors and ints, storable with
    ``checkpoint.save_state``).

    ``prefetch=n`` prepares up to ``n`` batches ahead in a background thread (to keep a GPU fed);
    the batches and ``state_dict()`` are exactly those of ``prefetch=0`` (the state is the one after
    the last batch handed out). Call :meth:`close` (or use ``with``) to stop the thread.
    """

    def __init__(
        self,
        b: FrameSet,
        s: FrameSet,
        batch_size: int = 16,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        rank: int = 0,
        prefetch: int = 0,
        degree: str = "laplacian",
    ):
        if batch_size < 1:
            raise DataError(f"batch size must be >= 1, got {batch_size}")
        if len(b) == 0 or len(s) == 0:
            raise DataError(f"B has {len(b)} and S {len(s)} frames; both need at least one")
        self.b, self.s = b, s
        self.degree = degree  # the curriculum's blur measure (data.curriculum.blur_degrees)
        self.batch_size = int(batch_size)
        self.augment = augment or AugmentConfig()
        crop = self.augment.crop
        for name, fs in (("B", b), ("S", s)):
            h, w = fs.min_size()
            if h < crop or w < crop:
                raise DataError(
                    f"{name} has frames of {w}x{h}, smaller than the {crop}x{crop} training crop; "
                    f"use a smaller crop (augment.crop) or larger frames"
                )
        self.seed = int(seed) + 1_000_003 * int(rank)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._ob, self._os = _Order(len(b)), _Order(len(s))
        self.batches = 0
        self.prefetch = max(0, int(prefetch))
        self._thread = None
        self._queue = None
        self._stop = None
        self._consumed_state: dict | None = None  # with prefetching: the state after the last batch handed out

    def __iter__(self) -> Iterator[UnpairedBatch]:
        while True:
            yield self.next()

    def _crop(self, fs: FrameSet, i: int) -> torch.Tensor:
        img = fs.image(i)
        h, w = img.shape[:2]
        p = sample_params(self.augment, h, w, self.generator)
        t, l, rh, rw = crop_region(p)
        region = torch.from_numpy(np.array(img[t : t + rh, l : l + rw])).permute(2, 0, 1).float().div_(255.0)
        return apply_params(region, p, cropped=True)

    def next(self) -> UnpairedBatch:
        """The next batch (from the background thread when prefetching)."""
        if not self.prefetch:
            return self._make()
        if self._thread is None:
            self._start()
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._thread = None
            raise item
        batch, state = item
        self._consumed_state = state
        return batch

    def _start(self) -> None:
        import queue
        import threading

        self._queue = queue.Queue(maxsize=self.prefetch)
        self._stop = threading.Event()
        stop, q = self._stop, self._queue

        def work():
            try:
                while not stop.is_set():
                    item = (self._make(), self._state())
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as e:  # handed to the consumer
                q.put(e)

        if self._consumed_state is None:
            self._consumed_state = self._state()
        self._thread = threading.Thread(target=work, name="b2b-unpaired-prefetch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the prefetch thread (the produced-but-unused batches are dropped; the state is kept)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if self._consumed_state is not None:
                self._restore(self._consumed_state)

    def __enter__(self) -> "UnpairedDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if self._thread is not None:
                self._stop.set()
        except Exception:
            pass

    def _make(self) -> UnpairedBatch:
        from .curriculum import blur_degrees

        g = self.generator
        bi = [self._ob.next(g) for _ in range(self.batch_size)]
        bx = torch.stack([self._crop(self.b, i) for i in bi])
        si = [self._os.next(g) for _ in range(self.batch_size)]
        sx = torch.stack([self._crop(self.s, i) for i in si])
        self.batches += 1
        return UnpairedBatch(
            bx,
            sx,
            blur_degrees(bx, self.degree).float(),
            blur_degrees(sx, self.degree).float(),
            [(self.b.records[i].clip, self.b.records[i].index) for i in bi],
            [(self.s.records[i].clip, self.s.records[i].index) for i in si],
        )

    __next__ = next

    def state_dict(self) -> dict:
        """Everything needed to continue with exactly the next batch (storable by ``save_state``)."""
        if self.prefetch and self._consumed_state is not None:
            return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in self._consumed_state.items()}
        return self._state()

    def _state(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            **self._ob.state("b"),
            **self._os.state("s"),
            "batches": self.batches,
            "seed": self.seed,
            "n_b": len(self.b),
            "n_s": len(self.s),
        }

    def load_state_dict(self, st: Mapping) -> None:
        """Continue from a :meth:`state_dict` (stops and later restarts a prefetch thread)."""
        was = self._thread is not None
        self.close()
        self._restore(st)
        self._consumed_state = self._state() if self.prefetch else None
        if was:
            self._start()

    def _restore(self, st: Mapping) -> None:
        if int(st["n_b"]) != len(self.b) or int(st["n_s"]) != len(self.s):
            raise DataError(
                f"sampler state was saved for B={int(st['n_b'])}/S={int(st['n_s'])} frames, "
                f"this data has B={len(self.b)}/S={len(self.s)}"
            )
        self.generator.set_state(torch.as_tensor(st["generator"], dtype=torch.uint8).clone())
        self._ob.load(st, "b")
        self._os.load(st, "s")
        self.batches = int(st["batches"])


def load_unpaired(
    cache: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    blurry=None,
    sharp=None,
    unlabelled=None,
    ratio: float | str | Sequence[float] = 0.6,
    split_mode: Literal["auto", "split", "labels"] = "auto",
    options: FrameOptions | None = None,
    batch_size: int = 16,
    augment: AugmentConfig | None = None,
    seed: int = 0,
    rank: int = 0,
    prefetch: int = 0,
    blur_threshold: float | None = None,
    blur_split: Literal["global", "per-clip"] = "global",
    strict: bool = False,
    progress: bool = True,
) -> tuple[UnpairedDataset, UnpairedSplit]:
    """Everything in one call: extract/reuse frames, split B/S, and build the sampler.

        data, split = load_unpaired(out_dir / "frames", blurry=blurry_dir, sharp=sharp_dir,
                                    batch_size=16, augment=AugmentConfig(crop=256), seed=0)
        batch = data.next()      # batch.blurry, batch.blurry_degree, batch.sharp
    """
    fs = extract_frames(
        cache, root, blurry=blurry, sharp=sharp, unlabelled=unlabelled, options=options,
        blur_threshold=blur_threshold, blur_split=blur_split, strict=strict, progress=progress,
    )
    split = make_unpaired(fs, ratio=ratio, seed=seed, mode=split_mode)
    ds = UnpairedDataset(split.b, split.s, batch_size=batch_size, augment=augment, seed=seed, rank=rank, prefetch=prefetch)
    return ds, split
