"""The lite student: deblurrer∘translator distilled into one network, and ``--lite`` profiles.

Real frames of an ASL clip (downsized so each test takes seconds on one core); the teacher is a tiny
MIMO-UNet translator + a tiny NAFNet deblurrer (random weights: the student must learn the mapping
the two compute, whatever it is).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from b2b_train.errors import B2BError, CheckpointError, DataError
from b2b_train.nets import registry

TR_KW = {"base_channel": 8, "num_res": 1}
FAST = dict(crop=48, batch=4, lr=1e-3, val_frames=3, val_every=1000, progress=False, log=None)


@pytest.fixture(scope="module")
def frames(asl_clips):
    import cv2

    from b2b_train.data.io import iter_video_frames

    clip = next(p for p in asl_clips if p.stem == "milk")
    return [np.ascontiguousarray(cv2.resize(img, (96, 72), interpolation=cv2.INTER_AREA))
            for _, _, img in iter_video_frames(clip, step=3, max_frames=12)]


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A tiny translator and deblurrer saved as our files: (translator path, deblurrer path)."""
    d = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    tr = registry.build("mimo-unet", **TR_KW)
    db = registry.build("nafnet-tiny")
    registry.save_network(d / "translator.safetensors", tr, "mimo-unet", TR_KW, kind="translator")
    registry.save_network(d / "deblurrer.safetensors", db, "nafnet-tiny", {}, kind="deblurrer")
    return d / "translator.safetensors", d / "deblurrer.safetensors"


def test_student_gets_closer_to_the_teacher_than_the_deblurrer(frames, nets, tmp_path, one_torch_thread):
    from b2b_train.distill import distill, teacher_fn
    from b2b_train.metrics import psnr
    from b2b_train.data.io import to_tensor
    from b2b_train.nets.translator_io import load_translator

    tr_path, db_path = nets
    res = distill(tr_path, db_path, frames, tmp_path / "run", iters=30, **FAST)
    assert res["done"] and res["steps"] == 30 and res["net"] == "nafnet-tiny"
    assert res["frames"] == {"train": 7, "val": 3, "size": [96, 72]}  # 12 frames: 7 | gap 2 | 3 held apart
    # the student starts as the deblurrer; distillation must bring it measurably closer to the teacher
    assert res["psnr_student"] > res["psnr_baseline"] + 3.0, res

    student, meta = registry.load_from_file(res["weights"])
    assert meta["net"] == "nafnet-tiny" and meta["lite"] is True
    assert meta["distillation"]["psnr_student"] == res["psnr_student"]
    # recompute the reported number independently on the held-apart frames (the last three)
    teacher = teacher_fn(load_translator(tr_path), registry.load_from_file(db_path)[0])
    with torch.no_grad():
        vals = []
        for f in frames[-3:]:
            x = to_tensor(f)[None]
            t = (teacher(x) * 255).round() / 255  # the teacher's targets are cached as 8-bit frames
            vals.append(psnr(student(x).clamp(0, 1), t))
    assert abs(np.mean(vals) - res["psnr_student"]) < 0.05
    log = (tmp_path / "run" / "log.csv").read_text()
    assert "val_psnr" in log and (tmp_path / "run" / "teacher.safetensors").is_file()


def test_pairs_stay_aligned_under_crops_and_flips(frames):
    from b2b_train.distill import PairSampler

    inv = [255 - f for f in frames]
    s = PairSampler(frames, inv, crop=40, seed=3)
    for _ in range(4):
        x, t = s.batch(4)
        assert x.shape == t.shape == (4, 3, 40, 40)
        assert torch.allclose(x + t, torch.ones_like(x), atol=1e-6)  # every crop and flip hit both alike
    assert PairSampler(frames, inv, crop=500, seed=0).crop == 72  # never larger than the frames


