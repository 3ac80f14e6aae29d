"""The threaded pipeline: drops, bounded latency and memory, faults, clean shutdown, the run command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from b2b_stream.cli import main
from b2b_stream.pipeline import _END, Item, Pipeline, Slot
from b2b_stream.sinks import CallbackSink, JsonlSink, SlowSink, VideoSink
from b2b_stream.sources import SourceError, open_source
from doubles import SimulatedCamera

pytestmark = pytest.mark.timeout(180)  # a hang fails with stacks instead of stalling CI

REPORT_KEYS = {"frames_in", "frames_out", "dropped", "fps", "latency_ms", "stages_ms", "backend", "device",
               "hands_detected_frames"}


def _decode_count(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope="module")
def milk(asl_clips) -> Path:
    return next(p for p in asl_clips if p.stem == "milk")


class SlowEngine:
    backend = "test-slow"
    device = "cpu"

    def __init__(self, delay):
        self.delay = delay
        self.calls = 0

    def __call__(self, img):
        time.sleep(self.delay)
        self.calls += 1
        return 255 - img  # visibly processed


class FakeGpuEngine:
    """An engine shaped like a CUDA one: submit() costs ``host_s`` of this thread's time, then the
    'device' (one worker thread, in submission order) takes ``device_s``; async_depth 2."""

    backend = "test-async"
    device = "fake-gpu"

    def __init__(self, host_s, device_s, depth=2):
        from concurrent.futures import ThreadPoolExecutor

        self.host_s, self.device_s, self.async_depth = host_s, device_s, depth
        self.pool = ThreadPoolExecutor(1)
        self.most_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()  # the count changes in the caller's thread and the 'device' thread

    def _device(self, img):
        time.sleep(self.device_s)
        with self._lock:
            self._in_flight -= 1
        return 255 - img

    def submit(self, img):
        time.sleep(self.host_s)
        with self._lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        return self.pool.submit(self._device, img)  # a Future: .result(), like engines.Pending

    def __call__(self, img):
        return self.submit(img).result()


# ---------------------------------------------------------------------------------------- slots


def test_slot_latest_drops_the_oldest_and_counts():
    s = Slot(2, "latest")
    for i in range(5):
        assert s.put(i)
    assert s.dropped == 3 and len(s) == 2
    assert s.get(0) == 3 and s.get(0) == 4
    assert s.get(0.01) is None
    s.close()
    assert s.get(0) is _END and not s.put(9)


def test_slot_block_waits_for_room_and_abort_wakes_it():
    s = Slot(1, "block")
    s.put("a")
    done = threading.Event()
    threading.Thread(target=lambda: (s.put("b"), done.set()), daemon=True).start()
    assert not done.wait(0.2)  # blocked: no room
    assert s.get(1) == "a"
    assert done.wait(1) and s.get(1) == "b" and s.dropped == 0
    threading.Thread(target=lambda: (s.put("c"), s.put("d")), daemon=True).start()
    time.sleep(0.1)
    assert s.abort() == 1 and s.get(0) is _END


# ---------------------------------------------------------------------------------------- pipeline


def test_file_is_processed_frame_by_frame_without_drops(milk):
    src = open_source(str(milk))
    seen = []
    pipe = Pipeline(src, SlowEngine(0.005), None, [CallbackSink(lambda it: seen.append(it))], status=False)
    rep = pipe.run()
    assert REPORT_KEYS <= set(rep)
    assert rep["frames_in"] == rep["frames_out"] == 51 and rep["dropped"] == 0
    assert [it.index for it in seen] == list(range(51))
    assert np.array_equal(seen[0].image, 255 - seen[0].raw)
    assert rep["backend"] == "test-slow" and rep["end_reason"] == "end of input"
    assert rep["stages_ms"]["infer"] >= 5.0 and rep["stages_ms"]["track"] == 0.0
    assert rep["threads"]["end"] <= rep["threads"]["start"]


def test_async_engine_overlaps_host_and_device_work_keeping_order(milk):
    """Depth 2 (a CUDA engine): the next frame's upload overlaps the current frame's compute, so a
    file runs at the device's pace (30 ms) instead of host + device (45 ms); nothing lost or reordered."""
    runs = {}
    for depth in (1, 2):
        eng = FakeGpuEngine(0.015, 0.030, depth)
        seen = []
        pipe = Pipeline(open_source(str(milk)), eng, None, [CallbackSink(lambda it, s=seen: s.append(it))], status=False)
        t0 = time.monotonic()
        rep = pipe.run()
        runs[depth] = (time.monotonic() - t0, rep, seen, eng.most_in_flight)
    for depth, (_wall, rep, seen, most) in runs.items():
        assert rep["frames_in"] == rep["frames_out"] == 51 and rep["dropped"] == 0
        assert [it.index for it in seen] == list(range(51))
        assert all(np.array_equal(it.image, 255 - it.raw) for it in seen)
        assert most == depth
    assert runs[1][0] / runs[2][0] > 1.25, {d: round(r[0], 2) for d, r in runs.items()}


