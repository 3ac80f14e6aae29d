"""Training plumbing shared by the translator, deblurrer and BKE trainers.

* :class:`CheckpointManager` - numbered training states written atomically (safetensors), the
  newest ``keep`` kept; :meth:`latest` skips a damaged newest file and falls back to the one before.
* :func:`rng_state` / :func:`set_rng_state` / :func:`set_seed` - every RNG b2b touches (torch, CUDA,
  numpy, random) captured as tensors, so a resumed run continues exactly like an uninterrupted one.
* :func:`lr_constant_then_linear` - the paper's schedule (constant, then linear decay to zero);
  :func:`cosine_factor` / :func:`adamw_cosine` - warm-up + cosine decay (deblurrer, distillation).
* :func:`train_state` / :func:`load_train_state` / :func:`resume_or_start` - the checkpointed
  state of a supervised run and picking it up;
  :func:`run_supervised_steps` - its training loop (optional AMP scaler, clipping, logs, checkpoints).
* :class:`CsvLogger`, :func:`plot_losses` - a CSV of metrics per step and its PNG plot.
* :func:`progress` - a rich progress bar with ETA and live metrics.
* :func:`check_finite` / :class:`NonFiniteError` - the NaN/Inf guard.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from .checkpoint import atomic_write, load_state, save_state
from .errors import B2BError, CheckpointError, ConfigError

__all__ = [
    "CheckpointManager",
    "NonFiniteError",
    "check_finite",
    "set_seed",
    "rng_state",
    "set_rng_state",
    "lr_constant_then_linear",
    "cosine_factor",
    "adamw_cosine",
    "train_state",
    "load_train_state",
    "resume_or_start",
    "run_supervised_steps",
    "CsvLogger",
    "plot_losses",
    "progress",
    "pick_device",
    "autocast_dtype",
    "cpu_has_bf16",
]


class NonFiniteError(B2BError):
    """A loss or gradient became NaN/Inf."""


def check_finite(**values: float | torch.Tensor) -> None:
    """Raise NonFiniteError naming the first non-finite value."""
    for k, v in values.items():
        f = float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
        if not math.isfinite(f):
            raise NonFiniteError(f"{k} is {f}")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a ``precision`` setting on ``device`` (``None``: plain fp32).

    ``auto``: bf16 on CUDA (fp16 where the GPU has no bf16) and on a CPU with bf16 hardware (there
    1.5x faster than fp32 on NAFNet-lite training; ``benchmarks/train_speed.py``), else fp32.
    ``fp16`` is CUDA only (it needs a gradient scaler; on a CPU it is refused).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA device (on a CPU use bf16 or fp32)")
        return torch.float16
    if precision != "auto":
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; otherwise the named device (checked)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise B2BError(f"device {device} requested but CUDA is not available")
    return d


# ----------------------------------------------------------------------------- RNG

def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """All global RNG states as tensors (storable by ``checkpoint.save_state``)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python": torch.tensor(py_state[1], dtype=torch.int64),
        "python_gauss": py_state[2],
    }
    if torch.cuda.is_available():
        out["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            int(state["numpy_pos"]),
            int(state["numpy_has_gauss"]),
            float(state["numpy_gauss"]),
        )
    )
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])


# ----------------------------------------------------------------------------- checkpoints

_CKPT_RE = re.compile(r"^ckpt_(\d{8,})\.safetensors$")


