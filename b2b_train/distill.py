"""Distil deblurrer∘translator into one network of the deblurrer's architecture (the "lite" student).

After calibration, a camera runs ``deblurrer(G(y))``: two networks per frame. On a CPU that is too slow
for real time (translator ``mimo-unet-lite`` + deblurrer ``nafnet-lite`` ≈ 5-8 fps at 320×240 on two
cores). The student replaces both: a copy of the deblurrer (same architecture, initialised from its
weights) fine-tuned on the camera's own blurry frames ``y`` to reproduce the teacher's output
``t = deblurrer(clamp(G(y)))``. At run time the engine holds the student alone and runs at the
deblurrer's speed; its fidelity to the two-network engine is measured as PSNR(student(y), t) on
held-apart frames, against the baseline PSNR(deblurrer(y), t) (where the student starts).

Recipe: teacher targets computed once on whole frames (no crop-border effects; cached as uint8, in
memory and in ``out_dir/teacher.safetensors``), random aligned crops with horizontal flips (no
rotations: the camera's blur need not be rotation-symmetric), Charbonnier loss, AdamW with cosine
decay, gradient clipping, seeded. Checkpoints carry everything a resumed run needs (model, optimiser,
scheduler, sampler generator, RNGs), so an interrupted run resumed ends with the same weights as one
that never stopped.

Output folder::

    config.yaml              the resolved settings
    teacher.safetensors      input frames and teacher targets (uint8), keyed by the networks' digests
    checkpoints/             ckpt_<step>.safetensors (+ .json), newest two kept
    log.csv, loss.png        loss / lr every few steps, validation PSNR against the teacher
    student.safetensors      final weights (+ .json provenance; ``distillation`` in the metadata);
                             loads like any deblurrer (registry.load_from_file, --deblurrer FILE)

    res = distill("runs/cam/translator.safetensors", "default", "profiles/desk/clips/blurry", "runs/lite")
    res["psnr_student"], res["psnr_baseline"]   # dB against the teacher, on held-apart frames
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checks import check_at_least
from .config import to_dict
from .data.bank import ImageBank
from .deblur_trainer import CropSampler
from .errors import B2BError, CheckpointError, ConfigError, DataError
from .trainutil import (
    RESUMABLE_CHANGES,
    CheckpointManager,
    config_diff,
    adamw_cosine,
    autocast_dtype,
    pick_device,
    plot_losses,
    resume_or_start,
    run_supervised_steps,
    set_seed,
    train_state,
)

__all__ = ["DistillConfig", "PairSampler", "distill", "load_blurry_frames", "teacher_fn", "WEIGHTS_NAME"]

WEIGHTS_NAME = "student.safetensors"
TEACHER_NAME = "teacher.safetensors"


@dataclass
class DistillConfig:
    """Settings of one distillation run (defaults: a few minutes on a 2-core CPU at 320×240).

    ``max_frames``: frames read from the blurry sources (clips give every ``frame_step``-th frame,
    spread over the clips); ``val_frames`` of them, the last ones (the tail of the last source, after
    a gap of ``gap`` frames), are held apart for validation. ``max_side``: frames larger than this
    are resized (0 = native size, what the camera delivers and the engine will see).
    """

    iters: int = 600
    crop: int = 128
    batch: int = 4
    lr: float = 2e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    grad_clip: float = 0.5
    loss: str = "charbonnier"
    max_frames: int = 48
    frame_step: int = 3
    val_frames: int = 4
    gap: int = 2
    max_side: int = 0
    log_every: int = 10
    val_every: int = 100
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch.set_num_threads while distilling on the CPU; 0 leaves it
    # batched: the pairs as one uint8 bank on the device, crops gathered in batch (data/bank.py);
    # per-crop: the reference sampler
    data_path: str = "batched"
    # fp32 by default: the student must match its teacher to ~40 dB, finer than bf16's 8-bit mantissa
    precision: str = "fp32"
    channels_last: bool = True

    def __post_init__(self):
        check_at_least({"iters": self.iters}, 0, ConfigError)
        check_at_least({"batch": self.batch}, 1, ConfigError)
        check_at_least({"crop": self.crop}, 16, ConfigError)
        if self.lr <= 0:
            raise ConfigError("lr must be > 0")
        if self.val_frames < 1:
            raise ConfigError("val_frames must be >= 1")
        if self.data_path not in ("batched", "per-crop"):
            raise ConfigError(f"data_path must be batched or per-crop, got {self.data_path!r}")
        if self.max_frames < self.val_frames + 1:
            raise ConfigError("max_frames must exceed val_frames (training needs frames too)")
        if self.loss not in ("charbonnier", "l1"):
            raise ConfigError(f"loss must be charbonnier or l1, not {self.loss!r}")
        check_at_least({"val_every": self.val_every, "ckpt_every": self.ckpt_every, "log_every": self.log_every},
                       1, ConfigError)


# ----------------------------------------------------------------------------- data

def _is_frame_list(obj) -> bool:
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and all(isinstance(f, np.ndarray) for f in obj)


def load_blurry_frames(
    source: str | os.PathLike | Sequence, max_frames: int = 48, frame_step: int = 3, max_side: int = 0
) -> tuple[list[np.ndarray], list[str]]:
    """Frames (uint8 HxWx3 RGB) and names from a folder / clip / image (or a list of them), or a list of
    frames given as arrays. Clips share ``max_frames`` evenly; frames keep their source order."""
    from .data.io import normalise_image
    from .deblur_trainer import _media_items, _read_items

    if _is_frame_list(source):
        frames = [normalise_image(np.asarray(f), f"frame {i}") for i, f in enumerate(source)][:max_frames]
        names = [f"frame{i}" for i in range(len(frames))]
    else:
        srcs = [source] if isinstance(source, (str, os.PathLike)) else list(source or [])
        if not srcs:
            raise DataError("no blurry frames given: pass a folder of images or clips, a clip, or frames")
        for s in srcs:
            if not Path(os.path.expanduser(str(s))).exists():
                raise DataError(f"blurry frames not found: {s}")
        items = _media_items([str(s) for s in srcs], [])
        if not items:
            raise DataError(f"no images or video clips in {', '.join(str(s) for s in srcs)}")
        n_clips = sum(1 for k, _ in items if k == "clip")
        n_imgs = len(items) - n_clips
        per_clip = max(1, -(-(max_frames - min(n_imgs, max_frames)) // max(1, n_clips))) if n_clips else 0
        got = _read_items(items, max(1, frame_step), per_clip)
        frames, names = got.images[:max_frames], got.names[:max_frames]
    if not frames:
        raise DataError("no blurry frames could be read")
    if max_side and max_side > 0:
        import cv2

        out = []
        for f in frames:
            h, w = f.shape[:2]
            if max(h, w) > max_side:
                s = max_side / max(h, w)
                f = cv2.resize(f, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            out.append(np.ascontiguousarray(f))
        frames = out
    return frames, names


class PairSampler(CropSampler):
    """Aligned random crops of (input, target) frame pairs with horizontal flips, own generator.

    Each pair is stored as one uint8 (6, H, W) tensor so a crop and a flip always hit both alike.
    Crops are ``min(crop, smallest side)`` square (rounded down to a multiple of 8). No rotations:
    the camera's blur need not be rotation-symmetric.
    """

    channels = 6
    rotate = False

    def __init__(self, inputs: list[np.ndarray], targets: list[np.ndarray], crop: int, seed: int):
        self.images = _stack_pairs(inputs, targets)
        self.crop = _pair_crop(self.images, crop)
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def pairs(self) -> list[torch.Tensor]:
        return self.images

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)``, each (n, 3, crop, crop) float32 in [0, 1]."""
        out = self.crops(n).float().div_(255.0)
        return out[:, :3], out[:, 3:]


