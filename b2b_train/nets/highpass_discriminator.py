"""A local discriminator that looks only at the high-pass image: where blur lives.

Blur changes an image's fine detail and little else, and per crop the difference between a
camera's blur and a known blur is faint: a PatchGAN on the whole image mostly sees content and
colour. DSGAN (Fritsche et al., "Frequency Separation for Real-World Super-Resolution", 2019)
trains its discriminator on ``x - lowpass(x)`` instead. This one subtracts a ``box``-px box blur,
then applies ``len(channels)`` stride-1 5x5 convolutions with LeakyReLU and no normalisation (small
crops leave instance norm nothing to normalise), and a 1x1 convolution to one logit per pixel.
Its receptive field is ``4 * len(channels) + box`` px: local texture, not scene content.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import NetSpec, register

__all__ = ["HighPassDiscriminator", "WithLocalDiscriminator", "high_pass"]


def high_pass(x: torch.Tensor, box: int = 5) -> torch.Tensor:
    """``x`` minus its ``box x box`` mean (reflect-padded): the detail a blur removes."""
    r = box // 2
    low = F.avg_pool2d(F.pad(x, (r, r, r, r), mode="reflect"), box, stride=1)
    return x - low


class HighPassDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1, H, W) per-pixel logits of the high-pass image.

    Args:
        input_nc: input channels (3).
        channels: widths of the 5x5 convolutions (``(32, 64, 64)``).
        box: side of the box blur subtracted first (odd).
        gain: the high-pass image is multiplied by this before the first convolution (its values
            are small: +-0.05 on natural images) so the default initialisation sees unit-scale input.
    """

    def __init__(self, input_nc: int = 3, channels: Sequence[int] = (32, 64, 64), box: int = 5, gain: float = 10.0):
        super().__init__()
        if box < 3 or box % 2 == 0:
            raise ConfigError(f"high-pass discriminator box must be odd and >= 3, got {box}")
        if not channels:
            raise ConfigError("high-pass discriminator needs at least one convolution")
        self.box, self.gain = int(box), float(gain)
        layers: list[nn.Module] = []
        prev = input_nc
        for c in channels:
            layers += [nn.Conv2d(prev, int(c), 5, padding=2, padding_mode="reflect"), nn.LeakyReLU(0.2)]
            prev = int(c)
        layers.append(nn.Conv2d(prev, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(high_pass(x, self.box) * self.gain)


class WithLocalDiscriminator(nn.Module):
    """A main discriminator plus a local high-pass one on the full-size input: one list of logit maps.

    Takes what the main one takes (one image, or the translator's scales coarsest first) and
    returns its logit maps followed by the local one's on the full-size image; the losses average
    over the list, so each map counts alike.
    """

    def __init__(self, main: nn.Module, local: nn.Module):
        super().__init__()
        self.main, self.local = main, local

    def forward(self, x):
        out = self.main(x)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        full = x[-1] if isinstance(x, (list, tuple)) else x
        return out + [self.local(full)]


register(NetSpec(
    name="highpass",
    family="discriminator",
    build=lambda **kw: HighPassDiscriminator(**kw),
    multiple=1,
    description="local high-pass discriminator (x - 5x5 box; three 5x5 convs, per-pixel logits; DSGAN-style)",
    tiny_kwargs={"channels": (8, 16)},
))
