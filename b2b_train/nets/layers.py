"""Building blocks shared by the deblurrers (NAFNet, Restormer).

* :class:`LayerNorm2d` - layer norm over the channels of an NCHW map, written as permute +
  ``F.layer_norm`` + permute so ``torch.export`` keeps ``aten.layer_norm`` and ONNX gets one
  ``LayerNormalization`` node (TensorRT runs that op with fp32 statistics; a hand-written
  mean/pow/sqrt chain is known to overflow or give NaN under fp16).
* :class:`BiasFreeLayerNorm2d` - Restormer's "BiasFree" variant (scale only, variance about the
  mean but no centring), which no standard op expresses.
* :func:`local_avg_pool2d` / :class:`LocalAvgPool2d` - the test-time local-statistics pooling of
  TLC (Chu et al., ECCV 2022, "Improving Image Restoration by Revisiting Global Information
  Aggregation"): a global average pool becomes a box average over a window of 1.5x the training
  size, computed with cumulative sums in O(HW), output the same size as the input.
* :func:`tlc_window_starts` - where TLC's overlapping windows start along one side.
* :func:`pad_to_multiple` / :func:`crop_to` - any input size for nets that need a side multiple.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "layer_norm_2d",
    "LayerNorm2d",
    "BiasFreeLayerNorm2d",
    "box_mean_2d",
    "local_avg_pool2d",
    "LocalAvgPool2d",
    "tlc_window_starts",
    "tlc_window",
    "pair",
    "pad_amount",
    "pad_to_multiple",
    "crop_to",
]


def pair(v: int | Sequence[int]) -> tuple[int, int]:
    """``5 -> (5, 5)``; ``(4, 6) -> (4, 6)``."""
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


# ----------------------------------------------------------------------------- layer norm

def layer_norm_2d(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Normalise each pixel's channel vector: (N, C, H, W) -> (N, C, H, W).

    ``y = (x - mean_c) / sqrt(var_c + eps) * weight + bias`` with biased variance over C, computed
    by ``F.layer_norm`` on the channels-last view (exports as one LayerNormalization op).
    """
    c = x.shape[1]
    y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), weight, bias, eps)
    return y.permute(0, 3, 1, 2)


class LayerNorm2d(nn.Module):
    """Channel layer norm for NCHW maps with parameters ``weight`` and ``bias`` of shape (C,).

    The same maths as NAFNet's ``LayerNorm2d`` (eps 1e-6) and Restormer's ``WithBias_LayerNorm``
    (eps 1e-5), so their published parameters load unchanged.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class BiasFreeLayerNorm2d(nn.Module):
    """Restormer's BiasFree norm: ``x / sqrt(var_c(x) + eps) * weight`` (no centring, no bias).

    Not a standard layer norm (the variance is taken about the mean but ``x`` is not centred), so it
    is written out; the variance is computed in float32 even for half inputs.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().var(dim=1, unbiased=False, keepdim=True)
        y = x.float() * torch.rsqrt(var + self.eps)
        return (y * self.weight.float().view(1, -1, 1, 1)).to(x.dtype)


# ----------------------------------------------------------------------------- TLC local statistics

