"""Translator trainer: presets, config errors, curriculum, real training steps, load_translator."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from b2b_train.config import list_presets
from b2b_train.errors import CheckpointError, ConfigError
from b2b_train.trainutil import CsvLogger
from b2b_train.trainer import (
    CurriculumConfig,
    TranslatorConfig,
    curriculum_fraction_at,
    load_translator,
    load_translator_config,
    train_translator,
)
from conftest import tiny_translator, write_frame_sets

# tiny networks and 48² crops: a real run of the real loop in seconds
TINY = tiny_translator(log_every=1, val_every=1000, ckpt_every=1000)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frames(tmp_path_factory, asl_clips):
    """Blurry set: 6 frames of one ASL clip; sharp set: 6 of another (96x128, real footage)."""
    return write_frame_sets(tmp_path_factory.mktemp("frames"), asl_clips[0], asl_clips[1], step=8, max_frames=6)


# ----------------------------------------------------------------------------- presets and config

def test_presets_exist_and_hold_the_papers_numbers():
    assert {"paper", "reference-code", "cpu-quick"} <= set(list_presets("translator"))
    p = load_translator_config("paper")
    assert isinstance(p, TranslatorConfig)
    assert p.model.generator == "mimo-unet" and p.model.multiscale_d
    assert p.loss.gan_mode == "vanilla" and p.loss.vgg_arch == "vgg19"
    assert p.loss.lambda_rec == 0.8 and p.loss.lambda_grad == 0.005
    assert p.data.batch == 16 and p.data.crop == 256
    assert p.schedule.iters == 1_000_000 and p.schedule.decay_start == 0.5  # constant for 500K, then linear
    assert p.curriculum.enabled and p.curriculum.start_fraction == 0.5
    assert p.curriculum.grow_start * p.schedule.iters == 200_000
    assert p.curriculum.measure == "laplacian"  # the paper's blur degree
    assert p.loss.rec_scales == "mean"  # Eq. 5's 1/M
    assert p.known == "kernels"

    r = load_translator_config("reference-code")
    assert r.loss.gan_mode == "hinge" and r.loss.lambda_grad == 1e-4 and r.loss.vgg_arch == "vgg16"
    assert r.loss.vgg_layers == ["relu2_2", "relu3_3", "relu4_1", "relu4_3", "conv5_1"]
    assert r.loss.vgg_layer_weights == [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    assert r.data.batch == 1 and r.optim.lr_g == 2e-4 and tuple(r.optim.betas_g) == (0.5, 0.999)
    assert not r.curriculum.enabled

    q = load_translator_config("cpu-quick")
    assert q.model.generator == "mimo-unet-lite" and q.schedule.iters <= 5000
    assert q.loss.lambda_rec == 0.8 and q.loss.lambda_grad == 0.005
    assert q.curriculum.measure == "reblur"  # robust to the sensor noise of a real camera


def test_unknown_override_key_fails_naming_the_key():
    with pytest.raises(ConfigError, match=r"loss\.lambda_recc"):
        load_translator_config("paper", ["loss.lambda_recc=1.0"])
    with pytest.raises(ConfigError, match=r"loss\.gan_mode"):
        load_translator_config("paper", ["loss.gan_mode=wgan"])
    with pytest.raises(ConfigError, match="vgg_layer_weights"):
        load_translator_config("paper", ["loss.vgg_layers=[relu1_1]"])
    with pytest.raises(ConfigError, match="curriculum.measure"):
        load_translator_config("cpu-quick", ["curriculum.measure=sobel"])


def test_overrides_iters_and_known_apply():
    c = load_translator_config("cpu-quick", ["data.batch=2", "loss.lambda_rec=1.5"], iters=77, known="kernels-uniform")
    assert c.data.batch == 2 and c.loss.lambda_rec == 1.5 and c.schedule.iters == 77 and c.known == "kernels-uniform"


def test_curriculum_fraction_over_the_run():
    c = CurriculumConfig(enabled=True, start_fraction=0.5, grow_start=0.2, grow_end=0.5)
    n = 1_000_000
    assert curriculum_fraction_at(0, n, c) == 0.5
    assert curriculum_fraction_at(199_999, n, c) == 0.5
    assert curriculum_fraction_at(350_000, n, c) == pytest.approx(0.75)
    assert curriculum_fraction_at(500_000, n, c) == 1.0 and curriculum_fraction_at(999_999, n, c) == 1.0
    off = CurriculumConfig(enabled=False)
    assert curriculum_fraction_at(0, n, off) == 1.0


def test_too_small_crop_for_the_discriminator_is_a_clear_error(frames, tmp_path):
    with pytest.raises(ConfigError, match="too small"):
        train_translator(*frames, tmp_path / "run", "cpu-quick", TINY + ["model.discriminator_kwargs={n_layers: 5}"],
                         iters=1, progress=False)


# ----------------------------------------------------------------------------- real training

@pytest.fixture(scope="module")
def trained(frames, tmp_path_factory):
    """30 seeded steps; λ_rec raised so the reconstruction term dominates G's loss at the start."""
    out = tmp_path_factory.mktemp("run")
    metrics: list[dict] = []
    over = TINY + [
        "model.generator_kwargs={base_channel: 8, num_res: 1, zero_init_output: false}",
        "loss.lambda_rec=10", "curriculum.enabled=false", "optim.lr_g=1e-3", "optim.lr_d=1e-3", "train.seed=0",
    ]
    torch.manual_seed(0)
    path = train_translator(*frames, out, "cpu-quick", over, iters=30, progress=False,
                            on_step=lambda s, m: metrics.append(m))
    return path, metrics


