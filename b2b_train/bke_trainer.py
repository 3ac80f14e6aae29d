"""Training the blur-kernel extractor on a paired blurry/sharp dataset (the published recipe).

Tran et al. (CVPR 2021), ``options/kernel_encoding/GOPRO/woVAE.yml``: random 256x256 crops with
flips and rotations, batch 16, Charbonnier loss between ``G(sharp, F(sharp, blurry))`` and
``blurry``, Adam (lr 1e-4, betas 0.9/0.99), cosine annealing with restarts (periods 50k, 100k,
150k, 150k, 150k; eta_min 1e-8), 600k iterations. Every size is a config field, so a CPU can train
a tiny model in a minute (preset ``cpu-tiny``).

    path = train_bke("GOPRO/train_blur", "GOPRO/train_sharp", "runs/bke", config="paper")

The result ``OUT/bke.safetensors`` records the paired folders it was trained on, so
``known: bke:OUT/bke.safetensors`` is a complete known-blur source. Training states go to
``OUT/checkpoints`` and a run started again on the same ``OUT`` resumes exactly.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .blur.bke_transfer import PairedImages, pair_folders
from .checks import check_at_least
from .config import dump_yaml, load_config, to_dict
from .errors import ConfigError
from .losses import charbonnier_loss

__all__ = ["BKEConfig", "train_bke", "cosine_restarts", "sample_batch"]


@dataclass
class BKEConfig:
    """BKE training recipe (presets: ``b2b_train/configs/bke/*.yaml``)."""

    KIND = "bke"

    net: str = "bke-kernelwizard"
    net_kwargs: dict = field(default_factory=dict)
    iters: int = 600_000
    batch_size: int = 16
    crop: int = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    periods: list[int] = field(default_factory=lambda: [50_000, 100_000, 150_000, 150_000, 150_000])
    restart_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    eta_min: float = 1e-8
    charbonnier_eps: float = 1e-3
    kl_weight: float = 0.0  # VAE variant only
    flip: bool = True
    rotate: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # CUDA only
    save_every: int = 5000
    log_every: int = 100
    keep: int = 2
    cache_images: int = 256

    def __post_init__(self):
        check_at_least({"iters": self.iters, "batch_size": self.batch_size}, 1)
        if self.crop < 256 or self.crop % 128:
            raise ValueError(f"crop must be a multiple of 128 and >= 256 (the BKE's code needs it), got {self.crop}")
        if not self.periods or min(self.periods) < 1:
            raise ValueError("periods must be a non-empty list of positive iteration counts")
        if len(self.restart_weights) < len(self.periods) - 1:
            raise ValueError("restart_weights needs one weight per restart (len(periods) - 1)")


def cosine_restarts(total: int, periods: list[int], weights: list[float], eta_min_ratio: float = 0.0):
    """LambdaLR factor: cosine annealing restarted at the end of each period (EDVR's ``CosineAnnealingLR_Restart``).

    ``periods`` are scaled to sum to ``total``; restart ``i`` starts at ``weights[i - 1]`` of the base LR.
    """
    scale = total / float(sum(periods))
    ends, acc = [], 0.0
    for p in periods:
        acc += p * scale
        ends.append(acc)

    def factor(step: int) -> float:
        start = 0.0
        for i, end in enumerate(ends):
            if step < end or i == len(ends) - 1:
                w = 1.0 if i == 0 else float(weights[i - 1])
                t = min(1.0, (step - start) / max(1e-9, end - start))
                return eta_min_ratio + (w - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
            start = end
        return eta_min_ratio

    return factor


def sample_batch(pairs: PairedImages, n: int, crop: int, generator: torch.Generator, flip=True, rotate=True):
    """``(sharp, blurry)`` ``(n, 3, crop, crop)``: random pairs, the same random crop/flip/rotation for both."""
    sharp_l, blur_l = [], []
    for _ in range(n):
        i = int(torch.randint(len(pairs), (1,), generator=generator))
        b, s = pairs.tensors(i)
        x = torch.stack([s, b])  # (2, 3, H, W)
        H, W = x.shape[-2:]
        if H < crop or W < crop:
            ph, pw = max(0, crop - H), max(0, crop - W)
            mode = "reflect" if ph < H and pw < W else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
            H, W = x.shape[-2:]
        y0 = int(torch.randint(H - crop + 1, (1,), generator=generator))
        x0 = int(torch.randint(W - crop + 1, (1,), generator=generator))
        x = x[..., y0 : y0 + crop, x0 : x0 + crop]
        r = torch.rand(3, generator=generator)
        if flip and r[0] < 0.5:
            x = x.flip(-1)
        if flip and r[1] < 0.5:
            x = x.flip(-2)
        if rotate and r[2] < 0.5:
            x = x.transpose(-1, -2)
        sharp_l.append(x[0])
        blur_l.append(x[1])
    return torch.stack(sharp_l), torch.stack(blur_l)


def _load_cfg(config, overrides) -> BKEConfig:
    if isinstance(config, BKEConfig):
        if overrides:
            from .config import apply_overrides, from_dict

            return from_dict(BKEConfig, apply_overrides(to_dict(config), overrides))
        return config
    return load_config(BKEConfig, config, overrides, kind="bke")


def train_bke(
    blurry_dir: str | os.PathLike,
    sharp_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: str | os.PathLike | BKEConfig = "paper",
    overrides=(),
    iters: int | None = None,
    progress: bool = True,
    log=None,
    stop_at: int | None = None,
) -> Path:
    """Train (or resume) the BKE on paired folders; returns ``OUT/bke.safetensors``.

    ``iters`` overrides the config's length (the restart periods are scaled to it). ``stop_at``
    ends the run early after that step with a checkpoint (and returns its path); running again
    resumes exactly. ``log`` is a ``print``-like callable for status lines (default: none).
    """
    from . import trainutil
    from .nets import registry

    cfg = _load_cfg(config, overrides)
    if iters is not None:
        if iters < 1:
            raise ConfigError("iters must be >= 1")
        cfg.iters = int(iters)
    say = log or (lambda *a, **k: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = PairedImages(pair_folders(blurry_dir, sharp_dir), cache=cfg.cache_images)
    device = trainutil.pick_device(cfg.device)
    registry.spec(cfg.net)  # fail early on an unknown name
    if registry.spec(cfg.net).family != "bke":
        raise ConfigError(f"net {cfg.net!r} is not a blur-kernel extractor")
    trainutil.set_seed(cfg.seed)
    net = registry.build(cfg.net, **cfg.net_kwargs).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, cosine_restarts(cfg.iters, cfg.periods, cfg.restart_weights, cfg.eta_min / cfg.lr)
    )
    use_amp = bool(cfg.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpts = trainutil.CheckpointManager(out / "checkpoints", keep=cfg.keep)
    csv = trainutil.CsvLogger(out / "log.csv")
    step = 0
    resumed = ckpts.latest(warn=say)
    if resumed is not None:
        state, meta = resumed
        if meta.get("net") != cfg.net or meta.get("net_kwargs", {}) != dict(cfg.net_kwargs):
            raise ConfigError(
                f"{out} holds a checkpoint of {meta.get('net')} {meta.get('net_kwargs', {})}, not {cfg.net} "
                f"{dict(cfg.net_kwargs)}; use another --out or the same config"
            )
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if "scaler" in state and use_amp:
            scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"].to(torch.uint8))
        trainutil.set_rng_state(state["rng"])
        step = int(state["step"])
        csv.truncate_after(step)
        say(f"resumed from step {step}")
    meta_common = {
        "net": cfg.net,
        "net_kwargs": dict(cfg.net_kwargs),
        "config": to_dict(cfg),
        "pairs_blurry": str(Path(blurry_dir).resolve()),
        "pairs_sharp": str(Path(sharp_dir).resolve()),
        "pairs": len(pairs),
    }
    (out / "config.yaml").write_text(dump_yaml(cfg))

    def save(step_now: int):
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "rng": trainutil.rng_state(),
        }
        if use_amp:
            state["scaler"] = scaler.state_dict()
        ckpts.save(step_now, state, meta_common)

    net.train()
    t0 = time.time()
    losses: list[float] = []
    end = cfg.iters if stop_at is None else max(step, min(cfg.iters, int(stop_at)))
    with trainutil.progress(cfg.iters, "BKE", enabled=progress, completed=step) as bar:
        while step < end:
            sharp, blurry = sample_batch(pairs, cfg.batch_size, cfg.crop, gen, cfg.flip, cfg.rotate)
            sharp, blurry = sharp.to(device, non_blocking=True), blurry.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                if net.use_vae:
                    mu, logvar = net.encode_distribution(sharp, blurry)
                    code = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                    kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
                else:
                    code = net.encode(sharp, blurry)
                    kl = torch.zeros((), device=device)
                recon = net.adapt(sharp, code)
            loss = charbonnier_loss(recon, blurry, cfg.charbonnier_eps) + cfg.kl_weight * kl.float()
            trainutil.check_finite(loss=loss)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            lv = float(loss.detach())
            losses.append(lv)
            bar.advance(1, loss=lv, lr=sched.get_last_lr()[0])
            if step % cfg.log_every == 0 or step == cfg.iters:
                csv.log(step, loss=sum(losses) / len(losses), lr=sched.get_last_lr()[0])
                losses = []
            if step % cfg.save_every == 0 or step == end:
                save(step)
    if step < cfg.iters:
        say(f"stopped at step {step} of {cfg.iters}; run again to resume")
        return ckpts.path_for(step)
    final = out / "bke.safetensors"
    net.eval()
    registry.save_network(final, net, cfg.net, cfg.net_kwargs, **{k: v for k, v in meta_common.items() if k not in ("net", "net_kwargs")}, iters=step)
    trainutil.plot_losses(out / "log.csv", out / "loss.png", title="BKE training")
    say(f"trained {step} iterations in {time.time() - t0:.0f} s -> {final}")
    return final
