"""Known-blur deblurrer trainer: real images, real known blur, tiny network."""

from __future__ import annotations

import csv

import pytest
import torch

from b2b_train.checkpoint import load_state, read_meta
from b2b_train.config import list_presets
from b2b_train.deblur_trainer import (
    DeblurrerConfig,
    config_from_cli,
    cosine_factor,
    load_deblurrer_config,
    load_sharp_sets,
    train_deblurrer,
)
from b2b_train.errors import ConfigError, DataError
from b2b_train.losses import psnr_loss
from b2b_train.metrics import psnr


def _tiny(kodak_dir, *overrides, **kw):
    return config_from_cli(
        "tiny",
        ["data.crop=40", "data.val_size=48", "batch_size=2", *overrides],
        sharp=[str(kodak_dir)],
        **kw,
    )


def test_psnr_loss_is_minus_psnr():
    a = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    b = (a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    expected = psnr(b, a, quantize=False)
    # the loss averages log-MSE per image; for one image it is exactly -PSNR (peak 1)
    assert psnr_loss(b[:1], a[:1]).item() == pytest.approx(-psnr(b[:1], a[:1], quantize=False), abs=1e-3)
    assert psnr_loss(b, a).item() == pytest.approx(-expected, abs=0.2)


def test_cosine_schedule_warmup_and_floor():
    f = cosine_factor(100, warmup=10, min_ratio=0.01)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.505, abs=1e-3)
    assert f(100) == pytest.approx(0.01)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))


def test_few_steps_lower_the_loss(kodak_images, tmp_path):
    cfg = _tiny(kodak_images[0].parent, "iters=24", "log_every=6", "val_every=100", "ckpt_every=100")
    path = train_deblurrer(cfg, tmp_path / "run", progress=False, log=None)
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]
    assert len(losses) == 4, losses
    assert losses[-1] < losses[0] - 1.0  # PSNR loss in dB: at least 1 dB better
    meta = read_meta(path)
    assert meta["net"] == "nafnet-tiny" and meta["steps"] == 24
    v = meta["validation"]
    assert v["psnr"] > 10 and 0 < v["ssim"] <= 1
    # validation images are held apart from training
    assert set(meta["data"]["val_images"]).isdisjoint({p.split("/")[-1] for p in meta["data"]["train_sources"]})
    assert (tmp_path / "run" / "samples").is_dir() and any((tmp_path / "run" / "samples").glob("*.png"))
    assert (tmp_path / "run" / "loss.png").is_file()


@pytest.mark.parametrize("data_path", ["batched", "per-crop"])
def test_interrupted_run_resumes_exactly(kodak_images, tmp_path, data_path):
    cfg = _tiny(kodak_images[0].parent, "iters=7", "val_every=5", "ckpt_every=2", "log_every=2", f"data_path={data_path}")
    full = train_deblurrer(cfg, tmp_path / "a", progress=False, log=None)
    stopped = train_deblurrer(cfg, tmp_path / "b", progress=False, stop_at=3, log=None)
    assert stopped.name == "ckpt_00000003.safetensors"
    assert not (tmp_path / "b" / "deblurrer.safetensors").exists()
    s3, _ = load_state(stopped)
    assert s3["step"] == 3
    resumed = train_deblurrer(cfg, tmp_path / "b", progress=False, log=None)
    sa, _ = load_state(tmp_path / "a" / "checkpoints" / "ckpt_00000007.safetensors")
    sb, _ = load_state(tmp_path / "b" / "checkpoints" / "ckpt_00000007.safetensors")
    assert sa["step"] == sb["step"] == 7
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert oa["param_groups"] == ob["param_groups"]
    for pid in oa["state"]:
        for name, t in oa["state"][pid].items():
            assert torch.equal(t, ob["state"][pid][name]), (pid, name)
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 7
    assert torch.equal(sa["sampler"]["generator"], sb["sampler"]["generator"])
    assert torch.equal(sa["blur_generator"], sb["blur_generator"])
    wa, wb = load_state_dict(full), load_state_dict(resumed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the weights kept moving after the interruption: the equality above is not trivially true
    assert any(not torch.equal(s3["model"][k], sb["model"][k]) for k in sb["model"])


def load_state_dict(path):
    from b2b_train.checkpoint import load_weights

    return load_weights(path)[0]


def test_resume_with_another_config_is_refused(kodak_images, tmp_path):
    cfg = _tiny(kodak_images[0].parent, "iters=4", "ckpt_every=2")
    train_deblurrer(cfg, tmp_path / "r", progress=False, stop_at=2, log=None)
    other = _tiny(kodak_images[0].parent, "iters=4", "ckpt_every=2", "optim.lr=0.01")
    with pytest.raises(ConfigError, match="optim.lr"):
        train_deblurrer(other, tmp_path / "r", progress=False, log=None)


def test_unknown_config_key_fails_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="data.crop_size"):
        load_deblurrer_config("default", ["data.crop_size=64"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("net: nafnet-lite\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_deblurrer_config(str(bad))
    with pytest.raises(ConfigError, match="batch_size"):
        load_deblurrer_config("default", ["batch_size=0"])


def test_every_preset_loads_and_names_a_deblurrer():
    from b2b_train.nets import registry

    names = list_presets("deblurrer")
    assert {"default", "shipped", "tiny", "restormer"} <= set(names)
    for n in names:
        cfg = load_deblurrer_config(n)
        assert isinstance(cfg, DeblurrerConfig)
        assert registry.spec(cfg.net).family == "deblurrer"


def test_sharp_sources_images_clips_and_split(shared_data, tmp_path):
    kodak = shared_data / "images" / "kodak"
    clip = shared_data / "videos" / "misc" / "flipping_a_pancake.mkv"
    cfg = config_from_cli(
        "tiny",
        ["data.exclude=[kodim01.png]", "data.max_frames_per_clip=3", "data.frame_step=50", "data.scales=[1.0,0.5]"],
        sharp=[str(kodak), str(clip)],
        val=[str(kodak / "kodim02.png")],
    )
    train, val, info = load_sharp_sets(cfg.data)
    assert val.names == ["kodim02.png"]
    names = set(train.names)
    assert "kodim02.png" not in names and "kodim01.png" not in names
    assert "kodim03.png" in names and "kodim03.png@0.5" in names
    frames = [n for n in names if n.startswith("flipping_a_pancake.mkv#") and "@" not in n]
    assert len(frames) == 3
    assert all(min(im.shape[:2]) >= cfg.data.crop for im in train.images)
    with pytest.raises(DataError, match="not found"):
        load_sharp_sets(config_from_cli("tiny", sharp=[str(tmp_path / "nope")]).data)