def test_async_engine_adds_no_latency_when_the_camera_is_slower(milk):
    """Frames every 33 ms, engine 5 + 15 ms: each frame leaves when done, never waiting for the next."""
    eng = FakeGpuEngine(0.005, 0.015)
    src = open_source(str(milk), realtime=True)
    rep = Pipeline(src, eng, None, [], status=False, max_frames=30).run()
    assert rep["frames_out"] >= 25
    assert rep["stages_ms"]["infer"] < 30.0, rep["stages_ms"]


def test_slow_sink_drops_oldest_keeps_latency_and_memory_bounded(milk):
    """A looping realtime clip (30 fps) into a sink 4x too slow: drops counted, latency bounded."""
    src = open_source(str(milk), realtime=True, loop=True)
    slow = SlowSink(0.12)
    rss = []
    pipe = Pipeline(src, SlowEngine(0.002), None, [slow], max_frames=120, status=False)
    pipe.on_item = lambda it: rss.append(__import__("b2b_stream.pipeline", fromlist=["rss_mb"]).rss_mb())
    rep = pipe.run()
    assert rep["policy"] == "latest"
    assert rep["frames_in"] == 120
    assert rep["dropped"] > 40  # most frames could not be shown and were dropped, oldest first
    assert rep["frames_in"] == rep["frames_out"] + rep["dropped"] + rep["discarded_at_stop"]
    assert rep["dropped_by_stage"]["output"] > 0
    # latency stays near one sink period instead of growing with the backlog
    assert rep["latency_ms"]["p95"] < 600, rep["latency_ms"]
    assert 5 < rep["fps"] < 12
    if rss[0] is not None:
        assert max(rss) - rss[0] < 50  # MB: no frame backlog accumulates


def test_engine_error_stops_everything_and_closes_files(milk, tmp_path):
    class Boom:
        backend, device = "boom", "cpu"
        n = 0

        def __call__(self, img):
            self.n += 1
            if self.n == 10:
                raise RuntimeError("engine exploded")
            return img

    jsonl = tmp_path / "h.jsonl"
    mp4 = tmp_path / "o.mp4"
    pipe = Pipeline(open_source(str(milk)), Boom(), None, [JsonlSink(jsonl), VideoSink(mp4, 30)], status=False,
                    report_path=tmp_path / "r.json")
    with pytest.raises(RuntimeError, match="exploded"):
        pipe.run()
    rep = json.loads((tmp_path / "r.json").read_text())
    assert "error in infer" in rep["end_reason"]
    lines = jsonl.read_text().splitlines()
    assert 1 <= len(lines) <= 9 and all(json.loads(ln)["hands"] == [] for ln in lines)
    assert _decode_count(mp4) == len(lines)
    assert not any(t.name.startswith("b2b-") and t.is_alive() for t in threading.enumerate())


def _sim_opener(frames, plan):
    cams = []

    def opener():
        if len(cams) >= len(plan):
            raise SourceError("camera unplugged")
        cams.append(SimulatedCamera(frames, fps=50, fail_after=plan[len(cams)]))
        return cams[-1]

    return opener


def test_camera_dying_mid_run_is_reopened_and_the_run_goes_on(milk):
    with av.open(str(milk)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(5), c.decode(video=0))]
    src = open_source("sim", opener=_sim_opener(frames, [15, None]), stall_timeout=0.4, reconnect_timeout=5)
    rep = Pipeline(src, SlowEngine(0.001), None, [], max_frames=40, status=False).run()
    assert rep["frames_in"] == 40 and rep["frames_out"] >= 30
    assert rep["source"]["reconnects"] == 1
    assert any("reopened" in e for e in rep["source"]["events"])
    assert rep["latency_ms"]["p95"] < 500


