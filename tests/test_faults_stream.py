"""Stream faults through ``b2b-stream run``: a camera that freezes, disappears and comes back.

The real ``run`` command is driven in-process with its source replaced by a
:class:`doubles.SimulatedCamera` scenario (no hardware): the camera freezes (a hung
driver: ``read()`` blocks), then cannot be opened for a while (unplugged), then comes back; later it
stops delivering again (returns no frame) and comes back again. The run must report each outage on
stderr, reopen the camera, keep going to ``--frames``, exit 0 and leave a playable video and a
report that counts the stalls and reconnects. A camera that never comes back ends the run with one
clear line, exit 2, and outputs closed and playable.

Covered elsewhere, not repeated: kill -9 / SIGINT / SIGTERM during ``record`` and ``run`` and a full
disk while recording (``test_record.py``, ``test_pipeline.py``), stall detection at the source level
(``test_sources.py``), slow sink / bounded memory (``test_pipeline.py``, ``benchmarks/soak.py``).
"""

from __future__ import annotations

import json
import threading

import av
import pytest

import b2b_stream.sources as sources
from b2b_stream.sources import SourceError
from doubles import SimulatedCamera

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def frames(asl_clips):
    with av.open(str(asl_clips[0])) as c:
        return [f.to_ndarray(format="rgb24")[::4, ::4].copy() for _, f in zip(range(6), c.decode(video=0))]


def _scenario(frames, plan):
    """An opener following ``plan``: ("cam", fail_after, mode) gives a camera, "gone" raises (unplugged)."""
    log = []

    def opener():
        if not plan:
            log.append("gone")
            raise SourceError("camera unplugged")
        step = plan.pop(0)
        if step == "gone":
            log.append("gone")
            raise SourceError("camera unplugged")
        _, fail_after, mode = step
        log.append(mode)
        return SimulatedCamera(frames, fps=50, fail_after=fail_after, mode=mode)

    return opener, log


def _patch_source(monkeypatch, opener):
    real = sources.open_source

    def fake(spec, *args, **kwargs):
        if spec == "sim":
            keep = {k: kwargs[k] for k in ("stall_timeout", "reconnect_timeout", "on_event") if k in kwargs}
            return real("sim", opener=opener, **keep)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(sources, "open_source", fake)


def _run(argv, capfd):
    from b2b_stream.cli import main

    capfd.readouterr()
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capfd.readouterr()
    return code, out.out, out.err


def _decoded(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_camera_freezes_disappears_and_comes_back_twice(frames, tmp_path, monkeypatch, capfd):
    plan = [("cam", 15, "freeze"), "gone", "gone", ("cam", 15, "fail"), "gone", ("cam", None, "fail")]
    opener, log = _scenario(frames, plan)
    _patch_source(monkeypatch, opener)
    code, out, err = _run(["run", "--camera", "sim", "--backend", "none", "--track", "none", "--frames", "45",
                           "--quiet", "--out", str(tmp_path / "o.mp4"), "--report", str(tmp_path / "r.json"),
                           "--set", "stall_timeout_s=0.4", "--set", "reconnect_timeout_s=8"], capfd)
    assert code == 0, err
    assert "Traceback" not in err
    assert log[:6] == ["freeze", "gone", "gone", "fail", "gone", "fail"]  # every phase was played
    # each outage is reported as it happens
    assert err.count("stopped delivering") == 2, err
    assert err.count("reopened") == 2, err
    assert "reopen attempt" in err and "camera unplugged" in err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["frames_in"] == 45 and rep["end_reason"] != "camera lost"
    assert rep["source"]["stalls"] == 2 and rep["source"]["reconnects"] == 2
    assert rep["frames_out"] + rep["dropped"] + rep.get("discarded_at_stop", 0) == rep["frames_in"]
    assert _decoded(tmp_path / "o.mp4") == rep["frames_out"] >= 40
    assert not any(t.name.startswith("b2b-grab") and t.is_alive() for t in threading.enumerate())


def test_camera_that_never_comes_back_ends_with_one_line_and_playable_outputs(frames, tmp_path, monkeypatch, capfd):
    opener, log = _scenario(frames, [("cam", 12, "freeze")])
    _patch_source(monkeypatch, opener)
    code, out, err = _run(["run", "--camera", "sim", "--backend", "none", "--track", "none", "--quiet",
                           "--out", str(tmp_path / "o.mp4"), "--landmarks", str(tmp_path / "l.jsonl"),
                           "--report", str(tmp_path / "r.json"),
                           "--set", "stall_timeout_s=0.3", "--set", "reconnect_timeout_s=1.2"], capfd)
    assert code == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "was lost" in errors[0] and "Traceback" not in err, err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["end_reason"] == "camera lost"
    assert _decoded(tmp_path / "o.mp4") == rep["frames_out"] >= 1
    assert len((tmp_path / "l.jsonl").read_text().splitlines()) == rep["frames_out"]
    assert "gone" in log
