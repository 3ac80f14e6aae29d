"""Blur-degree curriculum (paper §4.1).

The generator first optimises on the blurriest part of each batch only: images are sorted by their
blur degree (variance of the Laplacian, low = blurry) and the blurriest ``fraction`` is kept. The
paper keeps ~50 % at first and, after 200 K iterations, grows the fraction linearly to the whole
batch. The paper does not say when the growth ends; the translator's config
(:class:`b2b_train.trainer.CurriculumConfig`, in fractions of the run) ends it at the end of the
constant-LR phase (half the run: 500 K of 1 M iterations). The released reference code has no curriculum
(``enabled: false``).

What "blurriest" means is :class:`~b2b_train.trainer.CurriculumConfig`'s ``measure``. The paper's
Laplacian variance follows texture more than blur on small crops: on 96 px crops of held-apart
photos under shake of known extent (``benchmarks/curriculum_measure.py``) its Spearman correlation
with the extent is -0.6 without noise but falls to -0.4 under strong sensor noise, which it reads as
detail. :func:`reblur_degree` divides the (lightly smoothed) crop's gradient energy by that of the
same crop blurred once more, so texture cancels: a crop that is already blurred loses little to one
more blur (the re-blur principle of Crete-Roffet et al. 2007); it holds -0.55 at every noise level.
Neither names the blurriest two of four crops right even half the time: the curriculum is a weak
ordering on crops this small.

    frac = curriculum_fraction(step, start_fraction=0.5, grow_start=200_000, grow_end=500_000)
    keep = select_blurriest(batch, degrees, frac)        # LongTensor of batch indices
    loss_g = loss_fn(fake[keep], ...)
"""

from __future__ import annotations

import math

import torch

from ..metrics import laplacian_variance, luma

__all__ = ["curriculum_fraction", "select_blurriest", "n_kept", "reblur_degree", "blur_degrees"]


def curriculum_fraction(
    step: int,
    start_fraction: float = 0.5,
    grow_start: int = 200_000,
    grow_end: int = 500_000,
) -> float:
    """Fraction of each batch the generator optimises at ``step``.

    ``start_fraction`` until ``grow_start``, then linear to 1.0 at ``grow_end`` (1.0 afterwards).
    ``grow_end <= grow_start`` jumps to 1.0 at ``grow_start``. ``start_fraction=1`` disables it.
    """
    if not 0.0 < start_fraction <= 1.0:
        raise ValueError(f"start_fraction must be in (0, 1], got {start_fraction}")
    if step < grow_start:
        return float(start_fraction)
    if grow_end <= grow_start or step >= grow_end:
        return 1.0
    t = (step - grow_start) / (grow_end - grow_start)
    return float(start_fraction + (1.0 - start_fraction) * t)


def n_kept(batch_size: int, fraction: float) -> int:
    """How many of ``batch_size`` images a ``fraction`` keeps: ceil, at least 1, at most all."""
    if batch_size <= 0:
        return 0
    # tiny tolerance so 0.5 * 16 stays 8 despite float error in a grown fraction
    return int(min(batch_size, max(1, math.ceil(fraction * batch_size - 1e-9))))


def select_blurriest(batch: torch.Tensor | int, degrees: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the blurriest ``fraction`` of a batch, blurriest first.

    Args:
        batch: the batch tensor ``(N, ...)`` (or just ``N``); only its size is used.
        degrees: ``(N,)`` blur degree per image (Laplacian variance; lower = blurrier).
        fraction: in (0, 1]; ``ceil(fraction * N)`` images are kept (at least one).

    Returns:
        ``(k,)`` int64 indices on ``degrees``' device, sorted by increasing degree (stable on ties).
    """
    n = int(batch) if isinstance(batch, int) else int(batch.shape[0])
    degrees = torch.as_tensor(degrees).flatten()
    if degrees.numel() != n:
        raise ValueError(f"{degrees.numel()} blur degrees for a batch of {n}")
    k = n_kept(n, fraction)
    order = torch.sort(degrees.detach().double(), stable=True).indices
    return order[:k].to(torch.int64)




def _gradient_energy(y: torch.Tensor, border: int) -> torch.Tensor:
    gx = y[..., :, 1:] - y[..., :, :-1]
    gy = y[..., 1:, :] - y[..., :-1, :]
    b = border
    gx, gy = gx[..., b:-b or None, b:-b or None], gy[..., b:-b or None, b:-b or None]
    return gx.pow(2).flatten(1).mean(1) + gy.pow(2).flatten(1).mean(1)


def reblur_degree(x: torch.Tensor, sigma: float = 2.0, pre: float = 1.5) -> torch.Tensor:
    """Blur degree per image, ``(N,)``, low = blurry: the gradient energy of the luma over that of the
    luma blurred once more by a Gaussian of ``sigma`` px (>= 1 up to rounding; near 1 for a blurred
    crop, large for a sharp one, whatever its texture). The luma is first smoothed by a Gaussian of
    ``pre`` px: without it sensor noise, which the re-blur removes, makes a blurry noisy crop look
    sharp. ``x``: ``(N, 3, H, W)`` or ``(N, 1, H, W)`` in [0, 1]; a border of ``3 (sigma + pre)`` px
    is left out so the padding does not count."""
    from ..losses import gaussian_blur

    y = luma(x.float())
    border = int(math.ceil(3 * (sigma + pre)))
    if min(y.shape[-2:]) <= 2 * border + 2:
        raise ValueError(f"reblur_degree needs images larger than {2 * border + 2} px for sigma {sigma}, pre {pre}")
    if pre > 0:
        y = gaussian_blur(y, pre)
    sharp = _gradient_energy(y, border)
    reblurred = _gradient_energy(gaussian_blur(y, sigma), border)
    return sharp / reblurred.clamp_min(1e-12)


def blur_degrees(x: torch.Tensor, measure: str = "reblur", sigma: float = 2.0, pre: float = 1.5) -> torch.Tensor:
    """The curriculum's blur degree of each image in ``x`` by ``measure``: ``reblur``
    (:func:`reblur_degree`) or ``laplacian`` (the paper's Laplacian variance, 0..255 scale)."""
    if measure == "reblur":
        return reblur_degree(x, sigma, pre)
    if measure == "laplacian":
        return laplacian_variance(x)
    raise ValueError(f"unknown blur measure {measure!r} (reblur or laplacian)")
