"""``b2b-train translator``: help text, clear one-line errors, and a real tiny run with a summary."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import tiny_translator, write_frame_sets

TINY = tiny_translator(batch=2, val_images=1)


def _cli(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", B2B_CACHE=os.environ.get("B2B_CACHE", "/nonexistent-b2b-cache"))
    return subprocess.run([sys.executable, "-m", "b2b_train.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frames(tmp_path_factory, asl_clips):
    return write_frame_sets(tmp_path_factory.mktemp("frames"), asl_clips[6], asl_clips[7], step=10, max_frames=4)


def test_help_has_the_contract_flags_and_an_example():
    from click.testing import CliRunner

    from b2b_train.commands.translator import translator

    r = CliRunner().invoke(translator, ["--help"])
    assert r.exit_code == 0
    for flag in ("--blurry", "--sharp", "--out", "--known", "--config", "--iters", "--fresh", "KEY=VALUE", "Example:"):
        assert flag in r.output, flag


def _main(argv, capsys):
    """Run ``b2b-train`` in this process (as the console script does); returns (exit code, out, err)."""
    from b2b_train.cli import main

    code = 0
    try:
        main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_folder_fails_with_one_line_in_a_real_process(frames, tmp_path):
    r = _cli("translator", "--blurry", str(tmp_path / "nope"), "--sharp", str(frames[1]), "--out", str(tmp_path / "o"),
             "--config", "cpu-quick", "--iters", "1", *TINY)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and "nope" in lines[-1] and "Traceback" not in r.stderr


def test_unknown_key_and_unknown_preset_fail_naming_them(frames, tmp_path, capsys):
    base = ["translator", "--blurry", str(frames[0]), "--sharp", str(frames[1]), "--out", str(tmp_path / "o")]
    code, _, err = _main(base + ["--config", "cpu-quick", "train.batchsize=3"], capsys)
    assert code == 2 and "train.batchsize" in err and "Traceback" not in err
    code, _, err = _main(base + ["--config", "papper"], capsys)
    assert code == 2 and "papper" in err and "cpu-quick" in err


def test_tiny_cli_run_trains_prints_a_summary_and_resumes(frames, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("B2B_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "run"
    args = ["translator", "--blurry", str(frames[0]), "--sharp", str(frames[1]), "--out", str(out),
            "--config", "cpu-quick", "--iters", "2", "--no-progress", *TINY]
    code, stdout, err = _main(args, capsys)
    assert code == 0, err[-2000:]
    assert "translator trained" in stdout and "step 2" in stdout
    assert (out / "translator.safetensors").is_file()
    assert "RANDOMLY INITIALISED VGG16" in err  # loud: no VGG weights in this cache
    code, stdout, err = _main([a if a != "2" else "3" for a in args], capsys)
    assert code == 0, err[-2000:]
    assert "resuming from step 2" in err and "step 3 (1 this run" in stdout
