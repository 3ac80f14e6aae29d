"""--roi hands: boxes around the tracked hands, fixed sizes, pasted back, whole frame when needed."""

from __future__ import annotations

import numpy as np
import pytest

from b2b_stream.roi import Box, RoiEngine, bucket_box, hand_boxes, hands_box, paste
from b2b_train.errors import B2BError


def _hand(cx: float, cy: float, size: float = 0.1) -> dict:
    """21 landmarks on a circle of diameter ``size`` (normalised) around (cx, cy)."""
    a = np.linspace(0, 2 * np.pi, 21, endpoint=False)
    return {"handedness": "Right", "score": 0.9,
            "landmarks": [[cx + size / 2 * np.cos(t), cy + size / 2 * np.sin(t), 0.0] for t in a]}


class Recorder:
    """A stand-in engine: adds 1 to every pixel (so the deblurred box is visible) and records the sizes it saw."""

    backend, device, precision = "stand-in", "cpu", "fp32"

    def __init__(self, size):
        self.size = size
        self.calls = 0
        self.closed = False

    def __call__(self, frame):
        assert (frame.shape[1], frame.shape[0]) == self.size  # static shapes: only its own size
        self.calls += 1
        return frame + 1

    def close(self):
        self.closed = True


def test_boxes_follow_a_moving_hand_stay_inside_the_frame_and_use_fixed_sizes():
    w, h = 640, 480
    buckets = [160, 224, 288]
    sizes = set()
    for cx in np.linspace(-0.02, 1.02, 27):  # a hand crossing the frame, partly outside at both ends
        cy = 0.5 + 0.45 * np.sin(3 * cx)
        raw = hands_box([_hand(cx, cy)], w, h, margin=0.5)
        box = bucket_box(raw, buckets, w, h)
        assert box is not None
        assert 0 <= box.x and box.x + box.w <= w and 0 <= box.y and box.y + box.h <= h
        assert box.w >= raw.w and box.h >= raw.h
        # the box holds every landmark that is inside the frame
        for x, y, _ in _hand(cx, cy)["landmarks"]:
            if 0 <= x < 1 and 0 <= y < 1:
                assert box.x <= x * w <= box.x + box.w and box.y <= y * h <= box.y + box.h
        sizes.add((box.w, box.h))
    assert sizes <= {(b, b) for b in buckets}
    # two hands far apart: no bucket holds both, so one box each
    apart = [_hand(0.1, 0.5), _hand(0.9, 0.5)]
    assert bucket_box(hands_box(apart, w, h), buckets, w, h) is None
    two = hand_boxes(apart, buckets, w, h)
    assert len(two) == 2 and two[0].x + two[0].w < two[1].x
    # two hands touching: one box holds both in fewer pixels than two
    close = [_hand(0.48, 0.5), _hand(0.52, 0.5)]
    one = hand_boxes(close, buckets, w, h)
    assert len(one) == 1 and one[0] == bucket_box(hands_box(close, w, h), buckets, w, h)
    # near but apart: one box would need a 288 px bucket, two 160 px ones cost less
    assert len(hand_boxes([_hand(0.45, 0.5), _hand(0.55, 0.5)], buckets, w, h)) == 2
    # a hand too large for any bucket: None (whole frame); no hands: no boxes
    assert hand_boxes([_hand(0.5, 0.5, 0.6)], buckets, w, h) is None and hand_boxes([], buckets, w, h) == []
    assert hands_box([], w, h) is None and bucket_box(None, buckets, w, h) is None
    # buckets larger than the frame are clipped to it
    assert bucket_box(Box(0, 0, 100, 100), [300], 320, 240) == Box(0, 0, 300, 240)


def test_paste_changes_only_the_box():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    box = Box(30, 20, 64, 48)
    out = paste(frame, np.zeros((48, 64, 3), np.uint8), box)
    mask = np.zeros(frame.shape[:2], bool)
    mask[20:68, 30:94] = True
    assert np.array_equal(out[~mask], frame[~mask]) and not out[mask].any()
    assert frame.any()  # the input is not modified
    with pytest.raises(ValueError):
        paste(frame, np.zeros((10, 10, 3), np.uint8), box)


