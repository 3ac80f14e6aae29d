"""Guided recording of sharp and blurry clips into a camera profile.

Clips are written losslessly (libx264rgb CRF 0 in MKV by default, or FFV1 RGB) so training sees the
camera's real blur and noise, bit for bit. The writer flushes every packet and Matroska needs no
index to be read, so a recording killed at any moment (Ctrl-C, ``kill``, ``kill -9``, power loss)
leaves a playable clip up to shortly before the kill. A JSON of metadata is written beside the
clip when recording starts and refreshed every few seconds and at the end (``complete: true``).
"""

from __future__ import annotations

import datetime as _dt
import fractions
import json
import os
import platform
import signal
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

__all__ = ["GUIDANCE", "ClipWriter", "record_clip", "write_json_atomic", "read_clip_frames", "pick_codec"]

GUIDANCE = {
    "sharp": (
        "SHARP clip: good light, keep the camera steady and move your hands SLOWLY. "
        "Show the scene and the hands the way you will use them, so the frames are crisp."
    ),
    "blurry": (
        "BLURRY clip: move NATURALLY AND QUICKLY - wave and sign with your hands, turn, pan the camera - "
        "the way motion blurs this camera in real use. Same place and light as the sharp clips."
    ),
}
CODECS = {"ffv1": ("ffv1", "bgr0"), "x264rgb": ("libx264rgb", "rgb24")}


def pick_codec(codec: str = "auto") -> str:
    """``auto``: libx264rgb CRF 0 when this PyAV has it (about twice FFV1's speed at 720p on a small
    CPU, so a live recording keeps up), else FFV1. Both are bit-exact."""
    if codec != "auto":
        if codec not in CODECS:
            raise B2BError(f"unknown clip codec {codec!r} (choices: auto, {', '.join(CODECS)})")
        return codec
    import av

    try:
        av.codec.Codec("libx264rgb", "w")
        return "x264rgb"
    except Exception:
        return "ffv1"


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ClipWriter:
    """Lossless RGB video writer (MKV): ``write(rgb_uint8, t_seconds)``, ``close()``."""

    def __init__(self, path, width: int, height: int, fps: float, codec: str = "auto"):
        import av

        codec = pick_codec(codec)
        self.path = Path(path)
        self.codec = codec
        name, pix = CODECS[codec]
        try:
            self.container = av.open(str(self.path), "w", format="matroska", options={"flush_packets": "1"})
        except Exception as e:
            raise B2BError(f"cannot write {self.path}: {e}") from None
        opts = {"g": "1", "level": "3", "slicecrc": "1"} if name == "ffv1" else {"crf": "0", "preset": "ultrafast", "g": str(max(1, int(round(fps))))}
        self.stream = self.container.add_stream(name, rate=max(1, int(round(fps))), options=opts)
        self.stream.width = int(width)
        self.stream.height = int(height)
        self.stream.pix_fmt = pix
        self.stream.time_base = fractions.Fraction(1, 1000)
        self.stream.codec_context.time_base = fractions.Fraction(1, 1000)
        self.frames = 0
        self._last_pts = -1
        self.bytes = 0

    def write(self, image: np.ndarray, t_seconds: float) -> None:
        self._last_pts, size = encode_rgb(
            self.container, self.stream, image, int(round(t_seconds * 1000.0)), self._last_pts, self.path,
            self.frames, note="; the clip so far stays playable",
        )
        self.bytes += size
        self.frames += 1

    def close(self) -> None:
        c, self.container = self.container, None
        flush_and_close(c, self.stream)


def read_clip_frames(path) -> list[np.ndarray]:
    """All frames of a clip as uint8 RGB (for checks and tests; small clips only)."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


class _StopOnSignal:
    """While recording (main thread only): Ctrl-C / SIGTERM set ``stop`` so the loop ends between two
    frames and closes the clip; a second signal interrupts at once (KeyboardInterrupt)."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.signalled = False

    def __enter__(self):
        self.old = {}
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                if self.stop.is_set():
                    raise KeyboardInterrupt
                self.signalled = True
                self.stop.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc):
        for sig, h in self.old.items():
            signal.signal(sig, h)


MIN_SIDE = 32  # smaller frames cannot give the translator's crops


