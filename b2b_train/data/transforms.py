"""Training augmentation (paper §4.1: random 256² crops, rotation, flip, colour jitter).

Small pure functions on tensors (kornia style) plus :func:`sample_params` / :func:`apply_params`
that draw every random choice from an explicit ``torch.Generator`` in a fixed order, so the same
generator state gives the same crops bit for bit (runs are reproducible and resumable: save
``generator.get_state()``). Images that must stay aligned (a blurry/sharp pair) share one
:class:`AugmentParams` (:func:`augment_together`).

Rotation is by multiples of 90° by default (exact, no resampling: interpolation would change the
very blur the translator learns). ``rotation_degrees > 0`` adds a small arbitrary rotation, done by
rotating a larger region and cutting the centre crop, so no empty corners appear.

Tensors are float32 ``(3, H, W)`` or ``(N, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "sample_params",
    "crop_region",
    "apply_params",
    "augment",
    "augment_together",
    "hflip",
    "vflip",
    "rot90",
    "rotate",
    "center_crop",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "rgb_to_gray",
]


@dataclass
class AugmentConfig:
    """Augmentation of training crops (typed config; nest it as ``augment``)."""

    crop: int = 256
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    rotation_degrees: float = 0.0  # extra arbitrary rotation in [-d, d] (resamples: off by default)
    brightness: float = 0.1  # factor drawn from [1-b, 1+b]
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02  # shift in turns, from [-h, h] (0.5 = 180°)

    def __post_init__(self):
        if self.crop < 8:
            raise ValueError(f"crop must be >= 8, got {self.crop}")
        for k in ("brightness", "contrast", "saturation"):
            v = getattr(self, k)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{k} must be in [0, 1), got {v}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if not 0.0 <= self.rotation_degrees <= 45.0:
            raise ValueError(f"rotation_degrees must be in [0, 45], got {self.rotation_degrees}")

    @classmethod
    def none(cls, crop: int = 256) -> "AugmentConfig":
        """Random crop only (no flips, rotation or colour change)."""
        return cls(crop=crop, hflip=False, vflip=False, rot90=False, rotation_degrees=0.0,
                   brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)


@dataclass(frozen=True)
class AugmentParams:
    """Every random choice for one image (or one aligned group of images)."""

    top: int
    left: int
    size: int  # output crop side
    region: int  # side of the region cut before an arbitrary rotation (== size without one)
    angle: float = 0.0  # degrees, counter-clockwise
    k90: int = 0
    hflip: bool = False
    vflip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0


def _uniform(gen: torch.Generator | None, lo: float, hi: float) -> float:
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    return lo + (hi - lo) * u


def _randint(gen: torch.Generator | None, n: int) -> int:
    return int(torch.randint(0, max(1, n), (), generator=gen))


def sample_params(cfg: AugmentConfig, height: int, width: int, generator: torch.Generator | None = None) -> AugmentParams:
    """Draw one image's augmentation (always the same number of draws, in the same order)."""
    size = cfg.crop
    if height < size or width < size:
        raise ValueError(f"image {width}x{height} is smaller than the {size}x{size} crop")
    angle = _uniform(generator, -cfg.rotation_degrees, cfg.rotation_degrees) if cfg.rotation_degrees > 0 else 0.0
    region = size
    if angle:
        r = math.radians(abs(angle))
        region = min(height, width, int(math.ceil(size * (math.cos(r) + math.sin(r)))) + 2)
    top = _randint(generator, height - region + 1)
    left = _randint(generator, width - region + 1)
    k90 = _randint(generator, 4) if cfg.rot90 else 0
    hf = bool(_randint(generator, 2)) if cfg.hflip else False
    vf = bool(_randint(generator, 2)) if cfg.vflip else False
    b = _uniform(generator, 1 - cfg.brightness, 1 + cfg.brightness) if cfg.brightness else 1.0
    c = _uniform(generator, 1 - cfg.contrast, 1 + cfg.contrast) if cfg.contrast else 1.0
    s = _uniform(generator, 1 - cfg.saturation, 1 + cfg.saturation) if cfg.saturation else 1.0
    h = _uniform(generator, -cfg.hue, cfg.hue) if cfg.hue else 0.0
    return AugmentParams(top, left, size, region, angle, k90, hf, vf, b, c, s, h)


def crop_region(p: AugmentParams) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the source region :func:`apply_params` needs."""
    return p.top, p.left, p.region, p.region


# ----------------------------------------------------------------------------- geometric

def _b(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() != 4:
        raise ValueError(f"expected (3,H,W) or (N,3,H,W), got {tuple(x.shape)}")
    return x, False


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror left-right. ``(..., H, W) -> (..., H, W)``."""
    return x.flip(-1)


def vflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror top-bottom. ``(..., H, W) -> (..., H, W)``."""
    return x.flip(-2)


def rot90(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate by ``k`` quarter turns counter-clockwise. ``(..., H, W) -> (..., W, H)`` for odd k."""
    return torch.rot90(x, k % 4, dims=(-2, -1))


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Central ``size x size`` window. ``(..., H, W) -> (..., size, size)``."""
    h, w = x.shape[-2:]
    t, l = (h - size) // 2, (w - size) // 2
    return x[..., t : t + size, l : l + size]


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre (bilinear, reflected border). ``(N,3,H,W)`` or ``(3,H,W)``, same shape."""
    if not degrees:
        return x
    xb, squeeze = _b(x)
    a = math.radians(degrees)
    h, w = xb.shape[-2:]
    cos, sin = math.cos(a), math.sin(a)
    # affine_grid works in normalised coords; correct for the aspect ratio
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=xb.dtype, device=xb.device)
    grid = F.affine_grid(theta[None].expand(xb.shape[0], 2, 3), list(xb.shape), align_corners=False)
    out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out[0] if squeeze else out


# ----------------------------------------------------------------------------- colour

def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma. ``(..., 3, H, W) -> (..., 1, H, W)``."""
    r, g, b = x[..., 0:1, :, :], x[..., 1:2, :, :], x[..., 2:3, :, :]
    return 0.299 * r + 0.587 * g + 0.114 * b


def adjust_brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale intensities by ``factor`` (clamped to [0, 1])."""
    return (x * factor).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's mean gray level: ``factor`` 1 = unchanged, 0 = flat gray."""
    mean = rgb_to_gray(x).mean(dim=(-3, -2, -1), keepdim=True)
    return ((x - mean) * factor + mean).clamp_(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the gray image: ``factor`` 1 = unchanged, 0 = grayscale."""
    g = rgb_to_gray(x)
    return ((x - g) * factor + g).clamp_(0.0, 1.0)


_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def adjust_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (rotation of the chroma plane in YIQ space)."""
    if not shift:
        return x
    a = 2.0 * math.pi * shift
    c, s = math.cos(a), math.sin(a)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    m = torch.linalg.inv(_RGB2YIQ) @ rot @ _RGB2YIQ
    m = m.to(x.device, x.dtype)
    out = torch.einsum("ij,...jhw->...ihw", m, x)
    return out.clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------- apply

def apply_params(x: torch.Tensor, p: AugmentParams, cropped: bool = False) -> torch.Tensor:
    """Apply ``p`` to ``(3,H,W)`` or ``(N,3,H,W)``; returns ``(..., 3, size, size)``.

    With ``cropped=True`` ``x`` is already the :func:`crop_region` of the source image.
    Order: crop, rotation, quarter turns, flips, brightness, contrast, saturation, hue.
    """
    if not cropped:
        x = x[..., p.top : p.top + p.region, p.left : p.left + p.region]
    if x.shape[-1] != p.region or x.shape[-2] != p.region:
        raise ValueError(f"region {tuple(x.shape[-2:])} does not match the parameters' {p.region}")
    if p.angle:
        x = center_crop(rotate(x, p.angle), p.size)
    if p.k90:
        x = rot90(x, p.k90)
    if p.hflip:
        x = hflip(x)
    if p.vflip:
        x = vflip(x)
    x = x.contiguous().float()
    if p.brightness != 1.0:
        x = adjust_brightness(x, p.brightness)
    if p.contrast != 1.0:
        x = adjust_contrast(x, p.contrast)
    if p.saturation != 1.0:
        x = adjust_saturation(x, p.saturation)
    if p.hue:
        x = adjust_hue(x, p.hue)
    return x


def _to_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


def augment(
    image: np.ndarray | torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, AugmentParams]:
    """Augment one image (uint8 HxWx3 array or float (3,H,W)); only the crop region is converted."""
    h, w = (image.shape[:2] if isinstance(image, np.ndarray) else image.shape[-2:])
    p = sample_params(cfg, int(h), int(w), generator)
    t, l, rh, rw = crop_region(p)
    region = image[t : t + rh, l : l + rw] if isinstance(image, np.ndarray) else image[..., t : t + rh, l : l + rw]
    return apply_params(_to_tensor(region), p, cropped=True), p


def augment_together(
    images: Sequence[np.ndarray | torch.Tensor], cfg: AugmentConfig, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Augment aligned images (same size) with ONE draw of parameters (e.g. a blurry/sharp pair)."""
    if not images:
        return []
    shapes = {tuple(a.shape[:2]) if isinstance(a, np.ndarray) else tuple(a.shape[-2:]) for a in images}
    if len(shapes) != 1:
        raise ValueError(f"images to augment together differ in size: {sorted(shapes)}")
    h, w = shapes.pop()
    p = sample_params(cfg, h, w, generator)
    t, l, rh, rw = crop_region(p)
    out = []
    for a in images:
        region = a[t : t + rh, l : l + rw] if isinstance(a, np.ndarray) else a[..., t : t + rh, l : l + rw]
        out.append(apply_params(_to_tensor(region), p, cropped=True))
    return out


def with_crop(cfg: AugmentConfig, crop: int) -> AugmentConfig:
    """A copy of ``cfg`` with another crop size."""
    return replace(cfg, crop=crop)
