"""Typed configs: YAML presets loaded into dataclasses, with ``key=value`` overrides.

Every tunable thing is a field of a (possibly nested) dataclass. A preset is a YAML file under
``b2b_train/configs/<kind>/<name>.yaml`` holding a subset of the fields; anything it leaves out keeps the
dataclass default. Unknown keys and values of the wrong type are errors that name the key, so a
typo fails at start-up instead of silently training with a default.

    cfg = load_config(TranslatorConfig, "paper", overrides=["train.batch_size=4", "loss.lambda_rec=1.0"])

A preset may start from another one with ``base: NAME`` (same kind) and then override fields.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")

__all__ = [
    "configs_root",
    "preset_path",
    "list_presets",
    "load_config",
    "from_dict",
    "to_dict",
    "apply_overrides",
    "dump_yaml",
]


def configs_root() -> Path:
    """Folder holding the YAML presets: ``$B2B_CONFIGS`` or the package's own ``b2b_train/configs/``
    (package data, so an editable and a normal install find the same presets)."""
    env = os.environ.get("B2B_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "configs"


def list_presets(kind: str) -> list[str]:
    """Names of the presets of one kind (``translator``, ``known``, ``deblurrer``, ``stream``...)."""
    folder = configs_root() / kind
    return sorted(p.stem for p in folder.glob("*.yaml"))


def preset_path(kind: str, name_or_file: str | os.PathLike) -> Path:
    """Resolve a preset name (``paper``) or a YAML path to a file, or fail naming the choices."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    name = str(name_or_file)
    # a preset NAME stays inside b2b_train/configs/<kind>/ (files outside are given as paths ending in .yaml)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or ".." in name:
        raise ConfigError(
            f"invalid {kind} config name {name!r} (letters, digits, '-', '_', '.'; or give a .yaml path)"
        )
    candidate = configs_root() / kind / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    choices = ", ".join(list_presets(kind)) or "none"
    raise ConfigError(f"unknown {kind} config {str(name_or_file)!r} (presets: {choices}; or give a .yaml path)")


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def _load_preset_dict(kind: str, name_or_file: str | os.PathLike, _seen: tuple = ()) -> dict:
    path = preset_path(kind, name_or_file)
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back on itself")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    parent = _load_preset_dict(kind, base, _seen + (path,))
    return _deep_merge(parent, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key {key!r}: {value!r} is not a {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if isinstance(value, str) and tp not in (str,):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key {key!r}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        seq = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if (origin is tuple or tp is tuple) else seq
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r} (known keys here: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config {prefix.rstrip('.') or cls.__name__}: {e}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list form of a config (tuples become lists), ready for YAML/JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not KEY=VALUE")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``a.b.c=value`` strings (values parsed as YAML scalars/lists) to a nested dict."""
    out = _deep_merge({}, data)
    for item in overrides:
        path, value = _parse_override(item)
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[path[-1]] = value
    return out


def load_config(
    cls: type[T],
    preset: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    kind: str | None = None,
) -> T:
    """Load preset ``preset`` of ``kind`` (default: ``cls.KIND``) into ``cls``, then apply overrides.

    Overrides are validated against the dataclass exactly like preset keys.
    """
    kind = kind or getattr(cls, "KIND", None)
    data: dict = {}
    if preset is not None:
        if kind is None and not Path(preset).suffix:
            raise ConfigError(f"preset {preset!r} needs a config kind")
        data = _load_preset_dict(kind or "", preset)
    data = apply_overrides(data, overrides)
    return from_dict(cls, data)
