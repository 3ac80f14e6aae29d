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

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .deblur_trainer import CropSampler, SharpSet
from .errors import ConfigError, DataError

__all__ = ["ProbeConfig", "auc", "ProbeCrops", "separation", "choose_known", "parse_extents", "extent_candidates",
           "known_yaml"]


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


class ProbeCrops(CropSampler):
    """Random ``crop`` px crops (with flips, no rotation: blur may have a direction) of uint8 HxWx3
    frames, drawn from their own seeded generator, optionally re-blurred with ``known`` (a
    :class:`~b2b_train.blur.KnownBlur`, drawing from the same generator): K made from S.
    """

    rotate = False

    def __init__(self, frames: Sequence[np.ndarray], crop: int, known=None, seed: int = 0):
        if not frames:
            raise DataError("the probe needs frames of both sets")
        small = [f.shape[:2] for f in frames if min(f.shape[:2]) < crop]
        if small:
            raise DataError(f"{len(small)} frame(s) are smaller than the probe's {crop} px crop (e.g. {small[0]})")
        super().__init__(SharpSet([np.ascontiguousarray(f) for f in frames], [""] * len(frames)), crop, seed)
        self.known = known

    def __call__(self, n: int) -> torch.Tensor:
        x = self.batch(n)
        return self.known(x, self.generator) if self.known is not None else x


def _build_d(cfg: ProbeConfig) -> torch.nn.Module:
    from .nets import registry

    return registry.build(cfg.discriminator, **(cfg.discriminator_kwargs or {}))


def _score(d, x: torch.Tensor) -> torch.Tensor:
    return d(x).float().reshape(x.shape[0], -1).mean(1)


def separation(first: ProbeCrops, second: ProbeCrops, cfg: ProbeConfig | None = None,
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
    # each probe draws the same crops whatever ran before it; evaluation reseeds to crops never trained on
    first.generator.manual_seed(cfg.seed)
    second.generator.manual_seed(cfg.seed + 1)
    tail_loss, tail_a, tail_b = [], [], []
    for step in range(cfg.steps):
        a, b = first(cfg.batch), second(cfg.batch)
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
    first.generator.manual_seed(cfg.seed + 7919)
    second.generator.manual_seed(cfg.seed + 7920)
    with torch.no_grad():
        sa = torch.cat([_score(d, first(cfg.batch)) for _ in range(cfg.eval_batches)])
        sb = torch.cat([_score(d, second(cfg.batch)) for _ in range(cfg.eval_batches)])
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
    from .blur.match import MAX_FRAMES, evenly, frame_degree, known_degree

    cfg = cfg or ProbeConfig()
    say = log or (lambda _s: None)
    b_s = ProbeCrops(blurry, cfg.crop)
    s_s = ProbeCrops(sharp, cfg.crop)
    sub = lambda fr: [fr[i] for i in evenly(len(fr), MAX_FRAMES)]  # noqa: E731
    ds = float(np.median([frame_degree(x) for x in sub(sharp)]))
    target = float(np.median([frame_degree(x) for x in sub(blurry)])) / max(ds, 1e-9)
    report = {"target": target, "candidates": {}, "probe": dataclasses.asdict(cfg)}
    report["auc_b_vs_s"] = separation(s_s, b_s, cfg)["auc"]
    say(f"probe: D tells the camera's blurry frames from its sharp ones with AUC {report['auc_b_vs_s']:.2f}")
    for name, known in candidates.items():
        k_s = ProbeCrops(sharp, cfg.crop, known=known)
        ratio = known_degree(known, sub(sharp), cfg.seed) / max(ds, 1e-9)
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
    report.update(chosen=chosen, note=note)
    return report


def parse_extents(text: str) -> list[tuple[float, float]]:
    """``"3-7,3-11"`` -> ``[(3.0, 7.0), (3.0, 11.0)]`` (a single number is a range of one)."""
    out = []
    for item in text.split(","):
        lo, _, hi = item.strip().partition("-")
        try:
            out.append((float(lo), float(hi or lo)))
        except ValueError:
            raise ConfigError(f"{item!r} is not an extent range like 3-11") from None
    return out


def extent_candidates(known: str, extents: Sequence[tuple[float, float]], mix: bool = False) -> dict:
    """Candidate known blurs: the ``known`` preset at each kernel extent range, as whole-frame blur
    (``mix=False``: what the strength of a camera's blur is compared with) or with the preset's
    uniform/varying/local mix. Keys name the range (``"3-11 px"``)."""
    from .blur import make_known_blur

    spatial = [] if mix else ["spatial.p_uniform=1", "spatial.p_varying=0", "spatial.p_local=0", "spatial.p_sharp=0"]
    return {f"{lo:g}-{hi:g} px" + (" (mix)" if mix else ""):
            make_known_blur(known, overrides=[f"kernels.extent=[{lo},{hi}]", *spatial]) for lo, hi in extents}


def known_yaml(known: str, extent: Sequence[float]) -> str:
    """The ``known`` preset with its kernel extent set to ``extent``, as a known-blur YAML (the
    probe's choice handed to the translator)."""
    from .blur.synth import make_known_blur
    from .config import dump_yaml

    cfg = make_known_blur(known, overrides=[f"kernels.extent=[{float(extent[0])}, {float(extent[1])}]"]).cfg
    return dump_yaml(cfg)
