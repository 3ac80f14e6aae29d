"""Blur-preserving DiffAugment: what it changes, what it must not (the blur), and its use in training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from b2b_train.data.diffaugment import cutout, diff_augment, parse_policy, translation
from b2b_train.data.io import read_image, to_tensor
from b2b_train.errors import ConfigError


@pytest.fixture(scope="module")
def photos(kodak_images) -> torch.Tensor:
    return torch.stack([to_tensor(read_image(p)[100:196, 140:236]) for p in kodak_images[:4]])


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A 7 px diagonal motion blur (kernel sums to one), zero-padded like translation's border."""
    k = torch.eye(7) / 7
    return F.conv2d(x, k.expand(3, 1, 7, 7).contiguous(), padding=3, groups=3)


def test_augmenting_commutes_with_blur(photos):
    """Colour and integer translation are per-image affine maps and pixel moves: blurring then
    augmenting gives the augmented image blurred (away from the border), so D sees the same blur."""
    policy = "color,translation"
    a = diff_augment(_blur(photos), policy, generator=torch.Generator().manual_seed(3))
    b = _blur(diff_augment(photos, policy, generator=torch.Generator().manual_seed(3)))
    inner = (slice(None), slice(None), slice(24, -24), slice(24, -24))
    # contrast and saturation use each image's own mean, which blur leaves almost unchanged
    assert (a[inner] - b[inner]).abs().mean() < 2e-3
    assert not torch.allclose(a, _blur(photos), atol=1e-2)  # it did augment


def test_translation_moves_whole_pixels(photos):
    out = translation(photos, generator=torch.Generator().manual_seed(0))
    h, w = photos.shape[-2:]
    shifts = []
    for x, y in zip(photos, out):
        found = None
        for dy in range(-12, 13):
            for dx in range(-12, 13):
                # y[i, j] = x[i + dy, j + dx] where that pixel exists
                ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
                yd, xd = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
                if torch.equal(y[:, ys, xs], x[:, yd, xd]):
                    found = (dy, dx)
                    break
            if found:
                break
        assert found is not None, "no whole-pixel shift reproduces the output"
        shifts.append(found)
    assert len(set(shifts)) > 1  # per-image draws


def test_cutout_zeroes_one_square_per_image(photos):
    ones = torch.ones_like(photos)
    out = cutout(ones, ratio=0.5, generator=torch.Generator().manual_seed(1))
    zero = (out == 0).all(dim=1)
    assert torch.allclose(zero.float().mean(dim=(1, 2)), torch.full((4,), 0.25))
    rows = zero.any(dim=2).sum(dim=1)
    assert (rows == 48).all()  # one 48 px square, inside the 96 px image


def test_gradient_flows_and_bad_policy_is_named(photos):
    x = photos.clone().requires_grad_(True)
    diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(0)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parse_policy("") == [] and parse_policy("color, cutout") == ["color", "cutout"]
    with pytest.raises(ConfigError, match="scale"):
        parse_policy("color,scale")


@pytest.mark.usefixtures("one_torch_thread")
def test_translator_trains_with_d_augment(tmp_path, asl_clips):
    from conftest import tiny_translator, write_frame_sets

    from b2b_train.trainer import train_translator

    frames = write_frame_sets(tmp_path / "frames", asl_clips[0], asl_clips[1], step=8, max_frames=6)
    tiny = tiny_translator(log_every=1, val_every=1000, ckpt_every=1000)
    with pytest.raises(ConfigError, match="rotate"):
        train_translator(*frames, tmp_path / "bad", "cpu-quick", tiny + ["model.d_augment=color,rotate"], iters=1,
                         progress=False)
    metrics: list[dict] = []
    path = train_translator(*frames, tmp_path / "run", "cpu-quick", tiny + ["model.d_augment=color,translation,cutout"],
                            iters=3, progress=False, on_step=lambda s, m: metrics.append(m))
    assert path.is_file() and len(metrics) == 3
    assert all(math.isfinite(m["loss_d"]) and math.isfinite(m["loss_g"]) for m in metrics)
