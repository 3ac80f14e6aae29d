"""Registry of every network b2b knows, by name, with how to build it and load its published weights.

Each network file registers its named configurations (``register(NetSpec(...))``) at import time;
:mod:`b2b_train.nets` imports them all. Other code builds by name and never reaches into files:

    net = build("nafnet-gopro-width32")
    net = load("nafnet-gopro-width32", "NAFNet-GoPro-width32.pth")   # official or our safetensors
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import nn

from ..checkpoint import load_any_weights
from ..errors import B2BError, CheckpointError

Family = Literal["translator", "discriminator", "deblurrer", "features", "bke"]
StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class NetSpec:
    """How to build one named network configuration and read its published checkpoints.

    ``remap`` turns an official checkpoint's keys (already unwrapped from ``params``/``model``...
    and stripped of ``module.``) into this network's keys; ``to_official`` is its inverse, used by
    the tests to write files in the official layout. ``published_params`` is the parameter count of
    the published model (tests compare against it). ``multiple`` is the input side multiple the net
    needs internally (it pads and crops itself; the fused engine may pad once up front instead).

    ``tiny_kwargs``: build arguments of a small variant of the same architecture (tests, smoke runs);
    ``eval_kwargs``: build arguments the published weights are run with (e.g. test-time local
    converter, TLC); ``example_inputs(batch, size)``: a tuple of input tensors, for networks whose
    forward takes more than the one (N, 3, H, W) image.
    """

    name: str
    family: Family
    build: Callable[..., nn.Module]
    remap: Callable[[StateDict], StateDict] | None = None
    to_official: Callable[[StateDict], StateDict] | None = None
    published_params: int | None = None
    multiple: int = 1
    weights_file: str | None = None  # usual file name of the published weights (cache look-up)
    url: str | None = None
    sha256: str | None = None
    description: str = ""
    tiny_kwargs: dict = field(default_factory=dict)
    eval_kwargs: dict = field(default_factory=dict)
    example_inputs: Callable[..., tuple[torch.Tensor, ...]] | None = None
    official_arch: str = ""  # class of the official code the published weights belong to
    sha256_prefix: str | None = None  # the published file's SHA-256 prefix that its name carries (torchvision)
    drive_id: str | None = None  # Google Drive file id of the official release, where it has no URL


REGISTRY: dict[str, NetSpec] = {}


def register(spec: NetSpec) -> NetSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"network {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def spec(name: str) -> NetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        choices = ", ".join(sorted(REGISTRY))
        raise B2BError(f"unknown network {name!r} (known: {choices})") from None


def names(family: Family | None = None) -> list[str]:
    return sorted(n for n, s in REGISTRY.items() if family is None or s.family == family)


def build(name: str, **kwargs) -> nn.Module:
    """A fresh, randomly initialised network of configuration ``name`` (kwargs override)."""
    return spec(name).build(**kwargs)


def cache_dir() -> Path:
    """Where downloaded/converted weights live: ``$B2B_CACHE/weights`` (default ``~/.cache/b2b``)."""
    root = os.environ.get("B2B_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "b2b")
    return Path(root) / "weights"


def find_weights(name: str, path: str | os.PathLike | None = None) -> Path:
    """Resolve weights: an explicit path first, then the cache folder; never downloads."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"weights file not found: {p}")
        return p
    s = spec(name)
    candidates = []
    if s.weights_file:
        candidates.append(cache_dir() / s.weights_file)
    candidates.append(cache_dir() / f"{name}.safetensors")
    for c in candidates:
        if c.is_file():
            return c
    hint = f" or `b2b-train weights fetch {name}`" if s.url else ""
    raise CheckpointError(
        f"no weights for {name}: pass a file path, or put it at {candidates[0]}{hint}"
    )


def load(name: str, path: str | os.PathLike | None = None, eval_mode: bool = True, **kwargs) -> nn.Module:
    """Build ``name`` and load weights from ``path`` (official layout or ours) or the cache."""
    s = spec(name)
    net = s.build(**kwargs)
    load_any_weights(net, find_weights(name, path), remap=s.remap, what=name)
    return net.eval() if eval_mode else net


def save_network(path: str | os.PathLike, net: nn.Module, name: str, net_kwargs: dict | None = None, **meta) -> None:
    """Save ``net`` as our safetensors file; its meta names the registry entry so it reloads alone."""
    from ..checkpoint import save_weights

    spec(name)  # must be a known network
    full = {"net": name, "net_kwargs": dict(net_kwargs or {}), **meta}
    save_weights(path, net.state_dict(), full)


def load_from_file(path: str | os.PathLike, eval_mode: bool = True) -> tuple[nn.Module, dict]:
    """Load one of our weight files written by :func:`save_network`: ``(network, meta)``."""
    from ..checkpoint import read_meta

    meta = read_meta(path)
    name = meta.get("net")
    if not name:
        raise CheckpointError(f"{path}: no network name in its metadata; load it with load(NAME, path)")
    net = spec(name).build(**meta.get("net_kwargs", {}))
    load_any_weights(net, path, what=name)
    return (net.eval() if eval_mode else net), meta