def test_camera_lost_ends_the_run_cleanly_with_outputs_closed(milk, tmp_path):
    with av.open(str(milk)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(5), c.decode(video=0))]
    src = open_source("sim", opener=_sim_opener(frames, [12]), stall_timeout=0.3, reconnect_timeout=1.0)
    mp4 = tmp_path / "lost.mp4"
    t0 = time.monotonic()
    rep = Pipeline(src, SlowEngine(0.001), None, [VideoSink(mp4, 50), JsonlSink(tmp_path / "l.jsonl")],
                   status=False).run()
    assert time.monotonic() - t0 < 4
    assert rep["end_reason"] == "camera lost"
    assert rep["frames_in"] + rep["source_skipped"] == 12, rep
    assert rep["frames_in"] == rep["frames_out"] + rep["dropped"], rep
    assert rep["frames_out"] >= 1 and _decode_count(mp4) == rep["frames_out"]
    assert len((tmp_path / "l.jsonl").read_text().splitlines()) == rep["frames_out"]


def test_ctrl_c_in_the_output_stage_shuts_down_cleanly(milk, tmp_path):
    def interrupt_after_10(item):
        if item.index == 10:
            raise KeyboardInterrupt

    mp4 = tmp_path / "c.mp4"
    pipe = Pipeline(open_source("demo"), SlowEngine(0.001), None,
                    [VideoSink(mp4, 30), CallbackSink(interrupt_after_10)], status=False)
    rep = pipe.run()  # no exception: Ctrl-C is a normal way to stop
    assert rep["end_reason"].startswith("interrupted")
    # the video sink had already written the frame whose callback raised
    assert _decode_count(mp4) == rep["frames_out"] + 1 and rep["frames_out"] >= 3
    assert not any(t.name.startswith("b2b-") and t.is_alive() for t in threading.enumerate())


# ---------------------------------------------------------------------------------------- run CLI


def test_run_on_asl_clip_with_tracking_writes_video_landmarks_report(milk, tmp_path, hand_model, capsys):
    out, lm, rp = tmp_path / "o.mp4", tmp_path / "h.jsonl", tmp_path / "r.json"
    main(["run", "--camera", str(milk), "--backend", "none", "--track", "hands", "--hand-model", str(hand_model),
          "--out", str(out), "--landmarks", str(lm), "--report", str(rp), "--quiet"])
    rep = json.loads(rp.read_text())
    assert REPORT_KEYS <= set(rep)
    assert set(rep["latency_ms"]) >= {"p50", "p95"} and set(rep["stages_ms"]) >= {"capture", "infer", "track"}
    assert rep["frames_in"] == rep["frames_out"] == 51 and rep["dropped"] == 0
    assert rep["stages_ms"]["track"] > 0 and rep["fps"] > 0
    with av.open(str(out)) as c:
        frames = [f for f in c.decode(video=0)]
        assert (frames[0].width, frames[0].height) == (640, 480)
    assert len(frames) == 51
    assert float(frames[-1].time) == pytest.approx(50 / 30.0, abs=0.05)  # native pace, not capture pace
    recs = [json.loads(ln) for ln in lm.read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(51))
    assert all(set(r) >= {"t", "frame", "hands"} for r in recs)
    with_hands = [r for r in recs if r["hands"]]
    assert len(with_hands) >= 0.8 * len(recs) and rep["hands_detected_frames"] == len(with_hands)
    h = with_hands[0]["hands"][0]
    assert set(h) == {"handedness", "score", "landmarks"} and len(h["landmarks"]) == 21
    assert "51/51 frames out" in capsys.readouterr().out


def test_run_through_the_fused_engine(milk, tmp_path, b2b_home, monkeypatch):
    """`run` builds its engine with b2b_stream.engines (a tiny NAFNet as the default deblurrer here)."""
    pytest.importorskip("b2b_stream.engines")
    from b2b_train.nets import registry

    tiny = tmp_path / "tiny.safetensors"
    registry.save_network(tiny, registry.build("nafnet-tiny"), "nafnet-tiny", {})
    monkeypatch.setenv("B2B_DEFAULT_DEBLURRER", str(tiny))
    rp, out = tmp_path / "r.json", tmp_path / "o.mp4"
    main(["run", "--camera", str(milk), "--frames", "4", "--width", "96", "--height", "64", "--track", "none",
          "--backend", "torch", "--out", str(out), "--report", str(rp), "--quiet"])
    rep = json.loads(rp.read_text())
    assert rep["frames_out"] == 4 and rep["backend"] == "torch" and rep["device"] == "cpu"
    assert rep["stages_ms"]["infer"] > 0
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (64, 96, 3)


