"""Image quality metrics: the paper's PSNR/SSIM protocol and a no-reference sharpness.

Protocol (as NAFNet/Restormer/Blur2Blur report GoPro numbers, and as the README states):

* images are RGB, compared after rounding to 8-bit (``round(x*255)``), i.e. what is saved to disk;
* PSNR on all three channels together, peak 255, no border cropped;
* SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, computed per
  channel on the valid region (no padding) and averaged over the channels.

Inputs are float tensors in [0, 1], shape ``(3, H, W)`` or ``(N, 3, H, W)``; the per-image results
are averaged over the batch. ``psnr_np``/``ssim_np`` take ``uint8`` HxWx3 arrays.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "to_uint8_levels",
    "psnr",
    "ssim",
    "psnr_np",
    "ssim_np",
    "luma",
    "laplacian_variance",
    "laplacian_variance_np",
    "LUMA_601",
    "LAPLACE_3X3",
]


def to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """Quantise [0,1] floats to the 0..255 levels an 8-bit image holds (float64 for exact maths)."""
    return torch.round(x.detach().double().clamp(0, 1) * 255.0)


def _batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected (3,H,W) or (N,3,H,W), got {tuple(x.shape)}")
    return x


def _levels(pred: torch.Tensor, target: torch.Tensor, quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as (N,3,H,W) float64 on the 0..255 scale (rounded to 8-bit levels with ``quantize``)."""
    pred, target = _batch(pred), _batch(target)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(pred.shape)} vs {tuple(target.shape)}")
    if quantize:
        return to_uint8_levels(pred), to_uint8_levels(target)
    return pred.double() * 255.0, target.double() * 255.0


def psnr(pred: torch.Tensor, target: torch.Tensor, quantize: bool = True) -> float:
    """Mean PSNR (dB) over the batch, peak 255 on 8-bit levels; inf for identical images."""
    a, b = _levels(pred, target, quantize)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    vals = [math.inf if m == 0 else 10.0 * math.log10(255.0**2 / float(m)) for m in mse]
    return float(sum(vals) / len(vals))


def _gaussian_window_1d(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    ax = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, quantize: bool = True) -> float:
    """Mean SSIM over the batch (Wang 2004, 11x11 Gaussian sigma 1.5, valid region, channel mean)."""
    a, b = _levels(pred, target, quantize)
    n, c, h, w = a.shape
    if h < 11 or w < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {h}x{w}")
    g = _gaussian_window_1d().to(a.device)
    gv = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    gh = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def filt(x: torch.Tensor) -> torch.Tensor:  # separable 11x11 Gaussian, valid region
        return F.conv2d(F.conv2d(x, gv, groups=c), gh, groups=c)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1 = filt(a)
    mu2 = filt(b)
    s11 = filt(a * a) - mu1**2
    s22 = filt(b * b) - mu2**2
    s12 = filt(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.flatten(2).mean(2).mean(1).mean())


def _np_to_tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[..., None]
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {img.dtype}")
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).double() / 255.0


def psnr_np(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR of two uint8 HxWxC images."""
    return psnr(_np_to_tensor(pred), _np_to_tensor(target))


def ssim_np(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM of two uint8 HxWxC images."""
    return ssim(_np_to_tensor(pred), _np_to_tensor(target))


# The blur degree's two ingredients, shared by the tensor measures here and in
# b2b_train.data.curriculum and by the OpenCV one of b2b_train.data.frames.blur_degree.
LUMA_601 = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights of R, G, B
LAPLACE_3X3 = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))  # 4-neighbour Laplacian (cv2.Laplacian's ksize=1)
_LAPLACE = torch.tensor(LAPLACE_3X3)


def luma(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` -> the 601 luma ``(N, 1, H, W)``; a single-channel ``(N, 1, H, W)`` is its own luma."""
    if x.shape[1] != 3:
        return x[:, :1]
    wr, wg, wb = LUMA_601
    return wr * x[:, 0:1] + wg * x[:, 1:2] + wb * x[:, 2:3]


def laplacian_variance(x: torch.Tensor) -> torch.Tensor:
    """Blur degree per image: variance of the Laplacian of the luma (low = blurry).

    ``x``: (N,3,H,W) or (3,H,W) in [0,1]; returns (N,) on the 0..255 scale (as OpenCV's
    ``cv2.Laplacian(gray, CV_64F).var()`` on an 8-bit image, valid region only).
    """
    x = _batch(x).float()
    y = luma(x)
    k = _LAPLACE.to(x.device, x.dtype)[None, None]
    lap = F.conv2d(y * 255.0, k)
    return lap.flatten(1).var(1, unbiased=False)


def laplacian_variance_np(img: np.ndarray) -> float:
    """Blur degree of one uint8 image (HxWx3 RGB or HxW gray); see :func:`laplacian_variance`."""
    t = torch.from_numpy(np.ascontiguousarray(img)).float() / 255.0
    t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
    return float(laplacian_variance(t)[0])
