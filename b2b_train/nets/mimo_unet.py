"""MIMO-UNet and MIMO-UNet+ (Cho et al., *Rethinking Coarse-to-Fine Approach in Single Image
Deblurring*, ICCV 2021), the blur-to-blur translator G of Blur2Blur (§3.2, §4.1.1).

One U-Net with three encoder/decoder levels takes the image at full, ½ and ¼ resolution
(multi-input: shallow convolutional modules SCM feed the ½ and ¼ images in through feature
attention modules FAM) and emits one image per level (multi-output); asymmetric feature fusion
(AFF) mixes the encoder features of all levels into each decoder skip. Every output is a residual
on the input image at its scale, so a network whose output convolutions are zero is the identity.

Parameter names are those of the official code (chosj95/MIMO-UNet ``models/MIMOUNet.py``):
``Encoder.0.layers.3.main.1.main.0.weight``, ``feat_extract.3.main.0.weight`` (a transposed
convolution), ``AFFs.1.conv.0.main.0.bias``, ``SCM2.main.0.main.0.weight``, ``FAM1.merge.main.0.weight``...
so its ``{'model': state_dict}`` files and the Blur2Blur release's ``latest_net_G.pth`` (a plain
state dict of the same network, ``module.`` prefixed when it was saved from DataParallel) load as
they are.

Differences from the official forward, none of which changes a result on inputs whose sides are
multiples of 4: any input size is accepted (reflect-padded to a multiple of 4, outputs cropped
back to ``ceil(H/s) x ceil(W/s)`` at scale ``1/s``), and the ½/¼ input images are taken by strided
slicing ``x[..., ::2, ::2]``, which is exactly what the official ``F.interpolate(x,
scale_factor=0.5)`` (nearest) computes, and exports to plain Slice ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .layers import pad_to_multiple
from .registry import NetSpec, StateDict, register

__all__ = ["MIMOUNet", "pyramid", "pad_to_multiple", "remap_blur2blur", "MULTIPLE"]

MULTIPLE = 4  # two stride-2 levels


# ----------------------------------------------------------------------------- pure functions

def pyramid(x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
    """The inputs the translator's outputs are residual to, coarsest first.

    Args:
        x: (N, C, H, W).
    Returns:
        ``levels`` tensors ``[x[..., ::2**(L-1), ::2**(L-1)], ..., x[..., ::2, ::2], x]``, shapes
        (N, C, ceil(H/2**k), ceil(W/2**k)): nearest-neighbour halving, as MIMO-UNet does inside.
    """
    out = [x]
    for _ in range(levels - 1):
        out.append(out[-1][..., ::2, ::2])
    return out[::-1]


def _halve(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H/2, W/2), nearest (H, W even)."""
    return x[..., ::2, ::2]


def _double(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W), nearest."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


# ----------------------------------------------------------------------------- building blocks

class BasicConv(nn.Module):
    """Conv (or transposed conv, k=4 s=2 doubling the size) + optional ReLU, in ``self.main``."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, relu: bool = True, transpose: bool = False):
        super().__init__()
        if transpose:
            conv: nn.Module = nn.ConvTranspose2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2 - 1)
        else:
            conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2)
        layers = [conv] + ([nn.ReLU()] if relu else [])
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class ResBlock(nn.Module):
    """x + conv3x3(relu(conv3x3(x)))."""

    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(BasicConv(channels, channels, 3, relu=True), BasicConv(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class ResStack(nn.Module):
    """``num_res`` ResBlocks in ``self.layers`` (the official EBlock / DBlock)."""

    def __init__(self, channels: int, num_res: int):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channels) for _ in range(num_res)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AFF(nn.Module):
    """Asymmetric feature fusion: concat three levels' features, 1x1 conv + ReLU, 3x3 conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(BasicConv(cin, cout, 1, relu=True), BasicConv(cout, cout, 3, relu=False))

    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b, c], dim=1))


