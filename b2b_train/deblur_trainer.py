"""Train a known-blur deblurrer (NAFNet, Restormer) on pairs made on the fly.

Paper §3.3 needs a deblurrer G*_{C'} that masters one known blur domain C'. Here C' is whatever
:func:`b2b_train.blur.make_known_blur` synthesises (the camera-shake kernel bank by default), so no
paired dataset is needed: sharp crops from real photos and video frames are blurred on the fly and the
network learns ``blurry -> sharp``.

Recipe (NAFNet's GoPro recipe, sizes configurable): PSNR loss (``10·log10(mse)``, i.e. minus the
PSNR), AdamW (lr 1e-3, betas 0.9/0.9, no weight decay; fused on CUDA), cosine decay to a minimum lr,
gradient-norm clipping, random crops, flips and 90° rotations, bf16 autocast where the hardware has
it, channels-last.

Data path (``data_path``): ``batched`` (default) keeps the training images as one uint8 bank on the
device (:class:`b2b_train.data.bank.ImageBank`) and makes the known blur there in batch with static
shapes, so a step never waits on the host; ``per-crop`` is the reference path (crops copied one by
one on the host, known blur sized to each batch's draws). Both draw from the same distribution
(``tests/test_data_bank.py`` compares them).

Everything a resumed run needs is in each checkpoint (model, optimiser, scheduler, AMP scaler, step,
the global RNGs and the data sampler's and the blur's own generators), so a run interrupted and
resumed ends with the same weights as one that never stopped. Validation images are blurred once
with a fixed seed, so every validation scores the same blurry inputs.

Output folder::

    config.yaml            the resolved config
    checkpoints/           ckpt_<step>.safetensors (+ .json), newest two kept
    log.csv, loss.png      training loss / lr every few steps, validation PSNR/SSIM
    samples/step_<n>.png   blurry | restored | sharp for a few validation images
    deblurrer.safetensors  final weights (+ .json provenance): load with registry.load_from_file
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_at_least
from .config import load_config, to_dict
from .errors import ConfigError, DataError
from .losses import charbonnier_loss, psnr_loss
from .metrics import psnr, ssim
from .trainutil import (
    adamw_cosine,
    autocast_dtype,
    cosine_factor,
    open_run,
    plot_losses,
    resume_or_start,
    run_supervised_steps,
    set_seed,
    train_state,
)

__all__ = [
    "DeblurDataConfig",
    "DeblurOptimConfig",
    "DeblurrerConfig",
    "SharpSet",
    "CropSampler",
    "cosine_factor",
    "load_sharp_sets",
    "train_deblurrer",
    "evaluate_pairs",
]

WEIGHTS_NAME = "deblurrer.safetensors"


# ----------------------------------------------------------------------------- config

@dataclass
class DeblurDataConfig:
    """Where sharp images come from and how crops are drawn.

    ``sharp``: image folders, image files or video clips (folders may hold clips too); clips give
    every ``frame_step``-th frame, at most ``max_frames_per_clip``. ``val``: held-apart images
    (folders or files); when empty, ``holdout`` still images (evenly spaced in sorted order) are
    set apart from ``sharp``. Any ``sharp`` image that is also a ``val`` image is dropped from
    training. ``exclude``: file-name patterns to skip (e.g. ``clock_motion.png``, genuinely blurred).
    ``scales``: each training image is also used resized by these factors (``0.5`` adds a half-size
    copy, closer to a 320×240 webcam). ``val_size``: validation images are centre-cropped to this
    side (0 = whole image).
    """

    sharp: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    holdout: int = 4
    frame_step: int = 10
    max_frames_per_clip: int = 30
    scales: list[float] = field(default_factory=lambda: [1.0])
    crop: int = 128
    val_size: int = 256
    samples: int = 3


@dataclass
class DeblurOptimConfig:
    """AdamW with a cosine decay from ``lr`` to ``min_lr`` (optional linear warm-up)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.9)
    weight_decay: float = 0.0
    min_lr: float = 1e-6
    warmup: int = 0
    grad_clip: float = 0.01  # max global gradient norm (NAFNet recipe); 0 = off


