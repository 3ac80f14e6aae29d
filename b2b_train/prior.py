"""The translator prior: a translator trained once, with ground truth, on many simulated cameras.

A camera's translator learns from unpaired B and S alone, and on a CPU budget that adversarial
signal is too weak to move G far from the identity (BENCHMARKS.md ``quality``). The prior gives it
a starting point that already maps the blur of *some* camera into the deblurrer's known domain:
sharp clips are turned into blurry ones by :func:`b2b_train.data.exposure.simulate_camera` with a
randomly drawn camera per clip (exposure length, drift, response curve, tone curve, noise, JPEG),
and G is trained so that the frozen known-blur deblurrer restores ``G(y)`` to the sharp frame::

    loss = PSNR-loss(deblurrer(G(y)), sharp) + lambda_content * low-pass L1(G(y), y)

The second term keeps G a blur->blur map (content and colour stay; detail may change), so the
deblurrer still does the deblurring. ``calibrate`` then fine-tunes from this file
(``model.init``) on the user's own camera instead of starting from the identity.

The prior belongs to the deblurrer it was trained in front of: its file records that deblurrer's
content digest, and :func:`prior_mismatch` says when another one is in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .checks import check_at_least
from .config import to_dict
from .errors import ConfigError, DataError
from .hashing import file_sha256

__all__ = [
    "CameraRanges",
    "PriorConfig",
    "PRIOR_NAME",
    "random_camera",
    "simulate_pairs",
    "train_prior",
    "prior_mismatch",
]

PRIOR_NAME = "translator-prior.safetensors"


@dataclass
class CameraRanges:
    """The simulated cameras: each clip-camera draws every value uniformly from its range.

    ``shake_px`` is per 320 px of frame side (scaled with the frame). The ranges span ordinary
    webcams and phone cameras, from a short exposure with a clean sensor to three frame intervals
    of drift under dim-light noise and strong JPEG.
    """

    exposure: tuple[float, float] = (0.5, 3.0)
    shake_px: tuple[float, float] = (0.0, 3.0)
    gamma: tuple[float, float] = (1.6, 2.6)
    tone: tuple[float, float] = (0.0, 0.5)
    shot_noise: tuple[float, float] = (0.0, 8e-4)
    read_noise: tuple[float, float] = (0.0, 0.012)
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (50, 95)


@dataclass
class PriorConfig:
    generator: str = "mimo-unet-lite"
    generator_kwargs: dict = field(default_factory=lambda: {"zero_init_output": True})
    deblurrer: str | None = None    # the frozen deblurrer's weights (None: the shipped one)
    side: int = 320                 # frames are shrunk so their longer side is at most this
    cameras_per_clip: int = 3
    frame_step: int = 2             # every n-th frame of a clip becomes a pair
    max_frames: int = 150           # frames read per clip (before frame_step)
    crop: int = 128
    batch: int = 8
    iters: int = 4000
    lr: float = 2e-4
    lambda_content: float = 0.1
    lowpass_sigma: float = 2.0
    val_pairs: int = 12
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    log_every: int = 25
    val_every: int = 500
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    cameras: CameraRanges = field(default_factory=CameraRanges)
    # what G(y) is scored against: ``still``, the camera's own motionless noise-free frame (its colours
    # kept, so G learns blur and noise, not the camera's tone), or ``reference``, the source frame
    target: str = "still"

    def __post_init__(self):
        if isinstance(self.cameras, dict):
            self.cameras = CameraRanges(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.cameras.items()})
        if self.crop % 8 or self.crop < 32:
            raise ConfigError(f"crop must be a multiple of 8 and >= 32, got {self.crop}")
        check_at_least({"cameras_per_clip": self.cameras_per_clip, "frame_step": self.frame_step,
                        "iters": self.iters, "batch": self.batch}, 1, ConfigError)
        check_at_least({"lambda_content": self.lambda_content}, 0, ConfigError)
        if self.target not in ("still", "reference"):
            raise ConfigError(f"target must be still or reference, got {self.target!r}")


def random_camera(rng: np.random.Generator, r: CameraRanges, side: int, seed: int):
    """One simulated camera drawn from ``r`` (a :class:`~b2b_train.data.exposure.CameraSim`)."""
    from .data.exposure import CameraSim

    u = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
    jpeg = int(rng.integers(r.jpeg_quality[0], r.jpeg_quality[1] + 1)) if rng.random() < r.p_jpeg else None
    return CameraSim(exposure=u(r.exposure), shake_px=u(r.shake_px) * side / 320.0, crf="gamma", gamma=u(r.gamma),
                     tone=u(r.tone), shot_noise=u(r.shot_noise), read_noise=u(r.read_noise), jpeg_quality=jpeg,
                     seed=int(seed))


def _read_clip(path: Path, side: int, max_frames: int) -> list[np.ndarray]:
    import cv2

    from .data.io import iter_video_frames

    frames = []
    for _i, _t, img in iter_video_frames(path):
        h, w = img.shape[:2]
        s = side / max(h, w)
        if s < 1:
            img = cv2.resize(img, (int(round(w * s)) // 8 * 8, int(round(h * s)) // 8 * 8), interpolation=cv2.INTER_AREA)
        else:
            img = np.ascontiguousarray(img[: h // 8 * 8, : w // 8 * 8])
        frames.append(img)
        if len(frames) >= max_frames:
            break
    return frames


def simulate_pairs(clips: Sequence[str | os.PathLike], cfg: PriorConfig, cache: Path,
                   say: Callable[[str], None] = print, show_progress: bool = True) -> tuple[list, list, list[dict]]:
    """``(blurry, sharp, cameras)``: every ``frame_step``-th frame of each clip through
    ``cameras_per_clip`` random cameras (uint8 HxWx3 lists, and one record per clip-camera).

    Each clip-camera is cached under ``cache`` (``.npz``, no pickles) keyed by the clip's path,
    size and the camera's parameters, so a resumed or repeated run does not simulate again."""
    from dataclasses import asdict

    from .data.exposure import clip_flows, simulate_camera
    from .trainutil import progress

    rng = np.random.default_rng(cfg.seed)
    blurry, sharp, records = [], [], []
    cache.mkdir(parents=True, exist_ok=True)
    with progress(len(clips) * cfg.cameras_per_clip, "simulating cameras", enabled=show_progress) as bar:
        for ci, clip in enumerate(clips):
            clip = Path(clip)
            if not clip.is_file():
                raise DataError(f"clip not found: {clip}")
            cams = [random_camera(rng, cfg.cameras, cfg.side, cfg.seed * 1000 + ci * 10 + k) for k in range(cfg.cameras_per_clip)]
            frames = flows = None
            for k, cam in enumerate(cams):
                key = json.dumps({"clip": str(clip.resolve()), "size": clip.stat().st_size, "side": cfg.side,
                                  "max_frames": cfg.max_frames, "step": cfg.frame_step, "cam": asdict(cam),
                                  "target": cfg.target}, sort_keys=True)
                f = cache / f"{clip.stem}_{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
                if f.is_file():
                    with np.load(f, allow_pickle=False) as z:
                        b, s = z["blurry"], z["sharp"]
                else:
                    if frames is None:
                        frames = _read_clip(clip, cfg.side, cfg.max_frames)
                        if len(frames) < 2:
                            raise DataError(f"{clip}: fewer than 2 readable frames")
                        flows = clip_flows(frames)
                    sim = simulate_camera(frames, cam, flows=flows)
                    keep = slice(None, None, cfg.frame_step)
                    b, s = sim.blurry[keep], (sim.still if cfg.target == "still" else sim.reference)[keep]
                    tmp = f.with_suffix(".tmp.npz")
                    np.savez(tmp, blurry=b, sharp=s)
                    os.replace(tmp, f)
                blurry += list(b)
                sharp += list(s)
                records.append({"clip": clip.name, "frames": int(len(b)), **asdict(cam)})
                bar.advance(1)
    say(f"{len(blurry)} simulated pairs from {len(clips)} clips x {cfg.cameras_per_clip} cameras")
    return blurry, sharp, records