def test_kill9_during_run_leaves_a_playable_mp4(tmp_path):
    out = tmp_path / "k.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "demo", "--backend", "none",
                             "--track", "none", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 150_000):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert _decode_count(out) >= 30  # fragmented MP4: every finished 1 s fragment plays


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_run_with_a_signal_closes_outputs_and_writes_the_report(tmp_path, sig):
    out, lm, rp = tmp_path / "s.mp4", tmp_path / "s.jsonl", tmp_path / "s.json"
    proc = subprocess.Popen([sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "demo", "--backend", "none",
                             "--track", "none", "--out", str(out), "--landmarks", str(lm), "--report", str(rp),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (not lm.exists() or len(lm.read_text().splitlines()) < 20):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    rep = json.loads(rp.read_text())
    assert rep["end_reason"].startswith("interrupted")
    assert _decode_count(out) == rep["frames_out"] == len(lm.read_text().splitlines()) >= 20
    assert "frames out" in stdout


def test_show_without_display_is_one_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "demo", "--show", "--track", "none"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--show needs a display" in r.stderr


def test_show_under_xvfb(tmp_path, xvfb_display):
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "demo", "--show", "--backend",
                        "none", "--track", "none", "--frames", "30", "--report", str(tmp_path / "r.json")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert "window" in rep["sinks"] and rep["frames_out"] == 30 - rep["dropped"] > 0


def test_window_composes_raw_and_deblurred_with_hands_and_stats(milk):
    from b2b_stream.sinks import WindowSink

    with av.open(str(milk)) as c:
        raw = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    sink = WindowSink.__new__(WindowSink)  # compose() needs no display
    sink.draw, sink.stats = True, lambda: ["12.0 fps", "drops 3"]
    hand = {"handedness": "Left", "score": 0.9, "landmarks": [[0.75, 0.2 + 0.02 * i, 0.0] for i in range(21)]}
    item = Item(0, 0.0, raw, image=255 - raw, hands=[hand])
    img = sink.compose(item)
    assert img.shape == (480, 1280, 3)
    assert np.array_equal(img[200:, :640], raw[200:])  # left: raw (below the stats box)
    right = img[:, 640:]
    assert not np.array_equal(right[60:, :], (255 - raw)[60:, :])  # hands drawn on the deblurred half
    assert np.array_equal(right[300:, :300], (255 - raw)[300:, :300])  # ... and nowhere else
    assert not np.array_equal(img[:30, :120], raw[:30, :120])  # stats box in the corner


def test_virtual_cam_without_pyvirtualcam_says_so(tmp_path):
    try:
        import pyvirtualcam  # noqa: F401
        pytest.skip("pyvirtualcam is installed here")
    except ImportError:
        pass
    r = subprocess.run([sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "demo", "--virtual-cam",
                        "--backend", "none", "--track", "none", "--frames", "5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pyvirtualcam" in r.stderr.strip().splitlines()[-1]


def test_inference_threads_leave_a_core_for_tracking_on_small_cpus(monkeypatch):
    import torch

    from b2b_stream import pipeline as P

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(P.os, "cpu_count", lambda: 2)
        said = []
        assert P.set_inference_threads("hands", "cpu", say=said.append) == 1
        assert torch.get_num_threads() == 1 and "1 of 2 cores" in said[0]
        assert P.set_inference_threads("none", "cpu") is None  # no tracking: all cores to inference
        monkeypatch.setattr(P.os, "cpu_count", lambda: 16)
        assert P.set_inference_threads("hands", "cpu") is None  # plenty of cores: torch's default
        monkeypatch.setattr(P.os, "cpu_count", lambda: 4)
        monkeypatch.setenv("OMP_NUM_THREADS", "4")
        assert P.set_inference_threads("hands", "cpu") is None  # the user's setting wins
    finally:
        torch.set_num_threads(before)
