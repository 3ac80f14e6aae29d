"""Build, cache and load the fused translate+deblur engine for one backend.

One interface, :class:`Engine` (``engine(frame) -> frame``, ``engine.run(batch)``, ``.backend``,
``.device``, ``.precision``, ``.info``, ``.warmup()``, and ``engine.submit(frame) -> Pending`` with
``.async_depth``: CUDA engines keep two frames in flight), three backends:

* ``tensorrt`` - torch-tensorrt's dynamo path: the fused module exported at the camera's static shape
  (uint8 in, uint8 out), compiled and saved as an exported program; torch-tensorrt is optional.
* ``torch`` - the fused module itself: eager, TorchScript (``script``, the CPU default for a sized
  engine), ``torch.compile``, CUDA graphs, channels-last; bf16 on CPUs that have it natively.
* ``onnxruntime`` - the fused module exported to ONNX (uint8 in/out), CPU or CUDA execution provider.

:func:`get_engine` picks the backend (``auto``), builds or loads the engine through the cache, and says
which and why in ``engine.info["why"]``. The modules, one idea each:

* :mod:`.runtime` - :class:`Engine`, :class:`Pending` and the page-locked ring of CUDA engines;
* :mod:`.registry` - the option names (:data:`BACKENDS`, :data:`PRECISIONS`, :data:`TORCH_MODES`) and
  the backend registry (:class:`~.registry.BackendSpec`);
* :mod:`.torch_backend`, :mod:`.onnxruntime_backend`, :mod:`.tensorrt_backend` - one backend each;
* :mod:`.cache` - slots, signed manifests, build-or-load;
* :mod:`.networks` - a camera profile's networks and engines folder;
* :mod:`.cpu_precision` - which precision a CPU engine runs (bf16 only with native bf16);
* :mod:`.policy` - device, backend choice and :func:`get_engine`.
"""

from __future__ import annotations

import importlib

# Where each name is defined. Names resolve on first use (PEP 562 ``__getattr__``) so that reading the
# option names, as the commands do to declare ``--backend`` (``--help`` must not import torch),
# imports only the registry.
_EXPORTS = {
    "Engine": "runtime",
    "Pending": "runtime",
    "compare_frames": "runtime",
    "_CudaRing": "runtime",
    "BACKENDS": "registry",
    "PRECISIONS": "registry",
    "PRECISION_CHOICES": "registry",
    "PRECISION_HELP": "registry",
    "TORCH_MODES": "registry",
    "DEFAULT_TORCH_CUDA_MODE": "registry",
    "BackendSpec": "registry",
    "available_backends": "registry",
    "TorchEngine": "torch_backend",
    "OnnxEngine": "onnxruntime_backend",
    "export_onnx": "onnxruntime_backend",
    "TensorRTEngine": "tensorrt_backend",
    "build_tensorrt": "tensorrt_backend",
    "load_tensorrt": "tensorrt_backend",
    "_import_tensorrt": "tensorrt_backend",
    "MANIFEST_FORMAT": "cache",
    "_Slot": "cache",
    "_cached": "cache",
    "_digest": "cache",
    "profile_networks": "networks",
    "_open_profile": "networks",
    "get_engine": "policy",
    "build_engine": "policy",
    "resolve_device": "policy",
    "parse_size": "policy",
    "time_engine": "policy",
}

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
    "PRECISION_CHOICES",
    "PRECISION_HELP",
    "TORCH_MODES",
    "MANIFEST_FORMAT",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
