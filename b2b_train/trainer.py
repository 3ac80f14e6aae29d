"""Blur2Blur translator training (paper §3.2, §4.1): G learns to turn the camera's blur into the
known blur, against a multi-scale PatchGAN D that tells G(y) from known-blur images K.

Per iteration (D step, then G step, as in pix2pix):

1. B: a batch of random crops of the camera's blurry frames; S: crops of its sharp frames;
   K = known_blur(S) (the camera's own sharp frames re-blurred with the known blur, §3.3).
2. D step, Eq. 7: ``adv_D(D(K), D(G(B)))  + λ_grad · GP`` with the gradient penalty (Eq. 4) at
   random per-sample interpolates ``ε·y + (1-ε)·G(y)`` (``loss.gp_between``: ``input`` = y∈B as in
   Eq. 4, ``known`` = y∈K as the released code does).
3. G step, Eq. 6: ``adv_G(D(G(B))) + λ_rec · L_rec`` with the multi-scale perceptual loss of Eq. 5
   between G's three outputs and the input at the same scales. With the curriculum on, this loss
   uses only the blurriest fraction of the batch (Laplacian variance; paper: 50 %, growing to the
   whole batch).

Around it: Adam for both, constant-then-linear LR (paper: constant for half the run), AMP on CUDA
only, gradient clipping, a NaN/Inf guard that rolls back to the last good state and halves the LR,
exactly resumable checkpoints (rerun the same command to continue; ``fresh=True`` restarts),
several processes through ``torchrun`` (gloo on CPU, NCCL on GPU: every rank samples its own
shard/seed, gradients are averaged across ranks each step, rank 0 writes files), a rich progress
bar, a CSV log with a loss plot, and a PNG sample grid at each validation.

Outputs in ``out_dir``: ``translator.safetensors`` (+ ``.json``: config and provenance),
``config.yaml``, ``checkpoints/``, ``log.csv`` + ``losses.png`` (training), ``val.csv`` + ``val.png``
(blur degree of input / translated / deblurred validation crops), ``samples/step_XXXXXXXX.png``,
``frames/`` (the decoded-frames cache).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from . import losses as L
from .checks import check_at_least
from .config import dump_yaml, from_dict, load_config, to_dict
from .errors import B2BError, CheckpointError, ConfigError, DataError
from .nets.translator_io import WEIGHTS_NAME, FullResolution, load_translator
from .trainutil import (
    CheckpointManager,
    CsvLogger,
    NonFiniteError,
    config_diff,
    lr_constant_then_linear,
    pick_device,
    plot_losses,
    progress as progress_bar,
    rng_state,
    set_rng_state,
    set_seed,
)

__all__ = [
    "ModelConfig",
    "LossConfig",
    "OptimConfig",
    "ScheduleConfig",
    "DataConfig",
    "CurriculumConfig",
    "TrainConfig",
    "TranslatorConfig",
    "load_translator_config",
    "train_translator",
    "load_translator",
    "FullResolution",
    "curriculum_fraction_at",
]


# ============================================================================= config

@dataclass
class ModelConfig:
    """Networks. ``generator``: a registry translator name; ``discriminator``: ``patchgan``
    arguments (``ndf``, ``n_layers``, ``norm``, ``spectral_norm``) in ``discriminator_kwargs``."""

    generator: str = "mimo-unet"
    generator_kwargs: dict = field(default_factory=dict)
    discriminator: str = "patchgan"
    discriminator_kwargs: dict = field(default_factory=dict)
    multiscale_d: bool = True       # D judges all three translator scales (¼, ½, full)
    shared_d: bool = True           # one PatchGAN for every scale (released code) or one per scale
    d_pyramid: Literal["nearest", "area", "bilinear"] = "nearest"  # how K's smaller scales are made
    d_min_side: int = 48            # translator scales smaller than this (px) are not judged by D
    # a local high-pass discriminator (nets/highpass_discriminator.py) judging the full-size output
    # beside the main one: it sees the detail blur changes, where a PatchGAN mostly sees content
    local_d: bool = False
    local_d_kwargs: dict = field(default_factory=dict)
    # blur-preserving DiffAugment of everything D sees, real and fake alike (data/diffaugment.py):
    # "" (off) or a comma list of color, translation, cutout; for small S, which D can memorise
    d_augment: str = ""
    # a translator file G starts from instead of its fresh initialisation (e.g. b2b's translator
    # prior, b2b_train/prior.py); it must hold the same generator as model.generator
    init: str | None = None


@dataclass
class LossConfig:
    """Eqs. 3-7. ``vgg_layer_weights`` pairs with ``vgg_layers``; ``vgg_weights`` is a torchvision
    VGG file (None: look in the weights cache; random features, with a loud warning, if absent)."""

    gan_mode: Literal["vanilla", "hinge", "lsgan"] = "vanilla"
    lambda_rec: float = 0.8
    lambda_grad: float = 0.005
    gp_between: Literal["input", "known"] = "input"
    # gp: Eq. 4's 1-centred penalty at interpolates (weight lambda_grad); r1: the zero-centred R1
    # penalty on the real (known-blur) samples (Mescheder et al. 2018), same weight
    penalty: Literal["gp", "r1"] = "gp"
    # the content term L_rec: Eq. 5's VGG perceptual loss, a low-pass L1 (Gaussian, lowpass_sigma px at
    # full size) that charges content and colour but leaves blur free, or their sum
    content: Literal["vgg", "lowpass", "both"] = "vgg"
    lowpass_sigma: float = 2.0
    # what the content term compares G(y) with: the blurry input y (the paper), or the output of G as it
    # was at the start (model.init), so fine-tuning a prior keeps the prior's translation and the
    # adversarial term only corrects it
    content_anchor: Literal["input", "init"] = "input"
    d_loss_scale: float = 1.0       # the released code halves D's adversarial loss (0.5)
    rec_scales: Literal["mean", "sum"] = "mean"  # Eq. 5's 1/M, or the released code's sum
    vgg_arch: Literal["vgg16", "vgg19"] = "vgg19"
    vgg_layers: list[str] = field(default_factory=lambda: ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    vgg_layer_weights: list[float] = field(default_factory=lambda: [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0])
    vgg_weights: str | None = None
    vgg_normalize: bool = True

    def __post_init__(self):
        if len(self.vgg_layers) != len(self.vgg_layer_weights):
            raise ValueError(
                f"loss.vgg_layers has {len(self.vgg_layers)} entries but loss.vgg_layer_weights has "
                f"{len(self.vgg_layer_weights)}"
            )
        if self.lambda_rec < 0 or self.lambda_grad < 0:
            raise ValueError("loss.lambda_rec and loss.lambda_grad must be >= 0")


@dataclass
class OptimConfig:
    """Adam for G and for D (pix2pix defaults, which the paper's implementation starts from)."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas_g: tuple[float, float] = (0.5, 0.999)
    betas_d: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    """``iters`` iterations (one D step + one G step each); LR constant until ``decay_start``
    (a fraction of ``iters``), then linear to zero (paper: 1M iterations, decay from 500K)."""

    iters: int = 1_000_000
    decay_start: float = 0.5

    def __post_init__(self):
        check_at_least({"schedule.iters": self.iters}, 1)
        if not 0.0 <= self.decay_start <= 1.0:
            raise ValueError("schedule.decay_start is a fraction of the run in [0, 1]")


@dataclass
class DataConfig:
    """Crops and batches. ``batch`` is the global batch (split across ``torchrun`` processes).
    ``bs_ratio`` is the B share when one unlabelled set is split by scene (paper 6:4 -> 0.6).
    ``frame_step``: use every n-th frame of a clip. Frames are decoded once into ``out_dir/frames``."""

    crop: int = 256
    batch: int = 16
    bs_ratio: float = 0.6
    frame_step: int = 1
    max_frames: int = 0             # per clip, after frame_step (0 = all)
    max_side: int = 0               # shrink frames whose longer side exceeds this (0 = keep)
    augment: bool = True            # flips, 90° rotations, colour jitter
    color_jitter: float = 0.1       # brightness/contrast/saturation amplitude
    val_images: int = 4             # blurry frames held out for the sample grids
    val_size: int = 256             # side of the centre crop shown in the grid
    match_known_blur: bool = False  # shrink the known kernels' extent to the camera's blur (blur/match.py)


@dataclass
class CurriculumConfig:
    """Blur-degree curriculum: G optimises on the blurriest ``start_fraction`` of each batch until
    ``grow_start`` (fraction of the run), then the share grows linearly to the whole batch at
    ``grow_end`` (paper: 50 %, growing from iteration 200K of 1M; the end is ours). ``measure`` ranks
    the batch: ``laplacian`` (the paper's Laplacian variance) or ``reblur`` (gradient energy over that
    after one more blur; as good without noise and better with it: BENCHMARKS.md
    ``curriculum-measure``; :mod:`b2b_train.data.curriculum`)."""

    enabled: bool = True
    start_fraction: float = 0.5
    grow_start: float = 0.2
    grow_end: float = 0.5
    measure: Literal["laplacian", "reblur"] = "reblur"

    def __post_init__(self):
        if not 0.0 < self.start_fraction <= 1.0:
            raise ValueError("curriculum.start_fraction must be in (0, 1]")
        if not 0.0 <= self.grow_start <= self.grow_end <= 1.0:
            raise ValueError("curriculum needs 0 <= grow_start <= grow_end <= 1")
        if self.measure not in ("laplacian", "reblur"):
            raise ValueError(f"curriculum.measure must be laplacian or reblur, got {self.measure!r}")


@dataclass
class TrainConfig:
    device: str = "auto"
    amp: bool = True                # CUDA only; ignored on the CPU
    amp_dtype: Literal["bf16", "fp16"] = "bf16"  # fp16 uses a gradient scaler
    grad_clip: float = 10.0         # max total gradient norm per network; 0 = off
    seed: int = 0
    ckpt_every: int = 1000
    val_every: int = 1000
    log_every: int = 10
    keep: int = 2                   # checkpoints kept on disk
    max_rollbacks: int = 5          # NaN/Inf guard: give up after this many rollbacks
    rollback_lr_factor: float = 0.5
    deblur_samples: bool = True     # add the shipped deblurrer's output to the sample grids
    threads: int = 0                # torch.set_num_threads on the CPU (0 = leave torch's default)
    # steps at the start where only D trains (G stays as initialised): G gets no adversarial
    # gradient from a D that cannot yet tell B from K, which otherwise lets the content term alone move it
    d_warmup: int = 0
    # batched: K made on the device with static shapes from a device generator, B/S crops prepared
    # in a background thread on CUDA; per-crop: the reference path (K sized to each batch's draws,
    # drawn from a host generator)
    data_path: Literal["batched", "per-crop"] = "batched"


@dataclass
class TranslatorConfig:
    KIND = "translator"

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    known: str = "kernels"          # known-blur preset / YAML, or bke:PATH


def load_translator_config(
    config: str | os.PathLike | TranslatorConfig = "paper",
    overrides: Sequence[str] = (),
    iters: int | None = None,
    known: str | None = None,
) -> TranslatorConfig:
    """Preset name or YAML file (or a config object), then ``KEY=VALUE`` overrides, ``iters``, ``known``."""
    if isinstance(config, TranslatorConfig):
        cfg = config
        if overrides:
            from .config import apply_overrides

            cfg = from_dict(TranslatorConfig, apply_overrides(to_dict(cfg), overrides))
    else:
        cfg = load_config(TranslatorConfig, config, overrides)
    if iters is not None:
        if iters < 1:
            raise ConfigError(f"--iters must be >= 1, got {iters}")
        cfg = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, iters=int(iters)))
    if known is not None:
        cfg = dataclasses.replace(cfg, known=str(known))
    return cfg


