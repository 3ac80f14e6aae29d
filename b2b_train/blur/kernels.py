"""Blur kernels: random camera-shake trajectories rasterised to PSFs, and measured kernels from files.

Random kernels follow the camera-shake model of Boracchi & Foi (2012), also used by DeblurGAN's
generator: the camera position is a 2-D random walk with inertia (the velocity keeps its magnitude,
its direction is nudged by Gaussian noise and pulled back towards the start by a centripetal term),
with occasional impulsive shakes that reverse the direction. The trajectory is scaled to a requested
*extent* (the larger side of its bounding box, in pixels), centred on its centre of mass and
rasterised with bilinear splatting, so the kernel keeps sub-pixel accuracy.

Everything is vectorised over a batch of kernels (the only Python loop is over trajectory time
steps) and takes a :class:`torch.Generator`, so the same seed gives the same kernels.

Kernel convention: a kernel ``k`` of odd size ``(s, s)`` has its origin at the centre pixel
``(s // 2, s // 2)``; blurring is a true convolution ``y = x * k``, so blurring an image with a single
bright pixel (a delta) reproduces ``k`` centred on that pixel, not flipped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..checks import check_range
from ..errors import DataError

__all__ = [
    "TrajectoryParams",
    "random_trajectories",
    "rasterize_trajectories",
    "random_kernels",
    "normalize_kernels",
    "center_kernels",
    "pad_kernels",
    "crop_kernels_to_support",
    "kernel_extent",
    "load_kernels",
    "KERNEL_SUFFIXES",
]

_PATH_UNITS = 60.0

KERNEL_SUFFIXES = (".mat", ".npz", ".npy", ".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")


@dataclass(frozen=True)
class TrajectoryParams:
    """Ranges of the random-walk parameters; each kernel draws its own value uniformly in a range.

    ``anxiety`` scales how much the direction wanders (0: straight line); ``centripetal`` pulls the
    walk back towards its start; ``gaussian`` is the strength of the random direction changes;
    ``big_shake`` is the probability (times ``anxiety``) per step of an impulsive reversal;
    ``exposure`` is the fraction of the trajectory the shutter sees (short exposures give the
    simple strokes and arcs of real shake kernels, long ones curls).
    """

    anxiety: tuple[float, float] = (0.0, 0.1)
    centripetal: tuple[float, float] = (0.0, 0.7)
    gaussian: tuple[float, float] = (0.0, 10.0)
    big_shake: tuple[float, float] = (0.0, 0.2)
    exposure: tuple[float, float] = (0.2, 0.7)
    steps: int = 64


def _uniform(n: int, lo_hi: Sequence[float], generator, device) -> torch.Tensor:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    return lo + (hi - lo) * u


def random_trajectories(
    n: int,
    params: TrajectoryParams = TrajectoryParams(),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random camera-shake trajectories of unit total path length.

    Returns ``(n, steps, 2)`` float64 ``(x, y)`` positions, starting at the origin; consecutive
    points are ``1 / (steps - 1)`` apart (constant speed), so points are uniform in exposure time.
    """
    device = torch.device(device) if device is not None else (generator.device if generator is not None else torch.device("cpu"))
    T = max(2, int(params.steps))
    # The dynamics run on a path of 60 units (the generator's usual canvas scale), so the
    # centripetal pull (proportional to the position) weighs against the random term as published;
    # the result is rescaled to unit length at the end.
    step = _PATH_UNITS / (T - 1)
    anxiety = _uniform(n, params.anxiety, generator, device)
    centri = _uniform(n, params.centripetal, generator, device)
    gauss = _uniform(n, params.gaussian, generator, device)
    p_big = _uniform(n, params.big_shake, generator, device)
    angle = _uniform(n, (0.0, 2 * math.pi), generator, device)
    # complex numbers keep the 2-D algebra short: position x, velocity v
    v = torch.polar(torch.full_like(angle, step), angle)
    x = torch.zeros(n, dtype=torch.complex128, device=device)
    out = [x]
    # draw all randomness up front (one call each) so the loop only does arithmetic
    u_big = torch.rand(n, T - 1, generator=generator, device=device, dtype=torch.float64)
    u_ang = torch.rand(n, T - 1, generator=generator, device=device, dtype=torch.float64)
    g = torch.randn(n, T - 1, 2, generator=generator, device=device, dtype=torch.float64)
    g = torch.complex(g[..., 0], g[..., 1])
    # everything that does not depend on the walk's state is computed for all steps at once, so the
    # loop (a recurrence: it cannot be vectorised over time) runs few small operations per step
    turn = 2 * (u_big < (p_big * anxiety).unsqueeze(1)).to(torch.float64) * torch.polar(
        torch.ones_like(u_ang), math.pi + (u_ang - 0.5))  # (n, T-1): the impulsive reversal factor
    push = (anxiety * gauss * step).unsqueeze(1) * g  # (n, T-1): the random part of dv
    pull = anxiety * centri * step  # (n,): the centripetal part of dv, times -x
    for t in range(T - 1):
        v = v + v * turn[:, t] + push[:, t] - pull * x
        v = v * (step / v.abs().clamp_min(1e-12))
        x = x + v
        out.append(x)
    traj = torch.stack(out, dim=1) / _PATH_UNITS
    return torch.stack([traj.real, traj.imag], dim=-1)