class SCM(nn.Module):
    """Shallow convolutional module: image (3 ch) -> ``planes`` features, the image kept as 3 of them."""

    def __init__(self, planes: int):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(3, planes // 4, 3, relu=True),
            BasicConv(planes // 4, planes // 2, 1, relu=True),
            BasicConv(planes // 2, planes // 2, 3, relu=True),
            BasicConv(planes // 2, planes - 3, 1, relu=True),
        )
        self.conv = BasicConv(planes, planes, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, self.main(x)], dim=1))


class FAM(nn.Module):
    """Feature attention module: ``a + conv3x3(a * b)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.merge = BasicConv(channels, channels, 3, relu=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + self.merge(a * b)


# ----------------------------------------------------------------------------- the network

class MIMOUNet(nn.Module):
    """Multi-input multi-output U-Net.

    Args:
        base_channel: width of the full-resolution level (the ½ and ¼ levels have 2x and 4x); 32
            in the paper. Must be even and at least 4.
        num_res: residual blocks per encoder/decoder stage: 8 (MIMO-UNet), 20 (MIMO-UNet+).
        dropout: Dropout2d rate on the two fused skips during training: 0 (MIMO-UNet), 0.1 (MIMO-UNet+).
        zero_init_output: start as the identity (all three output convolutions zero), a calm
            starting point for a blur-to-blur translator.
        smooth_upsample_init: start both transposed convolutions as bilinear upsampling times a
            random channel mix (same variance as the default init), so they add no checkerboard at
            the start (ours, not the paper's; an option for experiments: BENCHMARKS.md
            `quality-history`).

    Forward: ``x`` (N, 3, H, W) in [0, 1], any H, W -> ``[out_quarter, out_half, out_full]`` with
    shapes (N, 3, ceil(H/4), ceil(W/4)), (N, 3, ceil(H/2), ceil(W/2)), (N, 3, H, W); each equals
    the network's output plus the matching element of :func:`pyramid` ``(x)``. Values are not clamped.
    ``torch.export`` works at fixed sizes, and with dynamic H, W when they are declared as
    multiples of 4 (``Dim`` expressions ``4 * d``), as a caller that pads once up front does.
    """

    def __init__(self, base_channel: int = 32, num_res: int = 8, dropout: float = 0.0, zero_init_output: bool = False,
                 smooth_upsample_init: bool = False):
        super().__init__()
        c = int(base_channel)
        if c < 4 or c % 2:
            raise ConfigError(f"MIMO-UNet base_channel must be even and >= 4, got {base_channel}")
        if num_res < 1:
            raise ConfigError(f"MIMO-UNet num_res must be >= 1, got {num_res}")
        self.base_channel, self.num_res = c, int(num_res)
        self.Encoder = nn.ModuleList([ResStack(c, num_res), ResStack(2 * c, num_res), ResStack(4 * c, num_res)])
        self.feat_extract = nn.ModuleList([
            BasicConv(3, c, 3, relu=True),
            BasicConv(c, 2 * c, 3, stride=2, relu=True),
            BasicConv(2 * c, 4 * c, 3, stride=2, relu=True),
            BasicConv(4 * c, 2 * c, 4, stride=2, relu=True, transpose=True),
            BasicConv(2 * c, c, 4, stride=2, relu=True, transpose=True),
            BasicConv(c, 3, 3, relu=False),
        ])
        self.Decoder = nn.ModuleList([ResStack(4 * c, num_res), ResStack(2 * c, num_res), ResStack(c, num_res)])
        self.Convs = nn.ModuleList([BasicConv(4 * c, 2 * c, 1, relu=True), BasicConv(2 * c, c, 1, relu=True)])
        self.ConvsOut = nn.ModuleList([BasicConv(4 * c, 3, 3, relu=False), BasicConv(2 * c, 3, 3, relu=False)])
        self.AFFs = nn.ModuleList([AFF(7 * c, c), AFF(7 * c, 2 * c)])
        self.FAM1 = FAM(4 * c)
        self.SCM1 = SCM(4 * c)
        self.FAM2 = FAM(2 * c)
        self.SCM2 = SCM(2 * c)
        # parameter-free, so MIMO-UNet and MIMO-UNet+ files share one key layout
        self.drop1 = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.drop2 = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        if smooth_upsample_init:  # each output phase gets taps (0.75, 0.25) per axis: bilinear
            b = torch.tensor([0.25, 0.75, 0.75, 0.25])
            for m in (self.feat_extract[3], self.feat_extract[4]):
                w = m.main[0].weight
                with torch.no_grad():
                    w.copy_(w.mean(dim=(2, 3), keepdim=True) * 8.0 * (b[:, None] * b[None, :]))
        if zero_init_output:
            for m in (self.feat_extract[5], *self.ConvsOut):
                nn.init.zeros_(m.main[0].weight)
                nn.init.zeros_(m.main[0].bias)

    def forward_padded(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The official forward: ``x`` (N, 3, H, W) with H, W multiples of 4."""
        x_2 = _halve(x)
        x_4 = _halve(x_2)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)

        res1 = self.Encoder[0](self.feat_extract[0](x))
        z = self.FAM2(self.feat_extract[1](res1), z2)
        res2 = self.Encoder[1](z)
        z = self.FAM1(self.feat_extract[2](res2), z4)
        z = self.Encoder[2](z)

        z42 = _double(z)
        fused2 = self.drop2(self.AFFs[1](_halve(res1), res2, z42))
        fused1 = self.drop1(self.AFFs[0](res1, _double(res2), _double(z42)))

        z = self.Decoder[0](z)
        out4 = self.ConvsOut[0](z) + x_4
        z = self.feat_extract[3](z)

        z = self.Decoder[1](self.Convs[0](torch.cat([z, fused2], dim=1)))
        out2 = self.ConvsOut[1](z) + x_2
        z = self.feat_extract[4](z)

        z = self.Decoder[2](self.Convs[1](torch.cat([z, fused1], dim=1)))
        out1 = self.feat_extract[5](z) + x
        return [out4, out2, out1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        outs = self.forward_padded(pad_to_multiple(x, MULTIPLE, mode="reflect"))
        if h % MULTIPLE == 0 and w % MULTIPLE == 0:
            return outs
        sizes = [((h + 3) // 4, (w + 3) // 4), ((h + 1) // 2, (w + 1) // 2), (h, w)]
        return [o[..., :sh, :sw] for o, (sh, sw) in zip(outs, sizes)]


# ----------------------------------------------------------------------------- checkpoints

_PREFIXES = ("netG.", "G.", "generator.", "model.", "net.")


def remap_blur2blur(state: StateDict) -> StateDict:
    """Official MIMO-UNet / Blur2Blur generator keys -> ours (they are the same).

    ``{'model': ...}`` wrappers and ``module.`` prefixes are removed before this runs
    (:func:`b2b_train.checkpoint.read_foreign_state_dict`); this also drops one wrapper-module
    prefix (``netG.``, ``G.``, ``generator.``, ``model.``, ``net.``) when every key has it, so a
    file saved from a wrapper holding the generator as an attribute loads too.
    """
    keys = list(state)
    for p in _PREFIXES:
        if keys and all(k.startswith(p) for k in keys):
            return {k[len(p):]: v for k, v in state.items()}
    return dict(state)


def _identity_layout(state: StateDict) -> StateDict:
    return dict(state)


def _build(base_channel: int, num_res: int, dropout: float):
    def build(**kw) -> MIMOUNet:
        args = {"base_channel": base_channel, "num_res": num_res, "dropout": dropout}
        args.update(kw)
        return MIMOUNet(**args)

    return build


_TINY = {"base_channel": 8, "num_res": 1}

register(NetSpec(
    name="mimo-unet",
    family="translator",
    build=_build(32, 8, 0.0),
    remap=remap_blur2blur,
    to_official=_identity_layout,
    published_params=6_807_171,  # "6.8M" in Cho et al. 2021; exact count of the official layout
    multiple=MULTIPLE,
    weights_file="MIMO-UNet.pkl",
    description="MIMO-UNet (Cho et al. ICCV 2021), base 32, 8 res blocks per stage; Blur2Blur's translator",
    # official release: Google Drive file id (README of chosj95/MIMO-UNet); {'model': state_dict}
    tiny_kwargs=_TINY,
    drive_id="1EQJoQj3YMLFfzrbgzWMD3Xj96RqLdIlx",
))
register(NetSpec(
    name="mimo-unet-plus",
    family="translator",
    build=_build(32, 20, 0.1),
    remap=remap_blur2blur,
    to_official=_identity_layout,
    published_params=16_107_651,  # "16.1M" in Cho et al. 2021; exact count of the official layout
    multiple=MULTIPLE,
    weights_file="MIMO-UNetPlus.pkl",
    description="MIMO-UNet+ (Cho et al. ICCV 2021), base 32, 20 res blocks per stage, dropout 0.1",
    tiny_kwargs=_TINY,
    drive_id="166sufeHcdDTgXHNbCRzTC4T6DzuflB5m",
))
register(NetSpec(
    name="mimo-unet-lite",
    family="translator",
    build=_build(16, 2, 0.0),
    remap=remap_blur2blur,
    to_official=_identity_layout,
    multiple=MULTIPLE,
    description="MIMO-UNet lite for real-time CPU use: base 16, 2 res blocks per stage (same key layout)",
    tiny_kwargs=_TINY,
))
