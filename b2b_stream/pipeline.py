"""The real-time pipeline: capture -> infer (translate + deblur) -> track -> sinks.

::

    source thread --slot--> infer thread --slot--> track thread --slot--> output (caller's thread)

Stages hand frames over through :class:`Slot` objects of size 1-2. With a live source (camera,
``realtime`` file) a full slot drops its **oldest** frame and counts it, so latency stays bounded and
memory flat however slow a stage or sink is. With a file read as fast as possible (not live) slots
block instead, so every frame is processed.

The output stage runs in the thread that calls :meth:`Pipeline.run` (OpenCV windows want that),
writes every sink, measures capture->output latency, refreshes a live rich status and, at the end,
returns (and optionally writes as JSON) a :class:`~b2b_stream.report.RunReport`::

    {"frames_in", "frames_out", "dropped", "fps", "latency_ms": {"p50", "p95"},
     "stages_ms": {"capture", "infer", "track", "output"}, "backend", "device",
     "hands_detected_frames", ...}

Ctrl-C, the end of the input, a lost camera, a sink asking to stop (q/Esc in the window) or
``max_frames`` end the run cleanly: threads joined, sinks, source, tracker (and the engine, when the
pipeline owns it) closed, files playable, report written. The pipeline also owns the signals: while
it runs, SIGINT/SIGTERM stop it between two frames; :func:`sigterm_as_interrupt` makes SIGTERM unwind
the setting-up of a run (camera opened, engine building) like Ctrl-C.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from b2b_train.errors import B2BError

from .closing import close_quietly
from .report import STAGE_NOTES, STAGES, RunReport, jsonable

__all__ = [
    "Item",
    "Slot",
    "Pipeline",
    "IdentityEngine",
    "make_engine",
    "make_tracker",
    "StreamConfig",
    "RunReport",
    "close_quietly",
    "sigterm_as_interrupt",
    "rss_mb",
]

_END = object()


@dataclass
class StreamConfig:
    """Pipeline settings (presets in ``b2b_train/configs/stream/*.yaml``)."""

    KIND = "stream"
    slot_size: int = 1  # frames each hand-over slot holds (1-2)
    policy: str = "auto"  # auto | latest | block  (auto: latest for live sources, block for files)
    stall_timeout_s: float = 1.0  # a camera silent this long is reopened
    reconnect_timeout_s: float = 10.0  # ... and declared lost after this long without a frame
    stats_window: int = 10000  # latency / stage percentiles over the last N frames
    status_interval_s: float = 0.25
    num_hands: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    # One-Euro landmark smoothing for apps (b2b_stream/smoothing.py; BENCHMARKS.md `smoothing`): off by default
    smooth: bool = False
    smooth_min_cutoff: float = 1.0  # Hz: how hard a still hand is smoothed
    smooth_beta: float = 4.0  # how fast the cutoff rises with speed (per hand diagonal per second)
    # --roi hands (b2b_stream/roi.py): deblur only fixed-size boxes around the last tracked hands
    roi: str = "none"  # none | hands
    roi_margin: float = 0.5  # box growth per side, in units of the hands' larger side
    roi_buckets: list = field(default_factory=lambda: [160, 224, 288, 352])  # square box sides (px)
    roi_full_every: int = 30  # whole frame every N frames while hands are tracked (0: never)
    video_crf: int = 18
    video_content: str = "image"  # image | side | overlay | raw


@dataclass
class Item:
    """One frame travelling through the pipeline."""

    index: int
    t_capture: float
    raw: np.ndarray
    image: np.ndarray | None = None
    hands: list | None = None
    roi: list | None = None  # [[x, y, w, h], ...] deblurred with --roi hands (None: the whole frame)
    times: dict = field(default_factory=dict)  # stage -> ms
    latency_ms: float | None = None


class Slot:
    """A bounded hand-over between two threads.

    ``policy="latest"``: :meth:`put` on a full slot discards the oldest item and counts it in
    ``dropped``. ``policy="block"``: :meth:`put` waits for room (or for :meth:`abort`).
    :meth:`get` returns the oldest item, ``None`` on timeout, or :data:`_END` once the slot is closed
    and empty (or aborted).
    """

    def __init__(self, size: int = 1, policy: str = "latest", name: str = "slot"):
        if size < 1:
            raise ValueError("slot size must be >= 1")
        if policy not in ("latest", "block"):
            raise ValueError(f"unknown slot policy {policy!r}")
        self.size = int(size)
        self.policy = policy
        self.name = name
        self.dropped = 0
        self.passed = 0
        self.peak = 0
        self._q: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._aborted = False

    def put(self, item) -> bool:
        with self._cond:
            if self._closed or self._aborted:
                return False
            if self.policy == "block":
                while len(self._q) >= self.size and not self._aborted:
                    self._cond.wait(0.1)
                if self._aborted:
                    return False
            elif len(self._q) >= self.size:
                self._q.popleft()
                self.dropped += 1
            self._q.append(item)
            self.peak = max(self.peak, len(self._q))
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._q:
                if self._closed or self._aborted:
                    return _END
                if deadline is None:
                    self._cond.wait(0.1)
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(min(left, 0.1))
            if self._aborted:
                return _END
            item = self._q.popleft()
            self.passed += 1
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more puts; get() drains what is left, then returns _END."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self) -> int:
        """Stop now: discard what is queued (returned count), wake every waiter."""
        with self._cond:
            n = len(self._q)
            self._q.clear()
            self._aborted = True
            self._cond.notify_all()
            return n

    def __len__(self) -> int:
        return len(self._q)


class IdentityEngine:
    """Pass-through 'engine' (``--backend none``, or when b2b_stream.engines is unavailable)."""

    backend = "none"
    device = "cpu"
    precision = "-"

    def __init__(self, why: str = "no deblurring"):
        self.info = {"backend": "none", "device": "cpu", "why": why}

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return frame

    def close(self) -> None:
        pass


def set_inference_threads(track: str | None, device: str = "auto", say: Callable[[str], None] | None = None) -> int | None:
    """On a small CPU (<= 4 cores) that also tracks hands, give inference one core less than the machine.

    Measured on 2 cores (lite profile, 320x240, onnxruntime): 2 inference threads give 11.9 fps alone but
    10.6 fps in the pipeline at efficiency 0.89 (MediaPipe and capture wait for a core); 1 thread gives
    12.6 / 12.4 fps at 0.99. Leaves torch's setting alone when ``OMP_NUM_THREADS`` is set, without
    tracking, on a GPU, or on larger machines. Returns the thread count it set, or None.
    """
    if track in (None, "none", False) or os.environ.get("OMP_NUM_THREADS"):
        return None
    import torch

    from b2b_stream.engines import resolve_device

    if resolve_device(device).type != "cpu":
        return None
    cores = os.cpu_count() or 1
    if cores > 4 or cores < 2:
        return None
    n = cores - 1
    torch.set_num_threads(n)
    if say:
        say(f"inference threads: {n} of {cores} cores (the rest for capture and hand tracking; OMP_NUM_THREADS overrides)")
    return n


def make_engine(profile=None, backend: str = "auto", precision: str = "auto", device: str = "auto",
                size: tuple[int, int] | None = None, home=None, say: Callable[[str], None] | None = None,
                lite: bool = False, config: StreamConfig | None = None):
    """The fused engine from :mod:`b2b_stream.engines`, or an identity engine for ``backend="none"``.

    ``profile``: a :class:`~b2b_stream.profile.Profile` (handed to the engines as it is), a name, or None.
    Falls back to the identity engine, with a warning, only when the engines module itself is
    missing from the installation. ``lite``: the profile's distilled network alone (see ``get_engine``).
    ``config.roi == "hands"``: a :class:`~b2b_stream.roi.RoiEngine` over one engine per box size.
    """
    say = say or (lambda m: None)
    if backend in ("none", "identity"):
        return IdentityEngine("--backend none: frames pass through without deblurring")
    roi = (config.roi if config is not None else "none") or "none"
    if roi not in ("none", "hands"):
        raise B2BError(f"unknown roi {roi!r} (none, hands)")
    if roi == "hands":
        from .roi import RoiEngine

        if size is None:
            raise B2BError("--roi hands needs the frame size")

        def build(s):
            return make_engine(profile, backend, precision, device, s, home=home, say=say, lite=lite)

        engine = RoiEngine.from_config(build, size, config)
        say(f"--roi hands: boxes {', '.join(f'{w}x{h}' for w, h in engine.info['roi']['buckets'])} around the hands, "
            f"whole frame without hands and every {config.roi_full_every} frames")
        return engine
    try:
        from b2b_stream.engines import get_engine
    except ModuleNotFoundError as e:
        if e.name not in ("b2b_stream.engines",):
            raise
        msg = "b2b_stream.engines is not installed: running WITHOUT deblurring (identity engine)"
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        say(msg)
        return IdentityEngine(msg)
    kwargs = dict(profile=profile, backend=backend, precision=precision, device=device, size=size, say=say)
    if lite:
        kwargs["lite"] = True
    if home is not None:
        kwargs["home"] = home
    return get_engine(**kwargs)


def make_tracker(track: str | None = "hands", model=None, cfg: StreamConfig | None = None):
    """A :class:`~b2b_stream.tracking.HandTracker` for ``track="hands"`` (One-Euro smoothed when
    ``cfg.smooth``), None for ``"none"``."""
    if track in (None, "none", False):
        return None
    if track != "hands":
        raise B2BError(f"unknown --track {track!r} (hands, none)")
    from .tracking import HandTracker

    cfg = cfg or StreamConfig()
    tracker = HandTracker(model, num_hands=cfg.num_hands, min_detection_confidence=cfg.min_detection_confidence,
                          min_tracking_confidence=cfg.min_tracking_confidence)
    if not cfg.smooth:
        return tracker
    from .smoothing import LandmarkSmoother, SmoothedTracker

    try:
        smoother = LandmarkSmoother(min_cutoff=cfg.smooth_min_cutoff, beta=cfg.smooth_beta)
    except ValueError as e:
        tracker.close()
        raise B2BError(f"bad landmark smoothing settings: {e}") from None
    return SmoothedTracker(tracker, smoother)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs in the main thread, SIGTERM raises KeyboardInterrupt as Ctrl-C does.

    For setting a run up (camera opened, an engine building for minutes): a service manager's stop
    then unwinds through the code that closes what was opened, and ends like Ctrl-C. Elsewhere, or in
    another thread, nothing changes. :meth:`Pipeline.run` installs its own handlers for the run.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 1e6, 1)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _pct(values, q) -> float | None:
    vals = list(values)  # one C-level copy: safe while a stage thread appends to the deque
    if not vals:
        return None
    return round(float(np.percentile(np.asarray(vals, dtype=np.float64), q)), 2)


class Pipeline:
    """Capture -> infer -> track -> sinks in threads; see the module docstring.

    Args:
        source: a :class:`~b2b_stream.sources.Source` (closed by the pipeline at the end).
        engine: callable uint8 HxWx3 -> uint8 HxWx3 with ``.backend``/``.device`` (None: identity).
        tracker: object with ``track(image, t_seconds) -> hands`` and ``close()``, or None.
        sinks: sinks written in the output stage, closed at the end.
        max_frames: stop after this many captured frames.
        status: show a live rich status (None: only when stderr is a terminal).
        report_path: also write the report JSON there.
        close_source, close_tracker, close_engine: close them when the run ends; the engine is left
            open unless asked, since one engine is often built once and run by several pipelines.
    """

    def __init__(self, source, engine=None, tracker=None, sinks: Sequence = (), *, max_frames: int | None = None,
                 config: StreamConfig | None = None, status: bool | None = None, report_path=None,
                 console=None, close_source: bool = True, close_tracker: bool = True, close_engine: bool = False):
        self.cfg = config or StreamConfig()
        if not 1 <= self.cfg.slot_size <= 8:
            raise B2BError(f"slot_size must be 1..8 (got {self.cfg.slot_size})")
        self.source = source
        self.engine = engine if engine is not None else IdentityEngine()
        self.tracker = tracker
        self.sinks = list(sinks)
        self.max_frames = int(max_frames) if max_frames else None
        self.report_path = Path(report_path) if report_path else None
        self.close_source = close_source
        self.close_tracker = close_tracker
        self.close_engine = close_engine
        policy = self.cfg.policy
        if policy == "auto":
            policy = "latest" if getattr(source, "live", False) else "block"
        self.policy = policy
        n = self.cfg.slot_size
        self.q_infer = Slot(n, policy, "infer")
        self.q_track = Slot(n, policy, "track") if tracker is not None else None
        self.q_out = Slot(n, policy, "output")
        win = int(self.cfg.stats_window)
        self._lat: collections.deque = collections.deque(maxlen=win)
        self._stage: dict[str, collections.deque] = {k: collections.deque(maxlen=win) for k in STAGES}
        self._out_times: collections.deque = collections.deque(maxlen=120)
        self.frames_in = 0
        self.frames_out = 0
        self.hands_frames = 0
        self.discarded = 0
        self.end_reason: str | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status = status
        self._console = console
        self._t_start = None
        self._t_first_capture = None
        self._t_last_out = None
        self._ran = False
        self._rss_start = self._rss_peak = None
        self._fds_start = self._threads_start = None
        self.on_item: Callable | None = None

    # ------------------------------------------------------------------ stages
    def _capture_loop(self) -> None:
        src = self.source
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                frame = src.read()
                t1 = time.monotonic()
                if frame is None:
                    self.end_reason = self.end_reason or getattr(src, "end_reason", None) or "end of input"
                    break
                if self._t_first_capture is None:
                    self._t_first_capture = frame.t_capture
                item = Item(frame.index, frame.t_capture, frame.image)
                item.times["capture"] = (t1 - t0) * 1000.0
                self._stage["capture"].append(item.times["capture"])
                self.frames_in += 1
                self.q_infer.put(item)
                if self.max_frames is not None and self.frames_in >= self.max_frames:
                    self.end_reason = self.end_reason or f"--frames {self.max_frames} reached"
                    break
        except BaseException as e:  # noqa: BLE001 - reported by run()
            self._fail(e, "capture")
        finally:
            self.q_infer.close()

    def _infer_loop(self) -> None:
        """Run the engine on each frame; keep up to ``engine.async_depth`` frames in flight.

        A CUDA engine's ``submit`` returns at once, so while the GPU runs frame n this thread
        uploads frame n+1 if the capture already has it and then hands frame n on. It never waits
        for a next frame while one is in flight: a frame leaves as soon as it is done, so overlap
        adds no latency when the camera is slower than the GPU. CPU engines (depth 1) and engines
        without ``submit`` run one frame at a time, as before.
        """
        nxt = self.q_track if self.q_track is not None else self.q_out
        depth = max(1, int(getattr(self.engine, "async_depth", 1) or 1))
        submit = getattr(self.engine, "submit", None)
        inflight: collections.deque = collections.deque()

        def start(item: Item) -> None:
            t0 = time.monotonic()
            pending = submit(item.raw) if submit is not None else None
            if pending is None:  # a plain callable engine
                item.image = self.engine(item.raw)
                boxes = getattr(self.engine, "last_boxes", None)
                item.roi = [b.as_list() for b in boxes] if boxes else None
            inflight.append((item, t0, pending))

        def finish() -> None:
            item, t0, pending = inflight.popleft()
            if pending is not None:
                item.image = pending.result()
            item.times["infer"] = (time.monotonic() - t0) * 1000.0
            self._stage["infer"].append(item.times["infer"])
            nxt.put(item)

        try:
            while True:
                if not inflight:
                    item = self.q_infer.get()
                elif len(inflight) < depth:
                    item = self.q_infer.get(timeout=0)  # only a frame that is already waiting
                else:
                    item = None
                if item is _END:
                    break
                if item is not None:
                    start(item)
                    continue
                finish()
            while inflight and not self._stop.is_set():
                finish()
        except BaseException as e:  # noqa: BLE001
            self._fail(e, "infer")
        finally:
            nxt.close()

    def _track_loop(self) -> None:
        observe = getattr(self.engine, "observe_hands", None)  # --roi hands follows the tracked hands
        try:
            while True:
                item = self.q_track.get()
                if item is _END:
                    break
                t0 = time.monotonic()
                item.hands = self.tracker.track(item.image, item.t_capture)
                if observe is not None:
                    observe(item.hands)
                item.times["track"] = (time.monotonic() - t0) * 1000.0
                self._stage["track"].append(item.times["track"])
                self.q_out.put(item)
        except BaseException as e:  # noqa: BLE001
            self._fail(e, "track")
        finally:
            self.q_out.close()

    def _fail(self, e: BaseException, stage: str) -> None:
        if self.error is None:
            self.error = e
            self.end_reason = f"error in {stage}: {e}"
        self.stop()

    # ------------------------------------------------------------------ control
    def stop(self, reason: str | None = None) -> None:
        """Ask every stage to end now (safe from any thread or a signal handler)."""
        if reason and not self.end_reason:
            self.end_reason = reason
        self._stop.set()
        for q in (self.q_infer, self.q_track, self.q_out):
            if q is not None:
                self.discarded += q.abort()
        if getattr(self.source, "live", False):
            try:
                self.source.close()  # wakes a capture thread waiting on a stalled camera
            except Exception:
                pass

    def close(self) -> None:
        """Close what the pipeline owns when it will not run (:meth:`run` closes them itself at its end)."""
        if self._ran:
            return
        self._ran = True
        close_quietly(*self.sinks)
        if self.close_source:
            close_quietly(self.source)
        if self.close_tracker:
            close_quietly(self.tracker)
        if self.close_engine:
            close_quietly(self.engine)

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in (self.q_infer, self.q_track, self.q_out) if q is not None)

    def fps(self) -> float:
        """Output frames per second over the last ~120 frames."""
        t = list(self._out_times)
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])

    def live_lines(self) -> list[str]:
        """Short status lines (for the window corner)."""
        st = {k: _pct(v, 50) for k, v in self._stage.items()}
        lines = [
            f"{self.fps():5.1f} fps  p50 {_pct(self._lat, 50) or 0:.0f} ms  p95 {_pct(self._lat, 95) or 0:.0f} ms",
            f"infer {st['infer'] or 0:.1f} ms  track {st['track'] or 0:.1f} ms  drops {self.dropped}",
            f"{getattr(self.engine, 'backend', '?')} on {getattr(self.engine, 'device', '?')}",
        ]
        return lines

    def _status_table(self):
        from rich.table import Table

        t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("fps", "p50 ms", "p95 ms", "capture", "infer", "track", "out", "in/out", "drops", "hands", "backend"):
            t.add_column(col, justify="right")
        st = {k: _pct(v, 50) for k, v in self._stage.items()}
        f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        t.add_row(
            f"{self.fps():.1f}", f(_pct(self._lat, 50)), f(_pct(self._lat, 95)),
            f(st["capture"]), f(st["infer"]), f(st["track"]), f(st["output"]),
            f"{self.frames_in}/{self.frames_out}", str(self.dropped), str(self.hands_frames),
            f"{getattr(self.engine, 'backend', '?')}/{getattr(self.engine, 'device', '?')}",
        )
        return t

    # ------------------------------------------------------------------ run
    def run(self) -> RunReport:
        """Run to the end (blocking); returns the report. Ctrl-C ends it cleanly."""
        if self._ran:
            raise B2BError("a Pipeline runs once; make a new one")
        self._ran = True
        self._t_start = time.monotonic()
        self._started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._rss_start = self._rss_peak = rss_mb()
        self._fds_start = _open_fds()
        self._threads_start = threading.active_count()
        specs = [("b2b-capture", self._capture_loop), ("b2b-infer", self._infer_loop)]
        if self.q_track is not None:
            specs.append(("b2b-track", self._track_loop))
        for name, fn in specs:
            th = threading.Thread(target=fn, name=name, daemon=True)
            self._threads.append(th)
        for th in self._threads:
            th.start()

        live = None
        show_status = self._status
        if show_status is None:
            import sys

            show_status = sys.stderr.isatty()
        old_handlers = self._install_signal_handlers()
        try:
            if show_status:
                from rich.console import Console
                from rich.live import Live

                console = self._console or Console(stderr=True)
                live = Live(self._status_table(), console=console, refresh_per_second=4, transient=False)
                live.start()
            self._output_loop(live)
        except KeyboardInterrupt:
            self.end_reason = self.end_reason or "interrupted (Ctrl-C)"
            self.stop()
        except BaseException as e:  # a sink failed (disk full...): stop, close everything, re-raise
            self._fail(e, "output")
        finally:
            try:
                self._shutdown(live)
            finally:
                self._restore_signal_handlers(old_handlers)
        report = self.report()
        if self.report_path is not None:
            tmp = self.report_path.with_name(self.report_path.name + ".tmp")
            tmp.write_text(report.to_json())
            os.replace(tmp, self.report_path)
        if self.error is not None and not isinstance(self.error, KeyboardInterrupt):
            raise self.error
        return report

    def _output_loop(self, live) -> None:
        last_status = 0.0
        interval = self.cfg.status_interval_s
        while not self._stop.is_set():
            item = self.q_out.get(timeout=interval)
            now = time.monotonic()
            if live is not None and now - last_status >= interval:
                live.update(self._status_table())
                last_status = now
            if item is _END:
                break
            if item is None:
                continue
            t0 = time.monotonic()
            item.latency_ms = (t0 - item.t_capture) * 1000.0
            for sink in self.sinks:
                sink.write(item)
            if self.on_item is not None:
                self.on_item(item)
            t1 = time.monotonic()
            item.times["output"] = (t1 - t0) * 1000.0
            self._stage["output"].append(item.times["output"])
            self._lat.append(item.latency_ms)
            self._out_times.append(t1)
            self._t_last_out = t1
            self.frames_out += 1
            if item.hands:
                self.hands_frames += 1
            if self.frames_out % 50 == 0:
                r = rss_mb()
                if r is not None and (self._rss_peak is None or r > self._rss_peak):
                    self._rss_peak = r
            if any(getattr(s, "stop_requested", False) for s in self.sinks):
                self.end_reason = self.end_reason or "stopped by the user (window closed / q)"
                self.stop()
                break
            if self._stop.is_set():
                break
        if self._stop.is_set():
            self.stop()  # e.g. a signal asked to stop: abort the queues and wake every stage

    # Ctrl-C / SIGTERM while running in the main thread: ask the output loop to stop between two
    # frames (an exception raised in the middle of a sink could leave a frame half written); a
    # second signal interrupts at once.
    def _install_signal_handlers(self) -> dict:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum, frame):
            if self._stop.is_set():
                raise KeyboardInterrupt
            self.end_reason = self.end_reason or f"interrupted ({signal.Signals(signum).name})"
            self._stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # pragma: no cover - not allowed here
                pass
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict) -> None:
        import signal

        for sig, h in old.items():
            try:
                signal.signal(sig, h)
            except (ValueError, OSError, TypeError):  # pragma: no cover
                pass

    def _shutdown(self, live) -> None:
        for th in self._threads:
            th.join(timeout=5.0)
        stuck = [th.name for th in self._threads if th.is_alive()]
        if stuck:  # e.g. an engine call that never returns: abort the rest and report it
            self.stop()
            for th in self._threads:
                th.join(timeout=2.0)
            self.end_reason = (self.end_reason or "") + f" (threads still busy at exit: {', '.join(stuck)})"
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:  # keep closing the others
                errors.append(f"{getattr(sink, 'name', sink)}: {e}")
        if self.close_source:
            close_quietly(self.source)
        if self.tracker is not None and self.close_tracker:
            close_quietly(self.tracker)
        if self.close_engine:
            close_quietly(self.engine)
        if live is not None:
            live.update(self._status_table())
            live.stop()
        if errors and self.error is None:
            self.error = B2BError("closing outputs failed: " + "; ".join(errors))

    # ------------------------------------------------------------------ report
    def report(self) -> RunReport:
        """The run's numbers (see :class:`~b2b_stream.report.RunReport`); valid during and after a run."""
        now = time.monotonic()
        t0 = self._t_first_capture or self._t_start or now
        t_end = self._t_last_out or now
        duration = max(1e-9, t_end - t0)
        stages = {k: _pct(v, 50) for k, v in self._stage.items()}
        stages_p95 = {k: _pct(v, 95) for k, v in self._stage.items()}
        if self.q_track is None:
            stages["track"] = 0.0
            stages_p95["track"] = 0.0
        eng = self.engine
        src_info = {}
        try:
            src_info = self.source.info()
        except Exception:
            pass
        dropped_by = {q.name: q.dropped for q in (self.q_infer, self.q_track, self.q_out) if q is not None}
        lat = list(self._lat)
        return RunReport(
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            dropped=self.dropped,
            dropped_by_stage=dropped_by,
            discarded_at_stop=self.discarded,
            source_skipped=src_info.get("skipped", 0),
            fps=round(self.frames_out / duration, 2) if self.frames_out else 0.0,
            duration_s=round(duration, 3),
            latency_ms={
                "p50": _pct(lat, 50),
                "p95": _pct(lat, 95),
                "mean": round(float(np.mean(lat)), 2) if lat else None,
                "max": round(float(np.max(lat)), 2) if lat else None,
            },
            stages_ms=stages,
            stages_ms_p95=stages_p95,
            stage_notes=dict(STAGE_NOTES),
            backend=getattr(eng, "backend", "?"),
            device=str(getattr(eng, "device", "?")),
            precision=getattr(eng, "precision", None),
            engine=jsonable(getattr(eng, "info", {})),
            roi=eng.report() if callable(getattr(eng, "observe_hands", None)) else None,
            tracking="hands" if self.tracker is not None else "none",
            hands_detected_frames=self.hands_frames,
            policy=self.policy,
            slot_size=self.cfg.slot_size,
            end_reason=self.end_reason,
            error=str(self.error) if self.error is not None else None,
            source=src_info,
            sinks=[getattr(s, "name", type(s).__name__) for s in self.sinks],
            rss_mb={"start": self._rss_start, "peak": self._rss_peak, "end": rss_mb()},
            open_fds={"start": self._fds_start, "end": _open_fds()},
            threads={"start": self._threads_start, "end": threading.active_count()},
            started_at=getattr(self, "_started_at", None),
        )
