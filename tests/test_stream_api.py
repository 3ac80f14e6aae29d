"""The Python API: ``for frame in b2b_stream.open(...)`` and the callback form."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import b2b_stream
from b2b_stream.api import StreamFrame

pytestmark = pytest.mark.timeout(180)  # a hang fails with stacks instead of stalling CI


@pytest.fixture(scope="module")
def milk(asl_clips):
    return next(p for p in asl_clips if p.stem == "milk")


def test_iterate_frames_with_hands(milk, hand_model):
    frames = []
    with b2b_stream.open(camera=str(milk), backend="none", track="hands", hand_model=hand_model) as stream:
        for f in stream:
            frames.append(f)
        rep = stream.report()
    assert len(frames) == 51 == rep["frames_out"]
    f = frames[10]
    assert isinstance(f, StreamFrame)
    assert f.image.dtype == np.uint8 and f.image.shape == (480, 640, 3) and f.raw.shape == f.image.shape
    assert f.index == 10 and f.latency_ms >= 0 and f.t_capture > 0
    assert sum(bool(x.hands) for x in frames) >= 40
    first = next(x for x in frames if x.hands)
    assert len(first.hands[0]["landmarks"]) == 21 and first.hands[0]["handedness"] in ("Left", "Right")


def test_custom_engine_and_early_break_stops_the_camera(milk):
    class Negate:
        backend, device = "negate", "cpu"

        def __call__(self, img):
            return 255 - img

    stream = b2b_stream.open(camera="demo", track="none", engine=Negate())
    got = []
    for f in stream:
        got.append(f)
        if len(got) == 5:
            break
    rep = stream.close()
    assert np.array_equal(got[0].image, 255 - got[0].raw)
    assert rep["backend"] == "negate" and rep["end_reason"] == "closed by the application"
    time.sleep(0.2)
    assert not any(t.name.startswith("b2b-") and t.is_alive() for t in threading.enumerate())


def test_callback_form(milk):
    seen = []

    def cb(frame):
        seen.append(frame.index)
        return len(seen) < 20  # False stops the stream

    stream = b2b_stream.open(camera=str(milk), backend="none", track="none", callback=cb)
    rep = stream.wait(30)
    assert seen == list(range(20))
    assert rep["end_reason"] == "stopped by the callback"
    with pytest.raises(TypeError, match="callback"):
        next(iter(stream))


def test_open_errors_are_clear(tmp_path):
    from b2b_train.errors import B2BError

    with pytest.raises(B2BError, match="not found"):
        b2b_stream.open(camera=str(tmp_path / "nope.mp4"), backend="none", track="none")
    with pytest.raises(B2BError, match="track"):
        b2b_stream.open(camera="demo", backend="none", track="faces")