def _stack_pairs(inputs: list[np.ndarray], targets: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.concatenate([a, b], axis=2)).permute(2, 0, 1).contiguous()
            for a, b in zip(inputs, targets)]


def _pair_crop(pairs: list[torch.Tensor], crop: int) -> int:
    """``min(crop, smallest side)``, rounded down to a multiple of 8 where it can be."""
    c = min(int(crop), min(min(p.shape[1:]) for p in pairs))
    return max(8, c - c % 8) if c >= 8 else c


class PairBank(ImageBank):
    """:class:`PairSampler`'s crops from the batched path: the pairs as one uint8 bank on the device."""

    def __init__(self, inputs: list[np.ndarray], targets: list[np.ndarray], crop: int, seed: int, device):
        pairs = _stack_pairs(inputs, targets)
        super().__init__(pairs, device, seed=seed, rotate=False)
        self.crop = _pair_crop(pairs, crop)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        out = super().batch(n, self.crop)
        return out[:, :3], out[:, 3:]


# ----------------------------------------------------------------------------- networks

def _resolve_translator(translator) -> nn.Module:
    if translator is None:
        raise B2BError("no translator given: distillation needs the camera's trained translator (translator.safetensors)")
    if isinstance(translator, nn.Module):
        return translator.eval()
    p = Path(os.path.expanduser(str(translator)))
    if not p.is_file():
        raise CheckpointError(
            f"translator not found: {p} (train one with `b2b-train translator` or `b2b-stream calibrate`)"
        )
    from .nets.translator_io import load_translator

    return load_translator(p)


