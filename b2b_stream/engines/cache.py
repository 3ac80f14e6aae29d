"""The engine cache: one file per slot, each with a signed JSON manifest.

Engines are cached under ``<home>/engines/<profile>/``: one file per slot (backend, variant,
precision, device, size) with a JSON manifest holding the full key (network digests, versions...)
and the file's SHA-256. A manifest whose key differs, a file whose hash differs, a file without a
manifest or one that fails to load is rebuilt, never used; the reason is reported. The hash is
checked *before* anything is deserialised, which matters for exported programs: ``torch.export.load``
may fall back to full unpickling, so only a file this code wrote (hash in our manifest) is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from b2b_train.errors import B2BError
from b2b_train.hashing import file_sha256

from .runtime import Engine

MANIFEST_FORMAT = "b2b-engine/1"


def _digest(net: nn.Module | None) -> str | None:
    if net is None:
        return None
    from b2b_train.checkpoint import state_dict_digest

    # standard strides first: channels-last weights with size-1 dims break a byte view of the tensor
    state = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format) for k, v in net.state_dict().items()}
    return f"{type(net).__qualname__}:{state_dict_digest(state)}"


def _device_id(dev: torch.device) -> str:
    """What an engine is specific to: the CPU architecture, or the GPU model and compute capability."""
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return f"cuda:{p.name}:sm{p.major}{p.minor}"
    return f"cpu:{platform.machine()}"


@dataclass
class _Slot:
    dir: Path
    stem: str
    ext: str

    @property
    def file(self) -> Path:
        return self.dir / f"{self.stem}{self.ext}"

    @property
    def manifest(self) -> Path:
        return self.dir / f"{self.stem}.json"


@dataclass
class _CacheResult:
    engine: Engine
    status: str  # "hit" | "built"
    messages: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def _read_manifest(slot: _Slot, key: dict) -> tuple[dict | None, str]:
    """(manifest, "") when the cached file may be used, else (None, why it may not)."""
    if not slot.manifest.exists():
        if slot.file.exists():
            return None, f"{slot.file.name} has no manifest (foreign or half-written file)"
        return None, "no cached engine"
    try:
        man = json.loads(slot.manifest.read_text())
        if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
            return None, f"{slot.manifest.name} is not a b2b engine manifest"
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None, f"{slot.manifest.name} is corrupt"
    old = man.get("key") or {}
    changed = sorted(k for k in set(key) | set(old) if old.get(k) != key.get(k))
    if changed:
        return None, "stale engine (changed: " + ", ".join(changed) + ")"
    if not slot.file.is_file():
        return None, f"engine file {slot.file.name} is missing"
    if slot.file.stat().st_size != man.get("bytes") or file_sha256(slot.file) != man.get("sha256"):
        return None, f"engine file {slot.file.name} does not match its manifest (corrupt or replaced)"
    import hmac

    if not hmac.compare_digest(str(man.get("signature", "")), _signature(man["sha256"], key)):
        return None, f"{slot.manifest.name} is not signed by this user's key (copied or edited)"
    return man, ""


def _signing_key() -> bytes:
    """This user's secret for signing engine manifests (``$B2B_CACHE/engine-signing.key``, mode 600).

    An exported program is deserialised with pickle, so a file is loaded only if its manifest
    carries our HMAC over (file SHA-256, key): a file and manifest written by anyone without this
    secret (copied from elsewhere, dropped into engines/, edited) are rebuilt instead of loaded.
    """
    root = Path(os.environ.get("B2B_CACHE") or Path.home() / ".cache" / "b2b")
    path = root / "engine-signing.key"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    except FileExistsError:  # another process made it first
        pass
    data = path.read_bytes()
    if len(data) < 32:
        raise B2BError(f"{path}: engine signing key is damaged; delete it (engines will be rebuilt)")
    return data


def _signature(sha256: str, key: dict) -> str:
    import hmac

    msg = (sha256 + "\n" + json.dumps(key, sort_keys=True)).encode()
    return hmac.new(_signing_key(), msg, hashlib.sha256).hexdigest()


def _remove(slot: _Slot) -> None:
    for p in (slot.manifest, slot.file, Path(str(slot.file) + ".data")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _cached(slot: _Slot, key: dict, build: Callable[[Path], dict], load: Callable[[Path, dict], Engine],
            use_cache: bool, say: Callable[[str], None]) -> _CacheResult:
    messages: list[str] = []

    def note(msg: str) -> None:
        messages.append(msg)
        say(msg)

    if use_cache:
        man, why = _read_manifest(slot, key)
        if man is not None:
            try:
                eng = load(slot.file, man)
                eng.info.update(cache="hit", file=str(slot.file), build_seconds=man.get("build_seconds"),
                                check=man.get("check"))
                note(f"cached engine {slot.file}")
                return _CacheResult(eng, "hit", messages, man)
            except Exception as e:  # a file that matches its manifest but does not load here
                why = f"cached engine does not load here ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        note(f"{why}: building {slot.file.name}" if why != "no cached engine" else f"building {slot.file}")
    else:
        note(f"rebuilding {slot.file} (asked to)")
    _remove(slot)  # never leave a stale file beside a new manifest
    slot.dir.mkdir(parents=True, exist_ok=True)
    tmp = slot.dir / f".{slot.stem}.building{slot.ext}"
    t0 = time.perf_counter()
    try:
        extra = build(tmp)
        os.replace(tmp, slot.file)
    finally:
        for p in (tmp, Path(str(tmp) + ".data")):
            if p.exists():
                p.unlink()
    seconds = time.perf_counter() - t0
    man = {
        "format": MANIFEST_FORMAT,
        "key": key,
        "file": slot.file.name,
        "bytes": slot.file.stat().st_size,
        "sha256": (digest := file_sha256(slot.file)),
        "signature": _signature(digest, key),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 3),
        **(extra or {}),
    }
    eng = load(slot.file, man)
    from b2b_train.checkpoint import atomic_write

    atomic_write(slot.manifest, (json.dumps(man, indent=2, sort_keys=True) + "\n").encode())
    eng.info.update(cache="built", file=str(slot.file), build_seconds=man["build_seconds"])
    return _CacheResult(eng, "built", messages, man)