def test_training_steps_lower_d_and_g_losses(trained):
    path, m = trained
    assert len(m) == 30
    for key in ("loss_d", "loss_g", "rec", "gp"):
        assert all(math.isfinite(x[key]) for x in m), key
    first = {k: np.mean([x[k] for x in m[:5]]) for k in ("loss_d", "loss_g", "rec")}
    last = {k: np.mean([x[k] for x in m[-5:]]) for k in ("loss_d", "loss_g", "rec")}
    assert last["loss_d"] < first["loss_d"] - 0.02, (first, last)
    assert last["loss_g"] < first["loss_g"] - 0.03, (first, last)
    assert last["rec"] < 0.5 * first["rec"], (first, last)
    # the schedule: constant LR for the first half, then linear decay towards zero
    assert m[0]["lr"] == pytest.approx(1e-3) and m[14]["lr"] == pytest.approx(1e-3)
    assert m[-1]["lr"] == pytest.approx(1e-3 * (1 - 14 / 15))


def test_run_folder_holds_weights_log_plot_and_samples(trained):
    path, _ = trained
    run = path.parent
    assert path.name == "translator.safetensors" and path.is_file()
    assert (run / "log.csv").is_file() and (run / "losses.png").stat().st_size > 1000
    val = CsvLogger(run / "val.csv").read()
    assert (run / "val.png").is_file() and [r["step"] for r in val] == ["30"]
    # D's separation of K from held-apart B and from G(B) is logged at every validation
    assert all(0.0 <= float(val[0][k]) <= 1.0 for k in ("val_d_auc", "val_d_auc_translated")), val[0]
    assert (run / "config.yaml").is_file()
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_00000030.png"]
    from b2b_train.checkpoint import read_meta

    meta = read_meta(path)
    assert meta["net"] == "mimo-unet" and meta["config"]["loss"]["lambda_rec"] == 10
    prov = meta["provenance"]
    assert prov["steps"] == 30 and prov["world_size"] == 1 and prov["vgg_weights"] == "random"
    assert prov["n_blurry"] == 6 and prov["n_val"] == 2 and not prov["val_held_out"] and prov["n_sharp"] == 6
    # cpu-quick matches the known blur's strength to the camera's: the choice is recorded and used
    match = json.loads((run / "known_match.json").read_text())
    assert prov["known_match"] == match and match["frames"] == {"blurry": 6, "sharp": 6}
    lo, hi = match["chosen"]
    assert 3 <= lo <= hi <= 21 and f"{hi:g}" in match["ratios"]
    assert f"3-{hi:g} px" in prov["known"] and "matched to the camera" in prov["known"]


def test_load_translator_gives_full_resolution_only(trained, kodak_images):
    from b2b_train.data.io import read_image, to_tensor
    from b2b_train.nets import registry

    path, _ = trained
    t = load_translator(path)
    assert not t.training
    x = to_tensor(read_image(kodak_images[1])[:70, :90])[None]  # odd-ish size, not a multiple of 4
    with torch.no_grad():
        y = t(x)
        full = t.net(x)[-1]
    assert y.shape == x.shape and torch.equal(y, full)
    net, _ = registry.load_from_file(path)
    with torch.no_grad():
        assert torch.equal(net(x)[-1], y)
    assert not torch.equal(y, x)  # trained from random init: not the identity


def test_load_translator_reads_a_released_style_pth(trained, tmp_path):
    """A plain ``module.``-prefixed state dict (as the released latest_net_G.pth) loads too."""
    from b2b_train.errors import CheckpointError
    from b2b_train.nets import registry

    full = registry.build("mimo-unet")
    torch.save({f"module.{k}": v for k, v in full.state_dict().items()}, tmp_path / "latest_net_G.pth")
    t = load_translator(tmp_path / "latest_net_G.pth")
    x = torch.rand(1, 3, 32, 36)
    with torch.no_grad():
        assert torch.equal(t(x), full.eval()(x)[-1])
    with pytest.raises(CheckpointError, match="not found"):
        load_translator(tmp_path / "missing.safetensors")
    ckpt = next((trained[0].parent / "checkpoints").glob("ckpt_*.safetensors"))
    with pytest.raises(CheckpointError, match="training checkpoint"):
        load_translator(ckpt)


