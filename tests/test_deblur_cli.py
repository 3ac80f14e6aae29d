"""``b2b-train deblurrer`` end to end on real images (a few iterations of the tiny net)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from b2b_train.cli import cli, main
from b2b_train.shipped import resolve_deblurrer


def test_help_has_an_example():
    r = CliRunner().invoke(cli, ["deblurrer", "--help"])
    assert r.exit_code == 0
    assert "Example:" in r.output and "--sharp" in r.output and "--val" in r.output


def test_cli_trains_a_few_iterations_and_exports(kodak_images, tmp_path):
    kodak = kodak_images[0].parent
    out = tmp_path / "run"
    export = tmp_path / "small.safetensors"
    r = CliRunner().invoke(
        cli,
        [
            "deblurrer", "--sharp", str(kodak), "--val", str(kodak_images[5]), "--out", str(out),
            "--config", "tiny", "--iters", "4", "--no-progress", "--export", str(export),
            "data.crop=40", "data.val_size=48", "val_every=100", "ckpt_every=2", "batch_size=2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "val PSNR" in r.output and "weights:" in r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["psnr"] > 5 and summary["input_psnr"] > 5
    assert (out / "deblurrer.safetensors").is_file() and (out / "config.yaml").is_file()
    net = resolve_deblurrer(str(export))
    full = resolve_deblurrer(str(out / "deblurrer.safetensors"))
    for k, v in full.state_dict().items():
        assert torch.allclose(net.state_dict()[k], v, atol=1e-2, rtol=1e-2)
    assert export.stat().st_size < (out / "deblurrer.safetensors").stat().st_size


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["deblurrer", "--sharp", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--config", "tiny"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err
    with pytest.raises(SystemExit) as e:
        main(["deblurrer", "--sharp", str(tmp_path), "--out", str(tmp_path / "o"), "--config", "tiny", "data.bogus=1"])
    assert e.value.code == 2
    assert "data.bogus" in capsys.readouterr().err
