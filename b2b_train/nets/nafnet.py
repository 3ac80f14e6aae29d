"""NAFNet: Nonlinear Activation Free Network (Chen, Chu, Zhang, Sun; ECCV 2022, "Simple Baselines for
Image Restoration"), the known-blur deblurrer G*_{C'} of b2b.

A U-Net of NAF blocks: each block is LayerNorm -> 1x1 conv -> 3x3 depth-wise conv -> SimpleGate
(split channels, multiply halves) -> Simplified Channel Attention (global average pool -> 1x1 conv,
multiplied in) -> 1x1 conv, added with a learned per-channel scale ``beta``; then LayerNorm -> 1x1
-> SimpleGate -> 1x1 added with scale ``gamma``. Down-sampling is a stride-2 2x2 conv doubling the
channels, up-sampling a 1x1 conv + PixelShuffle halving them; skips are added; the output is a
residual to the input. The input is zero-padded to a multiple of ``2 ** len(enc_blk_nums)`` and the
output cropped back, so any H, W works.

TLC (``tlc=True``; the published GoPro/REDS test configurations are "NAFNetLocal"): at test time
the channel attention's global pool becomes a local box average over 1.5x the training size at each
level (384 px at full resolution for 256 px training crops, 192 at 1/2, ...), which removes the
train/test statistics gap on large frames. No parameters change, so the same weights serve both.

Parameter and buffer names equal the official ``basicsr/models/archs/NAFNet_arch.py`` ones
(``intro``, ``encoders.i.j.conv1``, ``...sca.1``, ``norm1.weight``, ``beta``, ``gamma``, ``downs``,
``middle_blks``, ``ups.i.0``, ``decoders``, ``ending``), so BasicSR files (``{'params': sd}`` or
``{'params_ema': sd}``) load directly through the registry.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn

from .layers import LayerNorm2d, LocalAvgPool2d, crop_to, pad_to_multiple, pair, tlc_window
from .registry import NetSpec, register

__all__ = ["SimpleGate", "NAFBlock", "NAFNet", "NAFNetLocal", "identity_remap"]


class SimpleGate(nn.Module):
    """(N, 2C, H, W) -> (N, C, H, W): first half of the channels times the second half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """One NAF block on ``c`` channels; ``pool_window`` None = global SCA pooling, else TLC window."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.0,
                 pool_window: tuple[int, int] | None = None):
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        # Simplified Channel Attention; index 0 is the (parameter-free) pool, so keys are sca.1.*
        self.sca = nn.Sequential(LocalAvgPool2d(pool_window), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        ffn = ffn_expand * c
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c, eps=1e-6)
        self.norm2 = LayerNorm2d(c, eps=1e-6)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def set_pool_window(self, window: tuple[int, int] | None) -> None:
        self.sca[0].window = None if window is None else pair(window)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(self.norm1(inp)))
        x = self.sg(x)
        x = x * self.sca(x)
        x = self.dropout1(self.conv3(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + self.dropout2(x) * self.gamma


class NAFNet(nn.Module):
    """NAFNet deblurrer: (N, C, H, W) -> (N, C, H, W) residual restoration, any H, W.

    Args (the paper's hyper-parameters, official names):
        img_channel: image channels (3).
        width: channels at full resolution (32 or 64 for the published models).
        middle_blk_num: NAF blocks at the bottleneck.
        enc_blk_nums / dec_blk_nums: NAF blocks per encoder / decoder level.
        drop_out_rate: dropout inside blocks (0 in the published deblurring models).
        tlc: use TLC local-statistics pooling (NAFNetLocal) instead of global pooling.
        train_size: training crop side(s) the TLC windows are derived from (256 for GoPro/REDS).
    """

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 16,
        middle_blk_num: int = 1,
        enc_blk_nums: Sequence[int] = (),
        dec_blk_nums: Sequence[int] = (),
        drop_out_rate: float = 0.0,
        tlc: bool = False,
        train_size: int | Sequence[int] = 256,
    ):
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("enc_blk_nums and dec_blk_nums must have the same length")
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        block = partial(NAFBlock, drop_out_rate=drop_out_rate)

        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[block(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[block(chan) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[block(chan) for _ in range(num)]))

        self.padder_size = 2 ** len(self.encoders)
        self.tlc = False
        self.train_size = pair(train_size)
        self.set_tlc(tlc, train_size)

    def set_tlc(self, enabled: bool = True, train_size: int | Sequence[int] | None = None) -> "NAFNet":
        """Switch TLC local pooling on/off (window 1.5x ``train_size`` at each level); returns self."""
        if train_size is not None:
            self.train_size = pair(train_size)
        self.tlc = bool(enabled)
        levels = len(self.encoders)
        for level in range(levels + 1):
            window = tlc_window(self.train_size, level, multiple=self.padder_size) if self.tlc else None
            for blk in self._blocks_at(level):
                blk.set_pool_window(window)
        return self

    def _blocks_at(self, level: int):
        levels = len(self.encoders)
        if level == levels:
            yield from self.middle_blks
            return
        yield from self.encoders[level]
        yield from self.decoders[levels - 1 - level]

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = pad_to_multiple(inp, self.padder_size, mode="constant")
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return crop_to(x, h, w)


def NAFNetLocal(*args, train_size: int | Sequence[int] = 256, **kwargs) -> NAFNet:
    """NAFNet with TLC local pooling (the official test-time "NAFNetLocal")."""
    kwargs.pop("tlc", None)
    return NAFNet(*args, tlc=True, train_size=train_size, **kwargs)


def identity_remap(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official BasicSR keys are ours: nothing to rename (wrappers/``module.`` are stripped upstream)."""
    return dict(sd)


# ----------------------------------------------------------------------------- registry

_GOPRO = dict(img_channel=3, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1])
_TINY = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])  # tests
# Sizes chosen by timing one forward at 320x240 on this project's 2-core x86 build machine (torch 2.13
# CPU, fp32, quiet machine, 2026-11-27): nafnet-lite 123 ms on 1 thread (86 ms with the net and input in
# channels_last), 71 ms on 2 threads (~14 fps, the >=10 fps target with room for the translator);
# nafnet-tiny 46 ms / 25 ms. A deeper width-16 variant ([1,1,2,4] encoders, 2 middle blocks) took
# 144 ms / 80 ms for little extra capacity at this resolution.
_LITE = dict(img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 2], dec_blk_nums=[1, 1, 1, 1])
# GPU-grade class: the GoPro design narrowed to width 24 with 8 instead of 28 deepest encoder blocks
# (and 2 at the third level): 4.46 M parameters, 8.9 MB in fp16, so a shipped file keeps the
# repository light; 1/4 of width 32's arithmetic for the deep part.
_MID = dict(img_channel=3, width=24, middle_blk_num=1, enc_blk_nums=[1, 1, 2, 8], dec_blk_nums=[1, 1, 1, 1])
_TINY_NET = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1], dec_blk_nums=[1, 1, 1])

