"""The ``onnxruntime`` backend: the fused module exported to ONNX (uint8 in/out), CPU or CUDA provider.

Static shape (the camera's). onnxruntime is optional and imported only here, when this backend is
asked for. ONNX files hold no code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from b2b_train.errors import B2BError

from .registry import BackendSpec, Target, _has_module, register
from .runtime import Engine, _example


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


def _import_onnxruntime():
    try:
        import onnxruntime as ort  # noqa: WPS433
    except ImportError:
        raise B2BError(
            "the onnxruntime backend needs onnxruntime: `pip install 'b2b[onnx]'` "
            "(or onnxruntime-gpu for CUDA), or use --backend torch"
        ) from None
    return ort


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


def _build(target: Target, tmp: Path) -> dict:
    f = target.make_fused(target.precision)
    if target.size is None:
        raise B2BError("the onnxruntime backend needs a frame size")
    export_onnx(f, _example(target.size, target.device), tmp)
    return {}


def _load(target: Target, path: Path) -> Engine:
    return OnnxEngine(path, device=str(target.device), precision=target.precision, size=target.size,
                      info=dict(target.info))


def _versions() -> dict:
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__}


register(BackendSpec("onnxruntime", ext=".onnx", build=_build, load=_load,
                     available=lambda device: _has_module("onnxruntime"), require=_import_onnxruntime,
                     versions=_versions))
