"""The run job assembled once (``b2b_stream.api.open_pipeline``, used by ``b2b-stream run`` and
``b2b_stream.open``), the pipeline closing what it owns, and the typed run report's JSON."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import b2b_stream.engines
import b2b_stream.sources
from b2b_stream.api import open_pipeline
from b2b_stream.pipeline import IdentityEngine, Pipeline
from b2b_stream.profile import Profile
from b2b_stream.report import RunReport
from b2b_train.errors import B2BError

# The report's keys, in the order --report writes them (and the fixed sections' keys).
REPORT_KEYS = [
    "frames_in", "frames_out", "dropped", "dropped_by_stage", "discarded_at_stop", "source_skipped", "fps",
    "duration_s", "latency_ms", "stages_ms", "stages_ms_p95", "stage_notes", "backend", "device", "precision",
    "engine", "roi", "tracking", "hands_detected_frames", "policy", "slot_size", "end_reason", "error", "source",
    "sinks", "rss_mb", "open_fds", "threads", "started_at",
]
SECTION_KEYS = {
    "latency_ms": ["p50", "p95", "mean", "max"],
    "stages_ms": ["capture", "infer", "track", "output"],
    "stages_ms_p95": ["capture", "infer", "track", "output"],
    "stage_notes": ["capture", "output"],
    "rss_mb": ["start", "peak", "end"],
    "open_fds": ["start", "end"],
    "threads": ["start", "end"],
}


class Closing:
    """Something the job opens: records that it was closed."""

    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


class OwnedEngine(IdentityEngine):
    def __init__(self):
        super().__init__("test engine")
        self.closed = 0

    def close(self):
        self.closed += 1


class FakeSource(Closing):
    """Three grey frames as a file would give them."""

    width, height, fps, live = 32, 24, 30.0, False

    def __init__(self, n=3):
        super().__init__()
        self.n, self.i = n, 0

    def read(self):
        if self.i >= self.n or self.closed:
            return None
        from b2b_stream.sources import Frame

        self.i += 1
        return Frame(self.i - 1, time.monotonic(), np.full((24, 32, 3), 128, np.uint8))

    def describe(self):
        return "fake"

    def info(self):
        return {"kind": "fake"}


def test_report_round_trips_to_the_exact_json_keys(tmp_path):
    path = tmp_path / "r.json"
    pipe = open_pipeline("demo", backend="none", track="none", max_frames=3, report_path=path)
    rep = pipe.run()
    assert isinstance(rep, RunReport)
    text = path.read_text()
    data = json.loads(text)
    assert list(data) == REPORT_KEYS == list(rep)
    for key, keys in SECTION_KEYS.items():
        assert list(data[key]) == keys, key
    assert text == rep.to_json()
    again = RunReport.from_dict(data)
    assert again.to_json() == text and again.to_dict() == data
    # it reads like the JSON object it is written as
    assert rep["frames_out"] == rep.frames_out == 3 and rep.get("end_reason") == "--frames 3 reached"
    assert dict(rep) == rep.to_dict() and "latency_ms" in rep and "nope" not in rep
    with pytest.raises(KeyError):
        rep["nope"]
    with pytest.raises(ValueError, match="unknown"):
        RunReport.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="missing"):
        RunReport.from_dict({k: v for k, v in data.items() if k != "fps"})


def test_the_profile_object_is_opened_once_and_passed_through(b2b_home, monkeypatch):
    Profile.open("cam", home=b2b_home, create=True)
    opened, given = [], []
    real_open = Profile.open.__func__

    def counting_open(cls, name, home=None, create=False):
        opened.append(name)
        return real_open(cls, name, home, create)

    def fake_get_engine(profile=None, **kwargs):
        given.append(profile)
        return OwnedEngine()

    monkeypatch.setattr(Profile, "open", classmethod(counting_open))
    monkeypatch.setattr(b2b_stream.engines, "get_engine", fake_get_engine)
    monkeypatch.setattr(b2b_stream.sources, "open_source", lambda *a, **k: FakeSource())
    pipe = open_pipeline("fake", "cam", "torch", "none", home=b2b_home)
    pipe.run()
    assert opened == ["cam"]
    assert len(given) == 1 and isinstance(given[0], Profile) and given[0].name == "cam"
    assert pipe.engine.closed == 1  # built by the job, so the pipeline closed it


def test_a_failing_step_closes_what_the_job_had_opened(monkeypatch):
    engines, sources = [], []

    def fake_get_engine(profile=None, **kwargs):
        engines.append(OwnedEngine())
        return engines[-1]

    def fake_open_source(*a, **k):
        sources.append(FakeSource())
        return sources[-1]

    monkeypatch.setattr(b2b_stream.engines, "get_engine", fake_get_engine)
    monkeypatch.setattr(b2b_stream.sources, "open_source", fake_open_source)
    with pytest.raises(B2BError, match="track"):
        open_pipeline("fake", None, "torch", "faces")  # fails after the source and engine are open
    assert sources[0].closed == 1 and engines[0].closed == 1
    # a given engine is the caller's: left open
    mine = OwnedEngine()
    with pytest.raises(B2BError, match="track"):
        open_pipeline("fake", None, "torch", "faces", engine=mine)
    assert sources[1].closed == 1 and mine.closed == 0


def test_lite_is_refused_before_the_camera_opens(b2b_home, monkeypatch):
    monkeypatch.setattr(b2b_stream.sources, "open_source", lambda *a, **k: pytest.fail("camera opened"))
    with pytest.raises(B2BError, match="give --profile NAME"):
        open_pipeline("demo", None, "none", "none", lite=True)
    Profile.open("cam", home=b2b_home, create=True)
    with pytest.raises(B2BError, match="b2b-stream calibrate --profile cam --lite"):
        open_pipeline("demo", "cam", "torch", "none", lite=True, home=b2b_home)


def test_pipeline_closes_an_engine_it_owns_and_everything_when_it_never_runs():
    shared = OwnedEngine()
    Pipeline(FakeSource(), shared, None, [], status=False).run()
    assert shared.closed == 0  # not the pipeline's
    owned = OwnedEngine()
    src, sink, tracker = FakeSource(), Closing(), Closing()
    sink.write = lambda item: None
    tracker.track = lambda image, t: []
    pipe = Pipeline(src, owned, tracker, [sink], status=False, close_engine=True)
    pipe.close()
    assert (src.closed, sink.closed, tracker.closed, owned.closed) == (1, 1, 1, 1)
    pipe.close()  # once only
    assert owned.closed == 1