# The public checkpoints are on the authors' Google Drive (README "Results and Pre-trained Models");
# Drive has no stable direct link, so fetch uses a public Hugging Face mirror whose files several
# independent projects record with these SHA-256 digests. The digest is what makes a mirror safe.
_HF = "https://huggingface.co/nyanko7/nafnet-models/resolve/main"
_EVAL = {"tlc": True}  # the official test configs build NAFNetLocal (train_size 256)


def _builder(**fixed):
    def build(**kw):
        return NAFNet(**{**fixed, **kw})

    return build


def _register_all() -> None:
    common = dict(family="deblurrer", remap=identity_remap, to_official=identity_remap, multiple=16)
    register(NetSpec(
        name="nafnet-gopro-width32",
        build=_builder(width=32, **_GOPRO),
        published_params=17_110_000,  # paper/README: 17.11 M
        weights_file="NAFNet-GoPro-width32.pth",
        url=f"{_HF}/NAFNet-GoPro-width32.pth",
        sha256="19394e6155d12ef6371d1d57496f87f0ec88f92bdffa27c0792690722d5d1a5c",
        description="NAFNet width 32 trained on GoPro; 17.1 M params",
        tiny_kwargs=dict(_TINY),
        eval_kwargs=dict(_EVAL),
        official_arch="NAFNetLocal",
        drive_id="1Fr2QadtDCEXg6iwWX8OzeZLbHOx2t5Bj",
        **common,
    ))
    register(NetSpec(
        name="nafnet-gopro-width64",
        build=_builder(width=64, **_GOPRO),
        published_params=67_890_000,  # 67.89 M
        weights_file="NAFNet-GoPro-width64.pth",
        url=f"{_HF}/NAFNet-GoPro-width64.pth",
        sha256="329d3ab4077b8d6b7ff61de376e483714667960bf85be027bf4335cda701196f",
        description="NAFNet width 64 trained on GoPro (33.71 dB GoPro test, TLC); 67.9 M params",
        tiny_kwargs=dict(_TINY),
        eval_kwargs=dict(_EVAL),
        official_arch="NAFNetLocal",
        **common,
    ))
    register(NetSpec(
        name="nafnet-reds-width64",
        build=_builder(width=64, **_GOPRO),
        published_params=67_890_000,  # same architecture as GoPro width 64
        weights_file="NAFNet-REDS-width64.pth",
        url=f"{_HF}/NAFNet-REDS-width64.pth",
        sha256="175fe8b3cdf3abedfbc87769779c3d9f491e05bb2e73ea9d627883f90a4b2df3",
        description="NAFNet width 64 trained on REDS (blur + JPEG); 67.9 M params",
        tiny_kwargs=dict(_TINY),
        eval_kwargs=dict(_EVAL),
        official_arch="NAFNetLocal",
        **common,
    ))
    register(NetSpec(
        name="nafnet-lite",
        build=_builder(**_LITE),
        description="small NAFNet for CPU real time (>=10 fps at 320x240 on 2 laptop cores); trained by b2b",
        tiny_kwargs=dict(_TINY),
        **common,
    ))
    register(NetSpec(
        name="nafnet-mid",
        build=_builder(**_MID),
        description="mid-size NAFNet (width 24, 8 deep blocks, 4.46 M params) for GPUs; trained by b2b",
        tiny_kwargs=dict(_TINY),
        **common,
    ))
    register(NetSpec(
        name="nafnet-tiny",
        build=_builder(**_TINY_NET),
        multiple=8,
        description="very small NAFNet (tests, smoke runs, very slow CPUs); trained by b2b",
        tiny_kwargs=dict(_TINY),
        **{k: v for k, v in common.items() if k != "multiple"},
    ))


_register_all()
