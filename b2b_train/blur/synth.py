"""Known-blur synthesis: re-blur the camera's own sharp frames with blur from a known domain (paper §3.3).

Pipeline, all batched tensor ops (CPU or CUDA, no loops over pixels)::

    sharp [0,1] --inverse CRF--> linear light --convolve (direct or FFT, reflect-padded)-->
        blend per pixel (smooth kernel field, regions left sharp) --CRF--> + noise (shot + read)
        --> JPEG --> quantise to 8-bit levels --> blurry [0,1]

Each image of a batch draws its own blur *mode*:

* ``uniform``: one kernel over the whole frame (handheld camera shake);
* ``varying``: a smooth low-frequency field blending ``n_kernels`` kernels (rotation, depth);
* ``local``: like ``varying`` but only inside smooth blobs; the rest of the frame is left exactly
  sharp (a fixed webcam: moving hands in front of a still background);
* ``sharp``: not blurred at all, only the camera's noise and compression (a deblurrer must give a
  sharp frame back as it is).

The mix of modes, kernel sources (random camera-shake bank and/or measured kernel files), CRF,
noise, JPEG compression (:mod:`.jpeg`) and quantisation come from :class:`KnownBlurConfig` (presets in ``b2b_train/configs/known/``).

Convolution convention: true convolution ``y = x * k`` with the kernel origin at its centre pixel,
so a delta image becomes the kernel itself (not flipped); see :mod:`.kernels`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .bke_transfer import make_bke_known_blur
from .jpeg import jpeg_compress
from .kernels import (
    crop_kernels_to_support,
    load_kernels,
    pad_kernels,
    random_kernels,
)
from .known_blur_config import KnownBlurConfig

__all__ = [
    "KnownBlur",
    "make_known_blur",
    "convolve",
    "smooth_field",
    "gamma_to_linear",
    "linear_to_gamma",
    "CameraResponse",
    "add_noise",
    "quantize",
]


# ------------------------------------------------------------------------------- camera response


def gamma_to_linear(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Display values ``[0,1]`` to linear light: ``x ** gamma``."""
    return x.clamp(0, 1) ** gamma


