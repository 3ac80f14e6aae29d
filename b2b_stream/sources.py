"""Frame sources: webcams, video files, image folders and the shipped ``demo`` clip.

Every source yields :class:`Frame` objects (``index``, ``t_capture`` from :func:`time.monotonic`,
``image`` as uint8 HxWx3 **RGB**)::

    with open_source("0", width=640, height=480, fps=30) as src:     # webcam 0
        for frame in src:
            ...

``spec`` is a webcam index (``0``; ``pyav:0`` reads it through PyAV's v4l2 / avfoundation / dshow
input, which can have less latency than OpenCV), a device path (``/dev/video0``), a stream URL
(``rtsp://...``), a video file, a folder of images, or ``demo`` (a short real clip shipped with the
package, so everything works on a machine without a camera).

Two ways of delivering frames:

* **live** (cameras, and files/folders/demo with ``realtime=True``): a grabber thread reads at the
  source's own pace and keeps only the newest frame; a slow consumer gets the latest one and the
  frames it never saw are counted in ``skipped``. A camera that delivers nothing for
  ``stall_timeout`` (1 s) is reported, released and reopened with back-off; after
  ``reconnect_timeout`` without a frame it is declared lost and the source ends cleanly.
* **pull** (files and folders by default): each :meth:`Source.read` decodes the next frame, so a
  consumer sees every frame, as fast as it can take them.

When ``width``/``height`` are given, delivered frames have that size (resized if the source gives
another); :meth:`Source.info` reports the requested, native and delivered size and fps.
"""

from __future__ import annotations

import collections
import glob
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

# OpenCV must be loaded before PyAV: with av imported first, cv2's Qt window (namedWindow) hangs
# (both wheels bundle their own FFmpeg libraries). Importing cv2 here keeps every b2b path safe.
import cv2  # noqa: F401,E402  isort: skip
import numpy as np

from b2b_train.errors import DataError

