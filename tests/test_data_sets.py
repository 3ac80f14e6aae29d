"""B/S split by scene, the unpaired sampler (reproducible, resumable), transforms and curriculum."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from b2b_train.checkpoint import load_state, save_state
from b2b_train.data import transforms as T
from b2b_train.data.curriculum import blur_degrees, curriculum_fraction, reblur_degree, select_blurriest
from b2b_train.data.frames import FrameOptions, extract_frames
from b2b_train.data.io import read_image
from b2b_train.data.sets import UnpairedDataset, load_unpaired, make_unpaired, parse_ratio, split_scenes
from b2b_train.errors import DataError
from b2b_train.metrics import laplacian_variance


@pytest.fixture(scope="module")
def asl_frames(asl_clips, tmp_path_factory):
    if len(asl_clips) < 4:
        pytest.skip("ASL clips missing")
    cache = tmp_path_factory.mktemp("asl_cache")
    return extract_frames(
        cache, unlabelled=asl_clips, options=FrameOptions(step=3, max_side=320), blur_split="per-clip", progress=False
    )


# ----------------------------------------------------------------------------- split

def test_parse_ratio_forms():
    assert parse_ratio("6:4") == pytest.approx(0.6)
    assert parse_ratio(0.6) == pytest.approx(0.6)
    assert parse_ratio((7, 3)) == pytest.approx(0.7)
    assert parse_ratio("0.9:0.1") == pytest.approx(0.9)
    assert [parse_ratio(f"{b}:{10 - b}") for b in range(5, 10)] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    for bad in ("10:0", "0:4", "abc", 1.5, 0.0, "1:2:3"):
        with pytest.raises(DataError):
            parse_ratio(bad)


@pytest.mark.parametrize("ratio", ["5:5", "6:4", "7:3", "8:2", "9:1"])
def test_scene_disjoint_split_respects_ratio(asl_frames, ratio):
    split = make_unpaired(asl_frames, ratio=ratio, seed=1)
    assert split.mode == "split"
    b_clips = {r.clip for r in split.b.records}
    s_clips = {r.clip for r in split.s.records}
    assert not (b_clips & s_clips)
    assert not (set(split.b_scenes) & set(split.s_scenes))
    assert set(split.b_scenes) | set(split.s_scenes) == set(asl_frames.scenes())
    # B's share of all frames (of its scenes) is as near the ratio as whole scenes allow
    sizes = {k: len(v) for k, v in asl_frames.scenes().items()}
    total = sum(sizes.values())
    share = sum(sizes[s] for s in split.b_scenes) / total
    assert abs(share - parse_ratio(ratio)) <= max(sizes.values()) / 2 / total + 1e-9
    # B holds only blurry frames, S only sharp ones (by the learned threshold)
    assert {r.auto_label for r in split.b.records} == {"blurry"}
    assert {r.auto_label for r in split.s.records} == {"sharp"}


def test_per_clip_blur_split_labels_within_each_clip(asl_frames):
    assert asl_frames.threshold_source == "otsu-log10 per-clip"
    for clip, idx in asl_frames.clips().items():
        recs = [asl_frames.records[i] for i in idx]
        blurry = [r.degree for r in recs if r.auto_label == "blurry"]
        sharp = [r.degree for r in recs if r.auto_label == "sharp"]
        assert sharp, clip  # the sharpest moments of every clip are sharp
        if blurry:
            assert max(blurry) < min(sharp), clip  # within a clip the label follows the degree


def test_split_scenes_deterministic_and_needs_two_scenes():
    w = {f"s{i}": float(i + 1) for i in range(10)}
    assert split_scenes(w, "6:4", seed=3) == split_scenes(w, 0.6, seed=3)
    assert len({tuple(split_scenes(w, 0.6, seed=k)[0]) for k in range(6)}) > 1  # the seed matters
    b, s = split_scenes(w, 0.9, seed=0)
    assert b and s and not set(b) & set(s)
    with pytest.raises(DataError, match="at least 2 scenes"):
        split_scenes({"only": 5.0}, 0.6)


def test_labelled_folders_used_whole(asl_clips, tmp_path):
    blurry, sharp = tmp_path / "b", tmp_path / "s"
    blurry.mkdir(), sharp.mkdir()
    for p in asl_clips[:3]:
        shutil.copy(p, blurry / p.name)
    for p in asl_clips[3:5]:
        shutil.copy(p, sharp / p.name)
    data, split = load_unpaired(
        tmp_path / "cache", blurry=blurry, sharp=sharp, options=FrameOptions(max_frames=4),
        batch_size=2, augment=T.AugmentConfig(crop=128), progress=False,
    )
    assert split.mode == "labels"
    assert len(split.b) == 12 and len(split.s) == 8
    assert {r.label for r in split.b.records} == {"blurry"} and {r.label for r in split.s.records} == {"sharp"}
    batch = data.next()
    assert batch.blurry.shape == (2, 3, 128, 128) and batch.sharp.shape == (2, 3, 128, 128)
    # the same clip under both labels is one scene: the split becomes scene-disjoint
    shutil.copy(asl_clips[0], sharp / asl_clips[0].name)
    fs = extract_frames(tmp_path / "cache", blurry=blurry, sharp=sharp, options=FrameOptions(max_frames=4), progress=False)
    split2 = make_unpaired(fs, ratio="6:4", seed=0)
    assert split2.mode == "split"
    assert not {r.scene for r in split2.b.records} & {r.scene for r in split2.s.records}
    with pytest.raises(DataError, match="share scene"):
        make_unpaired(fs, mode="labels")


# ----------------------------------------------------------------------------- sampler

def _batches(ds, n):
    return [ds.next() for _ in range(n)]


def test_sampler_reproducible_and_resumable(asl_frames, tmp_path):
    split = make_unpaired(asl_frames, ratio="6:4", seed=0)
    aug = T.AugmentConfig(crop=64)
    a = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7)
    b = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7)
    for x, y in zip(_batches(a, 2), _batches(b, 2)):
        assert torch.equal(x.blurry, y.blurry) and torch.equal(x.sharp, y.sharp)
        assert x.blurry_ids == y.blurry_ids
    c = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=8)
    assert not torch.equal(c.next().blurry, UnpairedDataset(split.b, split.s, 4, aug, seed=7).next().blurry)

    # resume: save the state after 3 batches (through a real checkpoint file), continue elsewhere
    ref = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7)
    _batches(ref, 3)
    save_state(tmp_path / "s.safetensors", {"data": ref.state_dict()})
    n = len(split.s) // 4 + 2  # crosses an epoch boundary of S
    expect = _batches(ref, n)
    resumed = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7)
    resumed.load_state_dict(load_state(tmp_path / "s.safetensors")[0]["data"])
    got = _batches(resumed, n)
    for x, y in zip(expect, got):
        assert torch.equal(x.blurry, y.blurry) and torch.equal(x.sharp, y.sharp)
    # background prefetching hands out the very same batches and the same resumable state
    with UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7, prefetch=2) as pf:
        first = _batches(pf, 3)
        st = pf.state_dict()
        rest = _batches(pf, n)
    plain = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7)
    for x, y in zip(first + rest, _batches(plain, 3 + n)):
        assert torch.equal(x.blurry, y.blurry) and torch.equal(x.sharp, y.sharp)
    assert torch.equal(st["generator"], load_state(tmp_path / "s.safetensors")[0]["data"]["generator"])
    pf2 = UnpairedDataset(split.b, split.s, batch_size=4, augment=aug, seed=7, prefetch=3)
    pf2.load_state_dict(st)
    for x, y in zip(_batches(pf2, n), expect):
        assert torch.equal(x.blurry, y.blurry)
    pf2.close()
    # every frame of S is visited once per epoch
    n_s = len(split.s)
    ds = UnpairedDataset(split.b, split.s, batch_size=1, augment=aug, seed=0)
    seen = [ds.next().sharp_ids[0] for _ in range(n_s)]
    assert len(set(seen)) == n_s


def test_batch_degrees_and_crop_checks(asl_frames):
    split = make_unpaired(asl_frames, ratio="6:4", seed=0)
    ds = UnpairedDataset(split.b, split.s, batch_size=3, augment=T.AugmentConfig(crop=64), seed=0)
    batch = ds.next()
    assert torch.allclose(batch.blurry_degree, laplacian_variance(batch.blurry))
    assert batch.blurry.dtype == torch.float32 and 0 <= float(batch.blurry.min()) and float(batch.blurry.max()) <= 1
    with pytest.raises(DataError, match="smaller than"):
        UnpairedDataset(split.b, split.s, batch_size=2, augment=T.AugmentConfig(crop=512))


# ----------------------------------------------------------------------------- transforms

@pytest.fixture(scope="module")
def kodak(kodak_images):
    return read_image(kodak_images[0])


def test_transforms_same_generator_state_same_output(kodak):
    cfg = T.AugmentConfig(crop=128, rotation_degrees=10.0)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    x1, p1 = T.augment(kodak, cfg, g)
    g.set_state(state)
    x2, p2 = T.augment(kodak, cfg, g)
    assert p1 == p2 and torch.equal(x1, x2)
    x3, p3 = T.augment(kodak, cfg, g)  # generator moved on: another draw
    assert p3 != p1
    # tensor input gives the same result as the uint8 array
    g.set_state(state)
    x4, _ = T.augment(torch.from_numpy(kodak).permute(2, 0, 1).float() / 255, cfg, g)
    assert torch.allclose(x4, x1, atol=1e-6)


def test_augment_together_keeps_pairs_aligned(kodak):
    cfg = T.AugmentConfig(crop=96)
    g = torch.Generator().manual_seed(0)
    noisy = np.clip(kodak.astype(int) + 9, 0, 255).astype(np.uint8)
    for _ in range(5):
        a, b = T.augment_together([kodak, kodak.copy()], cfg, g)
        assert torch.equal(a, b)
    cfg0 = T.AugmentConfig.none(96)
    a, b = T.augment_together([kodak, noisy], cfg0, g)
    assert torch.allclose(b - a, torch.full_like(a, 9 / 255), atol=1e-6)  # same window, no colour change
    with pytest.raises(ValueError):
        T.augment_together([kodak, kodak[:200]], cfg, g)


def test_geometric_ops_are_exact_and_colour_ops_identity_at_neutral(kodak):
    x = torch.from_numpy(kodak[:64, :96]).permute(2, 0, 1).float() / 255
    assert torch.equal(T.rot90(T.rot90(x, 1), 3), x)
    assert T.rot90(x, 1).shape == (3, 96, 64)
    assert torch.equal(T.hflip(T.hflip(x)), x) and torch.equal(T.vflip(x)[:, 0], x[:, -1])
    assert torch.equal(T.adjust_brightness(x.clone(), 1.0), x)
    assert torch.allclose(T.adjust_contrast(x.clone(), 1.0), x)
    assert torch.allclose(T.adjust_saturation(x.clone(), 1.0), x)
    assert torch.allclose(T.adjust_hue(x.clone(), 0.25 * 4), x, atol=1e-5)  # a full turn
    gray = T.adjust_saturation(x.clone(), 0.0)
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])
    assert torch.allclose(T.adjust_hue(gray.clone(), 0.3), gray, atol=1e-5)  # gray has no hue
    assert float(T.adjust_contrast(x.clone(), 0.0).std()) < 1e-6
    assert torch.allclose(T.rotate(x[None], 0.0), x[None])


# ----------------------------------------------------------------------------- curriculum

def test_curriculum_fraction_schedule():
    f = lambda s: curriculum_fraction(s, start_fraction=0.5, grow_start=200_000, grow_end=400_000)  # noqa: E731
    assert f(0) == 0.5 and f(199_999) == 0.5
    assert f(200_000) == 0.5 and f(300_000) == pytest.approx(0.75) and f(400_000) == 1.0 and f(10**7) == 1.0
    assert curriculum_fraction(10, 0.3, grow_start=5, grow_end=5) == 1.0
    with pytest.raises(ValueError):
        curriculum_fraction(0, start_fraction=0.0)


def test_reblur_degree_orders_one_crop_by_blur_and_ignores_brightness(kodak_images):
    from b2b_train.blur.kernels import random_kernels
    from b2b_train.blur.synth import convolve

    x = torch.from_numpy(read_image(kodak_images[0])).permute(2, 0, 1).float().div(255)[None, :, 100:228, 150:278]
    g = torch.Generator().manual_seed(0)
    blurred = torch.cat([x] + [convolve(x, random_kernels(1, 31, float(e), generator=g)) for e in (3, 7, 13)])
    d = reblur_degree(blurred)
    assert (d[1:] < d[:-1]).all() and (d > 0.999).all()
    assert torch.allclose(reblur_degree(blurred * 0.5), d, rtol=1e-4)  # a ratio: exposure cancels
    with pytest.raises(ValueError, match="larger"):
        reblur_degree(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match="unknown"):
        blur_degrees(blurred, "sobel")


def test_curriculum_measure_ranks_real_crops_by_known_blur_through_noise(shared_data):
    """Across different photos under shake of known extent and strong sensor noise, the re-blur
    measure still follows the extent; the Laplacian variance reads the noise as detail."""
    from benchmarks.curriculum_measure import known_blur_crops, spearman

    paths = sorted((shared_data / "images" / "cbsd68").glob("*.png"))
    crops, extent, _ = known_blur_crops(paths, per_image=3, noise=(2e-3, 0.004), seed=0)
    rho_reblur = spearman(blur_degrees(crops, "reblur").numpy(), extent)
    rho_lap = spearman(blur_degrees(crops, "laplacian").numpy(), extent)
    assert rho_reblur < -0.4
    assert rho_reblur < rho_lap - 0.05


def test_select_blurriest():
    deg = torch.tensor([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0])
    idx = select_blurriest(torch.zeros(8, 3, 4, 4), deg, 0.5)
    assert idx.tolist() == [1, 5, 3, 7]
    assert select_blurriest(8, deg, 1.0).tolist() == torch.argsort(deg).tolist()
    assert select_blurriest(8, deg, 0.01).tolist() == [1]  # at least one
    assert select_blurriest(1, deg[:1], 0.5).tolist() == [0]  # batch 1 (reference code)
    assert select_blurriest(8, deg, curriculum_fraction(300_000, 0.5, 200_000, 400_000)).numel() == 6
    with pytest.raises(ValueError):
        select_blurriest(4, deg, 0.5)
