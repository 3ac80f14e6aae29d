"""A trained translator as inference uses it: loaded from its file, forward giving the full resolution only.

:func:`load_translator` reads our ``translator.safetensors`` (a registry net with its metadata) or an
official MIMO-UNet / Blur2Blur ``.pth``; :class:`FullResolution` wraps the multi-output translator so
the deblurring stream, the evaluation and distillation see one image in, one image out.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import read_meta
from ..errors import CheckpointError
from . import registry

# the weights file a translator training run writes (b2b_train.trainer) and this module loads
WEIGHTS_NAME = "translator.safetensors"


class FullResolution(nn.Module):
    """Wraps a multi-output translator so ``forward(x)`` returns only the full-resolution image.

    ``x`` (N, 3, H, W) in [0, 1] -> (N, 3, H, W) (not clamped). ``.net`` is the wrapped translator,
    ``.meta`` its file's metadata, ``.multiple`` the side multiple it pads to internally.
    """

    def __init__(self, net: nn.Module, meta: dict | None = None, multiple: int = 1):
        super().__init__()
        self.net = net
        self.meta = dict(meta or {})
        self.multiple = int(multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[-1] if isinstance(out, (list, tuple)) else out


def load_translator(path: str | os.PathLike) -> FullResolution:
    """Load a trained translator (our ``translator.safetensors``, or an official MIMO-UNet /
    Blur2Blur ``.pth``) in eval mode; its forward gives the full-resolution output only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"translator not found: {path}")
    if path.suffix == ".safetensors":
        meta = read_meta(path)
        if "__state__" in meta:
            raise CheckpointError(f"{path}: a training checkpoint; use the run's {WEIGHTS_NAME} instead")
        if meta.get("net"):
            net, meta = registry.load_from_file(path)
            if registry.spec(meta["net"]).family != "translator":
                raise CheckpointError(f"{path}: holds a {meta['net']} ({registry.spec(meta['net']).family}), not a translator")
            return FullResolution(net, meta, registry.spec(meta["net"]).multiple).eval()
    net = registry.load("mimo-unet", path)
    return FullResolution(net, {"net": "mimo-unet", "source": str(path)}, registry.spec("mimo-unet").multiple).eval()