def test_resume_equals_uninterrupted(frames, nets, tmp_path, one_torch_thread):
    from b2b_train.distill import distill

    tr_path, db_path = nets
    kw = dict(FAST, iters=6, ckpt_every=2)
    a = distill(tr_path, db_path, frames, tmp_path / "a", **kw)
    part = distill(tr_path, db_path, frames, tmp_path / "b", stop_at=3, **kw)
    assert not part["done"] and part["steps"] == 3 and part["weights"].endswith("ckpt_00000003.safetensors")
    b = distill(tr_path, db_path, frames, tmp_path / "b", **kw)
    assert b["done"] and b["psnr_student"] == a["psnr_student"]
    wa, _ = registry.load_from_file(a["weights"])
    wb, _ = registry.load_from_file(b["weights"])
    for k, v in wa.state_dict().items():
        assert torch.equal(v, wb.state_dict()[k]), k
    # other settings in the same folder are refused; fresh starts over
    with pytest.raises(B2BError, match="different settings"):
        distill(tr_path, db_path, frames, tmp_path / "b", **dict(kw, lr=5e-4))
    c = distill(tr_path, db_path, frames, tmp_path / "b", fresh=True, **dict(kw, iters=2))
    assert c["done"] and c["steps"] == 2


def test_bad_inputs_are_clear(frames, nets, tmp_path):
    from b2b_train.distill import distill

    tr_path, db_path = nets
    with pytest.raises(CheckpointError, match="translator not found"):
        distill(tmp_path / "nope.safetensors", db_path, frames, tmp_path / "o", iters=1, **FAST)
    with pytest.raises(B2BError, match="no translator given"):
        distill(None, db_path, frames, tmp_path / "o", iters=1, **FAST)
    with pytest.raises(CheckpointError, match="not a translator"):
        distill(db_path, db_path, frames, tmp_path / "o", iters=1, **FAST)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images or video clips"):
        distill(tr_path, db_path, tmp_path / "empty", tmp_path / "o", iters=1, **FAST)
    with pytest.raises(DataError, match="not found"):
        distill(tr_path, db_path, tmp_path / "nowhere", tmp_path / "o", iters=1, **FAST)
    with pytest.raises(DataError, match="only 3 blurry frame"):
        distill(tr_path, db_path, frames[:3], tmp_path / "o", iters=1, **FAST)
    with pytest.raises(B2BError, match="unknown distillation setting"):
        distill(tr_path, db_path, frames, tmp_path / "o", iters=1, bogus=1, **FAST)


