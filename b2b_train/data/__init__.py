"""Data: camera clips -> cached frames, blur degree, scene-disjoint B/S sets, sampler, curriculum.

* :mod:`.io` - reading and writing images and clips;
* :mod:`.frames` - :func:`extract_frames` (decode once into a cache, learned blur threshold);
* :mod:`.sets` - :func:`make_unpaired`, :class:`UnpairedDataset`, :func:`load_unpaired`;
* :mod:`.transforms` - :class:`AugmentConfig` and pure tensor augmentations;
* :mod:`.curriculum` - :func:`curriculum_fraction`, :func:`select_blurriest`.
"""

from .curriculum import curriculum_fraction, select_blurriest
from .frames import FrameOptions, FrameRecord, FrameSet, discover_sources, extract_frames, otsu_threshold
from .sets import UnpairedBatch, UnpairedDataset, UnpairedSplit, load_unpaired, make_unpaired, parse_ratio, split_scenes
from .transforms import AugmentConfig, augment, augment_together

__all__ = [
    "curriculum_fraction",
    "select_blurriest",
    "FrameOptions",
    "FrameRecord",
    "FrameSet",
    "discover_sources",
    "extract_frames",
    "otsu_threshold",
    "UnpairedBatch",
    "UnpairedDataset",
    "UnpairedSplit",
    "load_unpaired",
    "make_unpaired",
    "parse_ratio",
    "split_scenes",
    "AugmentConfig",
    "augment",
    "augment_together",
]
