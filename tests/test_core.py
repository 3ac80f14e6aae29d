"""Shared plumbing: typed configs, safe checkpoints, metrics, image/video I/O, trainutil."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b_train import checkpoint as ck
from b2b_train.config import apply_overrides, from_dict, load_config, to_dict
from b2b_train.data import io
from b2b_train.errors import CheckpointError, ConfigError, DataError
from b2b_train.metrics import laplacian_variance_np, psnr, psnr_np, ssim, ssim_np
from b2b_train.trainutil import CheckpointManager, CsvLogger, lr_constant_then_linear, rng_state, set_rng_state, set_seed


# ----------------------------------------------------------------------------- config
@dataclass
class _Opt:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class _Cfg:
    KIND = "demo"
    name: str = "x"
    iters: int = 10
    amp: bool = False
    layers: list[str] = field(default_factory=lambda: ["a"])
    opt: _Opt = field(default_factory=_Opt)


def test_config_presets_overrides_and_errors(tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "base.yaml").write_text("iters: 100\nopt:\n  lr: 0.01\n")
    (tmp_path / "demo" / "child.yaml").write_text("base: base\nname: kid\nopt:\n  betas: [0.5, 0.9]\n")
    monkeypatch.setenv("B2B_CONFIGS", str(tmp_path))
    cfg = load_config(_Cfg, "child", ["opt.lr=2e-4", "layers=[c, d]", "amp=true"])
    assert (cfg.name, cfg.iters, cfg.amp, cfg.layers) == ("kid", 100, True, ["c", "d"])
    assert cfg.opt.lr == pytest.approx(2e-4) and cfg.opt.betas == (0.5, 0.9)
    assert to_dict(cfg)["opt"]["betas"] == [0.5, 0.9]
    with pytest.raises(ConfigError, match="opt.lrr"):
        load_config(_Cfg, "child", ["opt.lrr=1"])
    with pytest.raises(ConfigError, match="'iters'"):
        load_config(_Cfg, None, ["iters=many"])
    with pytest.raises(ConfigError, match="presets: base, child"):
        load_config(_Cfg, "nope")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="amp"):
        from_dict(_Cfg, {"amp": "yes"})


# ----------------------------------------------------------------------------- checkpoints
def test_safetensors_roundtrip_and_atomic_overwrite(tmp_path):
    p = tmp_path / "w.safetensors"
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}
    ck.save_weights(p, t, {"net": "x", "n": 3})
    got, meta = ck.load_weights(p)
    assert torch.equal(got["a"], t["a"]) and torch.equal(got["b"], t["b"]) and meta == {"net": "x", "n": 3}
    assert ck.read_meta(p) == meta and (tmp_path / "w.safetensors.json").is_file()
    # a truncated file is refused clearly
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="not a valid safetensors|truncated"):
        ck.load_weights(p)
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_training_state_roundtrip_resumes_optimizer_exactly(tmp_path):
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
    ck.save_state(tmp_path / "s.safetensors", {"model": m.state_dict(), "opt": opt.state_dict(), "step": 3})
    state, _ = ck.load_state(tmp_path / "s.safetensors")
    m2 = torch.nn.Linear(4, 3)
    m2.load_state_dict(state["model"])
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-2)
    opt2.load_state_dict(state["opt"])
    x = torch.randn(5, 4)
    for mm, oo in ((m, opt), (m2, opt2)):
        oo.zero_grad()
        mm(x).pow(2).mean().backward()
        oo.step()
    assert state["step"] == 3
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters()))


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        pickle.dump({"params": {"w": torch.ones(1)}, "x": _Payload(str(marker))}, f)
    with pytest.raises(CheckpointError, match="refused|cannot read"):
        ck.read_foreign_state_dict(bad)
    assert not marker.exists()
    # torch.save'd zip files with a payload are refused the same way
    bad2 = tmp_path / "evil2.pth"
    torch.save({"model": {"w": torch.ones(1)}, "x": _Payload(str(marker))}, bad2)
    with pytest.raises(CheckpointError):
        ck.read_foreign_state_dict(bad2)
    assert not marker.exists()


def test_foreign_state_dict_unwrap_and_strict_errors(tmp_path):
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    sd = {"module." + k: v for k, v in m.state_dict().items()}
    torch.save({"params_ema": sd, "params": {}}, tmp_path / "a.pth")
    m2 = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    ck.load_any_weights(m2, tmp_path / "a.pth")
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters()))
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1), torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(CheckpointError, match=r"missing 2 keys \(3.bias, 3.weight\).*wrong shapes"):
        ck.load_any_weights(other, tmp_path / "a.pth")
    (tmp_path / "half.pth").write_bytes((tmp_path / "a.pth").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read"):
        ck.read_foreign_state_dict(tmp_path / "half.pth")


def test_checkpoint_manager_keeps_newest_and_skips_damaged(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=2)
    for s in (10, 20, 30):
        mgr.save(s, {"w": torch.full((2,), float(s))})
    assert mgr.steps() == [20, 30]
    mgr.path_for(30).write_bytes(b"\0" * 10)  # damaged newest (e.g. disk full outside atomic write)
    warnings = []
    state, meta = mgr.latest(warn=warnings.append)
    assert state["step"] == 20 and meta["step"] == 20 and torch.equal(state["w"], torch.full((2,), 20.0))
    assert warnings and "ckpt_00000030" in warnings[0]


def test_rng_state_roundtrip_through_checkpoint(tmp_path):
    set_seed(123)
    ck.save_state(tmp_path / "r.safetensors", {"rng": rng_state()})
    a = (torch.rand(3), np.random.rand(3), __import__("random").random())
    state, _ = ck.load_state(tmp_path / "r.safetensors")
    set_rng_state(state["rng"])
    b = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_lr_schedule_and_csv_logger(tmp_path):
    f = lr_constant_then_linear(total=100, decay_start=50)
    assert [f(0), f(49), f(50), f(75), f(100)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    log = CsvLogger(tmp_path / "log.csv")
    log.log(1, loss=2.0)
    log.log(2, loss=1.0, psnr=20.0)
    log.log(3, loss=0.5)
    rows = CsvLogger(tmp_path / "log.csv").read()
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[1]["psnr"] == "20.0"
    log.truncate_after(2)
    assert len(log.read()) == 2


# ----------------------------------------------------------------------------- metrics
def test_psnr_ssim_match_independent_numpy(kodak_images):
    gt = io.read_image(kodak_images[0])[:128, :160]
    rng = np.random.default_rng(0)
    noisy = np.clip(gt.astype(np.int16) + rng.integers(-6, 7, gt.shape), 0, 255).astype(np.uint8)
    mse = np.mean((gt.astype(np.float64) - noisy.astype(np.float64)) ** 2)
    assert psnr_np(noisy, gt) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert psnr_np(gt, gt) == math.inf
    assert ssim_np(gt, gt) == pytest.approx(1.0)
    s = ssim_np(noisy, gt)
    assert 0.5 < s < 0.999
    # SSIM of a blurred copy is lower than that of a mildly noisy copy
    import cv2

    blurred = cv2.GaussianBlur(gt, (0, 0), 3)
    assert ssim_np(blurred, gt) < s
    # tensor API agrees with the numpy one
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255
    assert psnr(t(noisy), t(gt)) == pytest.approx(psnr_np(noisy, gt))
    assert ssim(t(noisy), t(gt)) == pytest.approx(s)


def test_laplacian_variance_matches_opencv_and_orders_blur(kodak_images):
    import cv2

    img = io.read_image(kodak_images[1])
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    ref = cv2.Laplacian(gray.astype(np.float64), cv2.CV_64F)[1:-1, 1:-1].var()
    assert laplacian_variance_np(img) == pytest.approx(ref, rel=0.02)
    assert laplacian_variance_np(cv2.GaussianBlur(img, (0, 0), 2)) < 0.3 * laplacian_variance_np(img)



def test_blur_degree_measures_share_one_luma_and_laplacian(kodak_images):
    """The tensor Laplacian variance, the curriculum's reblur measure and the frame cache's OpenCV
    blur degree all read metrics' luma weights and kernel; OpenCV's equals the tensor one within
    float32 rounding (RGB and gray)."""
    from b2b_train.data.curriculum import blur_degrees
    from b2b_train.data.frames import blur_degree
    from b2b_train.metrics import LUMA_601, laplacian_variance, luma

    img = io.read_image(kodak_images[1])[:96, :128]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    wr, wg, wb = LUMA_601
    assert torch.equal(luma(x), wr * x[:, 0:1] + wg * x[:, 1:2] + wb * x[:, 2:3])
    assert torch.equal(luma(x[:, :1]), x[:, :1])
    assert torch.equal(blur_degrees(x, "laplacian"), laplacian_variance(x))
    assert blur_degree(img) == pytest.approx(laplacian_variance_np(img), rel=1e-5)
    assert blur_degree(img[..., 1]) == pytest.approx(laplacian_variance_np(img[..., 1]), rel=1e-5)

# ----------------------------------------------------------------------------- image and video I/O
def test_read_image_normalises_odd_formats(tmp_path):
    import cv2

    gray16 = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 2] = 200  # red in BGRA
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "one.png"), np.full((1, 1, 3), 9, np.uint8))
    g = io.read_image(tmp_path / "g16.png")
    assert g.shape == (20, 30, 3) and g.dtype == np.uint8 and g[-1, -1, 0] == round(gray16[-1, -1] / 257)
    r = io.read_image(tmp_path / "rgba.png")
    assert r.shape == (5, 7, 3) and tuple(r[0, 0]) == (200, 0, 0)
    assert io.read_image(tmp_path / "one.png").shape == (1, 1, 3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png"):
        io.read_image(tmp_path / "bad.png")
    with pytest.raises(DataError, match="no images"):
        io.list_images(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)


def test_video_frames_and_damaged_clips(asl_clips, tmp_path):
    clip = asl_clips[0]
    info = io.probe_video(clip)
    assert (info["width"], info["height"]) == (640, 480) and info["fps"] == pytest.approx(30, abs=0.5)
    frames = list(io.iter_video_frames(clip))
    assert len(frames) >= 40
    assert [f[0] for f in frames] == list(range(len(frames)))
    ts = [f[1] for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:])) and ts[1] - ts[0] == pytest.approx(1 / 30, abs=2e-3)
    assert frames[0][2].shape == (480, 640, 3) and frames[0][2].dtype == np.uint8
    every5 = [f[0] for f in io.iter_video_frames(clip, step=5, max_frames=3)]
    assert every5 == [0, 5, 10]
    half = tmp_path / "half.mkv"
    half.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    n_half = sum(1 for _ in io.iter_video_frames(half))
    assert 0 < n_half < len(frames)
    (tmp_path / "zero.mkv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        list(io.iter_video_frames(tmp_path / "zero.mkv"))
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(DataError, match="not a readable video"):
        list(io.iter_video_frames(tmp_path / "text.mp4"))


def test_cli_help_imports_no_heavy_optional_modules():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from b2b_train.cli import cli as t\n"
        "from b2b_stream.cli import cli as s\n"
        "r1 = CliRunner().invoke(t, ['--help']); r2 = CliRunner().invoke(s, ['--help'])\n"
        "assert r1.exit_code == 0 and 'translator' in r1.output, r1.output\n"
        "assert r2.exit_code == 0 and 'calibrate' in r2.output, r2.output\n"
        # each command that lists the engine backends reads them from b2b_stream.engines
        "for c in ('run', 'bench', 'build', 'calibrate'):\n"
        "    r = CliRunner().invoke(s, [c, '--help']); assert r.exit_code == 0 and 'onnxruntime' in r.output, r.output\n"
        "bad = [m for m in ('torch_tensorrt', 'av', 'mediapipe', 'torch') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_ssim_equals_direct_2d_window_reference(kodak_images):
    """The separable implementation equals a direct 11x11-window SSIM written with scipy."""
    from scipy.signal import convolve2d

    gt = io.read_image(kodak_images[2])[:40, :48].astype(np.float64)
    other = np.clip(gt[::-1, :] * 0.7 + 30, 0, 255).round()
    ax = np.arange(11) - 5.0
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for ch in range(3):
        x, y = gt[..., ch], other[..., ch]
        f = lambda z: convolve2d(z, win, mode="valid")  # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        vals.append((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean())
    assert ssim_np(other.astype(np.uint8), gt.astype(np.uint8)) == pytest.approx(float(np.mean(vals)), abs=1e-10)


def test_file_sha256_reads_in_blocks_and_matches_hashlib(tmp_path):
    """The one file digest (engine manifests, hand model, weight imports, prior) spans block boundaries."""
    import hashlib

    from b2b_train.hashing import file_sha256

    data = np.random.default_rng(0).integers(0, 256, (1 << 20) + 17, dtype=np.uint8).tobytes()
    (tmp_path / "blob").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_setting_checks_name_the_setting():
    """One wording for the range checks the configs and the kernel sampler share."""
    from b2b_train.blur.known_blur_config import CompressionConfig, KernelConfig
    from b2b_train.checks import check_at_least, check_fraction, check_range
    from b2b_train.distill import DistillConfig

    assert check_range("r", [1, 2]) == (1.0, 2.0)
    with pytest.raises(ValueError, match=r"^r must be 1 <= lo <= hi <= 100, got \[0, 50\]$"):
        check_range("r", [0, 50], 1, 100)
    with pytest.raises(ConfigError, match=r"^a, b and c must be >= 1$"):
        check_at_least({"a": 1, "b": 0, "c": 2}, 1, ConfigError)
    check_at_least({"iters": 0}, 0)
    with pytest.raises(ValueError, match=r"^p must be in \[0, 1\]$"):
        check_fraction("p", 1.5)
    with pytest.raises(ValueError, match=r"kernels\.extent must be 0 <= lo <= hi, got \[5, 3\]"):
        KernelConfig(extent=(5, 3))
    with pytest.raises(ConfigError, match=r"config CompressionConfig: compression\.quality must be 1 <= lo"):
        from_dict(CompressionConfig, {"quality": [0, 50]})
    with pytest.raises(ConfigError, match=r"^val_every, ckpt_every and log_every must be >= 1$"):
        DistillConfig(val_every=0)


def test_fit_pairs_cosine_equals_the_plain_cosine_adam_loop():
    """The benchmarks' short pair fits: Adam, lr * 0.5 * (1 + cos(pi * it / iters)) set each step, clipping."""
    from b2b_train.trainutil import fit_pairs_cosine

    def batches(seed):
        g = torch.Generator().manual_seed(seed)
        return lambda: (torch.rand(4, 3, generator=g), torch.rand(4, 2, generator=g))

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ref = torch.nn.Linear(3, 2)
    ref.load_state_dict(net.state_dict())
    iters, lr = 7, 0.05
    calls = []

    def loss(x, y):
        calls.append(1)
        return (net(x) - y).pow(2).mean()

    fit_pairs_cosine(net.parameters(), batches(1), loss, iters=iters, lr=lr, betas=(0.9, 0.99), grad_clip=0.5,
                     device="cpu", description="test", show_progress=False)
    opt = torch.optim.Adam(ref.parameters(), lr=lr, betas=(0.9, 0.99))
    draw = batches(1)
    for it in range(iters):
        x, y = draw()
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / iters))
        opt.zero_grad()
        (ref(x) - y).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt.step()
    assert len(calls) == iters
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.equal(a, b)
