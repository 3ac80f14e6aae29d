"""Shared fixtures and helpers: where the real footage lives, a temporary home, the shipped hand model,
tiny networks and real frames for the stream tests, short training runs.

Real data comes from ``../shared/data`` beside the repository (override with ``B2B_DATA``). Tests
that need it are skipped when it is absent, except under ``B2B_REQUIRE_DATA=1`` (set by ``.ci/run``),
where its absence is a failure: CI must never go green by skipping the real-data tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _data_root() -> Path:
    env = os.environ.get("B2B_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = _data_root()
    if not (root / "MANIFEST.md").is_file():
        if os.environ.get("B2B_REQUIRE_DATA"):
            pytest.fail(f"real test data not found at {root} (set B2B_DATA)")
        pytest.skip(f"real test data not found at {root}")
    return root


@pytest.fixture(scope="session")
def asl_clips(shared_data) -> list[Path]:
    return sorted((shared_data / "videos" / "asl_gestures").glob("*.mkv"))


@pytest.fixture(scope="session")
def kodak_images(shared_data) -> list[Path]:
    return sorted((shared_data / "images" / "kodak").glob("*.png"))


@pytest.fixture()
def b2b_home(tmp_path, monkeypatch) -> Path:
    """An empty B2B_HOME (profiles/, engines/) and cache for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("B2B_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def hand_model() -> Path:
    """The MediaPipe hand-landmarker bundle shipped with b2b (its SHA-256 checked): never skipped, so a
    damaged or missing package-data file fails the tests that track hands."""
    from b2b_stream.tracking import shipped_hand_model  # noqa: WPS433 (import inside fixture on purpose)

    return shipped_hand_model()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: on a shared 2-core machine two threads spin against other jobs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_frame_sets(root: Path, blurry_clip: Path, sharp_clip: Path, step: int, max_frames: int,
                     size: tuple[int, int] = (128, 96)) -> tuple[Path, Path]:
    """Frames of one real clip as the blurry set and of another as the sharp set (PNG, resized to ``size``)."""
    import cv2

    from b2b_train.data.io import iter_video_frames, write_image

    for clip, label in ((blurry_clip, "blurry"), (sharp_clip, "sharp")):
        for i, _t, img in iter_video_frames(clip, step=step, max_frames=max_frames):
            write_image(root / label / f"{clip.stem}_{i:03d}.png", cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    return root / "blurry", root / "sharp"


def run_train_cli(args: list[str]) -> int:
    """``b2b-train ARGS`` in this process; its exit code (0 when it returns normally)."""
    from b2b_train.cli import main

    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def tiny_translator(batch: int = 4, val_images: int = 2, **train) -> list[str]:
    """Translator overrides for a real run of the real loop in seconds: tiny networks, 48² crops, one
    VGG layer, no deblurred samples; ``train`` adds ``train.KEY=VALUE`` entries (e.g. ``ckpt_every=2``)."""
    return [
        "model.generator=mimo-unet",
        "model.generator_kwargs={base_channel: 8, num_res: 1}",
        "model.discriminator_kwargs={ndf: 8, n_layers: 2}",
        "data.crop=48", f"data.batch={batch}", f"data.val_images={val_images}", "data.val_size=48",
        "loss.vgg_arch=vgg16", "loss.vgg_layers=[relu1_2]", "loss.vgg_layer_weights=[1.0]",
        "train.deblur_samples=false",
    ] + [f"train.{k}={v}" for k, v in train.items()]


# the registry networks the stream tests fuse, as their small variants (tiny_nets)
TRANSLATOR = "mimo-unet-lite"
DEBLURRER = "nafnet-tiny"


def tiny_nets(seed: int = 0) -> tuple[nn.Module, nn.Module, int]:
    """(translator, deblurrer, side multiple) small enough for CPU tests; eval mode, fixed seed."""
    from b2b_train import nets
    from b2b_train.nets import registry

    assert TRANSLATOR in nets.names("translator"), nets.names()
    assert DEBLURRER in nets.names("deblurrer"), nets.names()
    torch.manual_seed(seed)
    tr = registry.build(TRANSLATOR, **registry.spec(TRANSLATOR).tiny_kwargs).eval()
    db = registry.build(DEBLURRER, **registry.spec(DEBLURRER).tiny_kwargs).eval()
    # give the residual branches visible effect (fresh NAFNet-style nets start near identity)
    with torch.no_grad():
        for p in list(tr.parameters()) + list(db.parameters()):
            p.add_(torch.randn_like(p) * 0.02)
    m1, m2 = registry.spec(TRANSLATOR).multiple, registry.spec(DEBLURRER).multiple
    return tr, db, int(np.lcm(m1, m2))


def real_frames(paths, n: int, h: int, w: int, offset: int = 0) -> np.ndarray:
    """``n`` real RGB crops (N, h, w, 3) uint8 from the Kodak images."""
    from b2b_train.data.io import read_image

    out = []
    for i in range(n):
        img = read_image(paths[(offset + i) % len(paths)])
        y0, x0 = 37 * i % (img.shape[0] - h), 53 * i % (img.shape[1] - w)
        out.append(img[y0 : y0 + h, x0 : x0 + w])
    return np.ascontiguousarray(np.stack(out))


@pytest.fixture()
def xvfb_display():
    """A private virtual X display (``":N"``) for one test; skipped where Xvfb is not installed."""
    import shutil
    import subprocess

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    r_fd, w_fd = os.pipe()  # Xvfb picks a free display and writes its number to w_fd
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w_fd), "-screen", "0", "1600x900x24", "-nolisten", "tcp"],
                            pass_fds=[w_fd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w_fd)
    try:
        with os.fdopen(r_fd) as f:
            disp = ":" + f.readline().strip()
        assert disp != ":", "Xvfb did not start"
        yield disp
    finally:
        xvfb.terminate()
        xvfb.wait(10)