def test_roi_engine_deblurs_the_box_around_the_last_hands_and_the_whole_frame_otherwise():
    built = {}

    def make(size):
        built[size] = Recorder(size)
        return built[size]

    eng = RoiEngine(make, (640, 480), buckets=[160, 224, 352, 512], margin=0.5, full_every=4)
    # 512x480 covers 80 % of the frame: no gain, not built; the others are built once, up front
    assert set(built) == {(640, 480), (160, 160), (224, 224), (352, 352)}
    frame = np.full((480, 640, 3), 10, np.uint8)
    assert (eng(frame) == 11).all() and eng.last_boxes is None  # frame 0: periodic whole frame
    assert (eng(frame) == 11).all() and eng.last_boxes is None  # no hand tracked yet
    eng.observe_hands([_hand(0.3, 0.4, 0.15)])
    out = eng(frame)
    assert eng.last_boxes is not None and len(eng.last_boxes) == 1
    box = eng.last_boxes[0]
    assert (box.w, box.h) == (224, 224)
    inside = np.zeros(frame.shape[:2], bool)
    inside[box.y : box.y + box.h, box.x : box.x + box.w] = True
    assert (out[inside] == 11).all() and (out[~inside] == 10).all()  # raw outside the box
    eng(frame)
    assert eng.last_boxes == [box]  # frame 3: the same hand, the same box
    eng(frame)
    assert eng.last_boxes is None  # frame 4: whole frame again
    eng.observe_hands([_hand(0.1, 0.5), _hand(0.9, 0.5)])  # far apart: a box each
    out = eng(frame)
    assert len(eng.last_boxes) == 2 and (out == 11).sum() == sum(b.area for b in eng.last_boxes) * 3
    eng.observe_hands([_hand(0.5, 0.5, 0.6)])  # too large for any bucket
    eng(frame)
    assert eng.last_boxes is None
    rep = eng.report()
    assert rep["frames_roi"] == 3 and rep["frames_full"] == 4 and [160, 160] in rep["buckets"]
    with pytest.raises(B2BError, match="640x480"):
        eng(np.zeros((240, 320, 3), np.uint8))
    eng.close()
    assert all(e.closed for e in built.values())
    with pytest.raises(B2BError):
        RoiEngine(make, (640, 480), buckets=[8])
    with pytest.raises(B2BError):
        RoiEngine(make, (640, 480), margin=-1)


def test_roi_pipeline_on_a_real_clip_boxes_the_tracked_hands(asl_clips, hand_model):
    """The real pipeline: MediaPipe tracks the pasted frames and the box follows the hands it tracked."""
    from b2b_stream.pipeline import Pipeline, StreamConfig, make_tracker
    from b2b_stream.sources import open_source

    built = {}

    def make(size):
        built[size] = Recorder(size)
        return built[size]

    src = open_source(str(asl_clips[0]), 640, 480)
    cfg = StreamConfig(roi="hands", roi_full_every=10)
    eng = RoiEngine(make, (src.width, src.height), buckets=cfg.roi_buckets, margin=cfg.roi_margin,
                    full_every=cfg.roi_full_every)
    items = []
    pipe = Pipeline(src, eng, make_tracker("hands", hand_model, cfg), max_frames=30, config=cfg, status=False)
    pipe.on_item = items.append
    rep = pipe.run()
    assert rep["frames_out"] == 30 and rep["roi"]["frames_roi"] > 10
    def inside_box(hands, x, y, w, h):
        pts = np.array([p[:2] for hand in hands for p in hand["landmarks"]]) * [640, 480]
        pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < 640) & (pts[:, 1] >= 0) & (pts[:, 1] < 480)]
        return bool(((pts[:, 0] >= x - 1) & (pts[:, 0] <= x + w + 1) & (pts[:, 1] >= y - 1) & (pts[:, 1] <= y + h + 1)).all())

    boxed = 0
    for i, item in enumerate(items):
        if item.roi is None:
            continue
        inside = np.zeros(item.raw.shape[:2], bool)
        for x, y, w, h in item.roi:
            inside[y : y + h, x : x + w] = True
        assert np.array_equal(item.image[~inside], item.raw[~inside])
        assert np.array_equal(item.image[inside], item.raw[inside] + 1)
        # every hand tracked a frame or two before (tracking runs in its own thread) lies in one of the boxes
        assert any(all(any(inside_box([hand], *b) for b in item.roi) for hand in p.hands)
                   for p in items[max(0, i - 3) : i] if p.hands)
        boxed += 1
    assert boxed > 10


def test_window_draws_the_deblurred_boxes():
    from b2b_stream.pipeline import Item
    from b2b_stream.sinks import WindowSink

    raw = np.full((120, 160, 3), 40, np.uint8)
    sink = WindowSink.__new__(WindowSink)  # compose() needs no display
    sink.draw, sink.stats = True, None
    item = Item(0, 0.0, raw, image=raw.copy(), roi=[[20, 30, 64, 48]])
    right = sink.compose(item)[:, 160:]
    assert (right[30, 20:84] != 40).any() and (right[77, 20:84] != 40).any()  # top and bottom edges
    assert (right[40:70, 30:74] == 40).all() and (right[:, 100:] == 40).all()  # inside and outside untouched
    assert (item.image == 40).all()  # the frame itself is not drawn on


def test_roi_hands_without_tracking_is_refused_before_anything_opens():
    import b2b_stream
    from b2b_stream.roi import require_tracking

    require_tracking("hands", "hands")
    require_tracking("none", "none")
    with pytest.raises(B2BError, match="--track hands"):
        b2b_stream.open(camera="no-such-camera.mp4", roi="hands", track="none")