class CheckpointManager:
    """Numbered training states in one folder: ``ckpt_00001000.safetensors`` (+ ``.json``).

    ``save`` writes atomically (temp file, fsync, rename) and then prunes all but the newest
    ``keep``; a crash at any moment leaves at least one complete checkpoint. ``latest`` returns the
    newest readable one, skipping (and reporting) damaged files.
    """

    def __init__(self, folder: str | os.PathLike, keep: int = 2):
        self.folder = Path(folder)
        self.keep = max(1, int(keep))

    def path_for(self, step: int) -> Path:
        return self.folder / f"ckpt_{step:08d}.safetensors"

    def steps(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.iterdir():
            m = _CKPT_RE.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def save(self, step: int, state: Mapping[str, Any], meta: dict | None = None) -> Path:
        path = self.path_for(step)
        try:
            save_state(path, {**state, "step": int(step)}, {**(meta or {}), "step": int(step)})
        except OSError as e:
            raise CheckpointError(
                f"could not write checkpoint {path} ({e.strerror or e}); the previous checkpoint is intact"
            ) from None
        for old in self.steps()[: -self.keep]:
            for suffix in ("", ".json"):
                try:
                    os.unlink(str(self.path_for(old)) + suffix)
                except OSError:
                    pass
        return path

    def latest(self, warn=None) -> tuple[dict, dict] | None:
        """``(state, meta)`` of the newest readable checkpoint, or None if there is none."""
        for step in reversed(self.steps()):
            try:
                return load_state(self.path_for(step))
            except CheckpointError as e:
                if warn is not None:
                    warn(f"skipping damaged checkpoint: {e}")
        return None


# Settings that may change between a run and its resumption: they steer how long and where a run
# goes, not what it learns.
RESUMABLE_CHANGES = frozenset({"iters", "val_every", "ckpt_every", "log_every", "keep_checkpoints", "device",
                               "threads"})


def config_diff(a: Mapping, b: Mapping, prefix: str = "", opaque: tuple[str, ...] = ("net_kwargs",)) -> list[str]:
    """Dotted keys whose values differ between two config dicts (compared as JSON, so a tuple equals
    the list it was saved as); dicts are walked into except those named in ``opaque``."""
    a, b = json.loads(json.dumps(a or {})), json.loads(json.dumps(b or {}))
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict) and k not in opaque:
            keys += config_diff(va, vb, prefix + k + ".", opaque)
        elif va != vb:
            keys.append(prefix + k)
    return keys


