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

:func:`open_pipeline` assembles the job (checks, profile, source, engine, tracker, sinks) for both
``b2b_stream.open`` and ``b2b-stream run``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from b2b_train.errors import B2BError

from .pipeline import (_END, Pipeline, Slot, StreamConfig, close_quietly, make_engine, make_tracker,
                       set_inference_threads)
from .report import RunReport
from .roi import require_tracking

__all__ = ["StreamFrame", "Stream", "open", "open_pipeline"]


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
        if owns_engine:
            pipeline.close_engine = True
        self.callback = callback
        policy = "latest" if getattr(pipeline.source, "live", False) else "block"
        self._slot = Slot(max(1, int(buffer)), policy, "app")
        self._report: RunReport | None = None
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

    def wait(self, timeout: float | None = None) -> RunReport | None:
        """Block until the stream ends; returns the report (re-raises a pipeline error)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self.error is not None:
            raise self.error
        return self._report

    def close(self) -> RunReport:
        """Stop the stream, close the camera and the tracker; returns the report."""
        self.pipeline.stop("closed by the application")
        self._slot.abort()
        self._thread.join(10.0)
        return self.report()

    def report(self) -> RunReport:
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


def open_pipeline(
    camera=0,
    profile=None,
    backend: str = "auto",
    track: str = "hands",
    *,
    precision: str = "auto",
    device: str = "auto",
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    realtime: bool | None = None,
    loop: bool | None = None,
    max_frames: int | None = None,
    hand_model=None,
    sinks: Sequence = (),
    config: StreamConfig | None = None,
    engine=None,
    home=None,
    lite: bool = False,
    smooth: bool | None = None,
    roi: str | None = None,
    out=None,
    landmarks=None,
    virtual_cam: bool = False,
    show: bool = False,
    leave_cores: bool = False,
    status: bool | None = False,
    report_path=None,
    console=None,
    say: Callable[[str, str], None] | None = None,
) -> Pipeline:
    """The run job, assembled: settings checked, profile opened, then source, engine, tracker and sinks.

    Everything that can be refused without a camera (``--roi hands`` without tracking, ``show``
    without a display, a missing profile, ``lite`` without its network) is refused before the source
    opens. Should any later step fail, what was opened is closed again. The returned
    :class:`~b2b_stream.pipeline.Pipeline` owns all of it (the engine only when built here) and closes
    it at the end of :meth:`~b2b_stream.pipeline.Pipeline.run` (or in ``close()`` if it never runs).

    Args (beyond :func:`open`'s):
        profile: a name (opened under ``home``), a :class:`~b2b_stream.profile.Profile`, or None.
        out, landmarks, virtual_cam, show: the sinks of ``b2b-stream run`` (the deblurred video, hand
            landmarks as JSON Lines, a virtual webcam, a window: refused at once without a display),
            made for the opened source in that order, before ``sinks``.
        leave_cores: on a small CPU, leave cores to capture and tracking (``set_inference_threads``,
            which changes torch's process-wide thread count).
        status, report_path, console: as :class:`~b2b_stream.pipeline.Pipeline` takes them.
        say: ``say(kind, message)`` for what was opened and chosen: ``"info"`` (the source, the engine),
            ``"detail"`` (how the engine was built or found) and ``"event"`` (the source lost or back).
    """
    from .profile import Profile, require_lite
    from .sources import open_source

    tell = say or (lambda kind, message: None)
    cfg = config or StreamConfig()
    if smooth is not None:
        cfg = dataclasses.replace(cfg, smooth=bool(smooth))
    if roi is not None:
        cfg = dataclasses.replace(cfg, roi=roi)
    require_tracking(cfg.roi, track)
    if show:
        from .sinks import display_available

        ok, why = display_available()
        if not ok:
            raise B2BError(f"--show needs a display: {why}; use --out FILE.mp4 to save the result instead")
    if isinstance(profile, (str, os.PathLike)):
        profile = Profile.open(str(profile), home=home) if str(profile) else None
    if lite and engine is None:
        require_lite(profile, weights=backend != "none")

    owns_engine = engine is None
    source = tracker = pipe = None
    made: list = []
    try:
        source = open_source(camera, width, height, fps, realtime=realtime, loop=loop,
                             stall_timeout=cfg.stall_timeout_s, reconnect_timeout=cfg.reconnect_timeout_s,
                             on_event=(lambda m: tell("event", m)) if say else None)
        tell("info", f"source: {source.describe()}")
        if engine is None:
            if profile is None and backend != "none":
                tell("info", "no --profile: running the shipped default deblurrer alone (no blur translation for this camera)")
            if leave_cores and backend != "none":
                set_inference_threads(track, device, say=lambda m: tell("detail", m))
            engine = make_engine(profile, backend, precision, device, (source.width, source.height), home=home,
                                 say=lambda m: tell("detail", m), lite=lite, config=cfg)
        tell("info", f"engine: {getattr(engine, 'backend', '?')} on {getattr(engine, 'device', '?')}")
        tracker = make_tracker(track, hand_model, cfg)
        if out or landmarks or virtual_cam or show:
            from .sinks import JsonlSink, VideoSink, VirtualCamSink, WindowSink
        if out:
            made.append(VideoSink(out, fps=source.fps, what=cfg.video_content, crf=cfg.video_crf,
                                  index_time=not source.live))
        if landmarks:
            made.append(JsonlSink(landmarks, fps=None if source.live else source.fps))
        if virtual_cam:
            made.append(VirtualCamSink(source.width, source.height, source.fps))
        if show:
            made.append(WindowSink("b2b-stream (q quits)", stats=lambda: pipe.live_lines()))
        made += list(sinks)
        pipe = Pipeline(source, engine, tracker, made, max_frames=max_frames, config=cfg, status=status,
                        report_path=report_path, console=console, close_engine=owns_engine)
        return pipe
    except BaseException:
        close_quietly(*made, source, tracker, *([engine] if owns_engine else []))
        raise


def open(  # noqa: A001 - b2b_stream.open(camera=0) reads naturally
    camera=0,
    profile=None,
    backend: str = "auto",
    track: str = "hands",
    *,
    precision: str = "auto",
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
        profile: camera profile name or :class:`~b2b_stream.profile.Profile` (None: the shipped default
            deblurrer alone).
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
    pipe = open_pipeline(camera, profile, backend, track, precision=precision, device=device, width=width,
                         height=height, fps=fps, realtime=realtime, loop=loop, max_frames=max_frames,
                         hand_model=hand_model, sinks=sinks, config=config, engine=engine, home=home, lite=lite,
                         smooth=smooth, roi=roi)
    return Stream(pipe, callback=callback)
