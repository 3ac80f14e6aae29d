"""One-Euro landmark smoothing: the filter, per-hand tracks, and --smooth on real tracked hands."""

from __future__ import annotations

import numpy as np
import pytest

from b2b_stream.smoothing import LandmarkSmoother, SmoothedTracker, one_euro
from b2b_train.errors import B2BError

FPS = 30.0


def _hand(points: np.ndarray, label: str = "Right") -> dict:
    return {"handedness": label, "score": 0.9, "landmarks": points.tolist()}


def _pose(centre=(0.5, 0.5), size=0.2) -> np.ndarray:
    rng = np.random.default_rng(7)
    pts = np.zeros((21, 3))
    pts[:, :2] = np.asarray(centre) + (rng.random((21, 2)) - 0.5) * size
    return pts


def test_one_euro_passes_a_constant_and_smooths_noise_more_at_low_speed():
    st = None
    for k in range(30):
        st = one_euro(st, np.full(4, 0.3), k / FPS, min_cutoff=1.0, beta=4.0)
    assert np.allclose(st.value, 0.3)
    rng = np.random.default_rng(0)
    noisy = 0.5 + rng.normal(0, 0.01, 300)
    out, st = [], None
    for k, v in enumerate(noisy):
        st = one_euro(st, np.array([v]), k / FPS, min_cutoff=1.0, beta=0.0)
        out.append(st.value[0])
    assert np.std(np.diff(out)) < 0.3 * np.std(np.diff(noisy))
    # a ramp: a higher beta follows it more closely (less lag)
    ramp = np.linspace(0, 1, 60)
    lags = []
    for beta in (0.0, 20.0):
        st = None
        for k, v in enumerate(ramp):
            st = one_euro(st, np.array([v]), k / FPS, min_cutoff=1.0, beta=beta)
        lags.append(ramp[-1] - st.value[0])
    assert 0 < lags[1] < 0.5 * lags[0]
    same = one_euro(st, np.array([5.0]), st.t)  # a repeated time stamp changes nothing
    assert same is st


def test_smoother_steadies_a_still_hand_and_keeps_two_hands_apart():
    rng = np.random.default_rng(1)
    left, right = _pose((0.3, 0.5)), _pose((0.7, 0.5))
    sm = LandmarkSmoother()
    raw_motion, out_motion, prev_raw, prev_out = [], [], None, None
    for k in range(90):
        jl = left + rng.normal(0, 0.003, left.shape)
        jr = right + rng.normal(0, 0.003, right.shape)
        out = sm([_hand(jl, "Left"), _hand(jr, "Right")], k / FPS)
        assert [h["handedness"] for h in out] == ["Left", "Right"]
        got = np.asarray(out[0]["landmarks"])
        if prev_raw is not None:
            raw_motion.append(np.abs(jl - prev_raw).mean())
            out_motion.append(np.abs(got - prev_out).mean())
        prev_raw, prev_out = jl, got
        assert np.abs(np.asarray(out[1]["landmarks"])[:, 0] - 0.7).max() < 0.12  # right stays right
    assert np.mean(out_motion) < 0.5 * np.mean(raw_motion)


def test_smoother_restarts_a_hand_lost_for_long_and_errors_on_bad_settings():
    sm = LandmarkSmoother(reset_s=0.5)
    a, b = _pose((0.3, 0.5)), _pose((0.32, 0.5))
    sm([_hand(a)], 0.0)
    sm([_hand(a)], 1 / FPS)
    moved = np.asarray(sm([_hand(b)], 2 / FPS)[0]["landmarks"])
    assert not np.allclose(moved, b, atol=1e-4)  # same track: smoothed toward the old pose
    back = np.asarray(sm([_hand(b)], 2.0)[0]["landmarks"])  # after 2 s unseen: a new hand
    assert np.allclose(back, b, atol=1e-5)
    assert sm([], 2.1) == []
    with pytest.raises(ValueError):
        LandmarkSmoother(min_cutoff=0)


def test_smooth_lowers_jitter_of_real_tracked_hands(asl_clips):
    """MediaPipe on a real ASL clip, then --smooth's filter: less frame-to-frame shimmer where the
    hand holds still (reference: the raw track smoothed non-causally, as benchmarks/smoothing.py)."""
    from b2b_stream.landmark_metrics import score_clip
    from b2b_stream.pipeline import StreamConfig, make_tracker
    from b2b_train.data.io import iter_video_frames
    from benchmarks.smoothing import centred_reference, single_hand_tracks

    frames = list(iter_video_frames(asl_clips[0], max_frames=45))
    with make_tracker("hands", None, StreamConfig()) as raw_tr:
        raw = [raw_tr.track(img, t) for _i, t, img in frames]
    with make_tracker("hands", None, StreamConfig(smooth=True)) as sm_tr:
        assert isinstance(sm_tr, SmoothedTracker)
        smoothed = [sm_tr.track(img, t) for _i, t, img in frames]
        assert sm_tr.frames == len(frames)  # the tracker's counters show through
    assert sum(bool(h) for h in raw) >= 30
    ref = centred_reference(single_hand_tracks(raw))
    ref_hands = [[{"landmarks": r.tolist()}] if not np.isnan(r[0, 0]) else [] for r in ref]
    size = frames[0][2].shape[1::-1]
    jit_raw = score_clip(ref_hands, raw, size).summary()["jitter_mean"]
    jit_sm = score_clip(ref_hands, smoothed, size).summary()["jitter_mean"]
    assert jit_sm < 0.85 * jit_raw
    with pytest.raises(B2BError, match="smoothing"):
        make_tracker("hands", None, StreamConfig(smooth=True, smooth_min_cutoff=-1.0))
