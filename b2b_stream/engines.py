"""Build, cache and load the fused translate+deblur engine for one backend.

One interface, :class:`Engine` (``engine(frame) -> frame``, ``engine.run(batch)``, ``.backend``,
``.device``, ``.precision``, ``.info``, ``.warmup()``, and ``engine.submit(frame) -> Pending`` with
``.async_depth``: CUDA engines enqueue upload, networks and download through page-locked buffers and
return at once, so the pipeline keeps two frames in flight), three backends:

* ``tensorrt`` - torch-tensorrt's dynamo path: the fused module is exported with ``torch.export`` at
  the camera's static shape (uint8 in, uint8 out) and compiled; saved as an exported program.
  torch-tensorrt is optional and imported only here, when that backend is asked for.
* ``torch`` - the fused module itself: eager, ``torch.compile``, CUDA graphs, channels-last; on a GPU in
  fp16 / bf16 (the module is cast; the uint8 -> float cast inside follows), fp32 on the CPU.
* ``onnxruntime`` - the fused module exported to ONNX (uint8 in/out), CPU or CUDA execution provider.

:func:`get_engine` resolves a camera profile's networks, picks the backend (``auto``: TensorRT on CUDA
when installed, else torch; on the CPU whichever of onnxruntime and torch eager measures faster) and
says which and why in ``engine.info["why"]``.

Engines are cached under ``<home>/engines/<profile>/``: one file per slot (backend, variant,
precision, device, size) with a JSON manifest holding the full key (network digests, versions...)
and the file's SHA-256. A manifest whose key differs, a file whose hash differs, a file without a
manifest or one that fails to load is rebuilt, never used; the reason is reported. The hash is
checked *before* anything is deserialised, which matters for exported programs: ``torch.export.load``
may fall back to full unpickling, so only a file this code wrote (hash in our manifest) is loaded.
ONNX files hold no code. Torch-backend "engines" are the fused weights as safetensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from b2b_train.errors import B2BError

from .fuse import FusedDeblur, example_frames, net_multiple

__all__ = [
    "Engine",
    "Pending",
    "TorchEngine",
    "OnnxEngine",
    "TensorRTEngine",
    "get_engine",
    "build_engine",
    "resolve_device",
    "available_backends",
    "compare_frames",
    "BACKENDS",
    "PRECISIONS",
    "TORCH_MODES",
    "MANIFEST_FORMAT",
]

log = logging.getLogger("b2b_stream.engines")

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "bf16")
# torch backend variants. "compile" = inductor default mode; "max-autotune" = mode
# "max-autotune-no-cudagraphs"; "reduce-overhead" = inductor with its own CUDA graphs;
# "cudagraphs" = eager captured in one CUDA graph by us; "compile+cudagraphs" = both.
TORCH_MODES = ("auto", "eager", "compile", "max-autotune", "reduce-overhead", "cudagraphs", "compile+cudagraphs")
DEFAULT_TORCH_CUDA_MODE = "compile"
MANIFEST_FORMAT = "b2b-engine/1"
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_EXT = {"torch": ".safetensors", "onnxruntime": ".onnx", "tensorrt": ".ep"}


# ----------------------------------------------------------------------------- the interface

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


class TorchEngine(Engine):
    """The fused module run by PyTorch: eager, torch.compile and/or one CUDA graph."""

    backend = "torch"

    def __init__(self, module: FusedDeblur, *, device: torch.device, precision: str, mode: str,
                 size: tuple[int, int] | None, info: dict | None = None):
        static = mode in ("cudagraphs", "compile+cudagraphs", "reduce-overhead")
        super().__init__(device=str(device), precision=precision, size=size, info=info, static=static,
                         max_batch=1 if static else None)
        self.module = module
        self.torch_device = torch.device(device)
        self.mode = mode
        self.info["mode"] = mode
        fn: Callable = module
        if mode in ("compile", "compile+cudagraphs"):
            fn = torch.compile(module, fullgraph=True, dynamic=False)
        elif mode == "max-autotune":
            fn = torch.compile(module, fullgraph=True, dynamic=False, mode="max-autotune-no-cudagraphs")
        elif mode == "reduce-overhead":
            fn = torch.compile(module, fullgraph=True, dynamic=False, mode="reduce-overhead")
        self._fn = fn
        self._graph = None
        self._static_in: torch.Tensor | None = None
        self._static_out: torch.Tensor | None = None
        self._cuda = self.torch_device.type == "cuda"
        self._ring = _CudaRing(self.torch_device) if self._cuda else None
        if self._cuda:
            self.async_depth = self._ring.depth

    def _capture(self, shape) -> None:
        dev = self.torch_device
        self._static_in = torch.zeros(shape, dtype=torch.uint8, device=dev)
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self._fn(self._static_in)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            self._static_out = self._fn(self._static_in)
        self._graph = graph

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        if self._graph is None or tuple(self._static_in.shape) != tuple(x.shape):
            self._capture(tuple(x.shape))
        self._static_in.copy_(x)
        self._graph.replay()
        return self._static_out

    def _submit(self, frames: np.ndarray) -> Pending:
        if not self._cuda:
            return super()._submit(frames)
        graphed = self.mode in ("cudagraphs", "compile+cudagraphs")
        return self._ring.submit(frames, self._replay if graphed else self._fn)

    def _run(self, frames: np.ndarray) -> np.ndarray:
        if self._cuda:
            return self._submit(frames).result()
        with torch.inference_mode():
            y = self._fn(torch.from_numpy(frames))
        return y.numpy()


class OnnxEngine(Engine):
    """The fused module exported to ONNX and run by ONNX Runtime (CPU or CUDA provider)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, *, device: str, precision: str, size: tuple[int, int], info: dict | None = None,
                 threads: int | None = None):
        super().__init__(device=device, precision=precision, size=size, info=info, static=True, max_batch=1)
        ort = _import_onnxruntime()
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise B2BError(
                    "onnxruntime has no CUDA execution provider here (install onnxruntime-gpu), "
                    "or use --device cpu / --backend torch"
                )
            idx = torch.device(device).index or 0
            providers = [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        # idle worker threads sleep instead of spinning: in the pipeline the capture and tracking
        # threads need those cores between frames (lite profile, 2 cores, 2 threads: pipeline 11.8 fps
        # without spinning, 11.2 with; BENCHMARKS.md `lite`)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.info["providers"] = self.session.get_providers()

    def _run(self, frames: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: frames})[0]


