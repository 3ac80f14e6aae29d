"""Blur2Blur training losses (paper §3.2, Eqs. 3-7): adversarial, gradient penalty, perceptual.

Pure functions on tensors with shapes in the docstrings, plus thin ``nn.Module`` wrappers (kornia
style). Discriminator outputs ("logits") may be one tensor (N, 1, h, w) or a list of them (one per
scale of a multi-scale discriminator); a list is reduced by averaging the per-scale losses, so the
largest logit map does not dominate.

Adversarial modes (``gan_mode``):

* ``vanilla`` - Eq. 3 with logits ``l`` and ``D = sigmoid(l)``. D minimises
  ``-log D(real) - log(1 - D(fake)) = softplus(-l_real) + softplus(l_fake)`` (that is, ``-L_adv``
  of Eq. 7); G minimises the non-saturating form ``-log D(fake) = softplus(-l_fake)``, which has
  the same fixed point as ``log(1 - D(fake))`` of Eq. 6 but does not vanish when D wins early.
* ``hinge`` - D: ``relu(1 - l_real) + relu(1 + l_fake)``; G: ``-l_fake`` (released code).
* ``lsgan`` - D: ``(l_real - 1)^2 + l_fake^2``; G: ``(l_fake - 1)^2``.

Every term is a mean over batch and logit positions.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "psnr_loss",
    "charbonnier_loss",
    "GAN_MODES",
    "r1_penalty",
    "as_logit_list",
    "gaussian_blur",
    "lowpass_l1",
    "multiscale_lowpass_loss",
    "Logits",
    "d_adversarial_loss",
    "g_adversarial_loss",
    "critic_score",
    "interpolate",
    "gradient_penalty",
    "feature_l1",
    "perceptual_loss",
    "multiscale_perceptual_loss",
    "generator_total",
    "discriminator_total",
    "AdversarialLoss",
    "GradientPenalty",
    "MultiScalePerceptualLoss",
]


# -- pixel losses (the deblurrer's, the BKE's and distillation's reconstruction terms)


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """NAFNet's PSNR loss: mean over the batch of ``10·log10(mse)`` (= minus the PSNR, peak 1).

    ``pred``, ``target``: (N,C,H,W). Returns a scalar; lower is better.
    """
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (10.0 / math.log(10.0)) * torch.log(mse + eps).mean()


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean Charbonnier (smooth L1) loss ``mean(sqrt((pred - target)² + eps²))``."""
    return torch.sqrt((pred.float() - target.float()).pow(2) + eps * eps).mean()

GanMode = Literal["vanilla", "hinge", "lsgan"]
GAN_MODES: tuple[str, ...] = ("vanilla", "hinge", "lsgan")
Logits = torch.Tensor | Sequence[torch.Tensor]


def as_logit_list(x: Logits) -> list[torch.Tensor]:
    """A discriminator's output as a list of logit maps (one map, or one per scale / discriminator)."""
    return [x] if isinstance(x, torch.Tensor) else list(x)


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {', '.join(GAN_MODES)}, got {mode!r}")


def _d_single(real: torch.Tensor, fake: torch.Tensor, mode: str) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if mode == "vanilla":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if mode == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return (real - 1.0).pow(2).mean() + fake.pow(2).mean()


def _g_single(fake: torch.Tensor, mode: str) -> torch.Tensor:
    fake = fake.float()
    if mode == "vanilla":
        return F.softplus(-fake).mean()
    if mode == "hinge":
        return -fake.mean()
    return (fake - 1.0).pow(2).mean()


def d_adversarial_loss(real_logits: Logits, fake_logits: Logits, mode: GanMode = "vanilla") -> torch.Tensor:
    """Discriminator's adversarial loss (``-L_adv`` of Eq. 7 in ``vanilla`` mode).

    Args:
        real_logits: D on known-blur images K: (N, 1, h, w) or a list (one per scale).
        fake_logits: D on translated images G(y), same structure (any batch size).
        mode: ``vanilla``, ``hinge`` or ``lsgan``.
    Returns:
        scalar (float32): mean over scales of the per-scale loss.
    """
    _check_mode(mode)
    r, f = as_logit_list(real_logits), as_logit_list(fake_logits)
    if len(r) != len(f):
        raise ValueError(f"real and fake logits have {len(r)} and {len(f)} scales")
    return torch.stack([_d_single(a, b, mode) for a, b in zip(r, f)]).mean()