def curriculum_fraction_at(step: int, iters: int, c: CurriculumConfig) -> float:
    """Share of each batch G optimises on at ``step`` of ``iters`` (1.0 when the curriculum is off);
    ``grow_start`` / ``grow_end`` are fractions of the run (``data.curriculum_fraction`` works in steps)."""
    from .data import curriculum_fraction

    if not c.enabled:
        return 1.0
    return curriculum_fraction(step, c.start_fraction, int(round(c.grow_start * iters)), int(round(c.grow_end * iters)))


# ============================================================================= data

def _log(msg: str, style: str | None = None) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(msg, style=style)


def _augment_config(d: DataConfig):
    from .data import AugmentConfig

    if not d.augment:
        return AugmentConfig.none(d.crop)
    j = float(d.color_jitter)
    return AugmentConfig(crop=d.crop, hflip=True, vflip=True, rot90=True, brightness=j, contrast=j, saturation=j, hue=0.0)


def _center_crops(fs, size: int) -> torch.Tensor:
    """(k, 3, s, s): the centre crop of every frame of a FrameSet (s = ``size`` rounded to a multiple of 4)."""
    side = min(size, *(min(np.asarray(fs.image(i)).shape[:2]) for i in range(len(fs))))
    side = max(4, side - side % 4)
    out = []
    for i in range(len(fs)):
        f = np.asarray(fs.image(i))
        h, w = f.shape[:2]
        y, x = (h - side) // 2, (w - side) // 2
        out.append(torch.from_numpy(np.array(f[y : y + side, x : x + side])).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out)