def test_cli(frames, nets, tmp_path, capsys, one_torch_thread):
    from click.testing import CliRunner

    from b2b_train.cli import cli, main
    from b2b_train.data.io import write_image

    r = CliRunner().invoke(cli, ["distill", "--help"])
    assert r.exit_code == 0 and "Example:" in r.output and "--translator" in r.output and "--export" in r.output
    tr_path, db_path = nets
    with pytest.raises(SystemExit) as e:
        main(["distill", "--translator", str(tmp_path / "none.safetensors"), "--blurry", str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "translator not found" in err
    with pytest.raises(SystemExit) as e:
        main(["distill", "--translator", str(tr_path), "--blurry", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
              "--deblurrer", str(db_path)])
    assert e.value.code == 2 and "not found" in capsys.readouterr().err

    for i, f in enumerate(frames):
        write_image(tmp_path / "blurry" / f"f{i:02d}.png", f)
    export = tmp_path / "lite.safetensors"
    r = CliRunner().invoke(cli, ["distill", "--translator", str(tr_path), "--blurry", str(tmp_path / "blurry"),
                                 "--deblurrer", str(db_path), "--out", str(tmp_path / "run"), "--iters", "3",
                                 "--crop", "48", "--no-progress", "--export", str(export)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["psnr_baseline"] > 0 and summary["psnr_student"] > 0
    net, meta = registry.load_from_file(export)
    assert meta["net"] == "nafnet-tiny" and meta["storage"] == "float16"


# ----------------------------------------------------------------------------- profiles: --lite

def _profile_with_lite(b2b_home, nets, with_lite=True):
    import shutil

    from b2b_stream.profile import Profile

    prof = Profile.open("cam", home=b2b_home, create=True)
    shutil.copyfile(nets[0], prof.translator_path)
    if with_lite:
        torch.manual_seed(5)
        registry.save_network(prof.lite_path, registry.build("nafnet-tiny"), "nafnet-tiny", {}, kind="deblurrer", lite=True)
    return prof


def test_lite_engine_runs_the_student_alone(b2b_home, nets, frames, one_torch_thread):
    from b2b_stream.engines import get_engine
    from b2b_stream.fuse import reference_unfused

    prof = _profile_with_lite(b2b_home, nets)
    lite = get_engine("cam", backend="torch", size=(96, 72), home=b2b_home, lite=True, say=lambda m: None)
    full = get_engine("cam", backend="torch", size=(96, 72), home=b2b_home, say=lambda m: None)
    assert lite.module.translator is None and full.module.translator is not None
    assert "lite" in lite.info["note"] and lite.info["lite"] is True
    assert lite.info["file"] and "/engines/cam/lite/" in lite.info["file"]
    student, _ = registry.load_from_file(prof.lite_path)
    x = torch.from_numpy(np.stack(frames[:2]))
    ref = reference_unfused(None, student, x, multiple=lite.module.multiple).numpy()
    assert np.abs(lite.run(x.numpy()).astype(int) - ref.astype(int)).max() <= 1
    # both engines stay cached side by side: asking again rebuilds nothing
    again = get_engine("cam", backend="torch", size=(96, 72), home=b2b_home, say=lambda m: None)
    assert again.info.get("cache") == "hit"


def test_python_api_opens_a_lite_stream(b2b_home, nets, asl_clips, one_torch_thread):
    import b2b_stream

    _profile_with_lite(b2b_home, nets)
    clip = next(p for p in asl_clips if p.stem == "milk")
    with b2b_stream.open(camera=str(clip), profile="cam", lite=True, backend="torch", track="none",
                         width=96, height=72, max_frames=3, home=b2b_home) as stream:
        got = [f.image.shape for f in stream]
        assert stream.pipeline.engine.module.translator is None
    assert got == [(72, 96, 3)] * 3


def test_lite_without_weights_says_how_to_make_them(b2b_home, nets, capsys):
    from b2b_stream.cli import main
    from b2b_stream.engines import get_engine

    _profile_with_lite(b2b_home, nets, with_lite=False)
    with pytest.raises(B2BError, match=r"b2b-stream calibrate --profile cam --lite"):
        get_engine("cam", backend="torch", size=(96, 72), home=b2b_home, lite=True)
    with pytest.raises(B2BError, match="give --profile"):
        get_engine(None, backend="torch", size=(96, 72), home=b2b_home, lite=True)
    with pytest.raises(SystemExit) as e:
        main(["run", "--camera", "demo", "--profile", "cam", "--lite", "--frames", "2", "--home", str(b2b_home)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b2b-stream calibrate --profile cam --lite" in err, err


def test_calibrate_lite_step_writes_weights_and_report_numbers(b2b_home, nets, asl_clips, monkeypatch, one_torch_thread):
    """calibrate's distillation step on a profile's real blurry clip (the tiny deblurrer as the default)."""
    import shutil

    from b2b_stream.calibrate import _distill_lite

    monkeypatch.setenv("B2B_DEFAULT_DEBLURRER", str(nets[1]))
    prof = _profile_with_lite(b2b_home, nets, with_lite=False)
    clip = next(p for p in asl_clips if p.stem == "help")
    prof.clips_dir("blurry").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, prof.clips_dir("blurry") / "blurry_1.mkv")
    rep = _distill_lite(prof, 4, False, False, lambda m: None, max_frames=8, crop=48)
    assert prof.lite_path.is_file() and rep["steps"] == 4 and rep["net"] == "nafnet-tiny"
    assert rep["frames"]["size"] == [640, 480] and rep["frames"]["val"] == 4
    assert rep["psnr_vs_teacher"] > 0 and rep["baseline_psnr_vs_teacher"] > 0 and rep["seconds"] >= 0
    assert prof.summary()["lite"] is True