@dataclass
class DeblurrerConfig:
    """Everything that defines a known-blur deblurrer training run (preset kind ``deblurrer``)."""

    KIND = "deblurrer"

    net: str = "nafnet-lite"
    net_kwargs: dict = field(default_factory=dict)
    init: str | None = None  # start from these weights (ours or an official .pth): fine-tuning
    known: str = "kernels"  # known-blur preset (b2b_train/configs/known/) or YAML file
    data: DeblurDataConfig = field(default_factory=DeblurDataConfig)
    optim: DeblurOptimConfig = field(default_factory=DeblurOptimConfig)
    loss: Literal["psnr", "l1", "charbonnier"] = "psnr"
    batch_size: int = 8
    iters: int = 4000
    log_every: int = 10
    val_every: int = 250
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    data_path: Literal["batched", "per-crop"] = "batched"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # autocast dtype (trainutil.autocast_dtype)
    channels_last: bool = True
    compile: bool = False  # torch.compile the network's training forward
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch.set_num_threads on CPU; 0 leaves it

    def __post_init__(self):
        check_at_least({"batch_size": self.batch_size}, 1)
        check_at_least({"iters": self.iters}, 0)
        check_at_least({"data.crop": self.data.crop}, 16)
        check_at_least({"val_every": self.val_every, "ckpt_every": self.ckpt_every, "log_every": self.log_every}, 1)


def load_deblurrer_config(preset: str | os.PathLike | None = "default", overrides=()) -> DeblurrerConfig:
    """``load_config(DeblurrerConfig, preset, overrides)``."""
    return load_config(DeblurrerConfig, preset, overrides)


# ----------------------------------------------------------------------------- losses
# (cosine_factor, the schedule, lives in trainutil and is re-exported here)

_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "psnr": psnr_loss,
    "l1": lambda p, t: F.l1_loss(p.float(), t.float()),
    "charbonnier": charbonnier_loss,
}


# ----------------------------------------------------------------------------- data

@dataclass
class SharpSet:
    """Decoded sharp images (uint8 HxWx3 RGB) with a name each."""

    images: list[np.ndarray]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)


def _media_items(sources: list[str], exclude: list[str]) -> list[tuple[str, Path]]:
    """``[("image"|"clip", path)]`` for every source entry (folder, image file or clip)."""
    from .data.io import IMAGE_EXTS, VIDEO_EXTS, list_images, list_videos

    items: list[tuple[str, Path]] = []
    for src in sources:
        p = Path(os.path.expanduser(str(src)))
        if p.is_dir():
            imgs = list_images(p, required=False)
            clips = list_videos(p, required=False)
            if not imgs and not clips:
                raise DataError(f"no images or video clips in {p}")
            items += [("image", q) for q in imgs] + [("clip", q) for q in clips]
        elif p.is_file():
            ext = p.suffix.lower()
            if ext in IMAGE_EXTS:
                items.append(("image", p))
            elif ext in VIDEO_EXTS:
                items.append(("clip", p))
            else:
                raise DataError(f"{p}: not an image or a video clip (by its extension)")
        else:
            raise DataError(f"sharp source not found: {p}")
    out, seen = [], set()
    for kind, q in items:
        key = q.resolve()
        if key in seen or any(fnmatch.fnmatch(q.name, pat) for pat in exclude):
            continue
        seen.add(key)
        out.append((kind, q))
    return out


def _read_items(items: list[tuple[str, Path]], frame_step: int, max_frames: int) -> SharpSet:
    from .data.io import iter_video_frames, read_image

    images, names = [], []
    for kind, p in items:
        if kind == "image":
            images.append(read_image(p))
            names.append(p.name)
        else:
            for idx, _t, frame in iter_video_frames(p, step=max(1, frame_step), max_frames=max_frames or None):
                images.append(np.ascontiguousarray(frame))
                names.append(f"{p.name}#{idx}")
    return SharpSet(images, names)


