"""Blur2Blur losses (paper Eqs. 3-7) on hand-made inputs with values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from b2b_train import losses as L
from b2b_train.data.io import read_image, to_tensor


def _logits(values, shape=(2, 1, 2, 2)):
    return torch.full(shape, float(values))


# ----------------------------------------------------------------------------- adversarial

@pytest.mark.parametrize(
    "mode, real, fake, d_expected, g_expected",
    [
        # vanilla: D = softplus(-r) + softplus(f); G = softplus(-f)
        ("vanilla", 0.0, 0.0, 2 * math.log(2), math.log(2)),
        ("vanilla", 2.0, -1.0, math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)), math.log1p(math.exp(1))),
        # hinge: D = relu(1 - r) + relu(1 + f); G = -f
        ("hinge", 0.5, -0.25, 0.5 + 0.75, 0.25),
        ("hinge", 3.0, -3.0, 0.0, 3.0),
        # lsgan: D = (r - 1)^2 + f^2; G = (f - 1)^2
        ("lsgan", 1.0, 0.0, 0.0, 1.0),
        ("lsgan", 0.5, 0.5, 0.5, 0.25),
    ],
)
def test_adversarial_values_on_known_logits(mode, real, fake, d_expected, g_expected):
    r, f = _logits(real), _logits(fake)
    assert L.d_adversarial_loss(r, f, mode).item() == pytest.approx(d_expected, rel=1e-6, abs=1e-7)
    assert L.g_adversarial_loss(f, mode).item() == pytest.approx(g_expected, rel=1e-6, abs=1e-7)
    # a multi-scale list of identical maps of different sizes gives the same mean
    rs = [_logits(real, (2, 1, 4, 4)), _logits(real, (2, 1, 2, 2))]
    fs = [_logits(fake, (2, 1, 4, 4)), _logits(fake, (2, 1, 2, 2))]
    assert L.d_adversarial_loss(rs, fs, mode).item() == pytest.approx(d_expected, rel=1e-6, abs=1e-7)
    mod = L.AdversarialLoss(mode)
    assert mod.g(f).item() == pytest.approx(g_expected, rel=1e-6, abs=1e-7)


def test_vanilla_matches_eq3_probabilities():
    """-L_adv of Eq. 3 with D = sigmoid(logit): -log D(real) - log(1 - D(fake))."""
    torch.manual_seed(0)
    r, f = torch.randn(3, 1, 5, 5), torch.randn(3, 1, 5, 5)
    expected = -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())
    assert L.d_adversarial_loss(r, f, "vanilla").item() == pytest.approx(expected.item(), rel=1e-5)


def test_multiscale_losses_average_scales_not_positions():
    # scale 0 loss 0 (hinge, r=1,f=-1), scale 1 loss 2 (r=0, f=0): mean 1 regardless of map sizes
    rs = [_logits(1.0, (1, 1, 8, 8)), _logits(0.0, (1, 1, 1, 1))]
    fs = [_logits(-1.0, (1, 1, 8, 8)), _logits(0.0, (1, 1, 1, 1))]
    assert L.d_adversarial_loss(rs, fs, "hinge").item() == pytest.approx(1.0)


def test_unknown_gan_mode_is_rejected():
    with pytest.raises(ValueError, match="gan_mode"):
        L.d_adversarial_loss(_logits(0), _logits(0), "wgan")


# ----------------------------------------------------------------------------- gradient penalty

class _Linear(nn.Module):
    """D(x) = <w, x> per sample, as a (N, 1, 1, 1) logit map."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_gp_zero_for_unit_norm_linear_critic(batch):
    torch.manual_seed(1)
    w = torch.randn(1, 3, 6, 5)
    critic = _Linear(w / w.norm())
    a, b = torch.rand(batch, 3, 6, 5), torch.rand(batch, 3, 6, 5)
    gp = L.GradientPenalty()(critic, a, b, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)
    # ||w|| = 2 -> gradient norm 2 everywhere -> (2-1)^2 = 1 for every batch size
    critic2 = _Linear(2 * w / w.norm())
    assert L.GradientPenalty()(critic2, a, b).item() == pytest.approx(1.0, rel=1e-5)


