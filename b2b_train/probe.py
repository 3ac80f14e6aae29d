"""Can a discriminator tell the camera's blur from the known blur? Measure it before training.

The translator only learns when its discriminator separates B (the camera's blurry frames) from K
(sharp frames re-blurred with the known blur); when it cannot, the adversarial gradient points
nowhere and the content loss lets G drift. :func:`separation` trains a discriminator alone (G is
the identity) for a few hundred steps on crops of two sets and reports the AUC of its per-crop
score on fresh crops (0.5: indistinguishable, 1: always told apart).

:func:`choose_known` uses it to pick the known domain: among candidate known blurs it keeps those
at least as blurry as B (blur degree of K relative to S no higher than B's, as
:mod:`b2b_train.blur.match` measures it) and, of those, the one D confuses most with B.

    report = choose_known(blurry_frames, sharp_frames, {"3-7": kb7, "3-11": kb11})
    report["chosen"], report["candidates"]["3-11"]["auc"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

__all__ = ["ProbeConfig", "auc", "CropSampler", "separation", "choose_known"]

Sampler = Callable[[torch.Generator], torch.Tensor]


@dataclass
class ProbeConfig:
    """D alone against two sets: ``steps`` of ``batch`` crops of ``crop`` px each, Adam at ``lr``;
    ``r1`` weight of the zero-centred R1 penalty on the first set; AUC on ``eval_batches`` fresh batches."""

    steps: int = 300
    batch: int = 16
    crop: int = 96
    lr: float = 2e-4
    r1: float = 0.0
    eval_batches: int = 8
    discriminator: str = "highpass"
    discriminator_kwargs: dict | None = None
    seed: int = 0


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Area under the ROC curve of scores ``pos`` (should be high) against ``neg`` (Mann-Whitney U; ties count 1/2)."""
    p, n = pos.flatten().double(), neg.flatten().double()
    if p.numel() == 0 or n.numel() == 0:
        raise ValueError("AUC needs scores of both sets")
    greater = (p[:, None] > n[None, :]).double().sum()
    ties = (p[:, None] == n[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (p.numel() * n.numel()))


class CropSampler:
    """Random ``crop`` px crops (with flips) of uint8 HxWx3 frames, optionally re-blurred.

    ``known``: a callable ``(batch, generator) -> batch`` applied to the crops (a
    :class:`~b2b_train.blur.KnownBlur`), making K from S.
    """

    def __init__(self, frames: Sequence[np.ndarray], crop: int, known=None):
        small = [f.shape[:2] for f in frames if min(f.shape[:2]) < crop]
        if not frames:
            raise DataError("the probe needs frames of both sets")
        if small:
            raise DataError(f"{len(small)} frame(s) are smaller than the probe's {crop} px crop (e.g. {small[0]})")
        self.frames = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1) for f in frames]
        self.crop, self.known = int(crop), known

    def __call__(self, g: torch.Generator, n: int) -> torch.Tensor:
        c = self.crop
        out = []
        for i in torch.randint(len(self.frames), (n,), generator=g).tolist():
            f = self.frames[i]
            h, w = f.shape[1:]
            t = int(torch.randint(h - c + 1, (1,), generator=g))
            left = int(torch.randint(w - c + 1, (1,), generator=g))
            x = f[:, t : t + c, left : left + c].float() / 255
            if bool(torch.rand(1, generator=g) < 0.5):
                x = x.flip(-1)
            out.append(x)
        x = torch.stack(out)
        return self.known(x, g) if self.known is not None else x


def _build_d(cfg: ProbeConfig) -> torch.nn.Module:
    from .nets import registry

    return registry.build(cfg.discriminator, **(cfg.discriminator_kwargs or {}))


def _score(d, x: torch.Tensor) -> torch.Tensor:
    return d(x).float().reshape(x.shape[0], -1).mean(1)


