"""Frame sources: files, folders, demo, realtime pacing, bad specs, and cameras that die."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from b2b_stream.sources import Frame, SourceError, demo_path, open_source
from doubles import SimulatedCamera

pytestmark = pytest.mark.timeout(180)  # a hang fails with stacks instead of stalling CI


def _decode_all(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def milk(asl_clips) -> Path:
    return next(p for p in asl_clips if p.stem == "milk")


@pytest.fixture(scope="module")
def milk_frames(milk) -> list[np.ndarray]:
    return _decode_all(milk)


def test_file_source_delivers_every_frame_in_order(milk, milk_frames):
    with open_source(str(milk)) as src:
        assert not src.live
        assert (src.width, src.height) == (milk_frames[0].shape[1], milk_frames[0].shape[0])
        assert src.fps == pytest.approx(30.0, rel=0.01)
        frames = list(src)
        assert src.end_reason == "end of input"
    assert len(frames) == len(milk_frames)
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b.t_capture >= a.t_capture for a, b in zip(frames, frames[1:]))
    for f, ref in zip(frames, milk_frames):
        assert f.image.dtype == np.uint8 and f.image.shape == ref.shape
        assert np.array_equal(f.image, ref)


def test_requested_size_is_delivered_and_reported(milk):
    with open_source(str(milk), width=320, height=240) as src:
        frame = src.read()
        info = src.info()
    assert frame.image.shape == (240, 320, 3)
    assert info["requested"] == {"width": 320, "height": 240, "fps": None}
    assert (info["native"]["width"], info["native"]["height"]) == (640, 480)
    assert (info["delivered"]["width"], info["delivered"]["height"]) == (320, 240)


def test_folder_source_normalises_gray_rgba_16bit(tmp_path, kodak_images):
    rgb = cv2.cvtColor(cv2.imread(str(kodak_images[0])), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    cv2.imwrite(str(tmp_path / "a_rgb.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "b_gray.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    cv2.imwrite(str(tmp_path / "c_rgba.png"), bgra)
    cv2.imwrite(str(tmp_path / "d_16bit.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "e_small.png"), cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (w // 2, h // 2)))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert len(frames) == 5
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (h, w, 3)
    assert np.array_equal(frames[0].image, rgb)
    assert np.array_equal(frames[2].image, rgb)  # alpha dropped, colours kept
    assert np.array_equal(frames[3].image, rgb)  # 16-bit scaled back to 8
    gray = frames[1].image
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_kodak_folder_as_camera(kodak_images):
    with open_source(str(kodak_images[0].parent), width=160, height=120) as src:
        frames = list(src)
    assert len(frames) == len(kodak_images)
    assert all(f.image.shape == (120, 160, 3) for f in frames)


def test_demo_is_a_live_looping_real_clip():
    assert demo_path().is_file()
    assert (demo_path().parent / "ATTRIBUTION.md").is_file()
    n_clip = len(_decode_all(demo_path()))
    t0 = time.monotonic()
    with open_source("demo") as src:
        assert src.live
        frames = []
        for f in src:
            frames.append(f)
            if len(frames) >= n_clip + 10:
                break
    dt = time.monotonic() - t0
    assert len(frames) == n_clip + 10  # it loops instead of ending
    assert dt >= (n_clip + 5) / 30.0 * 0.8  # paced like a 30 fps camera, not as fast as decoding
    assert frames[0].image.shape == (480, 640, 3)


def test_loop_option_for_files(milk, milk_frames):
    with open_source(str(milk), loop=True) as src:
        frames = [src.read() for _ in range(len(milk_frames) + 5)]
    assert np.array_equal(frames[len(milk_frames)].image, milk_frames[0])


def test_realtime_file_keeps_only_the_newest_frame(milk):
    with open_source(str(milk), realtime=True) as src:
        assert src.live
        got = []
        for f in src:
            got.append(f.index)
            time.sleep(0.1)  # a consumer three times slower than the clip
        skipped = src.skipped
    assert skipped > 0
    assert len(got) + skipped == 51
    assert got == sorted(got) and len(set(got)) == len(got)


def _write(path: Path, data: bytes | None) -> Path:
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, match", [
    ("missing.mp4", "skip", "not found"),
    ("empty.mp4", b"", "not a readable video"),
    ("text.mkv", b"hello, not a video", "not a readable video"),
    ("nothing", None, "no images"),
])
def test_bad_sources_fail_with_one_clear_line(tmp_path, name, data, match):
    spec = tmp_path / name if data == "skip" else _write(tmp_path / name, data)
    with pytest.raises(SourceError, match=match) as e:
        open_source(str(spec))
    assert "\n" not in str(e.value)


def test_truncated_clip_fails_or_ends_cleanly(tmp_path, milk):
    data = milk.read_bytes()
    bad = tmp_path / "truncated.mkv"
    bad.write_bytes(data[: len(data) // 3])
    try:
        src = open_source(str(bad))
    except SourceError:
        return
    with src:
        frames = list(src)  # must not raise: ends at the damage
    assert 0 < len(frames) < 51


def test_unknown_camera_index_is_one_clear_error():
    with pytest.raises(SourceError, match="camera 7 not found"):
        open_source(7)


def test_cli_unknown_camera_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "7", "--track", "none"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "camera 7 not found" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ cameras that stop delivering


def _opener(frames, plan):
    """Opener giving one SimulatedCamera per entry of ``plan`` (fail_after, mode) or raising when exhausted."""
    cams = []

    def opener():
        if len(cams) >= len(plan):
            raise SourceError("camera unplugged")
        fail_after, mode = plan[len(cams)]
        cams.append(SimulatedCamera(frames, fps=60, fail_after=fail_after, mode=mode))
        return cams[-1]

    return opener, cams


@pytest.mark.parametrize("mode", ["fail", "freeze"])
def test_camera_that_stops_is_detected_and_reopened(milk_frames, mode):
    opener, cams = _opener(milk_frames[:5], [(10, mode), (None, "fail")])
    events = []
    src = open_source("sim", opener=opener, stall_timeout=0.5, reconnect_timeout=5.0, on_event=events.append)
    with src:
        stamps = []
        for f in src:
            stamps.append(f.t_capture)
            if len(stamps) >= 20:
                break
        assert src.reconnects == 1 and src.stalls == 1
    gaps = np.diff(stamps)
    # the outage (detection 0.5 s + reopen) is one gap, well under 1 s + back-off
    assert 0.4 < gaps.max() < 1.5
    assert cams[0].released.is_set()  # the dead capture was released
    assert any("stopped delivering" in e for e in events) and any("reopened" in e for e in events)


def test_camera_lost_for_good_ends_cleanly(milk_frames):
    opener, _ = _opener(milk_frames[:5], [(8, "fail")])
    src = open_source("sim", opener=opener, stall_timeout=0.3, reconnect_timeout=1.0)
    t0 = time.monotonic()
    frames = list(src)
    dt = time.monotonic() - t0
    src.close()
    assert len(frames) == 8
    assert src.end_reason == "camera lost"
    assert dt < 3.0
    assert any("lost" in e for e in src.info()["events"])


def test_camera_that_never_delivers_is_an_error(milk_frames):
    opener, _ = _opener(milk_frames[:2], [(0, "fail")])
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="delivered no frame"):
        open_source("sim", opener=opener, stall_timeout=0.3, reconnect_timeout=0.5, first_frame_timeout=1.0)
    assert time.monotonic() - t0 < 3.0


def test_sources_command_lists_and_probes(milk):
    import json as _json

    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "sources", str(milk), "--width", "320", "--height",
                        "240", "--seconds", "0.5", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = _json.loads(r.stdout)
    assert info["requested"]["width"] == 320 and info["native"]["width"] == 640
    assert info["delivered"]["width"] == 320 and info["read_frames"] > 0
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "sources"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "demo:" in r.stdout


def test_pyav_live_capture_reads_and_reopens_at_the_end_of_a_stream(milk):
    """The PyAV input used for `pyav:0` / URLs, fed a file: frames flow, and the end of the stream is a stall
    that gets reopened (as a network stream that drops would be)."""
    from b2b_stream.sources import _AvLiveCapture

    src = open_source("pyav-file", opener=lambda: _AvLiveCapture(str(milk), None, {}), stall_timeout=0.3,
                      reconnect_timeout=3.0)
    with src:
        frames = [src.read() for _ in range(60)]
        info = src.info()
    assert all(f is not None and f.image.shape == (480, 640, 3) for f in frames)
    assert info["reconnects"] >= 1 and info["properties"]["backend"] == "pyav-stream"
