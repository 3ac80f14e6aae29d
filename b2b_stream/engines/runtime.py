"""The engine interface every backend implements, and the machinery that keeps frames in flight.

:class:`Engine`: ``engine(frame) -> frame``, ``engine.run(batch)``, ``.backend``, ``.device``,
``.precision``, ``.info``, ``.warmup()``, and ``engine.submit(frame) -> Pending`` with
``.async_depth``. CUDA engines enqueue upload, networks and download through a ring of page-locked
buffers (:class:`_CudaRing`) and return at once, so the pipeline keeps two frames in flight.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from b2b_train.errors import B2BError

from ..fuse import example_frames

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Pending:
    """One batch handed to :meth:`Engine.submit`; :meth:`result` waits for it and returns its output.

    CPU engines compute at submit time, so their Pending is done at once. CUDA engines only enqueue
    the upload, the networks and the download; ``ready()`` polls the GPU and ``result()`` waits for it
    (once; later calls return the same array).
    """

    __slots__ = ("_value", "_event", "_buffer")

    def __init__(self, value: np.ndarray | None = None, *, event=None, buffer: torch.Tensor | None = None):
        if value is None and (event is None or buffer is None):
            raise ValueError("a Pending needs either its value or an event and a host buffer")
        self._value = value
        self._event = event
        self._buffer = buffer

    def ready(self) -> bool:
        return self._value is not None or bool(self._event.query())

    def result(self) -> np.ndarray:
        if self._value is None:
            self._event.synchronize()
            self._value = self._buffer.numpy().copy()  # the page-locked buffer is reused two frames later
            self._event = self._buffer = None
        return self._value


class _SingleFrame(Pending):
    """The Pending of a single ``H x W x 3`` frame submitted alone: its result is that frame."""

    __slots__ = ("_batch",)

    def __init__(self, batch: Pending):  # noqa: D107 - no super().__init__: it only forwards
        self._batch = batch

    def ready(self) -> bool:
        return self._batch.ready()

    def result(self) -> np.ndarray:
        return self._batch.result()[0]


class _CudaRing:
    """Asynchronous frame transfer for CUDA engines: a ring of page-locked host buffers.

    ``submit`` copies the frames into a page-locked buffer, enqueues the upload, the engine's
    ``compute`` and the download into another page-locked buffer, records an event and returns at once,
    so the host prepares frame n+1 (and hands frame n-1 on) while the GPU runs frame n. Page-locked
    buffers also make each copy a direct DMA instead of a staged one. With ``depth`` slots, a slot is
    reused only after the Pending that last used it is settled, so nothing is overwritten in flight.
    Everything runs on the current CUDA stream, whose order keeps the static buffers of CUDA graphs
    safe: the download of frame n is enqueued before the replay of frame n+1 overwrites the output.
    """

    def __init__(self, device: torch.device, depth: int = 2, *, pin: bool = True, event=None):
        self.device = device
        self.depth = int(depth)
        self._pin = pin  # (tests run the ring's bookkeeping on the CPU: pin=False and a stand-in event)
        self._event = event or torch.cuda.Event
        self._slots: list[dict] = [{"inp": None, "out": None, "pending": None} for _ in range(self.depth)]
        self._next = 0

    def submit(self, frames: np.ndarray, compute: Callable[[torch.Tensor], torch.Tensor]) -> Pending:
        slot = self._slots[self._next]
        self._next = (self._next + 1) % self.depth
        if slot["pending"] is not None:
            slot["pending"].result()  # settle it: its buffers are about to be reused
            slot["pending"] = None
        if slot["inp"] is None or tuple(slot["inp"].shape) != frames.shape:
            slot["inp"] = self._host(frames.shape)
        slot["inp"].copy_(torch.from_numpy(frames))
        with torch.inference_mode():
            y = compute(slot["inp"].to(self.device, non_blocking=True))
            if isinstance(y, (list, tuple)):
                y = y[0]
            if slot["out"] is None or tuple(slot["out"].shape) != tuple(y.shape):
                slot["out"] = self._host(tuple(y.shape))
            slot["out"].copy_(y, non_blocking=True)
        event = self._event()
        event.record()
        slot["pending"] = Pending(event=event, buffer=slot["out"])
        return slot["pending"]

    def _host(self, shape) -> torch.Tensor:
        t = torch.empty(tuple(shape), dtype=torch.uint8)
        return t.pin_memory() if self._pin else t


class Engine:
    """A fused translate+deblur engine: uint8 RGB frames in, uint8 RGB frames out.

    ``engine(frame)`` takes one ``H x W x 3`` uint8 array; ``engine.run(frames)`` an ``N x H x W x 3``
    batch. Static-shape engines (ONNX, TensorRT, CUDA graphs) only take the size they were built for
    and say so clearly otherwise.
    """

    backend: str = "?"
    # how many submitted batches may usefully be in flight at once (see submit): 2 for CUDA engines
    async_depth: int = 1

    def __init__(self, *, device: str, precision: str, size: tuple[int, int] | None, info: dict | None = None,
                 static: bool = True, max_batch: int | None = 1):
        self.device = device
        self.precision = precision
        self.size = tuple(size) if size else None  # (W, H)
        self.static = static
        self.max_batch = max_batch
        self.info: dict[str, Any] = dict(info or {})
        self.info.setdefault("backend", self.backend)
        self.info.setdefault("device", device)
        self.info.setdefault("precision", precision)
        if self.size:
            self.info.setdefault("size", list(self.size))

    # -- public
    def __call__(self, frame) -> np.ndarray:
        a = np.asarray(frame)
        if a.ndim == 3:
            return self.run(a[None])[0]
        return self.run(a)

    def run(self, frames) -> np.ndarray:
        """uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)."""
        a = self._validate(frames)
        if self.max_batch is None or a.shape[0] <= self.max_batch:
            return self._run(a)
        outs = [self._run(a[i : i + self.max_batch]) for i in range(0, a.shape[0], self.max_batch)]
        return np.concatenate(outs, axis=0)

    def submit(self, frames) -> Pending:
        """Start one batch (or frame) and return its :class:`Pending` (``.ready()``, ``.result()``).

        ``submit(x).result()`` equals ``run(x)`` (a single frame gives a single frame). CPU engines
        compute here; CUDA engines return at once, so a caller (the pipeline's inference thread) can
        keep up to ``async_depth`` batches in flight and overlap host work with the GPU's.
        """
        a = np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames
        single = a.ndim == 3
        batch = self._validate(a[None] if single else a)
        if self.max_batch is not None and batch.shape[0] > self.max_batch:
            out = Pending(self.run(batch))  # run() splits it into batches the engine takes
        else:
            out = self._submit(batch)
        return _SingleFrame(out) if single else out

    def _submit(self, frames: np.ndarray) -> Pending:
        """One batch of at most ``max_batch`` frames (already validated); CPU engines compute it here."""
        return Pending(self._run(frames))

    def warmup(self, n: int = 2) -> "Engine":
        """Run ``n`` frames at the engine's size (compiles, captures graphs, allocates)."""
        w, h = self.size or (64, 64)
        x = example_frames(1, h, w).numpy()
        for _ in range(max(1, n)):
            self.run(x)
        return self

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        size = f"{self.size[0]}x{self.size[1]}" if self.size else "any size"
        return f"<{type(self).__name__} {self.backend} {self.precision} on {self.device}, {size}>"

    # -- for subclasses
    def _run(self, frames: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate(self, frames) -> np.ndarray:
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        a = np.asarray(frames)
        if a.dtype != np.uint8:
            raise B2BError(f"engine input must be uint8 frames, got {a.dtype}")
        if a.ndim != 4 or a.shape[-1] != 3:
            raise B2BError(f"engine input must be (N, H, W, 3) or (H, W, 3) uint8, got shape {tuple(a.shape)}")
        if self.static and self.size is not None:
            w, h = self.size
            if (a.shape[2], a.shape[1]) != (w, h):
                raise B2BError(
                    f"this {self.backend} engine was built for {w}x{h} frames but got "
                    f"{a.shape[2]}x{a.shape[1]}: build one for that size (b2b-stream build --size "
                    f"{a.shape[2]}x{a.shape[1]}) or resize the source"
                )
        return np.ascontiguousarray(a)


def _example(size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """One example frame batch at ``size`` on ``device`` (what static-shape backends are built for)."""
    w, h = size
    return example_frames(1, h, w).to(device)


def compare_frames(a: np.ndarray, b: np.ndarray) -> dict:
    """How two uint8 frame batches differ: max |diff| in levels, share of pixels within 0 and 1 level."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "max_abs": int(d.max()) if d.size else 0,
        "mean_abs": float(d.mean()) if d.size else 0.0,
        "equal": float((d == 0).mean()) if d.size else 1.0,
        "within_1": float((d <= 1).mean()) if d.size else 1.0,
    }