def _box_sum_1d(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums of every ``k`` consecutive entries along ``dim`` (valid positions only): n -> n - k + 1."""
    s = torch.cumsum(x, dim=dim)
    n = x.shape[dim]
    first = s.narrow(dim, k - 1, 1)  # sum of entries 0..k-1
    if n == k:
        return first
    rest = s.narrow(dim, k, n - k) - s.narrow(dim, 0, n - k)
    return torch.cat([first, rest], dim=dim)


def box_mean_2d(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Mean over every ``kh x kw`` window fully inside the map: (N, C, H, W) -> (N, C, H-kh+1, W-kw+1).

    Separable cumulative sums (O(HW) whatever the window). The per-channel mean is subtracted first
    and added back, so the running sums stay small (float32 is used for half inputs).
    """
    kh, kw = window
    dtype = x.dtype
    xf = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    centre = xf.mean(dim=(2, 3), keepdim=True)
    d = xf - centre
    d = _box_sum_1d(d, kw, dim=3)
    d = _box_sum_1d(d, kh, dim=2)
    return (d / float(kh * kw) + centre).to(dtype)


def local_avg_pool2d(x: torch.Tensor, window: int | Sequence[int] | None) -> torch.Tensor:
    """TLC's replacement for a global average pool: (N, C, H, W) -> (N, C, H, W) or (N, C, 1, 1).

    Each pixel gets the mean over the ``window`` (clipped to the map) around it; windows are kept
    inside the map and the border rows/columns repeat the nearest full window (edge replication),
    exactly as the official ``AvgPool2d(base_size=...)`` of megvii-research/TLC. When the window
    covers the whole map (or ``window`` is None) it is the global mean, shape (N, C, 1, 1).
    """
    h, w = x.shape[-2:]
    if window is None:
        return x.mean(dim=(2, 3), keepdim=True)
    kh, kw = pair(window)
    kh, kw = min(h, kh), min(w, kw)
    if kh >= h and kw >= w:
        return x.mean(dim=(2, 3), keepdim=True)
    out = box_mean_2d(x, (kh, kw))
    oh, ow = out.shape[-2:]
    ph, pw = h - oh, w - ow
    if ph or pw:
        out = F.pad(out, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    return out


class LocalAvgPool2d(nn.Module):
    """Module form of :func:`local_avg_pool2d`; ``window=None`` is the ordinary global average pool.

    Has no parameters, so swapping it for ``nn.AdaptiveAvgPool2d(1)`` keeps the published keys.
    """

    def __init__(self, window: int | Sequence[int] | None = None):
        super().__init__()
        self.window = None if window is None else pair(window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_avg_pool2d(x, self.window)

    def extra_repr(self) -> str:
        return f"window={self.window}" if self.window else "global"


def tlc_window(train_size: int | Sequence[int], level: int, scale: float = 1.5, multiple: int = 1) -> tuple[int, int]:
    """The TLC window (h, w) at a given down-sampling ``level`` (0 = full resolution).

    The official code runs one forward at the training size and sets each layer's window to
    ``feature_size * int(1.5 * train) // train``; for train 256 that is 384 >> level. ``multiple``
    is the padding the net applies to its input (the training input is padded the same way).
    """
    th, tw = pair(train_size)
    bh, bw = int(th * scale), int(tw * scale)
    ph = math.ceil(th / multiple) * multiple
    pw = math.ceil(tw / multiple) * multiple
    fh, fw = ph >> level, pw >> level
    return (max(1, fh * bh // th), max(1, fw * bw // tw))


def tlc_window_starts(n: int, k: int) -> list[int]:
    """Start offsets of TLC's overlapping windows of size ``k`` covering ``0..n-1``.

    As in megvii-research/TLC ``LocalAttention.grids``: ``ceil(n / k)`` windows, evenly stepped,
    the last one flush with the end. ``k >= n`` gives one window ``[0]``.
    """
    k = min(n, k)
    count = (n - 1) // k + 1
    if count == 1:
        return [0]
    step = math.ceil((n - k) / (count - 1) - 1e-8)
    starts: list[int] = []
    i = 0
    while True:
        if i + k >= n:
            starts.append(n - k)
            break
        starts.append(i)
        i += step
    return starts


# ----------------------------------------------------------------------------- padding

def pad_amount(h: int, w: int, multiple: int) -> tuple[int, int]:
    """Rows and columns to add at the bottom/right so both sides are multiples of ``multiple``."""
    return ((multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "constant") -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom and right to sides divisible by ``multiple``.

    ``mode``: "constant" (zeros, NAFNet's choice), "reflect" (Restormer's test script) or
    "replicate". Reflect falls back to replicate where a side is too short to reflect. Returns
    ``x`` itself when nothing needs padding (``multiple`` <= 1 or sides already divisible).
    """
    if multiple <= 1:
        return x
    h, w = x.shape[-2:]
    ph, pw = pad_amount(h, w, multiple)
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    if mode == "constant":
        return F.pad(x, (0, pw, 0, ph))
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``h x w``."""
    return x[..., :h, :w]