def g_adversarial_loss(fake_logits: Logits, mode: GanMode = "vanilla") -> torch.Tensor:
    """Generator's adversarial loss (the ``L_adv`` term of Eq. 6; non-saturating for ``vanilla``).

    Args:
        fake_logits: D on G(y): (N, 1, h, w) or a list (one per scale).
    Returns:
        scalar (float32).
    """
    _check_mode(mode)
    return torch.stack([_g_single(f, mode) for f in as_logit_list(fake_logits)]).mean()


# ----------------------------------------------------------------------------- gradient penalty

def critic_score(logits: Logits) -> torch.Tensor:
    """Per-sample critic value: mean of each sample's logits over positions and scales.

    Args:
        logits: (N, ...) or a list of (N, ...).
    Returns:
        (N,) float32.
    """
    per_scale = [t.float().reshape(t.shape[0], -1).mean(dim=1) for t in as_logit_list(logits)]
    return torch.stack(per_scale).mean(dim=0)


def r1_penalty(critic: Callable[[torch.Tensor], Logits], real: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Zero-centred R1 penalty ``E[||grad_x D(x)||^2]`` on real samples (Mescheder et al. 2018).

    Unlike the 1-centred WGAN-GP term it never asks D to be steep: it only flattens D around the
    real data, the form shown to converge. ``critic(x)`` is reduced per sample as
    :func:`critic_score`; float32 with autocast off, as :func:`gradient_penalty`. Scalar.
    """
    x = real.detach().float().requires_grad_(True)
    device_type = x.device.type if x.device.type in ("cuda", "cpu") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        score = critic_score(critic(x))
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=create_graph)
    return grad.reshape(grad.shape[0], -1).pow(2).sum(dim=1).mean()


def interpolate(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random per-sample mixes ``eps * a + (1 - eps) * b``, ``eps ~ U[0, 1]`` (Eq. 4's ŷ).

    Args:
        a, b: (N, C, H, W), same shape; ``b`` is usually G(y) (detached).
        generator: optional torch.Generator (on CPU) for reproducible ``eps``.
    Returns:
        ``(mix, eps)``: mix (N, C, H, W) float32, eps (N,).
    """
    if a.shape != b.shape:
        raise ValueError(f"interpolate needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    eps = torch.rand(a.shape[0], generator=generator, dtype=torch.float32).to(a.device)
    e = eps.view(-1, *([1] * (a.dim() - 1)))
    return e * a.float() + (1.0 - e) * b.float(), eps


def gradient_penalty(
    critic: Callable[[torch.Tensor], Logits],
    points: torch.Tensor,
    create_graph: bool = True,
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||∇_x D(x)||_2 - 1)^2]`` at ``points`` (Eq. 4).

    Each sample's gradient is taken of its own critic value (:func:`critic_score`), so the result
    does not depend on the batch size. Computed in float32 with autocast off, so it is safe inside
    an AMP step (fp16 gradients of the critic would underflow or overflow).

    Args:
        critic: D, (N, C, H, W) -> logits (tensor or list of tensors).
        points: (N, C, H, W) interpolates (see :func:`interpolate`); need not require grad.
        create_graph: keep the graph so the penalty can be back-propagated into D (D step).
    Returns:
        scalar float32.
    """
    x = points.detach().float().requires_grad_(True)
    device_type = x.device.type if x.device.type in ("cuda", "cpu") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        score = critic_score(critic(x))
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=create_graph)
    norms = grad.reshape(grad.shape[0], -1).norm(2, dim=1)
    return (norms - 1.0).pow(2).mean()


# ----------------------------------------------------------------------------- perceptual

def feature_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||_1 / numel``: L1 feature distance divided by its element count (Eq. 5's 1/t_i).

    Args:
        a, b: same shape (N, C, H, W).
    Returns:
        scalar float32.
    """
    return (a.float() - b.float()).abs().mean()


def perceptual_loss(
    features: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    output: torch.Tensor,
    target: torch.Tensor,
    weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Weighted sum over feature layers of :func:`feature_l1` between ``features(output)`` and
    ``features(target)`` (the target's features are detached).

    Args:
        features: extractor returning ``{layer: (N, C_l, H_l, W_l)}`` (e.g. ``VGGFeatures``).
        output, target: (N, 3, H, W).
        weights: per-layer weight; layers missing from it weigh 1.
    Returns:
        scalar float32; exactly 0 when ``output`` equals ``target``.
    """
    both = features(torch.cat([output, target.to(output.dtype)], dim=0))
    n = output.shape[0]
    total = output.new_zeros((), dtype=torch.float32)
    for name, f in both.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = total + w * feature_l1(f[:n], f[n:].detach())
    return total


def multiscale_perceptual_loss(
    features: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    outputs: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    weights: Mapping[str, float] | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Eq. 5: ``L_rec = 1/M Σ_i perceptual(G(y)_i, y_i)`` over the M translator scales.

    Args:
        outputs: G's outputs ``[(N,3,H/4,W/4), (N,3,H/2,W/2), (N,3,H,W)]`` (any number of scales).
        inputs: the input image at the same scales (``mimo_unet.pyramid(y)``), same shapes.
        reduction: ``mean`` over scales (paper's 1/M) or ``sum`` (released code).
    Returns:
        scalar float32.
    """
    outputs, inputs = list(outputs), list(inputs)
    if len(outputs) != len(inputs) or not outputs:
        raise ValueError(f"need matching non-empty scale lists, got {len(outputs)} outputs and {len(inputs)} inputs")
    per = [perceptual_loss(features, o, i, weights) for o, i in zip(outputs, inputs)]
    total = torch.stack(per).sum()
    return total / len(per) if reduction == "mean" else total


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` (radius 3 sigma, reflect-padded, capped by the image size)."""
    r = max(1, min(int(math.ceil(3 * sigma)), x.shape[-1] - 1, x.shape[-2] - 1))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def lowpass_l1(output: torch.Tensor, target: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """L1 between Gaussian-blurred (``sigma`` px) images: content and colour, not blur (DSGAN's colour loss).

    A change confined to frequencies the Gaussian removes (what re-blurring does) costs nearly
    nothing; a brightness or colour shift costs its full size. Scalar float32.
    """
    return (gaussian_blur(output.float(), sigma) - gaussian_blur(target.float(), sigma)).abs().mean()


def multiscale_lowpass_loss(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], sigma: float = 2.0,
                            reduction: Literal["mean", "sum"] = "mean") -> torch.Tensor:
    """:func:`lowpass_l1` at every translator scale, sigma halved with each halving of the image
    (the same content at every scale); combined like :func:`multiscale_perceptual_loss`."""
    outputs, inputs = list(outputs), list(inputs)
    if len(outputs) != len(inputs) or not outputs:
        raise ValueError(f"need matching non-empty scale lists, got {len(outputs)} outputs and {len(inputs)} inputs")
    full = outputs[-1].shape[-1]
    per = [lowpass_l1(o, i, max(0.5, sigma * o.shape[-1] / full)) for o, i in zip(outputs, inputs)]
    total = torch.stack(per).sum()
    return total / len(per) if reduction == "mean" else total


def generator_total(adv: torch.Tensor, rec: torch.Tensor, lambda_rec: float) -> torch.Tensor:
    """Eq. 6: ``L_G = L_adv + λ_rec L_rec``."""
    return adv + lambda_rec * rec


def discriminator_total(adv_d: torch.Tensor, gp: torch.Tensor, lambda_grad: float) -> torch.Tensor:
    """Eq. 7: ``L_D = -L_adv + λ_grad L_grad`` (``adv_d`` is :func:`d_adversarial_loss`)."""
    return adv_d + lambda_grad * gp


# ----------------------------------------------------------------------------- modules

class AdversarialLoss(nn.Module):
    """``AdversarialLoss(mode).d(real_logits, fake_logits)`` / ``.g(fake_logits)``."""

    def __init__(self, mode: GanMode = "vanilla"):
        super().__init__()
        _check_mode(mode)
        self.mode = mode

    def d(self, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        return d_adversarial_loss(real_logits, fake_logits, self.mode)

    def g(self, fake_logits: Logits) -> torch.Tensor:
        return g_adversarial_loss(fake_logits, self.mode)

    def forward(self, fake_logits: Logits) -> torch.Tensor:
        return self.g(fake_logits)


class GradientPenalty(nn.Module):
    """``GradientPenalty()(critic, a, b, generator)``: penalty on random interpolates of a and b."""

    def forward(self, critic, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None,
                create_graph: bool = True) -> torch.Tensor:
        mix, _ = interpolate(a, b, generator)
        return gradient_penalty(critic, mix, create_graph=create_graph)


class MultiScalePerceptualLoss(nn.Module):
    """Eq. 5 around a frozen feature extractor (``VGGFeatures``) with per-layer weights."""

    def __init__(self, features: nn.Module, weights: Mapping[str, float] | None = None,
                 reduction: Literal["mean", "sum"] = "mean"):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.weights = dict(weights) if weights is not None else None
        self.reduction = reduction

    def train(self, mode: bool = True):  # the extractor stays in eval mode
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return multiscale_perceptual_loss(self.features, outputs, inputs, self.weights, self.reduction)