def linear_to_gamma(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Linear light to display values: ``x ** (1 / gamma)`` (clamped to ``[0, 1]``)."""
    return x.clamp(0, 1) ** (1.0 / gamma)


def _srgb_to_linear(x):
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``np.interp`` for tensors (``xp`` increasing)."""
    xp = xp.to(x.device, x.dtype)
    fp = fp.to(x.device, x.dtype)
    xc = x.clamp(float(xp[0]), float(xp[-1]))
    idx = torch.searchsorted(xp, xc.reshape(-1).contiguous()).clamp(1, len(xp) - 1).view_as(x)
    x0, x1 = xp[idx - 1], xp[idx]
    f0, f1 = fp[idx - 1], fp[idx]
    t = (xc - x0) / (x1 - x0).clamp_min(1e-12)
    return f0 + t * (f1 - f0)


class CameraResponse:
    """A camera response function (irradiance -> display value) and its inverse.

    ``kind``: ``gamma`` (``x ** (1/gamma)``), ``srgb``, ``linear``, or a file holding a monotone
    curve: one column of display values sampled at uniform irradiance in ``[0, 1]``, or two columns
    ``(irradiance, value)`` (``.npy``, ``.txt``, ``.csv``).
    """

    def __init__(self, kind: str = "gamma", gamma: float = 2.2):
        self.kind = kind
        self.gamma = float(gamma)
        self._curve = None
        if kind not in ("gamma", "srgb", "linear"):
            self._curve = self._load_curve(Path(kind))

    @staticmethod
    def _load_curve(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        if not path.is_file():
            raise ConfigError(f"crf must be gamma, srgb, linear or a curve file; {str(path)!r} is none of these")
        try:
            if path.suffix == ".npy":
                a = np.load(str(path), allow_pickle=False)
            else:
                a = np.loadtxt(str(path), delimiter="," if path.suffix == ".csv" else None)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read a response curve ({e})") from None
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            irr, val = np.linspace(0, 1, len(a)), a
        elif a.ndim == 2 and 2 in a.shape:
            a = a if a.shape[1] == 2 else a.T
            irr, val = a[:, 0], a[:, 1]
        else:
            raise DataError(f"{path}: a response curve is one column of values or two columns (irradiance, value)")
        if len(val) < 2 or np.any(np.diff(irr) <= 0) or np.any(np.diff(val) < 0):
            raise DataError(f"{path}: the response curve must be increasing")
        irr = (irr - irr[0]) / (irr[-1] - irr[0])
        val = (val - val[0]) / max(val[-1] - val[0], 1e-12)
        # make the values strictly increasing so the inverse is a function
        val = val + np.linspace(0, 1e-9, len(val))
        return torch.tensor(irr), torch.tensor(val)

    def to_linear(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gamma":
            return gamma_to_linear(x, self.gamma)
        if self.kind == "srgb":
            return _srgb_to_linear(x)
        if self.kind == "linear":
            return x.clamp(0, 1)
        irr, val = self._curve
        return _interp(x.clamp(0, 1), val, irr)

    def from_linear(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gamma":
            return linear_to_gamma(x, self.gamma)
        if self.kind == "srgb":
            return _linear_to_srgb(x)
        if self.kind == "linear":
            return x.clamp(0, 1)
        irr, val = self._curve
        return _interp(x.clamp(0, 1), irr, val)

    def __repr__(self) -> str:
        return f"gamma {self.gamma:g}" if self.kind == "gamma" else self.kind


# ----------------------------------------------------------------------------------- convolution


def _pad_mode(mode: str, r: int, h: int, w: int) -> str:
    # reflect needs the pad to be smaller than the image; fall back to replicate otherwise
    return mode if (mode != "reflect" or (r < h and r < w)) else "replicate"


def _fft_len(n: int) -> int:
    """The smallest length >= ``n`` whose only prime factors are 2, 3 and 5 (fast for FFTs)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def convolve(x: torch.Tensor, k: torch.Tensor, padding: str = "reflect", method: str = "auto", fft_min_size: int = 31) -> torch.Tensor:
    """Convolve each image with its own kernels.

    Args:
        x: ``(N, C, H, W)`` images.
        k: ``(N, M, s, s)`` kernels (odd ``s``, origin at the centre), or ``(N, s, s)`` for ``M = 1``.
        padding: ``reflect`` or ``replicate`` boundary (no dark borders).
        method: ``direct``, ``fft`` or ``auto`` (FFT when ``M * s^2 >= fft_min_size^2``).

    Returns:
        ``(N, M, C, H, W)`` (or ``(N, C, H, W)`` when ``k`` was 3-D): ``y[n, m] = x[n] * k[n, m]``.
    """
    squeeze = k.dim() == 3
    if squeeze:
        k = k.unsqueeze(1)
    N, C, H, W = x.shape
    if k.shape[0] != N:
        raise ValueError(f"need one set of kernels per image: {k.shape[0]} kernels for {N} images")
    M, s = k.shape[1], k.shape[-1]
    if s % 2 == 0 or k.shape[-2] != s:
        raise ValueError(f"kernels must be square with an odd size, got {tuple(k.shape[-2:])}")
    k = k.to(x.dtype)
    r = s // 2
    if method == "auto":  # direct costs ~ M * s^2 per pixel; the FFT of the image is shared by the M kernels
        method = "fft" if M * s * s >= fft_min_size * fft_min_size else "direct"
    if r == 0:
        y = x.unsqueeze(1) * k.view(N, M, 1, 1, 1)
        return y[:, 0] if squeeze else y
    xp = F.pad(x, (r, r, r, r), mode=_pad_mode(padding, r, H, W))
    if method == "direct":
        # one depthwise group per (image, kernel, channel): the fast path (a channel multiplier is not)
        weight = k.flip(-1, -2).unsqueeze(2).expand(N, M, C, s, s).reshape(N * M * C, 1, s, s)
        xin = xp.unsqueeze(1).expand(N, M, C, H + 2 * r, W + 2 * r).reshape(1, N * M * C, H + 2 * r, W + 2 * r)
        y = F.conv2d(xin, weight, groups=N * M * C).view(N, M, C, H, W)
    elif method == "fft":
        # transform at the next 2-3-5-smooth length: the padded side (e.g. 152 = 8 x 19) can be 3x
        # slower than its neighbour 160; the wrap-around then falls in the zero tail, so the
        # interior is the same linear convolution
        Hp, Wp = _fft_len(H + 2 * r), _fft_len(W + 2 * r)
        kp = x.new_zeros(N, M, Hp, Wp)
        kp[..., :s, :s] = k
        kp = torch.roll(kp, shifts=(-r, -r), dims=(-2, -1))
        Xf = torch.fft.rfft2(xp, s=(Hp, Wp))  # (N, C, Hp, Wp//2+1), xp zero-extended
        Kf = torch.fft.rfft2(kp)  # (N, M, Hp, Wp//2+1)
        y = torch.fft.irfft2(Xf.unsqueeze(1) * Kf.unsqueeze(2), s=(Hp, Wp))
        y = y[..., r : r + H, r : r + W]
    else:
        raise ValueError(f"method must be direct, fft or auto, got {method!r}")
    return y[:, 0] if squeeze else y


def smooth_field(n: int, channels: int, h: int, w: int, grid: int, generator=None, device=None) -> torch.Tensor:
    """A smooth random field ``(n, channels, h, w)``: Gaussian noise on a ``grid``-cell lattice, bicubic-upsampled.

    The lattice has ``grid + 1`` points per side (scaled to the aspect ratio), so ``grid`` sets the
    number of smooth blobs across the frame. Values are roughly standard normal.
    """
    gy = max(1, round(grid * h / max(h, w))) + 1
    gx = max(1, round(grid * w / max(h, w))) + 1
    z = torch.randn(n, channels, gy, gx, generator=generator, device=generator.device if generator is not None else device)
    z = z.to(device) if device is not None else z
    return F.interpolate(z, size=(h, w), mode="bicubic", align_corners=True)


# ----------------------------------------------------------------------------------------- noise


def add_noise(y: torch.Tensor, shot: torch.Tensor, read: torch.Tensor, generator=None) -> torch.Tensor:
    """Poisson-Gaussian noise: ``y + sqrt(shot * y + read^2) * N(0, 1)``; ``shot``/``read`` are ``(N,)``."""
    gdev = generator.device if generator is not None else y.device
    eps = torch.randn(y.shape, generator=generator, device=gdev, dtype=y.dtype).to(y.device)
    var = shot.view(-1, 1, 1, 1).to(y) * y.clamp_min(0) + read.view(-1, 1, 1, 1).to(y) ** 2
    return y + var.sqrt() * eps


_NOISE_KERNEL = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def _row_quantiles(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q[i]``-quantile of row ``i`` of ``x`` ``(n, L)``, linear interpolation as :func:`torch.quantile`.

    One sort and a gather: no host synchronisation (``torch.quantile`` checks ``q`` on the host) and
    ``n`` values instead of ``n x n``.
    """
    v = x.sort(dim=1).values
    pos = q.to(v.dtype).clamp(0, 1).view(-1, 1) * (x.shape[1] - 1)
    lo = pos.floor().long().clamp(0, x.shape[1] - 1)
    hi = (lo + 1).clamp(max=x.shape[1] - 1)
    f = pos - lo.to(v.dtype)
    return (v.gather(1, lo) * (1 - f) + v.gather(1, hi) * f).view(-1)


def estimate_noise(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation of white Gaussian noise in each image and channel, ``(N, C)``, same scale as ``x``.

    Immerkær's Laplacian-difference operator (Immerkær 1996, "Fast noise variance estimation"), which
    cancels smooth image structure; its response to noise of std ``s`` has std ``6 s``. The median
    absolute response (x 1.4826) instead of the mean keeps edges and texture from inflating the
    estimate. ``x``: ``(N, C, H, W)``, at least 3x3.
    """
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        return x.new_zeros(n, c)
    # the operator is the outer product of [1, -2, 1] with itself: two second differences, ~30x
    # faster than a single-channel conv2d on the CPU and the same numbers
    xf = x.float()
    d = xf[..., :, 2:] - 2 * xf[..., :, 1:-1] + xf[..., :, :-2]
    r = (d[..., 2:, :] - 2 * d[..., 1:-1, :] + d[..., :-2, :]).abs().reshape(n, c, -1)
    return (1.4826 / 6.0) * r.median(dim=-1).values.to(x.dtype)


def quantize(y: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Round ``[0, 1]`` values to ``levels + 1`` equally spaced levels (8-bit by default)."""
    return torch.round(y.clamp(0, 1) * levels) / levels


# ----------------------------------------------------------------------------------- known blur


_MODES = ("uniform", "varying", "local", "sharp")
# static-shape rasterisation: samples for a path up to this many times the largest extent (the
# largest ratio seen in 20000 default trajectories was 6.7)
_MAX_PATH_RATIO = 8.0


class KnownBlur:
    """Callable that re-blurs a sharp batch with the known blur: ``blurry = known(sharp, generator)``.

    ``sharp``: ``(N, 3, H, W)`` float in ``[0, 1]`` on any device; the result has the same shape,
    dtype and device. Randomness (kernels, fields, noise) comes from ``generator`` (a
    :class:`torch.Generator`, CPU or on the images' device) or torch's global RNG.

    ``static_shapes``: every shape follows from the config and the batch shape, never from the drawn
    values, so a call never waits on the device and compiles to one graph (the batched training path;
    see :mod:`b2b_train.data.bank`). The blur has the same distribution; only the random stream is
    consumed differently: the kernels keep their whole canvas (their zero border changes nothing),
    every image gets the blend field and the sharp region whether or not its mode uses them, and the
    trajectory is rasterised from a fixed number of samples.
    """

    def __init__(self, cfg: KnownBlurConfig, device: torch.device | str | None = None, static_shapes: bool = False):
        if cfg.source != "bank":
            raise ConfigError("KnownBlur makes kernel-bank blur; use make_known_blur() for source 'bke'")
        self.cfg = cfg
        self.static_shapes = bool(static_shapes)
        self.device = torch.device(device) if device is not None else None
        self.crf = CameraResponse(cfg.crf, cfg.gamma)
        kc = cfg.kernels
        self.canvas = kc.canvas
        self.measured = load_kernels(kc.files) if kc.files else None
        if self.measured is not None:
            self.canvas = max(self.canvas, self.measured.shape[-1])
            self.measured = pad_kernels(self.measured, self.canvas)
        self.bank = None
        if kc.bank:
            g = torch.Generator().manual_seed(int(kc.bank_seed))
            self.bank = random_kernels(kc.bank, kc.canvas, tuple(kc.extent), kc.trajectory(), generator=g)
            self.bank = pad_kernels(self.bank, self.canvas)

    # -- pieces, usable alone ---------------------------------------------------------------------

    def sample_kernels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, s, s)`` kernels from the configured sources (on the generator's device / CPU)."""
        kc = self.cfg.kernels
        gdev = generator.device if generator is not None else torch.device("cpu")
        if self.bank is not None:
            idx = torch.randint(len(self.bank), (n,), generator=generator, device=gdev)
            if self.bank.device != gdev:
                self.bank = self.bank.to(gdev)  # once: indexing stays on the generator's device
            k = self.bank[idx]
        else:
            ratio = _MAX_PATH_RATIO if self.static_shapes else None
            k = random_kernels(n, kc.canvas, tuple(kc.extent), kc.trajectory(), generator=generator, device=gdev,
                               max_path_ratio=ratio)
            k = pad_kernels(k, self.canvas)
        if self.measured is not None and kc.p_files > 0:
            use = torch.rand(n, generator=generator, device=gdev) < kc.p_files
            idx = torch.randint(len(self.measured), (n,), generator=generator, device=gdev)
            if self.measured.device != gdev:
                self.measured = self.measured.to(gdev)
            meas = self.measured[idx]
            k = torch.where(use.view(n, 1, 1), meas, k)
        return k

    def sample_modes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n,)`` long: 0 uniform, 1 varying, 2 local, 3 sharp, drawn with the configured probabilities."""
        sc = self.cfg.spatial
        gdev = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(n, generator=generator, device=gdev)
        modes = (u >= sc.p_uniform).long() + (u >= sc.p_uniform + sc.p_varying).long()
        if sc.p_sharp > 0:  # the draw of the three blur modes is unchanged when p_sharp is 0
            modes = modes + (u >= 1 - sc.p_sharp).long()
        return modes

    def weights(self, modes: torch.Tensor, m: int, h: int, w: int, generator=None, device=None):
        """Per-pixel kernel weights ``(n, m, 1, h, w)`` (sum 1) and the sharp weight ``(n, 1, 1, h, w)``.

        Uniform images use kernel 0 everywhere; ``local`` images keep a smooth region exactly sharp
        (sharp weight 1), with a soft edge to the blurred part; ``sharp`` images are sharp everywhere.
        """
        sc = self.cfg.spatial
        n = modes.shape[0]
        gdev = generator.device if generator is not None else torch.device("cpu")
        device = device or gdev
        modes = modes.to(device)
        if m > 1:
            z = smooth_field(n, m, h, w, sc.grid, generator, device)
            wk = torch.softmax(z / sc.temperature, dim=1)
            onehot = torch.zeros_like(wk)
            onehot[:, 0] = 1
            wk = torch.where((modes == 0).view(n, 1, 1, 1), onehot, wk)
        else:
            wk = torch.ones(n, 1, h, w, device=device)
        frac = torch.rand(n, generator=generator, device=gdev).to(device)
        any_local = sc.p_local > 0 if self.static_shapes else bool((modes == 2).any())
        if not any_local:
            sharp = (modes == 3).float().view(n, 1, 1, 1, 1).expand(n, 1, 1, h, w)
            return wk.unsqueeze(2), sharp.contiguous()
        lo, hi = sc.sharp_fraction
        frac = lo + (hi - lo) * frac
        z = smooth_field(n, 1, h, w, max(1, sc.grid), generator, device)
        small = F.interpolate(z, size=(min(h, 64), min(w, 64)), mode="bilinear", align_corners=True).flatten(1)
        thresh = _row_quantiles(small, frac).view(n, 1, 1, 1)
        spread = small.std(dim=1).view(n, 1, 1, 1).clamp_min(1e-6) * sc.edge
        sharp = ((thresh - z) / spread + 0.5).clamp(0, 1)
        sharp = torch.where((modes == 2).view(n, 1, 1, 1), sharp, (modes == 3).to(sharp).view(n, 1, 1, 1).expand_as(sharp))
        return wk.unsqueeze(2), sharp.unsqueeze(2)

    # -- the whole pipeline -----------------------------------------------------------------------

    def apply(self, sharp: torch.Tensor, generator: torch.Generator | None = None, return_info: bool = False):
        """Blur a batch; with ``return_info`` also a dict of ``kernels`` ``(N, M, s, s)``,
        ``modes`` ``(N,)``, ``kernel_weights`` ``(N, M, 1, H, W)`` and ``sharp_weight`` ``(N, 1, 1, H, W)``."""
        if sharp.dim() != 4 or sharp.shape[1] != 3:
            raise DataError(f"known blur expects a (N, 3, H, W) batch, got shape {tuple(sharp.shape)}")
        cfg = self.cfg
        device = sharp.device
        dtype = sharp.dtype
        x = sharp.float()
        n, _, h, w = x.shape
        modes = self.sample_modes(n, generator)
        sc = cfg.spatial
        if self.static_shapes:
            m = sc.n_kernels if sc.p_varying + sc.p_local > 0 else 1
            k = self.sample_kernels(n * m, generator).view(n, m, self.canvas, self.canvas).to(device)
            local = sc.p_local + sc.p_sharp > 0
        else:  # the smallest shapes this batch needs (reads the draws on the host)
            m = sc.n_kernels if bool(((modes == 1) | (modes == 2)).any()) else 1
            k = self.sample_kernels(n * m, generator).view(n, m, self.canvas, self.canvas)
            kc = crop_kernels_to_support(k.flatten(0, 1))
            k = kc.view(n, m, kc.shape[-2], kc.shape[-1]).to(device)
            local = bool((modes >= 2).any())
        wk, ws = self.weights(modes, m, h, w, generator, device)
        lin = self.crf.to_linear(x)
        blurred = convolve(lin, k, cfg.padding, "auto", cfg.fft_min_size)  # (n, m, 3, h, w)
        out = blurred[:, 0] if m == 1 else (wk * blurred).sum(1)
        ws0 = ws[:, 0]
        if local:
            out = ws0 * lin + (1 - ws0) * out
        nc = cfg.noise
        y = self.crf.from_linear(out)
        if nc.match:  # the sensor noise the blur removed, measured on the wholly blurred frame
            have = estimate_noise(x) ** 2  # (n, 3) variance of the input's own noise
            lost = (have - estimate_noise(y) ** 2).clamp_min(0).sqrt()
        if local:  # where the frame stays sharp, return the input itself (no CRF round-trip error)
            y = torch.where(ws0 >= 1, x, y)
        # both noises are zero-mean Gaussians added to the same frame: one draw with the summed
        # variance is the same distribution at half the cost of two
        var = None
        gdev = generator.device if generator is not None else torch.device("cpu")
        if nc.match:
            where = (1 - ws0) if local else 1.0  # only where the frame was blurred
            var = (where * lost.view(n, 3, 1, 1).to(y)) ** 2
        if nc.p > 0 and (nc.shot[1] > 0 or nc.read[1] > 0):
            on = (torch.rand(n, generator=generator, device=gdev) < nc.p).float()
            shot = on * (nc.shot[0] + (nc.shot[1] - nc.shot[0]) * torch.rand(n, generator=generator, device=gdev))
            read = on * (nc.read[0] + (nc.read[1] - nc.read[0]) * torch.rand(n, generator=generator, device=gdev))
            if nc.match:  # only the part of the configured noise the input does not already have
                want = shot * 0.5 + read**2  # the configured variance at mid-grey
                f2 = (1 - have.mean(1).to(gdev) / want.clamp_min(1e-12)).clamp(0, 1)
                shot, read = shot * f2, read * f2.sqrt()
            sensor = shot.to(device).view(-1, 1, 1, 1) * y.clamp_min(0) + read.to(device).view(-1, 1, 1, 1) ** 2
            var = sensor if var is None else var + sensor
        if var is not None:
            eps = torch.randn(y.shape, generator=generator, device=gdev, dtype=y.dtype).to(device)
            y = y + var.sqrt() * eps
        y = y.clamp(0, 1)
        cc = cfg.compression
        if cc.p > 0:
            on = torch.rand(n, generator=generator, device=gdev) < cc.p
            qual = cc.quality[0] + (cc.quality[1] - cc.quality[0]) * torch.rand(n, generator=generator, device=gdev)
            y = torch.where(on.to(device).view(n, 1, 1, 1), jpeg_compress(y, qual.to(device)), y)
        if cfg.quantize:
            y = quantize(y)
        y = y.to(dtype)
        if return_info:
            return y, {"kernels": k, "modes": modes.to(device), "kernel_weights": wk, "sharp_weight": ws}
        return y

    def with_static_shapes(self) -> "KnownBlur":
        """The same known blur (same config, bank and measured kernels) with ``static_shapes`` on."""
        twin = copy.copy(self)
        twin.static_shapes = True
        return twin

    @torch.no_grad()
    def __call__(self, sharp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # full precision even when called inside a training loop's autocast region
        with torch.autocast(device_type=sharp.device.type, enabled=False):
            return self.apply(sharp, generator)

    def describe(self) -> str:
        c = self.cfg
        kc, sc, nc = c.kernels, c.spatial, c.noise
        src = f"camera-shake kernels {kc.extent[0]:g}-{kc.extent[1]:g} px on {self.canvas}x{self.canvas}"
        src += f" (fixed bank of {kc.bank}, seed {kc.bank_seed})" if kc.bank else " (fresh per batch)"
        if self.measured is not None and kc.p_files > 0:
            src += f", {kc.p_files:.0%} measured ({len(self.measured)} from {len(kc.files)} file(s))"
        mix = f"uniform {sc.p_uniform:.0%} / varying {sc.p_varying:.0%} / local {sc.p_local:.0%}"
        if sc.p_sharp:
            mix += f" / sharp {sc.p_sharp:.0%}"
        if sc.p_varying + sc.p_local > 0:
            mix += f" ({sc.n_kernels} kernels, grid {sc.grid}"
            mix += f", sharp {sc.sharp_fraction[0]:.0%}-{sc.sharp_fraction[1]:.0%} of local frames)" if sc.p_local else ")"
        noise = "no noise" if nc.p == 0 or (nc.shot[1] == 0 and nc.read[1] == 0) else (
            f"noise shot<={nc.shot[1]:g} read<={nc.read[1]:g} (p {nc.p:g})"
        )
        if nc.match:
            noise = "the input's own noise kept, " + noise
        if c.compression.p > 0:
            q = c.compression.quality
            noise += f"; JPEG quality {q[0]:g}-{q[1]:g} (p {c.compression.p:g})"
        return (
            f"known blur: {src}; {mix}; CRF {self.crf!r}; {noise}; "
            f"{'8-bit' if c.quantize else 'float'} output; {c.padding} borders"
        )

    def __repr__(self) -> str:
        return f"KnownBlur({self.describe()})"


def make_known_blur(cfg_or_preset="kernels", device: torch.device | str | None = None, overrides=()) -> "KnownBlur":
    """Build the known blur from a :class:`KnownBlurConfig`, a preset name / YAML path, or ``bke:PATH``.

    ``bke:PATH``: blur transferred by a trained BKE; ``PATH`` is a checkpoint written by
    ``b2b-train bke train`` (its metadata names the paired folders) or a known-blur YAML with
    ``source: bke``. An existing :class:`KnownBlur` is returned as is.
    """
    from ..config import load_config

    if isinstance(cfg_or_preset, KnownBlur) or (hasattr(cfg_or_preset, "describe") and callable(cfg_or_preset)):
        return cfg_or_preset
    if isinstance(cfg_or_preset, (str, os.PathLike)):
        spec = str(cfg_or_preset)
        if spec.startswith("bke:"):
            if overrides:
                raise ConfigError(f"KEY=VALUE overrides do not apply to {spec}; use a known-blur YAML with source: bke")

            return make_bke_known_blur(spec[4:], device=device)
        cfg = load_config(KnownBlurConfig, spec, overrides, kind="known")
    elif isinstance(cfg_or_preset, KnownBlurConfig):
        cfg = cfg_or_preset
        if overrides:
            from ..config import apply_overrides, from_dict, to_dict

            cfg = from_dict(KnownBlurConfig, apply_overrides(to_dict(cfg), overrides))
    elif isinstance(cfg_or_preset, dict):
        from ..config import apply_overrides, from_dict

        cfg = from_dict(KnownBlurConfig, apply_overrides(cfg_or_preset, overrides))
    else:
        raise ConfigError(f"known blur must be a preset name, a YAML path, 'bke:PATH' or a config, got {cfg_or_preset!r}")
    if cfg.source == "bke":
        return make_bke_known_blur(cfg, device=device)
    return KnownBlur(cfg, device)
