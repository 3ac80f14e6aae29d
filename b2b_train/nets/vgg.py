"""VGG16 / VGG19 convolutional features (Simonyan & Zisserman 2015) for perceptual losses.

The layers and parameter names are those of torchvision's ``vgg16``/``vgg19`` ``features``
(``features.0.weight``, ``features.2.bias``...), so torchvision's ImageNet files
(``vgg16-397923af.pth``, ``vgg19-dcbb9e9d.pth``) load after dropping their ``classifier.*``
entries. Layers are addressed by name: ``conv{b}_{i}`` and ``relu{b}_{i}`` (block b, i-th
convolution in it) and ``pool{b}``. The forward pass returns only the requested layers and stops
after the deepest one, so asking for ``relu2_2`` costs two blocks, not sixteen layers.

ReLUs are not in-place here (torchvision's are), so ``conv3_3`` is the pre-activation map even
when ``relu3_3`` is also requested. Note: the released Blur2Blur code slices torchvision's VGG16
right after ``conv2_2``, ``conv3_3``, ``conv4_1``, ``conv4_3`` and ``conv5_1``, but the in-place
ReLU that starts each next slice overwrites the first four, so what it really compares is
``relu2_2``, ``relu3_3``, ``relu4_1``, ``relu4_3`` and ``conv5_1``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .registry import NetSpec, StateDict, register

__all__ = ["VGGFeatures", "layer_names", "remap_torchvision", "CFGS", "IMAGENET_MEAN", "IMAGENET_STD"]

# channels per convolution, "M" = 2x2 max pool (torchvision configurations "D" and "E")
CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def layer_names(arch: str = "vgg19") -> list[str]:
    """Names of the ``features`` layers in order: index i of the list is ``features.i``."""
    if arch not in CFGS:
        raise ConfigError(f"unknown VGG architecture {arch!r} (known: {', '.join(CFGS)})")
    names, block, conv = [], 1, 0
    for v in CFGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


class VGGFeatures(nn.Module):
    """Named intermediate features of VGG16/VGG19.

    Args:
        arch: ``vgg16`` or ``vgg19``.
        layers: names of the layers to return (see :func:`layer_names`), e.g.
            ``("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")``.
        normalize: input is RGB in [0, 1]; subtract the ImageNet mean and divide by its std first
            (what torchvision's weights expect). False feeds the input unchanged.
        requires_grad: train the VGG weights too (normally frozen).

    Forward: ``x`` (N, 3, H, W) -> ``{name: (N, C, H / 2**p, W / 2**p)}`` in the order of
    ``layers`` (p = pools passed). The full ``features`` stack is kept so published files load
    strictly; only layers up to the deepest requested one run.
    """

    def __init__(self, arch: str = "vgg19", layers: Sequence[str] = DEFAULT_LAYERS, normalize: bool = True, requires_grad: bool = False):
        super().__init__()
        names = layer_names(arch)
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ConfigError("VGGFeatures needs at least one layer name")
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ConfigError(f"unknown {arch} layer(s) {', '.join(unknown)}; known: {', '.join(names)}")
        self.arch, self.layers, self.normalize = arch, layers, bool(normalize)
        self._index = {n: i for i, n in enumerate(names)}
        self._wanted = {self._index[n]: n for n in layers}
        self.last = max(self._wanted)  # index of the deepest layer needed

        mods: list[nn.Module] = []
        cin = 3
        for v in CFGS[arch]:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*mods)
        # not saved: torchvision files do not have them
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(requires_grad)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.normalize:
            x = (x - self.mean) / self.std
        found: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._wanted:
                found[self._wanted[i]] = x
            if i == self.last:
                break
        return {n: found[n] for n in self.layers}


def remap_torchvision(state: StateDict) -> StateDict:
    """torchvision full-model VGG state dict -> ours: keep ``features.*``, drop ``classifier.*``.

    A bare ``features`` state dict (``0.weight``...) gets its ``features.`` prefix back.
    """
    if any(k.startswith("features.") for k in state):
        return {k: v for k, v in state.items() if k.startswith("features.")}
    if state and all(k.split(".", 1)[0].isdigit() for k in state):
        return {f"features.{k}": v for k, v in state.items()}
    return dict(state)


def _to_official(state: StateDict) -> StateDict:
    return {k: v for k, v in state.items() if k.startswith("features.")}


def _build(arch: str):
    def build(**kw) -> VGGFeatures:
        return VGGFeatures(arch, **kw)

    return build


register(NetSpec(
    name="vgg16",
    family="features",
    build=_build("vgg16"),
    remap=remap_torchvision,
    to_official=_to_official,
    published_params=14_714_688,  # torchvision vgg16 features
    multiple=1,
    weights_file="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    description="VGG16 features (torchvision ImageNet weights), named layers, for the reference-code perceptual loss",
    sha256_prefix="397923af",
    tiny_kwargs={"layers": ("relu1_2", "relu2_1")},
))
register(NetSpec(
    name="vgg19",
    family="features",
    build=_build("vgg19"),
    remap=remap_torchvision,
    to_official=_to_official,
    published_params=20_024_384,  # torchvision vgg19 features
    multiple=1,
    weights_file="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    description="VGG19 features (torchvision ImageNet weights), named layers, for the paper's perceptual loss",
    sha256_prefix="dcbb9e9d",
    tiny_kwargs={"layers": ("relu1_2", "relu2_1")},
))
