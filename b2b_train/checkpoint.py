"""Weight files: ours (safetensors + JSON, written atomically) and official third-party ones.

Nothing here unpickles arbitrary objects: our files are safetensors, and foreign ``.pth`` files are
read with ``torch.load(weights_only=True)``, which refuses any pickle that would construct something
other than tensors and plain containers.

Three layers:

* :func:`atomic_write` / :func:`save_weights` / :func:`load_weights` - a flat ``{name: tensor}``
  with a JSON ``meta`` (config, provenance) stored inside the safetensors header and beside it as
  ``<file>.json`` for people to read.
* :func:`save_state` / :func:`load_state` - a nested training state (model, optimiser, scheduler,
  step, RNG) for exact resume; tensors go to safetensors, everything else to the JSON header.
* :func:`read_foreign_state_dict` / :func:`load_state_dict_strict` - official checkpoints: unwrap
  ``params_ema`` / ``params`` / ``model`` / ``state_dict``, strip ``module.``, remap keys with a
  network's own function, and fail naming missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .errors import CheckpointError

__all__ = [
    "atomic_write",
    "save_weights",
    "load_weights",
    "read_meta",
    "save_state",
    "load_state",
    "read_foreign_state_dict",
    "unwrap_state_dict",
    "load_state_dict_strict",
    "load_any_weights",
    "state_dict_digest",
]

_META_KEY = "b2b"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never half.

    Writes a temporary file in the same folder, fsyncs it, renames it over ``path`` and fsyncs the
    folder. On failure (full disk...) the temporary file is removed and the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _contiguous_cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous()


def save_weights(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: dict | None = None) -> None:
    """Save a flat tensor dict as safetensors with ``meta`` (JSON-able) in its header and beside it."""
    from safetensors.torch import save

    meta = dict(meta or {})
    # safetensors refuses tensors that share storage; clone those.
    seen: dict[int, str] = {}
    flat: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        t = _contiguous_cpu(v)
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen and ptr != -1:
            t = t.clone()
        seen[ptr] = k
        flat[k] = t
    blob = save(flat, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    atomic_write(path, blob)
    atomic_write(str(path) + ".json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())


def _open_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"{path}: truncated or empty checkpoint ({len(data)} bytes)")
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, json.JSONDecodeError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file, maybe truncated ({e})") from None
    meta_raw = (header.get("__metadata__") or {}).get(_META_KEY, "{}")
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        meta = {}
    return tensors, meta


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Load one of our safetensors files: ``(tensors, meta)``."""
    return _open_safetensors(Path(path))


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON meta stored in one of our safetensors files, without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated or empty checkpoint")
        n = int.from_bytes(head, "little")
        if n > 100_000_000:
            raise CheckpointError(f"{path}: not a safetensors file")
        try:
            header = json.loads(f.read(n))
            return json.loads((header.get("__metadata__") or {}).get(_META_KEY, "{}"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: not a valid safetensors file") from None


# ----------------------------------------------------------------------------- nested training state

def _flatten(obj: Any, prefix: str, tensors: dict, skeleton_path: str = "") -> Any:
    """Replace tensors in a nested structure by ``{"__tensor__": key}`` placeholders."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            sk = str(k)
            tag = sk if isinstance(k, str) else f"__int__{k}" if isinstance(k, int) else None
            if tag is None:
                raise TypeError(f"cannot store mapping key {k!r} of type {type(k).__name__}")
            out[tag] = _flatten(v, f"{prefix}.{sk}" if prefix else sk, tensors)
        return {"__dict__": out}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}" if prefix else str(i), tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            out = {}
            for k, v in obj["__dict__"].items():
                key: Any = int(k[7:]) if k.startswith("__int__") else k
                out[key] = _unflatten(v, tensors)
            return out
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: str | os.PathLike, state: Mapping[str, Any], meta: dict | None = None) -> None:
    """Save a nested training state (dicts, lists, tensors, numbers, strings) atomically.

    Round-trips ``model.state_dict()``, ``optimizer.state_dict()`` (integer param ids included),
    scheduler states and RNG states exactly: ``load_state(path)[0] == state``.
    """
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(dict(state), "", tensors)
    full_meta = dict(meta or {})
    full_meta["__state__"] = skeleton
    save_weights(path, tensors, full_meta)


def load_state(path: str | os.PathLike) -> tuple[dict, dict]:
    """Load what :func:`save_state` wrote: ``(state, meta)``."""
    tensors, meta = load_weights(path)
    skeleton = meta.pop("__state__", None)
    if skeleton is None:
        raise CheckpointError(f"{path}: a weights file, not a training state (no '__state__' in its header)")
    return _unflatten(skeleton, tensors), meta


# ----------------------------------------------------------------------------- foreign checkpoints

_WRAPPERS = ("params_ema", "params", "state_dict", "model", "net", "generator", "netG", "model_state_dict")


def read_foreign_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an official ``.pth``/``.pt``/``.pkl`` or a safetensors file into a plain state dict.

    ``.pth`` files go through ``torch.load(weights_only=True)``: a pickle that would run code is
    refused with a :class:`CheckpointError` instead of being executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        tensors, _ = _open_safetensors(path)
        return tensors
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors ({_unsafe_reason(str(e))}); "
            "it was not unpickled"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint, maybe truncated or not a PyTorch file ({first})") from None
    return unwrap_state_dict(obj, source=str(path))


def _unsafe_reason(message: str) -> str:
    """The useful part of torch's weights-only refusal (which global), without its advice to load unsafely."""
    import re

    m = re.search(r"Unsupported (?:global|operand)[^.]*?: (?:GLOBAL )?([\w.]+)", message)
    if m:
        return f"it would call {m.group(1)}"
    for line in message.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line and "weights_only" not in line and "Weights only load failed" not in line:
            return line[:160]
    return "unsafe content"


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common wrappers and strip DataParallel's ``module.`` prefix."""
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        if isinstance(obj, Mapping):
            for w in _WRAPPERS:
                if w in obj and isinstance(obj[w], Mapping):
                    obj = obj[w]
                    break
            else:
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: no state dict found (expected a mapping of parameter names to tensors)")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        k = str(k)
        while k.startswith("module."):
            k = k[len("module.") :]
        out[k] = v
    if not out:
        raise CheckpointError(f"{source}: no tensors found in the state dict")
    return out


def _summarise(keys: list[str], n: int = 4) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_state_dict_strict(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str = "checkpoint",
    remap: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    what: str | None = None,
) -> None:
    """Load ``state`` into ``model`` exactly; on any mismatch raise one clear CheckpointError.

    ``remap`` converts a foreign key layout to the model's own (the network's ``remap_*`` function).
    The message names missing keys, unexpected keys and shape mismatches (a few of each).
    """
    state = dict(state)
    if remap is not None:
        state = remap(state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        name = what or type(model).__name__
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({_summarise(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys ({_summarise(unexpected)})")
        if shapes:
            parts.append(f"wrong shapes for {len(shapes)} ({_summarise(shapes, 2)})")
        raise CheckpointError(f"{source} does not fit {name}: " + "; ".join(parts))
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_any_weights(
    model: torch.nn.Module,
    path: str | os.PathLike,
    remap: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    what: str | None = None,
) -> dict:
    """Load our safetensors file or an official checkpoint into ``model``; returns our meta or {}.

    Our own files use the model's keys directly; foreign ones pass through ``remap`` first.
    """
    path = Path(path)
    meta: dict = {}
    if path.suffix == ".safetensors":
        state, meta = _open_safetensors(path)
        if "__state__" in meta:
            raise CheckpointError(f"{path}: a training state, not a weights file; export weights first")
        own = model.state_dict()
        if remap is not None and not set(state) <= set(own):
            state = remap(state)
        load_state_dict_strict(model, state, source=str(path), what=what)
    else:
        state = read_foreign_state_dict(path)
        load_state_dict_strict(model, state, source=str(path), remap=remap, what=what)
    return meta


def state_dict_digest(module_or_state: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """A short SHA-256 of parameter names, shapes, dtypes and values (engine cache keys)."""
    import hashlib

    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").clone(memory_format=torch.contiguous_format).reshape(-1)
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