class TensorRTEngine(Engine):
    """A torch-tensorrt compiled exported program (static shape, uint8 in/out) on a CUDA device."""

    backend = "tensorrt"

    def __init__(self, module: Callable, *, device: str, precision: str, size: tuple[int, int], info: dict | None = None):
        super().__init__(device=device, precision=precision, size=size, info=info, static=True, max_batch=1)
        self.module = module
        self.torch_device = torch.device(device)
        self._ring = _CudaRing(self.torch_device)
        self.async_depth = self._ring.depth

    def _submit(self, frames: np.ndarray) -> Pending:
        return self._ring.submit(frames, self.module)

    def _run(self, frames: np.ndarray) -> np.ndarray:
        return self._submit(frames).result()


# ----------------------------------------------------------------------------- helpers

def _import_onnxruntime():
    try:
        import onnxruntime as ort  # noqa: WPS433
    except ImportError:
        raise B2BError(
            "the onnxruntime backend needs onnxruntime: `pip install 'b2b[onnx]'` "
            "(or onnxruntime-gpu for CUDA), or use --backend torch"
        ) from None
    return ort


def _import_tensorrt():
    try:
        import torch_tensorrt  # noqa: WPS433
    except ImportError as e:
        raise B2BError(
            "the tensorrt backend needs torch-tensorrt, which is not installed "
            f"({e.__class__.__name__}: {e}); on an NVIDIA machine with a CUDA build of torch run "
            "`pip install 'b2b[tensorrt]'`, or use --backend torch / onnxruntime"
        ) from None
    return torch_tensorrt


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_backends(device: str = "cpu") -> list[str]:
    """Backends usable on ``device`` here (import checks only, nothing is built)."""
    out = ["torch"]
    if _has_module("onnxruntime"):
        out.append("onnxruntime")
    if device.startswith("cuda") and _has_module("torch_tensorrt"):
        out.insert(0, "tensorrt")
    return out


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU; checks a named device exists."""
    if isinstance(device, torch.device):
        dev = device
    elif device in (None, "", "auto"):
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise B2BError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise B2BError(f"device {device} asked for but CUDA is not available here (torch {torch.__version__}); use --device cpu")
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        if idx >= torch.cuda.device_count():
            raise B2BError(f"device {device} does not exist ({torch.cuda.device_count()} CUDA device(s))")
        return torch.device("cuda", idx)
    if dev.type != "cpu":
        raise B2BError(f"device {device} is not supported (use cpu or cuda)")
    return dev


def _device_id(dev: torch.device) -> str:
    """What an engine is specific to: the CPU architecture, or the GPU model and compute capability."""
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return f"cuda:{p.name}:sm{p.major}{p.minor}"
    return f"cpu:{platform.machine()}"


def parse_size(text: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"640x480"`` or ``(640, 480)`` -> ``(W, H)``."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = text.lower().replace("×", "x").split("x")
        try:
            w, h = (int(p) for p in parts)
        except ValueError:
            raise B2BError(f"size must look like WIDTHxHEIGHT (e.g. 640x480), not {text!r}") from None
    else:
        w, h = (int(v) for v in text)
    if w < 8 or h < 8 or w > 8192 or h > 8192:
        raise B2BError(f"size {w}x{h} is out of range (8..8192 per side)")
    return w, h


def compare_frames(a: np.ndarray, b: np.ndarray) -> dict:
    """How two uint8 frame batches differ: max |diff| in levels, share of pixels within 0 and 1 level."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "max_abs": int(d.max()) if d.size else 0,
        "mean_abs": float(d.mean()) if d.size else 0.0,
        "equal": float((d == 0).mean()) if d.size else 1.0,
        "within_1": float((d <= 1).mean()) if d.size else 1.0,
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest(net: nn.Module | None) -> str | None:
    if net is None:
        return None
    from b2b_train.checkpoint import state_dict_digest

    # standard strides first: channels-last weights with size-1 dims break a byte view of the tensor
    state = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format) for k, v in net.state_dict().items()}
    return f"{type(net).__qualname__}:{state_dict_digest(state)}"