def _deblurrer_identity(deblurrer, net: str | None) -> tuple[str, dict, str]:
    """``(registry name, net_kwargs, description)`` of the deblurrer the student copies."""
    from .checkpoint import read_meta
    from .nets import registry
    from .shipped import default_deblurrer_path

    if net:
        s = registry.spec(net)
        return net, dict(s.eval_kwargs), net
    if isinstance(deblurrer, nn.Module):
        name = getattr(deblurrer, "registry_name", None)
        if name:
            return name, dict(getattr(deblurrer, "registry_kwargs", {}) or {}), f"{name} (module)"
        own = deblurrer.state_dict()
        for cand in registry.names("deblurrer"):
            with torch.device("meta"):
                ref = registry.spec(cand).build().state_dict()
            if set(ref) == set(own) and all(tuple(ref[k].shape) == tuple(own[k].shape) for k in ref):
                return cand, {}, f"{cand} (module)"
        raise ConfigError("cannot tell which registered network this deblurrer module is: pass net=NAME")
    text = "default" if deblurrer is None else str(deblurrer)
    if text.strip().lower() in ("", "default"):
        meta = read_meta(default_deblurrer_path())
        return meta["net"], dict(meta.get("net_kwargs") or {}), f"default ({default_deblurrer_path().name})"
    if "=" in text and not Path(text).exists():
        maybe, rest = text.split("=", 1)
        if maybe in registry.REGISTRY:
            return maybe, dict(registry.spec(maybe).eval_kwargs), text
    p = Path(os.path.expanduser(text))
    if p.is_file() and p.suffix == ".safetensors":
        meta = read_meta(p)
        if meta.get("net"):
            return meta["net"], dict(meta.get("net_kwargs") or {}), str(p)
    if text in registry.REGISTRY:
        return text, dict(registry.spec(text).eval_kwargs), text
    return "", {}, text  # an official file: recognised below from the loaded module


