"""Networks, one per file, no I/O inside; :mod:`.registry` builds and loads them by name."""

from . import bke, discriminator, highpass_discriminator, mimo_unet, nafnet, restormer, vgg  # noqa: F401  (fill the registry)
from .registry import REGISTRY, NetSpec, build, load, names, register, spec  # noqa: F401
