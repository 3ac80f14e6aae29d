"""Blur-kernel extractor (BKE) of Tran et al., CVPR 2021, "Explore Image Deblurring via Encoded Blur Kernel Space".

Blur2Blur (§3.3) uses it to move the blur of a known paired dataset (GoPro, REDS...) onto the
target camera's own sharp frames. Two functions share one image feature extractor:

* the kernel extractor ``F(sharp, blurry) -> code``: a spatial kernel code of ``kernel_dim``
  channels at 1/128 of the image size (features at 1/4, then five stride-2 convolutions);
* the adapter ``G(sharp, code) -> blurry``: a U-Net on the sharp image's features with the code
  concatenated at its innermost (1/128) level, then a reconstruction trunk (residual blocks and two
  pixel-shuffle x2 steps) that adds a residual to the sharp input.

Module names follow the authors' ``KernelWizard`` so their published checkpoints
(``GOPRO_woVAE.pth``, ``REDS_woVAE.pth``, ``GOPRO_wVAE.pth``) load without a key map; layers
without parameters (identity norms, paddings, activations) keep their positions in the
``nn.Sequential`` containers for the same reason.

Inputs are RGB in ``[0, 1]``. Internally every side must be a multiple of 128 and at least 256
(the code is 1/128 of the image and its reflect-padded blocks need 2x2); :meth:`forward`,
:meth:`encode` and :meth:`adapt` reflect-pad to that and crop back, so any ``H, W`` works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import NetSpec, register

__all__ = ["KernelWizard", "MULTIPLE"]

MULTIPLE = 128  # 4 (feature extractor) * 32 (five stride-2 steps in F / the adapter U-Net)
MIN_SIZE = 256  # the code's reflect-padded residual blocks need a code of at least 2x2


class _ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 plus identity, no normalisation (``ResidualBlock_noBN``)."""

    def __init__(self, nf: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        for c in (self.conv1, self.conv2):  # small residual init (x0.1 of Kaiming), as published
            nn.init.kaiming_normal_(c.weight, a=0, mode="fan_in")
            c.weight.data.mul_(0.1)
            nn.init.zeros_(c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class _PadResBlock(nn.Module):
    """Reflect-padded conv3x3 - ReLU - conv3x3 plus identity, bias-free (pix2pix ``ResnetBlock``, no norm)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.Identity(), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class _KernelExtractor(nn.Module):
    """``F``: concatenated sharp/blurry features ``(N, 2nf, h, w)`` -> code ``(N, out, h/32, w/32)``."""

    def __init__(self, nf: int, kernel_dim: int, n_blocks: int, use_vae: bool):
        super().__init__()
        self.kernel_dim = kernel_dim
        self.use_vae = use_vae
        out = kernel_dim * 2 if use_vae else kernel_dim
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(2 * nf, nf, 7, bias=False), nn.Identity(), nn.ReLU(True)]
        for i in range(5):
            cin, cout = min(nf * 2**i, out), min(nf * 2 ** (i + 1), out)
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.Identity(), nn.ReLU(True)]
        layers += [_PadResBlock(out) for _ in range(n_blocks)]
        self.model = nn.Sequential(*layers)

    def forward(self, feat_sharp: torch.Tensor, feat_blur: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((feat_sharp, feat_blur), dim=1))


class _DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 5, padding=2), nn.ReLU(True), nn.Conv2d(cout, cout, 5, padding=2), nn.ReLU(True)
        )

    def forward(self, x):
        return self.double_conv(x)


class _UnetLevel(nn.Module):
    """One U-Net level: stride-2 down, the inner level (or the kernel code), double conv, bilinear x2 up.

    Down path is ``[LeakyReLU, conv4x4/2]`` (just the conv at the outermost level); the up path is
    ``[ReLU, double conv 5x5, upsample]`` (+ tanh at the outermost). Inner levels return their output
    concatenated with their input (the skip connection).
    """

    def __init__(self, outer: int, inner: int, cin: int | None = None, sub: "_UnetLevel | None" = None,
                 outermost: bool = False, code_dim: int = 0):
        super().__init__()
        self.outermost = outermost
        self.innermost = sub is None
        cin = outer if cin is None else cin
        downconv = nn.Conv2d(cin, inner, 4, stride=2, padding=1, bias=False)
        up_in = inner + code_dim if self.innermost else inner * 2
        upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        if outermost:
            self.down = nn.Sequential(downconv)
            self.up = nn.Sequential(nn.ReLU(True), _DoubleConv(up_in, outer), upsample, nn.Tanh())
        elif self.innermost:
            self.down = nn.Sequential(nn.LeakyReLU(0.2), downconv)
            self.up = nn.Sequential(nn.ReLU(True), _DoubleConv(up_in, outer), upsample, nn.Identity())
        else:
            self.down = nn.Sequential(nn.LeakyReLU(0.2), downconv, nn.Identity())
            self.up = nn.Sequential(nn.ReLU(True), _DoubleConv(up_in, outer), upsample, nn.Identity())
        if sub is not None:
            self.submodule = sub

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.up(self.submodule(self.down(x), code))
        # The published model's down-path LeakyReLU runs in place, so its skip connection carries
        # LeakyReLU(x), not x; reproduce that so its weights give its outputs.
        a = self.down[0](x)
        d = self.down[1:](a)
        y = self.up(torch.cat((d, code), dim=1)) if self.innermost else self.up(self.submodule(d, code))
        return torch.cat((y, a), dim=1)


class _KernelAdapter(nn.Module):
    """``G``'s U-Net: features ``(N, nf, h, w)`` and code ``(N, kernel_dim, h/32, w/32)`` -> ``(N, nf, h, w)``."""

    def __init__(self, nf: int, kernel_dim: int):
        super().__init__()
        level = _UnetLevel(nf * 8, nf * 8, code_dim=kernel_dim)
        level = _UnetLevel(nf * 4, nf * 8, sub=level)
        level = _UnetLevel(nf * 2, nf * 4, sub=level)
        level = _UnetLevel(nf, nf * 2, sub=level)
        self.model = _UnetLevel(nf, nf, cin=nf, sub=level, outermost=True)

    def forward(self, feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.model(feat, code)


class KernelWizard(nn.Module):
    """The BKE: ``encode(sharp, blurry) -> code``, ``adapt(sharp, code) -> blurry``, ``forward = adapt(encode)``.

    Args (published GoPro/REDS config: ``nf=64, front_RBs=10, back_RBs=20, kernel_dim=512,
    n_blocks=4, use_vae=False``):
        in_channels: image channels.
        nf: feature width; the adapter U-Net goes up to ``8 * nf`` channels.
        front_RBs: residual blocks of the shared image feature extractor.
        back_RBs: residual blocks of the reconstruction trunk.
        kernel_dim: channels of the kernel code (the adapter concatenates it at ``8 * nf``).
        n_blocks: residual blocks at the end of the kernel extractor.
        use_vae: the extractor predicts mean and log-variance (``2 * kernel_dim`` channels);
            :meth:`encode` returns the mean (or a sample with ``sample=True``).
        recon_nf: width of the last two reconstruction convolutions (64 in the published model).
    """

    def __init__(self, in_channels: int = 3, nf: int = 64, front_RBs: int = 10, back_RBs: int = 20,
                 kernel_dim: int = 512, n_blocks: int = 4, use_vae: bool = False, recon_nf: int = 64):
        super().__init__()
        self.kernel_dim = kernel_dim
        self.use_vae = use_vae
        lrelu = nn.LeakyReLU(0.1)
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(in_channels, nf, 3, 1, 1), lrelu,
            nn.Conv2d(nf, nf, 3, 2, 1), lrelu,
            nn.Conv2d(nf, nf, 3, 2, 1), lrelu,
            *[_ResBlock(nf) for _ in range(front_RBs)],
        )
        self.kernel_extractor = _KernelExtractor(nf, kernel_dim, n_blocks, use_vae)
        self.adapter = _KernelAdapter(nf, kernel_dim)
        self.recon_trunk = nn.Sequential(
            *[_ResBlock(nf) for _ in range(back_RBs)],
            nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), lrelu,
            nn.Conv2d(nf, recon_nf * 4, 3, 1, 1), nn.PixelShuffle(2), lrelu,
            nn.Conv2d(recon_nf, recon_nf, 3, 1, 1), lrelu,
            nn.Conv2d(recon_nf, in_channels, 3, 1, 1),
        )

    # -- sizes ------------------------------------------------------------------------------------

    @staticmethod
    def padded_size(h: int, w: int) -> tuple[int, int]:
        """``(H, W)`` rounded up to the internal multiple (128), and at least 256."""
        return max(MIN_SIZE, -(-h // MULTIPLE) * MULTIPLE), max(MIN_SIZE, -(-w // MULTIPLE) * MULTIPLE)

    @classmethod
    def code_size(cls, h: int, w: int) -> tuple[int, int]:
        """Spatial size of the kernel code for an ``H x W`` image."""
        ph, pw = cls.padded_size(h, w)
        return ph // MULTIPLE, pw // MULTIPLE

    @classmethod
    def _pad(cls, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = cls.padded_size(h, w)
        if (ph, pw) == (h, w):
            return x
        mode = "reflect" if (ph - h < h and pw - w < w) else "replicate"
        return F.pad(x, (0, pw - w, 0, ph - h), mode=mode)

    # -- the two functions --------------------------------------------------------------------------

    def encode(self, sharp: torch.Tensor, blurry: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """``F``: ``(N,3,H,W)`` sharp and blurry -> kernel code ``(N, kernel_dim, ceil(H/128), ceil(W/128))``."""
        fs = self.feature_extractor(self._pad(sharp))
        fb = self.feature_extractor(self._pad(blurry))
        out = self.kernel_extractor(fs, fb)
        if not self.use_vae:
            return out
        mu, logvar = out[:, : self.kernel_dim], out[:, self.kernel_dim :]
        if sample:
            return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return mu

    def encode_distribution(self, sharp: torch.Tensor, blurry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the code (log-variance is zero without the VAE head)."""
        fs = self.feature_extractor(self._pad(sharp))
        fb = self.feature_extractor(self._pad(blurry))
        out = self.kernel_extractor(fs, fb)
        if not self.use_vae:
            return out, torch.zeros_like(out)
        return out[:, : self.kernel_dim], out[:, self.kernel_dim :]

    def adapt(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """``G``: apply the blur described by ``code`` to ``sharp`` ``(N,3,H,W)`` -> ``(N,3,H,W)``.

        ``code`` must have the spatial size :meth:`code_size` gives for ``H x W``.
        """
        h, w = sharp.shape[-2:]
        x = self._pad(sharp)
        want = self.code_size(h, w)
        if tuple(code.shape[-2:]) != want:
            raise ValueError(f"kernel code is {tuple(code.shape[-2:])} but a {h}x{w} image needs {want}")
        feat = self.feature_extractor(x)
        out = self.recon_trunk(self.adapter(feat, code)) + x
        return out[..., :h, :w]

    def forward(self, sharp: torch.Tensor, blurry: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``blurry`` from ``sharp`` through the code: ``G(sharp, F(sharp, blurry))``."""
        return self.adapt(sharp, self.encode(sharp, blurry))


# ------------------------------------------------------------------------------------- registry


def _remap_official(state: dict) -> dict:
    """The authors' checkpoints already use these names; drop a ``netG.``/``G.`` wrapper prefix if present."""
    out = {}
    for k, v in state.items():
        for p in ("netG.", "G.", "network."):
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


def _identity(state: dict) -> dict:
    return dict(state)


_TINY = dict(nf=8, front_RBs=1, back_RBs=1, kernel_dim=64, n_blocks=1, recon_nf=8)


def example_inputs(batch: int = 1, size: tuple[int, int] = (256, 256), device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sharp, blurry)`` random inputs for the two-input forward (tests, export)."""
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(batch, 3, *size, generator=g)
    blurry = (sharp + 0.05 * torch.randn(sharp.shape, generator=g)).clamp(0, 1)
    return sharp.to(device), blurry.to(device)


def _builder(**fixed):
    def build(**kw):
        return KernelWizard(**{**fixed, **kw})

    return build


_URL = "http://public.vinai.io/models/blur-kernel-space-exploring"
# forward(sharp, blurry) takes two images, so whoever feeds the net a sample asks example_inputs
_COMMON = dict(family="bke", remap=_remap_official, to_official=_identity, multiple=MULTIPLE, example_inputs=example_inputs)

# Parameter counts of the published configurations, computed layer by layer from the published
# options (nf 64, 10 + 20 residual blocks, kernel_dim 512, 4 extractor blocks): 65.9 M without the
# VAE head (most of it in the adapter's 5x5 double convolutions), 132.0 M with it (the head doubles
# the extractor's width). tests/test_bke.py recomputes them from the options, independently of this file.
_PUBLISHED_WOVAE = 65_902_467
_PUBLISHED_WVAE = 131_962_755

register(NetSpec(
    name="bke-kernelwizard",
    build=_builder(),
    published_params=_PUBLISHED_WOVAE,
    weights_file="GOPRO_woVAE.pth",
    url=f"{_URL}/GOPRO_woVAE.pth",
    description="blur-kernel extractor (Tran et al. CVPR 2021), GoPro woVAE config; REDS_woVAE.pth and "
    "mix_woVAE.pth share this layout",
    tiny_kwargs=dict(_TINY),
    **_COMMON,
))
register(NetSpec(
    name="bke-kernelwizard-vae",
    build=_builder(use_vae=True),
    published_params=_PUBLISHED_WVAE,
    weights_file="GOPRO_wVAE.pth",
    url=f"{_URL}/GOPRO_wVAE.pth",
    description="blur-kernel extractor with the VAE head (GoPro wVAE): codes can be sampled",
    tiny_kwargs={**_TINY, "use_vae": True},
    **_COMMON,
))