def _file_digest(path: Path) -> str:
    return file_sha256(path)[:16]


def prior_mismatch(prior_meta: dict, deblurrer_path: str | os.PathLike) -> str | None:
    """A warning when ``deblurrer_path`` is not the deblurrer the prior was trained in front of."""
    want = (prior_meta.get("prior") or {}).get("deblurrer_digest")
    if not want:
        return None
    have = _file_digest(Path(deblurrer_path))
    if have != want:
        return (f"the translator prior was trained in front of another deblurrer "
                f"({(prior_meta.get('prior') or {}).get('deblurrer')}); it may help this one less")
    return None


def _val_split(n: int, k: int) -> tuple[list[int], list[int]]:
    k = max(1, min(k, n // 4))
    val = sorted(set(np.linspace(0, n - 1, k + 2)[1:-1].round().astype(int).tolist()))
    s = set(val)
    return [i for i in range(n) if i not in s], val


def train_prior(cfg: PriorConfig, clips: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                show_progress: bool = True, stop_at: int | None = None, log: Callable[[str], None] | None = print) -> Path:
    """Train the translator prior on ``clips`` (sharp videos); resumes from ``out_dir``'s newest checkpoint.

    Returns ``out_dir/translator-prior.safetensors`` (a translator file: ``b2b-train translator
    --set model.init=FILE`` starts from it), or the checkpoint when stopped at ``stop_at``."""
    from .checkpoint import state_dict_digest
    from .losses import psnr_loss
    from .distill import PairSampler
    from .losses import lowpass_l1
    from .metrics import psnr
    from .nets import registry
    from .nets.layers import pad_to_multiple
    from .shipped import default_deblurrer_path, resolve_deblurrer
    from .nets.translator_io import FullResolution
    from .trainutil import (adamw_cosine, open_run, plot_losses, resume_or_start,
                            run_supervised_steps, set_seed, train_state)

    say = log or (lambda _s: None)
    if not clips:
        raise DataError("train_prior needs at least one sharp clip")
    cfg_dict = to_dict(cfg)
    out, device, ckpts, latest = open_run(out_dir, cfg_dict, cfg.keep_checkpoints, cfg.device, cfg.threads,
                                          warn=say, what="prior run")

    set_seed(cfg.seed)
    deb_path = Path(cfg.deblurrer) if cfg.deblurrer else default_deblurrer_path(device)
    deb = resolve_deblurrer(str(deb_path)).to(device).eval().requires_grad_(False)
    blurry, sharp, cameras = simulate_pairs(clips, cfg, out / "pairs", say=say, show_progress=show_progress)
    train_idx, val_idx = _val_split(len(blurry), cfg.val_pairs)
    sampler = PairSampler([blurry[i] for i in train_idx], [sharp[i] for i in train_idx], cfg.crop, cfg.seed)
    val = [(torch.from_numpy(blurry[i]).permute(2, 0, 1)[None].float().div(255).to(device),
            torch.from_numpy(sharp[i]).permute(2, 0, 1)[None].float().div(255).to(device)) for i in val_idx]

    G = registry.build(cfg.generator, **cfg.generator_kwargs).to(device).train()
    multiple = registry.spec(cfg.generator).multiple
    opt, sched = adamw_cosine(G.parameters(), cfg.lr, (0.9, 0.99), 0.0, cfg.iters, 0, 0.0)
    step, logger = resume_or_start(out, latest, cfg, G, opt, sched, sampler, say=say)

    full = FullResolution(G, multiple=multiple)  # G's full-resolution output only

    def loss_step() -> torch.Tensor:
        y, s = sampler.batch(cfg.batch)
        y, s = y.to(device), s.to(device)
        g = full(y)
        loss = psnr_loss(deb(g), s)
        if cfg.lambda_content > 0:
            loss = loss + cfg.lambda_content * 100.0 * lowpass_l1(g, y, cfg.lowpass_sigma)
        return loss

    @torch.no_grad()
    def validate(s: int) -> dict:
        G.eval()
        rows = {"deblurred": [], "prior": [], "translated_vs_input": []}
        grid = []
        for y, gt in val:
            h, w = y.shape[-2:]
            g = full(pad_to_multiple(y, multiple, "replicate"))[..., :h, :w].clamp(0, 1)
            d0, d1 = deb(y).clamp(0, 1), deb(g).clamp(0, 1)
            rows["deblurred"].append(psnr(d0, gt))
            rows["prior"].append(psnr(d1, gt))
            rows["translated_vs_input"].append(min(psnr(g, y), 99.0))
            if len(grid) < 4:
                grid.append([y[0].cpu(), g[0].cpu(), d0[0].cpu(), d1[0].cpu(), gt[0].cpu()])
        G.train()
        res = {k: float(np.mean(v)) for k, v in rows.items()}
        logger.log(s, val_deblurred=res["deblurred"], val_prior=res["prior"], val_g_vs_y=res["translated_vs_input"])
        from .data.io import save_grid

        save_grid(out / "samples" / f"step_{s:08d}.png", grid,
                  labels=["simulated blurry", "G(y)", "deblurred y", "deblurred G(y)", "sharp"], max_cell=256)
        plot_losses(out / "log.csv", out / "loss.png", title="translator prior")
        say(f"step {s}: deblurrer(G(y)) {res['prior']:.2f} dB vs deblurrer(y) {res['deblurred']:.2f} dB "
            f"(G(y) vs y {res['translated_vs_input']:.1f} dB)")
        return res

    def save_ckpt(s: int) -> Path:
        return ckpts.save(s, train_state(G, opt, sched, sampler), {"config": cfg_dict, "kind": "prior-train-state"})

    t0 = time.time()
    step = run_supervised_steps(loss_step, G, opt, sched, step=step, iters=cfg.iters, stop_at=stop_at, logger=logger,
                                log_every=cfg.log_every, val_every=cfg.val_every, ckpt_every=cfg.ckpt_every,
                                validate=validate, save_ckpt=save_ckpt, grad_clip=1.0, description="translator prior",
                                show_progress=show_progress, say=say, resume_hint="the same --out")
    if step < cfg.iters:
        return ckpts.path_for(step)
    res = validate(step)
    final = out / PRIOR_NAME
    registry.save_network(final, G.eval(), cfg.generator, cfg.generator_kwargs, kind="translator", config=cfg_dict,
                          prior={"deblurrer": deb_path.name, "deblurrer_digest": _file_digest(deb_path),
                                 "clips": [Path(c).name for c in clips], "pairs": len(blurry), "cameras": cameras,
                                 "steps": step, "validation": {k: round(v, 3) for k, v in res.items()},
                                 "weights_digest": state_dict_digest(G),
                                 "train_seconds_last_session": round(time.time() - t0, 1)})
    say(f"saved {final}")
    return final
