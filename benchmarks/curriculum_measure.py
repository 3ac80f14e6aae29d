"""Which blur measure ranks crops by blur? The curriculum's candidates against blur that is known.

Crops of real photos (cbsd68 and kodak, shrunk to 320 px as the translator's frames are) are blurred
in linear light by random camera-shake kernels of known extent (1..13 px, the range a webcam's
shake spans at 320 px), then given shot/read noise and 8-bit quantisation. Each measure scores every
crop (low = blurry). Two numbers per measure:

* Spearman correlation with the extent (-1: ranks exactly by blur);
* how often, in random groups of four crops of *different* photos, the measure's blurriest two
  are the two most blurred (the curriculum's "blurriest half" of a batch of 4; chance is 1/6).

    python benchmarks/curriculum_measure.py            # ~20 s on 2 cores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, update_section  # noqa: E402


def known_blur_crops(paths: list[Path], per_image: int = 3, crop: int = 96, side: int = 320,
                     extents=range(1, 14), noise: tuple[float, float] = (2e-4, 0.003), seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``(crops (N,3,crop,crop) in [0,1], extent (N,) px, photo index (N,))``: ``per_image`` random
    crops of each photo, each blurred by its own shake kernel of a random extent from ``extents``,
    then given ``noise`` = (shot, read) Poisson-Gaussian noise."""
    import cv2

    from b2b_train.blur.kernels import random_kernels
    from b2b_train.blur.synth import add_noise, convolve, gamma_to_linear, linear_to_gamma, quantize

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    extents = list(extents)
    crops, ext, src = [], [], []
    for i, p in enumerate(paths):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {p}")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        s = side / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(img).permute(2, 0, 1).float().div(255)
        pad = 16  # blur needs context beyond the crop
        for _ in range(per_image):
            t = int(rng.integers(0, x.shape[1] - crop - 2 * pad + 1))
            le = int(rng.integers(0, x.shape[2] - crop - 2 * pad + 1))
            e = int(rng.choice(extents))
            k = random_kernels(1, size=31, extent=float(e), generator=gen)
            patch = x[None, :, t: t + crop + 2 * pad, le: le + crop + 2 * pad]
            y = linear_to_gamma(convolve(gamma_to_linear(patch), k))
            y = quantize(add_noise(y, torch.tensor([noise[0]]), torch.tensor([noise[1]]), generator=gen).clamp(0, 1))
            crops.append(y[0, :, pad: pad + crop, pad: pad + crop])
            ext.append(e)
            src.append(i)
    return torch.stack(crops), np.array(ext), np.array(src)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def blurriest_half_hits(degree: np.ndarray, extent: np.ndarray, photo: np.ndarray, groups: int = 2000,
                        seed: int = 1) -> float:
    """Share of random groups of four crops (distinct photos, distinct extents) in which the two with the
    lowest degree are the two with the largest extent."""
    rng = np.random.default_rng(seed)
    hits = done = 0
    while done < groups:
        idx = rng.choice(len(degree), 4, replace=False)
        if len(set(photo[idx])) < 4 or len(set(extent[idx])) < 4:
            continue
        done += 1
        hits += set(idx[np.argsort(degree[idx])[:2]]) == set(idx[np.argsort(-extent[idx])[:2]])
    return hits / groups


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--per-image", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from b2b_train.data.curriculum import blur_degrees

    data = Path(args.data)
    paths = sorted(p for d in ("cbsd68", "kodak") for p in (data / "images" / d).glob("*.png"))
    if not paths:
        raise SystemExit(f"no photos under {data / 'images'}")
    measures = [("Laplacian variance (the paper's)", "laplacian", 2.0, 0.0),
                ("re-blur ratio, sigma 2, no pre-smoothing", "reblur", 2.0, 0.0),
                ("re-blur ratio, sigma 2, pre-smoothing 1.5 (b2b's)", "reblur", 2.0, 1.5),
                ("re-blur ratio, sigma 3, pre-smoothing 1.0", "reblur", 3.0, 1.0)]
    noises = {"no noise": (0.0, 0.0), "webcam noise": (2e-4, 0.003), "strong noise": (2e-3, 0.004)}
    table = {}
    for nlabel, noise in noises.items():
        crops, extent, photo = known_blur_crops(paths, args.per_image, noise=noise, seed=args.seed)
        for label, measure, sigma, pre in measures:
            d = blur_degrees(crops, measure, sigma, pre).numpy()
            table[label, nlabel] = (spearman(d, extent), blurriest_half_hits(d, extent, photo))
            print(f"[curriculum] {nlabel}, {label}: Spearman {table[label, nlabel][0]:+.2f}, "
                  f"blurriest 2 of 4 right {table[label, nlabel][1]:.0%}", flush=True)
    md = [header("Curriculum blur measure (`curriculum-measure`)"), "",
          f"{len(crops)} crops of 96 px from {len(paths)} photos (cbsd68, kodak at 320 px), each under a random "
          "shake kernel of known extent 1-13 px in linear light, then Poisson-Gaussian noise (shot, read: none; "
          "2e-4, 0.003; 2e-3, 0.004) and 8-bit rounding. Low degree = blurry. Cells: Spearman correlation with "
          "the extent / how often the measure's blurriest two of four crops (distinct photos and extents) are "
          "the two most blurred (chance 17 %).", "",
          "| measure | " + " | ".join(noises) + " |", "|---|" + "---:|" * len(noises)]
    for label, *_ in measures:
        md.append(f"| {label} | " + " | ".join(f"{table[label, n][0]:+.2f} / {table[label, n][1]:.0%}"
                                                for n in noises) + " |")
    if not args.no_write:
        update_section("curriculum-measure", "\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
