"""Frames from real clips and images: counts, timestamps, the cache, blur-degree labels, damage."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import cv2
import numpy as np
import pytest

from b2b_train.data import frames as fr
from b2b_train.data.frames import FrameOptions, extract_frames, otsu_threshold
from b2b_train.errors import DataError


def _cv2_frames(path) -> tuple[list[np.ndarray], float]:
    """Independent decode with OpenCV (RGB frames, fps)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f[..., ::-1])
    cap.release()
    return out, fps


@pytest.fixture()
def clip(asl_clips, tmp_path):
    if not asl_clips:
        pytest.skip("no ASL clips")
    dst = tmp_path / "in" / "bird.mkv"
    dst.parent.mkdir()
    shutil.copy(asl_clips[1], dst)  # bird.mkv (the shortest)
    return dst


def test_extract_counts_timestamps_and_pixels(clip, tmp_path):
    ref, fps = _cv2_frames(clip)
    assert len(ref) > 10 and fps > 0
    fs = extract_frames(tmp_path / "cache", unlabelled=clip, progress=False)
    assert len(fs) == len(ref)
    assert [r.index for r in fs.records] == list(range(len(ref)))
    ts = np.array([r.timestamp for r in fs.records])
    assert np.allclose(np.diff(ts), 1.0 / fps, atol=2e-3)
    assert {r.clip for r in fs.records} == {"unlabelled/bird.mkv"}
    assert {r.scene for r in fs.records} == {"bird"}
    # decoded pixels agree with OpenCV's independent decode (same FFmpeg decoder underneath; allow colour-conversion rounding)
    for i in (0, len(ref) // 2, len(ref) - 1):
        diff = np.abs(fs.image(i).astype(int) - ref[i].astype(int))
        assert diff.mean() < 2.0
    # blur degree per frame is the metrics module's Laplacian variance
    from b2b_train.metrics import laplacian_variance_np

    for i in (0, len(ref) - 1):
        assert fs.records[i].degree == pytest.approx(laplacian_variance_np(fs.image(i)), rel=1e-5)
    # manifest is valid JSON and keyed by the source path
    man = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert str(clip.resolve()) in man["sources"]

    # step and max frames per clip
    fs2 = extract_frames(tmp_path / "cache2", unlabelled=clip, options=FrameOptions(step=3, max_frames=5), progress=False)
    assert [r.index for r in fs2.records] == [0, 3, 6, 9, 12]
    assert np.array_equal(fs2.image(2), fs.image(6))


def test_cache_reused_and_changed_clip_reextracted(clip, asl_clips, tmp_path):
    cache = tmp_path / "cache"
    opts = FrameOptions(max_frames=8)
    fs1 = extract_frames(cache, unlabelled=clip, options=opts, progress=False)
    assert fs1.stats == {"extracted": 1, "cached": 0}
    npy = cache / fs1.records[0].file
    mtime = npy.stat().st_mtime_ns
    before = dict(fr.DECODE_STATS)

    fs2 = extract_frames(cache, unlabelled=clip, options=opts, progress=False)
    assert fs2.stats == {"extracted": 0, "cached": 1}
    assert fr.DECODE_STATS == before  # nothing decoded again
    assert npy.stat().st_mtime_ns == mtime
    assert len(fs2) == len(fs1) and np.array_equal(fs2.image(3), fs1.image(3))

    # replace the clip by another one (different size and mtime): re-extracted
    other = next(p for p in asl_clips if p.name == "book.mkv")
    shutil.copy(other, clip)
    os.utime(clip, ns=(mtime + 10**9, mtime + 10**9))
    fs3 = extract_frames(cache, unlabelled=clip, options=opts, progress=False)
    assert fs3.stats == {"extracted": 1, "cached": 0}
    assert fr.DECODE_STATS["videos_decoded"] == before["videos_decoded"] + 1
    first_other = _cv2_frames(other)[0][0]
    assert np.abs(fs3.image(0).astype(int) - first_other.astype(int)).mean() < 2.0
    assert not np.array_equal(fs3.image(0), fs1.image(0))

    # a source that disappeared is forgotten and its cached frames deleted
    other_clip = clip.with_name("gone.mkv")
    shutil.copy(clip, other_clip)
    fs_g = extract_frames(cache, unlabelled=other_clip, options=opts, progress=False)
    gone_file = cache / fs_g.records[0].file
    assert gone_file.is_file()
    other_clip.unlink()
    extract_frames(cache, unlabelled=clip, options=opts, progress=False)
    assert not gone_file.exists()
    assert str(other_clip.resolve()) not in json.loads((cache / "manifest.json").read_text())["sources"]

    # other options (max side) re-extract too, and resize keeps the aspect ratio
    fs4 = extract_frames(cache, unlabelled=clip, options=FrameOptions(max_frames=8, max_side=320), progress=False)
    assert fs4.stats["extracted"] == 1
    assert fs4.image(0).shape == (240, 320, 3)


def test_png_storage_matches_npy(clip, tmp_path):
    a = extract_frames(tmp_path / "a", unlabelled=clip, options=FrameOptions(max_frames=4), progress=False)
    b = extract_frames(tmp_path / "b", unlabelled=clip, options=FrameOptions(max_frames=4, storage="png"), progress=False)
    assert len(a) == len(b) == 4
    for i in range(4):
        assert np.array_equal(a.image(i), b.image(i))


def test_labelled_layout_and_image_sequences(asl_clips, kodak_images, tmp_path):
    root = tmp_path / "cam"
    (root / "blurry").mkdir(parents=True)
    (root / "sharp" / "seq").mkdir(parents=True)
    shutil.copy(asl_clips[0], root / "blurry" / "again.mkv")
    for i, p in enumerate(kodak_images[:3]):
        shutil.copy(p, root / "sharp" / "seq" / f"{i:03d}.png")
    shutil.copy(kodak_images[3], root / "sharp" / "single.png")
    fs = extract_frames(tmp_path / "cache", root, options=FrameOptions(max_frames=6), progress=False)
    labels = {r.clip: r.label for r in fs.records}
    assert labels == {"blurry/again.mkv": "blurry", "sharp/seq": "sharp", "sharp/single.png": "sharp"}
    seq = [r for r in fs.records if r.clip == "sharp/seq"]
    assert [r.index for r in seq] == [0, 1, 2] and all(r.timestamp is None for r in seq)
    assert sum(r.clip == "blurry/again.mkv" for r in fs.records) == 6
    assert fs.threshold is None  # nothing unlabelled


def _blur(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), 2.5)


