"""Restormer (Zamir et al., CVPR 2022, "Restormer: Efficient Transformer for High-Resolution Image
Restoration"), motion-deblurring configuration: an alternative known-blur deblurrer G*_{C'}.

A 4-level U-Net of transformer blocks. Each block: channel LayerNorm -> MDTA (multi-Dconv head
*transposed* attention: 1x1 + 3x3 depth-wise convs make q, k, v; attention is a C x C matrix between
L2-normalised channels, scaled by a learned per-head temperature) -> residual; LayerNorm -> GDFN
(1x1 expand, 3x3 depth-wise, GELU gate, 1x1 project) -> residual. Down/up-sampling are a 3x3 conv with
PixelUnshuffle/PixelShuffle; decoder skips are concatenated (levels 3 and 2 reduce channels with a
1x1 conv, level 1 keeps 2*dim), then refinement blocks and a 3x3 output conv residual to the input.
The input is reflect-padded to a multiple of 8 (as the official test script does) and cropped back.

TLC (``tlc=True``; megvii-research/TLC ``RestormerLocal``, base size 384 for 256 training crops): the
attention statistics q k^T over the whole image are replaced by the same attention computed inside
overlapping windows of 1.5x the training size at each level (384, 192, 96, 48 px); each window
attends with its own C x C matrix to its own v, and the window outputs are averaged where they
overlap. The window layout is exactly TLC's (``ceil(side / window)`` windows, evenly stepped, last
flush with the border). Parameters are unchanged, so one set of weights serves both modes.

Names equal the official ``basicsr/models/archs/restormer_arch.py`` ones (``patch_embed.proj``,
``encoder_level1.0.norm1.body.weight``, ``attn.temperature``, ``attn.qkv``, ``attn.qkv_dwconv``,
``ffn.project_in``, ``down1_2.body.0``, ``reduce_chan_level3``, ``refinement``, ``output``...), so
``motion_deblurring.pth`` (``{'params': sd}``) loads directly.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import BiasFreeLayerNorm2d, LayerNorm2d, crop_to, pad_to_multiple, pair, tlc_window, tlc_window_starts
from .registry import NetSpec, register

__all__ = ["Restormer", "RestormerLocal", "transposed_attention", "local_transposed_attention"]


class RestormerNorm(nn.Module):
    """Restormer's ``LayerNorm(dim, type)`` wrapper: the norm lives in ``body`` (keys ``body.*``)."""

    def __init__(self, dim: int, layer_norm_type: str = "WithBias"):
        super().__init__()
        if layer_norm_type == "BiasFree":
            self.body = BiasFreeLayerNorm2d(dim, eps=1e-5)
        elif layer_norm_type == "WithBias":
            self.body = LayerNorm2d(dim, eps=1e-5)
        else:
            raise ValueError(f"LayerNorm_type must be 'WithBias' or 'BiasFree', not {layer_norm_type!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeedForward(nn.Module):
    """GDFN: (N, C, H, W) -> (N, C, H, W) through a GELU-gated depth-wise conv of int(C * factor) channels."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


def transposed_attention(qkv: torch.Tensor, heads: int, temperature: torch.Tensor) -> torch.Tensor:
    """MDTA core: (N, 3C, H, W) q|k|v -> (N, C, H, W).

    Per head, ``softmax(normalize(q) @ normalize(k)^T * temperature) @ v`` where q, k, v are
    (C/heads, H*W): the attention map is channel x channel, its statistics gathered over the whole map.
    """
    n, c3, h, w = qkv.shape
    c = c3 // 3
    q, k, v = qkv.reshape(n, 3, heads, c // heads, h * w).unbind(1)
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1)) * temperature
    out = attn.softmax(dim=-1) @ v
    return out.reshape(n, c, h, w)


def local_transposed_attention(
    qkv: torch.Tensor, heads: int, temperature: torch.Tensor, window: tuple[int, int]
) -> torch.Tensor:
    """TLC's local MDTA: (N, 3C, H, W) -> (N, C, H, W), attention inside overlapping windows.

    Windows of ``window`` (clipped to the map) placed as :func:`tlc_window_starts` says; each is run
    through :func:`transposed_attention` (all windows in one batch) and overlapping outputs averaged.
    """
    n, c3, h, w = qkv.shape
    kh, kw = min(h, window[0]), min(w, window[1])
    rows, cols = tlc_window_starts(h, kh), tlc_window_starts(w, kw)
    if len(rows) == 1 and len(cols) == 1:
        return transposed_attention(qkv, heads, temperature)
    parts = [qkv[:, :, r:r + kh, c:c + kw] for r in rows for c in cols]
    outs = transposed_attention(torch.cat(parts, dim=0), heads, temperature).split(n, dim=0)
    acc = None
    i = 0
    for r in rows:
        for c in cols:
            o = F.pad(outs[i], (c, w - c - kw, r, h - r - kh))
            acc = o if acc is None else acc + o
            i += 1
    # coverage count: windows form a grid, so it is the outer product of the per-side counts. Built
    # with device ops (no host->device copy), so CUDA-graph capture and export both work.
    ones = acc.new_ones(1, 1, kh, kw)
    cnt_h = sum(F.pad(ones[..., :1], (0, 0, r, h - r - kh)) for r in rows)  # (1, 1, h, 1)
    cnt_w = sum(F.pad(ones[:, :, :1], (c, w - c - kw)) for c in cols)  # (1, 1, 1, w)
    inv_h, inv_w = 1.0 / cnt_h, 1.0 / cnt_w
    return acc * inv_h * inv_w


class Attention(nn.Module):
    """MDTA block with official parameter names; ``window`` None = global, else TLC local windows."""

    def __init__(self, dim: int, num_heads: int, bias: bool, window: tuple[int, int] | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        if self.window is None:
            out = transposed_attention(qkv, self.num_heads, self.temperature)
        else:
            out = local_transposed_attention(qkv, self.num_heads, self.temperature, self.window)
        return self.project_out(out)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str):
        super().__init__()
        self.norm1 = RestormerNorm(dim, layer_norm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = RestormerNorm(dim, layer_norm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """(N, C, H, W) -> (N, 2C, H/2, W/2): 3x3 conv to C/2 then PixelUnshuffle(2)."""

    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """(N, C, H, W) -> (N, C/2, 2H, 2W): 3x3 conv to 2C then PixelShuffle(2)."""

    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Restormer(nn.Module):
    """Restormer: (N, 3, H, W) -> (N, 3, H, W) residual restoration, any H, W.

    Args (the paper's hyper-parameters, official names; defaults = motion deblurring):
        inp_channels / out_channels: 3 / 3.
        dim: channels at level 1 (48).
        num_blocks: transformer blocks per level ([4, 6, 6, 8]).
        num_refinement_blocks: blocks after the decoder (4).
        heads: attention heads per level ([1, 2, 4, 8]).
        ffn_expansion_factor: GDFN expansion (2.66).
        bias: biases in convs (False).
        LayerNorm_type: 'WithBias' (deblurring) or 'BiasFree'.
        dual_pixel_task: the dual-pixel defocus variant (6 input channels, skip conv).
        tlc: TLC local attention windows (RestormerLocal).
        train_size: training crop side(s) for the TLC windows (256 -> 384 px windows at level 1).
    """

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",  # noqa: N803 (official argument name)
        dual_pixel_task: bool = False,
        tlc: bool = False,
        train_size: int | Sequence[int] = 256,
    ):
        super().__init__()

        def blocks(level_dim: int, n: int, h: int) -> nn.Sequential:
            return nn.Sequential(*[
                TransformerBlock(level_dim, h, ffn_expansion_factor, bias, LayerNorm_type) for _ in range(n)
            ])

        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = blocks(d1, num_blocks[0], heads[0])
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = blocks(d2, num_blocks[1], heads[1])
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = blocks(d3, num_blocks[2], heads[2])
        self.down3_4 = Downsample(d3)
        self.latent = blocks(d4, num_blocks[3], heads[3])
        self.up4_3 = Upsample(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = blocks(d3, num_blocks[2], heads[2])
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = blocks(d2, num_blocks[1], heads[1])
        self.up2_1 = Upsample(d2)  # no channel reduction at level 1: stays 2*dim
        self.decoder_level1 = blocks(d2, num_blocks[0], heads[0])
        self.refinement = blocks(d2, num_refinement_blocks, heads[0])
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, d2, 1, bias=bias)
        self.output = nn.Conv2d(d2, out_channels, 3, padding=1, bias=bias)

        self.padder_size = 8
        self.tlc = False
        self.train_size = pair(train_size)
        self.set_tlc(tlc, train_size)

    def _levels(self):
        """(level, blocks) for every transformer stage; level 0 = full resolution."""
        return [
            (0, self.encoder_level1), (1, self.encoder_level2), (2, self.encoder_level3), (3, self.latent),
            (2, self.decoder_level3), (1, self.decoder_level2), (0, self.decoder_level1), (0, self.refinement),
        ]

    def set_tlc(self, enabled: bool = True, train_size: int | Sequence[int] | None = None) -> "Restormer":
        """Switch TLC local attention on/off (windows 1.5x ``train_size`` per level); returns self."""
        if train_size is not None:
            self.train_size = pair(train_size)
        self.tlc = bool(enabled)
        for level, seq in self._levels():
            window = tlc_window(self.train_size, level, multiple=self.padder_size) if self.tlc else None
            for blk in seq:
                blk.attn.window = window
        return self

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        h, w = inp_img.shape[-2:]
        x0 = pad_to_multiple(inp_img, self.padder_size, mode="reflect")
        e1_in = self.patch_embed(x0)
        e1 = self.encoder_level1(e1_in)
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        d1 = self.refinement(d1)
        if self.dual_pixel_task:
            out = self.output(d1 + self.skip_conv(e1_in))
        else:
            out = self.output(d1) + x0
        return crop_to(out, h, w)


def RestormerLocal(*args, train_size: int | Sequence[int] = 256, **kwargs) -> Restormer:
    """Restormer with TLC local attention (megvii-research/TLC ``RestormerLocal``)."""
    kwargs.pop("tlc", None)
    return Restormer(*args, tlc=True, train_size=train_size, **kwargs)


def identity_remap(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official keys are ours (``params`` wrapper and ``module.`` are stripped upstream)."""
    return dict(sd)


_MOTION = dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
               heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False, LayerNorm_type="WithBias")
_TINY = dict(_MOTION, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])


def _build_motion(**kw) -> Restormer:
    return Restormer(**{**_MOTION, **kw})


register(NetSpec(
    name="restormer-motion",
    family="deblurrer",
    build=_build_motion,
    remap=identity_remap,
    to_official=identity_remap,
    published_params=26_130_000,  # paper: 26.13 M
    multiple=8,
    weights_file="motion_deblurring.pth",
    # official GitHub release asset; no published checksum found, so `weights fetch` needs --sha256
    url="https://github.com/swz30/Restormer/releases/download/v1.0/motion_deblurring.pth",
    sha256=None,
    description="Restormer motion deblurring (trained on GoPro); 26.1 M params",
    tiny_kwargs=dict(_TINY),
    eval_kwargs={"tlc": True},
    official_arch="Restormer / RestormerLocal",
))
