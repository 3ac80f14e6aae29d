"""The ``tensorrt`` backend: torch-tensorrt's dynamo path, on NVIDIA GPUs.

The fused module is exported with ``torch.export`` at the camera's static shape (uint8 in, uint8 out)
and compiled; saved as an exported program. torch-tensorrt is optional and imported only here, when
this backend is asked for. ``torch.export.load`` may fall back to full unpickling, so :func:`load_tensorrt`
is reached only through this backend's ``load``, which the cache calls for a file whose hash and
signature match its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from b2b_train.errors import B2BError

from ..fuse import FusedDeblur
from .registry import BackendSpec, Target, _has_module, register
from .runtime import _DTYPES, Engine, Pending, _CudaRing, _example


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


def _build(target: Target, tmp: Path) -> dict:
    f = target.make_fused(target.precision)
    build_tensorrt(f, _example(target.size, target.device), tmp, target.precision)
    return {}


def _load(target: Target, path: Path) -> Engine:
    return TensorRTEngine(load_tensorrt(path), device=str(target.device), precision=target.precision,
                          size=target.size, info=dict(target.info))


def _versions() -> dict:
    trt = _import_tensorrt()
    return {"torch_tensorrt": getattr(trt, "__version__", "?")}


register(BackendSpec("tensorrt", ext=".ep", build=_build, load=_load,
                     available=lambda device: device.startswith("cuda") and _has_module("torch_tensorrt"),
                     require=_import_tensorrt, versions=_versions, needs_cuda=True))
