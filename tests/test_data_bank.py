"""The batched training data path: the device image bank and the static-shape known blur, checked
against the per-crop reference path on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from b2b_train.blur import kernel_extent, make_known_blur
from b2b_train.blur.synth import estimate_noise
from b2b_train.data.bank import ImageBank, crop_coordinates
from b2b_train.data.io import read_image
from b2b_train.deblur_trainer import CropSampler, SharpSet
from b2b_train.errors import DataError
from b2b_train.metrics import psnr


@pytest.fixture(scope="module")
def photos(kodak_images) -> list[np.ndarray]:
    return [read_image(p) for p in kodak_images[:8]]


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("rot", [0, 1, 2, 3])
def test_crop_coordinates_are_flip_then_rot90(flip, rot):
    patch = torch.arange(3 * 5 * 5).view(3, 5, 5)
    a, b = crop_coordinates(5, torch.tensor([flip]), torch.tensor([rot]))
    want = torch.rot90(patch.flip(-1) if flip else patch, rot, dims=(-2, -1))
    assert torch.equal(patch[:, a[0], b[0]], want)


def test_index_and_slice_gathers_give_the_same_crops(photos):
    a, b = ImageBank(photos, seed=5), ImageBank(photos, seed=5)
    for _ in range(3):
        assert torch.equal(a.crops(6, 64, gather="index"), b.crops(6, 64, gather="slices"))


def test_every_crop_is_a_window_of_a_bank_image_with_all_flips_and_rotations():
    # each pixel of the image says where it is: the crop's corner values reveal image, position and transform
    imgs = []
    for i, (h, w) in enumerate([(40, 50), (64, 36), (33, 70)]):
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        imgs.append(np.stack([yy, xx, np.full_like(yy, i)], -1).astype(np.uint8))
    bank = ImageBank(imgs, seed=0)
    c = bank.crops(400, 16, gather="index").long()
    transforms = set()
    for crop in c:
        img = imgs[int(crop[2, 0, 0])]
        assert (crop[2] == crop[2, 0, 0]).all()  # one image per crop
        ys, xs = crop[0], crop[1]
        y0, x0 = int(ys.min()), int(xs.min())
        assert ys.max() - y0 == 15 and xs.max() - x0 == 15
        assert y0 + 16 <= img.shape[0] and x0 + 16 <= img.shape[1]
        window = torch.from_numpy(img[y0 : y0 + 16, x0 : x0 + 16]).permute(2, 0, 1).long()
        hits = [(f, r) for f in (0, 1) for r in range(4)
                if torch.equal(torch.rot90(window.flip(-1) if f else window, r, dims=(-2, -1)), crop)]
        assert len(hits) == 1
        transforms.add(hits[0])
    assert len(transforms) == 8  # every flip x rotation occurs
    images_seen = torch.bincount(c[:, 2, 0, 0], minlength=3)
    assert images_seen.min() > 100  # uniform over images, not over pixels


def test_bank_state_resumes_the_same_crops(photos):
    bank = ImageBank(photos, seed=1)
    bank.crops(4, 48)
    state = bank.state_dict()
    want = bank.crops(4, 48)
    other = ImageBank(photos, seed=99)
    other.load_state_dict(state)
    assert torch.equal(other.crops(4, 48), want)


def test_bank_refuses_a_crop_larger_than_its_smallest_image(photos):
    with pytest.raises(DataError, match="larger than the smallest"):
        ImageBank(photos, seed=0).crops(2, 4096)


def _kernels(blur, n, seed):
    return blur.sample_kernels(n, torch.Generator().manual_seed(seed))


def test_static_shape_kernels_are_the_reference_kernels():
    # the same draws rasterised from a fixed number of samples: the same kernels within splatting detail
    ref = make_known_blur("kernels")
    static = ref.with_static_shapes()
    a, b = _kernels(ref, 256, 3), _kernels(static, 256, 3)
    assert a.shape == b.shape
    assert (b >= 0).all() and torch.allclose(b.sum((-2, -1)), torch.ones(256), atol=1e-5)
    assert (a - b).abs().sum((-2, -1)).max() < 0.05  # L1 between two PSFs of mass 1
    assert (kernel_extent(a, 1e-4) - kernel_extent(b, 1e-4)).abs().max() <= 1


def test_static_shape_blur_matches_the_reference_path_on_real_photos(photos):
    """Same images, same seed: the static-shape pipeline gives the reference's blur, not just its statistics."""
    sharp = CropSampler(SharpSet(photos, [str(i) for i in range(len(photos))]), 96, seed=0).batch(32)
    ref = make_known_blur("kernels")
    k_ref = ref(sharp, torch.Generator().manual_seed(11))
    k_new = ref.with_static_shapes()(sharp, torch.Generator().manual_seed(11))
    assert k_new.shape == sharp.shape and k_new.dtype == sharp.dtype
    agree = torch.tensor([psnr(k_new[i : i + 1], k_ref[i : i + 1]) for i in range(32)])
    # noise is drawn from the same stream position in both; the rest differs by FFT vs direct rounding
    assert agree.median() > 40 and agree.min() > 30, agree