def test_trainer_reexports_the_translator_loader():
    """The loader lives with the nets; ``b2b_train.trainer`` still offers it (and the weights file name)."""
    from b2b_train import trainer
    from b2b_train.nets import translator_io

    assert trainer.load_translator is translator_io.load_translator
    assert trainer.FullResolution is translator_io.FullResolution
    assert trainer.WEIGHTS_NAME == translator_io.WEIGHTS_NAME == "translator.safetensors"


@pytest.mark.parametrize("extra", [
    ["model.local_d=true", "model.local_d_kwargs={channels: [8, 8]}", "loss.penalty=r1"],
    ["model.multiscale_d=false", "model.discriminator=highpass", "model.discriminator_kwargs={channels: [8, 8]}",
     "loss.penalty=r1"],
])
def test_high_pass_discriminator_and_r1_train(frames, tmp_path, extra):
    """The high-pass D beside the PatchGAN, or alone, with R1: finite losses, D's AUC logged."""
    metrics: list[dict] = []
    over = TINY + ["curriculum.enabled=false"] + [e for e in extra if not e.startswith("model.discriminator_kwargs")]
    if any(e.startswith("model.discriminator_kwargs") for e in extra):
        over = [o for o in over if not o.startswith("model.discriminator_kwargs")] + \
               [e for e in extra if e.startswith("model.discriminator_kwargs")]
    path = train_translator(*frames, tmp_path / "run", "cpu-quick", over, iters=4, progress=False,
                            on_step=lambda s, m: metrics.append(m))
    assert path.is_file() and len(metrics) == 4
    assert all(math.isfinite(m["loss_d"]) and math.isfinite(m["gp"]) and m["gp"] >= 0 for m in metrics)
    val = CsvLogger(tmp_path / "run" / "val.csv").read()
    assert 0.0 <= float(val[-1]["val_d_auc"]) <= 1.0


def test_lowpass_content_loss_trains_without_vgg(frames, tmp_path):
    metrics: list[dict] = []
    path = train_translator(*frames, tmp_path / "run", "cpu-quick", TINY + ["loss.content=lowpass"], iters=3,
                            progress=False, on_step=lambda s, m: metrics.append(m))
    from b2b_train.checkpoint import read_meta

    assert path.is_file() and all(math.isfinite(m["rec"]) for m in metrics)
    meta = read_meta(path)
    assert "low-pass" in str(meta.get("provenance", meta).get("vgg_weights")), meta.keys()


# ----------------------------------------------------------------------------- starting from a prior

def test_init_loads_the_file_and_d_warmup_leaves_g_untouched(trained, frames, tmp_path):
    """model.init starts G from a translator file; during train.d_warmup only D learns."""
    from b2b_train.checkpoint import read_meta
    from b2b_train.checkpoint import load_weights

    init, _ = trained
    over = TINY + ["model.generator_kwargs={base_channel: 8, num_res: 1, zero_init_output: false}",
                   f"model.init={init}", "train.d_warmup=3", "curriculum.enabled=false"]
    metrics: list[dict] = []
    path = train_translator(*frames, tmp_path / "run", "cpu-quick", over, iters=3, progress=False,
                            on_step=lambda s, m: metrics.append(m))
    a, _ = load_weights(init)
    b, _ = load_weights(path)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert len(metrics) == 3 and all("loss_g" not in m and math.isfinite(m["loss_d"]) for m in metrics)
    assert read_meta(path)["provenance"]["init"] == str(init)
    # the same folder without the init: a resume would mix two runs, and the error says what differs
    with pytest.raises(CheckpointError, match=r"model\.init differ"):
        train_translator(*frames, tmp_path / "run", "cpu-quick", over[:-3] + ["curriculum.enabled=false"], iters=4,
                         progress=False)


def test_content_anchor_init_charges_nothing_for_keeping_the_prior(trained, frames, tmp_path):
    """With loss.content_anchor=init the content term compares G(y) with the initial G's output, so the
    first step (G still equal to the prior) costs nothing; anchored on the input, it does."""
    init, _ = trained
    base = TINY + ["model.generator_kwargs={base_channel: 8, num_res: 1, zero_init_output: false}",
                   f"model.init={init}", "curriculum.enabled=false", "loss.content=lowpass"]
    rec = {}
    for anchor in ("init", "input"):
        metrics: list[dict] = []
        train_translator(*frames, tmp_path / anchor, "cpu-quick", base + [f"loss.content_anchor={anchor}"], iters=2,
                         progress=False, on_step=lambda s, m: metrics.append(m))
        rec[anchor] = metrics[0]["rec"]
    assert rec["init"] < 1e-6 < rec["input"], rec


def test_init_with_another_generator_is_a_clear_error(trained, frames, tmp_path):
    init, _ = trained
    with pytest.raises(ConfigError, match="model.generator"):
        train_translator(*frames, tmp_path / "run", "cpu-quick",
                         TINY + ["model.generator=mimo-unet-lite", f"model.init={init}"], iters=1, progress=False)
    with pytest.raises(ConfigError, match="not found"):
        train_translator(*frames, tmp_path / "run2", "cpu-quick", TINY + [f"model.init={tmp_path / 'none.safetensors'}"],
                         iters=1, progress=False)