def record_clip(
    source,
    path,
    label: str,
    *,
    seconds: float | None = None,
    codec: str = "auto",
    countdown: float = 3.0,
    preview=None,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    extra_meta: dict | None = None,
    stop: threading.Event | None = None,
) -> dict:
    """Record ``source`` into ``path`` (MKV) with a JSON of metadata beside it; returns the metadata.

    ``seconds``: how long (live sources: wall time; files: media time at the source fps); None
    records until the source ends (files) or until Ctrl-C / q. ``countdown``: seconds of preview
    before recording starts (live sources only). ``preview``: an object with ``show(rgb, lines) ->
    bool keep_going`` (see :class:`b2b_stream.commands.record.Preview`), or None.
    Ctrl-C / SIGTERM / q stop early and keep a playable clip (``stopped_early: true``).
    """
    say = say or (lambda m: None)
    codec = pick_codec(codec)
    if label not in GUIDANCE:
        raise B2BError(f"unknown label {label!r} (sharp, blurry)")
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if min(int(source.width), int(source.height)) < MIN_SIDE:
        raise B2BError(
            f"{source.spec}: frames are {source.width}x{source.height}, too small to learn a camera's blur from "
            f"(at least {MIN_SIDE}x{MIN_SIDE})"
        )
    info = source.info()
    fps = float(source.fps)
    meta = {
        "label": label,
        "camera": source.spec,
        "source_kind": source.kind,
        "live": bool(source.live),
        "width": int(source.width),
        "height": int(source.height),
        "fps": fps,
        "requested": info.get("requested"),
        "native": info.get("native"),
        "properties": info.get("properties"),
        "exposure": (info.get("properties") or {}).get("exposure"),
        "codec": CODECS[codec][0],
        "pix_fmt": CODECS[codec][1],
        "lossless": True,
        "clip": path.name,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "frames": 0,
        "seconds": 0.0,
        "complete": False,
        "stopped_early": False,
    }
    meta.update(extra_meta or {})
    stop = stop or threading.Event()
    max_frames = int(round(seconds * fps)) if (seconds and not source.live) else None

    prog = None
    task = None
    writer = None
    try:
        with _StopOnSignal(stop) as signals:
            # ---- countdown (live sources only): preview without recording
            if source.live and countdown and countdown > 0:
                t_end = time.monotonic() + countdown
                last_said = None
                while not stop.is_set():
                    left = t_end - time.monotonic()
                    if left <= 0:
                        break
                    n = int(np.ceil(left))
                    if n != last_said:
                        say(f"recording starts in {n}...")
                        last_said = n
                    frame = source.read()
                    if frame is None:
                        raise B2BError(f"{source.spec}: the source ended during the countdown")
                    if preview is not None and not preview.show(frame.image, [f"starting in {n}", GUIDANCE[label][:60]]):
                        stop.set()
                if stop.is_set():
                    meta["stopped_early"] = True
                    say("stopped before recording started; nothing written")
                    return meta

            writer = ClipWriter(path, source.width, source.height, fps, codec)
            write_json_atomic(meta_path, meta)
            if progress:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

                total = float(seconds) if seconds else (None if source.live else (info.get("properties") or {}).get("duration_s"))
                from rich.console import Console

                prog = Progress(TextColumn(f"[bold red]REC[/] {label}"), BarColumn(), TextColumn("{task.fields[frames]} frames"),
                                TimeElapsedColumn(), TimeRemainingColumn(), transient=False, console=Console(stderr=True))
                prog.start()
                task = prog.add_task("rec", total=total, frames=0)
            t0 = None
            last_meta = time.monotonic()
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    meta["end_reason"] = source.end_reason
                    break
                if t0 is None:
                    t0 = frame.t_capture
                t_rel = (frame.t_capture - t0) if source.live else writer.frames / fps
                if seconds and source.live and t_rel >= seconds:
                    break
                writer.write(frame.image, t_rel)
                meta["frames"] = writer.frames
                meta["seconds"] = round(writer.frames / fps if not source.live else t_rel + 1.0 / fps, 3)
                if prog is not None:
                    prog.update(task, completed=meta["seconds"], frames=writer.frames)
                if preview is not None:
                    lines = [f"REC {meta['seconds']:.1f}s" + (f" / {seconds:g}s" if seconds else ""), f"{label}: q/Esc stops"]
                    if not preview.show(frame.image, lines):
                        meta["stopped_early"] = bool(seconds)
                        break
                if max_frames is not None and writer.frames >= max_frames:
                    break
                if time.monotonic() - last_meta > 2.0:  # keep the JSON close to the truth if killed
                    write_json_atomic(meta_path, meta)
                    last_meta = time.monotonic()
            if signals.signalled:
                meta["stopped_early"] = True
                say("interrupted: closing the clip (it stays playable)")
    except KeyboardInterrupt:
        meta["stopped_early"] = True
        say("interrupted: closing the clip (it stays playable)")
    except B2BError as e:
        meta["error"] = str(e)
        raise
    finally:
        if prog is not None:
            prog.stop()
        if writer is not None:
            writer.close()
            meta["frames"] = writer.frames
            meta["source_skipped"] = int(getattr(source, "skipped", 0))  # live: frames the writer could not keep up with
            meta["bytes"] = path.stat().st_size if path.exists() else 0
            meta["complete"] = "error" not in meta
            meta["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            try:
                write_json_atomic(meta_path, meta)
            except OSError:
                pass
    if writer is not None and writer.frames == 0:
        for p in (path, meta_path):
            try:
                p.unlink()
            except OSError:
                pass
        raise B2BError(f"{source.spec}: no frames were recorded")
    return meta
