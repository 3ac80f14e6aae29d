"""A uint8 bank of sharp images on the training device, and random training crops gathered in batch.

The per-crop sampler (:class:`b2b_train.deblur_trainer.CropSampler`) draws each crop's image,
position, flip and rotation with its own host-side calls and copies the crops one by one: cheap on a
CPU, but on a GPU it leaves the device waiting on Python. :class:`ImageBank` decodes the images
once into one flat uint8 tensor on the device (pinned host memory when the device is the CPU and
CUDA exists, so copies stay asynchronous), draws every random choice of a batch with one call per
kind from its own generator on that device, and gathers all crops with one indexing operation, the
flips and 90° rotations folded into the gather's coordinates. Nothing reads a drawn value on the host.

The crops follow the per-crop sampler's distribution: a uniformly chosen image, a uniform position,
a horizontal flip with probability ½, then a rotation by k·90° with k uniform in 0..3.

    bank = ImageBank(images, device="cuda", seed=0)      # images: HxWx3 uint8 arrays
    sharp = bank.batch(32, 128)                           # (32, 3, 128, 128) float in [0, 1]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import DataError

__all__ = ["ImageBank", "crop_coordinates"]


def crop_coordinates(size: int, flip: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows and columns ``(n, size, size)`` inside a crop for each output pixel.

    Output pixel ``(i, j)`` of crop ``c`` reads source pixel ``(rows[c, i, j], cols[c, i, j])`` of the
    untransformed crop, so that the result equals ``torch.rot90(patch.flip(-1) if flip else patch,
    rot, dims=(-2, -1))``. ``flip``: ``(n,)`` bool; ``rot``: ``(n,)`` integers in 0..3.
    """
    n = flip.shape[0]
    dev = flip.device
    ar = torch.arange(size, device=dev)
    i = ar.view(1, size, 1).expand(n, size, size)
    j = ar.view(1, 1, size).expand(n, size, size)
    last = size - 1
    r = rot.view(n, 1, 1) % 4
    # rot90 by k (dims (-2, -1)) reads: k=1 (j, last-i), k=2 (last-i, last-j), k=3 (last-j, i)
    a = torch.where(r == 0, i, torch.where(r == 1, j, torch.where(r == 2, last - i, last - j)))
    b = torch.where(r == 0, j, torch.where(r == 1, last - i, torch.where(r == 2, last - j, i)))
    b = torch.where(flip.view(n, 1, 1), last - b, b)
    return a, b


class ImageBank:
    """Images decoded once into one flat uint8 tensor on ``device``; crops drawn and gathered in batch.

    ``images``: HxWx3 uint8 arrays (or 3xHxW uint8 tensors). ``seed`` seeds the bank's own
    generator (on ``device``), whose state is the bank's :meth:`state_dict`, so a resumed run draws
    the same crops. ``rotate=False`` leaves rotations out (as the per-crop sampler's option).
    """

    def __init__(self, images: Sequence[np.ndarray | torch.Tensor], device: torch.device | str = "cpu",
                 seed: int = 0, rotate: bool = True):
        if len(images) == 0:
            raise DataError("an image bank needs at least one image")
        self.device = torch.device(device)
        self.rotate = bool(rotate)
        chw = [torch.as_tensor(im).permute(2, 0, 1) if not isinstance(im, torch.Tensor) else im for im in images]
        for t in chw:
            if t.dtype != torch.uint8 or t.dim() != 3:
                raise DataError(f"image bank takes uint8 images with channels, got {t.dtype} {tuple(t.shape)}")
        self.channels = int(chw[0].shape[0])
        if any(int(t.shape[0]) != self.channels for t in chw):
            raise DataError("image bank images must all have the same number of channels")
        sizes = [int(t[0].numel()) for t in chw]
        flat = torch.cat([t.reshape(-1) for t in chw])
        if self.device.type == "cpu" and torch.cuda.is_available():
            flat = flat.pin_memory()
        self.flat = flat.to(self.device)
        starts = np.concatenate([[0], np.cumsum([s * self.channels for s in sizes])[:-1]])
        self.offsets = torch.tensor(starts, dtype=torch.long, device=self.device)
        self.heights = torch.tensor([int(t.shape[1]) for t in chw], dtype=torch.long, device=self.device)
        self.widths = torch.tensor([int(t.shape[2]) for t in chw], dtype=torch.long, device=self.device)
        self.min_side = int(min(min(int(t.shape[1]), int(t.shape[2])) for t in chw))
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    def __len__(self) -> int:
        return int(self.offsets.numel())

    def _uniform_int(self, n: int, hi: torch.Tensor | int) -> torch.Tensor:
        """``(n,)`` long, uniform in ``[0, hi)`` per element (``hi`` may differ per element)."""
        u = torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)
        hi_t = torch.as_tensor(hi, device=self.device, dtype=torch.float64)
        return (u * hi_t).floor().long().clamp_max(torch.as_tensor(hi, device=self.device) - 1).clamp_min(0)

    def crops(self, n: int, size: int, gather: str = "auto") -> torch.Tensor:
        """``(n, channels, size, size)`` uint8 crops on the bank's device.

        ``gather``: ``index`` (one indexing operation, flips and rotations folded into its
        coordinates: the device path), ``slices`` (a copy per crop: on a CPU 5x cheaper than building
        the index) or ``auto`` (``slices`` on the CPU). Both give the same crops from the same draws.
        """
        size = int(size)
        if size > self.min_side:
            raise DataError(f"crop {size} px is larger than the smallest bank image ({self.min_side} px)")
        idx = self._uniform_int(n, len(self))
        h, w = self.heights[idx], self.widths[idx]
        y = self._uniform_int(n, h - size + 1)
        x = self._uniform_int(n, w - size + 1)
        flip = self._uniform_int(n, 2).bool()
        rot = self._uniform_int(n, 4) if self.rotate else torch.zeros(n, dtype=torch.long, device=self.device)
        if gather == "auto":
            gather = "slices" if self.device.type == "cpu" else "index"
        if gather == "slices":
            return self._slices(size, idx, y, x, flip, rot)
        if gather != "index":
            raise ValueError(f"gather must be index, slices or auto, got {gather!r}")
        a, b = crop_coordinates(size, flip, rot)  # (n, s, s) inside the crop
        pix = (y.view(n, 1, 1) + a) * w.view(n, 1, 1) + (x.view(n, 1, 1) + b)  # (n, s, s) inside the image
        plane = (h * w).view(n, 1, 1, 1)
        ch = torch.arange(self.channels, device=self.device).view(1, self.channels, 1, 1)
        index = self.offsets[idx].view(n, 1, 1, 1) + ch * plane + pix.unsqueeze(1)
        return self.flat[index]

    def _slices(self, size, idx, y, x, flip, rot) -> torch.Tensor:
        c = self.channels
        out = torch.empty(len(idx), c, size, size, dtype=torch.uint8, device=self.device)
        rows = zip(*(t.tolist() for t in (self.offsets[idx], self.heights[idx], self.widths[idx], y, x, flip, rot)))
        for i, (off, h, w, y0, x0, f, r) in enumerate(rows):
            patch = self.flat[off : off + c * h * w].view(c, h, w)[:, y0 : y0 + size, x0 : x0 + size]
            if f:
                patch = patch.flip(-1)
            out[i] = torch.rot90(patch, r, dims=(1, 2)) if r else patch
        return out

    def batch(self, n: int, size: int) -> torch.Tensor:
        """``(n, channels, size, size)`` float32 in ``[0, 1]``."""
        return self.crops(n, size).float().div_(255.0)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].to(torch.uint8).cpu())
