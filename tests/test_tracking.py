"""Hand tracking: model resolution, the offline wheel bundle, and real hands in real ASL clips."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from b2b_stream import tracking
from b2b_stream.tracking import HandTracker, draw_hands, resolve_hand_model
from b2b_train.errors import B2BError

pytestmark = pytest.mark.timeout(180)  # a hang fails with stacks instead of stalling CI


def _frames(path, n=None):
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if n and len(out) >= n:
                break
        return out


@pytest.fixture(scope="module")
def mediapipe_wheel(repo_root, tmp_path_factory) -> Path:
    """mediapipe 0.10.21's wheel where one is at hand ($B2B_MEDIAPIPE_WHEEL or .cache/wheels/), else a
    stand-in wheel holding the shipped bundle's two TFLite models at the real wheel's paths."""
    env = os.environ.get("B2B_MEDIAPIPE_WHEEL")
    hits = [env] if env else sorted(glob.glob(str(repo_root / ".cache" / "wheels" / "mediapipe-0.10.21-*.whl")))
    if hits and Path(hits[0]).is_file():
        return Path(hits[0])
    fake = tmp_path_factory.mktemp("wheel") / "mediapipe-0.10.21-standin-none-any.whl"
    with zipfile.ZipFile(tracking.shipped_hand_model()) as src, zipfile.ZipFile(fake, "w") as out:
        out.writestr("mediapipe/__init__.py", "")
        for member, name in tracking.WHEEL_MEMBERS.items():
            out.writestr(member, src.read(name))
    return fake


def test_resolution_order_explicit_env_cache_shipped(tmp_path, monkeypatch, hand_model):
    cache = tmp_path / "cache"
    monkeypatch.setenv("B2B_CACHE", str(cache))
    monkeypatch.delenv("B2B_HAND_MODEL", raising=False)
    assert hand_model == tracking.SHIPPED_MODEL
    assert resolve_hand_model(None) == hand_model  # nothing else installed: the shipped bundle
    cached = cache / "models" / "hand_landmarker.task"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_hand_model(None) == cached  # the cache beats the shipped bundle
    other = tmp_path / "other.task"
    other.write_bytes(b"y")
    monkeypatch.setenv("B2B_HAND_MODEL", str(other))
    assert resolve_hand_model(None) == other  # env beats the cache
    assert resolve_hand_model(cached) == cached  # an explicit path beats both
    with pytest.raises(B2BError, match="not found"):
        resolve_hand_model(tmp_path / "nope.task")
    monkeypatch.setenv("B2B_HAND_MODEL", str(tmp_path / "gone.task"))
    with pytest.raises(B2BError, match="B2B_HAND_MODEL"):
        resolve_hand_model(None)
    # nothing anywhere (a package missing its data): one line saying how to install a model
    monkeypatch.delenv("B2B_HAND_MODEL")
    cached.unlink()
    monkeypatch.setattr(tracking, "SHIPPED_MODEL", tmp_path / "pkg" / "hand_landmarker.task")
    with pytest.raises(B2BError) as e:
        resolve_hand_model(None)
    msg = str(e.value)
    assert "not installed" in msg and "--from-wheel" in msg and "mediapipe==0.10.21" in msg and "\n" not in msg


def test_shipped_model_matches_its_record_and_notice(hand_model):
    record = json.loads((hand_model.parent / "hand_landmarker.task.json").read_text())
    data = hand_model.read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"] == tracking.SHIPPED_SHA256
    assert len(data) == record["bytes"] == tracking.SHIPPED_BYTES
    with zipfile.ZipFile(hand_model) as zf:
        for name, member in record["members"].items():
            blob = zf.read(name)
            assert hashlib.sha256(blob).hexdigest() == member["sha256"] and len(blob) == member["bytes"]
            assert tracking.WHEEL_MEMBERS[member["from"]] == name
    assert record["license"] == "Apache-2.0" and record["source"]["version"] == "0.10.21"
    notice = (hand_model.parent / record["notice"]).read_text()
    assert "Apache License, Version 2.0" in notice and "Google" in notice and "0.10.21" in notice
    assert tracking.SHIPPED_SHA256 in notice
    assert "Apache License" in (hand_model.parent / record["license_file"]).read_text()


def test_a_damaged_shipped_model_is_refused_naming_the_checksum(tmp_path, monkeypatch):
    bad = tmp_path.resolve() / "hand_landmarker.task"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 7819037\n")
    monkeypatch.setattr(tracking, "SHIPPED_MODEL", bad)
    monkeypatch.setenv("B2B_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("B2B_HAND_MODEL", raising=False)
    for call in (lambda: resolve_hand_model(None), lambda: resolve_hand_model(bad), lambda: HandTracker()):
        with pytest.raises(B2BError, match="shipped hand model .* is damaged .*SHA-256"):
            call()


def test_bundle_from_wheel_rebuilds_the_shipped_model_and_finds_hands(tmp_path, mediapipe_wheel, hand_model, asl_clips):
    data = tracking.build_bundle_from_wheel(mediapipe_wheel)
    assert data == hand_model.read_bytes()  # the shipped file is exactly what --from-wheel makes
    out = tracking.install_bundle(data, tmp_path / "m" / "hand_landmarker.task")
    with zipfile.ZipFile(out) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert set(infos) == {"hand_detector.tflite", "hand_landmarks_detector.tflite"}
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos.values())
    res = tracking.check_hand_model(out, clip=asl_clips[0], max_frames=20)
    assert res["frames"] == 20 and res["frames_with_hands"] >= 15


def test_wheel_without_the_models_is_refused(tmp_path):
    fake = tmp_path / "mediapipe-0.10.21-fake.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
    with pytest.raises(B2BError, match="does not contain"):
        tracking.build_bundle_from_wheel(fake)
    (tmp_path / "notzip.whl").write_text("no")
    with pytest.raises(B2BError, match="not a wheel"):
        tracking.build_bundle_from_wheel(tmp_path / "notzip.whl")


def test_corrupt_model_is_a_clear_error_and_not_installed(tmp_path):
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(B2BError, match="not a usable hand-landmarker model"):
        HandTracker(bad)
    target = tmp_path / "installed.task"
    with pytest.raises(B2BError):
        tracking.install_bundle(b"garbage", target)
    assert not target.exists() and not list(tmp_path.glob(".hand_landmarker.*"))


def test_tracker_finds_two_hand_skeletons_on_asl_clips(hand_model, asl_clips):
    frames = _frames(next(p for p in asl_clips if p.stem == "bird"), n=40)
    with HandTracker(hand_model) as tr:
        results = [tr.track(img, i / 30.0) for i, img in enumerate(frames)]
        # a repeated or older timestamp must not break VIDEO mode
        again = tr.track(frames[-1], 0.0)
    assert isinstance(again, list)
    with_hands = [r for r in results if r]
    assert len(with_hands) >= 0.8 * len(frames)
    assert sum(len(r) == 2 for r in results) >= 0.5 * len(frames)  # "bird" is signed with both hands
    for hands in with_hands:
        assert len(hands) <= 2
        for h in hands:
            assert h["handedness"] in ("Left", "Right")
            assert 0.0 <= h["score"] <= 1.0
            lm = np.asarray(h["landmarks"])
            assert lm.shape == (21, 3)
            assert np.all(np.isfinite(lm))
            assert np.median(lm[:, :2]) > 0.0 and np.median(lm[:, :2]) < 1.0
    # landmarks follow the hand: consecutive frames move a little, not at random
    first = [r[0]["landmarks"][0] for r in results if r]
    steps = np.abs(np.diff(np.asarray(first)[:, :2], axis=0)).max(axis=1)
    assert np.median(steps) < 0.1


def test_tracker_rejects_wrong_input_and_close_is_idempotent(hand_model):
    tr = HandTracker(hand_model)
    with pytest.raises(B2BError, match="uint8"):
        tr.track(np.zeros((10, 10), np.float32))
    tr.close()
    tr.close()
    with pytest.raises(B2BError, match="closed"):
        tr.track(np.zeros((10, 10, 3), np.uint8))


def test_draw_hands_marks_the_skeleton(hand_model, asl_clips):
    img = _frames(asl_clips[0], n=1)[0]
    hands = [{"handedness": "Left", "score": 1.0, "landmarks": [[0.1 + 0.03 * i, 0.5, 0.0] for i in range(21)]}]
    out = draw_hands(img, hands)
    assert out.shape == img.shape and out is not img
    assert np.count_nonzero(np.any(out != img, axis=2)) > 200
    assert np.array_equal(draw_hands(img, []), img)


def test_models_cli_check_and_missing(tmp_path, hand_model):
    env = dict(os.environ, B2B_HAND_MODEL=str(hand_model))
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "models", "hands", "--check"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "hand model OK" in r.stdout and "frames of the demo clip" in r.stdout
    env = {k: v for k, v in os.environ.items() if k != "B2B_HAND_MODEL"}
    env["B2B_CACHE"] = str(tmp_path / "empty-cache")
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "models", "hands"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"hand model: {hand_model} (shipped with b2b, from mediapipe 0.10.21; SHA-256 verified)"
    env["B2B_HAND_MODEL"] = str(tmp_path / "gone.task")
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "models", "hands"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "B2B_HAND_MODEL" in lines[0] and "--from-wheel" in lines[0]
