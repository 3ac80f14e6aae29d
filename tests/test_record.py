"""``b2b-stream record``: lossless clips + metadata in the profile, and clips that survive kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from b2b_stream.cli import main
from b2b_stream.profile import Profile
from b2b_stream.record import CODECS, pick_codec, read_clip_frames

pytestmark = pytest.mark.timeout(180)  # a hang fails with stacks instead of stalling CI


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def clip(asl_clips) -> Path:
    return next(p for p in asl_clips if p.stem == "milk")


@pytest.mark.parametrize("codec", ["auto", "ffv1", "x264rgb"])
def test_record_from_file_is_bit_exact_with_metadata(b2b_home, clip, codec, capsys):
    main(["record", "--camera", str(clip), "--label", "blurry", "--profile", "desk", "--no-preview", "--codec", codec])
    prof = Profile.open("desk")
    clips = prof.clips("blurry")
    assert len(clips) == 1 and clips[0].suffix == ".mkv"
    assert prof.clips("sharp") == []
    src = _decode(clip)
    rec = read_clip_frames(clips[0])
    assert len(rec) == len(src)
    for a, b in zip(src, rec):
        assert np.array_equal(a, b)  # lossless: training sees the camera's own pixels
    meta = json.loads(clips[0].with_suffix(".json").read_text())
    assert meta["label"] == "blurry" and meta["camera"] == str(clip)
    assert (meta["width"], meta["height"]) == (640, 480) and meta["fps"] == pytest.approx(30.0)
    assert meta["frames"] == len(src) and meta["complete"] is True and meta["stopped_early"] is False
    assert meta["lossless"] is True and meta["codec"] == CODECS[pick_codec(codec)][0]
    assert "exposure" in meta
    assert meta["seconds"] == pytest.approx(len(src) / 30.0, abs=0.05)
    # the clip's timestamps keep the source's pace
    with av.open(str(clips[0])) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert times[-1] == pytest.approx((len(src) - 1) / 30.0, abs=0.01)
    assert prof.read_meta()["cameras"][0]["width"] == 640
    out = capsys.readouterr().out
    assert "recorded 51 frames" in out and "next: b2b-stream record" in out and "--label sharp" in out


def test_record_seconds_and_resize_from_file(b2b_home, clip):
    main(["record", "--camera", str(clip), "--label", "sharp", "--profile", "p", "--no-preview",
          "--seconds", "0.5", "--width", "320", "--height", "240"])
    (c,) = Profile.open("p").clips("sharp")
    frames = read_clip_frames(c)
    assert len(frames) == 15
    assert frames[0].shape == (240, 320, 3)


def test_record_from_demo_camera_for_n_seconds(b2b_home):
    t0 = time.monotonic()
    main(["record", "--camera", "demo", "--label", "sharp", "--profile", "demo", "--no-preview",
          "--seconds", "1.0", "--countdown", "0.5"])
    dt = time.monotonic() - t0
    (c,) = Profile.open("demo").clips("sharp")
    meta = json.loads(c.with_suffix(".json").read_text())
    n = len(read_clip_frames(c))
    assert meta["live"] is True and meta["frames"] == n
    assert 15 <= n <= 32  # ~1 s of a 30 fps camera, minus what a busy machine skips
    assert dt >= 1.4  # the countdown and the recording took real time


def _start_record(home: Path, seconds: str = "60") -> subprocess.Popen:
    env = dict(os.environ, B2B_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "b2b_stream.cli", "record", "--camera", "demo", "--label", "blurry",
         "--profile", "k", "--seconds", seconds, "--countdown", "0", "--no-preview"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_frames(home: Path, proc, min_bytes: int, timeout: float = 40.0) -> Path:
    folder = home / "profiles" / "k" / "clips" / "blurry"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clips = list(folder.glob("*.mkv")) if folder.is_dir() else []
        if clips and clips[0].stat().st_size >= min_bytes:
            return clips[0]
        if proc.poll() is not None:
            pytest.fail(f"record ended early: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("record did not write frames in time")


def test_kill9_during_record_leaves_a_playable_clip(tmp_path):
    home = tmp_path / "home"
    proc = _start_record(home)
    try:
        path = _wait_for_frames(home, proc, min_bytes=3_000_000)  # ~20 lossless 640x480 frames
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    frames = _decode(path)  # must open and decode without the muxer's trailer
    assert len(frames) >= 10
    assert frames[0].shape == (480, 640, 3)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["complete"] is False and meta["label"] == "blurry"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_record_closes_the_clip_cleanly(tmp_path, sig):
    home = tmp_path / "home"
    proc = _start_record(home)
    try:
        path = _wait_for_frames(home, proc, min_bytes=1_500_000)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped early" in out
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["complete"] is True and meta["stopped_early"] is True
    assert len(_decode(path)) == meta["frames"] >= 5


def test_record_rejects_bad_profile_names_and_labels(tmp_path):
    env = dict(os.environ, B2B_HOME=str(tmp_path))
    for args, needle in [
        (["--profile", "../evil", "--label", "sharp"], "invalid profile name"),
        (["--profile", "/abs/evil", "--label", "sharp"], "invalid profile name"),
    ]:
        r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "record", "--camera", "demo", "--no-preview", *args],
                           capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
        assert r.returncode == 2
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "evil").exists() and not (tmp_path / "profiles").exists()
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "record", "--camera", "demo", "--label", "fuzzy"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "fuzzy" in r.stderr


def test_record_with_preview_window_under_xvfb(tmp_path, xvfb_display):
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb", B2B_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "record", "--camera", "demo", "--label", "sharp",
                        "--profile", "pv", "--seconds", "1", "--countdown", "0.5"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "no preview" not in r.stderr  # the window opened
    (clip,) = Profile.open("pv", home=tmp_path).clips("sharp")
    assert len(read_clip_frames(clip)) >= 15


def test_full_disk_during_record_is_one_clear_error_and_keeps_the_clip(tmp_path, clip):
    import resource

    def small_files():  # every file this process writes is capped at 2 MB, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    env = dict(os.environ, B2B_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "record", "--camera", str(clip), "--label", "blurry",
                        "--profile", "full", "--no-preview"], capture_output=True, text=True, timeout=120, env=env,
                       preexec_fn=small_files)
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "failed after" in err[0] and "Traceback" not in r.stderr
    (path,) = Profile.open("full", home=tmp_path).clips("blurry")
    assert len(_decode(path)) >= 5  # what was written before the disk filled up still plays
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["complete"] is False and "failed after" in meta["error"]
