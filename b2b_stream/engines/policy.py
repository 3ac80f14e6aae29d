"""Which engine a camera gets: the device, the backend, and the cached or freshly built file.

:func:`get_engine` resolves a camera profile's networks, picks the backend (``auto``: TensorRT on CUDA
when installed, else torch; on the CPU whichever of onnxruntime and torch eager measures faster) and
says which and why in ``engine.info["why"]``. Each backend is reached through its
:class:`~b2b_stream.engines.registry.BackendSpec`, and its file through the cache.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from b2b_train.errors import B2BError

from ..fuse import FusedDeblur, example_frames, net_multiple
from . import registry
from .cache import _cached, _CacheResult, _device_id, _digest, _Slot
from .cpu_precision import cpu_precision, native_cpu_bf16
from .networks import _engines_dir, _open_profile, _profile_name, profile_networks
from .registry import BACKENDS, DEFAULT_TORCH_CPU_MODE, DEFAULT_TORCH_CUDA_MODE, PRECISIONS, TORCH_MODES, Target
from .runtime import _DTYPES, Engine, compare_frames

log = logging.getLogger("b2b_stream.engines")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU; checks a named device exists."""
    if isinstance(device, torch.device):
        dev = device
    elif device in (None, "", "auto"):
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise B2BError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise B2BError(f"device {device} asked for but CUDA is not available here (torch {torch.__version__}); use --device cpu")
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        if idx >= torch.cuda.device_count():
            raise B2BError(f"device {device} does not exist ({torch.cuda.device_count()} CUDA device(s))")
        return torch.device("cuda", idx)
    if dev.type != "cpu":
        raise B2BError(f"device {device} is not supported (use cpu or cuda)")
    return dev