def test_gp_is_per_sample_and_trains_the_critic():
    """Quadratic critic: sample i's gradient depends only on sample i; create_graph lets D learn."""
    torch.manual_seed(2)

    class Quad(nn.Module):
        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.tensor(0.3))

        def forward(self, x):
            return (self.s * x.pow(2)).flatten(1).sum(1).view(-1, 1)

    q = Quad()
    x = torch.rand(4, 2, 3, 3)
    gp_batch = L.gradient_penalty(q, x)
    gp_each = torch.stack([L.gradient_penalty(q, x[i : i + 1]) for i in range(4)]).mean()
    assert gp_batch.item() == pytest.approx(gp_each.item(), rel=1e-5)
    expected = ((2 * 0.3 * x).flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert gp_batch.item() == pytest.approx(expected.item(), rel=1e-5)
    gp_batch.backward()
    assert q.s.grad is not None and q.s.grad.abs().item() > 0


def test_interpolates_lie_between_endpoints_per_sample():
    a, b = torch.zeros(5, 3, 2, 2), torch.ones(5, 3, 2, 2)
    mix, eps = L.interpolate(a, b, torch.Generator().manual_seed(3))
    # mix = eps*0 + (1-eps)*1, one eps per sample
    assert torch.allclose(mix, (1 - eps).view(-1, 1, 1, 1).expand_as(mix))
    assert len(set(eps.tolist())) == 5 and ((eps >= 0) & (eps <= 1)).all()


# ----------------------------------------------------------------------------- perceptual

@pytest.fixture(scope="module")
def kodak_crop(kodak_images):
    img = read_image(kodak_images[0])[100:164, 200:264]
    return to_tensor(img)[None]  # (1, 3, 64, 64)


def _vgg(arch="vgg16", layers=("relu1_2", "relu2_2", "relu3_3")):
    from b2b_train.nets.vgg import VGGFeatures

    torch.manual_seed(0)
    return VGGFeatures(arch, layers, normalize=True).eval()


def test_perceptual_zero_for_identical_images(kodak_crop):
    from b2b_train.nets.mimo_unet import pyramid

    vgg = _vgg()
    ys = pyramid(kodak_crop)
    assert L.multiscale_perceptual_loss(vgg, ys, ys).item() == 0.0
    noisy = [y + 0.05 * torch.randn_like(y) for y in ys]
    assert L.multiscale_perceptual_loss(vgg, noisy, ys).item() > 0


def test_perceptual_element_count_normalisation_is_exact_for_pointwise_features(kodak_crop):
    """With a pointwise extractor, tiling the image 2x2 leaves Eq. 5 unchanged (sum would x4)."""
    conv = nn.Conv2d(3, 8, 1)
    feats = lambda x: {"a": conv(x), "b": torch.relu(conv(x))}  # noqa: E731
    y = kodak_crop
    g = y + 0.1 * torch.sin(torch.arange(64.0)).view(1, 1, 1, 64)
    small = L.perceptual_loss(feats, g, y, {"a": 0.5, "b": 2.0})
    big = L.perceptual_loss(feats, g.repeat(1, 1, 2, 2), y.repeat(1, 1, 2, 2), {"a": 0.5, "b": 2.0})
    assert big.item() == pytest.approx(small.item(), rel=1e-5)


def test_perceptual_is_size_invariant_with_vgg(kodak_crop):
    """Tiled image and perturbation 2x2: same loss up to seam effects, not 4x."""
    vgg = _vgg()
    torch.manual_seed(4)
    y = kodak_crop
    g = (y + 0.08 * torch.randn_like(y)).clamp(0, 1)
    small = L.perceptual_loss(vgg, g, y).item()
    big = L.perceptual_loss(vgg, g.repeat(1, 1, 2, 2), y.repeat(1, 1, 2, 2)).item()
    assert 0.8 < big / small < 1.25


def test_random_vgg_features_keep_their_scale_so_content_loss_counts(kodak_images):
    """Without ImageNet weights the trainer's random VGG gets He init: features keep the input's
    scale through the layers, and a small colour shift costs a perceptual loss comparable to the
    adversarial loss (~0.1 against ~0.7), not ~30x less as with PyTorch's default conv init."""
    from b2b_train.nets.mimo_unet import pyramid
    from b2b_train.trainer import variance_preserving_init

    y = to_tensor(read_image(kodak_images[2])[:96, :96])[None]
    layers = ("relu1_2", "relu2_2", "relu3_1")
    w = {"relu1_2": 0.125, "relu2_2": 0.25, "relu3_1": 1.0}  # cpu-quick
    shifted = pyramid((y + 0.04).clamp(0, 1))
    default = _vgg(layers=layers)
    he = variance_preserving_init(_vgg(layers=layers))
    scale_default = default(y)["relu3_1"].abs().mean().item()
    scale_he = he(y)["relu3_1"].abs().mean().item()
    assert scale_default < 0.05 and 0.2 < scale_he < 3.0, (scale_default, scale_he)
    loss_default = L.multiscale_perceptual_loss(default, shifted, pyramid(y), w).item()
    loss_he = L.multiscale_perceptual_loss(he, shifted, pyramid(y), w).item()
    assert loss_he > 10 * loss_default and loss_he > 0.05, (loss_default, loss_he)


def test_perceptual_weights_and_scale_reduction(kodak_crop):
    vgg = _vgg(layers=("relu1_2", "relu2_2"))
    y = kodak_crop
    g = (y * 0.9 + 0.05).clamp(0, 1)
    l1 = L.perceptual_loss(vgg, g, y, {"relu1_2": 1.0, "relu2_2": 0.0}).item()
    l2 = L.perceptual_loss(vgg, g, y, {"relu1_2": 0.0, "relu2_2": 1.0}).item()
    both = L.perceptual_loss(vgg, g, y, {"relu1_2": 0.25, "relu2_2": 2.0}).item()
    assert both == pytest.approx(0.25 * l1 + 2.0 * l2, rel=1e-5)
    ys, gs = [y, y], [g, y]
    mean = L.multiscale_perceptual_loss(vgg, gs, ys, reduction="mean").item()
    total = L.multiscale_perceptual_loss(vgg, gs, ys, reduction="sum").item()
    assert total == pytest.approx(2 * mean, rel=1e-6)
    assert total == pytest.approx(l1 + l2, rel=1e-5)


def test_perceptual_gradient_flows_to_output_not_to_vgg(kodak_crop):
    vgg = _vgg(layers=("relu1_2",))
    mod = L.MultiScalePerceptualLoss(vgg)
    out = (kodak_crop * 0.8).requires_grad_(True)
    loss = mod([out], [kodak_crop])
    loss.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_totals_follow_eqs_6_and_7():
    adv, rec, gp = torch.tensor(0.7), torch.tensor(0.2), torch.tensor(3.0)
    assert L.generator_total(adv, rec, 0.8).item() == pytest.approx(0.7 + 0.16)
    assert L.discriminator_total(adv, gp, 0.005).item() == pytest.approx(0.7 + 0.015)


def test_gp_under_autocast_is_fp32_and_finite():
    """GP inside a (CPU bf16) autocast region still computes in fp32."""
    torch.manual_seed(5)
    d = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))
    x = torch.rand(2, 3, 16, 16)
    ref = L.gradient_penalty(d, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = L.gradient_penalty(d, x)
    assert gp.dtype == torch.float32 and np.isfinite(gp.item())
    assert gp.item() == pytest.approx(ref.item(), rel=1e-6)


def test_lowpass_l1_frees_high_frequencies_and_charges_brightness(kodak_images):
    from b2b_train.data.io import read_image, to_tensor
    from b2b_train.losses import gaussian_blur, lowpass_l1, multiscale_lowpass_loss

    x = to_tensor(read_image(kodak_images[0])[:128, :128])[None]
    # a change confined to high frequencies: an alternating +-1-level checkerboard
    ii, jj = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    checker = ((ii + jj) % 2 * 2 - 1).float() / 255
    hf = lowpass_l1(x + checker, x, sigma=2.0)
    bright = lowpass_l1(x + 1 / 255, x, sigma=2.0)
    assert hf < 1e-5 * 255 / 255 and bright == pytest.approx(1 / 255, rel=1e-3)
    assert float(lowpass_l1(x, x)) == 0.0
    # re-blurring costs far less than a brightness shift of the same mean absolute size
    blurred = gaussian_blur(x, 1.0)
    shift = (blurred - x).abs().mean()
    assert lowpass_l1(blurred, x) < 0.25 * lowpass_l1(x + shift, x)
    outs = [x[..., ::4, ::4], x[..., ::2, ::2], x + 2 / 255]
    assert multiscale_lowpass_loss(outs, [x[..., ::4, ::4], x[..., ::2, ::2], x]) == pytest.approx(2 / 255 / 3, rel=1e-3)
