"""The deblurrer b2b ships, and turning a user's ``--deblurrer`` choice into a network.

The repository ships one small NAFNet (``nafnet-lite``, real time on a laptop CPU at 320×240)
trained on the webcam known-blur domain (``b2b_train/configs/known/webcam.yaml``); it is what ``run``,
``calibrate`` and ``evaluate`` use when the user names no deblurrer. On a CUDA device a GPU-grade
file (``deblurrer-mid.safetensors``) takes its place when one is shipped. Its file, stored as fp16 to stay
small, lives in ``b2b_train/weights/`` beside a README with the command that reproduces it.

:func:`resolve_deblurrer` accepts, in this order:

* ``"default"`` (or ``None``): the shipped network;
* an ``nn.Module``: returned as is;
* a file: our safetensors written by ``save_network`` (names its own network), or an official
  checkpoint (``.pth``: NAFNet/Restormer GoPro...), whose network is given with ``net=`` or
  ``NAME=PATH``, or else recognised by trying every registered deblurrer's layout;
* a registry name (``nafnet-gopro-width32``) whose weights are in the cache
  (``b2b-train weights fetch NAME``): the published GoPro NAFNet/Restormer become the deblurrer of
  the "GoPro" known domain this way.

Published checkpoints are built with their registry entry's ``eval_kwargs`` (the official
test configurations, e.g. TLC for NAFNetLocal/RestormerLocal); TLC changes no parameter.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import B2BError, CheckpointError

__all__ = [
    "DEFAULT_WEIGHTS",
    "GPU_WEIGHTS",
    "default_deblurrer_path",
    "load_default_deblurrer",
    "resolve_deblurrer",
    "deblurrer_info",
]

DEFAULT_WEIGHTS = "deblurrer-lite.safetensors"
# the GPU-grade default (a larger NAFNet), used on CUDA when it is shipped; until a GPU run has
# trained one that masters its domain (b2b_train/weights/README.md) only the lite file ships
GPU_WEIGHTS = "deblurrer-mid.safetensors"


def weights_dir() -> Path:
    return Path(__file__).resolve().parent / "weights"


def default_deblurrer_path(device: torch.device | str | None = None) -> Path:
    """Path of the shipped deblurrer's weights for ``device`` (``$B2B_DEFAULT_DEBLURRER`` overrides it).

    On a CUDA device the GPU-grade file when it is shipped, else (and on any other device) the lite one.
    """
    env = os.environ.get("B2B_DEFAULT_DEBLURRER")
    if env:
        return Path(env)
    gpu = weights_dir() / GPU_WEIGHTS
    if device is not None and torch.device(device).type == "cuda" and gpu.is_file():
        return gpu
    return weights_dir() / DEFAULT_WEIGHTS


def _to(net: nn.Module, device) -> nn.Module:
    net = net.float()
    if device is not None:
        net = net.to(device)
    return net.eval()


def load_default_deblurrer(device: torch.device | str | None = None) -> nn.Module:
    """The shipped deblurrer in eval mode (float32 parameters, on ``device`` if given)."""
    from .nets.registry import load_from_file

    path = default_deblurrer_path(device)
    if not path.is_file():
        raise CheckpointError(
            f"the shipped deblurrer is missing ({path}); reinstall b2b, or train one with "
            "`b2b-train deblurrer` and pass its file with --deblurrer"
        )
    net, _meta = load_from_file(path)
    return _to(net, device)


def deblurrer_info(path: str | os.PathLike | None = None) -> dict:
    """Provenance of one of our deblurrer files (default: the shipped one): net, data, validation."""
    from .checkpoint import read_meta

    return read_meta(path or default_deblurrer_path())


def _guess_official(path: Path) -> nn.Module:
    """Load an official checkpoint by trying each registered deblurrer whose keys and shapes fit."""
    from .checkpoint import load_state_dict_strict, read_foreign_state_dict
    from .nets import registry

    state = read_foreign_state_dict(path)
    tried = []
    keys = set(state)
    for name in registry.names("deblurrer"):
        s = registry.spec(name)
        cand = s.remap(dict(state)) if s.remap else dict(state)
        with torch.device("meta"):  # shapes only: nothing allocated, so trying big nets is cheap
            own = s.build().state_dict()
        if set(cand) != set(own) or any(tuple(cand[k].shape) != tuple(own[k].shape) for k in own):
            tried.append(name)
            continue
        net = s.build(**s.eval_kwargs)
        load_state_dict_strict(net, cand, source=str(path), what=name)
        return net
    sample = ", ".join(sorted(keys)[:3])
    raise CheckpointError(
        f"{path}: its weights fit none of the deblurrers ({', '.join(tried)}); keys start {sample}… "
        "name the network with NAME=PATH (e.g. nafnet-gopro-width32=PATH)"
    )


def _load_file(path: Path, net_name: str | None) -> nn.Module:
    from .checkpoint import read_meta
    from .nets import registry

    if net_name:
        s = registry.spec(net_name)
        if s.family != "deblurrer":
            raise B2BError(f"{net_name} is a {s.family}, not a deblurrer")
        if path.suffix != ".safetensors":
            return registry.load(net_name, path, **s.eval_kwargs)
        return registry.load(net_name, path)
    if path.suffix == ".safetensors":
        meta = read_meta(path)
        if "__state__" in meta:
            if meta.get("kind") == "deblurrer-train-state" or "config" in meta:
                raise CheckpointError(
                    f"{path}: a training checkpoint, not weights; use the run's deblurrer.safetensors "
                    "(or finish the run)"
                )
            raise CheckpointError(f"{path}: a training state, not a weights file")
        if meta.get("net"):
            net, _ = registry.load_from_file(path)
            s = registry.spec(meta["net"])
            if s.family != "deblurrer":
                raise B2BError(f"{path} holds a {s.family} ({meta['net']}), not a deblurrer")
            return net
    return _guess_official(path)


def resolve_deblurrer(
    name_or_path: str | os.PathLike | nn.Module | None = "default",
    device: torch.device | str | None = None,
    net: str | None = None,
) -> nn.Module:
    """Turn a ``--deblurrer`` value into a deblurrer network in eval mode.

    ``name_or_path``: ``"default"``/None, a module, a weights file (ours or official; ``net``
    or the ``NAME=PATH`` form names the network of an official file), or a registry name whose
    weights are cached. Raises one clear :class:`B2BError` otherwise.
    """
    from .nets import registry

    if isinstance(name_or_path, nn.Module):
        return _to(name_or_path, device)
    if name_or_path is None or str(name_or_path).strip().lower() in ("", "default"):
        return load_default_deblurrer(device)
    text = str(name_or_path)
    if net is None and "=" in text and not Path(text).exists():
        maybe, rest = text.split("=", 1)
        if maybe in registry.REGISTRY:
            net, text = maybe, rest
    p = Path(os.path.expanduser(text))
    if p.is_file():
        return _to(_load_file(p, net), device)
    if p.exists():
        raise B2BError(f"--deblurrer {text}: a folder, not a weights file")
    if text in registry.REGISTRY:
        s = registry.spec(text)
        if s.family != "deblurrer":
            raise B2BError(f"{text} is a {s.family}, not a deblurrer (deblurrers: {', '.join(registry.names('deblurrer'))})")
        # published checkpoints are evaluated as their official test configs (e.g. NAFNetLocal/TLC)
        return _to(registry.load(text, **s.eval_kwargs), device)
    looks_like_path = any(c in text for c in "/\\") or Path(text).suffix in (".pth", ".pt", ".safetensors", ".ckpt")
    if looks_like_path:
        raise CheckpointError(f"deblurrer weights not found: {text}")
    raise B2BError(
        f"unknown deblurrer {text!r}: use 'default', a weights file, or one of "
        f"{', '.join(registry.names('deblurrer'))} (with its weights cached)"
    )