def parse_size(text: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"640x480"`` or ``(640, 480)`` -> ``(W, H)``."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = text.lower().replace("×", "x").split("x")
        try:
            w, h = (int(p) for p in parts)
        except ValueError:
            raise B2BError(f"size must look like WIDTHxHEIGHT (e.g. 640x480), not {text!r}") from None
    else:
        w, h = (int(v) for v in text)
    if w < 8 or h < 8 or w > 8192 or h > 8192:
        raise B2BError(f"size {w}x{h} is out of range (8..8192 per side)")
    return w, h


def _cast(fused: FusedDeblur, precision: str, device: torch.device, channels_last: bool) -> FusedDeblur:
    m = fused.to(device=device, dtype=_DTYPES[precision]).eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


@dataclass
class _Plan:
    backend: str
    why: str
    precision: str
    mode: str | None = None
    notes: list[str] = field(default_factory=list)


def _plan(backend: str, precision: str, device: torch.device, torch_mode: str) -> _Plan:
    if backend not in BACKENDS:
        raise B2BError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if precision == "auto" and device.type == "cuda":
        precision = "fp16"
    if precision not in (*PRECISIONS, "auto"):
        raise B2BError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if torch_mode not in TORCH_MODES:
        raise B2BError(f"unknown torch mode {torch_mode!r} (choose from {', '.join(TORCH_MODES)})")
    notes = []
    cuda = device.type == "cuda"
    if not cuda:
        precision, note = cpu_precision(precision, backend)
        notes += [note] if note else []
    if backend != "auto" and registry.spec(backend).needs_cuda and not cuda:
        raise B2BError(f"the {backend} backend needs an NVIDIA GPU (CUDA); use --backend torch or onnxruntime on the CPU")
    if backend == "auto":
        if cuda:
            if registry.spec("tensorrt").available(str(device)):
                return _Plan("tensorrt", "CUDA device and torch-tensorrt installed", precision, None, notes)
            mode = DEFAULT_TORCH_CUDA_MODE if torch_mode == "auto" else torch_mode
            return _Plan("torch", f"CUDA device, torch-tensorrt not installed: torch ({mode})", precision, mode, notes)
        mode = DEFAULT_TORCH_CPU_MODE if torch_mode == "auto" else torch_mode
        if precision == "bf16":  # cpu_precision kept it: native bf16, which only torch runs here
            return _Plan("torch", f"CPU with native bf16: torch ({mode}; onnxruntime has no bf16 CPU kernels)",
                         precision, mode, notes)
        # CPU: decided by measurement in get_engine when onnxruntime is there
        if registry.spec("onnxruntime").available(str(device)):
            return _Plan("auto-cpu", "", precision, mode, notes)
        return _Plan("torch", f"CPU and onnxruntime not installed: torch ({mode})",
                     cpu_precision(precision, "torch")[0], mode, notes)
    mode = None
    if backend == "torch":
        mode = torch_mode if torch_mode != "auto" else (DEFAULT_TORCH_CUDA_MODE if cuda else DEFAULT_TORCH_CPU_MODE)
        if not cuda and mode in ("cudagraphs", "compile+cudagraphs", "reduce-overhead"):
            raise B2BError(f"torch mode {mode!r} needs CUDA; use eager or compile on the CPU")
    registry.spec(backend).require()
    return _Plan(backend, "asked for", precision, mode, notes)


def time_engine(engine: Engine, runs: int = 3, *, warmup: bool = True) -> float:
    """Median seconds per frame of ``runs`` single frames, after one warm-up run unless ``warmup`` is off
    (when the caller has warmed the engine and timed that itself). A size-free engine is timed at 640x480."""
    if warmup:
        engine.warmup(1)
    w, h = engine.size or (640, 480)
    x = example_frames(1, h, w, seed=1).numpy()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.run(x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def get_engine(
    profile=None,
    backend: str = "auto",
    precision: str = "fp32",
    device: str | torch.device = "auto",
    size: tuple[int, int] | str | None = (640, 480),
    translator: nn.Module | None = None,
    deblurrer: nn.Module | str | None = None,
    *,
    torch_mode: str = "auto",
    channels_last: bool | None = None,
    multiple: int | None = None,
    channel_order: str = "rgb",
    home: str | os.PathLike | None = None,
    cache: bool = True,
    rebuild: bool = False,
    check: bool = True,
    lite: bool = False,
    say: Callable[[str], None] | None = None,
) -> Engine:
    """A ready engine for a camera profile (or the shipped deblurrer alone) on one backend.

    Args:
        profile: profile name or object; ``None`` runs the shipped default deblurrer alone.
        backend: ``auto`` | ``tensorrt`` | ``torch`` | ``onnxruntime``.
        precision: ``fp32`` | ``fp16`` | ``bf16`` | ``auto`` (fp16 on CUDA; on the CPU the faster of
            fp32 and, where the CPU has native bf16, bf16: see :mod:`.cpu_precision`). fp16 is GPU-only
            (the CPU runs fp32 and says so in ``info["note"]``).
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        size: the camera's frame size ``(W, H)`` (or ``"WxH"``); static-shape engines are built for it.
        translator, deblurrer: explicit networks (override the profile's / the shipped default);
            ``deblurrer`` may also be a name or file for ``b2b_train.shipped.resolve_deblurrer``.
        torch_mode: torch backend variant (see ``TORCH_MODES``); ``auto``: compile on CUDA, eager on CPU.
        channels_last: channels-last memory format (default: on CUDA).
        multiple: pad to this side multiple inside the engine (default: lcm of what the nets say).
        home: root of ``profiles/`` and ``engines/`` (default ``$B2B_HOME`` or the working directory).
        cache: reuse and write engines under ``engines/<profile>/``; ``False`` builds in a
            temporary folder that is removed once the engine is loaded.
        rebuild: build even when a valid cached engine exists (and replace it).
        check: after building, compare with the eager fp32 module on a test frame (``info["check"]``).
        lite: run the profile's distilled student alone (``calibrate --lite``), no translator;
            engines cached under ``engines/<profile>/lite/``.
        say: called with each status line (cache hit, rebuild reason, backend choice).
    """
    say = say or (lambda m: log.info(m))
    dev = resolve_device(device)
    size = parse_size(size) if size is not None else None
    prof = _open_profile(profile, home)
    notes: list[str] = []
    translator, deblurrer = profile_networks(prof, lite, translator, deblurrer, device=dev)
    if lite:
        notes.append("lite: the profile's distilled network alone (imitates translator + deblurrer)")
    elif translator is None:
        notes.append("no camera profile: the shipped default deblurrer alone (no blur translation)"
                     if prof is None else "no translator: deblurrer alone")
    translator = translator.eval() if translator is not None else None
    deblurrer = deblurrer.eval()
    m = int(multiple) if multiple else net_multiple(translator, deblurrer)
    plan = _plan(backend, precision, dev, torch_mode)
    notes += plan.notes
    if channels_last is None:
        channels_last = dev.type == "cuda"
    if size is None and torch_mode == "auto" and plan.mode == DEFAULT_TORCH_CPU_MODE:
        plan.mode = "eager"  # the CPU default traces for one size; without a size, eager takes any
    if size is None and not (plan.backend in ("torch", "auto-cpu") and plan.mode in ("eager", "compile", "max-autotune")):
        raise B2BError(f"the {plan.backend} backend builds for one frame size: pass size=(W, H) / --size WxH")
    pname = _profile_name(prof)
    common = dict(
        profile=pname,
        **({"lite": True} if lite else {}),  # absent otherwise: existing engines' keys stay valid
        translator=_digest(translator),
        deblurrer=_digest(deblurrer),
        multiple=m,
        channel_order=channel_order,
        device=_device_id(dev),
        size=list(size) if size else None,
        torch=torch.__version__,
    )
    import shutil
    import tempfile

    tmpdir = None if cache else Path(tempfile.mkdtemp(prefix="b2b-engine-"))
    # lite engines live beside the two-network ones, so switching --lite on and off rebuilds nothing
    edir = tmpdir or (_engines_dir(prof, home) / "lite" if lite else _engines_dir(prof, home))

    def make_fused(prec: str, memory_cl: bool | None = None) -> FusedDeblur:
        # a fresh copy per backend/precision: the caller's networks are never cast in place
        import copy

        f = FusedDeblur(copy.deepcopy(translator), copy.deepcopy(deblurrer), multiple=m, channel_order=channel_order)
        return _cast(f, prec, dev, bool(channels_last) if memory_cl is None else memory_cl)

    def one(backend_name: str, mode: str | None, prec: str) -> _CacheResult:
        return _get_one(backend_name, mode, prec, dev, size, common, edir, make_fused, not rebuild, check, say,
                        channels_last=bool(channels_last))

    try:
        if plan.backend == "auto-cpu" and size is None:
            prec = cpu_precision(plan.precision, "torch")[0]
            plan = _Plan("torch", "CPU, no frame size given: torch eager (any size)", prec, plan.mode)
        if plan.backend == "auto-cpu":
            res, why = _auto_cpu(one, plan, edir, common, bool(cache and not rebuild), say)
        elif plan.backend == "tensorrt" and backend == "auto":
            try:
                res = one("tensorrt", None, plan.precision)
                why = plan.why
            except B2BError:
                raise
            except Exception as e:  # a TensorRT build failure must not leave auto without an engine
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                mode = DEFAULT_TORCH_CUDA_MODE if torch_mode == "auto" else torch_mode
                say(f"tensorrt build failed ({type(e).__name__}: {first}); falling back to torch ({mode})")
                notes.append(f"tensorrt build failed: {first}")
                res = one("torch", mode, plan.precision)
                why = f"CUDA device; torch-tensorrt failed to build this model, so torch ({mode})"
        else:
            res = one(plan.backend, plan.mode, plan.precision)
            why = plan.why
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    eng = res.engine
    if tmpdir is not None:
        eng.info["file"] = None
    eng.info.update(
        why=why,
        profile=pname,
        lite=bool(lite),
        translator=common["translator"],
        deblurrer=common["deblurrer"],
        multiple=m,
        notes=notes,
        cache_messages=res.messages,
    )
    if notes:
        eng.info["note"] = "; ".join(notes)
    say(f"engine: {eng.backend} ({eng.precision}) on {eng.device}: {why}")
    for n in notes:
        say(n)
    return eng


def _auto_cpu(one: Callable, plan: _Plan, edir: Path, common: dict, reuse: bool, say) -> tuple[_CacheResult, str]:
    """On the CPU with onnxruntime installed: time onnxruntime and torch eager (and, for precision
    ``auto`` on a CPU with native bf16, torch eager in bf16) once, keep the fastest.

    The measurement is remembered in ``engines/<profile>/auto-cpu-[auto-]WxH.json`` (same key as the
    engines), so later runs load the chosen engine without measuring again.
    """
    w, h = common["size"]
    # (backend, torch mode, precision) candidates; precision auto adds bf16 where the CPU has it natively
    cands = [("onnxruntime", None, "fp32"), ("torch", plan.mode, "fp32")]
    if plan.precision == "auto" and native_cpu_bf16():
        cands.append(("torch", plan.mode, "bf16"))
    label = {c: f"{c[0]} {c[2]}" if c[0] == "torch" else c[0] for c in cands}
    tag = "" if plan.precision == "fp32" else f"{plan.precision}-"  # fp32 keeps the older file name
    choice_file = edir / f"auto-cpu-{tag}{w}x{h}.json"
    if reuse and choice_file.is_file():
        try:
            saved = json.loads(choice_file.read_text())
            b, prec = saved["backend"], saved.get("precision", "fp32")
            if (saved.get("key") == common and saved.get("torch_mode") == plan.mode
                    and (b, None if b == "onnxruntime" else plan.mode, prec) in cands):
                res = one(b, None if b == "onnxruntime" else plan.mode, prec)
                return res, saved["why"] + " (measured earlier)"
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass
    results = {c: one(*c) for c in cands}
    say("auto: timing " + ", ".join(label.values()) + " on this CPU")
    fps = {c: 1 / time_engine(r.engine) for c, r in results.items()}
    best = max(cands, key=lambda c: fps[c])
    others = ", ".join(f"{label[c]} {fps[c]:.1f}" for c in cands if c != best)
    why = f"CPU: {label[best]} measured fastest ({fps[best]:.1f} fps at {w}x{h}; {others})"
    from b2b_train.checkpoint import atomic_write

    atomic_write(choice_file, (json.dumps({"key": common, "backend": best[0], "precision": best[2], "why": why,
                                           "torch_mode": plan.mode,
                                           "fps": {label[c]: v for c, v in fps.items()}},
                                          indent=2, sort_keys=True) + "\n").encode())
    return results[best], why


def _get_one(backend: str, mode: str | None, precision: str, dev: torch.device, size, common: dict, edir: Path,
             make_fused: Callable[[str], FusedDeblur], use_cache: bool, check: bool, say, channels_last: bool) -> _CacheResult:
    spec = registry.spec(backend)
    devkind = dev.type
    wh = f"{size[0]}x{size[1]}" if size else "any"
    variant = f"-{mode}" if mode else ""
    slot = _Slot(edir, f"{backend}{variant}-{precision}-{devkind}-{wh}", spec.ext)
    key = dict(common, backend=backend, variant=mode, precision=precision, channels_last=channels_last)
    key.update(spec.versions())
    target = Target(make_fused=make_fused, precision=precision, device=dev, size=size, mode=mode, key=key,
                    info={"backend": backend, "device": str(dev), "precision": precision})

    def reference_check(engine: Engine) -> dict:
        if not check or size is None:
            return {}
        w, h = size
        x = example_frames(1, h, w, seed=2)
        ref_mod = make_fused("fp32", False)
        with torch.inference_mode():
            ref = ref_mod(x.to(dev)).cpu().numpy()
        got = engine.run(x.numpy())
        return {"check": {"against": "eager fp32", **compare_frames(got, ref)}}

    res = _cached(slot, key, lambda tmp: spec.build(target, tmp), lambda path, man: spec.load(target, path),
                  use_cache, say)
    if res.status == "built":
        extra = reference_check(res.engine)
        if extra:
            res.manifest.update(extra)
            res.engine.info.update(extra)
            from b2b_train.checkpoint import atomic_write

            if slot.manifest.exists():
                atomic_write(slot.manifest, (json.dumps(res.manifest, indent=2, sort_keys=True) + "\n").encode())
    return res


def build_engine(*args, **kwargs) -> Engine:
    """:func:`get_engine` that rebuilds even when a valid cached engine exists (and replaces it)."""
    kwargs["rebuild"] = True
    return get_engine(*args, **kwargs)