def test_batched_path_has_the_reference_distribution(photos):
    """Different seeds, many crops: kernel extent and energy, blur strength (PSNR of K against S) and
    noise level of the batched path (bank crops + static-shape blur) match the per-crop path's."""
    n = 192
    names = [str(i) for i in range(len(photos))]
    ref_blur = make_known_blur("kernels")
    new_blur = ref_blur.with_static_shapes()
    s_ref = CropSampler(SharpSet(photos, names), 96, seed=1).batch(n)
    s_new = ImageBank(photos, seed=2).batch(n, 96)
    k_ref = ref_blur(s_ref, torch.Generator().manual_seed(3))
    k_new = new_blur(s_new, torch.Generator().manual_seed(4))

    def stats(sharp, blurry, kernels):
        ext = kernel_extent(kernels, 1e-4).float()
        return {
            "extent": float(ext.mean()),
            "energy": float(kernels.pow(2).sum((-2, -1)).mean()),
            "psnr": float(np.mean([psnr(blurry[i : i + 1], sharp[i : i + 1]) for i in range(len(sharp))])),
            "noise": float(estimate_noise(blurry).mean() * 255),
            "sharp_noise": float(estimate_noise(sharp).mean() * 255),
        }

    a = stats(s_ref, k_ref, _kernels(ref_blur, 1024, 5))
    b = stats(s_new, k_new, _kernels(new_blur, 1024, 6))
    # tolerances: about three standard errors of each mean at these sample sizes
    assert abs(a["extent"] - b["extent"]) < 0.8, (a, b)
    assert abs(a["energy"] - b["energy"]) / a["energy"] < 0.15, (a, b)
    assert abs(a["psnr"] - b["psnr"]) < 1.2, (a, b)
    assert abs(a["sharp_noise"] - b["sharp_noise"]) < 0.5, (a, b)
    assert abs(a["noise"] - b["noise"]) < 0.5, (a, b)


def test_static_shape_blur_keeps_basic_invariants():
    blur = make_known_blur("kernels", overrides=["noise.p=0", "noise.match=false", "quantize=false"]).with_static_shapes()
    flat = torch.full((4, 3, 48, 48), 0.37)
    assert torch.allclose(blur(flat, torch.Generator().manual_seed(0)), flat, atol=1e-5)  # constant stays constant
    delta = torch.zeros(1, 3, 41, 41)
    delta[..., 20, 20] = 1.0
    lin = make_known_blur("kernels", overrides=["noise.p=0", "noise.match=false", "quantize=false", "crf=linear",
                                                "spatial.p_uniform=1", "spatial.p_varying=0", "spatial.p_local=0"])
    out, info = lin.with_static_shapes().apply(delta, torch.Generator().manual_seed(7), return_info=True)
    k = info["kernels"][0, 0]
    s = k.shape[-1] // 2
    assert torch.allclose(out[0, 0, 20 - s : 21 + s, 20 - s : 21 + s], k, atol=1e-5)  # a delta returns its kernel
    assert kernel_extent(k, 1e-4) >= 3


def test_distillation_pair_bank_keeps_input_and_target_aligned(photos):
    from b2b_train.distill import PairBank, PairSampler

    inputs = [im[:200, :240] for im in photos[:3]]
    targets = [255 - im for im in inputs]  # a target that tells where it came from
    for sampler in (PairBank(inputs, targets, 100, seed=0, device="cpu"), PairSampler(inputs, targets, 100, seed=0)):
        x, t = sampler.batch(5)
        assert x.shape == t.shape == (5, 3, 96, 96)  # the crop rounded down to a multiple of 8
        assert torch.allclose(t, 1 - x, atol=1e-6)
