"""``b2b-train kernels``: preview grid, K-set synthesis, kernel export, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from click.testing import CliRunner

from b2b_train.blur import load_kernels
from conftest import run_train_cli as _run
from b2b_train.commands.kernels import kernels
from b2b_train.data.io import read_image, write_image
from b2b_train.metrics import laplacian_variance_np


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_command_has_help_with_example():
    r = CliRunner()
    for args in ([], ["preview"], ["synth"], ["export"]):
        res = r.invoke(kernels, args + ["--help"])
        assert res.exit_code == 0, res.output
        assert "Example:" in res.output


def test_preview_writes_a_grid(tmp_path, shared_data, capsys):
    out = tmp_path / "grid.png"
    assert _run(["kernels", "preview", "--out", str(out), "--images", str(shared_data / "images" / "kodak"),
                 "-n", "3", "--size", "96"]) == 0
    grid = read_image(out)
    assert grid.shape[0] > 3 * 96 and grid.shape[1] > 4 * 96  # 3 rows; sharp, blurry, kernels, mask
    assert "known blur:" in capsys.readouterr().out
    # without --images: a test pattern; overrides reach the config
    out2 = tmp_path / "pattern.png"
    assert _run(["kernels", "preview", "--out", str(out2), "-n", "1", "--size", "64", "--known", "kernels-uniform",
                 "kernels.extent=[3,9]"]) == 0
    assert out2.is_file()


def test_synth_writes_a_blurred_copy_of_each_image(tmp_path, kodak_images, capsys):
    src = tmp_path / "sharp"
    (src / "sub").mkdir(parents=True)
    for i, p in enumerate(kodak_images[:3]):
        img = read_image(p)[:120, :160]
        write_image((src / "sub" if i == 2 else src) / f"{p.stem}.jpg", img)
    out = tmp_path / "known"
    args = ["kernels", "synth", "--sharp", str(src), "--out", str(out), "--known", "kernels-uniform",
            "--no-progress", "kernels.extent=[9,15]"]
    assert _run(args) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == sorted([f"{kodak_images[0].stem}.png", f"{kodak_images[1].stem}.png", f"sub/{kodak_images[2].stem}.png"])
    assert (out / "known.yaml").is_file()
    for p in kodak_images[:2]:
        sharp = read_image(src / f"{p.stem}.jpg")
        blurred = read_image(out / f"{p.stem}.png")
        assert blurred.shape == sharp.shape
        assert laplacian_variance_np(blurred) < 0.5 * laplacian_variance_np(sharp)
    first = read_image(out / f"{kodak_images[0].stem}.png")
    # refuses to overwrite, with one clear line and exit 2
    capsys.readouterr()
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    # same seed, same K set
    assert _run(args + ["--overwrite"]) == 0
    assert np.array_equal(read_image(out / f"{kodak_images[0].stem}.png"), first)


def test_export_npz_and_mat_round_trip(tmp_path):
    assert _run(["kernels", "export", "--out", str(tmp_path / "k.npz"), "-n", "7", "--seed", "3"]) == 0
    assert _run(["kernels", "export", "--out", str(tmp_path / "k.mat"), "-n", "7", "--seed", "3"]) == 0
    a = load_kernels(tmp_path / "k.npz")
    b = load_kernels(tmp_path / "k.mat")
    assert a.shape[0] == 7
    torch.testing.assert_close(a, b)
    assert scipy.io.loadmat(str(tmp_path / "k.mat"))["kernels"].shape == (1, 7)


def test_bad_input_fails_with_one_line(tmp_path, capsys):
    for args in (
        ["kernels", "preview", "--out", str(tmp_path / "g.png"), "--known", "no-such-preset"],
        ["kernels", "preview", "--out", str(tmp_path / "g.png"), "spatial.p_local=0.9"],
        ["kernels", "synth", "--sharp", str(tmp_path), "--out", str(tmp_path / "o")],
        ["kernels", "export", "--out", str(tmp_path / "k.txt")],
    ):
        capsys.readouterr()
        assert _run(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
