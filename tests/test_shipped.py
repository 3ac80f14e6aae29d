"""The shipped default deblurrer and resolve_deblurrer()."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from b2b_train.blur import make_known_blur
from b2b_train.checkpoint import read_meta
from b2b_train.data.io import read_image, to_tensor
from b2b_train.errors import B2BError, CheckpointError
from b2b_train.metrics import psnr, ssim
from b2b_train.nets import registry
from b2b_train.shipped import default_deblurrer_path, deblurrer_info, load_default_deblurrer, resolve_deblurrer

HELD_APART = "kodim03.png"


def test_shipped_file_is_small_and_documented():
    path = default_deblurrer_path()
    assert path.is_file(), path
    assert path.stat().st_size < 6_000_000
    meta = read_meta(path)
    assert meta["net"] == "nafnet-lite"
    assert meta["known"] == "webcam"
    assert meta["validation"]["psnr"] > meta["validation"]["input_psnr"]
    # the image the next test uses was set apart from training
    assert HELD_APART in meta["data"]["val_images"]
    assert not any(s.endswith(HELD_APART) for s in meta["data"]["train_sources"])
    assert (path.parent / "README.md").is_file()
    assert deblurrer_info() == meta


def test_shipped_weights_improve_a_blurred_held_apart_image(shared_data):
    net = load_default_deblurrer()
    assert not net.training
    assert all(p.dtype == torch.float32 for p in net.parameters())
    img = to_tensor(read_image(shared_data / "images" / "kodak" / HELD_APART))[None]
    sharp = img[:, :, 122:378, 122:378]
    # one fixed whole-frame kernel of the kernel-bank domain (seeded), the domain's noise included
    known = make_known_blur("kernels-uniform")
    blurry = known(sharp, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = net(blurry).clamp(0, 1)
    assert out.shape == sharp.shape
    p_in, p_out = psnr(blurry, sharp), psnr(out, sharp)
    # the shipped lite model had ~1 CPU-hour of training: it gains under 1 dB here (BENCHMARKS.md)
    assert p_out > p_in + 0.5, (p_in, p_out)
    assert ssim(out, sharp) > ssim(blurry, sharp)



def test_shipped_weights_leave_a_sharp_frame_as_it_came(shared_data):
    """A sharp frame with a webcam's light sensor noise comes back within 0.2 dB of the input
    (issue 13), and a JPEG-compressed one is not made worse."""
    net = load_default_deblurrer()
    img = to_tensor(read_image(shared_data / "images" / "kodak" / HELD_APART))[None]
    sharp = torch.round(img[:, :, 122:378, 122:378] * 255) / 255
    for over in (["noise.p=1", "noise.shot=[0.0002,0.0002]", "noise.read=[0.003,0.003]", "noise.match=false"],
                 ["noise.p=0", "compression.p=1", "compression.quality=[50,50]"]):
        frame = make_known_blur("kernels-uniform", overrides=["spatial.p_uniform=0", "spatial.p_sharp=1", *over])(
            sharp, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            out = torch.round(net(frame).clamp(0, 1) * 255) / 255
        assert psnr(out, sharp) >= psnr(frame, sharp) - 0.2, (over, psnr(frame, sharp), psnr(out, sharp))


def test_resolve_default_and_our_file(tmp_path):
    a = resolve_deblurrer("default")
    b = resolve_deblurrer(str(default_deblurrer_path()))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert resolve_deblurrer(a) is a


def test_resolve_official_pth_with_and_without_name(tmp_path):
    net = registry.build("nafnet-tiny")
    pth = tmp_path / "NAFNet-tiny.pth"
    torch.save({"params": {f"module.{k}": v for k, v in net.state_dict().items()}}, pth)
    named = resolve_deblurrer(f"nafnet-tiny={pth}")
    guessed = resolve_deblurrer(str(pth))
    for m in (named, guessed):
        assert type(m).__name__ == type(net).__name__
        assert all(torch.equal(m.state_dict()[k], v) for k, v in net.state_dict().items())


def test_resolve_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("B2B_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match="no weights for nafnet-gopro-width32"):
        resolve_deblurrer("nafnet-gopro-width32")
    with pytest.raises(B2BError, match="unknown deblurrer 'sharpen-o-matic'"):
        resolve_deblurrer("sharpen-o-matic")
    with pytest.raises(CheckpointError, match="not found"):
        resolve_deblurrer(str(tmp_path / "missing.pth"))
    with pytest.raises(B2BError, match="not a deblurrer"):
        resolve_deblurrer("patchgan")
    junk = tmp_path / "junk.pth"
    torch.save({"params": {"foo.weight": torch.zeros(3)}}, junk)
    with pytest.raises(CheckpointError, match="fit none of the deblurrers"):
        resolve_deblurrer(str(junk))
    monkeypatch.setenv("B2B_DEFAULT_DEBLURRER", str(tmp_path / "gone.safetensors"))
    with pytest.raises(CheckpointError, match="shipped deblurrer is missing"):
        load_default_deblurrer()


def test_gpu_grade_default_is_chosen_on_cuda_only_when_shipped(tmp_path, monkeypatch):
    """Path choice with a stand-in weights folder (no GPU needed: the device is only looked at)."""
    import shutil

    import b2b_train.shipped as shipped

    monkeypatch.delenv("B2B_DEFAULT_DEBLURRER", raising=False)
    monkeypatch.setattr(shipped, "weights_dir", lambda: tmp_path)
    shutil.copy(Path(shipped.__file__).parent / "weights" / shipped.DEFAULT_WEIGHTS, tmp_path / shipped.DEFAULT_WEIGHTS)
    lite = tmp_path / shipped.DEFAULT_WEIGHTS
    assert shipped.default_deblurrer_path("cuda") == lite  # no GPU-grade file shipped: the lite one
    (tmp_path / shipped.GPU_WEIGHTS).write_bytes(lite.read_bytes())
    assert shipped.default_deblurrer_path("cuda:0") == tmp_path / shipped.GPU_WEIGHTS
    assert shipped.default_deblurrer_path(torch.device("cpu")) == lite
    assert shipped.default_deblurrer_path() == lite
