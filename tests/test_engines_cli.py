"""``b2b-stream build`` end to end on a small profile made here (tiny networks, real frame size)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from b2b_stream.commands.build import build
from conftest import DEBLURRER, TRANSLATOR, tiny_nets


@pytest.fixture()
def small_profile(b2b_home):
    from b2b_stream.profile import Profile
    from b2b_train.nets.registry import save_network, spec

    tr, db, m = tiny_nets(seed=4)
    prof = Profile.open("bench", create=True)
    prof.note_camera({"spec": "test", "width": 80, "height": 64, "fps": 30})
    save_network(prof.translator_path, tr, TRANSLATOR, dict(spec(TRANSLATOR).tiny_kwargs))
    deb = b2b_home / "deblurrer.safetensors"
    save_network(deb, db, DEBLURRER, dict(spec(DEBLURRER).tiny_kwargs))
    return prof, deb


def test_build_command_builds_then_reuses(small_profile, b2b_home):
    prof, deb = small_profile
    runner = CliRunner()
    args = ["--profile", "bench", "--backend", "torch", "--torch-mode", "eager", "--precision", "fp32", "--deblurrer", str(deb)]
    r = runner.invoke(build, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "engine ready" in r.output and "torch" in r.output
    assert "80x64 (size from the profile's camera)" in r.output
    assert "check vs eager fp32: max |diff| 0 levels" in r.output
    files = sorted((b2b_home / "engines" / "bench").glob("*.json"))
    assert [f.name for f in files] == ["torch-eager-fp32-cpu-80x64.json"]
    man = json.loads(files[0].read_text())
    assert man["key"]["profile"] == "bench" and man["key"]["size"] == [80, 64]
    r2 = runner.invoke(build, args, catch_exceptions=False)
    assert r2.exit_code == 0 and "[hit]" in r2.output, r2.output
    r3 = runner.invoke(build, args + ["--rebuild", "--size", "64x48"], catch_exceptions=False)
    assert r3.exit_code == 0 and "[built]" in r3.output and "64x48 (size from --size)" in r3.output


def test_build_command_defaults_to_the_cpu_fast_path(small_profile, b2b_home):
    from b2b_stream.engines.cpu_precision import native_cpu_bf16

    prof, deb = small_profile
    r = CliRunner().invoke(build, ["--profile", "bench", "--backend", "torch", "--deblurrer", str(deb)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    prec = "bf16" if native_cpu_bf16() else "fp32"  # --precision auto: bf16 where the CPU has it natively
    files = sorted((b2b_home / "engines" / "bench").glob("*.json"))
    assert [f.name for f in files] == [f"torch-script-{prec}-cpu-80x64.json"]
    assert "check vs eager fp32" in r.output


def test_build_command_errors_are_one_line(small_profile, b2b_home):
    from b2b_stream.cli import cli
    from b2b_train.cliutil import run_main

    prof, deb = small_profile
    for args, words in [
        (["--profile", "nope", "--deblurrer", str(deb)], "no profile 'nope'"),
        (["--profile", "bench", "--size", "big", "--deblurrer", str(deb)], "WIDTHxHEIGHT"),
        (["--profile", "bench", "--backend", "tensorrt", "--device", "cpu", "--deblurrer", str(deb)], "CUDA"),
    ]:
        with pytest.raises(SystemExit) as e:
            run_main(cli, ["build", *args])
        assert e.value.code == 2
    r = CliRunner().invoke(build, ["--help"])
    assert r.exit_code == 0 and "Example:" in r.output


def test_commands_offer_the_engines_option_names():
    """run, bench, build and calibrate list b2b_stream.engines.BACKENDS (run and bench add "none") and
    PRECISION_CHOICES (auto first, then PRECISIONS) with auto the default; build lists TORCH_MODES. (Their --help imports no torch:
    test_core.py::test_cli_help_imports_no_heavy_optional_modules.)"""
    from b2b_stream.commands import bench as bench_cmd
    from b2b_stream.commands import calibrate, run
    from b2b_stream.engines import BACKENDS, PRECISION_CHOICES, PRECISIONS, TORCH_MODES

    def choices(cmd, name="backend"):
        (opt,) = [p for p in cmd.params if p.name == name]
        return list(opt.type.choices)

    assert BACKENDS == ("auto", "tensorrt", "torch", "onnxruntime")
    names = list(BACKENDS)
    assert choices(run.run) == choices(bench_cmd.bench) == names + ["none"]
    assert choices(build) == choices(calibrate.calibrate) == names
    assert PRECISIONS == ("fp32", "fp16", "bf16")
    assert PRECISION_CHOICES == ("auto", *PRECISIONS)
    for cmd in (run.run, bench_cmd.bench, build, calibrate.calibrate):
        assert choices(cmd, "precision") == list(PRECISION_CHOICES)
        (opt,) = [p for p in cmd.params if p.name == "precision"]
        assert opt.default == "auto"
    assert TORCH_MODES == ("auto", "eager", "script", "compile", "max-autotune", "reduce-overhead", "cudagraphs",
                           "compile+cudagraphs")
    assert choices(build, "torch_mode") == list(TORCH_MODES)