__all__ = [
    "Frame",
    "Source",
    "SourceError",
    "open_source",
    "demo_path",
    "list_cameras",
    "parse_spec",
    "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".gif")
ASSETS = Path(__file__).resolve().parent / "assets"
HINT = "give a webcam index (0), a video file, a folder of images, or 'demo'"


class SourceError(DataError):
    """A source cannot be opened or delivers nothing usable."""


@dataclass(frozen=True)
class Frame:
    """One captured frame: running index, capture time (``time.monotonic()``), uint8 HxWx3 RGB."""

    index: int
    t_capture: float
    image: np.ndarray


class _EndOfStream(Exception):
    """Raised by a capture when a file/folder has no more frames."""


def demo_path() -> Path:
    """The clip behind the ``demo`` camera (see ``assets/ATTRIBUTION.md``)."""
    return ASSETS / "demo.mkv"


# --------------------------------------------------------------------------------------------------
# Captures: the small objects that actually read frames. read() -> RGB uint8 | None (no frame this
# time: a camera hiccup) | raises _EndOfStream. They are created by an opener so they can be reopened.
# --------------------------------------------------------------------------------------------------


def _quiet_opencv():
    try:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except Exception:  # pragma: no cover - old OpenCV without utils.logging
        pass


class _CvCapture:
    """Adapter for ``cv2.VideoCapture`` (or anything with its isOpened/read/get/set/release)."""

    def __init__(self, cap, name: str = "opencv"):
        self.cap = cap
        self.name = name

    def read(self):

        ok, img = self.cap.read()
        if not ok or img is None:
            return None
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if img.shape[2] == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def props(self) -> dict:

        out = {"backend": self.name}
        names = {
            "width": cv2.CAP_PROP_FRAME_WIDTH,
            "height": cv2.CAP_PROP_FRAME_HEIGHT,
            "fps": cv2.CAP_PROP_FPS,
            "exposure": cv2.CAP_PROP_EXPOSURE,
            "auto_exposure": cv2.CAP_PROP_AUTO_EXPOSURE,
            "gain": cv2.CAP_PROP_GAIN,
            "brightness": cv2.CAP_PROP_BRIGHTNESS,
            "fourcc": cv2.CAP_PROP_FOURCC,
        }
        for key, prop in names.items():
            try:
                v = float(self.cap.get(prop))
            except Exception:
                continue
            if v == -1 or v != v:  # not supported / NaN
                continue
            if key == "fourcc":
                code = int(v)
                out[key] = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00") if code else None
            elif key in ("width", "height"):
                out[key] = int(v)
            else:
                out[key] = v
        return out

    def release(self):
        try:
            self.cap.release()
        except Exception:
            pass


class _AvLiveCapture:
    """A device or network stream read with PyAV (v4l2 / avfoundation / dshow / rtsp)."""

    def __init__(self, url: str, fmt: str | None, options: dict):
        import av

        try:
            self.container = av.open(url, format=fmt, options=options, timeout=(5.0, 1.0))
        except Exception as e:  # av.error.* -> one line
            raise SourceError(f"cannot open {url} with PyAV{' (' + fmt + ')' if fmt else ''}: {e}") from None
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self._frames = self.container.decode(self.stream)
        self.name = f"pyav-{fmt or 'stream'}"

    def read(self):
        try:
            return next(self._frames).to_ndarray(format="rgb24")
        except StopIteration:
            return None
        except Exception:
            return None

    def props(self) -> dict:
        s = self.stream
        rate = s.average_rate or s.guessed_rate
        return {
            "backend": self.name,
            "width": s.codec_context.width,
            "height": s.codec_context.height,
            "fps": float(rate) if rate else None,
            "pixel_format": s.codec_context.pix_fmt,
        }

    def release(self):
        try:
            self.container.close()
        except Exception:
            pass


def _video_error(path: Path, e: Exception) -> SourceError:
    msg = str(e).split(";")[0].strip() or type(e).__name__
    return SourceError(f"{path}: not a readable video ({msg})")


class _FileCapture:
    """A video file decoded with PyAV; at the end it loops or raises _EndOfStream."""

    def __init__(self, path: Path, loop: bool = False):
        self.path = path
        self.loop = loop
        self.loops = 0
        self.container = None
        self._any = False
        self._open()

    def _open(self):
        import av

        if self.container is not None:
            self.container.close()
        try:
            self.container = av.open(str(self.path))
        except Exception as e:
            raise _video_error(self.path, e) from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self._frames = self.container.decode(self.stream)

    def read(self):
        for _attempt in range(2):
            try:
                img = next(self._frames).to_ndarray(format="rgb24")
                self._any = True
                return img
            except StopIteration:
                pass
            except Exception as e:  # corrupt data mid-file: end there instead of crashing the run
                if not self._any:
                    raise _video_error(self.path, e) from None
            if not self.loop:
                raise _EndOfStream
            self.loops += 1
            self._open()
        raise _EndOfStream

    def props(self) -> dict:
        s = self.stream
        rate = s.average_rate or s.guessed_rate
        frames = s.frames or None
        dur = float(self.container.duration / 1e6) if self.container.duration else None
        return {
            "backend": "pyav-file",
            "width": s.codec_context.width,
            "height": s.codec_context.height,
            "fps": float(rate) if rate else None,
            "frames": frames,
            "duration_s": dur,
            "codec": s.codec_context.name,
        }

    def release(self):
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass


def _read_image_rgb(path: Path) -> np.ndarray:
    """Any 8/16-bit, gray/RGB/RGBA image -> uint8 HxWx3 RGB (DataError naming the file if unreadable)."""
    from b2b_train.data.io import read_image  # b2b_train.data imports torch: only image folders need it

    return read_image(path)


class _FolderCapture:
    """Images of a folder in name order; every image is brought to the first one's size."""

    def __init__(self, paths: list[Path], loop: bool = False):
        self.paths = paths
        self.loop = loop
        self.pos = 0
        self.size = None

    def read(self):

        if self.pos >= len(self.paths):
            if not self.loop:
                raise _EndOfStream
            self.pos = 0
        img = _read_image_rgb(self.paths[self.pos])
        self.pos += 1
        if self.size is None:
            self.size = (img.shape[1], img.shape[0])
        elif (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        return img

    def props(self) -> dict:
        return {"backend": "images", "frames": len(self.paths)}

    def release(self):
        pass


# --------------------------------------------------------------------------------------------------
# The Source
# --------------------------------------------------------------------------------------------------


class Source:
    """An iterable of :class:`Frame`; see the module docstring. Use :func:`open_source` to make one."""

    def __init__(
        self,
        spec: str,
        kind: str,
        opener: Callable[[], object],
        *,
        live: bool,
        reconnect: bool = False,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        pace_fps: float | None = None,
        stall_timeout: float = 1.0,
        reconnect_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.25, 2.0),
        first_frame_timeout: float = 5.0,
        on_event: Callable[[str], None] | None = None,
    ):
        self.spec = str(spec)
        self.kind = kind
        self.live = live
        self.requested = {"width": width, "height": height, "fps": fps}
        self.stall_timeout = float(stall_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        self.backoff = backoff
        self.on_event = on_event
        self.events: collections.deque = collections.deque(maxlen=200)
        self.end_reason: str | None = None
        self.frames = 0  # frames handed to the consumer
        self.skipped = 0  # live: frames overwritten before the consumer took them
        self.reconnects = 0
        self.stalls = 0
        self._opener = opener
        self._reconnect = reconnect
        self._pace_fps = pace_fps
        self._closed = False
        self._size = (int(width), int(height)) if width and height else None
        self._native: dict = {}
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._returned = -1
        self._produced = 0
        self._ended = False
        self._gen = 0
        self._intervals: collections.deque = collections.deque(maxlen=60)
        self._pending: Frame | None = None

        self._cap = self._opener()
        self._native = self._cap_props(self._cap)
        if live:
            now = time.monotonic()
            self._last_frame_t = now
            self._opened_t = now
            self._start_grabber(self._cap)
            first = self._wait_first(first_frame_timeout)
            if first is None:
                err = self.end_reason
                self.close()
                raise SourceError(
                    f"{self.kind} {self.spec!r} opened but delivered no frame within {first_frame_timeout:g} s"
                    + (f" ({err})" if err and err != "stopped" else "")
                )
        else:
            first = self._pull()
            if first is None:
                self.close()
                raise SourceError(f"{self.spec}: has no frames")
            self._pending = first
        self.height, self.width = first.image.shape[:2]
        native_fps = self._native.get("fps")
        self.fps = float(fps or pace_fps or native_fps or 30.0)

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _cap_props(cap) -> dict:
        try:
            return dict(cap.props())
        except Exception:
            return {}

    def _event(self, message: str) -> None:
        self.events.append({"t": time.monotonic(), "message": message})
        if self.on_event is not None:
            try:
                self.on_event(message)
            except Exception:
                pass

    def _fit(self, img: np.ndarray) -> np.ndarray:
        if "native_width" not in self._native:
            self._native["native_width"], self._native["native_height"] = img.shape[1], img.shape[0]
        if self._size is not None and (img.shape[1], img.shape[0]) != self._size:
            import cv2

            img = cv2.resize(img, self._size, interpolation=cv2.INTER_AREA)
        if not img.flags.c_contiguous:
            img = np.ascontiguousarray(img)
        return img

    # ---------------------------------------------------------------- pull mode
    def _pull(self) -> Frame | None:
        while True:
            try:
                img = self._cap.read()
            except _EndOfStream:
                self.end_reason = self.end_reason or "end of input"
                return None
            if img is not None:
                break
        t = time.monotonic()
        frame = Frame(self._produced, t, self._fit(img))
        self._produced += 1
        return frame

    # ---------------------------------------------------------------- live mode
    def _start_grabber(self, cap) -> None:
        self._gen += 1
        gen = self._gen
        th = threading.Thread(target=self._grab_loop, args=(gen, cap), name=f"b2b-grab-{self.kind}", daemon=True)
        th.start()
        self._thread = th

    def _grab_loop(self, gen: int, cap) -> None:
        pace = self._pace_fps
        t0 = time.monotonic()
        k = 0
        while not self._closed and gen == self._gen:
            if pace:
                due = t0 + k / pace
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1.0:  # fell far behind (e.g. machine busy): resynchronise
                    t0 = time.monotonic()
                    k = 0
            try:
                img = cap.read()
            except _EndOfStream:
                with self._cond:
                    if gen == self._gen:
                        self._ended = True
                        self.end_reason = self.end_reason or "end of input"
                        self._cond.notify_all()
                return
            except Exception as e:  # a capture bug must not kill the thread silently
                img = None
                if gen == self._gen:
                    self._event(f"capture error: {e}")
                time.sleep(0.05)
            if gen != self._gen or self._closed:
                return
            k += 1
            if img is None:
                time.sleep(0.005)
                continue
            img = self._fit(img)
            t = time.monotonic()
            with self._cond:
                if gen != self._gen:
                    return
                if self._produced:
                    self._intervals.append(t - self._last_frame_t)
                self._latest = Frame(self._produced, t, img)
                self._produced += 1
                self._last_frame_t = t
                self._cond.notify_all()

    def _wait_first(self, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._ended and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._latest

    def _read_live(self) -> Frame | None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return None
                    latest = self._latest
                    if latest is not None and latest.index > self._returned:
                        self.skipped += latest.index - self._returned - 1
                        self._returned = latest.index
                        return latest
                    if self._ended:
                        return None
                    since = time.monotonic() - max(self._last_frame_t, self._opened_t)
                    left = self.stall_timeout - since
                    if left <= 0:
                        break
                    self._cond.wait(min(left, 0.1))
            # No frame for stall_timeout.
            if not self._reconnect:
                self.stalls += 1
                self._event(f"{self.kind} {self.spec!r}: no frame for {self.stall_timeout:g} s, still waiting")
                self._opened_t = time.monotonic()
                continue
            if not self._reopen():
                return None

    def _reopen(self) -> bool:
        """Release the stalled capture and reopen with back-off; False when the camera is lost."""
        self.stalls += 1
        self._event(f"{self.kind} {self.spec!r} stopped delivering (no frame for {self.stall_timeout:g} s); reopening")
        with self._cond:
            self._gen += 1  # orphan the old grabber thread (it may be stuck inside read())
        old = self._cap
        threading.Thread(target=old.release, name="b2b-release", daemon=True).start()
        delay = self.backoff[0]
        attempt = 0
        while not self._closed:
            if time.monotonic() - self._last_frame_t >= self.reconnect_timeout:
                break
            attempt += 1
            try:
                cap = self._opener()
            except Exception as e:
                self._event(f"reopen attempt {attempt} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            else:
                self._cap = cap
                self.reconnects += 1
                self._opened_t = time.monotonic()
                self._start_grabber(cap)
                self._event(f"{self.kind} {self.spec!r} reopened (attempt {attempt})")
                return True
            left = self.reconnect_timeout - (time.monotonic() - self._last_frame_t)
            time.sleep(max(0.0, min(delay, left)))
            delay = min(delay * 2, self.backoff[1])
        if self._closed:
            return False
        self.end_reason = "camera lost"
        self._event(f"{self.kind} {self.spec!r} lost: no frame for {self.reconnect_timeout:g} s, giving up")
        return False

    # ---------------------------------------------------------------- public
    def read(self) -> Frame | None:
        """The next frame (live: the newest one not yet returned), or None at the end."""
        if self._closed:
            return None
        if self._pending is not None:  # read at open to learn the size: stamp it now it is handed out
            frame, self._pending = self._pending, None
            frame = Frame(frame.index, time.monotonic(), frame.image)
        elif self.live:
            frame = self._read_live()
        else:
            frame = self._pull()
        if frame is not None:
            self.frames += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    @property
    def measured_fps(self) -> float | None:
        iv = list(self._intervals)
        if len(iv) < 5:
            return None
        med = float(np.median(iv))
        return 1.0 / med if med > 0 else None

    def info(self) -> dict:
        """Requested vs native vs delivered size/fps, plus camera properties and counters."""
        nat = {
            "width": self._native.get("native_width", self._native.get("width")),
            "height": self._native.get("native_height", self._native.get("height")),
            "fps": self._native.get("fps"),
        }
        extra = {k: v for k, v in self._native.items() if k not in ("width", "height", "fps", "native_width", "native_height")}
        return {
            "spec": self.spec,
            "kind": self.kind,
            "live": self.live,
            "requested": dict(self.requested),
            "native": nat,
            "delivered": {"width": self.width, "height": self.height, "fps": self.fps},
            "measured_fps": self.measured_fps,
            "properties": extra,
            "frames": self.frames,
            "skipped": self.skipped,
            "stalls": self.stalls,
            "reconnects": self.reconnects,
            "end_reason": self.end_reason,
            "events": [e["message"] for e in list(self.events)],
        }

    def describe(self) -> str:
        r = self.requested
        req = ""
        if r["width"] or r["fps"]:
            req = f" (asked {r['width'] or '?'}x{r['height'] or '?'}@{r['fps'] or '?'})"
        mode = "live" if self.live else "every frame"
        return f"{self.kind} {self.spec}: {self.width}x{self.height} @ {self.fps:.3g} fps{req}, {mode}"

    def close(self) -> None:
        if self._closed:
            return
        with self._cond:
            self._closed = True
            self._gen += 1
            self.end_reason = self.end_reason or "stopped"
            self._cond.notify_all()
        th = getattr(self, "_thread", None)
        if th is not None and th is not threading.current_thread():
            th.join(timeout=1.0)
        cap = getattr(self, "_cap", None)
        if cap is not None:
            if th is not None and th.is_alive():  # stuck in read(): release in the background
                threading.Thread(target=cap.release, daemon=True).start()
            else:
                cap.release()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Source {self.describe()}>"


# --------------------------------------------------------------------------------------------------
# Opening by spec
# --------------------------------------------------------------------------------------------------


def parse_spec(spec) -> tuple[str, object]:
    """Classify a source spec -> (kind, value): camera/pyav/device/url/file/folder/demo."""
    if isinstance(spec, int):
        return "camera", spec
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    s = str(spec).strip()
    if s == "demo":
        return "demo", demo_path()
    if s.isdigit():
        return "camera", int(s)
    for prefix in ("opencv:", "cv:"):
        if s.startswith(prefix) and s[len(prefix):].isdigit():
            return "camera", int(s[len(prefix):])
    for prefix in ("pyav:", "v4l2:", "av:"):
        if s.startswith(prefix):
            return "pyav", s[len(prefix):]
    if "://" in s:
        return "url", s
    if s.startswith("/dev/video"):
        return "device", s
    p = Path(s).expanduser()
    if p.is_dir():
        return "folder", p
    if p.is_file():
        return "file", p
    return "missing", p


def _video_devices() -> list[int]:
    out = []
    for dev in glob.glob("/dev/video*"):
        tail = dev[len("/dev/video"):]
        if tail.isdigit():
            out.append(int(tail))
    return sorted(out)


def _camera_missing(index: int) -> SourceError:
    found = _video_devices() if sys.platform.startswith("linux") else []
    listed = ", ".join(str(i) for i in found) if found else "none"
    return SourceError(
        f"camera {index} not found (cameras found: {listed}); {HINT} (b2b-stream sources lists cameras)"
    )


def _opencv_opener(index_or_url, width, height, fps) -> Callable[[], _CvCapture]:
    def opener():

        _quiet_opencv()
        if isinstance(index_or_url, int):
            if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index_or_url}"):
                raise _camera_missing(index_or_url)
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            cap = cv2.VideoCapture(index_or_url, api)
        else:
            cap = cv2.VideoCapture(str(index_or_url))
        if not cap.isOpened():
            cap.release()
            if isinstance(index_or_url, int):
                raise _camera_missing(index_or_url)
            raise SourceError(f"cannot open {index_or_url}")
        try:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we keep only the newest frame anyway
        except Exception:
            pass
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        return _CvCapture(cap, "opencv-v4l2" if isinstance(index_or_url, int) and sys.platform.startswith("linux") else "opencv")

    return opener


def _pyav_opener(target: str, width, height, fps) -> Callable[[], _AvLiveCapture]:
    def opener():
        options = {}
        if width and height:
            options["video_size"] = f"{int(width)}x{int(height)}"
        if fps:
            options["framerate"] = f"{fps:g}"
        if "://" in target:
            return _AvLiveCapture(target, None, {"fflags": "nobuffer", "flags": "low_delay"})
        if sys.platform.startswith("linux"):
            dev = f"/dev/video{target}" if target.isdigit() else target
            if not os.path.exists(dev):
                raise _camera_missing(int(target)) if target.isdigit() else SourceError(f"no such device {dev}")
            options.setdefault("input_format", "mjpeg")  # most webcams give full fps only as MJPEG
            try:
                return _AvLiveCapture(dev, "v4l2", options)
            except SourceError:
                options.pop("input_format")
                return _AvLiveCapture(dev, "v4l2", options)
        if sys.platform == "darwin":
            options.setdefault("pixel_format", "uyvy422")
            return _AvLiveCapture(f"{target}:none" if target.isdigit() else target, "avfoundation", options)
        if sys.platform.startswith("win"):
            name = target if target.startswith("video=") else f"video={target}"
            return _AvLiveCapture(name, "dshow", options)
        raise SourceError(f"PyAV camera input is not supported on {sys.platform}; use the OpenCV index instead")

    return opener


def open_source(
    spec,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    *,
    realtime: bool | None = None,
    loop: bool | None = None,
    stall_timeout: float = 1.0,
    reconnect_timeout: float = 10.0,
    first_frame_timeout: float = 5.0,
    on_event: Callable[[str], None] | None = None,
    opener: Callable[[], object] | None = None,
) -> Source:
    """Open a frame source; see the module docstring for ``spec``.

    ``realtime``: files/folders/demo are played at their native pace (or ``fps``) through a
    latest-frame grabber like a camera; default False for files and folders, True for ``demo``.
    ``loop``: start again at the end (soak tests); default True for ``demo`` only.
    ``opener``: for tests and embedding, a callable returning a ``cv2.VideoCapture``-like object
    (isOpened/read/get/set/release), used as a live camera with stall detection and reopening.
    Raises :class:`SourceError` (one clear line) when the source cannot be opened.
    """
    if width is not None or height is not None:
        if not (width and height) or int(width) <= 0 or int(height) <= 0:
            raise SourceError(f"give both a positive width and height (got {width}x{height})")
    if fps is not None and fps <= 0:
        raise SourceError(f"fps must be positive (got {fps})")
    common = dict(width=width, height=height, fps=fps, stall_timeout=stall_timeout,
                  reconnect_timeout=reconnect_timeout, on_event=on_event, first_frame_timeout=first_frame_timeout)

    if opener is not None:
        def wrapped():
            cap = opener()
            if hasattr(cap, "isOpened") and not cap.isOpened():
                raise SourceError(f"camera {spec!r} did not open")
            return _CvCapture(cap, getattr(cap, "name", "custom")) if hasattr(cap, "isOpened") else cap

        return Source(str(spec), "camera", wrapped, live=True, reconnect=True, **common)

    kind, value = parse_spec(spec)
    if kind == "camera":
        return Source(str(value), "camera", _opencv_opener(value, width, height, fps), live=True, reconnect=True, **common)
    if kind in ("pyav", "device"):
        return Source(str(spec), "camera", _pyav_opener(str(value), width, height, fps), live=True, reconnect=True, **common)
    if kind == "url":
        return Source(str(value), "stream", _opencv_opener(str(value), None, None, None), live=True, reconnect=True, **common)
    if kind == "missing":
        raise SourceError(f"source {str(spec)!r} not found: {HINT}")

    if kind == "folder":
        paths = sorted(p for p in Path(value).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise SourceError(f"{value}: no images ({', '.join(IMAGE_SUFFIXES[:4])}...) in this folder")
        do_loop = bool(loop)
        op = lambda: _FolderCapture(paths, loop=do_loop)  # noqa: E731
        name = "folder"
    else:  # file or demo
        path = Path(value)
        if kind == "demo" and not path.is_file():
            raise SourceError(f"the demo clip is missing from the installation ({path})")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            single = [path]
            do_loop = bool(loop)
            op = lambda: _FolderCapture(single, loop=do_loop)  # noqa: E731
            name = "image"
        else:
            do_loop = bool(loop) if loop is not None else kind == "demo"
            op = lambda: _FileCapture(path, loop=do_loop)  # noqa: E731
            name = kind
    rt = bool(realtime) if realtime is not None else kind == "demo"
    pace = None
    if rt:
        if fps:
            pace = float(fps)
        else:
            probe = op()
            pace = float(Source._cap_props(probe).get("fps") or 30.0)
            probe.release()
    return Source(str(spec), name, op, live=rt, reconnect=False, pace_fps=pace, **common)


def list_cameras(max_index: int = 10) -> list[dict]:
    """Webcams that open and deliver a frame: ``[{"index", "width", "height", "fps", "backend"}]``."""
    _quiet_opencv()
    if sys.platform.startswith("linux"):
        candidates = _video_devices()
    else:
        candidates = list(range(max_index))
    found = []
    for i in candidates:
        try:
            src = open_source(i, first_frame_timeout=2.0)
        except Exception:
            continue
        try:
            info = src.info()
            found.append({
                "index": i,
                "width": src.width,
                "height": src.height,
                "fps": info["native"].get("fps"),
                "backend": info["properties"].get("backend"),
            })
        finally:
            src.close()
    return found
