"""The hands-under-blur benchmark's pieces: the simulated camera (b2b_train.data.exposure) and the
landmark scorer (b2b_stream.landmark_metrics), on a few real frames and on hand-made inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from b2b_stream.landmark_metrics import ClipScore, bbox_diagonal, landmark_error, match_by_wrist, score_clip
from b2b_train.data.exposure import (CameraSim, clip_flows, exposure_instants, integrate_exposure, interpolate,
                                     simulate_camera, tone_curve)
from b2b_train.data.io import iter_video_frames
from b2b_train.errors import DataError

SIZE = (160, 120)


@pytest.fixture(scope="module")
def few_frames(asl_clips):
    frames = [cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
              for _i, _t, img in iter_video_frames(asl_clips[0], max_frames=6)]
    assert len(frames) == 6
    return frames


# ------------------------------------------------------------------------------------- exposure


def test_instants_are_symmetric_about_the_middle():
    t = exposure_instants(5.0, 3.0, 4)
    assert len(t) == 12
    assert t.min() > 3.5 and t.max() < 6.5
    assert abs(t.mean() - 5.0) < 1e-12


def test_clip_keeps_count_order_and_its_references(one_torch_thread, few_frames):
    sim = CameraSim(exposure=2, shake_px=0.5, tone=0.15, shot_noise=1e-3, read_noise=4e-3, jpeg_quality=85)
    clip = simulate_camera(few_frames, sim)
    assert clip.blurry.shape == (6, SIZE[1], SIZE[0], 3) and clip.blurry.dtype == np.uint8
    assert np.array_equal(clip.reference, np.stack(few_frames))  # the exposure's middle instant is frame i
    assert list(clip.centres) == list(range(6))
    # order: each blurry frame is closest to its own reference, not a neighbour's
    for i in range(6):
        d = [np.abs(clip.blurry[i].astype(float) - f).mean() for f in few_frames]
        assert int(np.argmin(d)) == i, d
    again = simulate_camera(few_frames, sim)
    assert np.array_equal(again.blurry, clip.blurry)  # pure: same inputs and seed, same frames


def test_exposure_one_without_extras_is_the_interpolated_average(one_torch_thread, few_frames):
    flows = clip_flows(few_frames)
    clip = simulate_camera(few_frames, CameraSim(exposure=1, samples_per_interval=4), flows=flows)
    lin = [(f.astype(np.float32) / 255) ** 2.2 for f in few_frames]
    i = 3
    samples = [interpolate(lin[int(np.floor(t))], lin[int(np.floor(t)) + 1], *flows[int(np.floor(t))], t - np.floor(t))
               for t in exposure_instants(i, 1, 4)]
    expect = np.clip(np.mean(samples, 0), 0, 1) ** (1 / 2.2) * 255
    assert np.abs(clip.blurry[i] - expect).max() <= 1.01
    assert np.array_equal(clip.reference[i], few_frames[i])
    # interpolating at the frames themselves gives the frames
    assert np.allclose(interpolate(lin[0], lin[1], *flows[0], 0.0), lin[0])
    assert np.allclose(interpolate(lin[0], lin[1], *flows[0], 1.0), lin[1])


def _square_clip(n=5, speed=4, side=12, size=(96, 64)):
    """A textured bright square sliding right by ``speed`` px a frame on a dark background."""
    rng = np.random.default_rng(0)
    tex = (150 + 100 * rng.random((side, side, 1))).repeat(3, 2)
    frames = []
    for k in range(n):
        img = np.full((size[1], size[0], 3), 20.0)
        x0 = 20 + speed * k
        img[26:26 + side, x0:x0 + side] = tex
        frames.append(img.astype(np.uint8))
    return frames


def _column_profile(img):
    return img[26:38].astype(float).mean((0, 2)) - 20


@pytest.mark.parametrize("exposure", [1, 2, 3])
def test_moving_square_makes_a_streak_centred_on_the_reference(exposure):
    speed, side = 4, 12
    frames = _square_clip(speed=speed, side=side)
    clip = simulate_camera(frames, CameraSim(exposure=exposure, samples_per_interval=8))
    i = 2
    ref, blur = _column_profile(clip.reference[i]), _column_profile(clip.blurry[i])
    x = np.arange(len(ref))
    centre = lambda p: float((x * p.clip(0)).sum() / p.clip(0).sum())  # noqa: E731
    assert abs(centre(blur) - centre(ref)) < 1.0
    # the streak is longer than the square by about the distance travelled during the exposure
    lit = lambda p: int((p > 0.05 * p.max()).sum())  # noqa: E731
    assert lit(blur) >= side + exposure * speed - 3
    assert lit(blur) <= side + exposure * speed + 4
    assert blur.max() < ref.max()  # spread out, so dimmer


def test_shake_is_zero_at_the_middle_instant():
    lin = [np.random.default_rng(1).random((20, 30, 3)).astype(np.float32)] * 2
    zero = np.zeros((20, 30, 2), np.float32)
    still = integrate_exposure(lin, [(zero, zero)], 0.5, 1e-3, 1, velocity=(50.0, 0.0))
    assert np.allclose(still, lin[0], atol=1e-5)


def test_tone_curve_is_monotone_and_fixes_ends():
    import torch

    x = torch.linspace(0, 1, 101)
    y = tone_curve(x, 0.5)
    assert torch.all(y[1:] >= y[:-1]) and y[0] == 0 and y[-1] == 1 and abs(float(y[50]) - 0.5) < 1e-6
    assert float(y[25]) < 0.25 < 0.75 < float(y[75])  # an S: darker shadows, brighter highlights


def test_bad_settings_fail_clearly():
    with pytest.raises(DataError, match="exposure"):
        CameraSim(exposure=0)
    with pytest.raises(DataError, match="tone"):
        CameraSim(tone=1.5)
    with pytest.raises(DataError, match="one size"):
        simulate_camera([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)], CameraSim())


# -------------------------------------------------------------------------------------- scorer


def _hand(x0=100.0, y0=80.0, w=40.0, h=60.0, size=(320, 240)):
    """A hand-like set of 21 points in a w x h box at (x0, y0), as the tracker gives it (normalised)."""
    rng = np.random.default_rng(int(x0 * 7 + y0))
    pts = np.column_stack([x0 + w * rng.random(21), y0 + h * rng.random(21)])
    pts[0] = [x0 + w / 2, y0 + h]  # the wrist
    pts[1] = [x0, y0]
    pts[2] = [x0 + w, y0 + h]  # pin the box to exactly w x h
    return {"landmarks": [[x / size[0], y / size[1], 0.0] for x, y in pts]}


def _shifted(hand, dx, dy, size=(320, 240)):
    return {"landmarks": [[x + dx / size[0], y + dy / size[1], z] for x, y, z in hand["landmarks"]]}


def test_identical_landmarks_score_zero():
    ref = [[_hand()], [_hand(102)], [], [_hand(104), _hand(220, 60)]]
    s = score_clip(ref, ref, (320, 240)).summary()
    assert s["error_mean"] == 0 and s["detection_share"] == 1 and s["false_hands"] == 0
    assert s["hand_recall"] == 1


def test_shifted_copy_gives_shift_over_diagonal():
    size, d = (320, 240), 5.0
    ref = [[_hand()] for _ in range(4)]
    got = [[_shifted(h[0], 3.0, 4.0)] for h in ref]  # a 3-4-5 shift: d = 5 px
    diag = float(np.hypot(40, 60))
    s = score_clip(ref, got, size).summary()
    assert s["error_mean"] == pytest.approx(d / diag, rel=1e-4)
    from b2b_stream.landmark_metrics import hand_points

    r = hand_points(ref[0][0], size)
    assert bbox_diagonal(r) == pytest.approx(diag, rel=1e-4)
    assert landmark_error(r, r + [3.0, 4.0]) == pytest.approx(d / diag)


def test_detection_share_and_false_hands():
    size = (320, 240)
    h = _hand()
    far = _hand(250, 10)  # wrist far from the reference's: not this hand
    ref = [[h], [h], [h], [h], [], [], []]
    got = [[h], [], [far], [_shifted(h, 2, 0)], [far], [], [h, far]]
    sc = score_clip(ref, got, size)
    s = sc.summary()
    assert s["reference_frames"] == 4 and s["detection_share"] == pytest.approx(2 / 4)
    assert s["empty_frames"] == 3 and s["false_hands"] == 3 and s["false_hand_share"] == pytest.approx(2 / 3)
    both = (sc + sc).summary()  # pooling two clips keeps the shares and doubles the counts
    assert both["detection_share"] == s["detection_share"] and both["false_hands"] == 6


def test_match_by_wrist_pairs_nearest_and_rejects_far():
    size = (320, 240)
    from b2b_stream.landmark_metrics import hand_points

    a, b = hand_points(_hand(40), size), hand_points(_hand(200), size)
    assert match_by_wrist([a, b], [b + 1, a - 1]) == [(0, 1), (1, 0)]
    assert match_by_wrist([a], [b]) == []


def test_jitter_counts_only_still_reference_frames():
    size = (320, 240)
    still = [[_hand()] for _ in range(5)]
    shaky = [[_shifted(still[k][0], 2.0 * (-1) ** k, 0)] for k in range(5)]  # 4 px back and forth each frame
    s = score_clip(still, shaky, size).summary()
    assert s["jitter_hands"] == 4
    assert s["jitter_mean"] == pytest.approx(4 / np.hypot(40, 60), rel=1e-4)
    moving = [[_hand(100 + 20 * k)] for k in range(5)]  # the reference moves: no jitter samples
    assert score_clip(moving, moving, size).summary()["jitter_hands"] == 0
    assert ClipScore().summary()["jitter_mean"] is None


def test_paired_error_compares_on_hands_both_found():
    size = (320, 240)
    ref = [[_hand()], [_hand(150)], [_hand(200)]]
    easy_only = [[_shifted(ref[0][0], 1, 0)], [], []]  # finds only the first hand, 1 px off
    all_found = [[_shifted(ref[0][0], 2, 0)], [_shifted(ref[1][0], 10, 0)], [_shifted(ref[2][0], 10, 0)]]
    a, b = score_clip(ref, easy_only, size), score_clip(ref, all_found, size)
    from b2b_stream.landmark_metrics import paired_error

    (ea, eb), n = paired_error(a, b)
    assert n == 1
    diag = np.hypot(40, 60)
    assert ea == pytest.approx(1 / diag, rel=1e-4) and eb == pytest.approx(2 / diag, rel=1e-4)
    assert b.summary()["error_mean"] > eb  # the plain mean includes the hard hands
    assert paired_error(a, ClipScore()) == ([None, None], 0)


def test_benchmark_tracks_every_frame_through_the_stream(one_torch_thread, few_frames, hand_model):
    """The benchmark's tracking goes through b2b_stream.open (the `b2b-stream run` pipeline) and loses no frame."""
    from b2b_stream.pipeline import make_engine
    from benchmarks.hands_blur import track

    hands, images = track(few_frames[:4], make_engine(None, "none"), hand_model, keep_images=True)
    assert len(hands) == len(images) == 4
    assert np.array_equal(images[2], few_frames[2])  # the identity engine passes frames through, in order
    assert all(isinstance(h, list) for h in hands)
    assert any(len(h["landmarks"]) == 21 for frame in hands for h in frame)
