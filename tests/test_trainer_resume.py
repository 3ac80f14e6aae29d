"""Translator trainer reliability: exact resume after an interruption, NaN/Inf rollback."""

from __future__ import annotations

import pytest
import torch

from b2b_train import losses as L
from b2b_train.checkpoint import load_state, load_weights, read_meta
from b2b_train.trainer import train_translator
from b2b_train.trainutil import CsvLogger, NonFiniteError
from conftest import tiny_translator, write_frame_sets

TINY = tiny_translator(batch=2, log_every=1, val_every=1000, ckpt_every=2) + [
    "curriculum.grow_start=0.3", "curriculum.grow_end=0.6",  # the curriculum changes during the run
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frames(tmp_path_factory, asl_clips):
    return write_frame_sets(tmp_path_factory.mktemp("frames"), asl_clips[2], asl_clips[3], step=10, max_frames=5)


def _stop_at(step: int, exc: BaseException):
    def hook(s, m):
        if s == step:
            raise exc
    return hook


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_after_interruptions_equals_an_uninterrupted_run(frames, tmp_path):
    iters = 7
    ref = train_translator(*frames, tmp_path / "a", "cpu-quick", TINY, iters=iters, progress=False)

    run = tmp_path / "b"
    # Ctrl-C at step 3: the trainer saves a checkpoint at step 3 and re-raises
    with pytest.raises(KeyboardInterrupt):
        train_translator(*frames, run, "cpu-quick", TINY, iters=iters, progress=False, on_step=_stop_at(3, KeyboardInterrupt()))
    assert (run / "checkpoints" / "ckpt_00000003.safetensors").is_file()
    # a hard crash at step 5 (nothing saved): the rerun goes back to the periodic checkpoint of step 4
    with pytest.raises(RuntimeError, match="crash"):
        train_translator(*frames, run, "cpu-quick", TINY, iters=iters, progress=False, on_step=_stop_at(5, RuntimeError("crash")))
    steps_seen = []
    out = train_translator(*frames, run, "cpu-quick", TINY, iters=iters, progress=False, on_step=lambda s, m: steps_seen.append(s))
    assert steps_seen == [5, 6, 7]

    a, _ = load_state(tmp_path / "a" / "checkpoints" / f"ckpt_{iters:08d}.safetensors")
    b, _ = load_state(run / "checkpoints" / f"ckpt_{iters:08d}.safetensors")
    assert a["step"] == b["step"] == iters
    for key in ("G", "D", "opt_g", "opt_d", "data", "lr_scale", "rollbacks"):
        _assert_same(a[key], b[key], key)
    wa, _ = load_weights(ref)
    wb, _ = load_weights(out)
    _assert_same(wa, wb, "translator")
    # the log was rewound on resume: one row per step, the same losses as the uninterrupted run
    la = [r for r in CsvLogger(tmp_path / "a" / "log.csv").read() if r.get("loss_d")]
    lb = [r for r in CsvLogger(run / "log.csv").read() if r.get("loss_d")]
    assert [int(r["step"]) for r in lb] == list(range(1, iters + 1))
    assert [r["loss_d"] for r in la] == [r["loss_d"] for r in lb]
    # rerunning a finished run does no more steps
    more = []
    train_translator(*frames, run, "cpu-quick", TINY, iters=iters, progress=False, on_step=lambda s, m: more.append(s))
    assert more == []
    # fresh=True starts over
    train_translator(*frames, run, "cpu-quick", TINY, iters=2, progress=False, fresh=True, on_step=lambda s, m: more.append(s))
    assert more == [1, 2]


def test_nan_loss_rolls_back_lowers_lr_and_training_continues(frames, tmp_path, monkeypatch):
    real = L.multiscale_perceptual_loss
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] == 5 else out  # NaN once, in iteration 5

    monkeypatch.setattr(L, "multiscale_perceptual_loss", flaky)
    steps = []
    path = train_translator(*frames, tmp_path / "nan", "cpu-quick", TINY + ["train.seed=3"], iters=8,
                            progress=False, on_step=lambda s, m: steps.append((s, m["lr"])))
    # steps 1-4, NaN in step 5 -> back to the checkpoint of step 4, LR halved, then 5..8
    assert [s for s, _ in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    lr_before = dict(steps[:4])
    assert lr_before[1] == pytest.approx(2e-4)
    assert dict(steps)[5] == pytest.approx(0.5 * 2e-4)  # constant phase (decay from step 4 of 8): halved
    prov = read_meta(path)["provenance"]
    assert prov["lr_scale"] == 0.5 and len(prov["rollbacks"]) == 1
    assert prov["rollbacks"][0]["to_step"] == 4 and "G loss" in prov["rollbacks"][0]["at"]
    events = [r for r in CsvLogger(tmp_path / "nan" / "log.csv").read() if r.get("event")]
    assert events and events[0]["event"] == "rollback 1"
    w, _ = load_weights(path)
    assert all(torch.isfinite(t).all() for t in w.values())


def test_persistent_nan_gives_up_with_a_clear_error(frames, tmp_path, monkeypatch):
    monkeypatch.setattr(L, "gradient_penalty", lambda *a, **k: torch.tensor(float("inf")))
    with pytest.raises(NonFiniteError, match=r"diverged.*D loss.*rolled back 2 times"):
        train_translator(*frames, tmp_path / "inf", "cpu-quick", TINY + ["train.max_rollbacks=2"], iters=4, progress=False)


def test_sweep_exports_the_generator_of_an_interrupted_run(frames, tmp_path):
    """benchmarks/translator_sweep.py keeps a run that hit its time limit: the newest checkpoint's G
    becomes a translator file that loads like a finished one and holds exactly that checkpoint's G."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.translator_sweep import export_latest, parse_variant
    from b2b_train.nets.translator_io import load_translator

    assert parse_variant("smooth-rec2:loss.lambda_rec=2;model.generator_kwargs={a: 1, b: 2}") == (
        "smooth-rec2", ["loss.lambda_rec=2", "model.generator_kwargs={a: 1, b: 2}"])
    with pytest.raises(SystemExit):
        parse_variant("bad name:x=1")
    run = tmp_path / "cut"
    assert export_latest(tmp_path) is None  # no checkpoint: nothing to export
    with pytest.raises(KeyboardInterrupt):
        train_translator(*frames, run, "cpu-quick", TINY, iters=9, progress=False, on_step=_stop_at(3, KeyboardInterrupt()))
    assert not (run / "translator.safetensors").exists()
    out = export_latest(run)
    assert out == run / "translator.safetensors"
    state, _ = load_state(sorted((run / "checkpoints").glob("ckpt_*.safetensors"))[-1])
    g = load_translator(out)
    assert read_meta(out)["provenance"] == {"steps": int(state["step"]), "partial_run": True}
    assert len(g.state_dict()) == len(state["G"]) > 0
    for k, v in g.state_dict().items():
        assert torch.equal(v, state["G"][k.removeprefix("net.")].to(v.dtype)), k  # load_translator wraps G as .net
