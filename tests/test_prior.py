"""The translator prior: simulated cameras, the pair cache, a short real training run, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from b2b_train.errors import ConfigError, DataError
from b2b_train.prior import CameraRanges, PriorConfig, prior_mismatch, random_camera, simulate_pairs, train_prior

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 96 px frames, 6 read per clip, 2 cameras: real simulation and training in seconds
SMALL = dict(side=96, max_frames=6, frame_step=1, cameras_per_clip=2, crop=48, batch=2, val_pairs=2,
             log_every=1, val_every=1000, ckpt_every=5)


def test_random_cameras_stay_in_their_ranges_and_vary():
    r = CameraRanges()
    rng = np.random.default_rng(0)
    cams = [random_camera(rng, r, side=640, seed=i) for i in range(200)]
    for c in cams:
        assert r.exposure[0] <= c.exposure <= r.exposure[1]
        assert 0 <= c.shake_px <= r.shake_px[1] * 2 + 1e-9  # per 320 px, scaled to 640
        assert r.gamma[0] <= c.gamma <= r.gamma[1] and r.tone[0] <= c.tone <= r.tone[1]
        assert c.jpeg_quality is None or r.jpeg_quality[0] <= c.jpeg_quality <= r.jpeg_quality[1]
    assert np.std([c.exposure for c in cams]) > 0.5
    share_jpeg = np.mean([c.jpeg_quality is not None for c in cams])
    assert 0.35 < share_jpeg < 0.65


def test_simulated_pairs_are_blurrier_than_sharp_and_cached(asl_clips, tmp_path, monkeypatch):
    cfg = PriorConfig(**SMALL)
    b, s, cams = simulate_pairs(asl_clips[:1], cfg, tmp_path / "pairs", say=lambda m: None, show_progress=False)
    assert len(b) == len(s) == 12 and len(cams) == 2 and b[0].shape == s[0].shape and b[0].dtype == np.uint8
    assert max(b[0].shape[:2]) <= 96
    from b2b_train.metrics import laplacian_variance

    lap = lambda xs: float(np.mean([laplacian_variance(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255).item()
                                    for x in xs]))  # noqa: E731
    assert lap(b) < lap(s)
    import b2b_train.data.exposure as exposure

    def boom(*a, **k):
        raise AssertionError("simulated again despite the cache")

    monkeypatch.setattr(exposure, "simulate_camera", boom)
    b2, _, _ = simulate_pairs(asl_clips[:1], cfg, tmp_path / "pairs", say=lambda m: None, show_progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(b, b2))
    with pytest.raises(DataError, match="not found"):
        simulate_pairs([tmp_path / "none.mkv"], cfg, tmp_path / "pairs", say=lambda m: None, show_progress=False)


def test_bad_prior_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="crop"):
        PriorConfig(crop=50)
    with pytest.raises(ConfigError, match="target"):
        PriorConfig(target="sharp")


def test_prior_targets_keep_the_cameras_colours(asl_clips, tmp_path):
    """The default target is the camera's own still frame: its tone curve applied, so G is not asked
    to undo the camera's colours; ``reference`` is the source frame."""
    from b2b_train.data.exposure import CameraSim, simulate_camera
    from b2b_train.prior import _read_clip

    frames = _read_clip(asl_clips[0], 96, 4)
    flat = simulate_camera(frames, CameraSim(exposure=1.0, tone=0.0, seed=3))
    toned = simulate_camera(frames, CameraSim(exposure=1.0, tone=0.4, seed=3))
    assert np.array_equal(flat.still, flat.reference)  # gamma in, gamma out: only tone changes colour
    diff = lambda a, b: float(np.abs(a.astype(float) - b).mean())  # noqa: E731
    assert diff(toned.still, toned.reference) > 2.0
    assert diff(toned.blurry, toned.still) < diff(toned.blurry, toned.reference)
    cfg = PriorConfig(**{**SMALL, "cameras_per_clip": 1})
    _, s_still, _ = simulate_pairs(asl_clips[:1], cfg, tmp_path / "p", say=lambda m: None, show_progress=False)
    _, s_ref, _ = simulate_pairs(asl_clips[:1], PriorConfig(**{**SMALL, "cameras_per_clip": 1, "target": "reference"}),
                                 tmp_path / "p", say=lambda m: None, show_progress=False)
    assert np.array_equal(s_ref[0], frames[0]) and s_still[0].shape == s_ref[0].shape


@pytest.fixture(scope="module")
def prior_run(asl_clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior")
    cfg = PriorConfig(**SMALL, iters=12, lr=1e-3)
    ckpt = train_prior(cfg, asl_clips[:2], out, show_progress=False, stop_at=5, log=None)
    final = train_prior(cfg, asl_clips[:2], out, show_progress=False, log=None)
    return out, ckpt, final


def test_prior_trains_resumes_and_loads_as_a_translator(prior_run, kodak_images):
    from b2b_train.checkpoint import read_meta
    from b2b_train.nets.translator_io import load_translator
    from b2b_train.trainutil import CsvLogger

    out, ckpt, final = prior_run
    assert "checkpoints" in str(ckpt) and final.name == "translator-prior.safetensors"
    rows = CsvLogger(out / "log.csv").read()
    steps = [int(float(r["step"])) for r in rows if r.get("loss")]
    assert steps == sorted(set(steps)) and max(steps) == 12  # resumed at 5, no step twice
    meta = read_meta(final)
    p = meta["prior"]
    assert p["steps"] == 12 and len(p["cameras"]) == 4 and p["pairs"] == 24 and p["deblurrer_digest"]
    assert {"deblurred", "prior", "translated_vs_input"} <= set(p["validation"])
    assert (out / "samples").is_dir() and (out / "loss.png").is_file()
    import cv2

    G = load_translator(final)
    img = cv2.imread(str(kodak_images[0]))[:100, :130, ::-1].copy()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = G(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_prior_mismatch_names_another_deblurrer(prior_run, tmp_path):
    from b2b_train.checkpoint import read_meta
    from b2b_train.shipped import default_deblurrer_path

    _, _, final = prior_run
    meta = read_meta(final)
    assert prior_mismatch(meta, default_deblurrer_path("cpu")) is None
    other = tmp_path / "other.safetensors"
    other.write_bytes(default_deblurrer_path("cpu").read_bytes() + b"x")
    assert "another deblurrer" in prior_mismatch(meta, other)


def test_prior_config_change_in_the_same_folder_is_refused(prior_run, asl_clips):
    out, _, _ = prior_run
    with pytest.raises(ConfigError, match="different config"):
        train_prior(PriorConfig(**{**SMALL, "crop": 64}, iters=12), asl_clips[:2], out, show_progress=False, log=None)


def test_cli_refuses_a_missing_clip_with_one_line(tmp_path, capsys):
    from b2b_train.cli import main

    with pytest.raises(SystemExit) as e:
        main(["prior", "--clips", str(tmp_path / "none.mkv"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code != 0 and err[-1].startswith("error:") and "none.mkv" in err[-1] and "Traceback" not in "".join(err)


def test_cli_trains_a_prior_from_a_folder(asl_clips, tmp_path, capsys):
    from b2b_train.cli import main

    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / asl_clips[3].name).symlink_to(asl_clips[3])
    main(["prior", "--clips", str(clips), "--out", str(tmp_path / "o"), "--iters", "2", "--crop", "48",
          "--batch", "2", "--cameras-per-clip", "1", "--no-progress", "--threads", "1"])
    out = capsys.readouterr().out
    assert "1 clips x 1 cameras" in out and (tmp_path / "o" / "translator-prior.safetensors").is_file()