# ----------------------------------------------------------------------------- profile + networks

def _home(home: str | os.PathLike | None = None) -> Path:
    if home is not None:
        return Path(home)
    try:
        from .profile import home as profile_home  # stream engineer's module

        return Path(profile_home())
    except ImportError:
        return Path(os.environ.get("B2B_HOME") or os.getcwd())


@dataclass
class _ProfileRef:
    """What the engines need from a camera profile (used when b2b_stream.profile is absent)."""

    name: str
    root: Path
    translator_path: Path
    engines_dir: Path
    deblurrer: str = "default"


def _open_profile(profile, home: str | os.PathLike | None) -> Any:
    if profile is None or not isinstance(profile, (str, os.PathLike)):
        return profile
    name = str(profile)
    try:
        from .profile import Profile  # noqa: WPS433
    except ImportError:
        root = _home(home) / "profiles" / name
        if not root.is_dir():
            raise B2BError(f"no camera profile {name!r} at {root}: record and calibrate one first "
                           f"(b2b-stream record / calibrate --profile {name})")
        return _ProfileRef(name, root, root / "translator.safetensors", _home(home) / "engines" / name)
    return Profile.open(name, home=home) if home is not None else Profile.open(name)


def _profile_name(profile) -> str | None:
    if profile is None:
        return None
    name = getattr(profile, "name", None)
    if name:
        return str(name)
    root = getattr(profile, "root", None)
    return Path(root).name if root else str(profile)


def _engines_dir(profile, home) -> Path:
    if profile is not None:
        d = getattr(profile, "engines_dir", None)
        if d:
            return Path(d)
        return _home(home) / "engines" / _profile_name(profile)
    return _home(home) / "engines" / "default"


def _load_translator(profile) -> nn.Module:
    path = Path(getattr(profile, "translator_path"))
    name = _profile_name(profile)
    if not path.is_file():
        raise B2BError(
            f"profile {name!r} has no trained translator ({path} missing): run "
            f"`b2b-stream calibrate --profile {name}` first, or run without a profile"
        )
    try:
        from b2b_train.trainer import load_translator  # noqa: WPS433
    except ImportError:
        # b2b_train.trainer not there: our own network files name their architecture.
        from b2b_train.nets.registry import load_from_file

        return load_from_file(path)[0]
    return load_translator(path)


def _load_deblurrer(name_or_path: str = "default", device: torch.device | None = None) -> nn.Module:
    """The deblurrer named (``default``: the shipped one for ``device``: GPU-grade on CUDA when shipped)."""
    try:
        from b2b_train.shipped import resolve_deblurrer  # noqa: WPS433
    except ImportError as e:
        p = Path(str(name_or_path))
        if p.suffix == ".safetensors" and p.is_file():
            from b2b_train.nets.registry import load_from_file

            return load_from_file(p)[0]
        raise B2BError(f"cannot load deblurrer {name_or_path!r}: b2b_train.shipped is not available ({e})") from None
    if str(name_or_path).strip().lower() in ("", "default") and device is not None:
        from b2b_train.shipped import load_default_deblurrer  # noqa: WPS433

        return load_default_deblurrer(device).cpu()
    return resolve_deblurrer(str(name_or_path))


def _load_lite(profile) -> nn.Module:
    name = _profile_name(profile)
    path = getattr(profile, "lite_path", None) or Path(getattr(profile, "root")) / "lite.safetensors"
    path = Path(path)
    if not path.is_file():
        raise B2BError(
            f"profile {name!r} has no lite network ({path} missing): run "
            f"`b2b-stream calibrate --profile {name} --lite` first, or run without --lite"
        )
    from b2b_train.nets.registry import load_from_file

    net, meta = load_from_file(path)
    from b2b_train.nets import registry

    if registry.spec(meta["net"]).family != "deblurrer":
        raise B2BError(f"{path}: holds a {meta['net']}, not a distilled deblurrer; rerun `b2b-stream calibrate --profile {name} --lite`")
    return net.float().eval()


