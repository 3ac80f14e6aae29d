"""b2b installs as a package: the wheel carries every preset, the shipped weights and the hand model,
and an installed wheel runs the main job from any directory (no repository on the path)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import b2b_train
from b2b_stream import tracking
from b2b_train.config import configs_root, list_presets

REPO = Path(__file__).resolve().parent.parent
PRESETS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "b2b_train" / "configs").rglob("*.yaml"))
KINDS = ("translator", "known", "deblurrer", "bke", "stream")

pytestmark = pytest.mark.timeout(300)


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "B2B_CONFIGS", "B2B_HAND_MODEL", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built offline from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in ("b2b_train", "b2b_stream"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=skip)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / f, src / f)
    dist = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", str(src), "-w", str(dist)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (whl,) = dist.glob("b2b-*.whl")
    return whl


def test_presets_live_in_the_package():
    assert configs_root() == Path(b2b_train.__file__).resolve().parent / "configs"
    assert not (REPO / "configs").exists()  # one home for the presets
    for kind in KINDS:
        assert list_presets(kind), kind
    assert {"paper", "reference-code", "cpu-quick"} <= set(list_presets("translator"))
    assert "default" in list_presets("stream")


def test_wheel_holds_every_preset_the_weights_and_the_hand_model(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert PRESETS and len(PRESETS) >= len(KINDS)
        missing = [p for p in PRESETS if p not in names]
        assert missing == [], f"presets not in the wheel: {missing}"
        for kind in KINDS:
            assert any(n.startswith(f"b2b_train/configs/{kind}/") for n in names), kind
        model = "b2b_stream/models/hand_landmarker.task"
        assert model in names
        assert hashlib.sha256(zf.read(model)).hexdigest() == tracking.SHIPPED_SHA256
        for f in ("hand_landmarker.task.json", "NOTICE.md", "LICENSE-Apache-2.0.txt"):
            assert f"b2b_stream/models/{f}" in names, f
        assert "b2b_train/weights/deblurrer-lite.safetensors" in names
        assert "b2b_stream/assets/demo.mkv" in names
        assert not [n for n in names if n.startswith("configs/") or n.startswith("tests/")]


def test_installed_wheel_runs_the_demo_from_another_directory(wheel, tmp_path):
    """A fresh venv sees this venv's dependencies (a .pth, written after the install) but not the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                        str(wheel)], capture_output=True, text=True, timeout=240, env=_clean_env())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "zz_b2b_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after site: deps only

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(B2B_HOME=str(elsewhere / "home"), B2B_CACHE=str(elsewhere / "cache"), OMP_NUM_THREADS="1")
    probe = ("import b2b_train, b2b_stream, json; from b2b_train.config import configs_root, list_presets; "
             "from b2b_stream.tracking import resolve_hand_model; "
             "print(json.dumps([b2b_train.__file__, b2b_stream.__file__, str(configs_root()), "
             "list_presets('translator'), str(resolve_hand_model(None))]))")
    r = subprocess.run([str(py), "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    train_file, stream_file, root, translators, model = json.loads(r.stdout)
    for p in (train_file, stream_file, root, model):
        assert Path(p).resolve().is_relative_to(site.resolve()), p  # the installed copy, not the checkout
    assert {"paper", "reference-code", "cpu-quick"} <= set(translators)

    report = elsewhere / "run.json"
    r = subprocess.run([str(venv / "bin" / "b2b-stream"), "run", "--camera", "demo", "--frames", "5", "--width", "320",
                        "--height", "240", "--report", str(report)],
                       cwd=elsewhere, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["frames_out"] >= 1 and rep["frames_in"] >= rep["frames_out"]
    assert "hands_detected_frames" in rep