def open_run(out_dir: str | os.PathLike, cfg_dict: dict, keep: int, device: str = "auto", threads: int = 0,
             warn=None, what: str = "run") -> tuple[Path, torch.device, CheckpointManager, tuple[dict, dict] | None]:
    """The start every resumable trainer shares: ``out_dir`` created, the device picked (and CPU
    threads set), and the newest checkpoint read, refused with a :class:`ConfigError` when it was
    written under settings that change what is learned.  Returns ``(out, device, ckpts, latest)``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    if threads > 0 and dev.type == "cpu":
        torch.set_num_threads(threads)
    ckpts = CheckpointManager(out / "checkpoints", keep=keep)
    latest = ckpts.latest(warn=warn)
    if latest is not None:
        diff = [k for k in config_diff(latest[1].get("config") or {}, cfg_dict)
                if k.split(".")[-1] not in RESUMABLE_CHANGES]
        if diff:
            raise ConfigError(f"{out} holds a {what} with a different config ({', '.join(diff[:4])} differ); "
                              "use another --out folder, or the same settings to resume")
    return out, dev, ckpts, latest

# ----------------------------------------------------------------------------- schedules

def lr_constant_then_linear(total: int, decay_start: int):
    """LambdaLR factor: 1 until ``decay_start``, then linear to 0 at ``total`` (paper §4.1)."""
    total = max(1, int(total))
    decay_start = min(max(0, int(decay_start)), total)

    def factor(step: int) -> float:
        if step < decay_start:
            return 1.0
        span = max(1, total - decay_start)
        return max(0.0, 1.0 - (step - decay_start) / span)

    return factor


def cosine_factor(total: int, warmup: int = 0, min_ratio: float = 0.0) -> Callable[[int], float]:
    """LambdaLR factor: linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio``."""
    total = max(1, int(total))
    warmup = max(0, min(int(warmup), total - 1))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        t = min(max(t, 0.0), 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def adamw_cosine(
    params,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    iters: int,
    warmup: int = 0,
    min_lr: float = 0.0,
    fused: bool = False,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """``(AdamW, LambdaLR)``: AdamW stepping through :func:`cosine_factor` from ``lr`` to ``min_lr``.

    ``fused``: one fused kernel for all parameters (CUDA; pass ``device.type == "cuda"``)."""
    opt = torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=bool(fused) or None)
    min_ratio = min_lr / lr if lr > 0 else 0.0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_factor(iters, warmup, min_ratio))
    return opt, sched


# ----------------------------------------------------------------------------- supervised runs

def train_state(model, opt, sched, sampler, scaler=None, **extra: Any) -> dict[str, Any]:
    """What a resumed supervised run needs: model, optimiser, scheduler, AMP scaler (when one is
    given; ``{}`` while it is disabled), data sampler, ``extra`` entries, and the global RNGs."""
    state: dict[str, Any] = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    if scaler is not None:
        state["scaler"] = scaler.state_dict() if scaler.is_enabled() else {}
    state["sampler"] = sampler.state_dict()
    state.update(extra)
    state["rng"] = rng_state()
    return state


def load_train_state(state: Mapping[str, Any], model, opt, sched, sampler, scaler=None) -> int:
    """Restore what :func:`train_state` saved (extra entries are the caller's); returns the step."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    set_rng_state(state["rng"])
    step = int(state["step"])
    if step != sched.last_epoch:
        sched.last_epoch = step
    return step


def resume_or_start(
    out: Path, latest: tuple[dict, dict] | None, cfg, model, opt, sched, sampler, scaler=None, say=None
) -> tuple[int, CsvLogger]:
    """``(step, logger)``: resume from ``latest`` (a ``CheckpointManager.latest()`` result, extra
    entries left to the caller) or, when None, start at step 0 writing ``out/config.yaml``; the
    ``out/log.csv`` logger is cut back to the step."""
    step = 0
    if latest is not None:
        step = load_train_state(latest[0], model, opt, sched, sampler, scaler)
        if say is not None:
            say(f"resumed {out} at step {step}")
    else:
        from .config import dump_yaml

        (out / "config.yaml").write_text(dump_yaml(cfg))
    logger = CsvLogger(out / "log.csv")
    logger.truncate_after(step)
    return step, logger


def run_supervised_steps(
    loss_step: Callable[[], torch.Tensor],
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched,
    *,
    step: int,
    iters: int,
    stop_at: int | None,
    logger: CsvLogger,
    log_every: int,
    val_every: int,
    ckpt_every: int,
    validate: Callable[[int], Any],
    save_ckpt: Callable[[int], Any],
    grad_clip: float = 0.0,
    scaler=None,
    description: str = "training",
    show_progress: bool = True,
    say: Callable[[str], None] | None = None,
    resume_hint: str = "the same output folder",
) -> int:
    """Train from ``step`` to ``iters`` (or ``stop_at``); returns the step reached.

    Each step: ``loss = loss_step()`` (draws a batch, runs the model), backward (through ``scaler``,
    an AMP GradScaler, when given), gradient-norm clipping when ``grad_clip > 0``, optimiser and
    scheduler steps. The loss stays on the device: the host reads it only where a step logs,
    validates or checkpoints (so a GPU never waits on Python in between), and the NaN/Inf guard runs
    there, on the summed loss since the last read, before anything is logged or saved, so a
    diverged run stops with NonFiniteError and never writes a checkpoint of non-finite weights.
    The mean loss and the lr are logged every ``log_every`` steps and at the last step;
    ``validate(step)`` runs every ``val_every`` steps (not at ``iters``: the caller validates the
    finished run); ``save_ckpt(step)`` every ``ckpt_every`` steps and at the last step. Stopping
    before ``iters`` tells ``say`` how to resume.
    """
    end = iters if stop_at is None else min(iters, int(stop_at))
    acc, acc_n = None, 0
    with progress(iters, description, enabled=show_progress, completed=step) as bar:
        while step < end:
            loss = loss_step()
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                if grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
            else:
                scaler.scale(loss).backward()
                if grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(opt)
                scaler.update()
            sched.step()
            step += 1
            lv = loss.detach().float()
            acc, acc_n = (lv if acc is None else acc + lv), acc_n + 1
            due_log = step % log_every == 0 or step == end
            due_val = step % val_every == 0 and step != iters
            due_ckpt = step % ckpt_every == 0 or step == end
            if not (due_log or due_val or due_ckpt):
                bar.advance(1)
                continue
            mean = float(acc) / acc_n  # the host sync of this stretch of steps
            check_finite(loss=mean)
            bar.advance(1, loss=mean)
            if due_log:
                logger.log(step, loss=mean, lr=opt.param_groups[0]["lr"])
                acc, acc_n = None, 0
            if due_val:
                validate(step)
            if step % ckpt_every == 0 or step == end:
                save_ckpt(step)
    if step < iters and say is not None:
        say(f"stopped at step {step} of {iters}; run again with {resume_hint} to resume")
    return step


def fit_pairs_cosine(
    params,
    draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    iters: int,
    lr: float,
    betas: tuple[float, float],
    grad_clip: float,
    device: torch.device | str,
    description: str,
    show_progress: bool = True,
) -> None:
    """A short fit on paired crops: Adam at a cosine-annealed learning rate, no checkpoints, logs or resume.

    Each of ``iters`` steps sets the learning rate to ``lr * 0.5 * (1 + cos(pi * it / iters))``, draws a
    batch ``x, y = draw()`` (moved to ``device``), backpropagates ``loss_fn(x, y)``, clips the gradient norm
    of ``params`` to ``grad_clip`` and steps; the bar shows each step's loss. The parameters change in place.
    """
    params = list(params)
    opt = torch.optim.Adam(params, lr=lr, betas=betas)
    with progress(iters, description, enabled=show_progress) as bar:
        for it in range(iters):
            x, y = draw()
            x, y = x.to(device), y.to(device)
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / iters))
            loss = loss_fn(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            bar.advance(1, loss=float(loss.detach()))


# ----------------------------------------------------------------------------- logs and plots

class CsvLogger:
    """Append rows of metrics to a CSV; new columns extend the header (file rewritten then)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.columns: list[str] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                r = csv.reader(f)
                self.columns = next(r, [])

    def truncate_after(self, step: int) -> None:
        """Drop rows with step > ``step`` (after a resume from an earlier checkpoint)."""
        rows = self.read()
        rows = [r for r in rows if float(r.get("step", 0)) <= step]
        self._rewrite(rows)

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        atomic_write(self.path, buf.getvalue().encode())

    def log(self, step: int, **metrics: float) -> None:
        row = {"step": step, **{k: (float(v) if isinstance(v, (int, float, torch.Tensor)) else v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self.columns]
        if new or not self.path.is_file():
            old = self.read()
            self.columns = self.columns + new if self.columns else list(row)
            self._rewrite(old + [row])
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(row)


def plot_losses(csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "training") -> Path | None:
    """Plot every numeric column of a CsvLogger file against step; returns the PNG path."""
    rows = CsvLogger(csv_path).read()
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in rows[0] if c != "step"]
    steps = [float(r["step"]) for r in rows]
    series = {}
    for c in cols:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[c]))
            except (TypeError, ValueError):
                vals.append(float("nan"))
        if any(math.isfinite(v) for v in vals):
            series[c] = vals
    if not series:
        return None
    n = len(series)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.0 * n + 0.6), sharex=True, squeeze=False)
    for ax, (c, vals) in zip(axes[:, 0], series.items()):
        pts = [(s_, v) for s_, v in zip(steps, vals) if math.isfinite(v)]  # columns logged now and then
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, marker="." if len(pts) < 30 else None)
        ax.set_ylabel(c, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(png_path, buf.getvalue())
    return png_path


class _Progress:
    def __init__(self, bar, task):
        self._bar, self._task = bar, task

    def advance(self, n: int = 1, **metrics: float) -> None:
        if self._bar is None:
            return
        if metrics:
            text = "  ".join(f"{k} {float(v):.4g}" for k, v in metrics.items())
            self._bar.update(self._task, advance=n, metrics=text)
        else:
            self._bar.update(self._task, advance=n)

    def set(self, completed: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed)


@contextmanager
def progress(total: int, description: str = "training", enabled: bool = True, completed: int = 0) -> Iterator[_Progress]:
    """A rich progress bar with ETA and a metrics column: ``with progress(n) as p: p.advance(loss=…)``."""
    if not enabled:
        yield _Progress(None, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        transient=False,
        disable=not sys.stderr.isatty() and not os.environ.get("B2B_FORCE_PROGRESS"),
    )
    with bar:
        task = bar.add_task(description, total=total, completed=completed, metrics="")
        yield _Progress(bar, task)
