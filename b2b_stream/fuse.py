"""One module from a camera frame to a deblurred frame: uint8 in, uint8 out, nothing on the host between.

:class:`FusedDeblur` chains, inside a single ``forward``::

    uint8 (N, H, W, 3) --[BGR->RGB]--> float [0, 1] (N, 3, H, W) --pad to multiple-->
        translator (full-resolution output) --clamp--> deblurrer --crop, clamp, round--> uint8 (N, H, W, 3)

so the whole chain runs on the device, is compiled with the networks (``torch.compile``), exports as one
graph (``torch.export``, ONNX, torch-tensorrt) and the host only moves bytes.

Precision follows the module: ``FusedDeblur(...).half()`` computes in fp16 (the uint8 -> float cast
inside picks the networks' dtype) and rounds to uint8 in fp32, so every backend shares one definition
of the output. The NHWC -> NCHW permute of a contiguous frame batch is a channels-last NCHW view,
which is what channels-last convolutions want anyway.
"""

from __future__ import annotations

import math
import torch
from torch import nn

from b2b_train.nets.layers import pad_to_multiple

__all__ = [
    "FusedDeblur",
    "frames_to_tensor",
    "tensor_to_frames",
    "pad_to_multiple",
    "full_resolution",
    "net_multiple",
    "DEFAULT_MULTIPLE",
    "reference_unfused",
    "example_frames",
]

# Side multiple used when a network does not say which it needs: NAFNet (4 downsamplings) needs 16,
# MIMO-UNet 4; padding to more than needed is harmless (the networks pad and crop themselves).
DEFAULT_MULTIPLE = 16


def frames_to_tensor(frames: torch.Tensor, dtype: torch.dtype = torch.float32, bgr: bool = False) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] of ``dtype``.

    ``bgr=True`` reverses the channel order first (OpenCV frames). The result is a permuted view
    (channels-last strides) when the input is contiguous.
    """
    x = frames
    if bgr:
        x = torch.flip(x, dims=[-1])
    return x.permute(0, 3, 1, 2).to(dtype).div(255.0)


def tensor_to_frames(x: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) (any float dtype) -> uint8 (N, H, W, 3): clamp to [0, 1], x255, round (in fp32)."""
    y = x.float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1)


def full_resolution(out) -> torch.Tensor:
    """The full-resolution image of a translator's output: a tensor, or the last of ``[1/4, 1/2, full]``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and len(out) > 0:
        return out[-1]
    if isinstance(out, dict) and "full" in out:
        return out["full"]
    raise TypeError(f"translator returned {type(out).__name__}; expected a tensor or a list of scales")


def net_multiple(*nets: nn.Module | None, default: int = DEFAULT_MULTIPLE) -> int:
    """Least common multiple of the side multiples the networks say they need.

    A network says it with a ``multiple`` attribute (or ``spec_multiple``, or NAFNet's
    ``padder_size``); a network that says nothing counts as ``default``. Padding more than needed
    is harmless: frames whose sides are multiples of the result go through unpadded, others are
    replicate-padded once here (the networks' own padding then has nothing to do).
    """
    m = 1
    for net in nets:
        if net is None:
            continue
        k = getattr(net, "multiple", None) or getattr(net, "spec_multiple", None) or getattr(net, "padder_size", None)
        if not isinstance(k, int) or k < 1:
            k = default
        m = m * k // math.gcd(m, k)
    return m


class FusedDeblur(nn.Module):
    """uint8 frames (N, H, W, 3) -> translate -> deblur -> uint8 frames (N, H, W, 3), one module.

    Args:
        translator: the camera's blur->blur translator, or ``None`` to run the deblurrer alone.
            Its output may be ``[1/4, 1/2, full]`` (the full one is used) or the full image.
        deblurrer: the known-blur deblurrer, image -> image of the same shape.
        multiple: pad height and width up to a multiple of this before the networks (lcm of their
            needs; see :func:`net_multiple`) and crop back after.
        channel_order: ``"rgb"`` (b2b's convention) or ``"bgr"`` (raw OpenCV frames).
        pad_mode: ``"replicate"`` or ``"reflect"``.
        clamp_between: clamp the translator's output to [0, 1] before the deblurrer, as if it had
            been written as an image (the deblurrer was trained on [0, 1] images).
    """

    def __init__(
        self,
        translator: nn.Module | None,
        deblurrer: nn.Module,
        multiple: int = DEFAULT_MULTIPLE,
        channel_order: str = "rgb",
        pad_mode: str = "replicate",
        clamp_between: bool = True,
    ):
        super().__init__()
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', not {channel_order!r}")
        if pad_mode not in ("replicate", "reflect"):
            raise ValueError(f"pad_mode must be 'replicate' or 'reflect', not {pad_mode!r}")
        if int(multiple) < 1:
            raise ValueError(f"multiple must be >= 1, not {multiple}")
        self.translator = translator
        self.deblurrer = deblurrer
        self.multiple = int(multiple)
        self.channel_order = channel_order
        self.pad_mode = pad_mode
        self.clamp_between = bool(clamp_between)
        # Follows .half()/.to(dtype)/.to(device) with the networks: tells forward the compute dtype.
        self.register_buffer("_probe", torch.zeros(()), persistent=False)

    @property
    def compute_dtype(self) -> torch.dtype:
        return self._probe.dtype

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)."""
        h, w = frames.shape[1], frames.shape[2]
        x = frames_to_tensor(frames, self._probe.dtype, bgr=self.channel_order == "bgr")
        x = pad_to_multiple(x, self.multiple, self.pad_mode)
        if self.translator is not None:
            x = full_resolution(self.translator(x))
            if self.clamp_between:
                x = x.clamp(0.0, 1.0)
        x = self.deblurrer(x)
        x = x[:, :, :h, :w]
        y = tensor_to_frames(x)
        if self.channel_order == "bgr":
            y = torch.flip(y, dims=[-1])
        return y

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, channel_order={self.channel_order!r}, pad_mode={self.pad_mode!r}"


def reference_unfused(
    translator: nn.Module | None,
    deblurrer: nn.Module,
    frames: torch.Tensor,
    multiple: int = DEFAULT_MULTIPLE,
    pad_mode: str = "replicate",
    clamp_between: bool = True,
) -> torch.Tensor:
    """The same computation, step by step with host round trips, for tests and benchmarks.

    uint8 (N, H, W, 3) RGB -> uint8 (N, H, W, 3) RGB; each network runs alone and its result comes
    back to the host between steps, as an unfused app would do it.
    """
    h, w = frames.shape[1], frames.shape[2]
    with torch.no_grad():
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        x = pad_to_multiple(x, multiple, pad_mode)
        if translator is not None:
            outs = translator(x)
            x = full_resolution(outs).detach().cpu()
            if clamp_between:
                x = x.clamp(0, 1)
        x = deblurrer(x).detach().cpu()[:, :, :h, :w]
        return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def example_frames(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Deterministic uint8 test frames (N, H, W, 3): smooth gradients, edges and noise (not just noise)."""
    g = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, height).view(1, height, 1, 1)
    xx = torch.linspace(0, 1, width).view(1, 1, width, 1)
    base = torch.cat([yy.expand(n, height, width, 1), xx.expand(n, height, width, 1),
                      ((yy * 7).floor() + (xx * 9).floor()).remainder(2).expand(n, height, width, 1)], dim=-1)
    noise = torch.rand(n, height, width, 3, generator=g) * 0.2
    return ((base * 0.8 + noise).clamp(0, 1) * 255).round().to(torch.uint8)
