"""PatchGAN discriminator (Isola et al., pix2pix, CVPR 2017) and its multi-scale use in Blur2Blur.

:class:`NLayerDiscriminator` is pix2pix's ``NLayerDiscriminator``: ``n_layers`` stride-2 4x4
convolutions (the first without normalisation), one stride-1 4x4 convolution with normalisation,
and a stride-1 4x4 convolution to one logit channel, LeakyReLU(0.2) in between. With ``ndf=64``,
``n_layers=3`` every output logit sees a 70x70 input patch. Its layers sit in one
``nn.Sequential`` called ``model``, so parameter names are pix2pix's (``model.0.weight``,
``model.2.weight``...) and pix2pix / Blur2Blur ``latest_net_D.pth`` files load as they are.
Convolution biases follow pix2pix: present except before a BatchNorm.

:class:`MultiScaleDiscriminator` applies a PatchGAN to each of the translator's three outputs
(¼, ½, full) and returns one logit map per scale. ``shared=True`` uses one network for all scales,
as the released Blur2Blur code does; its parameters are then named exactly like a single
PatchGAN's (``model.N.*``), so the released ``latest_net_D.pth`` loads into it directly.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import NetSpec, StateDict, register

__all__ = ["NLayerDiscriminator", "MultiScaleDiscriminator", "receptive_field", "remap_pix2pix"]

NORMS = ("instance", "batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def receptive_field(n_layers: int = 3, kernel_size: int = 4) -> int:
    """Input patch side seen by one output logit of an ``n_layers`` PatchGAN (70 for 3)."""
    strides = [2] * n_layers + [1, 1]
    rf = 1
    for s in reversed(strides):
        rf = (rf - 1) * s + kernel_size
    return rf


class NLayerDiscriminator(nn.Module):
    """PatchGAN: (N, C, H, W) -> (N, 1, h, w) real/fake logits, one per overlapping patch.

    Args:
        input_nc: input channels (3).
        ndf: filters of the first convolution (64).
        n_layers: stride-2 layers (3 gives the 70x70 PatchGAN).
        norm: ``instance`` (Blur2Blur), ``batch`` (pix2pix default) or ``none``.
        spectral_norm: wrap every convolution in spectral normalisation (changes parameter names
            to ``model.N.parametrizations.weight.original``; no published file uses it).

    For a 256x256 input the map is 30x30; in general ``(H//2**n - 2) x (W//2**n - 2)``
    (n = ``n_layers``), so H, W must be at least ``3 * 2**n`` (24 px for the 70x70 PatchGAN).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", spectral_norm: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"discriminator norm must be one of {NORMS}, got {norm!r}")
        if n_layers < 1:
            raise ConfigError(f"discriminator n_layers must be >= 1, got {n_layers}")
        self.n_layers, self.norm = int(n_layers), norm
        bias = norm != "batch"
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)

        layers: list[nn.Module] = [sn(nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                sn(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias)),
                _norm(norm, ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(sn(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MultiScaleDiscriminator(nn.Module):
    """A PatchGAN per translator scale.

    Args:
        num_scales: number of inputs (3: ¼, ½, full).
        shared: one PatchGAN for every scale (released Blur2Blur code; parameters ``model.N.*``)
            or one per scale (parameters ``scales.K.model.N.*``, K = 0 for the coarsest).
        pyramid_mode: how :meth:`forward` makes the smaller scales when given one image instead
            of a list: ``bilinear`` (what the released code does for the real known-blur images),
            ``area`` or ``nearest`` (same pixels as the translator's own input pyramid).
        min_side: scales with a side below this many px are left out of the output (the full
            scale is always kept).
        **kwargs: :class:`NLayerDiscriminator` arguments (``ndf``, ``n_layers``, ``norm``,
            ``spectral_norm``, ``input_nc``).

    Forward: a list of ``num_scales`` tensors (N, C, H_k, W_k), coarsest first (the translator's
    output order), or one full-size tensor -> list of logit maps (N, 1, h_k, w_k), same order.
    With ``n_layers=3`` each input needs sides of at least 24 px (so full-size crops of at least
    96 px when the ¼ scale is used); 256 px crops give 30, 14 and 6 px logit maps.
    """

    def __init__(self, num_scales: int = 3, shared: bool = True, pyramid_mode: str = "bilinear", min_side: int = 0,
                 **kwargs):
        super().__init__()
        # scales whose images are smaller than this are not judged: at 96 px crops the 1/4 scale is
        # 24 px and instance norm would run on 2x2 maps, a noisy signal that points nowhere
        self.min_side = int(min_side)
        if num_scales < 1:
            raise ConfigError(f"discriminator num_scales must be >= 1, got {num_scales}")
        if pyramid_mode not in ("bilinear", "area", "nearest"):
            raise ConfigError(f"discriminator pyramid_mode must be bilinear, area or nearest, got {pyramid_mode!r}")
        self.num_scales, self.shared, self.pyramid_mode = int(num_scales), bool(shared), pyramid_mode
        if shared:
            self.model = NLayerDiscriminator(**kwargs).model
        else:
            self.scales = nn.ModuleList([NLayerDiscriminator(**kwargs) for _ in range(num_scales)])

    def make_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One image (N, C, H, W) -> ``num_scales`` images, coarsest first, halving each time."""
        out = [x]
        for _ in range(self.num_scales - 1):
            prev = out[-1]
            if self.pyramid_mode == "nearest":
                out.append(prev[..., ::2, ::2])
            elif self.pyramid_mode == "area":
                out.append(F.avg_pool2d(prev, 2, ceil_mode=True))
            else:
                out.append(F.interpolate(prev, scale_factor=0.5, mode="bilinear", align_corners=False))
        return out[::-1]

    def discriminator(self, k: int) -> nn.Module:
        """The network applied at scale ``k`` (0 = coarsest)."""
        return self.model if self.shared else self.scales[k]

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        xs = self.make_pyramid(x) if isinstance(x, torch.Tensor) else list(x)
        if len(xs) != self.num_scales:
            raise ValueError(f"expected {self.num_scales} scales, got {len(xs)}")
        keep = [k for k, xi in enumerate(xs) if min(xi.shape[-2:]) >= self.min_side] or [len(xs) - 1]
        return [self.discriminator(k)(xs[k]) for k in keep]


def remap_pix2pix(state: StateDict) -> StateDict:
    """pix2pix / Blur2Blur ``netD`` keys -> ours (identical once ``module.`` is stripped).

    Also drops a ``netD.``/``D.`` wrapper prefix when every key has it.
    """
    keys = list(state)
    out = dict(state)
    for p in ("netD.", "D."):
        if keys and all(k.startswith(p) for k in keys):
            out = {k[len(p):]: v for k, v in state.items()}
            break
    return out


def _build(**kw) -> NLayerDiscriminator:
    return NLayerDiscriminator(**kw)


register(NetSpec(
    name="patchgan",
    family="discriminator",
    build=_build,
    remap=remap_pix2pix,
    to_official=lambda s: dict(s),
    published_params=2_764_737,  # pix2pix 70x70 PatchGAN, ndf 64, instance norm (biased convs)
    multiple=1,
    description="70x70 PatchGAN (pix2pix NLayerDiscriminator, ndf 64, 3 layers, instance norm)",
    tiny_kwargs={"ndf": 8, "n_layers": 2},
))
