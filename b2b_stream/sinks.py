"""Where processed frames go: a window, a video file, a landmarks JSONL, a callback, a virtual camera.

Every sink takes :class:`b2b_stream.pipeline.Item` objects (``index``, ``t_capture``, ``raw``,
``image``, ``hands``, ``latency_ms`` ...) through ``write(item)`` and is closed exactly once by
``close()``; files are written so that they stay readable even when the process is killed:

* :class:`VideoSink` writes fragmented MP4 (or MKV) with PyAV and flushes each packet, so a killed
  run leaves a playable file up to the last keyframe interval (1 s).
* :class:`JsonlSink` writes one line per frame, ``{"t", "frame", "hands", ...}``, flushed.
"""

from __future__ import annotations

import fractions
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

# OpenCV must be loaded before PyAV: with av imported first, cv2's Qt window (namedWindow) hangs
# (both wheels bundle their own FFmpeg libraries). Importing cv2 here keeps every b2b path safe.
import cv2  # noqa: F401,E402  isort: skip
import numpy as np

from b2b_train.errors import B2BError

from .avwrite import encode_rgb, flush_and_close

__all__ = [
    "Sink",
    "VideoSink",
    "JsonlSink",
    "CallbackSink",
    "WindowSink",
    "VirtualCamSink",
    "display_available",
    "side_by_side",
    "draw_stats",
]


class Sink:
    """Base class: ``write(item)`` per frame, ``close()`` once. ``stop_requested`` asks the run to end."""

    name = "sink"
    stop_requested = False

    def write(self, item) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------------
# Video file
# --------------------------------------------------------------------------------------------------


