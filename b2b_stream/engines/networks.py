"""What a camera profile gives an engine: its networks, and the folder its engines are cached in.

A profile is a :class:`b2b_stream.profile.Profile` (or its name); ``None`` means no profile: the
shipped default deblurrer alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from b2b_train.errors import B2BError
from b2b_train.nets import registry
from b2b_train.nets.translator_io import load_translator
from b2b_train.shipped import load_default_deblurrer, resolve_deblurrer

from ..profile import Profile, require_lite
from ..profile import home as profile_home


def _home(home: str | os.PathLike | None = None) -> Path:
    return Path(home) if home is not None else Path(profile_home())


def _open_profile(profile, home: str | os.PathLike | None) -> Any:
    if profile is None or not isinstance(profile, (str, os.PathLike)):
        return profile
    name = str(profile)
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
    return load_translator(path)


def _load_deblurrer(name_or_path: str = "default", device: torch.device | None = None) -> nn.Module:
    """The deblurrer named (``default``: the shipped one for ``device``: GPU-grade on CUDA when shipped)."""
    if str(name_or_path).strip().lower() in ("", "default") and device is not None:
        return load_default_deblurrer(device).cpu()
    return resolve_deblurrer(str(name_or_path))


def _load_lite(profile) -> nn.Module:
    name = _profile_name(profile)
    path = require_lite(profile)
    net, meta = registry.load_from_file(path)
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
        require_lite(profile, weights=False)
        if translator is not None or (deblurrer is not None and not (isinstance(deblurrer, str) and deblurrer == "default")):
            raise B2BError("--lite runs the profile's distilled network alone; do not also give a translator or --deblurrer")
        return None, _load_lite(profile)
    if translator is None and profile is not None:
        translator = _load_translator(profile)
    if deblurrer is None or isinstance(deblurrer, (str, os.PathLike)):
        deblurrer = _load_deblurrer(deblurrer or getattr(profile, "deblurrer", None) or "default", device)
    return translator, deblurrer