def _tiles(fs, size: int) -> torch.Tensor:
    """(n, 3, size, size): every frame of a FrameSet cut into non-overlapping ``size`` px tiles
    (the frame's centre region; frames smaller than a tile give none)."""
    out = []
    for i in range(len(fs)):
        f = torch.from_numpy(np.array(fs.image(i))).permute(2, 0, 1).float() / 255.0
        h, w = f.shape[-2:]
        if min(h, w) < size:
            continue
        ny, nx = h // size, w // size
        y0, x0 = (h - ny * size) // 2, (w - nx * size) // 2
        out += [f[:, y0 + r * size : y0 + (r + 1) * size, x0 + c * size : x0 + (c + 1) * size]
                for r in range(ny) for c in range(nx)]
    return torch.stack(out) if out else torch.zeros(0, 3, size, size)


def _hold_out(fs, k: int):
    """``(train, val)``: ``k`` evenly spaced frames of ``fs`` for the sample grids, removed from
    training only when the set is large enough (>= 4k + 2 frames)."""
    n = len(fs)
    k = max(1, min(k, n))
    idx = sorted(set(np.linspace(0, n - 1, k + 2)[1:-1].round().astype(int).tolist())) if n > 2 else [0]
    val = fs.subset(idx)
    if n >= 4 * len(idx) + 2:
        s = set(idx)
        fs = fs.subset([i for i in range(n) if i not in s])
    return fs, val


# ============================================================================= networks

def _build_generator(cfg: TranslatorConfig) -> nn.Module:
    from .nets import registry

    s = registry.spec(cfg.model.generator)
    if s.family != "translator":
        raise ConfigError(f"model.generator {cfg.model.generator!r} is a {s.family}, not a translator "
                          f"(translators: {', '.join(registry.names('translator'))})")
    try:
        net = registry.build(cfg.model.generator, **cfg.model.generator_kwargs)
    except TypeError as e:
        raise ConfigError(f"model.generator_kwargs do not fit {cfg.model.generator}: {e}") from None
    if cfg.model.init:
        _load_init(net, cfg.model.init, cfg.model.generator)
    return net


def _load_init(net: nn.Module, path: str | os.PathLike, generator: str) -> None:
    """Load ``model.init`` (one of our translator files) into the freshly built ``net``."""
    from .checkpoint import load_any_weights, read_meta

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.init: translator file not found: {path}")
    if path.suffix != ".safetensors":
        raise ConfigError(f"model.init: {path} is not a b2b translator file (.safetensors)")
    meta = read_meta(path)
    if "__state__" in meta:
        raise ConfigError(f"model.init: {path} is a training checkpoint; give the run's {WEIGHTS_NAME} instead")
    if meta.get("net") != generator:
        raise ConfigError(f"model.init: {path} holds a {meta.get('net') or 'network of unknown kind'}, but "
                          f"model.generator is {generator!r}; set model.generator={meta.get('net')}")
    load_any_weights(net, path, what=f"model.init ({path.name})")


def _build_discriminator(cfg: TranslatorConfig) -> nn.Module:
    from .nets import registry
    from .nets.discriminator import MultiScaleDiscriminator

    kw = dict(cfg.model.discriminator_kwargs)
    try:
        if cfg.model.multiscale_d:
            if cfg.model.discriminator != "patchgan":
                raise ConfigError("model.multiscale_d needs model.discriminator=patchgan")
            main = MultiScaleDiscriminator(num_scales=3, shared=cfg.model.shared_d,
                                           pyramid_mode=cfg.model.d_pyramid, min_side=cfg.model.d_min_side, **kw)
        else:
            main = registry.build(cfg.model.discriminator, **kw)
    except TypeError as e:
        raise ConfigError(f"model.discriminator_kwargs do not fit {cfg.model.discriminator}: {e}") from None
    if not cfg.model.local_d:
        return main
    from .nets.highpass_discriminator import HighPassDiscriminator, WithLocalDiscriminator

    try:
        return WithLocalDiscriminator(main, HighPassDiscriminator(**cfg.model.local_d_kwargs))
    except TypeError as e:
        raise ConfigError(f"model.local_d_kwargs do not fit the high-pass discriminator: {e}") from None


