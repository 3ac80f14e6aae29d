"""What a webcam adds beside blur: JPEG compression (against OpenCV's codec) and wholly sharp frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from b2b_train.blur import make_known_blur
from b2b_train.blur.jpeg import jpeg_compress, quality_tables
from b2b_train.data.io import read_image, to_tensor
from b2b_train.metrics import psnr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cv2_jpeg(img: np.ndarray, quality: int) -> torch.Tensor:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return to_tensor(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))[None]


@pytest.mark.parametrize("quality", [30, 60, 90])
def test_jpeg_matches_opencv_codec(kodak_images, quality):
    img = read_image(kodak_images[0])[:200, :232]  # sides not multiples of 16: the padding path
    x = to_tensor(img)[None]
    ours = torch.round(jpeg_compress(x, quality) * 255) / 255
    ref = _cv2_jpeg(np.ascontiguousarray(img), quality)
    assert ours.shape == x.shape
    # the same loss as the codec's (within 0.5 dB) and close to the codec's own output
    assert abs(psnr(ours, x) - psnr(ref, x)) < 0.5
    assert psnr(ours, ref) > psnr(ref, x) + 6


def test_jpeg_quality_orders_loss_and_is_per_image(kodak_images):
    x = to_tensor(read_image(kodak_images[1])[:128, :128])[None].repeat(3, 1, 1, 1)
    y = jpeg_compress(x, torch.tensor([20.0, 60.0, 95.0]))
    p = [psnr(y[i : i + 1], x[i : i + 1]) for i in range(3)]
    assert p[0] < p[1] < p[2]
    flat = torch.full((1, 3, 32, 32), 0.4)
    assert torch.allclose(jpeg_compress(flat, 90), flat, atol=0.5 / 255)  # a flat image has no AC to lose
    tl, tc = quality_tables(torch.tensor([50.0, 100.0]))
    assert tl[0, 0, 0] == 16 and tc[0, 0, 0] == 17 and (tl[1] == 1).all()


def _sharp_mix(static: bool, **over):
    cfg = ["spatial.p_uniform=0.4", "spatial.p_varying=0.1", "spatial.p_local=0.2", "spatial.p_sharp=0.3"]
    kb = make_known_blur("kernels", overrides=cfg + [f"{k}={v}" for k, v in over.items()])
    return kb.with_static_shapes() if static else kb


@pytest.mark.parametrize("static", [False, True])
def test_sharp_mode_returns_the_frame_with_noise_only(kodak_images, static):
    x = to_tensor(read_image(kodak_images[2])[:96, :96])[None].repeat(16, 1, 1, 1)
    kb = _sharp_mix(static, **{"noise.p": 0, "noise.match": "false"})
    y, info = kb.apply(x, torch.Generator().manual_seed(3), return_info=True)
    modes = info["modes"]
    assert set(modes.tolist()) <= {0, 1, 2, 3} and (modes == 3).sum() >= 2
    sharp = modes == 3
    # noise-free: a sharp-mode frame is the 8-bit input itself, every other frame is blurred
    assert torch.equal(y[sharp], torch.round(x[sharp] * 255) / 255)
    assert all(psnr(y[i : i + 1], x[i : i + 1]) < 45 for i in torch.nonzero(~sharp).flatten().tolist())
    noisy = _sharp_mix(static, **{"compression.p": 1})(x, torch.Generator().manual_seed(3))
    assert not torch.equal(noisy[sharp], y[sharp])  # noise and JPEG still reach the sharp frames


def test_p_sharp_zero_keeps_the_old_draws(kodak_images):
    x = to_tensor(read_image(kodak_images[2])[:64, :64])[None].repeat(4, 1, 1, 1)
    a = make_known_blur("kernels")(x, torch.Generator().manual_seed(5))
    b = make_known_blur("kernels", overrides=["spatial.p_sharp=0", "compression.p=0"])(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
