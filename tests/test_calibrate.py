"""record -> calibrate (tiny) -> run, end to end through the real command lines, on real ASL clips.

The camera is a video file (a valid source); the clips are recorded into a profile, calibration trains
a few translator iterations, builds the engine and evaluates, and ``run`` produces a playable video,
landmarks with hands and a report with the contract's fields.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "schedule.iters=3",
    "data.crop=64",
    "model.discriminator_kwargs.n_layers=2",
    "data.batch=2",
    "data.frame_step=4",
    "data.val_images=2",
    "data.val_size=96",
    "train.ckpt_every=2",
    "train.val_every=3",
]


def _cli(args: list[str], env: dict, cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent
    tool = args[0]
    cmd = [str(exe / tool)] + args[1:]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def env(b2b_home, tmp_path):
    e = dict(os.environ)
    e["B2B_HOME"] = str(b2b_home)
    e["B2B_CACHE"] = str(tmp_path / "cache")  # no VGG weights: the trainer says so and goes on
    e["OMP_NUM_THREADS"] = "1"
    e.pop("B2B_HAND_MODEL", None)  # the empty cache above: hand tracking uses the shipped model
    return e


def test_calibrate_says_what_is_missing(env, b2b_home, asl_clips):
    r = _cli(["b2b-stream", "record", "--camera", str(asl_clips[0]), "--label", "blurry", "--profile", "cam", "--no-preview"], env, b2b_home)
    assert r.returncode == 0, r.stderr
    r = _cli(["b2b-stream", "calibrate", "--camera", "0", "--profile", "cam"], env, b2b_home)
    assert r.returncode == 2
    err = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(err) == 1 and "no sharp clips" in err[0] and "--label sharp --profile cam" in err[0], r.stderr
    assert "Traceback" not in r.stderr
    r = _cli(["b2b-stream", "calibrate", "--profile", "nosuch"], env, b2b_home)
    assert r.returncode == 2 and "no profile 'nosuch'" in r.stderr


def test_record_calibrate_run_end_to_end(env, b2b_home, asl_clips, hand_model):
    import av

    from b2b_stream.profile import Profile

    by_name = {p.stem: p for p in asl_clips}
    for clip, label in ((by_name["milk"], "blurry"), (by_name["help"], "blurry"), (by_name["book"], "sharp")):
        r = _cli(["b2b-stream", "record", "--camera", str(clip), "--label", label, "--profile", "cam", "--no-preview"], env, b2b_home)
        assert r.returncode == 0, r.stderr

    r = _cli(["b2b-stream", "calibrate", "--camera", "clip.mkv", "--profile", "cam", "--eval-frames", "4",
              "--backend", "torch", "--probe-steps", "10", *TINY], env, b2b_home, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    prof = Profile.open("cam", home=b2b_home)
    assert prof.translator_path.is_file()
    report = json.loads(prof.report_path.read_text())
    assert report["material"]["blurry"]["clips"] == 2 and report["material"]["sharp"]["clips"] == 1
    assert report["engine"]["backend"] == "torch" and report["engine"]["size"] == [640, 480]
    ev = report["evaluation"]
    assert ev["n_images"] == 4
    assert all(ev["sharpness"][k] > 0 for k in ("input", "deblur_only", "b2b"))
    hands = report["hand_detection_rate"]
    assert hands["frames"] == 4 and 0.0 <= hands["b2b"] <= 1.0 and hands["raw"] > 0.5  # ASL clips show hands
    assert report["samples"] and Path(report["samples"][0]).is_file()
    assert "frames with hands" in r.stderr + r.stdout
    # the probe chose the known blur's extent, and the translator trained with it
    probe = report["probe"]
    assert set(probe["candidates"]) == {"3-7 px", "3-11 px", "3-15 px"} and probe["chosen"] in probe["candidates"]
    assert all(0.0 <= c["auc"] <= 1.0 for c in probe["candidates"].values()) and 0.0 <= probe["auc_b_vs_s"] <= 1.0
    lo, hi = probe["extent"]
    assert f"{lo:g}-{hi:g} px" in report["translator"]["meta"]["provenance"]["known"]
    assert "known blur vs blurry AUC" in r.stderr + r.stdout
    vgg = report["translator"]["meta"]["provenance"]["vgg_weights"]
    assert any("random VGG" in w for w in report["warnings"]) == (vgg == "random")

    # Rerunning continues (nothing to train: the run is complete) and rebuilds nothing.
    r2 = _cli(["b2b-stream", "calibrate", "--profile", "cam", "--eval-frames", "2", "--backend", "torch",
               "--probe-steps", "10", *TINY], env, b2b_home, timeout=900)
    assert r2.returncode == 0, r2.stderr
    assert "probe: reusing" in r2.stderr + r2.stdout  # same material: same K, so the run resumes

    out, lm, rep = b2b_home / "out.mp4", b2b_home / "hands.jsonl", b2b_home / "run.json"
    r = _cli(["b2b-stream", "run", "--camera", str(by_name["milk"]), "--profile", "cam", "--backend", "torch",
              "--width", "320", "--height", "240", "--frames", "24",
              "--out", str(out), "--landmarks", str(lm), "--report", str(rep), "--quiet"], env, b2b_home, timeout=600)
    assert r.returncode == 0, r.stderr
    run = json.loads(rep.read_text())
    for key in ("frames_in", "frames_out", "dropped", "fps", "latency_ms", "stages_ms", "backend", "device", "hands_detected_frames"):
        assert key in run, key
    assert run["frames_out"] == run["frames_in"] == 24 and run["dropped"] == 0
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert n == 24
    lines = [json.loads(x) for x in lm.read_text().splitlines()]
    assert len(lines) == 24 and sum(bool(x["hands"]) for x in lines) >= 12
    assert all(len(h["landmarks"]) == 21 for x in lines for h in x["hands"])


def test_verdict_warns_when_the_translator_hurts_or_the_material_is_weak():
    from b2b_stream.calibrate import _verdict

    meta = {"provenance": {"vgg_weights": "/w/vgg16.pth", "known_match": {"note": "the blurry frames are barely blurrier"}}}
    assert _verdict(meta, {"frames": 10, "raw": 0.9, "deblur_only": 0.8, "b2b": 0.8}) == ["the blurry frames are barely blurrier"]
    worse = _verdict({"provenance": {"vgg_weights": "random"}}, {"frames": 10, "raw": 0.9, "deblur_only": 0.8, "b2b": 0.6})
    assert len(worse) == 2 and "random VGG" in worse[0] and "60%" in worse[1] and "80%" in worse[1]
    assert _verdict({}, None) == [] and _verdict({}, {"frames": 10, "deblur_only": 0.8, "b2b": 0.78}) == []
    probe = {"chosen": "3-7 px", "note": "", "candidates": {"3-7 px": {"auc": 0.51}, "3-11 px": {"auc": 0.7}}}
    said = _verdict({}, None, probe=probe)
    assert len(said) == 1 and "already looks like the known blur" in said[0] and "0.51" in said[0]
    probe["candidates"]["3-7 px"]["auc"] = 0.68
    assert _verdict({}, None, probe=probe) == []