class VideoSink(Sink):
    """Encode frames to a video file with PyAV.

    ``.mp4``/``.mov``: H.264 (yuv420p) in fragmented MP4 (``frag_keyframe+empty_moov``), keyframe each
    second, packets flushed, so the file plays even if the process dies. ``.mkv``: H.264 too, or
    ``lossless=True`` for FFV1 (bit-exact RGB). ``what``: ``"image"`` (the deblurred frame), ``"raw"``,
    ``"side"`` (raw | deblurred, hands drawn on the right), ``"overlay"`` (deblurred with hands drawn).
    """

    name = "video"

    def __init__(self, path, fps: float = 30.0, what: str = "image", crf: int = 18, lossless: bool = False,
                 preset: str = "veryfast", index_time: bool = False):
        self.path = Path(path)
        if what not in ("image", "raw", "side", "overlay"):
            raise B2BError(f"unknown video content {what!r} (image, raw, side, overlay)")
        suffix = self.path.suffix.lower()
        if suffix not in (".mp4", ".mov", ".m4v", ".mkv"):
            raise B2BError(f"--out {self.path}: use a .mp4 or .mkv file name")
        parent = self.path.parent
        if not parent.exists():
            raise B2BError(f"--out {self.path}: folder {parent} does not exist")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.what = what
        self.crf = int(crf)
        self.lossless = bool(lossless)
        self.preset = preset
        self.index_time = bool(index_time)  # files: timestamps from frame index / fps, not capture time
        self.frames = 0
        self._container = None
        self._stream = None
        self._size = None
        self._t0 = None
        self._last_pts = -1

    def _open(self, w: int, h: int) -> None:
        import av

        suffix = self.path.suffix.lower()
        if w < 2 or h < 2:  # checked before the file is created: nothing is left behind
            raise B2BError(f"frames of {w}x{h} are too small to write as video ({self.path}); need at least 2x2")
        opts = {"flush_packets": "1"}
        if suffix in (".mp4", ".mov", ".m4v"):
            opts["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        try:
            self._container = av.open(str(self.path), "w", options=opts)
        except Exception as e:
            raise B2BError(f"cannot write {self.path}: {e}") from None
        rate = max(1, int(round(self.fps)))
        if self.lossless and suffix == ".mkv":
            s = self._container.add_stream("ffv1", rate=rate)
            s.pix_fmt = "bgr0"
            self._size = (w, h)
        else:
            s = self._container.add_stream(
                "libx264", rate=rate,
                options={"crf": str(self.crf), "preset": self.preset, "g": str(rate), "tune": "zerolatency"},
            )
            s.pix_fmt = "yuv420p"
            self._size = (w - w % 2, h - h % 2)  # yuv420p needs even sides
        s.width, s.height = self._size
        s.time_base = fractions.Fraction(1, 1000)
        s.codec_context.time_base = fractions.Fraction(1, 1000)
        self._stream = s

    def _frame_of(self, item) -> np.ndarray:
        if self.what == "raw":
            return item.raw
        if self.what == "side":
            from .tracking import draw_hands

            return side_by_side(item.raw, draw_hands(item.image, item.hands) if item.hands else item.image)
        if self.what == "overlay":
            from .tracking import draw_hands

            return draw_hands(item.image, item.hands or [])
        return item.image

    def write(self, item) -> None:
        img = self._frame_of(item)
        if self._container is None:
            self._open(img.shape[1], img.shape[0])
            self._t0 = item.t_capture
        w, h = self._size
        if img.shape[1] != w or img.shape[0] != h:
            if img.shape[1] >= w and img.shape[0] >= h:
                img = img[:h, :w]
            else:
                import cv2

                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        # Timestamps follow capture time, so dropped frames keep real-time playback speed.
        if self.index_time:
            pts = int(round(item.index * 1000.0 / self.fps))
        else:
            pts = int(round((item.t_capture - self._t0) * 1000.0))
        self._last_pts, _ = encode_rgb(self._container, self._stream, img, pts, self._last_pts, self.path, self.frames)
        self.frames += 1

    def close(self) -> None:
        c, self._container = self._container, None
        flush_and_close(c, self._stream)


# --------------------------------------------------------------------------------------------------
# Landmarks JSONL
# --------------------------------------------------------------------------------------------------


class JsonlSink(Sink):
    """One JSON object per frame and line: ``{"t", "frame", "hands", "latency_ms"}``, flushed.

    ``t`` is seconds since the first frame's capture, or, with ``fps`` (files read frame by frame),
    the frame's media time ``frame / fps``; ``frame`` is the source's frame index.
    """

    name = "landmarks"

    def __init__(self, path, fsync_every: int = 0, fps: float | None = None):
        self.path = Path(path)
        if not self.path.parent.exists():
            raise B2BError(f"--landmarks {self.path}: folder {self.path.parent} does not exist")
        try:
            self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise B2BError(f"cannot write {self.path}: {e.strerror}") from None
        self._t0 = None
        self.lines = 0
        self.fsync_every = fsync_every
        self.fps = fps

    def write(self, item) -> None:
        if self._f is None:
            return
        if self._t0 is None:
            self._t0 = item.t_capture
        rec = {
            "t": round(item.index / self.fps if self.fps else item.t_capture - self._t0, 4),
            "frame": int(item.index),
            "hands": item.hands or [],
            "latency_ms": round(float(item.latency_ms), 2) if item.latency_ms is not None else None,
        }
        try:
            self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._f.flush()
            self.lines += 1
            if self.fsync_every and self.lines % self.fsync_every == 0:
                os.fsync(self._f.fileno())
        except OSError as e:
            raise B2BError(f"writing {self.path} failed: {e.strerror}") from None

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()


# --------------------------------------------------------------------------------------------------
# Callback
# --------------------------------------------------------------------------------------------------


class CallbackSink(Sink):
    """Calls ``fn(item)`` for each frame (in the pipeline's output thread); ``fn`` returning False stops."""

    name = "callback"

    def __init__(self, fn: Callable):
        self.fn = fn

    def write(self, item) -> None:
        if self.fn(item) is False:
            self.stop_requested = True


# --------------------------------------------------------------------------------------------------
# Window
# --------------------------------------------------------------------------------------------------


def display_available() -> tuple[bool, str]:
    """(True, "") when a window can be opened, else (False, why)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set)"
    return True, ""


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left | right`` in one image (right resized to left's height if needed)."""

    if right.shape[0] != left.shape[0]:
        scale = left.shape[0] / right.shape[0]
        right = cv2.resize(right, (max(1, int(round(right.shape[1] * scale))), left.shape[0]))
    return np.concatenate([left, right], axis=1)


def draw_stats(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write a few lines of text in the top-left corner on a dark box (in place; returns image)."""

    if not lines:
        return image
    scale = max(0.4, min(1.0, image.shape[0] / 720.0))
    th = int(22 * scale) + 4
    width = max(cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for s in lines) + 12
    box = image[: th * len(lines) + 8, :width]
    box[:] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)
    for i, s in enumerate(lines):
        cv2.putText(image, s, (6, th * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


class WindowSink(Sink):
    """An OpenCV window: raw | deblurred side by side, hands drawn, stats in a corner; q/Esc quits.

    ``stats`` is a callable returning the lines to print (the pipeline passes its live numbers).
    Must be written from one thread (the pipeline uses its main thread).
    """

    name = "window"

    def __init__(self, title: str = "b2b-stream", stats: Callable[[], list[str]] | None = None,
                 draw: bool = True, max_width: int = 1600, labels: tuple[str, str] = ("camera", "deblurred")):
        ok, why = display_available()
        if not ok:
            raise B2BError(f"--show needs a display: {why}; use --out FILE.mp4 to save the result instead")
        self.title = title
        self.stats = stats
        self.draw = draw
        self.max_width = max_width
        self.labels = labels
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise B2BError(f"--show cannot open a window ({str(e).strip().splitlines()[-1]}); use --out FILE.mp4") from None
        self._open = True
        self.frames = 0

    def compose(self, item) -> np.ndarray:
        from .tracking import draw_hands

        right = draw_hands(item.image, item.hands) if (self.draw and item.hands) else item.image
        roi = getattr(item, "roi", None)
        if self.draw and roi:  # --roi hands: the boxes that were deblurred
            right = np.ascontiguousarray(right).copy() if right is item.image else right
            for x, y, w, h in roi:
                cv2.rectangle(right, (x, y), (x + w - 1, y + h - 1), (255, 200, 0), 1, cv2.LINE_AA)
        img = np.ascontiguousarray(side_by_side(item.raw, right))
        labels = getattr(self, "labels", None)
        if labels:
            h, w = item.raw.shape[:2]
            scale = max(0.4, min(1.0, h / 720.0))
            for x0, text in ((0, labels[0]), (w, labels[1])):
                cv2.putText(img, text, (x0 + 8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(img, text, (x0 + 8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        if self.stats is not None:
            img = draw_stats(np.ascontiguousarray(img), self.stats())
        return img

    def write(self, item) -> None:
        if not self._open:
            return
        img = self.compose(item)
        if img.shape[1] > self.max_width:
            s = self.max_width / img.shape[1]
            img = cv2.resize(img, (self.max_width, int(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        cv2.imshow(self.title, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        self.frames += 1
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            self.stop_requested = True
        else:
            try:  # the window's close button
                if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                    self.stop_requested = True
            except cv2.error:
                pass

    def close(self) -> None:
        if self._open:
            import cv2

            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


# --------------------------------------------------------------------------------------------------
# Virtual camera
# --------------------------------------------------------------------------------------------------


class VirtualCamSink(Sink):
    """Send the deblurred frames to a virtual webcam (pyvirtualcam: v4l2loopback, OBS, Unity capture)."""

    name = "virtual-cam"

    def __init__(self, width: int, height: int, fps: float, device: str | None = None):
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError:
            raise B2BError(
                "--virtual-cam needs pyvirtualcam (pip install pyvirtualcam) and a virtual camera device "
                "(Linux: v4l2loopback; Windows/macOS: OBS Virtual Camera)"
            ) from None
        import pyvirtualcam

        try:
            self.cam = pyvirtualcam.Camera(width=int(width), height=int(height), fps=float(fps or 30),
                                           fmt=pyvirtualcam.PixelFormat.RGB, device=device)
        except Exception as e:
            raise B2BError(f"--virtual-cam: no virtual camera available ({e})") from None
        self.size = (int(width), int(height))
        self.device = getattr(self.cam, "device", device)

    def write(self, item) -> None:
        img = item.image
        if (img.shape[1], img.shape[0]) != self.size:
            import cv2

            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        self.cam.send(np.ascontiguousarray(img))

    def close(self) -> None:
        cam, self.cam = getattr(self, "cam", None), None
        if cam is not None:
            cam.close()


class SlowSink(Sink):
    """Sleeps ``delay`` seconds per frame: a deliberately slow consumer for tests and soak runs."""

    name = "slow"

    def __init__(self, delay: float):
        self.delay = float(delay)
        self.frames = 0
        self._lock = threading.Lock()

    def write(self, item) -> None:
        time.sleep(self.delay)
        self.frames += 1
