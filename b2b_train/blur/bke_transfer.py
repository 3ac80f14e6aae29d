"""Blur transfer with a trained blur-kernel extractor (Tran et al. 2021), the paper's route to K (§3.3).

A random ``(blurry, sharp)`` pair of a paired dataset (GoPro, REDS, RSBlur...) gives a kernel code
``F(sharp_pair, blurry_pair)``; the adapter then applies that blur to one of the target camera's
sharp frames: ``G(sharp_target, code)``. :class:`BKETransfer` does this for a batch of any size and
is a drop-in known-blur source (same call as :class:`~b2b_train.blur.synth.KnownBlur`), selected
in configs with ``known: bke:PATH``.

Sizes: the code is a spatial map at 1/128 of the (padded) image. When the pair is at least as
large as the padded target, the code comes from a random crop of the pair of exactly that size
(the blur's spatial layout is kept at native scale); otherwise the pair's whole code is resized
(bilinear) to the target's code size.

Paired folders: :func:`pair_folders` matches files of the two folders by relative path without
extension (flat folders, or REDS-style ``seq/frame.png`` trees). Passing the same root twice
selects GoPro's ``scene/blur/*.png`` + ``scene/sharp/*.png`` layout.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError, DataError
from .known_blur_config import KnownBlurConfig

__all__ = ["pair_folders", "PairedImages", "BKETransfer", "load_bke", "make_bke_known_blur"]

_BLUR_NAMES = ("blur", "blur_gamma", "blurred", "blurry", "input", "lq")
_SHARP_NAMES = ("sharp", "gt", "target", "hq")


def _key(rel: Path) -> str:
    return rel.with_suffix("").as_posix()


def pair_folders(blurry_dir: str | os.PathLike, sharp_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Matched ``(blurry, sharp)`` image paths, sorted; DataError naming the problem if none match.

    Files are matched by relative path without extension. If both folders are the same root, the
    GoPro layout is assumed: a path component ``blur`` (or ``blur_gamma``, ``input``...) in a
    blurry file's path is replaced by ``sharp`` (or ``gt``, ``target``...) to find its partner.
    """
    from ..data.io import list_images

    bdir, sdir = Path(blurry_dir), Path(sharp_dir)
    if bdir.resolve() == sdir.resolve():
        files = list_images(bdir)
        by_key = {_key(p.relative_to(bdir)): p for p in files}
        pairs = []
        for p in files:
            parts = list(p.relative_to(bdir).parts)
            idx = [i for i, part in enumerate(parts[:-1]) if part.lower() in _BLUR_NAMES]
            if not idx:
                continue
            for sname in _SHARP_NAMES:
                q = parts.copy()
                q[idx[-1]] = sname
                partner = by_key.get(_key(Path(*q)))
                if partner is not None:
                    pairs.append((p, partner))
                    break
        if not pairs:
            raise DataError(
                f"{bdir}: no GoPro-style pairs (<scene>/blur/NAME + <scene>/sharp/NAME) found; "
                "or pass the blurry and the sharp folders separately"
            )
        return pairs
    blurry = {_key(p.relative_to(bdir)): p for p in list_images(bdir)}
    sharp = {_key(p.relative_to(sdir)): p for p in list_images(sdir)}
    common = sorted(set(blurry) & set(sharp))
    if not common:
        # fall back to bare file names (one folder nested, the other flat)
        bn = {Path(k).name: v for k, v in blurry.items()}
        sn = {Path(k).name: v for k, v in sharp.items()}
        if len(bn) == len(blurry) and len(sn) == len(sharp):
            names = sorted(set(bn) & set(sn))
            if names:
                return [(bn[n], sn[n]) for n in names]
        ex_b = next(iter(sorted(blurry)))
        ex_s = next(iter(sorted(sharp)))
        raise DataError(
            f"no file names in common between {bdir} and {sdir} (e.g. {ex_b!r} vs {ex_s!r}); "
            "pairs are matched by relative path without extension"
        )
    return [(blurry[k], sharp[k]) for k in common]


class PairedImages:
    """Paired images read on demand (uint8 RGB), with a small in-memory cache of decoded pairs."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], cache: int = 64):
        if not pairs:
            raise DataError("no image pairs")
        self.pairs = [(Path(b), Path(s)) for b, s in pairs]
        self.cache_size = int(cache)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    @classmethod
    def from_folders(cls, blurry_dir, sharp_dir, cache: int = 64) -> "PairedImages":
        return cls(pair_folders(blurry_dir, sharp_dir), cache=cache)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        from ..data.io import read_image

        b, s = self.pairs[i]
        bi, si = read_image(b), read_image(s)
        if bi.shape != si.shape:
            raise DataError(f"pair sizes differ: {b} is {bi.shape[1]}x{bi.shape[0]}, {s} is {si.shape[1]}x{si.shape[0]}")
        if self.cache_size > 0:
            self._cache[i] = (bi, si)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return bi, si

    def tensors(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(blurry, sharp)`` as float ``(3, H, W)`` in ``[0, 1]``."""
        from ..data.io import to_tensor

        b, s = self[i]
        return to_tensor(b), to_tensor(s)


def _randint(n: int, generator) -> int:
    if n <= 1:
        return 0
    gdev = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(n, (1,), generator=generator, device=gdev))


