"""The names ``get_engine`` and the commands accept, and the registry of backends behind them.

Each backend module registers one :class:`BackendSpec` (``register(BackendSpec(...))``) at import
time: how to build its engine file from the fused module, how to load that file, the file's
extension in the cache, and whether the backend can run here. The selection policy and the cache
reach a backend only through its spec:

    spec("onnxruntime").available("cpu")
    spec("tensorrt").load(target, path)

This module imports neither torch nor any backend library: the commands read :data:`BACKENDS` for
their ``--backend`` choices, and ``--help`` must stay fast. The backend modules (which do import
torch) are imported the first time a spec is looked up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from b2b_train.errors import B2BError

if TYPE_CHECKING:
    import torch

    from ..fuse import FusedDeblur
    from .runtime import Engine

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "bf16")
# what the commands offer: auto = fp16 on CUDA; on the CPU measured (fp32, or bf16 where the CPU has it natively)
PRECISION_CHOICES = ("auto", *PRECISIONS)
PRECISION_HELP = ("auto: fp16 on CUDA; on the CPU the fastest of onnxruntime fp32, torch fp32 and, where the CPU "
                  "has native bf16, torch bf16 (measured once per size)")
# torch backend variants. "compile" = inductor default mode; "max-autotune" = mode
# "max-autotune-no-cudagraphs"; "reduce-overhead" = inductor with its own CUDA graphs;
# "cudagraphs" = eager captured in one CUDA graph by us; "compile+cudagraphs" = both.
# script: TorchScript traced and frozen for one frame size; its graph runs in C++ without the GIL between ops, so
# capture and hand-tracking threads do not stall it (the CPU default for a sized engine; see torch_backend.py)
TORCH_MODES = ("auto", "eager", "script", "compile", "max-autotune", "reduce-overhead", "cudagraphs", "compile+cudagraphs")
DEFAULT_TORCH_CUDA_MODE = "compile"
DEFAULT_TORCH_CPU_MODE = "script"  # eager where no frame size is given (a traced graph has one)

# the module that registers each backend of BACKENDS ("auto" is a policy, not a backend)
_MODULES = {
    "tensorrt": "b2b_stream.engines.tensorrt_backend",
    "torch": "b2b_stream.engines.torch_backend",
    "onnxruntime": "b2b_stream.engines.onnxruntime_backend",
}


@dataclass(frozen=True)
class Target:
    """What one engine is for, as a backend's ``build`` and ``load`` receive it.

    ``make_fused(precision)`` returns a fresh fused module cast to that precision on ``device`` (the
    caller's networks are never cast in place); ``key`` is the engine's full cache key; ``info`` the
    first entries of the loaded engine's ``info`` (each load gets its own copy).
    """

    make_fused: Callable[[str], "FusedDeblur"]
    precision: str
    device: "torch.device"
    size: tuple[int, int] | None
    mode: str | None
    key: dict
    info: dict


def _anywhere(device: str) -> bool:
    return True


def _nothing_to_import() -> None:
    return None


def _no_versions() -> dict:
    return {}


@dataclass(frozen=True)
class BackendSpec:
    """How one backend builds, caches and loads the fused engine.

    ``build(target, tmp)`` writes the engine file at ``tmp`` and returns extra manifest entries (or
    ``{}``); ``load(target, path)`` returns the :class:`Engine` for a file whose manifest the cache
    has already verified. ``available(device)`` says whether the backend can run on ``device`` here
    (import checks only, nothing is built); ``require()`` imports the backend's library or fails with
    one clear line; ``versions()`` gives the library versions that belong in the cache key.
    ``needs_cuda``: the backend runs on NVIDIA GPUs only.
    """

    name: str
    ext: str  # the engine file's extension in the cache
    build: Callable[[Target, Path], dict]
    load: Callable[[Target, Path], "Engine"]
    available: Callable[[str], bool] = _anywhere
    require: Callable[[], Any] = _nothing_to_import
    versions: Callable[[], dict] = _no_versions
    needs_cuda: bool = False


REGISTRY: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    if spec.name not in _MODULES:
        raise ValueError(f"backend {spec.name!r} is not one of BACKENDS {BACKENDS}")
    if spec.name in REGISTRY:
        raise ValueError(f"backend {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def spec(name: str) -> BackendSpec:
    if name not in _MODULES:
        raise B2BError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if name not in REGISTRY:
        importlib.import_module(_MODULES[name])
    return REGISTRY[name]


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_backends(device: str = "cpu") -> list[str]:
    """Backends usable on ``device`` here (import checks only, nothing is built)."""
    return [name for name in BACKENDS if name in _MODULES and spec(name).available(device)]
