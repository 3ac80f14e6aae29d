"""Blur-kernel extractor: architecture vs the published config, training on real pairs, exact
resume, blur transfer at any image size, paired-folder matching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from b2b_train.blur import make_known_blur
from b2b_train.blur.bke_transfer import BKETransfer, PairedImages, load_bke, pair_folders
from b2b_train.bke_trainer import BKEConfig, cosine_restarts, sample_batch, train_bke
from b2b_train.losses import charbonnier_loss as charbonnier
from b2b_train.checkpoint import load_weights
from b2b_train.config import load_config
from b2b_train.data.io import read_image, to_tensor, to_uint8, write_image
from b2b_train.errors import ConfigError, DataError
from b2b_train.nets import build, registry, spec

TINY = spec("bke-kernelwizard").tiny_kwargs


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------- architecture


def _published_count(nf=64, front=10, back=20, kernel_dim=512, n_blocks=4, use_vae=False, recon=64, c=3):
    """Parameters of KernelWizard from its published options, layer by layer (independent of the code)."""

    def conv(ci, co, k, bias=True):
        return ci * co * k * k + (co if bias else 0)

    n = conv(c, nf, 3) + 2 * conv(nf, nf, 3) + front * 2 * conv(nf, nf, 3)  # shared features
    out = 2 * kernel_dim if use_vae else kernel_dim
    n += conv(2 * nf, nf, 7, False)  # F: 7x7 on concatenated features, bias-free (norm 'none')
    n += sum(conv(min(nf * 2**i, out), min(nf * 2 ** (i + 1), out), 3, False) for i in range(5))
    n += n_blocks * 2 * conv(out, out, 3, False)
    # adapter U-Net: (outer, inner, input) per level, outermost first; 4x4/2 down, 5x5 double conv up
    levels = [(nf, nf, nf), (nf, 2 * nf, nf), (2 * nf, 4 * nf, 2 * nf), (4 * nf, 8 * nf, 4 * nf), (8 * nf, 8 * nf, 8 * nf)]
    for j, (o, i, cin) in enumerate(levels):
        up_in = i + kernel_dim if j == len(levels) - 1 else 2 * i
        n += conv(cin, i, 4, False) + conv(up_in, o, 5) + conv(o, o, 5)
    n += back * 2 * conv(nf, nf, 3) + conv(nf, 4 * nf, 3) + conv(nf, 4 * recon, 3) + conv(recon, recon, 3) + conv(recon, c, 3)
    return n


def test_published_architecture_sizes_and_official_key_names():
    for name, vae in (("bke-kernelwizard", False), ("bke-kernelwizard-vae", True)):
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            net = build(name)
        n = sum(p.numel() for p in net.parameters())
        assert n == _published_count(use_vae=vae) == spec(name).published_params
        sd = net.state_dict()
        out = 1024 if vae else 512
        # key names and shapes of the authors' KernelWizard (their checkpoints load without a map)
        assert sd["feature_extractor.0.weight"].shape == (64, 3, 3, 3)
        assert sd["feature_extractor.6.conv1.weight"].shape == (64, 64, 3, 3)
        assert sd["kernel_extractor.model.1.weight"].shape == (64, 128, 7, 7)
        assert sd["kernel_extractor.model.16.weight"].shape == (out, out, 3, 3)
        assert sd["kernel_extractor.model.22.conv_block.5.weight"].shape == (out, out, 3, 3)
        assert "kernel_extractor.model.1.bias" not in sd
        inner = "adapter.model" + ".submodule" * 4
        assert sd[f"{inner}.up.1.double_conv.0.weight"].shape == (512, 1024, 5, 5)
        assert sd["adapter.model.down.0.weight"].shape == (64, 64, 4, 4)
        assert sd["recon_trunk.28.weight"].shape == (3, 64, 3, 3)
        del net, sd


def test_forward_encode_adapt_any_size():
    torch.manual_seed(0)
    net = build("bke-kernelwizard", **TINY).eval()
    sharp, blurry = spec("bke-kernelwizard").example_inputs(1, (100, 150))
    with torch.no_grad():
        code = net.encode(sharp, blurry)
        assert code.shape == (1, 64, 2, 2)  # padded to 256x256 -> 2x2 code
        out = net.adapt(sharp, code)
        assert out.shape == sharp.shape
        torch.testing.assert_close(net(sharp, blurry), out)
        assert net.code_size(300, 700) == (3, 6)
        with pytest.raises(ValueError, match="kernel code"):
            net.adapt(torch.rand(1, 3, 300, 700), code[:1])
    net.train()
    net(sharp, blurry).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_official_pth_layout_loads(tmp_path):
    torch.manual_seed(1)
    net = build("bke-kernelwizard", **TINY).eval()
    path = tmp_path / "GOPRO_woVAE_tiny.pth"
    torch.save(spec("bke-kernelwizard").to_official(net.state_dict()), path)  # the authors save the bare state dict
    loaded = registry.load("bke-kernelwizard", path, **TINY)
    s, b = spec("bke-kernelwizard").example_inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(s, b), net(s, b))


# ------------------------------------------------------------------------------------ recipe bits


def test_recipe_presets_and_schedule():
    paper = load_config(BKEConfig, "paper")
    assert (paper.lr, paper.batch_size, paper.crop, paper.iters) == (1e-4, 16, 256, 600_000)
    assert tuple(paper.betas) == (0.9, 0.99)
    f = cosine_restarts(paper.iters, paper.periods, paper.restart_weights, paper.eta_min / paper.lr)
    assert f(0) == pytest.approx(1.0)
    assert f(25_000) == pytest.approx(0.5, abs=1e-3)  # half of the first 50k period
    assert f(49_999) < 1e-3 and f(50_000) == pytest.approx(1.0)  # restart
    assert f(150_000) == pytest.approx(1.0)
    tiny = load_config(BKEConfig, "cpu-tiny")
    assert tiny.net_kwargs["nf"] == 8 and tiny.iters <= 500
    with pytest.raises(ConfigError, match="crop"):
        load_config(BKEConfig, "paper", ["crop=200"])
    x = torch.rand(2, 3, 8, 8)
    assert float(charbonnier(x, x)) == pytest.approx(1e-3, rel=1e-3)


# ------------------------------------------------------------------------------- paired folders


def test_pair_folders_layouts(tmp_path, kodak_images):
    img = read_image(kodak_images[0])[:64, :64]
    # flat folders, different extensions
    for d in ("flat/b", "flat/s"):
        (tmp_path / d).mkdir(parents=True)
    for n in ("a", "b", "c"):
        write_image(tmp_path / "flat/b" / f"{n}.png", img)
    for n in ("a", "c", "d"):
        write_image(tmp_path / "flat/s" / f"{n}.jpg", img)
    pairs = pair_folders(tmp_path / "flat/b", tmp_path / "flat/s")
    assert [(p.stem, q.stem) for p, q in pairs] == [("a", "a"), ("c", "c")]
    # REDS: seq/frame trees
    for root in ("reds/train_blur", "reds/train_sharp"):
        for seq in ("000", "001"):
            (tmp_path / root / seq).mkdir(parents=True)
            write_image(tmp_path / root / seq / "00000000.png", img)
    pairs = pair_folders(tmp_path / "reds/train_blur", tmp_path / "reds/train_sharp")
    assert len(pairs) == 2 and all(p.parent.name == q.parent.name for p, q in pairs)
    # GoPro: one root, <scene>/blur + <scene>/sharp
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        for kind in ("blur", "sharp"):
            (tmp_path / "gopro" / scene / kind).mkdir(parents=True)
            write_image(tmp_path / "gopro" / scene / kind / "000047.png", img)
    pairs = pair_folders(tmp_path / "gopro", tmp_path / "gopro")
    assert len(pairs) == 2
    assert all(p.parent.name == "blur" and q.parent.name == "sharp" for p, q in pairs)
    with pytest.raises(DataError, match="no file names in common"):
        pair_folders(tmp_path / "flat/b", tmp_path / "reds/train_sharp")
    with pytest.raises(DataError):
        pair_folders(tmp_path / "nope", tmp_path / "flat/s")


# ---------------------------------------------------------------------------- training/transfer


@pytest.fixture(scope="module")
def kodak_pairs(tmp_path_factory, kodak_images):
    """Real pairs: Kodak crops blurred with camera-shake kernels (whole-frame, 5-13 px)."""
    root = tmp_path_factory.mktemp("pairs")
    (root / "blurry").mkdir()
    (root / "sharp").mkdir()
    known = make_known_blur("kernels-uniform", overrides=["kernels.extent=[5,13]", "noise.p=0"])
    g = torch.Generator().manual_seed(0)
    for p in kodak_images[:6]:
        x = to_tensor(read_image(p)[:320, :384])[None]
        write_image(root / "sharp" / p.name, to_uint8(x))
        write_image(root / "blurry" / p.name, to_uint8(known(x, g)))
    return root / "blurry", root / "sharp"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kodak_pairs):
    out = tmp_path_factory.mktemp("bke_run")
    path = train_bke(*kodak_pairs, out, config="cpu-tiny", iters=30, progress=False,
                     overrides=["log_every=5", "save_every=1000"])
    return out, path


def _eval_loss(net, pairs: PairedImages) -> float:
    g = torch.Generator().manual_seed(123)  # the same held batch every time
    s, b = sample_batch(pairs, 4, 256, g)
    with torch.no_grad():
        return float(charbonnier(net(s, b), b))


def test_tiny_bke_training_lowers_loss(trained, kodak_pairs):
    out, path = trained
    assert path == out / "bke.safetensors" and path.is_file()
    pairs = PairedImages.from_folders(*kodak_pairs)
    torch.manual_seed(0)  # the trainer's seed: the same initial weights
    init = build("bke-kernelwizard", **TINY).eval()
    net, meta = load_bke(path)
    assert meta["net"] == "bke-kernelwizard" and meta["pairs"] == 6
    assert Path(meta["pairs_sharp"]) == kodak_pairs[1].resolve()
    before, after = _eval_loss(init, pairs), _eval_loss(net, pairs)
    assert after < 0.8 * before, (before, after)
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 30 // 5
    assert (out / "loss.png").is_file()


def test_interrupted_training_resumes_exactly(tmp_path, kodak_pairs):
    ov = ["save_every=1000", "log_every=1", "batch_size=1"]
    a = train_bke(*kodak_pairs, tmp_path / "a", config="cpu-tiny", iters=5, progress=False, overrides=ov)
    mid = train_bke(*kodak_pairs, tmp_path / "b", config="cpu-tiny", iters=5, progress=False, overrides=ov, stop_at=3)
    assert mid.name == "ckpt_00000003.safetensors"
    assert not (tmp_path / "b" / "bke.safetensors").exists()
    b = train_bke(*kodak_pairs, tmp_path / "b", config="cpu-tiny", iters=5, progress=False, overrides=ov)
    wa, _ = load_weights(a)
    wb, _ = load_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    with pytest.raises(ConfigError, match="holds a checkpoint"):
        train_bke(*kodak_pairs, tmp_path / "b", config="cpu-tiny", iters=7, progress=False,
                  overrides=ov + ["net_kwargs.nf=16", "net_kwargs.kernel_dim=128"])


def test_transfer_keeps_any_size_and_blurs(trained, kodak_images):
    _, path = trained
    known = make_known_blur(f"bke:{path}")
    assert isinstance(known, BKETransfer) and "BKE transfer" in known.describe()
    img = to_tensor(read_image(kodak_images[10]))[None]
    g = torch.Generator().manual_seed(0)
    for h, w in ((200, 330), (496, 300), (37, 61)):  # crop path, resize-the-code path, tiny image
        x = img[..., :h, :w]
        y = known(x, g)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        assert torch.equal(torch.round(y * 255) / 255, y)
    # different pairs/crops give different blur; the same seed gives the same result
    x = img[..., :256, :384]
    y1, info1 = known.apply(x.expand(3, -1, -1, -1), torch.Generator().manual_seed(1), return_info=True)
    y2 = known(x.expand(3, -1, -1, -1), torch.Generator().manual_seed(1))
    assert torch.equal(y1, y2)
    assert info1["codes"].shape == (3, 64, 2, 3)
    with pytest.raises(ConfigError, match="overrides"):
        make_known_blur(f"bke:{path}", overrides=["noise.p=0"])


def test_blur_sources_import_one_way():
    """synth's make_known_blur picks the source and imports bke_transfer; both read the known-blur
    config from its own module, so bke_transfer imports nothing of synth (no import circle)."""
    import ast

    from b2b_train.blur import bke_transfer, known_blur_config, synth

    def imported(module):
        tree = ast.parse(Path(module.__file__).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}

    assert "synth" not in imported(bke_transfer) and "known_blur_config" in imported(bke_transfer)
    assert "bke_transfer" in imported(synth)
    assert synth.KnownBlurConfig is bke_transfer.KnownBlurConfig is known_blur_config.KnownBlurConfig