def read_media(paths, frame_step: int = 10, max_frames_per_clip: int = 30) -> list[np.ndarray]:
    """uint8 RGB frames of images, image folders and clips (every ``frame_step``-th frame of a clip)."""
    items = _media_items([str(p) for p in paths], [])
    return list(_read_items(items, frame_step, max_frames_per_clip).images)


def _rescale(images: SharpSet, scales: list[float]) -> SharpSet:
    import cv2

    out_i, out_n = [], []
    for s in scales:
        if not (0.0 < s <= 4.0):
            raise ConfigError(f"data.scales: {s} is not in (0, 4]")
        for img, name in zip(images.images, images.names):
            if s == 1.0:
                out_i.append(img)
                out_n.append(name)
                continue
            h, w = img.shape[:2]
            size = (max(1, round(w * s)), max(1, round(h * s)))
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
            out_i.append(np.ascontiguousarray(cv2.resize(img, size, interpolation=interp)))
            out_n.append(f"{name}@{s:g}")
    return SharpSet(out_i, out_n)


def _centre_crop(img: np.ndarray, size: int, multiple: int = 8) -> np.ndarray:
    h, w = img.shape[:2]
    s_h = min(h, size) if size > 0 else h
    s_w = min(w, size) if size > 0 else w
    s_h, s_w = max(multiple, s_h - s_h % multiple), max(multiple, s_w - s_w % multiple)
    y, x = (h - s_h) // 2, (w - s_w) // 2
    return np.ascontiguousarray(img[y : y + s_h, x : x + s_w])


def _unusable(items: list[tuple[str, Path]], crop: int, limit: int = 4) -> str:
    """Why sources cannot train (only on the error path: each is opened once), e.g.
    ``"a.mkv: not a readable video; b.png: 1x1, smaller than the 96 px crop"``; "" if all look usable."""
    from .data.io import probe_video, read_image

    reasons = []
    for kind, q in items:
        try:
            if kind == "image":
                h, w = read_image(q).shape[:2]
                if min(h, w) < crop:
                    reasons.append(f"{q.name}: {w}x{h}, smaller than the {crop} px crop")
            else:
                probe_video(q)
        except Exception as e:  # noqa: BLE001 - any failure to open is the reason itself
            reasons.append(f"{q.name}: {str(e).replace(str(q), '').strip(': ') or type(e).__name__}")
    more = f"; and {len(reasons) - limit} more" if len(reasons) > limit else ""
    return "; ".join(reasons[:limit]) + more


def load_sharp_sets(data: DeblurDataConfig) -> tuple[SharpSet, SharpSet, dict]:
    """Read training and validation images: ``(train, val, info)``.

    Training images are rescaled by ``data.scales`` and those smaller than the crop are dropped;
    validation images are centre-cropped to ``data.val_size``. ``info`` lists what was used.
    """
    if not data.sharp:
        raise DataError("no sharp sources given (image folders, images or video clips)")
    items = _media_items(list(data.sharp), list(data.exclude))
    if data.val:
        val_items = _media_items(list(data.val), list(data.exclude))
        val_keys = {q.resolve() for _, q in val_items}
        items = [(k, q) for k, q in items if q.resolve() not in val_keys]
        split = "given"
    else:
        stills = [it for it in items if it[0] == "image"]
        n = max(1, int(data.holdout))
        if len(stills) > n:
            idx = sorted({min(len(stills) - 1, int((i + 0.5) * len(stills) / n)) for i in range(n)})
            val_items = [stills[i] for i in idx]
        else:
            clips = [it for it in items if it[0] == "clip"]
            if not clips:
                bad = _unusable(stills, data.crop)
                raise DataError(
                    f"too few sharp images ({len(stills)}) to hold {n} apart for validation; give --val"
                    + (f" (unusable: {bad})" if bad else "")
                )
            val_items = clips[-1:]
        val_keys = {q.resolve() for _, q in val_items}
        items = [(k, q) for k, q in items if q.resolve() not in val_keys]
        split = f"held apart {len(val_items)} of the sharp sources"
    if not items:
        bad = _unusable(val_items, data.crop)
        raise DataError("no training images left after setting the validation images apart"
                        + (f"; the sources are unusable: {bad}" if bad else ""))
    train = _read_items(items, data.frame_step, data.max_frames_per_clip)
    train = _rescale(train, list(data.scales))
    keep = [i for i, im in enumerate(train.images) if min(im.shape[:2]) >= data.crop]
    dropped = len(train) - len(keep)
    train = SharpSet([train.images[i] for i in keep], [train.names[i] for i in keep])
    if not len(train):
        raise DataError(f"every training image is smaller than the crop ({data.crop}px); lower data.crop")
    val = _read_items(val_items, max(1, data.frame_step), min(4, data.max_frames_per_clip or 4))
    val = SharpSet([_centre_crop(im, data.val_size) for im in val.images], val.names)
    if min(min(im.shape[:2]) for im in val.images) < 16:
        raise DataError("validation images must be at least 16 px on each side")
    info = {
        "train_sources": [str(q) for _, q in items],
        "train_images": len(train),
        "dropped_small": dropped,
        "val_images": val.names,
        "val_sources": [str(q) for _, q in val_items],
        "val_split": split,
        "scales": list(data.scales),
    }
    return train, val, info


