"""``evaluate`` / ``b2b-train evaluate``: known PSNR, identical images, pairing errors, rows, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from b2b_train.data.io import read_image, write_image
from b2b_train.errors import DataError
from b2b_train.evaluate import evaluate
from b2b_train.metrics import laplacian_variance_np


def _np_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10.0 * math.log10(255.0**2 / mse)


H, W = 64, 96  # small: the reference SSIM (float64, 11x11 window) is slow on a loaded CPU


@pytest.fixture()
def pairs(kodak_images, tmp_path):
    """Two ground-truth Kodak crops and noisy copies (different noise levels), paired by name."""
    rng = np.random.default_rng(0)
    gt_dir, bl_dir = tmp_path / "gt", tmp_path / "blurry"
    out = []
    for i, (p, sigma) in enumerate(zip(kodak_images[:2], (6.0, 15.0))):
        gt = read_image(p)[:H, :W]
        noisy = np.clip(gt.astype(np.float64) + rng.normal(0, sigma, gt.shape), 0, 255).round().astype(np.uint8)
        write_image(gt_dir / "sub" / f"img{i}.png", gt)
        write_image(bl_dir / "sub" / f"img{i}.png", noisy)
        out.append((gt, noisy))
    return bl_dir, gt_dir, out


class Invert(torch.nn.Module):
    """A stand-in translator with the multi-scale output of the real one (full scale last)."""

    def forward(self, x):
        return [x[..., ::4, ::4], x[..., ::2, ::2], 1.0 - x]


def test_known_psnr_and_identity_deblurrer(pairs, tmp_path):
    bl, gt, imgs = pairs
    rep = evaluate(bl, gt, deblurrer=torch.nn.Identity(), report=tmp_path / "r.json", progress=False)
    expect = [_np_psnr(n, g) for g, n in imgs]
    assert rep["n_images"] == 2
    assert rep["psnr"]["input"] == pytest.approx(sum(expect) / 2, abs=1e-9)
    assert [p["psnr"]["input"] for p in rep["per_image"]] == pytest.approx(expect, abs=1e-9)
    # identity deblurrer: deblur_only is the input, row for row
    assert rep["psnr"]["deblur_only"] == rep["psnr"]["input"]
    assert rep["ssim"]["deblur_only"] == rep["ssim"]["input"] < 1.0
    assert rep["sharpness"]["deblur_only"] == rep["sharpness"]["input"]
    # no translator: b2b is null and the report says so
    assert rep["psnr"]["b2b"] is None and rep["ssim"]["b2b"] is None
    assert any("no translator" in n for n in rep["notes"])
    # the report on disk is strict JSON with the protocol written out
    on_disk = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert on_disk["psnr"] == rep["psnr"]
    for key in ("psnr", "ssim", "border", "quantization", "psnr_identical"):
        assert key in on_disk["protocol"]
    # sharpness of the input is the Laplacian variance of the file's pixels
    assert rep["per_image"][0]["sharpness"]["input"] == pytest.approx(laplacian_variance_np(imgs[0][1]), rel=1e-5)
    # max_images
    one = evaluate(bl, gt, deblurrer=torch.nn.Identity(), max_images=1, progress=False)
    assert one["n_images"] == 1 and one["psnr"]["input"] == pytest.approx(expect[0], abs=1e-9)


def test_translator_row_and_grid(pairs, tmp_path):
    bl, gt, imgs = pairs
    rep = evaluate(bl, gt, translator=Invert(), deblurrer=torch.nn.Identity(), grid=tmp_path / "g.png", progress=False)
    # b2b = identity(translator(y)) = 1 - y, i.e. 255 - y on 8-bit levels
    expect = [_np_psnr(255 - n.astype(np.int64), g) for g, n in imgs]
    assert rep["psnr"]["b2b"] == pytest.approx(sum(expect) / 2, abs=1e-6)
    assert rep["psnr"]["b2b"] < rep["psnr"]["deblur_only"]
    grid = read_image(tmp_path / "g.png")
    # 2 rows x 4 columns (blurry | deblur only | b2b | gt) of WxH cells with 4 px padding and a label strip
    assert grid.shape[1] == 4 * W + 5 * 4 and grid.shape[0] == 22 + 2 * H + 3 * 4


def test_identical_images_give_null_psnr_and_ssim_one(kodak_images, tmp_path):
    img = read_image(kodak_images[2])[:H, :W]
    write_image(tmp_path / "b" / "x.png", img)
    write_image(tmp_path / "g" / "x.png", img)
    rep = evaluate(tmp_path / "b", tmp_path / "g", deblurrer=torch.nn.Identity(), report=tmp_path / "r.json", progress=False)
    assert rep["psnr"]["input"] is None and rep["psnr_identical"]["input"] == 1
    assert rep["per_image"][0]["psnr"]["input"] is None
    assert rep["ssim"]["input"] == pytest.approx(1.0)
    text = (tmp_path / "r.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text)


def test_unmatched_names_fail_clearly(pairs, tmp_path):
    bl, gt, _ = pairs
    write_image(bl / "extra_blurry.png", np.zeros((16, 16, 3), np.uint8))
    write_image(gt / "other" / "lonely.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(DataError) as e:
        evaluate(bl, gt, deblurrer=torch.nn.Identity(), progress=False)
    msg = str(e.value)
    assert "extra_blurry" in msg and "other/lonely" in msg


def test_size_mismatch_and_missing_folder(pairs, tmp_path):
    bl, gt, imgs = pairs
    write_image(gt / "sub" / "img0.png", imgs[0][0][: H - 8])
    with pytest.raises(DataError, match="img0"):
        evaluate(bl, gt, deblurrer=torch.nn.Identity(), progress=False)
    with pytest.raises(DataError, match="not found"):
        evaluate(tmp_path / "nowhere", gt, deblurrer=torch.nn.Identity(), progress=False)


def test_no_ground_truth_sharpness_only(pairs):
    bl, _, imgs = pairs
    blur = torch.nn.AvgPool2d(5, stride=1, padding=2, count_include_pad=False)  # a "deblurrer" that blurs
    rep = evaluate(bl, None, translator=Invert(), deblurrer=blur, progress=False)
    assert rep["has_ground_truth"] is False
    assert all(v is None for v in rep["psnr"].values()) and all(v is None for v in rep["ssim"].values())
    s = rep["sharpness"]
    assert s["input"] == pytest.approx(np.mean([laplacian_variance_np(n) for _, n in imgs]), rel=1e-5)
    assert s["deblur_only"] < s["input"]
    assert s["b2b"] == pytest.approx(s["deblur_only"], rel=1e-4)  # inverting does not change the Laplacian variance
    assert any("no ground truth" in n for n in rep["notes"])


def test_cli_end_to_end_with_stand_in_deblurrer(pairs, tmp_path, monkeypatch):
    """The real command, with ``b2b_train.shipped`` replaced by an identity deblurrer."""
    bl, gt, imgs = pairs
    fake = types.ModuleType("b2b_train.shipped")
    asked = []

    def resolve_deblurrer(name):
        asked.append(name)
        return torch.nn.Identity()

    fake.resolve_deblurrer = resolve_deblurrer
    monkeypatch.setitem(sys.modules, "b2b_train.shipped", fake)
    from b2b_train.cli import cli

    res = CliRunner().invoke(
        cli, ["evaluate", "--blurry", str(bl), "--gt", str(gt), "--report", str(tmp_path / "r.json"),
              "--grid", str(tmp_path / "g.png"), "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    assert asked == ["default"]
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["psnr"]["deblur_only"] == pytest.approx(np.mean([_np_psnr(n, g) for g, n in imgs]), abs=1e-9)
    assert "deblur only" in res.output and (tmp_path / "g.png").is_file()


def test_cli_help_and_one_line_error(pairs, tmp_path):
    bl, gt, _ = pairs
    exe = [sys.executable, "-m", "b2b_train.cli"]
    h = subprocess.run(exe + ["evaluate", "--help"], capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "Example:" in h.stdout and "--translator" in h.stdout
    write_image(bl / "unpaired.png", np.zeros((16, 16, 3), np.uint8))
    r = subprocess.run(
        exe + ["evaluate", "--blurry", str(bl), "--gt", str(gt), "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2
    assert "unpaired" in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_real_translator_checkpoint_loaded_lazily(pairs, tmp_path):
    """A (tiny, untrained) MIMO-UNet saved as our safetensors goes through ``load_translator``;
    an odd image size checks that whole images go through (the net pads internally)."""
    from b2b_train.metrics import psnr
    from b2b_train.nets import registry
    from b2b_train.data.io import to_tensor

    spec = registry.spec("mimo-unet")
    kw = dict(spec.tiny_kwargs)
    torch.manual_seed(0)
    net = registry.build("mimo-unet", **kw)
    ckpt = tmp_path / "translator.safetensors"
    registry.save_network(ckpt, net, "mimo-unet", kw)
    bl, gt, imgs = pairs
    odd_b, odd_g = tmp_path / "ob", tmp_path / "og"
    write_image(odd_b / "a.png", imgs[0][1][: H - 3, : W - 5])
    write_image(odd_g / "a.png", imgs[0][0][: H - 3, : W - 5])
    rep = evaluate(odd_b, odd_g, translator=str(ckpt), deblurrer=torch.nn.Identity(), progress=False)
    assert rep["translator"] == str(ckpt)
    with torch.no_grad():
        x = to_tensor(imgs[0][1][: H - 3, : W - 5])[None]
        y = net.eval()(x)[-1].clamp(0, 1)
    assert rep["psnr"]["b2b"] == pytest.approx(psnr(y, to_tensor(imgs[0][0][: H - 3, : W - 5])[None]), abs=1e-6)
