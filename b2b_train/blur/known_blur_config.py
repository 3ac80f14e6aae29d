"""The known-blur domain C' as configured (presets: ``b2b_train/configs/known/*.yaml``).

Where kernels come from, the mix of blur modes, noise, compression, and the BKE source. Both known-blur
sources read it, :class:`~b2b_train.blur.synth.KnownBlur` (kernels) and
:class:`~b2b_train.blur.bke_transfer.BKETransfer` (a trained blur-kernel extractor), so it lives apart
from either: :func:`~b2b_train.blur.synth.make_known_blur` picks the source, and the imports run one way
(synth -> bke_transfer -> this module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..checks import check_fraction, check_range
from .kernels import TrajectoryParams

__all__ = [
    "KernelConfig",
    "SpatialConfig",
    "NoiseConfig",
    "CompressionConfig",
    "BKESourceConfig",
    "KnownBlurConfig",
]


@dataclass
class KernelConfig:
    """Where kernels come from.

    Random camera-shake kernels: ``extent`` (px, larger side of the trajectory's bounding box) drawn
    uniformly in a range; ``size`` the kernel canvas (odd; 0 = smallest that fits the extent);
    random-walk parameter ranges (incl. ``exposure``, the fraction of the path the shutter sees) as
    :class:`~b2b_train.blur.kernels.TrajectoryParams`. ``bank``
    > 0 draws from a fixed set of that many kernels made once from ``bank_seed`` (a frozen domain);
    0 makes fresh kernels for every batch. Measured kernels: ``files`` (``.mat``/``.npz``/PNG files
    or folders), used for a fraction ``p_files`` of the kernels.
    """

    size: int = 0
    extent: tuple[float, float] = (3.0, 21.0)
    anxiety: tuple[float, float] = (0.0, 0.1)
    centripetal: tuple[float, float] = (0.0, 0.7)
    gaussian: tuple[float, float] = (0.0, 10.0)
    big_shake: tuple[float, float] = (0.0, 0.2)
    exposure: tuple[float, float] = (0.2, 0.7)
    steps: int = 64
    bank: int = 0
    bank_seed: int = 0
    files: list[str] = field(default_factory=list)
    p_files: float = 0.0

    def __post_init__(self):
        _, hi = check_range("kernels.extent", self.extent)
        if self.size and (self.size % 2 == 0 or self.size < hi + 2):
            raise ValueError(f"kernels.size must be odd and >= extent max + 2 (got {self.size}); 0 = automatic")
        check_fraction("kernels.p_files", self.p_files)
        if self.p_files > 0 and not self.files:
            raise ValueError("kernels.p_files > 0 needs kernels.files")
        if self.steps < 2 or self.bank < 0:
            raise ValueError("kernels.steps must be >= 2 and kernels.bank >= 0")

    @property
    def canvas(self) -> int:
        if self.size:
            return self.size
        s = int(math.ceil(self.extent[1])) + 3
        return s + 1 - s % 2

    def trajectory(self) -> TrajectoryParams:
        return TrajectoryParams(self.anxiety, self.centripetal, self.gaussian, self.big_shake, self.exposure, self.steps)


@dataclass
class SpatialConfig:
    """Mix of blur modes (probabilities summing to 1) and the shape of spatially varying blur.

    ``n_kernels``: kernels blended in ``varying``/``local`` modes; ``grid``: cells of the
    low-frequency random field across the image (2-4 = a few smooth regions); ``temperature``:
    softness of the blend between kernels (small = nearly piecewise); ``sharp_fraction``: range of
    the fraction of the frame left exactly sharp in ``local`` mode; ``edge``: width of the soft
    transition between sharp and blurred regions, as a fraction of the field's spread.
    ``p_sharp``: share of frames left wholly unblurred (they still get noise and compression).
    """

    p_uniform: float = 1.0
    p_varying: float = 0.0
    p_local: float = 0.0
    p_sharp: float = 0.0
    n_kernels: int = 2
    grid: int = 3
    temperature: float = 0.3
    sharp_fraction: tuple[float, float] = (0.3, 0.8)
    edge: float = 0.3

    def __post_init__(self):
        ps = (self.p_uniform, self.p_varying, self.p_local, self.p_sharp)
        if min(ps) < 0 or abs(sum(ps) - 1) > 1e-6:
            raise ValueError(f"spatial.p_uniform + p_varying + p_local + p_sharp must be 1 (got {sum(ps):g})")
        if self.n_kernels < 1 or self.grid < 1 or self.temperature <= 0 or self.edge <= 0:
            raise ValueError("spatial.n_kernels and grid must be >= 1; temperature and edge > 0")
        check_range("spatial.sharp_fraction", self.sharp_fraction, 0, 1)


@dataclass
class NoiseConfig:
    """Poisson-Gaussian noise added after the CRF: ``y + sqrt(shot * y + read^2) * N(0, 1)``.

    ``shot`` and ``read`` are ranges drawn per image; ``p`` is the probability an image gets noise.

    ``match``: keep the input's own sensor noise. Blurring a noisy sharp frame averages its noise
    away, so K made from a webcam's frames would be much cleaner than the camera's blurry frames B
    and the discriminator could tell them apart by noise alone (the translator then learns to
    denoise and smear instead of converting blur). With ``match`` the noise level of each input
    image and channel is estimated (:func:`~b2b_train.blur.synth.estimate_noise`) and the part the blur removed is added
    back as Gaussian noise where the image was blurred; the configured noise above is then added only
    as far as the input lacks it (a clean photo gets all of it, a noisy webcam frame none), so K is as
    noisy as the camera's frames, not noisier.
    """

    p: float = 1.0
    shot: tuple[float, float] = (0.0, 2e-4)
    read: tuple[float, float] = (0.0, 3e-3)
    match: bool = False

    def __post_init__(self):
        if not 0 <= self.p <= 1 or min(self.shot) < 0 or min(self.read) < 0:
            raise ValueError("noise.p must be in [0, 1]; noise levels must be >= 0")


@dataclass
class CompressionConfig:
    """JPEG compression after the noise (a webcam's MJPEG): probability ``p`` per image and a
    ``quality`` range (1-100, drawn uniformly per image)."""

    p: float = 0.0
    quality: tuple[float, float] = (50.0, 95.0)

    def __post_init__(self):
        check_fraction("compression.p", self.p)
        check_range("compression.quality", self.quality, 1, 100)


@dataclass
class BKESourceConfig:
    """Blur transferred by a trained blur-kernel extractor from a paired blurry/sharp dataset."""

    checkpoint: str = ""
    pairs_blurry: str = ""
    pairs_sharp: str = ""


@dataclass
class KnownBlurConfig:
    """The known-blur domain C' used to make the K set (presets: ``b2b_train/configs/known/*.yaml``)."""

    KIND = "known"

    source: Literal["bank", "bke"] = "bank"
    kernels: KernelConfig = field(default_factory=KernelConfig)
    spatial: SpatialConfig = field(default_factory=SpatialConfig)
    crf: str = "gamma"  # gamma | srgb | linear | path to a response curve (.npy/.txt/.csv)
    gamma: float = 2.2
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    quantize: bool = True
    padding: Literal["reflect", "replicate"] = "reflect"
    fft_min_size: int = 31  # FFT when (kernels per image) * size^2 >= this^2, else direct
    bke: BKESourceConfig = field(default_factory=BKESourceConfig)

    def __post_init__(self):
        if self.gamma <= 0:
            raise ValueError("gamma must be > 0")
