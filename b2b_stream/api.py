"""Python API: a deblurred, hand-tracked camera stream as an iterator or a callback.

    import b2b_stream

    for frame in b2b_stream.open(camera=0, profile="desk"):
        frame.image      # deblurred uint8 HxWx3 RGB
        frame.raw        # what the camera gave
        frame.hands      # [{"handedness", "score", "landmarks": [[x, y, z] * 21]}]
        frame.latency_ms # capture -> here

    with b2b_stream.open(camera="clip.mp4", track="none") as stream:
        for frame in stream:
            ...
        print(stream.report())

    # callback form: runs in a background thread until the source ends or stream.close()
    stream = b2b_stream.open(camera=0, callback=lambda f: print(f.index, len(f.hands)))
    stream.wait()

The stream runs :class:`b2b_stream.pipeline.Pipeline` in a background thread; frames the consumer is
too slow to take are dropped (oldest first) for live sources, so what it gets is always recent.
Breaking out of the loop, ``close()`` or leaving the ``with`` block stops everything and closes the
camera.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .pipeline import _END, Pipeline, Slot, StreamConfig, make_engine, make_tracker
from .roi import require_tracking

__all__ = ["StreamFrame", "Stream", "open"]


@dataclass(frozen=True)
class StreamFrame:
    """One processed frame as seen by an application."""

    image: np.ndarray
    raw: np.ndarray
    hands: list
    t_capture: float
    latency_ms: float
    index: int


class Stream:
    """Iterator / context manager over :class:`StreamFrame`; see the module docstring."""

    def __init__(self, pipeline: Pipeline, callback: Callable[[StreamFrame], object] | None = None,
                 buffer: int = 2, owns_engine: bool = False):
        self.pipeline = pipeline
        self._owns_engine = owns_engine
        self.callback = callback
        policy = "latest" if getattr(pipeline.source, "live", False) else "block"
        self._slot = Slot(max(1, int(buffer)), policy, "app")
        self._report: dict | None = None
        self.error: BaseException | None = None
        pipeline.on_item = self._on_item
        self._thread = threading.Thread(target=self._run, name="b2b-stream", daemon=True)
        self._thread.start()

    def _on_item(self, item) -> None:
        frame = StreamFrame(item.image, item.raw, item.hands or [], item.t_capture, float(item.latency_ms), item.index)
        if self.callback is not None:
            if self.callback(frame) is False:
                self.pipeline.stop("stopped by the callback")
        else:
            self._slot.put(frame)

    def _run(self) -> None:
        try:
            self._report = self.pipeline.run()
        except BaseException as e:  # noqa: BLE001 - surfaced to the consumer
            self.error = e
            self._report = self.pipeline.report()
        finally:
            self._slot.close()
            close = getattr(self.pipeline.engine, "close", None)
            if self._owns_engine and callable(close):
                try:
                    close()
                except Exception:
                    pass

    # -- iteration
    def __iter__(self):
        return self

    def __next__(self) -> StreamFrame:
        if self.callback is not None:
            raise TypeError("this stream delivers frames to its callback; call wait() instead of iterating")
        item = self._slot.get()
        if item is _END:
            self._thread.join()
            if self.error is not None:
                raise self.error
            raise StopIteration
        return item

    def read(self, timeout: float | None = None) -> StreamFrame | None:
        """The next frame, or None at the end (or on timeout)."""
        item = self._slot.get(timeout)
        return None if item is _END else item

    # -- control
    @property
    def source(self):
        return self.pipeline.source

    @property
    def engine(self):
        return self.pipeline.engine

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the stream ends; returns the report (re-raises a pipeline error)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self.error is not None:
            raise self.error
        return self._report

    def close(self) -> dict:
        """Stop the stream, close the camera and the tracker; returns the report."""
        self.pipeline.stop("closed by the application")
        self._slot.abort()
        self._thread.join(10.0)
        return self.report()

    def report(self) -> dict:
        return self._report if self._report is not None else self.pipeline.report()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if self._thread.is_alive():
                self.pipeline.stop("stream garbage-collected")
        except Exception:
            pass


def open(  # noqa: A001 - b2b_stream.open(camera=0) reads naturally
    camera=0,
    profile=None,
    backend: str = "auto",
    track: str = "hands",
    *,
    precision: str = "fp32",
    device: str = "auto",
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    realtime: bool | None = None,
    loop: bool | None = None,
    max_frames: int | None = None,
    hand_model=None,
    callback: Callable[[StreamFrame], object] | None = None,
    sinks=(),
    config: StreamConfig | None = None,
    engine=None,
    home=None,
    lite: bool = False,
    smooth: bool | None = None,
    roi: str | None = None,
) -> Stream:
    """Open a camera (index, file, folder, ``demo``) and stream deblurred, hand-tracked frames.

    Args:
        camera: a source spec for :func:`b2b_stream.sources.open_source`.
        profile: camera profile name (None: the shipped default deblurrer alone).
        backend, precision, device: engine choice (see :func:`b2b_stream.engines.get_engine`);
            ``backend="none"`` skips deblurring.
        track: ``"hands"`` or ``"none"``.
        callback: if given, called with each :class:`StreamFrame` in a background thread (return
            False to stop); otherwise iterate over the returned stream.
        engine: an already built engine (any callable frame -> frame) instead of building one.
        lite: run the profile's distilled network alone (``b2b-stream calibrate --lite``): one
            network at the deblurrer's speed instead of translator + deblurrer.
        smooth: One-Euro smoothing of the landmarks (``--smooth``; None: as ``config`` says, off by default).
        roi: ``"hands"`` deblurs only a box around the tracked hands (``--roi hands``; None: as ``config`` says).
    """
    from .sources import open_source

    cfg = config or StreamConfig()
    if smooth is not None:
        cfg = dataclasses.replace(cfg, smooth=bool(smooth))
    if roi is not None:
        cfg = dataclasses.replace(cfg, roi=roi)
    require_tracking(cfg.roi, track)
    source = open_source(camera, width, height, fps, realtime=realtime, loop=loop,
                         stall_timeout=cfg.stall_timeout_s, reconnect_timeout=cfg.reconnect_timeout_s)
    tracker = None
    owns_engine = engine is None
    try:
        if engine is None:
            engine = make_engine(profile, backend, precision, device, (source.width, source.height), home=home,
                                 lite=lite, config=cfg)
        tracker = make_tracker(track, hand_model, cfg)
    except BaseException:
        source.close()
        if tracker is not None:
            tracker.close()
        raise
    pipe = Pipeline(source, engine, tracker, sinks, max_frames=max_frames, config=cfg, status=False)
    return Stream(pipe, callback=callback, owns_engine=owns_engine)
