"""Known-blur synthesis: kernel bank, measured kernels, convolution, linear-light pipeline.

Convention checked here: blurring is a true convolution with the kernel origin at its centre pixel,
so a delta image comes back as the kernel itself, *not* flipped.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from b2b_train.blur import (
    CameraResponse,
    KnownBlurConfig,
    convolve,
    kernel_extent,
    load_kernels,
    make_known_blur,
    random_kernels,
)
from b2b_train.blur.synth import estimate_noise
from b2b_train.config import from_dict
from b2b_train.errors import ConfigError, DataError
from b2b_train.metrics import laplacian_variance


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _read_rgb(path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _batch(paths, size=(96, 128)) -> torch.Tensor:
    h, w = size
    ims = [_read_rgb(p)[:h, :w] for p in paths]
    return torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float() / 255


def _cfg(**kw) -> KnownBlurConfig:
    """A config from a plain dict (validated like a preset): noise off unless asked."""
    d = {"noise": {"p": 0.0}}
    d.update(kw)
    return from_dict(KnownBlurConfig, d)


# ------------------------------------------------------------------------------------ kernel bank


@pytest.mark.parametrize("extent", [1.0, 4.5, 11.0, 23.0])
def test_random_kernels_are_normalised_and_have_requested_extent(extent):
    g = torch.Generator().manual_seed(int(extent * 10))
    k = random_kernels(48, size=27, extent=extent, generator=g)
    assert k.shape == (48, 27, 27) and k.dtype == torch.float32
    assert float(k.min()) >= 0
    torch.testing.assert_close(k.sum((1, 2)), torch.ones(48), atol=1e-5, rtol=0)
    # bilinear splatting: a continuous span L touches floor(L)+1 .. ceil(L)+2 pixels
    support = kernel_extent(k)
    assert int(support.min()) >= np.floor(extent) + 1, support
    assert int(support.max()) <= np.ceil(extent) + 2, support
    assert float(support.float().mean()) >= extent + 0.5  # mostly more than L+1: sub-pixel offsets
    # centre of mass on the centre pixel (the kernel shifts no image) when the canvas has room;
    # on a tight canvas the kernel is shifted only as far as needed to fit
    ys = torch.arange(27.0).view(1, 27, 1)
    xs = torch.arange(27.0).view(1, 1, 27)
    off = torch.maximum(((k * ys).sum((1, 2)) - 13).abs(), ((k * xs).sum((1, 2)) - 13).abs())
    if 2 * extent + 3 <= 27:
        assert float(off.max()) < 0.6


def test_random_kernels_extent_range_and_seed():
    k1 = random_kernels(200, size=31, extent=(3.0, 21.0), generator=torch.Generator().manual_seed(7))
    k2 = random_kernels(200, size=31, extent=(3.0, 21.0), generator=torch.Generator().manual_seed(7))
    k3 = random_kernels(200, size=31, extent=(3.0, 21.0), generator=torch.Generator().manual_seed(8))
    assert torch.equal(k1, k2)
    assert not torch.equal(k1, k3)
    span = kernel_extent(k1).float() - 1
    assert 3 <= float(span.min()) and float(span.max()) <= 22
    assert float(span.std()) > 3  # spread over the range, not all one length
    # not all straight lines: many kernels cover far more pixels than a line of their extent
    support = (k1 > 1e-4).sum((1, 2)).float()
    assert float((support > 2.5 * (span + 1)).float().mean()) > 0.1


def test_random_kernels_reject_impossible_sizes():
    with pytest.raises(ValueError):
        random_kernels(2, size=10, extent=3.0)
    with pytest.raises(ValueError):
        random_kernels(2, size=11, extent=15.0)


# ------------------------------------------------------------------------------- measured kernels


def test_mat_npz_png_kernels_load_alike(shared_data):
    import cv2

    kdir = shared_data / "kernels"
    mat = load_kernels(kdir / "kernels_12.mat")
    npz = load_kernels(kdir / "kernels_12.npz")
    assert mat.shape == (12, 25, 25)
    torch.testing.assert_close(mat, npz, atol=1e-6, rtol=0)
    torch.testing.assert_close(mat.sum((1, 2)), torch.ones(12), atol=1e-5, rtol=0)
    # the .npz keys k1..k12 come out in numeric order (k10 after k9), matching the .mat's order
    raw = np.load(kdir / "kernels_12.npz")
    torch.testing.assert_close(npz[9], torch.from_numpy(raw["k10"] / raw["k10"].sum()).float(), atol=1e-6, rtol=0)
    png = load_kernels(kdir / "k_large_1.png")
    raw_png = cv2.imread(str(kdir / "k_large_1.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)
    assert png.shape == (1, 67, 67)
    torch.testing.assert_close(png[0], torch.from_numpy(raw_png / raw_png.sum()).float(), atol=1e-7, rtol=0)
    # even-sized PNG (70 px) becomes odd, still sums to 1; a list pads everything to one size
    both = load_kernels([kdir / "k_large_1.png", kdir / "k_large_2.png"])
    assert both.shape == (2, 71, 71)
    torch.testing.assert_close(both.sum((1, 2)), torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(both[0, 2:69, 2:69], png[0])


def test_missing_or_bad_kernel_files_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_kernels(tmp_path / "nope.mat")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError):
        load_kernels(bad)
    np.save(tmp_path / "zero.npy", np.zeros((5, 5)))
    with pytest.raises(DataError, match="all zero"):
        load_kernels(tmp_path / "zero.npy")


# ------------------------------------------------------------------------------------ convolution


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_delta_image_returns_the_kernel_unflipped(shared_data, method):
    k = load_kernels(shared_data / "kernels" / "k_large_1.png")[0]  # asymmetric measured kernel
    s = k.shape[-1]
    x = torch.zeros(1, 3, 120, 140)
    x[:, :, 50, 60] = 1.0
    y = convolve(x, k[None], method=method)
    r = s // 2
    patch = y[0, :, 50 - r : 50 + r + 1, 60 - r : 60 + r + 1]
    for c in range(3):
        torch.testing.assert_close(patch[c], k, atol=1e-5, rtol=0)
    assert float(y.sum()) == pytest.approx(3.0, abs=1e-3)
    # and through the whole known-blur pipeline (linear CRF, no noise, float output)
    kb = make_known_blur(_cfg(crf="linear", quantize=False, kernels={"extent": [9.0, 9.0]}))
    y2, info = kb.apply(x, torch.Generator().manual_seed(0), return_info=True)
    kk = info["kernels"][0, 0]
    rr = kk.shape[-1] // 2
    torch.testing.assert_close(y2[0, 0, 50 - rr : 50 + rr + 1, 60 - rr : 60 + rr + 1], kk, atol=1e-5, rtol=0)


def test_fft_and_direct_agree_on_a_real_image(kodak_images, shared_data):
    x = _batch(kodak_images[:2], (80, 112))
    ks = load_kernels(shared_data / "kernels" / "kernels_12.mat")
    k = torch.stack([ks[8:10], ks[10:12]])  # (2 images, 2 kernels each)
    a = convolve(x, k, method="direct")
    b = convolve(x, k, method="fft")
    assert a.shape == (2, 2, 3, 80, 112)
    torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    big = load_kernels([shared_data / "kernels" / "k_large_2.png"])  # 71 px: FFT path in 'auto'
    a = convolve(x, big.expand(2, -1, -1), method="direct")
    b = convolve(x, big.expand(2, -1, -1), method="auto")
    torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


@pytest.mark.parametrize("preset_mix", ["uniform", "varying", "local"])
@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_constant_image_stays_constant_including_borders(preset_mix, padding):
    spatial = {"p_uniform": 0.0, "p_varying": 0.0, "p_local": 0.0}
    spatial["p_" + preset_mix] = 1.0
    kb = make_known_blur(_cfg(spatial=spatial, padding=padding, kernels={"extent": [15.0, 29.0]}))
    for value in (37, 128, 251):
        x = torch.full((3, 3, 40, 56), value / 255.0)  # kernels (up to 31 px) nearly as big as the image
        y = kb(x, torch.Generator().manual_seed(value))
        assert torch.equal(y, x), f"value {value}: max change {(y - x).abs().max():.4g}"


def test_kernel_larger_than_image_has_no_dark_border(shared_data):
    big = load_kernels(shared_data / "kernels" / "k_large_2.png")
    x = torch.full((1, 3, 24, 30), 0.6)
    y = convolve(x, big, padding="reflect")  # pad > image: falls back to replicate
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------ known-blur pipeline


def test_presets_load_and_describe():
    for name in ("kernels", "kernels-uniform"):
        kb = make_known_blur(name)
        text = kb.describe()
        assert "known blur" in text and "gamma 2.2" in text
    assert make_known_blur("kernels-uniform").cfg.spatial.p_uniform == 1.0
    d = make_known_blur("kernels").cfg.spatial
    assert d.p_local > 0 and d.p_uniform > 0


def test_bad_configs_fail_with_config_error():
    with pytest.raises(ConfigError, match="p_uniform"):
        make_known_blur("kernels", overrides=["spatial.p_uniform=0.9"])
    with pytest.raises(ConfigError, match="unknown config key"):
        make_known_blur("kernels", overrides=["kernels.lenght=[1,2]"])
    with pytest.raises(ConfigError, match="unknown known config"):
        make_known_blur("no-such-preset")
    with pytest.raises(ConfigError, match="size"):
        make_known_blur("kernels", overrides=["kernels.size=11", "kernels.extent=[3,21]"])


def test_blur_is_reproducible_and_blurs_real_images(kodak_images):
    x = _batch(kodak_images[:4])
    kb = make_known_blur("kernels-uniform", overrides=["kernels.extent=[8,15]"])
    y1 = kb(x, torch.Generator().manual_seed(1))
    y2 = kb(x, torch.Generator().manual_seed(1))
    y3 = kb(x, torch.Generator().manual_seed(2))
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)
    assert y1.shape == x.shape and y1.dtype == x.dtype
    assert float(y1.min()) >= 0 and float(y1.max()) <= 1
    assert torch.equal(torch.round(y1 * 255) / 255, y1)  # 8-bit levels
    lv_sharp = laplacian_variance(x)
    lv_blur = laplacian_variance(y1)
    assert bool((lv_blur < 0.5 * lv_sharp).all()), (lv_sharp, lv_blur)
    # blur moves light, it does not add or remove it: channel means in linear light are kept
    # (display-value means drop a little: the gamma curve is concave)
    torch.testing.assert_close((y1**2.2).mean((2, 3)), (x**2.2).mean((2, 3)), atol=0.01, rtol=0)


def test_local_blur_leaves_sharp_region_unchanged(kodak_images):
    x = _batch(kodak_images[4:8], (128, 160))
    kb = make_known_blur(
        "kernels",
        overrides=["spatial.p_uniform=0", "spatial.p_varying=0", "spatial.p_local=1", "noise.p=0", "kernels.extent=[9,17]"],
    )
    y, info = kb.apply(x, torch.Generator().manual_seed(3), return_info=True)
    sharp = info["sharp_weight"][:, 0, 0]  # (N, H, W)
    keep = sharp >= 1
    blurred = sharp <= 0
    lo, hi = kb.cfg.spatial.sharp_fraction
    for i in range(len(x)):
        frac = float(keep[i].float().mean())
        assert lo - 0.25 <= frac <= hi + 0.1, frac
        assert bool(blurred[i].any())
        m = keep[i].expand(3, -1, -1)
        assert torch.equal(y[i][m], x[i][m])  # exactly the input (8-bit levels in, same out)
        mb = blurred[i].expand(3, -1, -1)
        assert float((y[i][mb] - x[i][mb]).abs().mean()) > 2 / 255
    # the sharp mask is smooth: a soft edge exists between the two regions
    assert bool(((sharp > 0) & (sharp < 1)).any())


def test_varying_blur_blends_several_kernels(kodak_images):
    x = _batch(kodak_images[:2], (96, 128))
    kb = make_known_blur("kernels", overrides=["spatial.p_uniform=0", "spatial.p_varying=1", "spatial.p_local=0", "spatial.n_kernels=3"])
    y, info = kb.apply(x, torch.Generator().manual_seed(0), return_info=True)
    w = info["kernel_weights"]
    assert w.shape == (2, 3, 1, 96, 128)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 1, 96, 128))
    # each kernel dominates somewhere: the field really varies across the frame
    assert bool((w.amax(dim=(2, 3, 4)) > 0.6).all())
    assert float(info["sharp_weight"].abs().max()) == 0.0


def test_noise_level_matches_poisson_gaussian_model():
    kb = make_known_blur(_cfg(quantize=False, noise={"p": 1.0, "shot": [0.004, 0.004], "read": [0.01, 0.01]}))
    v = 0.5
    x = torch.full((2, 3, 128, 128), v)
    y = kb(x, torch.Generator().manual_seed(0))
    expected = (0.004 * v + 0.01**2) ** 0.5
    assert float((y - v).std()) == pytest.approx(expected, rel=0.05)
    assert abs(float((y - v).mean())) < 0.005


def _noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.round((x + sigma / 255 * torch.randn(x.shape, generator=g)).clamp(0, 1) * 255) / 255)


def test_noise_estimate_follows_added_noise_on_real_images(kodak_images):
    x = _batch(kodak_images[:3], (192, 256))
    clean = estimate_noise(x) * 255  # fine texture reads as a little noise (a few levels at most)
    assert float(clean.max()) < 5.0, clean
    for sigma in (3.0, 6.0, 10.0):
        est = estimate_noise(_noisy(x, sigma)) * 255
        assert est.shape == (3, 3)
        # the photo's own residual adds in quadrature; quantisation and the median cost a little
        want = (clean**2 + sigma**2).sqrt()
        assert float((est - want).abs().max()) < 0.15 * sigma + 0.5, (sigma, est, want)


def test_matched_noise_keeps_the_sharp_frames_sensor_noise(kodak_images):
    """Blurring a noisy frame averages its noise away; ``noise.match`` puts it back (K as noisy as B)."""
    x = _noisy(_batch(kodak_images[3:6], (128, 160)), 6.0, seed=1)
    spatial = {"p_uniform": 1.0, "p_varying": 0.0, "p_local": 0.0}
    plain = make_known_blur(_cfg(spatial=spatial, kernels={"extent": [7.0, 13.0]}))
    matched = make_known_blur(_cfg(spatial=spatial, kernels={"extent": [7.0, 13.0]}, noise={"p": 0.0, "match": True}))
    sx = estimate_noise(x)
    sp = estimate_noise(plain(x, torch.Generator().manual_seed(0)))
    sm = estimate_noise(matched(x, torch.Generator().manual_seed(0)))
    assert bool((sp < 0.4 * sx).all()), (sx, sp)  # the blur removed most of the noise
    assert bool(((sm - sx).abs() < 0.2 * sx).all()), (sx, sm)
    assert "own noise" in matched.describe()
    # with the configured sensor noise on too, a noisy input gets no extra (K not noisier than the
    # camera), while a clean photo still gets the configured noise
    both = make_known_blur(_cfg(spatial=spatial, kernels={"extent": [7.0, 13.0]},
                                noise={"p": 1.0, "shot": [0.0004, 0.0004], "read": [0.004, 0.004], "match": True}))
    sb = estimate_noise(both(x, torch.Generator().manual_seed(0)))
    assert bool(((sb - sx).abs() < 0.2 * sx).all()), (sx, sb)
    clean = _batch(kodak_images[3:6], (128, 160))
    assert bool((estimate_noise(both(clean, torch.Generator().manual_seed(0))) > estimate_noise(plain(clean, torch.Generator().manual_seed(0)))).all())
    # a clean (constant) image gets nothing: no noise to keep
    c = torch.full((2, 3, 40, 56), 0.4)
    assert torch.equal(matched(c, torch.Generator().manual_seed(0)), torch.round(c * 255) / 255)


def test_camera_response_round_trips(tmp_path):
    x = torch.linspace(0, 1, 257)
    for kind in ("gamma", "srgb", "linear"):
        crf = CameraResponse(kind)
        torch.testing.assert_close(crf.from_linear(crf.to_linear(x)), x, atol=1e-5, rtol=0)
    curve = np.linspace(0, 1, 1024) ** (1 / 2.2)
    np.savetxt(tmp_path / "crf.txt", curve)
    crf = CameraResponse(str(tmp_path / "crf.txt"))
    torch.testing.assert_close(crf.to_linear(x), x**2.2, atol=2e-3, rtol=0)
    torch.testing.assert_close(crf.from_linear(crf.to_linear(x)), x, atol=2e-3, rtol=0)
    with pytest.raises(ConfigError):
        CameraResponse(str(tmp_path / "missing.txt"))


def test_measured_kernel_files_as_a_source(shared_data, kodak_images):
    kfile = str(shared_data / "kernels" / "kernels_12.mat")
    kb = make_known_blur("kernels-uniform", overrides=[f"kernels.files=[{kfile}]", "kernels.p_files=1.0", "noise.p=0"])
    assert "measured" in kb.describe()
    x = _batch(kodak_images[:3])
    y, info = kb.apply(x, torch.Generator().manual_seed(0), return_info=True)
    meas = load_kernels(kfile)
    k = info["kernels"][:, 0]
    c = k.shape[-1] // 2
    for ki in k:
        core = ki[c - 12 : c + 13, c - 12 : c + 13]
        assert min(float((core - m).abs().max()) for m in meas) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_known_blur_on_cuda_matches_cpu(kodak_images):
    x = _batch(kodak_images[:2])
    kb = make_known_blur("kernels", overrides=["noise.p=0"], device="cuda")
    a = kb(x, torch.Generator().manual_seed(0))
    b = kb(x.cuda(), torch.Generator().manual_seed(0))
    assert b.device.type == "cuda"
    assert float((a - b.cpu()).abs().max()) <= 1 / 255 + 1e-6
    # a generator on the GPU (as the trainers use) works for every mode, noise included
    mix = make_known_blur("kernels", overrides=["spatial.p_uniform=0.2", "spatial.p_varying=0.3", "spatial.p_local=0.5"])
    gg = torch.Generator(device="cuda").manual_seed(0)
    c1 = mix(x.cuda(), gg)
    c2 = mix(x.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert c1.shape == x.shape and float((c1 - c2).abs().max()) <= 1 / 255 + 1e-6


def test_fixed_bank_is_a_frozen_domain():
    a = make_known_blur("kernels", overrides=["kernels.bank=20", "kernels.bank_seed=5"])
    b = make_known_blur("kernels", overrides=["kernels.bank=20", "kernels.bank_seed=5"])
    assert torch.equal(a.bank, b.bank) and a.bank.shape[0] == 20
    drawn = a.sample_kernels(50, torch.Generator().manual_seed(1))
    # every kernel drawn is one of the 20 in the bank, and several different ones are used
    d = (drawn[:, None] - a.bank[None]).abs().amax((-1, -2))  # (50, 20)
    assert bool((d.amin(1) == 0).all())
    assert int((d == 0).any(0).sum()) >= 10
    assert "fixed bank of 20" in a.describe()


# ------------------------------------------------------------------------- strength matching


def test_known_blur_extent_is_matched_to_the_cameras_blur(kodak_images):
    """B made from the same scenes with mild vs strong blur: the matched extent follows the camera.

    (Blur degree depends on content, so B and S must show the same kind of scene, as a camera's
    clips do; here they are the same photos.)"""
    from b2b_train.blur.match import match_extent

    sharp = [(_batch([p], (128, 160))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for p in kodak_images[:8]]
    rest = sharp
    cfg = make_known_blur("kernels-uniform").cfg

    def camera(extent):  # the "camera": whole-frame shake of a given extent on other photos
        kb = make_known_blur(_cfg(spatial={"p_uniform": 1.0, "p_varying": 0.0, "p_local": 0.0},
                                  kernels={"extent": [extent, extent]}))
        g = torch.Generator().manual_seed(5)
        out = []
        for x in rest:
            y = kb(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255, g)[0]
            out.append((y.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        return out

    (lo_m, mild), rep_m = match_extent(cfg, camera(4.0), sharp)
    (lo_s, strong), rep_s = match_extent(cfg, camera(11.0), sharp)
    assert mild <= 7 and strong >= 13, (rep_m, rep_s)
    assert lo_m <= mild and lo_s <= strong
    assert rep_m["target"] > rep_s["target"]  # a milder camera keeps more of its sharpness
    ratios = [rep_s["ratios"][k] for k in sorted(rep_s["ratios"], key=float)]
    assert ratios == sorted(ratios, reverse=True)  # longer kernels, blurrier K
    assert not rep_m["note"] and not rep_s["note"]
    # a "camera" whose blurry frames are not blurry gets told so
    _, rep_0 = match_extent(cfg, rest, sharp)
    assert "barely blurrier" in rep_0["note"]
    # the default known domain mixes whole-frame, varying and local blur; the extent is still matched
    # with whole-frame blur, so a mild camera gets mild kernels. Compared over the mix itself (frames
    # that stay partly sharp), the same camera would get longer kernels than it has.
    mix = make_known_blur("kernels").cfg
    assert mix.spatial.p_local > 0 and mix.spatial.p_uniform < 1
    (_, mild_mix), rep_w = match_extent(mix, camera(4.0), sharp)
    (_, mild_over_mix), rep_x = match_extent(mix, camera(4.0), sharp, whole_frame=False)
    assert mild_mix <= 7 and rep_w["compared_with"] == "whole-frame blur", rep_w
    assert mild_over_mix > mild_mix and rep_x["compared_with"] == "the configured spatial mix", rep_x