def profile_networks(profile=None, lite: bool = False, translator: nn.Module | None = None,
                     deblurrer: nn.Module | str | None = None,
                     device: torch.device | None = None) -> tuple[nn.Module | None, nn.Module]:
    """``(translator or None, deblurrer)`` an engine runs for a profile (object, or None).

    Normal: the profile's translator and the deblurrer (``deblurrer`` if given, else the profile's or
    the shipped default for ``device``). ``lite``: no translator, and the profile's distilled student
    (``profiles/<name>/lite.safetensors``) as the deblurrer: one network at the deblurrer's speed.
    """
    if lite:
        if profile is None:
            raise B2BError("--lite runs a calibrated profile's distilled network: give --profile NAME")
        if translator is not None or (deblurrer is not None and not (isinstance(deblurrer, str) and deblurrer == "default")):
            raise B2BError("--lite runs the profile's distilled network alone; do not also give a translator or --deblurrer")
        return None, _load_lite(profile)
    if translator is None and profile is not None:
        translator = _load_translator(profile)
    if deblurrer is None or isinstance(deblurrer, (str, os.PathLike)):
        deblurrer = _load_deblurrer(deblurrer or getattr(profile, "deblurrer", None) or "default", device)
    return translator, deblurrer


# ----------------------------------------------------------------------------- building per backend

def _example(size: tuple[int, int], device: torch.device) -> torch.Tensor:
    w, h = size
    return example_frames(1, h, w).to(device)