def variance_preserving_init(net: nn.Module) -> nn.Module:
    """He (fan-in, ReLU) init of every conv, zero biases: random VGG features keep the input's scale.

    With PyTorch's default conv init each ReLU layer shrinks the activations' variance about 3x, so
    random relu3_1 features are ~50x smaller than ImageNet VGG's and the perceptual loss of Eq. 5
    becomes negligible beside the adversarial loss (measured: a +0.04 brightness shift costs 0.004,
    against ~0.7 of adversarial loss, and the translator drifted freely in colour and content). With
    He init the same shift costs ~0.12, the order of magnitude ImageNet features give.
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def _build_vgg(cfg: LossConfig, device: torch.device, say: Callable[[str, str | None], None]) -> tuple[nn.Module, str]:
    """The frozen perceptual feature extractor and a note on its weights (path or ``random``)."""
    from .nets import registry

    kw = {"layers": tuple(cfg.vgg_layers), "normalize": cfg.vgg_normalize}
    try:
        path = registry.find_weights(cfg.vgg_arch, cfg.vgg_weights)
    except CheckpointError as e:
        if cfg.vgg_weights:  # an explicit path that is missing is the user's error
            raise CheckpointError(f"loss.vgg_weights: {e}") from None
        path = None
        hint = str(e)
    if path is not None:
        net = registry.load(cfg.vgg_arch, path, **kw)
        note = str(path)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)
            net = registry.build(cfg.vgg_arch, **kw)
            variance_preserving_init(net)
        note = "random"
        say(
            f"WARNING: {hint}.\nThe perceptual loss (Eq. 5) now uses RANDOMLY INITIALISED {cfg.vgg_arch.upper()} "
            f"features (He init), not ImageNet ones: training runs, but content preservation is weaker than the "
            f"paper's. Set loss.vgg_weights=PATH to a torchvision {cfg.vgg_arch} file to fix this.",
            "bold yellow",
        )
    return net.to(device).eval().requires_grad_(False), note


# ============================================================================= distributed helpers

class _Dist:
    """Rank/world from torchrun's environment; gradient averaging and collective flags."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        self.enabled = self.world > 1
        self.device = device
        if self.enabled:
            import torch.distributed as dist

            if device.type == "cuda":  # one GPU per process, chosen before NCCL starts
                self.device = torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend=backend)
                self.owns_group = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast_module(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def average_gradients(self, params: Sequence[nn.Parameter]) -> None:
        """All-reduce and average the gradients (one flat bucket), as DDP does."""
        if not self.enabled:
            return
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        o = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[o : o + n].view_as(g))
            o += n

    def any(self, flag: bool, device: torch.device) -> bool:
        if not self.enabled:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


# ============================================================================= the trainer

class _StopRequested(Exception):
    pass