def teacher_fn(translator: nn.Module, deblurrer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (N,3,H,W) in [0,1] -> deblurrer(clamp(G(x)))`` clamped, as the fused engine computes it."""

    def run(x: torch.Tensor) -> torch.Tensor:
        y = translator(x)
        if isinstance(y, (list, tuple)):
            y = y[-1]
        return deblurrer(y.clamp(0.0, 1.0)).clamp(0.0, 1.0)

    return run


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().float().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def _frames_digest(frames: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(str(f.shape).encode())
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def _teacher_targets(frames, translator, deblurrer, device, cache: Path, key: dict, say) -> list[np.ndarray]:
    """Teacher outputs (uint8) for every frame, on whole frames; reused from ``cache`` when its key matches."""
    from .checkpoint import load_weights, save_weights

    if cache.is_file():
        try:
            tensors, meta = load_weights(cache)
            if meta.get("key") == key and len(tensors) == len(frames):
                say(f"teacher targets: reused {cache.name} ({len(frames)} frames)")
                return [tensors[f"t{i:05d}"].numpy() for i in range(len(frames))]
        except (B2BError, KeyError):
            pass
    from .data.io import to_tensor

    run = teacher_fn(translator, deblurrer)
    out = []
    t0 = time.time()
    for f in frames:
        out.append(_to_uint8(run(to_tensor(f)[None].to(device))))
    say(f"teacher targets: {len(frames)} frames in {time.time() - t0:.1f}s (translator + deblurrer on whole frames)")
    save_weights(cache, {f"t{i:05d}": torch.from_numpy(t) for i, t in enumerate(out)}, {"key": key, "kind": "distill-teacher"})
    return out


@torch.no_grad()
def _psnr_vs(net, inputs: list[torch.Tensor], targets: list[torch.Tensor]) -> float:
    from .metrics import psnr

    was = net.training
    net.eval()
    try:
        vals = [psnr(net(x).float().clamp(0, 1), t) for x, t in zip(inputs, targets)]
    finally:
        net.train(was)
    return float(sum(vals) / len(vals))


def _config_diff(a: dict, b: dict) -> list[str]:
    return [k for k in config_diff(a, b, opaque=tuple(set(a) | set(b))) if k not in RESUMABLE_CHANGES]


# ----------------------------------------------------------------------------- training

def distill(
    translator: str | os.PathLike | nn.Module,
    deblurrer: str | os.PathLike | nn.Module | None,
    blurry_dir_or_frames,
    out_dir: str | os.PathLike,
    iters: int | None = None,
    crop: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    threads: int | None = None,
    progress: bool = True,
    fresh: bool = False,
    stop_at: int | None = None,
    net: str | None = None,
    config: DistillConfig | None = None,
    restart_if_teacher_changed: bool = False,
    log: Callable[[str], None] | None = print,
    **overrides,
) -> dict:
    """Train the lite student: one network of the deblurrer's architecture imitating deblurrer∘translator.

    Args:
        translator: the camera's translator (our ``translator.safetensors``, an official MIMO-UNet
            file, or a module).
        deblurrer: the deblurrer the engine pairs with it (``"default"``, a name, a file or a module;
            see :func:`b2b_train.shipped.resolve_deblurrer`); ``net`` names an official file's network.
        blurry_dir_or_frames: the camera's blurry frames: a folder (images and/or clips), a clip, a
            list of those, or a list of uint8 HxWx3 RGB arrays.
        out_dir: run folder; a rerun resumes from its newest checkpoint (``fresh=True`` starts over).
        iters, crop, batch, lr, threads, ``**overrides``: :class:`DistillConfig` fields.
        stop_at: stop after this step (a checkpoint is written there), as an interruption would.
        restart_if_teacher_changed: when the folder's checkpoints were distilled from other networks
            or frames (a retrained translator), start over instead of refusing (calibration does this).

    Returns a dict: ``weights`` (path of ``student.safetensors``, or of the checkpoint when stopped
    early), ``psnr_student`` / ``psnr_baseline`` (dB against the teacher on the held-apart frames;
    baseline = the deblurrer alone), ``steps``, ``seconds`` (this session), ``frames`` (train/val),
    ``net``, ``done``.
    """
    import shutil

    from .data.io import to_tensor
    from .losses import charbonnier_loss
    from .nets import registry
    from .shipped import resolve_deblurrer

    say = log or (lambda _s: None)
    cfg = config or DistillConfig()
    given = {k: v for k, v in dict(iters=iters, crop=crop, batch=batch, lr=lr, threads=threads).items() if v is not None}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(DistillConfig)})
    if unknown:
        raise ConfigError(f"unknown distillation setting(s): {', '.join(unknown)}")
    try:
        cfg = dataclasses.replace(cfg, **given, **overrides)
    except TypeError as e:
        raise ConfigError(str(e)) from None

    out = Path(out_dir)
    if fresh and out.exists():
        for name in ("checkpoints", "log.csv", "loss.png", WEIGHTS_NAME, WEIGHTS_NAME + ".json", "config.yaml"):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    t_start = time.time()
    tr_net = _resolve_translator(translator)
    name, net_kwargs, db_desc = _deblurrer_identity(deblurrer, net)
    db_net = resolve_deblurrer(deblurrer, net=net or None) if not isinstance(deblurrer, nn.Module) else deblurrer.float().eval()
    if not name:  # an official file recognised by its layout: find which entry it is
        name, net_kwargs, _ = _deblurrer_identity(db_net, None)
    if registry.spec(name).family != "deblurrer":
        raise ConfigError(f"{name} is a {registry.spec(name).family}, not a deblurrer")
    frames, names = load_blurry_frames(blurry_dir_or_frames, cfg.max_frames, cfg.frame_step, cfg.max_side)
    if len(frames) < cfg.val_frames + 1:
        raise DataError(
            f"only {len(frames)} blurry frame(s): distillation needs more than {cfg.val_frames} "
            "(some are held apart for validation); record more blurry footage"
        )
    n_val = cfg.val_frames
    n_train_end = max(1, len(frames) - n_val - max(0, cfg.gap))
    train_idx, val_idx = list(range(n_train_end)), list(range(len(frames) - n_val, len(frames)))

    device = pick_device(cfg.device)
    old_threads = torch.get_num_threads()
    if cfg.threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    try:
        out.mkdir(parents=True, exist_ok=True)
        from .checkpoint import state_dict_digest

        tr_net = tr_net.to(device).eval()
        db_net = db_net.to(device).eval()
        key = {"translator": state_dict_digest(tr_net), "deblurrer": state_dict_digest(db_net),
               "frames": _frames_digest(frames)}
        targets = _teacher_targets(frames, tr_net, db_net, device, out / TEACHER_NAME, key, say)

        cfg_dict = {**to_dict(cfg), "net": name, "net_kwargs": net_kwargs, **key}
        ckpts = CheckpointManager(out / "checkpoints", keep=cfg.keep_checkpoints)
        latest = ckpts.latest(warn=say)
        if latest is not None:
            diff = _config_diff(latest[1].get("config") or {}, cfg_dict)
            if diff and restart_if_teacher_changed and set(diff) <= set(key):
                say(f"the teacher changed ({', '.join(diff)}): distilling again from the start")
                shutil.rmtree(out / "checkpoints", ignore_errors=True)
                latest, diff = None, []
            if diff:
                raise ConfigError(
                    f"{out} holds a distillation with different settings ({', '.join(diff[:4])} differ); "
                    "use fresh=True (--fresh) or another output folder"
                )

        set_seed(cfg.seed)
        student = registry.build(name, **net_kwargs)
        from .checkpoint import load_state_dict_strict

        load_state_dict_strict(student, db_net.state_dict(), source=db_desc, what=name)
        student = student.to(device).train()
        if cfg.channels_last:
            student = student.to(memory_format=torch.channels_last)
        opt, sched = adamw_cosine(student.parameters(), cfg.lr, (0.9, 0.9), cfg.weight_decay, cfg.iters, 0, cfg.min_lr,
                                  fused=device.type == "cuda")
        amp_dtype = autocast_dtype(cfg.precision, device)
        tr_in, tr_t = [frames[i] for i in train_idx], [targets[i] for i in train_idx]
        if cfg.data_path == "batched":
            sampler = PairBank(tr_in, tr_t, cfg.crop, cfg.seed, device)
        else:
            sampler = PairSampler(tr_in, tr_t, cfg.crop, cfg.seed)
        loss_fn = charbonnier_loss if cfg.loss == "charbonnier" else (lambda p, t: (p.float() - t.float()).abs().mean())
        val_in = [to_tensor(frames[i])[None].to(device) for i in val_idx]
        val_t = [to_tensor(targets[i])[None].to(device) for i in val_idx]
        baseline = _psnr_vs(db_net, val_in, val_t)

        step, logger = resume_or_start(out, latest, cfg, student, opt, sched, sampler, say=say)
        say(f"distilling {name} ({db_desc}) from deblurrer∘translator: {len(train_idx)} training frames, "
            f"{len(val_idx)} held apart; {cfg.iters} steps of {cfg.batch}×{sampler.crop}² crops")
        say(f"baseline: deblurrer alone vs teacher {baseline:.2f} dB")

        def save_ckpt(s: int) -> Path:
            return ckpts.save(s, train_state(student, opt, sched, sampler), {"config": cfg_dict, "kind": "distill-train-state"})

        def validate(s: int) -> float:
            v = _psnr_vs(student, val_in, val_t)
            logger.log(s, val_psnr=v, val_baseline_psnr=baseline)
            plot_losses(out / "log.csv", out / "loss.png", title=f"distilling {name}: student vs teacher")
            say(f"step {s}: student vs teacher {v:.2f} dB (deblurrer alone {baseline:.2f})")
            return v

        def loss_step() -> torch.Tensor:
            x, t = sampler.batch(cfg.batch)
            x, t = x.to(device), t.to(device)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                pred = student(x)
            return loss_fn(pred, t)

        t0 = time.time()
        step = run_supervised_steps(
            loss_step, student, opt, sched, step=step, iters=cfg.iters, stop_at=stop_at, logger=logger,
            log_every=cfg.log_every, val_every=cfg.val_every, ckpt_every=cfg.ckpt_every,
            validate=validate, save_ckpt=save_ckpt, grad_clip=cfg.grad_clip,
            description=f"distil {name}", show_progress=progress, say=say,
        )
        seconds = round(time.time() - t0, 1)
        result = {
            "net": name,
            "net_kwargs": net_kwargs,
            "deblurrer": db_desc,
            "steps": step,
            "iters": cfg.iters,
            "seconds": seconds,
            "seconds_total_session": round(time.time() - t_start, 1),
            "frames": {"train": len(train_idx), "val": len(val_idx), "size": list(frames[0].shape[1::-1])},
            "psnr_baseline": round(baseline, 3),
        }
        if step < cfg.iters:
            return {**result, "weights": str(ckpts.path_for(step)), "done": False,
                    "psnr_student": round(_psnr_vs(student, val_in, val_t), 3)}
        final_psnr = validate(step)
        result["psnr_student"] = round(final_psnr, 3)
        final = out / WEIGHTS_NAME
        registry.save_network(
            final,
            student,
            name,
            net_kwargs=net_kwargs,
            kind="deblurrer",
            lite=True,
            distillation={k: v for k, v in result.items() if k not in ("net", "net_kwargs")},
            teacher={"translator": str(translator) if not isinstance(translator, nn.Module) else "(module)",
                     **key},
            config=cfg_dict,
        )
        say(f"saved {final}: student vs teacher {final_psnr:.2f} dB (deblurrer alone {baseline:.2f}), {step} steps")
        return {**result, "weights": str(final), "done": True}
    finally:
        torch.set_num_threads(old_threads)
