"""Baseline JPEG compression as batched tensor operations (no codec, no host round trip).

A webcam's frames arrive JPEG-compressed (MJPEG) and noisy; a deblurrer trained only on clean
8-bit input sharpens the 8x8 block edges and ringing it has never seen. This reproduces what a
baseline JFIF encoder + decoder does to an image, per image of a batch and at its own quality:

    RGB -> YCbCr (JFIF, full range) -> chroma 2x2 subsampling (4:2:0) -> 8x8 DCT-II per block
        -> divide by the IJG quality-scaled tables, round -> multiply back -> inverse DCT
        -> chroma upsampling -> RGB

The rounding of the DCT coefficients is the only lossy step of a real encoder besides
subsampling, so block artefacts, ringing and colour bleeding come out as a codec makes them (a
test compares against OpenCV's encoder). Decoders differ in their chroma upsampling; this one is
bilinear, like libjpeg's "fancy" upsampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["jpeg_compress", "quality_tables"]

# ITU-T T.81 Annex K tables (quality 50)
_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32  # fmt: skip


def _dct_matrix(device, dtype) -> torch.Tensor:
    """Orthonormal 8-point DCT-II matrix ``D`` (``D @ x`` transforms a column)."""
    k = torch.arange(8, device=device, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(dtype)


def quality_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IJG-scaled luma and chroma quantisation tables ``(n, 8, 8)`` for qualities ``(n,)`` in 1..100."""
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(-1, 1, 1)
    base = [torch.tensor(t, dtype=torch.float32, device=q.device).view(1, 8, 8) for t in (_LUMA, _CHROMA)]
    return tuple(((b * scale + 50) / 100).floor().clamp(1, 255) for b in base)


def _blocks_roundtrip(x: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Quantise the 8x8 block DCT of ``x`` ``(n, c, H, W)`` (H, W multiples of 8) with ``table`` ``(n, 8, 8)``."""
    n, c, h, w = x.shape
    b = x.reshape(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)  # (n, c, by, bx, 8, 8)
    coef = d @ b @ d.T
    t = table.view(n, 1, 1, 1, 8, 8)
    coef = torch.round(coef / t) * t
    b = d.T @ coef @ d
    return b.transpose(3, 4).reshape(n, c, h, w)


def jpeg_compress(x: torch.Tensor, quality) -> torch.Tensor:
    """What a JPEG encode/decode at ``quality`` does to ``x`` ``(n, 3, H, W)`` in ``[0, 1]``.

    ``quality``: a number or an ``(n,)`` tensor (one per image), 1..100 as in libjpeg. The result
    has ``x``'s shape, dtype and device, clamped to ``[0, 1]`` (not quantised to 8 bits: the
    caller's quantisation does that, as a decoder's output would be).
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"jpeg_compress expects (N, 3, H, W), got {tuple(x.shape)}")
    n, _, h, w = x.shape
    q = torch.as_tensor(quality, device=x.device, dtype=torch.float32).expand(n)  # a number or one per image
    dtype = x.dtype
    v = x.float() * 255
    # pad to whole 16x16 macroblocks (4:2:0 chroma blocks cover 16 px), as an encoder replicates edges
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        v = F.pad(v, (0, pw, 0, ph), mode="replicate")
    r, g, b = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    d = _dct_matrix(v.device, v.dtype)
    tl, tc = quality_tables(q)
    y = _blocks_roundtrip(y - 128, tl, d) + 128
    chroma = F.avg_pool2d(torch.cat([cb, cr], 1), 2)
    chroma = _blocks_roundtrip(chroma, tc, d)
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    cb, cr = chroma[:, 0:1], chroma[:, 1:2]
    rgb = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return (rgb[..., :h, :w] / 255).clamp(0, 1).to(dtype)