class CropSampler:
    """Random training crops from a :class:`SharpSet`, driven by its own ``torch.Generator``.

    Each sample: a uniformly chosen image, a uniform crop position, a horizontal flip with
    probability ½ and a rotation by k·90°. Its generator state is part of the checkpoint.
    Subclasses (distillation's ``PairSampler``) may keep other uint8 (``channels``, H, W) tensors in
    ``images`` and leave rotations out (``rotate = False``: then no rotation is drawn).
    """

    channels = 3
    rotate = True

    def __init__(self, images: SharpSet, crop: int, seed: int):
        self.images = [torch.from_numpy(im).permute(2, 0, 1).contiguous() for im in images.images]
        self.crop = int(crop)
        self.generator = torch.Generator().manual_seed(int(seed))

    def _randint(self, hi: int) -> int:
        return int(torch.randint(0, max(1, hi), (1,), generator=self.generator))

    def crops(self, n: int) -> torch.Tensor:
        """(n, channels, crop, crop) uint8."""
        c = self.crop
        out = torch.empty(n, self.channels, c, c, dtype=torch.uint8)
        for i in range(n):
            img = self.images[self._randint(len(self.images))]
            _, h, w = img.shape
            y, x = self._randint(h - c + 1), self._randint(w - c + 1)
            patch = img[:, y : y + c, x : x + c]
            if self._randint(2):
                patch = patch.flip(-1)
            if self.rotate:
                k = self._randint(4)
                if k:
                    patch = torch.rot90(patch, k, dims=(1, 2))
            out[i] = patch
        return out

    def batch(self, n: int) -> torch.Tensor:
        """(n, 3, crop, crop) float32 in [0, 1]."""
        return self.crops(n).float().div_(255.0)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].to(torch.uint8))


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def restore(net: nn.Module, blurry: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """Run a deblurrer on (N,3,H,W) in [0,1]; returns the clamped restoration (float32)."""
    dev = blurry.device
    if amp and dev.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16):
            out = net(blurry)
    else:
        out = net(blurry)
    return out.float().clamp(0, 1)


def evaluate_pairs(net: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], amp: bool = False) -> dict:
    """Mean PSNR/SSIM (paper protocol) of ``net(blurry)`` and of the blurry input against sharp.

    ``pairs``: ``[(blurry (1,3,H,W), sharp (1,3,H,W))]`` on the net's device.
    Returns ``{"psnr", "ssim", "input_psnr", "input_ssim", "outputs": [restored (1,3,H,W) cpu]}``.
    """
    was_training = net.training
    net.eval()
    ps, ss, ips, iss, outs = [], [], [], [], []
    try:
        for blurry, sharp in pairs:
            out = restore(net, blurry, amp=amp)
            ps.append(psnr(out, sharp))
            ss.append(ssim(out, sharp))
            ips.append(psnr(blurry, sharp))
            iss.append(ssim(blurry, sharp))
            outs.append(out.cpu())
    finally:
        net.train(was_training)
    mean = lambda v: float(sum(v) / max(1, len(v)))  # noqa: E731
    # a validation image the domain left untouched (its sharp share, no noise) has input PSNR inf: the
    # input mean is over the degraded ones, so it stays a number
    finite = [p for p in ips if p != float("inf")]
    return {"psnr": mean(ps), "ssim": mean(ss), "input_psnr": mean(finite) if finite else float("inf"),
            "input_ssim": mean(iss), "outputs": outs}