def _cast(fused: FusedDeblur, precision: str, device: torch.device, channels_last: bool) -> FusedDeblur:
    m = fused.to(device=device, dtype=_DTYPES[precision]).eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def export_onnx(fused: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export ``fused`` (uint8 (1, H, W, 3) -> uint8) to one self-contained ONNX file at ``path``."""
    import contextlib
    import io
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(fused, (example,), str(path), input_names=["frames"], output_names=["deblurred"],
                              dynamo=True, external_data=False, verbose=False)
        except TypeError:  # older torch without external_data
            torch.onnx.export(fused, (example,), str(path), input_names=["frames"], output_names=["deblurred"],
                              dynamo=True, verbose=False)
    data_file = Path(str(path) + ".data")
    if data_file.exists():
        raise B2BError(f"ONNX export wrote external weights ({data_file}); network too large for one file")


def _trt_kwargs(fn: Callable, **wanted) -> dict:
    """Keep only the keyword arguments ``fn`` accepts (torch-tensorrt's API moved between versions)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return wanted
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}


def build_tensorrt(fused: FusedDeblur, example: torch.Tensor, path: Path, precision: str) -> None:
    """Compile ``fused`` (already on CUDA in its precision) with torch-tensorrt and save it at ``path``.

    Static shape (the camera's), uint8 input and output. The module is cast to the precision
    beforehand (fp16 weights, float casts inside), which is what explicit typing (the default of
    recent torch-tensorrt) builds; older versions also get ``enabled_precisions``.
    """
    trt = _import_tensorrt()
    ep = torch.export.export(fused, (example,))
    spec = trt.Input(tuple(example.shape), dtype=torch.uint8)
    compile_fn = trt.dynamo.compile
    import inspect

    params = set(inspect.signature(compile_fn).parameters)
    kwargs: dict[str, Any] = {"min_block_size": 1, "truncate_double": True}
    if "use_explicit_typing" in params:
        kwargs["use_explicit_typing"] = True
    else:
        kwargs["enabled_precisions"] = {_DTYPES[precision], torch.float32}
    if "arg_inputs" in params:
        kwargs["arg_inputs"] = [spec]
    else:
        kwargs["inputs"] = [spec]
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    gm = compile_fn(ep, **kwargs)
    save_kw = _trt_kwargs(trt.save, output_format="exported_program", arg_inputs=[example])
    if "arg_inputs" not in save_kw:
        save_kw = _trt_kwargs(trt.save, output_format="exported_program", inputs=[example])
    trt.save(gm, str(path), **save_kw)


def load_tensorrt(path: Path) -> Callable:
    _import_tensorrt()  # registers the tensorrt ops the program calls
    return torch.export.load(str(path)).module()


# ----------------------------------------------------------------------------- the cache

@dataclass
class _Slot:
    dir: Path
    stem: str
    ext: str

    @property
    def file(self) -> Path:
        return self.dir / f"{self.stem}{self.ext}"

    @property
    def manifest(self) -> Path:
        return self.dir / f"{self.stem}.json"


@dataclass
class _CacheResult:
    engine: Engine
    status: str  # "hit" | "built"
    messages: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def _read_manifest(slot: _Slot, key: dict) -> tuple[dict | None, str]:
    """(manifest, "") when the cached file may be used, else (None, why it may not)."""
    if not slot.manifest.exists():
        if slot.file.exists():
            return None, f"{slot.file.name} has no manifest (foreign or half-written file)"
        return None, "no cached engine"
    try:
        man = json.loads(slot.manifest.read_text())
        if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
            return None, f"{slot.manifest.name} is not a b2b engine manifest"
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None, f"{slot.manifest.name} is corrupt"
    old = man.get("key") or {}
    changed = sorted(k for k in set(key) | set(old) if old.get(k) != key.get(k))
    if changed:
        return None, "stale engine (changed: " + ", ".join(changed) + ")"
    if not slot.file.is_file():
        return None, f"engine file {slot.file.name} is missing"
    if slot.file.stat().st_size != man.get("bytes") or _sha256(slot.file) != man.get("sha256"):
        return None, f"engine file {slot.file.name} does not match its manifest (corrupt or replaced)"
    import hmac

    if not hmac.compare_digest(str(man.get("signature", "")), _signature(man["sha256"], key)):
        return None, f"{slot.manifest.name} is not signed by this user's key (copied or edited)"
    return man, ""


def _signing_key() -> bytes:
    """This user's secret for signing engine manifests (``$B2B_CACHE/engine-signing.key``, mode 600).

    An exported program is deserialised with pickle, so a file is loaded only if its manifest
    carries our HMAC over (file SHA-256, key): a file and manifest written by anyone without this
    secret (copied from elsewhere, dropped into engines/, edited) are rebuilt instead of loaded.
    """
    root = Path(os.environ.get("B2B_CACHE") or Path.home() / ".cache" / "b2b")
    path = root / "engine-signing.key"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    except FileExistsError:  # another process made it first
        pass
    data = path.read_bytes()
    if len(data) < 32:
        raise B2BError(f"{path}: engine signing key is damaged; delete it (engines will be rebuilt)")
    return data


def _signature(sha256: str, key: dict) -> str:
    import hmac

    msg = (sha256 + "\n" + json.dumps(key, sort_keys=True)).encode()
    return hmac.new(_signing_key(), msg, hashlib.sha256).hexdigest()


def _remove(slot: _Slot) -> None:
    for p in (slot.manifest, slot.file, Path(str(slot.file) + ".data")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _cached(slot: _Slot, key: dict, build: Callable[[Path], dict], load: Callable[[Path, dict], Engine],
            use_cache: bool, say: Callable[[str], None]) -> _CacheResult:
    messages: list[str] = []

    def note(msg: str) -> None:
        messages.append(msg)
        say(msg)

    if use_cache:
        man, why = _read_manifest(slot, key)
        if man is not None:
            try:
                eng = load(slot.file, man)
                eng.info.update(cache="hit", file=str(slot.file), build_seconds=man.get("build_seconds"),
                                check=man.get("check"))
                note(f"cached engine {slot.file}")
                return _CacheResult(eng, "hit", messages, man)
            except Exception as e:  # a file that matches its manifest but does not load here
                why = f"cached engine does not load here ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        note(f"{why}: building {slot.file.name}" if why != "no cached engine" else f"building {slot.file}")
    else:
        note(f"rebuilding {slot.file} (asked to)")
    _remove(slot)  # never leave a stale file beside a new manifest
    slot.dir.mkdir(parents=True, exist_ok=True)
    tmp = slot.dir / f".{slot.stem}.building{slot.ext}"
    t0 = time.perf_counter()
    try:
        extra = build(tmp)
        os.replace(tmp, slot.file)
    finally:
        for p in (tmp, Path(str(tmp) + ".data")):
            if p.exists():
                p.unlink()
    seconds = time.perf_counter() - t0
    man = {
        "format": MANIFEST_FORMAT,
        "key": key,
        "file": slot.file.name,
        "bytes": slot.file.stat().st_size,
        "sha256": (digest := _sha256(slot.file)),
        "signature": _signature(digest, key),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 3),
        **(extra or {}),
    }
    eng = load(slot.file, man)
    from b2b_train.checkpoint import atomic_write

    atomic_write(slot.manifest, (json.dumps(man, indent=2, sort_keys=True) + "\n").encode())
    eng.info.update(cache="built", file=str(slot.file), build_seconds=man["build_seconds"])
    return _CacheResult(eng, "built", messages, man)


# ----------------------------------------------------------------------------- get_engine

@dataclass
class _Plan:
    backend: str
    why: str
    precision: str
    mode: str | None = None
    notes: list[str] = field(default_factory=list)


def _plan(backend: str, precision: str, device: torch.device, torch_mode: str) -> _Plan:
    if backend not in BACKENDS:
        raise B2BError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise B2BError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if torch_mode not in TORCH_MODES:
        raise B2BError(f"unknown torch mode {torch_mode!r} (choose from {', '.join(TORCH_MODES)})")
    notes = []
    cuda = device.type == "cuda"
    if not cuda and precision != "fp32":
        notes.append(f"{precision} asked for on the CPU: running fp32 (half precision is a GPU feature)")
        precision = "fp32"
    if backend == "tensorrt" and not cuda:
        raise B2BError("the tensorrt backend needs an NVIDIA GPU (CUDA); use --backend torch or onnxruntime on the CPU")
    if backend == "auto":
        if cuda:
            if _has_module("torch_tensorrt"):
                return _Plan("tensorrt", "CUDA device and torch-tensorrt installed", precision, None, notes)
            mode = DEFAULT_TORCH_CUDA_MODE if torch_mode == "auto" else torch_mode
            return _Plan("torch", f"CUDA device, torch-tensorrt not installed: torch ({mode})", precision, mode, notes)
        # CPU: decided by measurement in get_engine when onnxruntime is there
        if _has_module("onnxruntime"):
            return _Plan("auto-cpu", "", precision, "eager" if torch_mode == "auto" else torch_mode, notes)
        return _Plan("torch", "CPU and onnxruntime not installed: torch eager", precision,
                     "eager" if torch_mode == "auto" else torch_mode, notes)
    mode = None
    if backend == "torch":
        mode = torch_mode if torch_mode != "auto" else (DEFAULT_TORCH_CUDA_MODE if cuda else "eager")
        if not cuda and mode in ("cudagraphs", "compile+cudagraphs", "reduce-overhead"):
            raise B2BError(f"torch mode {mode!r} needs CUDA; use eager or compile on the CPU")
    if backend == "tensorrt":
        _import_tensorrt()
    if backend == "onnxruntime":
        _import_onnxruntime()
    return _Plan(backend, "asked for", precision, mode, notes)


def _time_engine(engine: Engine, runs: int = 3) -> float:
    """Median seconds per frame after one warm-up run."""
    engine.warmup(1)
    w, h = engine.size
    x = example_frames(1, h, w, seed=1).numpy()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.run(x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def get_engine(
    profile=None,
    backend: str = "auto",
    precision: str = "fp32",
    device: str | torch.device = "auto",
    size: tuple[int, int] | str | None = (640, 480),
    translator: nn.Module | None = None,
    deblurrer: nn.Module | str | None = None,
    *,
    torch_mode: str = "auto",
    channels_last: bool | None = None,
    multiple: int | None = None,
    channel_order: str = "rgb",
    home: str | os.PathLike | None = None,
    cache: bool = True,
    rebuild: bool = False,
    check: bool = True,
    lite: bool = False,
    say: Callable[[str], None] | None = None,
) -> Engine:
    """A ready engine for a camera profile (or the shipped deblurrer alone) on one backend.

    Args:
        profile: profile name or object; ``None`` runs the shipped default deblurrer alone.
        backend: ``auto`` | ``tensorrt`` | ``torch`` | ``onnxruntime``.
        precision: ``fp32`` | ``fp16`` | ``bf16`` | ``auto`` (fp16 on CUDA, fp32 on the CPU); half
            precisions run on CUDA only (the CPU runs fp32 and says so in ``info["note"]``).
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        size: the camera's frame size ``(W, H)`` (or ``"WxH"``); static-shape engines are built for it.
        translator, deblurrer: explicit networks (override the profile's / the shipped default);
            ``deblurrer`` may also be a name or file for ``b2b_train.shipped.resolve_deblurrer``.
        torch_mode: torch backend variant (see ``TORCH_MODES``); ``auto``: compile on CUDA, eager on CPU.
        channels_last: channels-last memory format (default: on CUDA).
        multiple: pad to this side multiple inside the engine (default: lcm of what the nets say).
        home: root of ``profiles/`` and ``engines/`` (default ``$B2B_HOME`` or the working directory).
        cache: reuse and write engines under ``engines/<profile>/``; ``False`` builds in a
            temporary folder that is removed once the engine is loaded.
        rebuild: build even when a valid cached engine exists (and replace it).
        check: after building, compare with the eager fp32 module on a test frame (``info["check"]``).
        lite: run the profile's distilled student alone (``calibrate --lite``), no translator;
            engines cached under ``engines/<profile>/lite/``.
        say: called with each status line (cache hit, rebuild reason, backend choice).
    """
    say = say or (lambda m: log.info(m))
    dev = resolve_device(device)
    size = parse_size(size) if size is not None else None
    prof = _open_profile(profile, home)
    notes: list[str] = []
    translator, deblurrer = profile_networks(prof, lite, translator, deblurrer, device=dev)
    if lite:
        notes.append("lite: the profile's distilled network alone (imitates translator + deblurrer)")
    elif translator is None:
        notes.append("no camera profile: the shipped default deblurrer alone (no blur translation)"
                     if prof is None else "no translator: deblurrer alone")
    translator = translator.eval() if translator is not None else None
    deblurrer = deblurrer.eval()
    m = int(multiple) if multiple else net_multiple(translator, deblurrer)
    plan = _plan(backend, precision, dev, torch_mode)
    notes += plan.notes
    if channels_last is None:
        channels_last = dev.type == "cuda"
    if size is None and not (plan.backend == "torch" and plan.mode in ("eager", "compile", "max-autotune")):
        raise B2BError(f"the {plan.backend} backend builds for one frame size: pass size=(W, H) / --size WxH")
    pname = _profile_name(prof)
    common = dict(
        profile=pname,
        **({"lite": True} if lite else {}),  # absent otherwise: existing engines' keys stay valid
        translator=_digest(translator),
        deblurrer=_digest(deblurrer),
        multiple=m,
        channel_order=channel_order,
        device=_device_id(dev),
        size=list(size) if size else None,
        torch=torch.__version__,
    )
    import shutil
    import tempfile

    tmpdir = None if cache else Path(tempfile.mkdtemp(prefix="b2b-engine-"))
    # lite engines live beside the two-network ones, so switching --lite on and off rebuilds nothing
    edir = tmpdir or (_engines_dir(prof, home) / "lite" if lite else _engines_dir(prof, home))

    def make_fused(prec: str, memory_cl: bool | None = None) -> FusedDeblur:
        # a fresh copy per backend/precision: the caller's networks are never cast in place
        import copy

        f = FusedDeblur(copy.deepcopy(translator), copy.deepcopy(deblurrer), multiple=m, channel_order=channel_order)
        return _cast(f, prec, dev, bool(channels_last) if memory_cl is None else memory_cl)

    def one(backend_name: str, mode: str | None, prec: str) -> _CacheResult:
        return _get_one(backend_name, mode, prec, dev, size, common, edir, make_fused, not rebuild, check, say,
                        channels_last=bool(channels_last))

    try:
        if plan.backend == "auto-cpu" and size is None:
            plan = _Plan("torch", "CPU, no frame size given: torch eager (any size)", plan.precision, plan.mode)
        if plan.backend == "auto-cpu":
            res, why = _auto_cpu(one, plan, edir, common, bool(cache and not rebuild), say)
        elif plan.backend == "tensorrt" and backend == "auto":
            try:
                res = one("tensorrt", None, plan.precision)
                why = plan.why
            except B2BError:
                raise
            except Exception as e:  # a TensorRT build failure must not leave auto without an engine
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                mode = DEFAULT_TORCH_CUDA_MODE if torch_mode == "auto" else torch_mode
                say(f"tensorrt build failed ({type(e).__name__}: {first}); falling back to torch ({mode})")
                notes.append(f"tensorrt build failed: {first}")
                res = one("torch", mode, plan.precision)
                why = f"CUDA device; torch-tensorrt failed to build this model, so torch ({mode})"
        else:
            res = one(plan.backend, plan.mode, plan.precision)
            why = plan.why
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    eng = res.engine
    if tmpdir is not None:
        eng.info["file"] = None
    eng.info.update(
        why=why,
        profile=pname,
        lite=bool(lite),
        translator=common["translator"],
        deblurrer=common["deblurrer"],
        multiple=m,
        notes=notes,
        cache_messages=res.messages,
    )
    if notes:
        eng.info["note"] = "; ".join(notes)
    say(f"engine: {eng.backend} ({eng.precision}) on {eng.device}: {why}")
    for n in notes:
        say(n)
    return eng


def _auto_cpu(one: Callable, plan: _Plan, edir: Path, common: dict, reuse: bool, say) -> tuple[_CacheResult, str]:
    """On the CPU with onnxruntime installed: time onnxruntime and torch eager once, keep the faster.

    The measurement is remembered in ``engines/<profile>/auto-cpu-WxH.json`` (same key as the
    engines), so later runs load the chosen engine without measuring again.
    """
    w, h = common["size"]
    choice_file = edir / f"auto-cpu-{w}x{h}.json"
    if reuse and choice_file.is_file():
        try:
            saved = json.loads(choice_file.read_text())
            if saved.get("key") == common and saved.get("backend") in ("onnxruntime", "torch"):
                b = saved["backend"]
                res = one(b, None if b == "onnxruntime" else plan.mode, plan.precision)
                return res, saved["why"] + " (measured earlier)"
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass
    res_ort = one("onnxruntime", None, plan.precision)
    res_torch = one("torch", plan.mode, plan.precision)
    say("auto: timing onnxruntime and torch eager on this CPU")
    t_ort = _time_engine(res_ort.engine)
    t_torch = _time_engine(res_torch.engine)
    if t_ort < t_torch:
        res, backend = res_ort, "onnxruntime"
        why = f"CPU: onnxruntime measured faster than torch eager ({1 / t_ort:.1f} vs {1 / t_torch:.1f} fps at {w}x{h})"
    else:
        res, backend = res_torch, "torch"
        why = f"CPU: torch eager measured faster than onnxruntime ({1 / t_torch:.1f} vs {1 / t_ort:.1f} fps at {w}x{h})"
    from b2b_train.checkpoint import atomic_write

    atomic_write(choice_file, (json.dumps({"key": common, "backend": backend, "why": why,
                                           "fps": {"onnxruntime": 1 / t_ort, "torch": 1 / t_torch}},
                                          indent=2, sort_keys=True) + "\n").encode())
    return res, why


def _get_one(backend: str, mode: str | None, precision: str, dev: torch.device, size, common: dict, edir: Path,
             make_fused: Callable[[str], FusedDeblur], use_cache: bool, check: bool, say, channels_last: bool) -> _CacheResult:
    devkind = dev.type
    wh = f"{size[0]}x{size[1]}" if size else "any"
    variant = f"-{mode}" if mode else ""
    slot = _Slot(edir, f"{backend}{variant}-{precision}-{devkind}-{wh}", _EXT[backend])
    key = dict(common, backend=backend, variant=mode, precision=precision, channels_last=channels_last)
    if backend == "onnxruntime":
        import onnxruntime as ort

        key["onnxruntime"] = ort.__version__
    if backend == "tensorrt":
        trt = _import_tensorrt()
        key["torch_tensorrt"] = getattr(trt, "__version__", "?")
    base_info = {"backend": backend, "device": str(dev), "precision": precision}

    def reference_check(engine: Engine) -> dict:
        if not check or size is None:
            return {}
        w, h = size
        x = example_frames(1, h, w, seed=2)
        ref_mod = make_fused("fp32", False)
        with torch.inference_mode():
            ref = ref_mod(x.to(dev)).cpu().numpy()
        got = engine.run(x.numpy())
        return {"check": {"against": "eager fp32", **compare_frames(got, ref)}}

    if backend == "torch":
        def build(tmp: Path) -> dict:
            from b2b_train.checkpoint import save_weights

            f = make_fused(precision)
            save_weights(tmp, f.state_dict(), {"engine": key})
            os.unlink(str(tmp) + ".json")
            return {}

        def load(path: Path, man: dict) -> Engine:
            from b2b_train.checkpoint import load_weights, load_state_dict_strict

            f = make_fused(precision)
            state, _ = load_weights(path)
            load_state_dict_strict(f, state, source=str(path), what="fused engine")
            return TorchEngine(f, device=dev, precision=precision, mode=mode or "eager", size=size, info=dict(base_info))

    elif backend == "onnxruntime":
        def build(tmp: Path) -> dict:
            f = make_fused(precision)
            if size is None:
                raise B2BError("the onnxruntime backend needs a frame size")
            export_onnx(f, _example(size, dev), tmp)
            return {}

        def load(path: Path, man: dict) -> Engine:
            return OnnxEngine(path, device=str(dev), precision=precision, size=size, info=dict(base_info))

    elif backend == "tensorrt":
        def build(tmp: Path) -> dict:
            f = make_fused(precision)
            build_tensorrt(f, _example(size, dev), tmp, precision)
            return {}

        def load(path: Path, man: dict) -> Engine:
            return TensorRTEngine(load_tensorrt(path), device=str(dev), precision=precision, size=size,
                                  info=dict(base_info))
    else:  # pragma: no cover
        raise B2BError(f"unknown backend {backend!r}")

    res = _cached(slot, key, build, load, use_cache, say)
    if res.status == "built":
        extra = reference_check(res.engine)
        if extra:
            res.manifest.update(extra)
            res.engine.info.update(extra)
            from b2b_train.checkpoint import atomic_write

            if slot.manifest.exists():
                atomic_write(slot.manifest, (json.dumps(res.manifest, indent=2, sort_keys=True) + "\n").encode())
    return res


def build_engine(*args, **kwargs) -> Engine:
    """:func:`get_engine` that rebuilds even when a valid cached engine exists (and replaces it)."""
    kwargs["rebuild"] = True
    return get_engine(*args, **kwargs)
