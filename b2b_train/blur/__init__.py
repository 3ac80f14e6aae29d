"""Known-blur synthesis (paper §3.3): camera-shake kernel bank, measured kernels, BKE transfer.

    from b2b_train.blur import make_known_blur
    known = make_known_blur("kernels", device="cuda")      # preset b2b_train/configs/known/kernels.yaml
    blurry = known(sharp, generator=torch.Generator().manual_seed(0))   # (N,3,H,W) in [0,1]
"""

from .kernels import (  # noqa: F401
    TrajectoryParams,
    kernel_extent,
    load_kernels,
    normalize_kernels,
    random_kernels,
    random_trajectories,
    rasterize_trajectories,
)
from .known_blur_config import (  # noqa: F401
    BKESourceConfig,
    CompressionConfig,
    KernelConfig,
    KnownBlurConfig,
    NoiseConfig,
    SpatialConfig,
)
from .synth import (  # noqa: F401
    CameraResponse,
    KnownBlur,
    convolve,
    make_known_blur,
)

__all__ = [
    "KnownBlurConfig",
    "KernelConfig",
    "SpatialConfig",
    "NoiseConfig",
    "CompressionConfig",
    "BKESourceConfig",
    "KnownBlur",
    "make_known_blur",
    "CameraResponse",
    "convolve",
    "TrajectoryParams",
    "random_trajectories",
    "rasterize_trajectories",
    "random_kernels",
    "normalize_kernels",
    "kernel_extent",
    "load_kernels",
]