# ----------------------------------------------------------------------------- training

def _build_net(cfg: DeblurrerConfig) -> nn.Module:
    from .checkpoint import load_any_weights
    from .nets import registry

    spec = registry.spec(cfg.net)
    if spec.family != "deblurrer":
        raise ConfigError(f"net {cfg.net!r} is a {spec.family}, not a deblurrer (deblurrers: {', '.join(registry.names('deblurrer'))})")
    net = registry.build(cfg.net, **cfg.net_kwargs)
    if cfg.init:
        load_any_weights(net, registry.find_weights(cfg.net, cfg.init), remap=spec.remap, what=cfg.net)
    return net


def train_deblurrer(
    cfg: DeblurrerConfig,
    out_dir: str | os.PathLike,
    progress: bool = True,
    stop_at: int | None = None,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Train ``cfg.net`` on known-blur pairs; resume from ``out_dir``'s newest checkpoint if any.

    ``stop_at`` ends the run after that step (a checkpoint is written there), as an interruption
    would; calling again with the same config continues to ``cfg.iters``. Returns the path of the
    final weights ``out_dir/deblurrer.safetensors``, or, when stopped early, of the checkpoint.
    Only ``iters``, ``val_every``, ``ckpt_every``, ``log_every``, ``keep_checkpoints``, ``device``
    and ``threads`` may differ when resuming; any other change is refused (ConfigError).
    """
    from .blur import make_known_blur
    from .data.io import to_tensor
    from .nets import registry

    say = log or (lambda _s: None)
    cfg_dict = to_dict(cfg)
    out, device, ckpts, latest = open_run(out_dir, cfg_dict, cfg.keep_checkpoints, cfg.device, cfg.threads,
                                          warn=say)

    set_seed(cfg.seed)
    train_set, val_set, data_info = load_sharp_sets(cfg.data)
    blur = make_known_blur(cfg.known, device)
    net = _build_net(cfg).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    opt, sched = adamw_cosine(net.parameters(), cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay,
                              cfg.iters, cfg.optim.warmup, cfg.optim.min_lr, fused=device.type == "cuda")
    amp_dtype = autocast_dtype(cfg.precision, device)
    use_amp = amp_dtype is not None and device.type == "cuda"  # validation autocasts on CUDA only
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    batched = cfg.data_path == "batched"
    if batched:
        from .data.bank import ImageBank

        sampler = ImageBank(train_set.images, device, seed=cfg.seed)
        train_blur = blur.with_static_shapes() if hasattr(blur, "with_static_shapes") else blur
    else:
        sampler = CropSampler(train_set, cfg.data.crop, cfg.seed)
        train_blur = blur
    blur_gen = torch.Generator(device=device).manual_seed(cfg.seed + 7919)
    loss_fn = _LOSSES[cfg.loss]
    forward = torch.compile(net) if cfg.compile else net

    # Validation pairs: blurred once, with a fixed generator, so every validation sees the same blur.
    val_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003)
    val_pairs = []
    with torch.no_grad():
        for img in val_set.images:
            sharp = to_tensor(img)[None].to(device)
            val_pairs.append((blur(sharp, generator=val_gen).clamp(0, 1), sharp))

    step, logger = resume_or_start(out, latest, cfg, net, opt, sched, sampler, scaler, say=say)
    if latest is not None:
        blur_gen.set_state(latest[0]["blur_generator"].to(torch.uint8))

    def save_ckpt(s: int) -> Path:
        state = train_state(net, opt, sched, sampler, scaler, blur_generator=blur_gen.get_state())
        return ckpts.save(s, state, {"config": cfg_dict, "kind": "deblurrer-train-state"})

    def validate(s: int) -> dict:
        res = evaluate_pairs(net, val_pairs, amp=use_amp)
        logger.log(s, val_psnr=res["psnr"], val_ssim=res["ssim"], val_input_psnr=res["input_psnr"])
        from .data.io import save_grid

        rows = [[b[0].cpu(), o[0], sh[0].cpu()] for (b, sh), o in list(zip(val_pairs, res["outputs"]))[: max(1, cfg.data.samples)]]
        save_grid(out / "samples" / f"step_{s:08d}.png", rows, labels=["blurry", "restored", "sharp"], max_cell=256)
        plot_losses(out / "log.csv", out / "loss.png", title=f"{cfg.net} on {cfg.known}")
        say(
            f"step {s}: val PSNR {res['psnr']:.2f} dB (blurry {res['input_psnr']:.2f}), "
            f"SSIM {res['ssim']:.4f} (blurry {res['input_ssim']:.4f})"
        )
        return res

    def loss_step() -> torch.Tensor:
        if batched:
            sharp = sampler.batch(cfg.batch_size, cfg.data.crop)
        else:
            sharp = sampler.batch(cfg.batch_size).to(device, non_blocking=True)
        with torch.no_grad():
            blurry = train_blur(sharp, generator=blur_gen).clamp(0, 1)
        if cfg.channels_last:
            blurry = blurry.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            pred = forward(blurry)
        return loss_fn(pred, sharp)

    t0 = time.time()
    step = run_supervised_steps(
        loss_step, net, opt, sched, step=step, iters=cfg.iters, stop_at=stop_at, logger=logger,
        log_every=cfg.log_every, val_every=cfg.val_every, ckpt_every=cfg.ckpt_every,
        validate=validate, save_ckpt=save_ckpt, grad_clip=cfg.optim.grad_clip, scaler=scaler,
        description=f"{cfg.net}", show_progress=progress, say=say, resume_hint="the same --out",
    )
    if step < cfg.iters:
        return ckpts.path_for(step)

    res = validate(step)
    final = out / WEIGHTS_NAME
    registry.save_network(
        final,
        net,
        cfg.net,
        net_kwargs=dict(cfg.net_kwargs),
        kind="deblurrer",
        known=cfg.known,
        known_description=blur.describe() if hasattr(blur, "describe") else cfg.known,
        config=cfg_dict,
        data=data_info,
        steps=step,
        validation={k: round(v, 4) for k, v in res.items() if k != "outputs"},
        train_seconds_last_session=round(time.time() - t0, 1),
    )
    say(f"saved {final}")
    return final


def export_weights(src: str | os.PathLike, dst: str | os.PathLike, fp16: bool = True, **extra_meta) -> Path:
    """Copy a trained deblurrer's weights (ours) to ``dst``, optionally stored as fp16 to halve it.

    Loading converts back to the network's float32 parameters.
    """
    from .checkpoint import load_weights, save_weights

    tensors, meta = load_weights(src)
    if fp16:
        tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
    meta = {**meta, **extra_meta, "storage": "float16" if fp16 else "float32"}
    save_weights(dst, tensors, meta)
    return Path(dst)


def config_from_cli(
    preset: str | None,
    overrides=(),
    sharp=(),
    val=(),
    known: str | None = None,
    iters: int | None = None,
) -> DeblurrerConfig:
    """A config from a preset + ``key=value`` overrides + the command's own options."""
    cfg = load_deblurrer_config(preset or "default", overrides)
    data = cfg.data
    if sharp:
        data = dataclasses.replace(data, sharp=[str(s) for s in sharp])
    if val:
        data = dataclasses.replace(data, val=[str(v) for v in val])
    kw = {"data": data}
    if known:
        kw["known"] = known
    if iters is not None:
        if iters < 0:
            raise ConfigError("--iters must be >= 0")
        kw["iters"] = int(iters)
    return dataclasses.replace(cfg, **kw)
