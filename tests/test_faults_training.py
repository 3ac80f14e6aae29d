"""Training faults: ``kill -9`` mid-run, kills during checkpoint writes, a full disk while checkpointing.

* ``kill -9`` of a real ``b2b-train translator`` / ``b2b-train deblurrer`` process (tiny networks,
  a checkpoint every 2 steps): rerunning the same command resumes from the newest checkpoint, says
  so, loses at most one checkpoint interval and finishes with every step done exactly once.
* checkpoints are never half-written: a process saving training states in a loop is killed at random
  moments several times; every ``ckpt_*.safetensors`` present afterwards loads completely, no
  temporary file is mistaken for a checkpoint, and the newest one is usable for resuming.
* a full disk (``RLIMIT_FSIZE`` in the child, SIGXFSZ ignored so writes fail with EFBIG like on a full
  filesystem) while a resumed translator run checkpoints: one clear error line, exit 2, the previous
  checkpoint intact and loadable, no temporary files left.

NaN/Inf rollback is tested by the translator's own suite (``test_trainer_resume.py``:
``test_nan_loss_rolls_back_lowers_lr_and_training_continues``, ``test_persistent_nan_gives_up_with_a_clear_error``);
exact resume after Ctrl-C / a crash in ``test_trainer_resume.py`` and ``test_deblur_trainer.py``.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from b2b_train.checkpoint import load_state, read_meta
from conftest import tiny_translator, write_frame_sets

pytestmark = pytest.mark.timeout(300)

TINY = tiny_translator(batch=2, log_every=1, val_every=1000, ckpt_every=2)
CKPT_EVERY = 2


@pytest.fixture(scope="module")
def frames(tmp_path_factory, asl_clips):
    return write_frame_sets(tmp_path_factory.mktemp("frames"), asl_clips[2], asl_clips[3], step=10, max_frames=5)


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _ckpt_steps(folder: Path) -> list[int]:
    return sorted(int(p.name[5:13]) for p in folder.glob("ckpt_*.safetensors")) if folder.is_dir() else []


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 150.0) -> None:
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended before the kill (exit {proc.returncode}):\n{err[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("training never reached the kill point")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _last_logged_step(log: Path) -> int:
    with open(log, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step")]
    return max(int(float(r["step"])) for r in rows) if rows else 0


def test_kill9_during_translator_training_resumes_and_loses_at_most_one_interval(frames, tmp_path):
    # the killed run is long (so a fast machine cannot finish it before the kill); the rerun asks for
    # a few steps past the checkpoint (iters may change on resume) to keep the test short
    cmd = [sys.executable, "-m", "b2b_train.cli", "translator", "--blurry", str(frames[0]), "--sharp", str(frames[1]),
           "--out", str(tmp_path / "run"), "--config", "cpu-quick", "--no-progress", *TINY]
    ckdir = tmp_path / "run" / "checkpoints"
    proc = subprocess.Popen(cmd + ["--iters", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    # kill between two checkpoints: the step after the second checkpoint has been logged
    _kill_when(proc, lambda: len(_ckpt_steps(ckdir)) and _ckpt_steps(ckdir)[-1] >= 4
               and (tmp_path / "run" / "log.csv").is_file()
               and _last_logged_step(tmp_path / "run" / "log.csv") > _ckpt_steps(ckdir)[-1])
    logged = _last_logged_step(tmp_path / "run" / "log.csv")
    saved = _ckpt_steps(ckdir)[-1]
    for s in _ckpt_steps(ckdir):  # whatever is there loads completely
        load_state(ckdir / f"ckpt_{s:08d}.safetensors")

    iters = saved + 3
    r = subprocess.run(cmd + ["--iters", str(iters)], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming from step {saved}" in r.stderr + r.stdout
    lost = logged - saved
    assert 0 <= lost <= CKPT_EVERY, (logged, saved)
    meta = read_meta(tmp_path / "run" / "translator.safetensors")
    prov = meta["provenance"]
    assert prov["steps"] == iters and prov["steps_this_run"] == iters - saved
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        steps = [int(float(r["step"])) for r in csv.DictReader(f) if r.get("loss_d")]
    assert steps == list(range(1, iters + 1))  # rewound on resume: every step exactly once


def test_kill9_during_deblurrer_training_resumes_and_loses_at_most_one_interval(kodak_images, tmp_path):
    cmd = [sys.executable, "-m", "b2b_train.cli", "deblurrer", "--sharp", str(kodak_images[0].parent),
           "--val", str(kodak_images[5]), "--out", str(tmp_path / "run"), "--config", "tiny",
           "--no-progress", "data.crop=32", "data.val_size=32", "val_every=1000", f"ckpt_every={CKPT_EVERY}",
           "log_every=1", "batch_size=2"]
    ckdir = tmp_path / "run" / "checkpoints"
    proc = subprocess.Popen(cmd + ["--iters", "2000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=tmp_path)
    _kill_when(proc, lambda: len(_ckpt_steps(ckdir)) and _ckpt_steps(ckdir)[-1] >= 4
               and (tmp_path / "run" / "log.csv").is_file()
               and _last_logged_step(tmp_path / "run" / "log.csv") > _ckpt_steps(ckdir)[-1])
    logged = _last_logged_step(tmp_path / "run" / "log.csv")
    saved = _ckpt_steps(ckdir)[-1]
    iters = saved + 4
    r = subprocess.run(cmd + ["--iters", str(iters)], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed {tmp_path / 'run'} at step {saved}" in r.stdout + r.stderr
    assert 0 <= logged - saved <= CKPT_EVERY
    meta = read_meta(tmp_path / "run" / "deblurrer.safetensors")
    assert meta["steps"] == iters


SAVER = textwrap.dedent(
    """
    import sys, torch
    from b2b_train.trainutil import CheckpointManager
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Conv2d(32, 32, 3) for _ in range(8)])
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(1, 32, 24, 24)).sum().backward(); opt.step()
    m = CheckpointManager(sys.argv[1], keep=3)
    start = (m.steps() or [0])[-1]
    step = start
    while True:
        step += 1
        m.save(step, {"model": net.state_dict(), "opt": opt.state_dict()})
        print(step, flush=True)
    """
)


def test_kill9_during_checkpoint_writes_never_leaves_a_half_written_checkpoint(tmp_path):
    folder = tmp_path / "ck"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    rnd = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True, env=_env())
        first = proc.stdout.readline()  # at least one save completed in this round
        assert first.strip(), "saver printed nothing"
        time.sleep(rnd.uniform(0.05, 0.6))  # then kill at a random moment, most likely mid-write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        steps = sorted(int(p.name[5:13]) for p in folder.glob("ckpt_*.safetensors"))
        assert steps, "no checkpoint survived"
        for s in steps:
            state, meta = load_state(folder / f"ckpt_{s:08d}.safetensors")
            assert state["step"] == s and meta["step"] == s
            assert len(state["model"]) == 16
        # only temporary files (dot-prefixed, never matched as checkpoints) may be left by a kill mid-write
        others = [p.name for p in folder.iterdir() if not p.name.startswith("ckpt_")]
        assert all(n.startswith(".") and n.endswith(".tmp") for n in others), others


def test_full_disk_while_checkpointing_is_one_clear_error_and_keeps_the_previous_checkpoint(frames, tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "-m", "b2b_train.cli", "translator", "--blurry", str(frames[0]), "--sharp", str(frames[1]),
            "--out", str(run), "--config", "cpu-quick", "--no-progress", *TINY]
    r = subprocess.run(base + ["--iters", "2"], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = run / "checkpoints" / "ckpt_00000002.safetensors"
    good = ck.read_bytes()
    size = len(good)
    # continue to step 6 with a file-size limit well under one checkpoint: the first save (step 4) fails
    limit = size // 3
    wrapper = (
        "import resource, signal, sys, runpy;"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}));"
        "sys.argv = ['b2b-train'] + sys.argv[1:];"
        "runpy.run_module('b2b_train.cli', run_name='__main__')"
    )
    r = subprocess.run([sys.executable, "-c", wrapper, *base[3:], "--iters", "6"], capture_output=True, text=True,
                       env=_env(), cwd=tmp_path, timeout=240)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "checkpoint" in errors[0], r.stderr[-2000:]
    assert "intact" in errors[0] or "previous" in errors[0], errors[0]
    if os.environ.get("B2B_FAULTS_LOG"):
        with open(os.environ["B2B_FAULTS_LOG"], "a") as f:
            f.write(f"full-disk\t{errors[0]}\n")
    # the previous checkpoint is byte-identical and loads; no temporary or partial files remain
    assert ck.read_bytes() == good
    state, _ = load_state(ck)
    assert state["step"] == 2
    assert _ckpt_steps(run / "checkpoints") == [2]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    # and with the disk space back, the same command resumes from it
    r = subprocess.run(base + ["--iters", "4"], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=240)
    assert r.returncode == 0 and "resuming from step 2" in r.stdout + r.stderr, r.stderr[-3000:]