class BKETransfer:
    """Transfer blur from random pairs onto sharp images: ``blurry = transfer(sharp, generator)``.

    Args:
        bke: a :class:`~b2b_train.nets.bke.KernelWizard` (eval mode is set here).
        pairs: :class:`PairedImages` (or a list of ``(blurry_path, sharp_path)``).
        device: where the network runs (default: the network's device).
        quantize: round the output to 8-bit levels (like the kernel-bank known blur).
    """

    def __init__(self, bke, pairs, device: torch.device | str | None = None, quantize: bool = True, source: str = ""):
        self.bke = bke.eval()
        if device is not None:
            self.bke.to(device)
        self.pairs = pairs if isinstance(pairs, PairedImages) else PairedImages(pairs)
        self.quantize = quantize
        self.source = source

    @property
    def device(self) -> torch.device:
        return next(self.bke.parameters()).device

    @torch.no_grad()
    def code_for(self, index: int, h: int, w: int, generator=None) -> torch.Tensor:
        """Kernel code ``(1, C, ch, cw)`` from pair ``index`` for an ``h x w`` target."""
        blurry, sharp = self.pairs.tensors(index)
        dev = self.device
        ph, pw = self.bke.padded_size(h, w)
        want = self.bke.code_size(h, w)
        H, W = blurry.shape[-2:]
        if H >= ph and W >= pw:
            y0 = _randint(H - ph + 1, generator)
            x0 = _randint(W - pw + 1, generator)
            b = blurry[:, y0 : y0 + ph, x0 : x0 + pw]
            s = sharp[:, y0 : y0 + ph, x0 : x0 + pw]
            return self.bke.encode(s[None].to(dev), b[None].to(dev))
        code = self.bke.encode(sharp[None].to(dev), blurry[None].to(dev))
        if tuple(code.shape[-2:]) != want:
            code = F.interpolate(code, size=want, mode="bilinear", align_corners=False)
        return code

    @torch.no_grad()
    def apply(self, sharp: torch.Tensor, generator: torch.Generator | None = None, return_info: bool = False):
        if sharp.dim() != 4 or sharp.shape[1] != 3:
            raise DataError(f"blur transfer expects a (N, 3, H, W) batch, got shape {tuple(sharp.shape)}")
        n, _, h, w = sharp.shape
        idx = [_randint(len(self.pairs), generator) for _ in range(n)]
        code = torch.cat([self.code_for(i, h, w, generator) for i in idx])
        out = self.bke.adapt(sharp.to(self.device, torch.float32), code).clamp(0, 1)
        if self.quantize:
            out = torch.round(out * 255) / 255
        out = out.to(sharp.device, sharp.dtype)
        if return_info:
            return out, {"pairs": idx, "codes": code}
        return out

    def __call__(self, sharp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self.apply(sharp, generator)

    def describe(self) -> str:
        n = sum(p.numel() for p in self.bke.parameters())
        src = f" from {self.source}" if self.source else ""
        return (
            f"known blur: BKE transfer{src} ({n / 1e6:.1f} M params) from {len(self.pairs)} blurry/sharp pairs; "
            f"{'8-bit' if self.quantize else 'float'} output"
        )

    def __repr__(self) -> str:
        return f"BKETransfer({self.describe()})"


def load_bke(path: str | os.PathLike, device=None):
    """A BKE network from our safetensors (meta names the configuration) or an official ``.pth``.

    Returns ``(net, meta)``; official files have empty meta. The VAE variant is recognised by shape.
    """
    from ..nets import registry

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"BKE checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        net, meta = registry.load_from_file(p)
        if registry.spec(meta["net"]).family != "bke":
            raise CheckpointError(f"{p} holds a {meta['net']} network, not a blur-kernel extractor")
    else:
        from ..checkpoint import read_foreign_state_dict

        state = read_foreign_state_dict(p)
        w = state.get("kernel_extractor.model.16.weight")
        # the VAE head doubles the extractor's last width: 1024 channels instead of 512
        name = "bke-kernelwizard-vae" if (w is not None and w.shape[0] == 1024) else "bke-kernelwizard"
        net = registry.load(name, p)
        meta = {"net": name}
    if device is not None:
        net.to(device)
    return net.eval(), meta


def make_bke_known_blur(spec, device=None) -> BKETransfer:
    """A :class:`BKETransfer` from ``bke:PATH`` (its PATH) or a :class:`KnownBlurConfig` with ``source: bke``.

    PATH is our BKE checkpoint (from ``b2b-train bke train``; its metadata names the paired folders)
    or a known-blur YAML whose ``bke`` section gives ``checkpoint``, ``pairs_blurry``, ``pairs_sharp``.
    """
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        if p.suffix in (".yaml", ".yml"):
            from ..config import load_config

            cfg = load_config(KnownBlurConfig, p, kind="known")
            if cfg.source != "bke":
                raise ConfigError(f"{p}: 'bke:' needs a config with source: bke")
            return make_bke_known_blur(cfg, device)
        net, meta = load_bke(p, device)
        blurry, sharp = meta.get("pairs_blurry"), meta.get("pairs_sharp")
        if not blurry or not sharp:
            raise ConfigError(
                f"{p} does not record its paired folders; use a known-blur YAML with source: bke and "
                "bke.checkpoint / bke.pairs_blurry / bke.pairs_sharp"
            )
        return BKETransfer(net, PairedImages.from_folders(blurry, sharp), device, source=p.name)
    cfg = spec
    b = cfg.bke
    if not b.checkpoint:
        raise ConfigError("known blur source 'bke' needs bke.checkpoint")
    net, meta = load_bke(b.checkpoint, device)
    blurry = b.pairs_blurry or meta.get("pairs_blurry")
    sharp = b.pairs_sharp or meta.get("pairs_sharp")
    if not blurry or not sharp:
        raise ConfigError("known blur source 'bke' needs bke.pairs_blurry and bke.pairs_sharp")
    return BKETransfer(net, PairedImages.from_folders(blurry, sharp), device, quantize=cfg.quantize, source=Path(b.checkpoint).name)