def _resample_uniform(traj: torch.Tensor, points: int, fraction: torch.Tensor | None = None) -> torch.Tensor:
    """Linear interpolation of ``(n, T, 2)`` trajectories to ``points`` samples uniform in time.

    ``fraction`` ``(n,)``: keep only the first fraction of each trajectory (the exposure).
    """
    n, T, _ = traj.shape
    t = torch.linspace(0, T - 1, points, device=traj.device, dtype=traj.dtype).expand(n, points)
    if fraction is not None:
        t = t * fraction.to(traj.dtype).view(n, 1)
    i0 = t.floor().long().clamp(0, T - 2)
    f = (t - i0.to(t.dtype)).unsqueeze(-1)
    idx = i0.unsqueeze(-1).expand(n, points, 2)
    return torch.gather(traj, 1, idx) * (1 - f) + torch.gather(traj, 1, idx + 1) * f


def rasterize_trajectories(points: torch.Tensor, size: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Bilinear splatting of ``(n, P, 2)`` sub-pixel ``(x, y)`` positions onto ``(n, size, size)`` canvases.

    Position ``(0, 0)`` is the centre pixel. Each point spreads its mass over its four neighbouring
    pixels; mass falling outside the canvas is dropped. Returns float32, not normalised.
    """
    n, P, _ = points.shape
    c = size // 2
    p = points + c
    p0 = p.floor()
    frac = p - p0
    p0 = p0.long()
    w = torch.ones(n, P, dtype=points.dtype, device=points.device) if weights is None else weights.to(points.dtype)
    canvas = torch.zeros(n * size * size, dtype=points.dtype, device=points.device)
    base = (torch.arange(n, device=points.device) * size * size).view(n, 1)
    for dx in (0, 1):
        for dy in (0, 1):
            xi = p0[..., 0] + dx
            yi = p0[..., 1] + dy
            wx = frac[..., 0] if dx else 1 - frac[..., 0]
            wy = frac[..., 1] if dy else 1 - frac[..., 1]
            inside = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
            idx = base + yi.clamp(0, size - 1) * size + xi.clamp(0, size - 1)
            canvas.scatter_add_(0, idx.reshape(-1), (w * wx * wy * inside).reshape(-1))
    return canvas.view(n, size, size).to(torch.float32)


def normalize_kernels(k: torch.Tensor) -> torch.Tensor:
    """Clamp to non-negative and scale each kernel ``(..., h, w)`` to sum 1 (an all-zero kernel becomes a delta)."""
    k = k.clamp_min(0)
    s = k.sum(dim=(-2, -1), keepdim=True)
    delta = torch.zeros_like(k)
    delta[..., k.shape[-2] // 2, k.shape[-1] // 2] = 1
    return torch.where(s > 0, k / s.clamp_min(1e-30), delta)


def random_kernels(
    n: int,
    size: int = 31,
    extent: tuple[float, float] | float = (5.0, 25.0),
    params: TrajectoryParams = TrajectoryParams(),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    max_path_ratio: float | None = None,
) -> torch.Tensor:
    """``n`` random camera-shake kernels ``(n, size, size)`` float32, non-negative, each summing to 1.

    ``extent``: the larger side of each trajectory's bounding box in pixels, drawn uniformly in the
    range (or fixed). Under bilinear splatting a continuous span ``L`` touches between
    ``floor(L) + 1`` and ``ceil(L) + 2`` pixels, so :func:`kernel_extent` lies in that range.
    The trajectory is centred on its centre of mass, shifted
    only as far as needed to stay inside the canvas. ``size`` must be odd and > max extent + 1.

    ``max_path_ratio``: when given, the trajectory is rasterised from a fixed number of samples (0.25 px
    apart for a path up to that many times the largest extent; 99.9 % of paths are under 5.3x) instead
    of a number read off the batch, so the call never waits on the device (CUDA) and has static shapes.
    """
    if size % 2 == 0 or size < 3:
        raise ValueError(f"kernel size must be odd and >= 3, got {size}")
    lo, hi = check_range("kernel extent range", (extent, extent) if isinstance(extent, (int, float)) else extent)
    if hi > size - 2:
        raise ValueError(f"kernel extent {hi} does not fit a {size}x{size} kernel (need size >= extent + 2)")
    dev = torch.device(device) if device is not None else (generator.device if generator is not None else torch.device("cpu"))
    traj = random_trajectories(n, params, generator=generator, device=dev)
    expo = _uniform(n, params.exposure, generator, dev).clamp(1e-3, 1.0)
    traj = _resample_uniform(traj, traj.shape[1], expo)
    ext = _uniform(n, (lo, hi), generator, dev)
    span = (traj.amax(1) - traj.amin(1)).amax(-1).clamp_min(1e-9)  # (n,)
    traj = traj * (ext / span).view(n, 1, 1)
    # centre of mass at the origin, then the least shift that keeps the bounding box on the canvas
    traj = traj - traj.mean(1, keepdim=True)
    half = (size - 1) / 2 - 1e-6
    mn, mx = traj.amin(1), traj.amax(1)  # (n, 2)
    shift = (-half - mn).clamp_min(0) - (mx - half).clamp_min(0)
    traj = traj + shift.unsqueeze(1)
    # dense resampling: at most ~0.25 px between samples (constant speed: path length = extent / span)
    if max_path_ratio is None:
        path = float((ext / span).max())  # a host sync: the one place the batch sets a shape
    else:
        path = float(max_path_ratio) * hi
    pts = max(int(math.ceil(path * 4)) + 1, traj.shape[1])
    dense = _resample_uniform(traj, pts)
    k = rasterize_trajectories(dense, size)
    return normalize_kernels(k)


def kernel_extent(k: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Larger side of the bounding box of the pixels ``> threshold`` of each ``(..., h, w)`` kernel (pixels)."""
    mask = k > threshold
    rows = mask.any(-1)
    cols = mask.any(-2)

    def _span(m: torch.Tensor) -> torch.Tensor:
        idx = torch.arange(m.shape[-1], device=m.device)
        first = torch.where(m, idx, m.shape[-1]).amin(-1)
        last = torch.where(m, idx, -1).amax(-1)
        return (last - first + 1).clamp_min(0)

    return torch.maximum(_span(rows), _span(cols))


def center_kernels(k: torch.Tensor) -> torch.Tensor:
    """Shift each ``(n, h, w)`` kernel by whole pixels so its centre of mass is nearest the centre."""
    n, h, w = k.shape
    ys = torch.arange(h, dtype=k.dtype, device=k.device).view(1, h, 1)
    xs = torch.arange(w, dtype=k.dtype, device=k.device).view(1, 1, w)
    s = k.sum((1, 2)).clamp_min(1e-30)
    cy = (k * ys).sum((1, 2)) / s
    cx = (k * xs).sum((1, 2)) / s
    out = torch.empty_like(k)
    for i in range(n):  # loop over kernels (few, small), not pixels
        dy = int(round(h // 2 - float(cy[i])))
        dx = int(round(w // 2 - float(cx[i])))
        out[i] = torch.roll(k[i], shifts=(dy, dx), dims=(0, 1))
    return out


def pad_kernels(k: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (or centre-crop) ``(n, h, w)`` kernels to ``(n, size, size)``, keeping the centre pixel centred."""
    n, h, w = k.shape
    out = torch.zeros(n, size, size, dtype=k.dtype, device=k.device)
    c = size // 2
    ch, cw = h // 2, w // 2
    y0, y1 = max(0, ch - c), min(h, ch + (size - c))
    x0, x1 = max(0, cw - c), min(w, cw + (size - c))
    oy, ox = c - (ch - y0), c - (cw - x0)
    out[:, oy : oy + (y1 - y0), ox : ox + (x1 - x0)] = k[:, y0:y1, x0:x1]
    return out


def crop_kernels_to_support(k: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Crop a batch of centred ``(n, s, s)`` kernels to the smallest odd centred square holding every non-zero tap."""
    n, s, _ = k.shape
    c = s // 2
    mask = (k > threshold).any(0)
    if not bool(mask.any()):
        return k[:, c : c + 1, c : c + 1]
    ys, xs = torch.nonzero(mask, as_tuple=True)
    r = int(max((ys - c).abs().max(), (xs - c).abs().max()))
    return k[:, c - r : c + r + 1, c - r : c + r + 1]


# ----------------------------------------------------------------------------------------- files


def _as_kernel_list(arr, source: str) -> list[np.ndarray]:
    """Split whatever a file held into a list of 2-D kernels."""
    if isinstance(arr, np.ndarray) and arr.dtype == object:
        out = []
        for item in arr.ravel():
            out.extend(_as_kernel_list(item, source))
        return out
    a = np.asarray(arr)
    if a.dtype.kind not in "fiub":
        raise DataError(f"{source}: kernel data is not numeric ({a.dtype})")
    a = np.squeeze(a.astype(np.float64))
    if a.ndim == 2:
        return [a]
    if a.ndim == 3:
        # (n, h, w) or MATLAB's (h, w, n): the kernel axes are the two (near-)equal ones
        if a.shape[1] == a.shape[2] and a.shape[0] != a.shape[1]:
            return [a[i] for i in range(a.shape[0])]
        if a.shape[0] == a.shape[1]:
            return [a[..., i] for i in range(a.shape[2])]
        return [a[i] for i in range(a.shape[0])]
    raise DataError(f"{source}: cannot read kernels from an array of shape {a.shape}")


def _read_kernel_file(path: Path) -> list[np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            import scipy.io

            data = scipy.io.loadmat(str(path))
            keys = [k for k in data if not k.startswith("__")]
            if not keys:
                raise DataError(f"{path}: no arrays in this .mat file")
            key = "kernels" if "kernels" in keys else keys[0]
            return _as_kernel_list(data[key], str(path))
        if suffix == ".npz":
            with np.load(str(path), allow_pickle=False) as z:
                files = list(z.files)
                if not files:
                    raise DataError(f"{path}: empty .npz file")

                def _order(name: str):
                    digits = "".join(ch for ch in name if ch.isdigit())
                    return (name.rstrip("0123456789"), int(digits) if digits else -1, name)

                out = []
                for f in sorted(files, key=_order):
                    out.extend(_as_kernel_list(z[f], f"{path}:{f}"))
                return out
        if suffix == ".npy":
            return _as_kernel_list(np.load(str(path), allow_pickle=False), str(path))
        if suffix in (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg"):
            import cv2

            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise DataError(f"{path}: not a readable image")
            img = img.astype(np.float64)
            if img.ndim == 3:
                img = img[..., :3].mean(-1)
            return [img]
    except DataError:
        raise
    except (OSError, ValueError, NotImplementedError) as e:
        raise DataError(f"{path}: cannot read kernels ({e})") from None
    raise DataError(f"{path}: unsupported kernel file type {suffix!r} (use one of {', '.join(KERNEL_SUFFIXES)})")


def load_kernels(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    size: int | None = None,
    center: bool = False,
) -> torch.Tensor:
    """Measured kernels from ``.mat`` / ``.npz`` / ``.npy`` / image files or folders of them.

    Each kernel is made odd-sized (one zero row/column appended where needed), non-negative and
    normalised to sum 1. Returns ``(n, s, s)`` float32 with ``s = size`` or the largest kernel's
    size; kernels are zero-padded (or centre-cropped) to it. ``center=True`` also moves each
    kernel's centre of mass to the centre pixel.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in KERNEL_SUFFIXES)
            if not found:
                raise DataError(f"{p}: no kernel files ({', '.join(KERNEL_SUFFIXES)}) in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"kernel file not found: {p}")
    kernels: list[torch.Tensor] = []
    for f in files:
        for a in _read_kernel_file(f):
            if not np.isfinite(a).all():
                raise DataError(f"{f}: kernel has non-finite values")
            a = np.clip(a, 0, None)
            if a.sum() <= 0:
                raise DataError(f"{f}: a kernel is all zero")
            h, w = a.shape
            a = np.pad(a, ((0, 1 - h % 2), (0, 1 - w % 2)))
            s = max(a.shape)
            a = np.pad(a, (((s - a.shape[0]) // 2,) * 2, ((s - a.shape[1]) // 2,) * 2))
            kernels.append(torch.from_numpy(a / a.sum()).to(torch.float32))
    if not kernels:
        raise DataError("no kernels found in " + ", ".join(str(p) for p in paths))
    s = size or max(k.shape[-1] for k in kernels)
    if s % 2 == 0:
        s += 1
    out = torch.stack([pad_kernels(k[None], s)[0] for k in kernels])
    if center:
        out = center_kernels(out)
    return normalize_kernels(out)