def separation(first: CropSampler, second: CropSampler, cfg: ProbeConfig | None = None,
               progress: Callable[[int, float], None] | None = None) -> dict:
    """Train D to score ``first`` crops high and ``second`` crops low; AUC on fresh crops.

    Returns ``auc`` (on fresh crops), ``train_auc`` (on the last training batches), ``loss``
    (the last steps' mean D loss; 2 ln 2 = 1.386 means D learned nothing) and ``steps``.
    """
    from . import losses as L

    cfg = cfg or ProbeConfig()
    torch.manual_seed(cfg.seed)
    d = _build_d(cfg)
    opt = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(cfg.seed)
    tail_loss, tail_a, tail_b = [], [], []
    for step in range(cfg.steps):
        a, b = first(g, cfg.batch), second(g, cfg.batch)
        la, lb = d(a), d(b)
        loss = F.softplus(-la).mean() + F.softplus(lb).mean()
        if cfg.r1 > 0:
            loss = loss + 0.5 * cfg.r1 * L.r1_penalty(d, a)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= cfg.steps - max(1, cfg.steps // 10):
            tail_loss.append(float(loss.detach()))
            tail_a.append(la.detach().reshape(cfg.batch, -1).mean(1))
            tail_b.append(lb.detach().reshape(cfg.batch, -1).mean(1))
        if progress is not None:
            progress(step + 1, float(loss.detach()))
    d.eval()
    ge = torch.Generator().manual_seed(cfg.seed + 7919)  # fresh crops, never trained on
    with torch.no_grad():
        sa = torch.cat([_score(d, first(ge, cfg.batch)) for _ in range(cfg.eval_batches)])
        sb = torch.cat([_score(d, second(ge, cfg.batch)) for _ in range(cfg.eval_batches)])
    return {
        "auc": auc(sa, sb),
        "train_auc": auc(torch.cat(tail_a), torch.cat(tail_b)) if tail_a else float("nan"),
        "loss": float(np.mean(tail_loss)) if tail_loss else float("nan"),
        "steps": cfg.steps,
    }


def choose_known(
    blurry: Sequence[np.ndarray],
    sharp: Sequence[np.ndarray],
    candidates: Mapping[str, object],
    cfg: ProbeConfig | None = None,
    tolerance: float = 0.15,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Probe every candidate known blur against the camera's blurry frames and pick one.

    ``blurry``/``sharp``: uint8 frames of one camera (B and S). ``candidates``: name -> known blur
    callable. For each candidate: ``auc`` of D telling K from B (lower = nearer to B), ``auc_sharp`` of
    D telling K from S (how visible the blur is), and ``degree_ratio`` (median blur degree of K over
    that of S; B's own is ``target``). Chosen: the lowest ``auc`` among candidates with
    ``degree_ratio <= target * (1 + tolerance)`` (at least as blurry as B); when none is, the blurriest.
    Also ``auc_b_vs_s``: how visible the camera's own blur is.
    """
    from .blur.match import MAX_FRAMES, evenly, frame_degree

    cfg = cfg or ProbeConfig()
    say = log or (lambda _s: None)
    b_s = CropSampler(blurry, cfg.crop)
    s_s = CropSampler(sharp, cfg.crop)
    sub = lambda fr: [fr[i] for i in evenly(len(fr), MAX_FRAMES)]  # noqa: E731
    ds = float(np.median([frame_degree(x) for x in sub(sharp)]))
    target = float(np.median([frame_degree(x) for x in sub(blurry)])) / max(ds, 1e-9)
    report = {"target": target, "candidates": {}, "probe": {k: v for k, v in vars(cfg).items()}}
    report["auc_b_vs_s"] = separation(s_s, b_s, cfg)["auc"]
    say(f"probe: D tells the camera's blurry frames from its sharp ones with AUC {report['auc_b_vs_s']:.2f}")
    for name, known in candidates.items():
        k_s = CropSampler(sharp, cfg.crop, known=known)
        g = torch.Generator().manual_seed(cfg.seed)
        dk = []
        for x in sub(sharp):
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255
            y = known(t, g)[0]
            dk.append(frame_degree((y.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)))
        ratio = float(np.median(dk)) / max(ds, 1e-9)
        vs_b = separation(k_s, b_s, cfg)
        vs_s = separation(s_s, k_s, cfg)
        report["candidates"][name] = {"auc": vs_b["auc"], "loss": vs_b["loss"], "auc_sharp": vs_s["auc"],
                                      "degree_ratio": ratio}
        say(f"probe: {name}: K vs B AUC {vs_b['auc']:.2f}, K vs S AUC {vs_s['auc']:.2f}, "
            f"blur degree K/S {ratio:.2f} (B/S {target:.2f})")
    cands = report["candidates"]
    blurry_enough = [n for n, c in cands.items() if c["degree_ratio"] <= target * (1 + tolerance)]
    if blurry_enough:
        chosen = min(blurry_enough, key=lambda n: cands[n]["auc"])
        note = ""
    else:
        chosen = min(cands, key=lambda n: cands[n]["degree_ratio"])
        note = (f"every candidate is milder than the camera's blur (B/S degree {target:.2f}); "
                f"{chosen} is the blurriest")
    if report["auc_b_vs_s"] < 0.6:
        note = (note + "; " if note else "") + (
            f"the blurry and sharp clips are hard to tell apart (AUC {report['auc_b_vs_s']:.2f}): "
            "record blurrier clips (faster motion) or sharper ones (slower motion, more light)")
    report.update(chosen=chosen, note=note, separable=not math.isnan(cands[chosen]["auc"]))
    return report
