"""The probe: a high-pass discriminator trained alone tells blur apart, R1, AUC, and choosing K."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from b2b_train.blur import make_known_blur
from b2b_train.data.io import read_image
from b2b_train.losses import r1_penalty
from b2b_train.nets.highpass_discriminator import HighPassDiscriminator, high_pass
from b2b_train.probe import ProbeConfig, ProbeCrops, auc, choose_known, separation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ProbeConfig(steps=60, batch=8, crop=64, lr=1e-3, eval_batches=4, discriminator_kwargs={"channels": (16, 32, 32)})


@pytest.fixture(scope="module")
def frames(kodak_images):
    import cv2

    return [cv2.resize(read_image(p), (192, 192), interpolation=cv2.INTER_AREA) for p in kodak_images[:8]]


def _shake(lo, hi):
    return make_known_blur("kernels-uniform", overrides=[f"kernels.extent=[{lo},{hi}]", "noise.p=0"])


def test_auc_counts_order_and_ties():
    assert auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert auc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 0.0
    assert auc(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])) == 0.5


def test_r1_is_zero_for_a_constant_critic_and_positive_otherwise():
    x = torch.rand(4, 3, 32, 32)
    const = lambda t: torch.zeros(t.shape[0], 1, 8, 8) + 0 * t.mean()  # noqa: E731
    assert float(r1_penalty(const, x)) == 0.0
    d = HighPassDiscriminator(channels=(8,))
    assert float(r1_penalty(d, x).detach()) > 0


def test_high_pass_ignores_flat_and_smooth_content():
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert high_pass(flat).abs().max() < 1e-6
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    assert high_pass(ramp)[..., 4:-4, 4:-4].abs().max() < 1e-5  # a linear ramp has no detail
    d = HighPassDiscriminator(channels=(8, 8))
    assert d(torch.rand(2, 3, 37, 53)).shape == (2, 1, 37, 53)  # one logit per pixel


def test_high_pass_d_separates_blurred_from_sharp_in_a_few_steps(frames):
    sharp = ProbeCrops(frames, 64)
    blurred = ProbeCrops(frames, 64, known=_shake(5, 9))
    r = separation(sharp, blurred, FAST)
    assert r["auc"] > 0.9, r
    assert r["loss"] < 2 * np.log(2)  # it learned something


def test_same_set_is_not_separable(frames):
    r = separation(ProbeCrops(frames[:4], 64), ProbeCrops(frames[:4], 64), FAST)
    assert 0.25 < r["auc"] < 0.75, r


def test_choose_known_picks_the_candidate_as_blurry_as_b(frames):
    # B: the camera's frames with a 7-11 px shake; candidates milder, equal and blurrier
    g = torch.Generator().manual_seed(1)
    b_kb = _shake(7, 11)
    blurry = []
    for f in frames:
        t = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
        blurry.append((b_kb(t, g)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    cands = {"3-4": _shake(3, 4), "7-11": _shake(7, 11), "15-19": _shake(15, 19)}
    rep = choose_known(blurry, frames, cands, FAST)
    c = rep["candidates"]
    # a blurrier K is farther from S: its K-vs-S AUC and its blur degree order with the extent
    assert c["3-4"]["degree_ratio"] > c["7-11"]["degree_ratio"] > c["15-19"]["degree_ratio"]
    assert c["15-19"]["auc_sharp"] >= c["3-4"]["auc_sharp"]
    assert c["7-11"]["auc"] < c["3-4"]["auc"]
    assert rep["chosen"] == "7-11", rep


def test_probe_command_reports_and_chooses(tmp_path, frames):
    import json

    import cv2
    from click.testing import CliRunner

    from b2b_train.cli import cli

    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    for i, f in enumerate(frames[:4]):
        cv2.imwrite(str(tmp_path / "s" / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp_path / "b" / f"{i}.png"), cv2.cvtColor(cv2.blur(f, (7, 1)), cv2.COLOR_RGB2BGR))
    rep = tmp_path / "probe.json"
    res = CliRunner().invoke(cli, ["probe", "--blurry", str(tmp_path / "b"), "--sharp", str(tmp_path / "s"),
                                   "--steps", "10", "--crop", "48", "--batch", "4", "--channels", "8,8", "--extents", "3-5,3-9", "--threads", "1",
                                   "--report", str(rep)])
    assert res.exit_code == 0, res.output
    data = json.loads(rep.read_text())
    assert set(data["candidates"]) == {"3-5 px", "3-9 px"} and data["chosen"] in data["candidates"]
    assert "chosen" in res.output
    bad = CliRunner().invoke(cli, ["probe", "--blurry", str(tmp_path / "nope"), "--sharp", str(tmp_path / "s")])
    assert bad.exit_code != 0 and "nope" in bad.output


def test_extents_parse_and_the_chosen_known_blur_round_trips_through_yaml(tmp_path):
    from b2b_train.errors import ConfigError
    from b2b_train.probe import extent_candidates, known_yaml, parse_extents

    assert parse_extents("3-7, 3-11,5") == [(3.0, 7.0), (3.0, 11.0), (5.0, 5.0)]
    with pytest.raises(ConfigError, match="3-x"):
        parse_extents("3-x")
    cands = extent_candidates("kernels", [(3.0, 7.0), (3.0, 11.0)])
    assert list(cands) == ["3-7 px", "3-11 px"]
    assert all(k.cfg.spatial.p_uniform == 1.0 and k.cfg.spatial.p_local == 0.0 for k in cands.values())
    mixed = extent_candidates("kernels", [(3.0, 7.0)], mix=True)["3-7 px (mix)"]
    assert mixed.cfg.spatial.p_local > 0
    path = tmp_path / "known.yaml"
    path.write_text(known_yaml("kernels", (3, 11)))
    k = make_known_blur(str(path))
    base = make_known_blur("kernels")
    assert list(k.cfg.kernels.extent) == [3.0, 11.0]
    assert k.cfg.spatial == base.cfg.spatial and k.cfg.noise == base.cfg.noise  # only the extent changed
