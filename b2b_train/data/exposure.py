"""A simulated camera: blurry frames made from a sharp clip the way a sensor makes them.

A real exposure integrates light over time while the scene (and the camera) moves. From a sharp
clip this is approximated by optical-flow frame interpolation: dense flow between consecutive
frames (OpenCV DIS) gives the scene at any instant between them, and an exposure of ``E`` frame
intervals centred on frame ``c`` is the average, in linear light, of the scene at ``K * E``
instants spread evenly over ``[c - E/2, c + E/2]``. Then, as in a camera's pipeline::

    sharp frames --inverse CRF--> linear --flow-interpolate + camera shake, average over the exposure-->
        + sensor noise (shot + read) --CRF--> tone curve --> JPEG --> 8-bit

Blurry frame ``i`` is centred on frame ``i`` (its *reference*: the sharp scene at the exposure's
middle instant), so the output has the input's frame count and order. Sample instants past the
clip's ends are clamped to its first or last frame (the ends see a shorter exposure).

Everything is a pure function of its inputs and :class:`CameraSim` (its ``seed`` included); the
noise, CRF and JPEG steps reuse :mod:`b2b_train.blur.synth` and :mod:`b2b_train.blur.jpeg`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from ..blur.jpeg import jpeg_compress
from ..blur.synth import CameraResponse, add_noise, quantize
from ..errors import DataError

__all__ = [
    "CameraSim",
    "SimulatedClip",
    "clip_flows",
    "interpolate",
    "exposure_instants",
    "integrate_exposure",
    "tone_curve",
    "simulate_camera",
]


@dataclass(frozen=True)
class CameraSim:
    """What the simulated camera does; all strengths are zero (off) except the exposure."""

    exposure: float = 1.0  # frame intervals the shutter stays open (1 = the whole interval)
    samples_per_interval: int = 8  # interpolated instants per frame interval
    shake_px: float = 0.0  # camera drift during an exposure, px per frame interval (random direction per frame)
    crf: str = "gamma"  # camera response, see CameraResponse
    gamma: float = 2.2
    tone: float = 0.0  # S-curve contrast added after the CRF, in [0, 1)
    shot_noise: float = 0.0  # Poisson-like variance per unit of linear signal
    read_noise: float = 0.0  # Gaussian std in linear units
    jpeg_quality: int | None = None  # None: no JPEG
    seed: int = 0

    def __post_init__(self):
        if not self.exposure > 0:
            raise DataError(f"exposure must be positive (got {self.exposure})")
        if self.samples_per_interval < 1:
            raise DataError(f"samples_per_interval must be >= 1 (got {self.samples_per_interval})")
        if not 0 <= self.tone < 1:
            raise DataError(f"tone must be in [0, 1) (got {self.tone}); 1 and above make the curve non-monotone")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise DataError(f"jpeg_quality must be 1..100 (got {self.jpeg_quality})")


@dataclass(frozen=True)
class SimulatedClip:
    """Blurry frames, their sharp references and the camera's still frames, all ``(N, H, W, 3)`` uint8
    RGB in the input's order. ``still`` is what the same camera records of the reference instant with
    neither motion nor noise (CRF and tone curve applied, no JPEG): the target a deblurrer can reach,
    since undoing the camera's colour is not deblurring."""

    blurry: np.ndarray
    reference: np.ndarray
    centres: np.ndarray  # the middle instant of each exposure, in frame units (= the reference's index)
    still: np.ndarray | None = None


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def clip_flows(frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward and backward dense flow ``(H, W, 2)`` (px) between each pair of consecutive uint8 RGB frames."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grays = [_gray(f) for f in frames]
    return [(dis.calc(a, b, None), dis.calc(b, a, None)) for a, b in zip(grays[:-1], grays[1:])]


def _warp(img: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``img`` sampled at ``x + offset(x)`` (backward warp, bilinear, edges replicated)."""
    h, w = offset.shape[:2]
    offset = offset.astype(np.float32, copy=False)  # remap takes float32 maps only
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + offset[..., 0], gy + offset[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def interpolate(a: np.ndarray, b: np.ndarray, flow_ab: np.ndarray, flow_ba: np.ndarray, t: float,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The scene at instant ``t`` in ``[0, 1]`` between frames ``a`` (t=0) and ``b`` (t=1), float images.

    The flow from instant t to each frame is approximated from the two frame-to-frame flows under
    linear motion (Jiang et al., Super SloMo, 2018: ``F_t0 = -t(1-t) F_01 + t^2 F_10``,
    ``F_t1 = (1-t)^2 F_01 - t(1-t) F_10``); both warped frames are blended by closeness in time.
    ``shift``: the camera's displacement at this instant (px), applied to the whole view.
    """
    s = np.asarray(shift, dtype=np.float32)
    to_a = -t * (1 - t) * flow_ab + t * t * flow_ba + s
    to_b = (1 - t) ** 2 * flow_ab - t * (1 - t) * flow_ba + s
    if t <= 0 and not s.any():
        return a.copy()
    if t >= 1 and not s.any():
        return b.copy()
    return (1 - t) * _warp(a, to_a) + t * _warp(b, to_b)


def exposure_instants(centre: float, exposure: float, samples_per_interval: int) -> np.ndarray:
    """The instants (frame units) an exposure of ``exposure`` intervals centred on ``centre`` is sampled at.

    ``round(K * exposure)`` instants at the middles of equal sub-intervals: symmetric about ``centre``.
    """
    n = max(1, int(round(samples_per_interval * exposure)))
    return centre - exposure / 2 + (np.arange(n) + 0.5) * (exposure / n)


def integrate_exposure(linear: Sequence[np.ndarray], flows: Sequence[tuple[np.ndarray, np.ndarray]], centre: float,
                       exposure: float, samples_per_interval: int,
                       velocity: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Average of the interpolated scene over one exposure (float linear frames ``(H, W, 3)``).

    ``velocity``: the camera's drift in px per frame interval; its displacement is zero at the
    exposure's middle, so the blurry frame stays registered with its reference.
    """
    n = len(linear)
    if n == 1:
        return linear[0].astype(np.float32, copy=True)
    acc = np.zeros_like(linear[0], dtype=np.float32)
    times = exposure_instants(centre, exposure, samples_per_interval)
    vx, vy = velocity
    for t in times:
        s = (vx * (t - centre), vy * (t - centre))
        tc = min(max(float(t), 0.0), n - 1.0)
        i = min(int(np.floor(tc)), n - 2)
        fwd, bwd = flows[i]
        acc += interpolate(linear[i], linear[i + 1], fwd, bwd, tc - i, shift=s)
    return acc / len(times)


def tone_curve(x: torch.Tensor, strength: float) -> torch.Tensor:
    """A camera's S-shaped contrast curve on ``[0, 1]`` display values: ``x - s x (1-x)(1-2x)``.

    Fixes 0, 1/2 and 1; monotone for ``strength < 1`` (slope ``1 - s`` at the ends, ``1 + s/2`` in the middle).
    """
    return (x - strength * x * (1 - x) * (1 - 2 * x)).clamp(0, 1)


def _camera_velocities(n: int, shake_px: float, seed: int) -> np.ndarray:
    """One drift velocity per exposure: random direction, speed ``shake_px`` x U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    speed = shake_px * rng.uniform(0.5, 1.5, n)
    return np.stack([speed * np.cos(angle), speed * np.sin(angle)], 1)


def simulate_camera(frames: Sequence[np.ndarray], sim: CameraSim, flows=None) -> SimulatedClip:
    """Blurry frames from a sharp clip of uint8 RGB frames (all one size); see the module docstring.

    ``flows``: :func:`clip_flows` of ``frames`` when already computed (they do not depend on ``sim``,
    so several exposures of one clip can share them).
    """
    if len(frames) == 0:
        raise DataError("simulate_camera needs at least one frame")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1 or frames[0].ndim != 3 or frames[0].shape[2] != 3 or frames[0].dtype != np.uint8:
        raise DataError(f"simulate_camera needs uint8 HxWx3 frames of one size, got shapes {sorted(shapes)}")
    frames = [np.ascontiguousarray(f) for f in frames]
    flows = clip_flows(frames) if flows is None else flows
    if len(flows) != len(frames) - 1:
        raise DataError(f"{len(flows)} flows for {len(frames)} frames (need one per consecutive pair)")
    crf = CameraResponse(sim.crf, sim.gamma)
    sharp = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    sharp_linear = crf.to_linear(sharp)
    linear = [f.permute(1, 2, 0).numpy() for f in sharp_linear]
    velocities = _camera_velocities(len(frames), sim.shake_px, sim.seed)
    exposed = np.stack([integrate_exposure(linear, flows, float(i), sim.exposure, sim.samples_per_interval, tuple(v))
                        for i, v in enumerate(velocities)])
    y = torch.from_numpy(exposed).permute(0, 3, 1, 2).contiguous()
    if sim.shot_noise > 0 or sim.read_noise > 0:
        n = y.shape[0]
        g = torch.Generator().manual_seed(sim.seed + 1)
        y = add_noise(y, torch.full((n,), float(sim.shot_noise)), torch.full((n,), float(sim.read_noise)), generator=g)
    y = crf.from_linear(y.clamp(0, 1))
    if sim.tone > 0:
        y = tone_curve(y, sim.tone)
    if sim.jpeg_quality is not None:
        y = jpeg_compress(y, sim.jpeg_quality)
    blurry = (quantize(y) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    still = crf.from_linear(sharp_linear.clamp(0, 1))
    if sim.tone > 0:
        still = tone_curve(still, sim.tone)
    still = (quantize(still) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return SimulatedClip(np.ascontiguousarray(blurry), np.stack(frames), np.arange(len(frames), dtype=np.float64),
                         np.ascontiguousarray(still))