def test_blur_degree_threshold_separates_sharp_from_blurred(kodak_images, tmp_path):
    src = tmp_path / "pool"
    src.mkdir()
    imgs = kodak_images[:8]
    for p in imgs:
        im = cv2.imread(str(p))
        cv2.imwrite(str(src / f"sharp_{p.stem}.png"), im)
        cv2.imwrite(str(src / f"blur_{p.stem}.png"), _blur(im))
    fs = extract_frames(tmp_path / "cache", unlabelled=src, progress=False)
    assert len(fs) == 2 * len(imgs)
    sharp = [r.degree for r in fs.records if "sharp_" in r.clip]
    blurred = [r.degree for r in fs.records if "blur_" in r.clip]
    assert max(blurred) < fs.threshold < min(sharp)
    assert all(r.auto_label == ("sharp" if "sharp_" in r.clip else "blurry") for r in fs.records)
    assert fs.threshold_source == "otsu-log10"
    man = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert man["last"]["blur_threshold"] == pytest.approx(fs.threshold)
    # each loose image is its own scene (so a split can separate them)
    assert len(fs.scenes()) == 2 * len(imgs)

    # the command line reports the same threshold
    from click.testing import CliRunner

    from b2b_train.data.__main__ import main

    res = CliRunner().invoke(main, ["--unlabelled", str(src), "--cache", str(tmp_path / "cache"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["frames"]["blur_threshold"] == pytest.approx(fs.threshold)
    assert out["frames"]["stats"] == {"extracted": 0, "cached": 2 * len(imgs)}
    assert out["split"]["b_scenes"] + out["split"]["s_scenes"] == 2 * len(imgs)
    assert out["split"]["b_frames"] > 0 and out["split"]["s_frames"] > 0
    # a fixed threshold overrides the learned one
    fs2 = extract_frames(tmp_path / "cache", unlabelled=src, blur_threshold=1e9, progress=False)
    assert fs2.threshold_source.startswith("given") and all(r.auto_label == "blurry" for r in fs2.records)


def test_otsu_threshold_bimodal_and_degenerate():
    rng = np.random.default_rng(0)
    low = 10 ** rng.normal(1.0, 0.1, 200)
    high = 10 ** rng.normal(3.0, 0.1, 50)
    t = otsu_threshold(np.concatenate([low, high]))
    assert low.max() < t < high.min()
    with pytest.raises(DataError):
        otsu_threshold([5.0, 5.0, 5.0])
    with pytest.raises(DataError):
        otsu_threshold([5.0])


def test_truncated_clip_keeps_frames_before_damage(clip, tmp_path):
    full = extract_frames(tmp_path / "c_full", unlabelled=clip, options=FrameOptions(max_frames=40), progress=False)
    cut = tmp_path / "cut" / "bird_cut.mkv"
    cut.parent.mkdir()
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        part = extract_frames(tmp_path / "c_cut", unlabelled=cut, progress=False)
    assert 0 < len(part) < len(full) < len(_cv2_frames(clip)[0])
    for i in range(len(part)):
        assert part.records[i].index == full.records[i].index
        assert np.array_equal(part.image(i), full.image(i))
    assert any("ends early" in str(x.message) and "bird_cut.mkv" in str(x.message) for x in w)


def test_zero_byte_and_corrupt_files(clip, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mkv").write_bytes(b"")
    (bad / "garbage.mp4").write_bytes(os.urandom(4096))
    # a container with a video stream but not one frame
    import av

    c = av.open(str(bad / "noframes.mkv"), "w")
    st = c.add_stream("ffv1", rate=30)
    st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
    c.start_encoding()
    c.close()
    with pytest.raises(DataError, match="noframes.mkv"):
        extract_frames(tmp_path / "c0", unlabelled=bad / "noframes.mkv", progress=False)
    # nothing usable -> one DataError naming the files
    with pytest.raises(DataError) as e:
        extract_frames(tmp_path / "c1", unlabelled=bad, progress=False)
    assert "empty.mkv" in str(e.value) and "garbage.mp4" in str(e.value)
    # zero-byte file alone, strict
    with pytest.raises(DataError, match="empty.mkv"):
        extract_frames(tmp_path / "c2", unlabelled=bad / "empty.mkv", strict=True, progress=False)
    # beside a good clip: skipped with a warning, and listed
    shutil.copy(clip, bad / "good.mkv")
    with pytest.warns(fr.DataWarning, match="empty.mkv"):
        fs = extract_frames(tmp_path / "c3", unlabelled=bad, options=FrameOptions(max_frames=3), progress=False)
    assert {r.clip for r in fs.records} == {"unlabelled/good.mkv"}
    assert sorted(os.path.basename(p) for p, _ in fs.skipped) == ["empty.mkv", "garbage.mp4", "noframes.mkv"]
    man = json.loads((tmp_path / "c3" / "manifest.json").read_text())
    assert len(man["last"]["skipped"]) == 3
    # strict mode refuses the same folder
    with pytest.raises(DataError):
        extract_frames(tmp_path / "c4", unlabelled=bad, strict=True, progress=False)
    # missing input
    with pytest.raises(DataError, match="not found"):
        extract_frames(tmp_path / "c5", unlabelled=tmp_path / "nope", progress=False)
