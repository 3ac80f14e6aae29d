"""``b2b-train bke``: train a tiny extractor on real pairs, transfer its blur, clear errors."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from b2b_train.blur import make_known_blur
from conftest import run_train_cli as _run
from b2b_train.commands.bke import bke
from b2b_train.data.io import read_image, to_tensor, to_uint8, write_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_command_has_help_with_example():
    r = CliRunner()
    for args in ([], ["train"], ["transfer"]):
        res = r.invoke(bke, args + ["--help"])
        assert res.exit_code == 0, res.output
        assert "Example:" in res.output


def test_train_then_transfer(tmp_path, kodak_images, capsys):
    pb, ps = tmp_path / "pairs" / "blurry", tmp_path / "pairs" / "sharp"
    pb.mkdir(parents=True)
    ps.mkdir(parents=True)
    known = make_known_blur("kernels-uniform", overrides=["noise.p=0"])
    g = torch.Generator().manual_seed(0)
    for p in kodak_images[:3]:
        x = to_tensor(read_image(p)[:256, :320])[None]
        write_image(ps / p.name, to_uint8(x))
        write_image(pb / p.name, to_uint8(known(x, g)))
    run = tmp_path / "run"
    assert _run(["bke", "train", "--blurry", str(pb), "--sharp", str(ps), "--out", str(run),
                 "--config", "cpu-tiny", "--iters", "3", "--no-progress", "batch_size=1"]) == 0
    out = capsys.readouterr().out
    assert "on 3 pairs" in out and "loss" in out
    ckpt = run / "bke.safetensors"
    assert ckpt.is_file() and (run / "log.csv").is_file()

    sharp = tmp_path / "mine"
    sharp.mkdir()
    write_image(sharp / "wide.png", read_image(kodak_images[5])[:150, :410])  # non-square, odd sizes
    dst = tmp_path / "k"
    # the checkpoint remembers its pair folders; passing them works too
    assert _run(["bke", "transfer", "--bke", str(ckpt), "--sharp", str(sharp), "--out", str(dst), "--no-progress"]) == 0
    assert read_image(dst / "wide.png").shape == (150, 410, 3)
    assert _run(["bke", "transfer", "--bke", str(ckpt), "--pairs-blurry", str(pb), "--pairs-sharp", str(ps),
                 "--sharp", str(sharp / "wide.png"), "--out", str(tmp_path / "k2"), "--no-progress"]) == 0
    assert read_image(tmp_path / "k2" / "wide.png").shape == (150, 410, 3)
    # the same checkpoint as a known blur for `kernels synth`
    assert _run(["kernels", "synth", "--sharp", str(sharp), "--out", str(tmp_path / "k3"), "--known", f"bke:{ckpt}",
                 "--no-progress"]) == 0
    assert read_image(tmp_path / "k3" / "wide.png").shape == (150, 410, 3)


def test_bad_input_fails_with_one_line(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    write_image(tmp_path / "b" / "x.png", torch.zeros(8, 8, 3, dtype=torch.uint8).numpy())
    write_image(tmp_path / "s" / "y.png", torch.zeros(8, 8, 3, dtype=torch.uint8).numpy())
    bogus = tmp_path / "bogus.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bogus)
    for args in (
        ["bke", "train", "--blurry", str(tmp_path / "b"), "--sharp", str(tmp_path / "s"), "--out", str(tmp_path / "r")],
        ["bke", "train", "--blurry", str(tmp_path / "b"), "--sharp", str(tmp_path / "b"), "--out", str(tmp_path / "r"),
         "--config", "nope"],
        ["bke", "transfer", "--bke", str(bogus), "--sharp", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
         "--pairs-blurry", str(tmp_path / "b"), "--pairs-sharp", str(tmp_path / "b")],
    ):
        capsys.readouterr()
        assert _run(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
