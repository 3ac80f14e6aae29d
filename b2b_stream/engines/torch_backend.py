"""The ``torch`` backend: the fused module run by PyTorch itself.

Eager, TorchScript (``script``), ``torch.compile``, CUDA graphs, channels-last; on a GPU in fp16 / bf16
(the module is cast; the uint8 -> float cast inside follows), on the CPU fp32 or, where the CPU has it
natively, bf16. Its cached "engine" is the fused weights as safetensors.

``script`` traces and freezes the module for the engine's one frame size when it is loaded. Eager
PyTorch takes the GIL back between every op, and in the pipeline a capture or tracking thread that
holds it stalls each of the network's hundreds of ops: measured on 2 cores at 640x480 (1 thread, bf16),
eager went from 287 to 1841 ms a frame beside a busy Python thread, the frozen graph from 225 to 220 ms.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..fuse import FusedDeblur, example_frames
from .registry import BackendSpec, Target, register
from .runtime import Engine, Pending, _CudaRing


class TorchEngine(Engine):
    """The fused module run by PyTorch: eager, torch.compile and/or one CUDA graph."""

    backend = "torch"

    def __init__(self, module: FusedDeblur, *, device: torch.device, precision: str, mode: str,
                 size: tuple[int, int] | None, info: dict | None = None):
        static = mode in ("cudagraphs", "compile+cudagraphs", "reduce-overhead", "script")
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
        self._scripted: Callable | None = None  # mode script: the graph traced for the engine's frame size
        self._graph = None
        self._static_in: torch.Tensor | None = None
        self._static_out: torch.Tensor | None = None
        self._cuda = self.torch_device.type == "cuda"
        self._ring = _CudaRing(self.torch_device) if self._cuda else None
        if self._cuda:
            self.async_depth = self._ring.depth
        if mode == "script" and size is not None and not self._cuda:
            # traced now, not at the first frame: a --roi box engine first used mid-stream would stall for it
            with torch.inference_mode():
                self._scripted = self._script(example_frames(1, size[1], size[0]))

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

    def _script(self, x: torch.Tensor) -> Callable:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarning: the padding branch is fixed for this size, as meant
                traced = torch.jit.freeze(torch.jit.trace(self.module.eval(), x, check_trace=False))
        except Exception as e:  # a network TorchScript cannot trace still runs, eagerly
            self.info["note"] = f"TorchScript trace failed ({type(e).__name__}); running eager"
            self.mode = self.info["mode"] = "eager"
            return self._fn
        return traced

    def _run(self, frames: np.ndarray) -> np.ndarray:
        if self._cuda:
            return self._submit(frames).result()
        with torch.inference_mode():
            x = torch.from_numpy(frames)
            if self.mode == "script":
                if self._scripted is None:
                    self._scripted = self._script(x)
                y = self._scripted(x)
            else:
                y = self._fn(x)
        return y.numpy()


def _build(target: Target, tmp: Path) -> dict:
    from b2b_train.checkpoint import save_weights

    f = target.make_fused(target.precision)
    save_weights(tmp, f.state_dict(), {"engine": target.key})
    os.unlink(str(tmp) + ".json")
    return {}


def _load(target: Target, path: Path) -> Engine:
    from b2b_train.checkpoint import load_weights, load_state_dict_strict

    f = target.make_fused(target.precision)
    state, _ = load_weights(path)
    load_state_dict_strict(f, state, source=str(path), what="fused engine")
    return TorchEngine(f, device=target.device, precision=target.precision, mode=target.mode or "eager",
                       size=target.size, info=dict(target.info))


register(BackendSpec("torch", ext=".safetensors", build=_build, load=_load))
