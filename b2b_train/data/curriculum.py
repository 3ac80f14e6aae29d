"""Blur-degree curriculum (paper §4.1).

The generator first optimises on the blurriest part of each batch only: images are sorted by their
blur degree (variance of the Laplacian, low = blurry) and the blurriest ``fraction`` is kept. The
paper keeps ~50 % at first and, after 200 K iterations, grows the fraction linearly to the whole
batch. The paper does not say when the growth ends; the translator's config
(:class:`b2b_train.trainer.CurriculumConfig`, in fractions of the run) ends it at the end of the
constant-LR phase (half the run: 500 K of 1 M iterations). The released reference code has no curriculum
(``enabled: false``).

    frac = curriculum_fraction(step, start_fraction=0.5, grow_start=200_000, grow_end=500_000)
    keep = select_blurriest(batch, degrees, frac)        # LongTensor of batch indices
    loss_g = loss_fn(fake[keep], ...)
"""

from __future__ import annotations

import math

import torch

__all__ = ["curriculum_fraction", "select_blurriest", "n_kept"]


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


