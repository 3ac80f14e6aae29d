"""Blur-preserving differentiable augmentation of the discriminator's inputs (DiffAugment).

With few sharp frames the discriminator can memorise K (made from a small S) instead of learning
what the known blur looks like; DiffAugment (Zhao et al., "Differentiable Augmentation for
Data-Efficient GAN Training", 2020) augments everything D sees, real and fake alike, with
differentiable operations so G still gets a gradient. Here only operations that leave blur as it
is: colour (brightness, saturation, contrast: per-image affine maps of the values), integer
translation (pixels moved, never resampled) and cutout (a zeroed square, the same for real and
fake so D cannot use its edge). Rescaling and non-90° rotations would resample the image and
change its blur, so they are not offered.

    x_aug = diff_augment(x, "color,translation,cutout", generator=g)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["POLICIES", "parse_policy", "diff_augment", "brightness", "saturation", "contrast", "translation", "cutout"]


def _rand(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=generator, device=x.device if generator is None else generator.device
                      ).to(device=x.device, dtype=x.dtype)


def brightness(x: torch.Tensor, amount: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add one offset in ``[-amount/2, amount/2)`` per image."""
    return x + (_rand(x.shape[0], x, generator) - 0.5) * amount


def saturation(x: torch.Tensor, amount: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image's deviation from its grey by a factor in ``[1 - amount, 1 + amount)``."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (1.0 + (_rand(x.shape[0], x, generator) * 2 - 1) * amount) + mean


def contrast(x: torch.Tensor, amount: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image's deviation from its mean by a factor in ``[1 - amount/2, 1 + amount/2)``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (1.0 + (_rand(x.shape[0], x, generator) - 0.5) * amount) + mean


def translation(x: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its size each way; the uncovered border
    is zero. A gather, not a resampling: the pixels that stay are the input's own."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = x.device
    gen_dev = generator.device if generator is not None else dev
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator, device=gen_dev).to(dev)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator, device=gen_dev).to(dev)
    gy = torch.arange(h, device=dev).view(1, h, 1) + ty
    gx = torch.arange(w, device=dev).view(1, 1, w) + tx
    # pad by one zero pixel and point everything that falls outside at it
    gy = (gy + 1).clamp(0, h + 1)
    gx = (gx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))
    idx = (gy * (w + 2) + gx).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def cutout(x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one square of ``ratio`` of the image's size per image, at a random place inside it."""
    n, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dev = x.device
    gen_dev = generator.device if generator is not None else dev
    y0 = torch.randint(0, h - ch + 1, (n, 1, 1), generator=generator, device=gen_dev).to(dev)
    x0 = torch.randint(0, w - cw + 1, (n, 1, 1), generator=generator, device=gen_dev).to(dev)
    yy = torch.arange(h, device=dev).view(1, h, 1)
    xx = torch.arange(w, device=dev).view(1, 1, w)
    inside = (yy >= y0) & (yy < y0 + ch) & (xx >= x0) & (xx < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str | Sequence[str] | None) -> list[str]:
    """``"color,translation"`` (or a list) -> the names, checked; empty / None -> no augmentation."""
    if not policy:
        return []
    names = [p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip()]
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ConfigError(f"unknown DiffAugment operation(s) {bad}; blur-preserving ones are {sorted(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str | Sequence[str] | None, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Apply ``policy``'s operations in order, each with fresh per-image draws from ``generator``."""
    for name in parse_policy(policy):
        for op in POLICIES[name]:
            x = op(x, generator=generator)
    return x
