"""The deblurrer's test battery: held-apart images at the frame sizes b2b runs at, one row per question.

Every row blurs (or degrades) the same held-apart photos, fitted (scaled and centre-cropped) to a
frame size, with a fixed seed, and scores input and output against the clean image (paper protocol
PSNR/SSIM, 8-bit RGB). Rows:

* ``own``: the deblurrer's own known domain (its training config), as it was trained;
* ``shake a-b``: whole-frame camera shake of a given extent range, with the light sensor noise of the
  default domain: where the deblurrer works and where it stops;
* ``KAIR 8-11`` / ``k_large``: measured kernels it never saw (25 px; 67-70 px, larger than any
  training blur: it must degrade gracefully, not ring), noise-free, at their measured pixel size;
* ``sharp``: no blur, light sensor noise (a sharp webcam frame must come back as it is: gain
  >= -0.2 dB); ``noisy``: no blur, strong sensor noise; ``jpeg``: no blur, JPEG quality 40-60;
* ``gray``: grayscale photos with mid shake; ``dark``: a quarter of the light, mid shake, noise.

Used by ``benchmarks/deblurrer.py`` (the shipped files) and ``benchmarks/domain_study.py``.
"""

from __future__ import annotations

import functools
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from b2b_train.blur import convolve, load_kernels, make_known_blur
from b2b_train.data.io import read_image, to_tensor
from b2b_train.metrics import psnr, ssim

ROOT = Path(__file__).resolve().parent.parent

# The images set apart from the shipped deblurrers' training (b2b_train/weights/README.md).
HELD_APART = [
    "images/kodak/kodim03.png",
    "images/kodak/kodim07.png",
    "images/kodak/kodim12.png",
    "images/kodak/kodim15.png",
    "images/skimage/chelsea.png",
    "images/sklearn/flower.jpg",
]
SIZES = ((320, 240), (640, 480))
SEED = 2024
# light sensor noise of the default domain (its upper bounds), for rows that are not "noisy"
LIGHT_NOISE = ["noise.p=1", "noise.shot=[0.0002,0.0002]", "noise.read=[0.003,0.003]", "noise.match=false"]


def data_root() -> Path:
    env = os.environ.get("B2B_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def fit(img: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """Scale ``(1,3,H,W)`` so it covers ``w x h`` (antialiased) and crop the centre."""
    _, _, ih, iw = img.shape
    s = max(w / iw, h / ih)
    x = F.interpolate(img, size=(max(h, round(ih * s)), max(w, round(iw * s))), mode="bilinear",
                      antialias=True, align_corners=False)
    t, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    return torch.round(x[:, :, t : t + h, left : left + w].clamp(0, 1) * 255) / 255


def held_apart_images(root: Path | None = None) -> list[tuple[str, torch.Tensor]]:
    root = root or data_root()
    return [(Path(p).name, to_tensor(read_image(root / p))[None]) for p in HELD_APART]


def _uniform(extent: tuple[float, float], extra=()):
    return make_known_blur("kernels-uniform", overrides=[f"kernels.extent=[{extent[0]},{extent[1]}]", *LIGHT_NOISE, *extra])


def _no_blur(extra):
    return make_known_blur("kernels-uniform", overrides=["spatial.p_uniform=0", "spatial.p_sharp=1", *extra])


@functools.lru_cache(maxsize=1)
def _crf():
    """The known domains' camera response (gamma 2.2), read from the preset once."""
    return make_known_blur("kernels-uniform").crf


def _with_kernel(k: torch.Tensor):
    crf = _crf()

    def blur(x: torch.Tensor, g=None) -> torch.Tensor:
        y = convolve(crf.to_linear(x), k[None].to(x), "reflect", "auto")
        return torch.round(crf.from_linear(y).clamp(0, 1) * 255) / 255

    return blur


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x).contiguous()


def _dark(x: torch.Tensor) -> torch.Tensor:
    crf = _crf()
    return torch.round(crf.from_linear(crf.to_linear(x) * 0.25) * 255) / 255


@dataclass
class Row:
    name: str
    degrade: object  # callable (sharp batch, generator) -> degraded batch
    prepare: object = None  # callable applied to the clean image first (grayscale, dark)
    goal: str = ""
    key: str = ""  # the same question at every frame size (shake extents differ by size)