def _state_copy(obj: Any) -> Any:
    """Deep copy of a nested state with every tensor cloned to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _state_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_state_copy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_state_copy(v) for v in obj)
    return obj


class TranslatorTrainer:
    """One training run. Use :func:`train_translator`; this class is its machinery."""

    def __init__(self, cfg: TranslatorConfig, blurry_dir, sharp_dir, out_dir, show_progress: bool = True,
                 fresh: bool = False, on_step: Callable[[int, dict], None] | None = None):
        self.cfg = cfg
        self.blurry_dir, self.sharp_dir = Path(blurry_dir), Path(sharp_dir)
        self.out = Path(out_dir)
        self.show_progress = show_progress
        self.on_step = on_step
        self.device = pick_device(cfg.train.device)
        self.dist = _Dist(self.device)
        self.device = self.dist.device
        self.main = self.dist.main
        if fresh and self.main:
            self._clear_outputs()
        self.dist.barrier()
        self.ckpts = CheckpointManager(self.out / "checkpoints", keep=cfg.train.keep)
        self.csv = CsvLogger(self.out / "log.csv") if self.main else None
        self.val_csv = CsvLogger(self.out / "val.csv") if self.main else None
        self._deblurrer: Any = None
        self._deblurrer_note = ""
        self.rollbacks = 0
        self.lr_scale = 1.0
        self.step = 0
        self.notes: dict[str, Any] = {}

    # ----------------------------------------------------------------------------- utilities
    def say(self, msg: str, style: str | None = None) -> None:
        if self.main:
            _log(msg, style)

    def _clear_outputs(self) -> None:
        for p in (self.out / "checkpoints", self.out / "samples"):
            if p.is_dir():
                shutil.rmtree(p)
        for name in ("log.csv", "val.csv", "losses.png", "val.png", WEIGHTS_NAME, WEIGHTS_NAME + ".json"):
            try:
                (self.out / name).unlink()
            except FileNotFoundError:
                pass

    # ----------------------------------------------------------------------------- set-up
    def setup(self) -> None:
        cfg = self.cfg
        if cfg.data.crop < 16 or cfg.data.crop % 4:
            raise ConfigError(f"data.crop must be a multiple of 4 and >= 16, got {cfg.data.crop}")
        for what, folder in (("blurry", self.blurry_dir), ("sharp", self.sharp_dir)):
            if not folder.exists():
                raise DataError(f"{what} folder not found: {folder}")
        set_seed(cfg.train.seed)
        if self.device.type == "cpu" and cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels
        self.G = _build_generator(cfg).to(self.device)
        # loss.content_anchor=init: a frozen copy of G as it starts (before any resume loads into G)
        self.G0 = (copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.loss.content_anchor == "init" else None)
        if cfg.model.init:
            self.notes["init"] = str(cfg.model.init)
        self.D = _build_discriminator(cfg).to(self.device)
        self._check_d_fits()
        from .data.diffaugment import parse_policy

        parse_policy(cfg.model.d_augment)  # an unknown operation stops here, not at the first step
        self.dist.broadcast_module(self.G)
        self.dist.broadcast_module(self.D)
        if cfg.loss.content == "lowpass":  # no VGG to build (nor its warning about random features)
            self.vgg, self.notes["vgg_weights"] = None, "none (content loss: low-pass L1)"
        else:
            self.vgg, self.notes["vgg_weights"] = _build_vgg(cfg.loss, self.device, self.say)
        self.rec_weights = dict(zip(cfg.loss.vgg_layers, cfg.loss.vgg_layer_weights))
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=tuple(o.betas_g), weight_decay=o.weight_decay)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=tuple(o.betas_d), weight_decay=o.weight_decay)
        self.amp = bool(cfg.train.amp and self.device.type == "cuda")
        self.amp_dtype = torch.float16
        if self.amp and cfg.train.amp_dtype == "bf16" and torch.cuda.is_bf16_supported():
            self.amp_dtype = torch.bfloat16
        use_scaler = self.amp and self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.schedule = lr_constant_then_linear(cfg.schedule.iters, int(round(cfg.schedule.decay_start * cfg.schedule.iters)))

        try:
            from .blur import make_known_blur
        except ImportError:
            from .blur.synth import make_known_blur
        self.known = make_known_blur(cfg.known, device=self.device)
        self.notes["known"] = self.known.describe() if hasattr(self.known, "describe") else str(cfg.known)

        d = cfg.data
        from .data import FrameOptions, UnpairedDataset, extract_frames, make_unpaired

        opts = FrameOptions(step=d.frame_step, max_frames=d.max_frames or None, max_side=d.max_side or None)
        cache = self.out / "frames"
        if self.main:  # rank 0 decodes into the cache, the others read it
            fs = extract_frames(cache, blurry=self.blurry_dir, sharp=self.sharp_dir, options=opts,
                                progress=self.show_progress, warn=lambda m: self.say(m, "yellow"))
        self.dist.barrier()
        if not self.main:
            fs = extract_frames(cache, blurry=self.blurry_dir, sharp=self.sharp_dir, options=opts, progress=False,
                                warn=lambda m: None)
        self.split = make_unpaired(fs, ratio=d.bs_ratio, seed=cfg.train.seed, mode="auto")
        b_train, self.val = _hold_out(self.split.b, d.val_images)
        self.val_held_out = len(b_train) < len(self.split.b)
        self.B, self.S = b_train, self.split.s
        self.val_crops = _center_crops(self.val, d.val_size)
        # K crops for D's validation AUC: the centres of as many S frames, blurred once with a fixed draw
        self.val_known = None
        self.batch = max(1, d.batch // self.dist.world)
        if d.batch % self.dist.world:
            self.say(f"data.batch {d.batch} is not a multiple of {self.dist.world} processes; each uses {self.batch}", "yellow")
        prefetch = 2 if (cfg.train.data_path == "batched" and self.device.type == "cuda") else 0
        self.data = UnpairedDataset(self.B, self.S, batch_size=self.batch, augment=_augment_config(d),
                                    seed=cfg.train.seed, rank=self.dist.rank, prefetch=prefetch,
                                    degree=cfg.curriculum.measure if cfg.curriculum.enabled else "laplacian")
        if d.match_known_blur:
            self._match_known_blur()

    def _match_known_blur(self) -> None:
        """``data.match_known_blur``: the known kernels' extent shrunk to this camera's blur (deterministic,
        so a resumed run picks the same); the choice is written to ``known_match.json``."""
        from .blur.match import MAX_FRAMES, evenly, match_extent
        from .blur.synth import KnownBlur

        if not isinstance(self.known, KnownBlur):
            self.say("data.match_known_blur applies to kernel-bank known blur only; kept as configured", "yellow")
            return
        frames = lambda fs: [fs.image(i) for i in evenly(len(fs), MAX_FRAMES)]  # noqa: E731  (only those compared)
        (lo, hi), report = match_extent(self.known.cfg, frames(self.B), frames(self.S), seed=self.cfg.train.seed)
        if report["note"]:
            self.say("known-blur matching: " + report["note"], "yellow")
        from .blur.synth import make_known_blur

        self.known = make_known_blur(self.known.cfg, device=self.device, overrides=[f"kernels.extent=[{lo:g}, {hi:g}]"])
        self.notes["known"] = self.known.describe() + (
            f" (extent matched to the camera: blur-degree ratio B/S {report['target']:.2f}, "
            f"K/S {report['ratios'][f'{hi:g}']:.2f})")
        self.notes["known_match"] = report
        if self.main:
            from .checkpoint import atomic_write

            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write(self.out / "known_match.json", json.dumps(report, indent=2).encode())

    def _check_d_fits(self) -> None:
        nl = int(self.cfg.model.discriminator_kwargs.get("n_layers", 3))
        crop, m = self.cfg.data.crop, self.cfg.model
        judged = [crop // f for f in ((4, 2, 1) if m.multiscale_d else (1,)) if crop // f >= m.d_min_side] or [crop]
        smallest = min(judged)
        need = 3 * 2**nl
        if smallest < need:
            raise ConfigError(
                f"data.crop {self.cfg.data.crop} is too small for a {nl}-layer PatchGAN: its smallest judged scale "
                f"is {smallest} px (needs >= {need} px); raise data.crop or lower model.discriminator_kwargs.n_layers"
            )

    # ----------------------------------------------------------------------------- state
    def state(self) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "rng": rng_state(),
            "data": self.data.state_dict(),
            "lr_scale": float(self.lr_scale),
            "rollbacks": int(self.rollbacks),
            "step": int(self.step),
        }

    def load(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(_to_device(state["opt_g"], self.device))
        self.opt_d.load_state_dict(_to_device(state["opt_d"], self.device))
        if state.get("scaler_g"):
            self.scaler_g.load_state_dict(state["scaler_g"])
        if state.get("scaler_d"):
            self.scaler_d.load_state_dict(state["scaler_d"])
        set_rng_state(state["rng"])
        self.data.load_state_dict(state["data"])
        self.lr_scale = float(state["lr_scale"])
        self.rollbacks = int(state.get("rollbacks", 0))
        self.step = int(state["step"])

    def _meta(self) -> dict:
        return {"kind": "translator-train-state", "config": to_dict(self.cfg)}

    def resume(self) -> bool:
        found = self.ckpts.latest(warn=lambda m: self.say(m, "yellow"))
        if found is None:
            return False
        state, meta = found
        old = (meta or {}).get("config", {})
        if old and old.get("model") != to_dict(self.cfg.model):
            diff = ["model." + k for k in config_diff(old.get("model") or {}, to_dict(self.cfg.model),
                                                      opaque=("generator_kwargs", "discriminator_kwargs"))]
            raise CheckpointError(
                f"{self.out} holds a run with a different model ({', '.join(diff[:3]) or 'model'} differ); "
                f"pass --fresh to start over or choose another --out"
            )
        changed = sorted(k for k in ("loss", "optim", "data", "curriculum", "known")
                         if old and old.get(k) != to_dict(getattr(self.cfg, k)))
        if changed:
            self.say(f"note: resuming with changed settings in {', '.join(changed)}", "yellow")
        self.load(state)
        self.say(f"resuming from step {self.step} ({self.ckpts.path_for(self.step).name})")
        return True

    def save_checkpoint(self) -> None:
        st = self.state()
        if self.main:
            self.ckpts.save(self.step, st, self._meta())
        self.good = (_state_copy(st), self.step)
        self.dist.barrier()

    # ----------------------------------------------------------------------------- one iteration
    def _autocast(self):
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype, enabled=self.amp) if self.device.type == "cuda" \
            else torch.autocast(device_type="cpu", enabled=False)

    def _set_lr(self) -> float:
        f = self.schedule(self.step) * self.lr_scale
        for g in self.opt_g.param_groups:
            g["lr"] = self.cfg.optim.lr_g * f
        for g in self.opt_d.param_groups:
            g["lr"] = self.cfg.optim.lr_d * f
        return self.cfg.optim.lr_g * f

    def _generator(self, device: torch.device | None = None) -> torch.Generator:
        """Per-step data/noise generator: a pure function of (seed, rank, step), so resume is exact."""
        s = (int(self.cfg.train.seed) * 1_000_003 + self.dist.rank * 7_919 + self.step * 104_729) % (2**63 - 1)
        return torch.Generator(device=device or "cpu").manual_seed(s)

    def _d_augmenter(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``model.d_augment`` for this step (identity when off): fresh draws per call from a
        generator of its own, seeded by the step, so resume is exact and the data draws do not shift."""
        policy = self.cfg.model.d_augment
        if not policy:
            return lambda t: t
        from .data.diffaugment import diff_augment

        g = self._generator(self.device)
        g.manual_seed(g.initial_seed() ^ 0xD1FFA)
        return lambda t: diff_augment(t, policy, generator=g)

    def _known_blur_step(self, sharp: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """K for this step's S crops: on the batched path with static shapes from a device generator
        (its own stream, so the host generator ``gen`` draws the same as on the per-crop path)."""
        if self.cfg.train.data_path != "batched":
            return self.known(sharp, generator=gen)
        if getattr(self, "_static_known_of", None) is not self.known:  # the known blur may be re-matched
            self._static_known = self.known.with_static_shapes() if hasattr(self.known, "with_static_shapes") else self.known
            self._static_known_of = self.known
        dev_gen = self._generator(self.device)
        dev_gen.manual_seed(dev_gen.initial_seed() ^ 0x5DEECE66D)
        return self._static_known(sharp, generator=dev_gen)

    def _guard(self, what: str, value: torch.Tensor | float) -> None:
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if self.dist.any(not math.isfinite(v), self.device):
            raise NonFiniteError(f"{what} is {v} at step {self.step}")

    def _apply(self, loss: torch.Tensor, net: nn.Module, opt, scaler, name: str) -> float:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        params = [p for p in net.parameters() if p.requires_grad]
        self.dist.average_gradients(params)
        scaler.unscale_(opt)
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        if not scaler.is_enabled():  # with an fp16 scaler, inf gradients just skip the step
            self._guard(f"{name} gradient norm", norm)
        scaler.step(opt)
        scaler.update()
        return norm

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        gen = self._generator()
        from .data import select_blurriest
        from .nets.mimo_unet import pyramid

        batch = self.data.next()
        yb = batch.blurry.to(self.device, non_blocking=True)
        ys = batch.sharp.to(self.device, non_blocking=True)
        with torch.no_grad():
            yk = self._known_blur_step(ys, gen)
        lr = self._set_lr()
        frac = curriculum_fraction_at(self.step, cfg.schedule.iters, cfg.curriculum)
        sel = select_blurriest(yb, batch.blurry_degree, frac).sort().values.to(self.device) if frac < 1.0 else None

        self.G.train()
        self.D.train()
        warming = self.step < cfg.train.d_warmup  # D alone this step
        with self._autocast(), torch.set_grad_enabled(not warming):
            fake = list(self.G(yb))
        if not cfg.model.multiscale_d:
            fake_d = [fake[-1]]
        else:
            fake_d = fake

        # ---- D step (Eq. 7)
        self.D.requires_grad_(True)
        aug = self._d_augmenter()
        yk_d = aug(yk)
        with self._autocast():
            real_logits = L.as_logit_list(self.D(yk_d))
            fake_logits = L.as_logit_list(self.D([aug(f.detach()) for f in fake_d]) if cfg.model.multiscale_d
                                      else self.D(aug(fake_d[0].detach())))
            adv_d = L.d_adversarial_loss(real_logits, fake_logits, cfg.loss.gan_mode) * cfg.loss.d_loss_scale
        if cfg.loss.lambda_grad > 0 and cfg.loss.penalty == "r1":
            gp = L.r1_penalty(self.D, yk_d, create_graph=True)
        elif cfg.loss.lambda_grad > 0:
            anchor = yb if cfg.loss.gp_between == "input" else yk
            mix, _ = L.interpolate(anchor, fake[-1].detach(), generator=gen)
            gp = L.gradient_penalty(self.D, mix, create_graph=True)
        else:
            gp = adv_d.new_zeros(())
        loss_d = L.discriminator_total(adv_d, gp, cfg.loss.lambda_grad)
        self._guard("D loss", loss_d)
        norm_d = self._apply(loss_d, self.D, self.opt_d, self.scaler_d, "D")

        if warming:
            return {"loss_d": float(loss_d.detach()), "adv_d": float(adv_d.detach()), "gp": float(gp.detach()),
                    "grad_d": norm_d, "lr": lr, "curriculum": frac}

        # ---- G step (Eq. 6), on the curriculum's blurriest share of the batch
        self.D.requires_grad_(False)
        if self.G0 is not None:
            with torch.no_grad(), self._autocast():
                ins = [t.float() for t in self.G0(yb)]
        else:
            ins = pyramid(yb)
        if sel is not None:
            fake_g = [f[sel] for f in fake]
            ins = [i[sel] for i in ins]
        else:
            fake_g = fake
        with self._autocast():
            logits_g = L.as_logit_list(self.D([aug(f) for f in fake_g]) if cfg.model.multiscale_d
                                       else self.D(aug(fake_g[-1])))
            adv_g = L.g_adversarial_loss(logits_g, cfg.loss.gan_mode)
            rec = self._content_loss(fake_g, ins)
        loss_g = L.generator_total(adv_g, rec, cfg.loss.lambda_rec)
        self._guard("G loss", loss_g)
        norm_g = self._apply(loss_g, self.G, self.opt_g, self.scaler_g, "G")
        self.D.requires_grad_(True)
        return {
            "loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "adv_d": float(adv_d.detach()),
            "adv_g": float(adv_g.detach()), "gp": float(gp.detach()), "rec": float(rec.detach()),
            "grad_d": norm_d, "grad_g": norm_g, "lr": lr, "curriculum": frac,
        }

    # ----------------------------------------------------------------------------- guard
    def rollback(self, err: NonFiniteError) -> None:
        self.rollbacks += 1
        good_state, good_step = self.good
        if self.rollbacks > self.cfg.train.max_rollbacks:
            raise NonFiniteError(
                f"training diverged: {err}; rolled back {self.rollbacks - 1} times already "
                f"(last good state: step {good_step}). Try a lower learning rate (optim.lr_g / optim.lr_d), "
                f"train.amp=false, or a stronger train.grad_clip"
            ) from None
        rollbacks, scale = self.rollbacks, self.lr_scale * self.cfg.train.rollback_lr_factor
        self.load(_state_copy(good_state))
        self.rollbacks, self.lr_scale = rollbacks, scale
        msg = (f"non-finite value ({err}); rolled back to step {good_step}, LR scale now {scale:g} "
               f"(rollback {rollbacks}/{self.cfg.train.max_rollbacks})")
        self.say("WARNING: " + msg, "bold yellow")
        if self.csv is not None:
            self.csv.truncate_after(good_step)
            self.val_csv.truncate_after(good_step)
            self.csv.log(good_step, event=f"rollback {rollbacks}", lr_scale=scale)
        self.notes.setdefault("rollbacks", []).append({"at": err.args[0], "to_step": good_step, "lr_scale": scale})

    # ----------------------------------------------------------------------------- validation
    def _plots(self) -> None:
        plot_losses(self.out / "log.csv", self.out / "losses.png", title=f"translator training ({self.out.name})")
        plot_losses(self.out / "val.csv", self.out / "val.png",
                    title=f"validation: blur degree, D's AUC K vs B / K vs G(B) ({self.out.name})")

    def deblurrer(self):
        if self._deblurrer is None and self.cfg.train.deblur_samples:
            try:
                from .shipped import load_default_deblurrer  # type: ignore[attr-defined]

                with torch.random.fork_rng(devices=[]):
                    self._deblurrer = load_default_deblurrer().to(self.device).eval()
                self._deblurrer_note = "shipped deblurrer"
            except (ImportError, AttributeError, B2BError, OSError) as e:
                self._deblurrer = False
                self._deblurrer_note = f"no deblurred column ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                self.say(f"sample grids: {self._deblurrer_note}", "dim")
        return self._deblurrer or None

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.main:
            return {}
        from .data.io import save_grid
        from .metrics import laplacian_variance

        self.G.eval()
        x = self.val_crops.to(self.device)
        y = self.G(x)[-1].float().clamp(0, 1)
        self.G.train()
        lv_in = float(laplacian_variance(x).mean())
        lv_out = float(laplacian_variance(y).mean())
        rows, labels = [], ["blurry input", "translated G(y)"]
        deb = self.deblurrer()
        dx = dy = None
        if deb is not None:
            dx = torch.cat([deb(x[i : i + 1]).float().clamp(0, 1) for i in range(len(x))])
            dy = torch.cat([deb(y[i : i + 1]).float().clamp(0, 1) for i in range(len(y))])
            labels += ["deblurred input", "deblurred G(y)"]
        for i in range(len(x)):
            row = [x[i].cpu(), y[i].cpu()]
            if dx is not None:
                row += [dx[i].cpu(), dy[i].cpu()]
            rows.append(row)
        save_grid(self.out / "samples" / f"step_{self.step:08d}.png", rows, labels)
        out = {"val_lapvar_in": lv_in, "val_lapvar_out": lv_out}
        if dy is not None:
            out["val_lapvar_deblurred"] = float(laplacian_variance(dy).mean())
        out.update(self._d_separation(x, y))
        return out

    def _content_loss(self, outputs, inputs) -> torch.Tensor:
        lc = self.cfg.loss
        rec = None
        if lc.content in ("vgg", "both"):
            rec = L.multiscale_perceptual_loss(self.vgg, outputs, inputs, self.rec_weights, lc.rec_scales)
        if lc.content in ("lowpass", "both"):
            low = L.multiscale_lowpass_loss(outputs, inputs, lc.lowpass_sigma, lc.rec_scales)
            rec = low if rec is None else rec + low
        return rec

    def _d_separation(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """AUC of D's score for K over held-apart B (``val_d_auc``: does D see the camera's blur at
        all? 0.5 = no) and over G(B) (``val_d_auc_translated``: 0.5 = G fools D). Scored per
        training-size tile of the whole held-apart frames (a handful of centre crops gives an AUC
        in steps of 1/16, too coarse to tell a D that learns from one that does not); K from as
        many tiles of S frames spread over the set, blurred once with a fixed draw."""
        from .losses import critic_score
        from .probe import auc

        size = self.cfg.data.crop
        if self.val_known is None:
            self.val_tiles = _tiles(self.val, size).to(self.device)
            n_s = min(len(self.S), max(1, len(self.val)) * 4)
            s = _tiles(_hold_out(self.S, n_s)[1], size)[: len(self.val_tiles)].to(self.device)
            g = torch.Generator(device=self.device).manual_seed(int(self.cfg.train.seed) + 17)
            self.val_known = self.known(s, g).float().clamp(0, 1)
        k, b = self.val_known, self.val_tiles
        if not len(k) or not len(b):
            return {}
        self.G.eval()
        try:
            with self._autocast():
                gb = torch.cat([self.G(b[i : i + 8])[-1].float().clamp(0, 1) for i in range(0, len(b), 8)])
                sk, sb, sy = (torch.cat([critic_score(self.D(t[i : i + 8])) for i in range(0, len(t), 8)])
                              for t in (k, b, gb))
        except (RuntimeError, ValueError):  # crops too small for this D: no AUC rather than no validation
            return {}
        finally:
            self.G.train()
        return {"val_d_auc": auc(sk, sb), "val_d_auc_translated": auc(sk, sy)}

    # ----------------------------------------------------------------------------- main loop
    def run(self) -> Path:
        cfg = self.cfg
        self.setup()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            from .checkpoint import atomic_write

            atomic_write(self.out / "config.yaml", dump_yaml(cfg).encode())
        resumed = self.resume()
        if self.csv is not None and resumed:
            self.csv.truncate_after(self.step)
            self.val_csv.truncate_after(self.step)
        self.good = (_state_copy(self.state()), self.step)
        total = cfg.schedule.iters
        self.say(
            f"translator: {cfg.model.generator} vs {'multi-scale ' if cfg.model.multiscale_d else ''}PatchGAN, "
            f"{cfg.loss.gan_mode} GAN, λ_rec {cfg.loss.lambda_rec:g}, λ_grad {cfg.loss.lambda_grad:g}; "
            f"B {len(self.B)} frames, S {len(self.S)} frames, val {len(self.val)}; "
            f"batch {self.batch}x{self.dist.world} of {cfg.data.crop}²; {self.device}"
            f"{' AMP ' + str(self.amp_dtype).split('.')[-1] if self.amp else ''}; steps {self.step}->{total}"
        )
        self.say(self.notes["known"], "dim")
        stop = {"flag": False}
        old_handler = None
        if threading.current_thread() is threading.main_thread():
            def _handler(signum, frame):  # first Ctrl-C: finish the step, save, stop
                if stop["flag"]:
                    raise KeyboardInterrupt
                stop["flag"] = True
                self.say("interrupt: saving a checkpoint after this step (Ctrl-C again to abort now)", "yellow")
            try:
                old_handler = signal.signal(signal.SIGINT, _handler)
            except ValueError:
                old_handler = None
        t0, s0 = time.perf_counter(), self.step
        last: dict[str, float] = {}
        try:
            with progress_bar(total, "translator", enabled=self.show_progress and self.main, completed=self.step) as bar:
                while self.step < total:
                    try:
                        m = self.train_step()
                    except NonFiniteError as e:
                        self.rollback(e)
                        bar.set(self.step)
                        continue
                    self.step += 1
                    last = m
                    bar.advance(1, D=m["loss_d"], **({"G": m["loss_g"], "rec": m["rec"]} if "loss_g" in m else {}))
                    if self.csv is not None and (self.step % cfg.train.log_every == 0 or self.step == total or self.step == 1):
                        el = time.perf_counter() - t0
                        self.csv.log(self.step, **m, sec_per_it=el / max(1, self.step - s0))
                    if self.step % cfg.train.val_every == 0 or self.step == total:
                        v = self.validate()
                        if self.main and v:
                            self.val_csv.log(self.step, **v)
                            self._plots()
                    if self.step % cfg.train.ckpt_every == 0 and self.step < total:
                        self.save_checkpoint()
                    if self.on_step is not None:
                        self.on_step(self.step, m)
                    if self.dist.any(stop["flag"], self.device):
                        raise _StopRequested()
        except (_StopRequested, KeyboardInterrupt):
            self.save_checkpoint()
            self.say(f"stopped at step {self.step}; checkpoint saved. Rerun the same command to continue.", "yellow")
            raise KeyboardInterrupt from None
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        self.save_checkpoint()
        return self.finish(last, time.perf_counter() - t0, s0)

    def finish(self, last: dict, seconds: float, start_step: int) -> Path:
        from .checkpoint import state_dict_digest
        from .nets import registry

        digests = self.dist.gather((state_dict_digest(self.G), state_dict_digest(self.D)))
        if len(set(digests)) != 1:
            raise B2BError(f"replicas diverged across processes: {digests}")
        path = self.out / WEIGHTS_NAME
        if self.main:
            cfg = self.cfg
            import b2b_train

            provenance = {
                "blurry_dir": str(self.blurry_dir), "sharp_dir": str(self.sharp_dir),
                "n_blurry": len(self.B), "n_sharp": len(self.S), "n_val": len(self.val), "val_held_out": self.val_held_out,
                "steps": self.step, "steps_this_run": self.step - start_step, "seconds_this_run": round(seconds, 1),
                "known": self.notes.get("known"), "known_match": self.notes.get("known_match"),
                "vgg_weights": self.notes.get("vgg_weights"), "init": self.notes.get("init"),
                "rollbacks": self.notes.get("rollbacks", []), "lr_scale": self.lr_scale,
                "world_size": self.dist.world, "replica_digests": [list(d) for d in digests],
                "device": str(self.device), "amp": str(self.amp_dtype).split(".")[-1] if self.amp else "off",
                "final_losses": {k: round(float(v), 6) for k, v in last.items()},
                "torch": torch.__version__, "python": platform.python_version(),
                "b2b": getattr(b2b_train, "__version__", "unknown"),
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            registry.save_network(path, self.G, cfg.model.generator, cfg.model.generator_kwargs,
                                  config=to_dict(cfg), provenance=provenance, kind="translator")
            self._plots()
        self.dist.barrier()
        return path


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device) if obj.dim() > 0 else obj  # Adam's scalar 'step' stays on the CPU
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    return obj


def train_translator(
    blurry_dir: str | os.PathLike,
    sharp_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: str | os.PathLike | TranslatorConfig = "paper",
    overrides: Sequence[str] = (),
    known: str | None = None,
    iters: int | None = None,
    progress: bool = True,
    fresh: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> Path:
    """Train the blur->blur translator on a camera's blurry and sharp frames; returns the weights path.

    ``blurry_dir`` / ``sharp_dir``: folders of images and/or clips (unpaired). ``config``: preset
    name (``paper``, ``reference-code``, ``cpu-quick``), YAML path or config object; ``overrides``:
    ``KEY=VALUE`` strings; ``known``: known-blur preset or ``bke:PATH`` (default: the config's,
    ``kernels``); ``iters``: overrides ``schedule.iters``. Rerunning with the same ``out_dir``
    resumes from its newest checkpoint; ``fresh=True`` deletes the run's outputs first. Under
    ``torchrun`` every process trains its shard and rank 0 writes. ``on_step(step, metrics)`` is
    called after each step (tests, notebooks). Ctrl-C saves a checkpoint and raises
    KeyboardInterrupt.
    """
    cfg = load_translator_config(config, overrides, iters, known)
    trainer = TranslatorTrainer(cfg, blurry_dir, sharp_dir, out_dir, show_progress=progress, fresh=fresh, on_step=on_step)
    try:
        return trainer.run()
    finally:
        if getattr(trainer, "data", None) is not None:
            trainer.data.close()  # the prefetch thread, where there is one
        trainer.dist.close()