def rows(own_known: str | None, frame_w: int) -> list[Row]:
    """The battery for frames ``frame_w`` wide; shake extents follow the frame size (x frame_w/320)."""
    f = frame_w / 320
    ext = lambda a, b: (round(a * f), round(b * f))  # noqa: E731
    root = data_root()
    kair = load_kernels(root / "kernels" / "kernels_12.npz")[8:12]
    large = [load_kernels(root / "kernels" / f"k_large_{i}.png")[0] for i in (1, 2)]
    out = []
    if own_known:
        out.append(Row("own domain", make_known_blur(own_known), goal=">= +3 dB (lite), >= +5 dB (GPU-grade)"))
    for key, (a, b) in zip(("shake S", "shake M", "shake L"), ((3, 6), (6, 10), (10, 16))):
        lo, hi = ext(a, b)
        out.append(Row(f"shake {lo}-{hi} px", _uniform((lo, hi)), key=key))
    out.append(Row("KAIR motion 8-11 (unseen)", [_with_kernel(k) for k in kair], goal=">= +2 dB (lite), >= +3 dB (GPU)"))
    out.append(Row("k_large 1-2 (67-70 px, oversize)", [_with_kernel(k) for k in large], goal="graceful: >= -0.5 dB"))
    out.append(Row("sharp + light noise", _no_blur(LIGHT_NOISE), goal=">= -0.2 dB"))
    out.append(Row("noisy (read 0.02, shot 0.001)", _no_blur(
        ["noise.p=1", "noise.shot=[0.001,0.001]", "noise.read=[0.02,0.02]", "noise.match=false"]), goal=">= 0 dB"))
    out.append(Row("JPEG quality 40-60", _no_blur(["noise.p=0", "compression.p=1", "compression.quality=[40,60]"]),
                   goal=">= 0 dB"))
    lo, hi = ext(6, 10)
    out.append(Row(f"grayscale, shake {lo}-{hi} px", _uniform((lo, hi)), prepare=_gray, goal="> 0 dB", key="grayscale"))
    out.append(Row(f"dark (1/4 light), shake {lo}-{hi} px", _uniform((lo, hi)), prepare=_dark, goal="> 0 dB", key="dark"))
    for r in out:
        r.key = r.key or r.name.split(" (")[0]
    return out


@torch.no_grad()
def score_row(net, row: Row, images, w: int, h: int, seed: int = SEED) -> dict:
    """Mean PSNR/SSIM of input and output against the clean image, over images (x kernels)."""
    g = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    fns = row.degrade if isinstance(row.degrade, list) else [row.degrade]
    pin, pout, sin, sout = [], [], [], []
    for _, img in images:
        clean = fit(img, w, h)
        if row.prepare is not None:
            clean = row.prepare(clean)
        for fn in fns:
            y = fn(clean, g)
            o = net(y.to(device)).float().clamp(0, 1).cpu()
            o = torch.round(o * 255) / 255
            pin.append(psnr(y, clean))
            pout.append(psnr(o, clean))
            sin.append(ssim(y, clean))
            sout.append(ssim(o, clean))
    m = statistics.fmean
    return {"row": row.name, "key": row.key, "size": f"{w}x{h}", "n": len(pin), "input": (m(pin), m(sin)), "output": (m(pout), m(sout)),
            "gain": m(pout) - m(pin), "worst_gain": min(b - a for a, b in zip(pin, pout)), "goal": row.goal}


def run_battery(net, own_known: str | None, sizes=SIZES, only: tuple[str, ...] = ()) -> list[dict]:
    images = held_apart_images()
    results = []
    for w, h in sizes:
        for row in rows(own_known, w):
            if only and not any(row.name.startswith(o) for o in only):
                continue
            results.append(score_row(net, row, images, w, h))
    return results


def battery_table(results: list[dict], label: str = "deblurred") -> list[str]:
    lines = [f"| frame | row | pairs | input PSNR / SSIM | {label} | gain (worst pair) | goal |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['row']} | {r['n']} | {r['input'][0]:.2f} / {r['input'][1]:.3f} | "
            f"{r['output'][0]:.2f} / {r['output'][1]:.3f} | {r['gain']:+.2f} dB ({r['worst_gain']:+.2f}) | {r['goal']} |"
        )
    return lines
