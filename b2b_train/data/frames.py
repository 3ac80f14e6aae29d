"""A camera dataset -> frames cached once on disk, each with its clip (scene), index, time and blur degree.

Inputs are folders of video clips and/or images (or single files), labelled ``blurry`` / ``sharp``
(sub-folders named so, or the ``blurry=`` / ``sharp=`` arguments) or unlabelled. Every clip is
decoded ONCE into the cache folder: one compact uint8 ``.npy`` (N,H,W,3) per source file (memory-
mapped when read) or a folder of PNGs, plus ``manifest.json``. A source's cache entry is keyed by
its size, modification time and the extraction options, so a changed clip (or changed options) is
re-extracted and everything else is reused without decoding.

Scenes (what the B/S split keeps together), per input folder R:

* a video ``R/a/b.mkv`` is one clip; scene ``a/b``;
* images in a sub-folder ``R/seq/*.png`` are one clip (an image sequence); scene ``seq``;
* an image directly in ``R`` is a clip and a scene of its own (scene = its stem).

The same scene name under ``blurry/`` and ``sharp/`` is the same scene (GoPro-style layouts).

Unlabelled frames are labelled by blur degree (variance of the Laplacian, low = blurry): the
threshold is learned from their distribution by Otsu's method on log10(variance) (or given),
written into the manifest and returned in :attr:`FrameSet.threshold`.

Damaged input, consistently: a source that yields no frame (zero bytes, not a video, no decodable
frame) is **skipped with a warning** when other sources are usable, and listed in
:attr:`FrameSet.skipped` and the manifest; with ``strict=True``, or when nothing usable is left,
it raises :class:`~b2b_train.errors.DataError` naming the file(s). A truncated clip keeps the
frames decoded before the damage, with a warning that it ends early.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np

from ..errors import DataError
from ..metrics import LAPLACE_3X3, LUMA_601
from . import io as dio

__all__ = [
    "LABELS",
    "FrameOptions",
    "Source",
    "FrameRecord",
    "FrameSet",
    "discover_sources",
    "extract_frames",
    "open_frames",
    "otsu_threshold",
    "DataWarning",
    "DECODE_STATS",
    "blur_degree",
]

LABELS = ("blurry", "sharp")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1

# Process-wide counters (tests check that a second run decodes nothing).
DECODE_STATS = {"videos_decoded": 0, "images_decoded": 0}


class DataWarning(UserWarning):
    """A source was skipped or is shorter than its header says."""


@dataclass(frozen=True)
class FrameOptions:
    """How frames are taken from clips.

    step: keep every ``step``-th frame; max_frames: at most this many frames per clip (after the
    step); max_side: shrink frames whose longer side exceeds this (INTER_AREA; None = keep size);
    storage: ``npy`` (one uint8 array per source, memory-mapped) or ``png`` (smaller on disk).
    """

    step: int = 1
    max_frames: int | None = None
    max_side: int | None = None
    storage: Literal["npy", "png"] = "npy"

    def __post_init__(self):
        if self.step < 1:
            raise DataError(f"frame step must be >= 1, got {self.step}")
        if self.max_frames is not None and self.max_frames < 1:
            raise DataError(f"max frames per clip must be >= 1, got {self.max_frames}")
        if self.max_side is not None and self.max_side < 16:
            raise DataError(f"max side must be >= 16 px, got {self.max_side}")
        if self.storage not in ("npy", "png"):
            raise DataError(f"frame storage must be 'npy' or 'png', got {self.storage!r}")


@dataclass(frozen=True)
class Source:
    """One input file and where it belongs."""

    path: Path
    kind: Literal["video", "image"]
    label: str | None
    clip: str  # unique clip id: "<label or unlabelled>/<scene>[.ext]"
    scene: str
    order: int = 0  # position of an image inside its sequence


@dataclass
class FrameRecord:
    """One cached frame."""

    clip: str
    scene: str
    index: int  # frame index in the clip (for image sequences: position in the sorted folder)
    timestamp: float | None  # seconds (presentation time) for video frames; None for images
    label: str | None  # the given label (None = unlabelled)
    degree: float  # blur degree: Laplacian variance on the 0..255 scale (low = blurry)
    source: str  # absolute path of the source file
    file: str  # cache file (relative to the cache root)
    slot: int  # position inside the cache file
    auto_label: str | None = None  # blurry/sharp by the learned threshold (unlabelled frames)
    height: int = 0
    width: int = 0

    @property
    def effective_label(self) -> str | None:
        return self.label if self.label is not None else self.auto_label


# ----------------------------------------------------------------------------- discovery

def _as_list(x) -> list[Path]:
    if x is None:
        return []
    if isinstance(x, (str, os.PathLike)):
        return [Path(x)]
    return [Path(p) for p in x]


def _kind(p: Path) -> str | None:
    s = p.suffix.lower()
    if s in dio.VIDEO_EXTS:
        return "video"
    if s in dio.IMAGE_EXTS:
        return "image"
    return None


def _sources_in(root: Path, label: str | None, skip_dirs: Sequence[Path] = ()) -> list[Source]:
    tag = label or "unlabelled"
    if root.is_file():
        k = _kind(root)
        if k is None:
            raise DataError(f"{root}: not a video or image file (known: {', '.join(dio.VIDEO_EXTS + dio.IMAGE_EXTS)})")
        return [Source(root.resolve(), k, label, f"{tag}/{root.name}", root.stem)]
    if not root.exists():
        raise DataError(f"input not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a file or folder: {root}")
    skip = [d.resolve() for d in skip_dirs]
    out: list[Source] = []
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file() and _kind(p) is not None)
    except PermissionError as e:
        raise DataError(f"cannot read folder {root}: {e.strerror}") from None
    seq_pos: dict[str, int] = {}
    for p in files:
        rp = p.resolve()
        if any(rp.is_relative_to(d) for d in skip):
            continue
        rel = p.relative_to(root)
        if _kind(p) == "video":
            scene = rel.with_suffix("").as_posix()
            out.append(Source(rp, "video", label, f"{tag}/{rel.as_posix()}", scene))
        elif len(rel.parts) == 1:
            out.append(Source(rp, "image", label, f"{tag}/{rel.as_posix()}", rel.stem))
        else:
            scene = rel.parent.as_posix()
            i = seq_pos.get(scene, 0)
            seq_pos[scene] = i + 1
            out.append(Source(rp, "image", label, f"{tag}/{scene}/", scene, order=i))
    return out


def discover_sources(
    root: str | os.PathLike | None = None,
    blurry: str | os.PathLike | Sequence | None = None,
    sharp: str | os.PathLike | Sequence | None = None,
    unlabelled: str | os.PathLike | Sequence | None = None,
) -> list[Source]:
    """Find every clip and image of a camera dataset.

    ``root``: a folder; its ``blurry/`` and ``sharp/`` sub-folders are labelled, anything else in it
    is unlabelled. ``blurry`` / ``sharp`` / ``unlabelled``: explicit folders or files (or lists).
    """
    out: list[Source] = []
    if root is not None:
        root = Path(root)
        if not root.exists():
            raise DataError(f"dataset folder not found: {root}")
        labelled = [root / lab for lab in LABELS if (root / lab).is_dir()]
        for lab in LABELS:
            if (root / lab).is_dir():
                out += _sources_in(root / lab, lab)
        out += _sources_in(root, None, skip_dirs=labelled)
    for lab, arg in (("blurry", blurry), ("sharp", sharp), (None, unlabelled)):
        for p in _as_list(arg):
            out += _sources_in(p, lab)
    if not out:
        where = ", ".join(str(p) for p in ([root] if root else []) + _as_list(blurry) + _as_list(sharp) + _as_list(unlabelled))
        raise DataError(f"no video clips or images found in {where or '(no input given)'}")
    # the same file given twice (e.g. as blurry and unlabelled) is ambiguous
    seen: dict[Path, Source] = {}
    for s in out:
        if s.path in seen and seen[s.path].label != s.label:
            raise DataError(f"{s.path} is given both as {seen[s.path].label or 'unlabelled'} and {s.label or 'unlabelled'}")
        seen[s.path] = s
    uniq = {(s.path, s.label): s for s in out}
    return list(uniq.values())


# ----------------------------------------------------------------------------- threshold

def otsu_threshold(degrees: Sequence[float] | np.ndarray) -> float:
    """Blur threshold from a distribution of Laplacian variances (Otsu on log10 of them).

    Exact Otsu over the sorted values: the split maximising the between-class variance of
    log10(degree); the threshold is the geometric middle of the two values around the split (so
    frames at or above it are ``sharp``). Needs at least two distinct values.
    """
    d = np.asarray(degrees, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        raise DataError(f"cannot learn a blur threshold from {d.size} frame(s): need at least 2")
    x = np.sort(np.log10(np.maximum(d, 1e-6)))
    if x[-1] - x[0] < 1e-12:
        raise DataError("cannot learn a blur threshold: every frame has the same blur degree")
    n = x.size
    c = np.cumsum(x)
    k = np.arange(1, n)  # size of the lower class for each split between x[k-1] and x[k]
    w0 = k / n
    w1 = 1.0 - w0
    m0 = c[:-1] / k
    m1 = (c[-1] - c[:-1]) / (n - k)
    between = w0 * w1 * (m0 - m1) ** 2
    valid = x[1:] > x[:-1]  # only split between different values
    between = np.where(valid, between, -1.0)
    i = int(np.argmax(between))
    return float(10 ** ((x[i] + x[i + 1]) / 2.0))


# ----------------------------------------------------------------------------- the frame set

class FrameSet:
    """Cached frames of a camera dataset (or a subset of them).

    ``len(fs)``, ``fs.image(i)`` (uint8 HxWx3 RGB), ``fs.records[i]`` (:class:`FrameRecord`),
    ``fs.clips()`` / ``fs.scenes()`` (id -> frame positions), ``fs.subset(positions)``,
    ``fs.with_label("blurry")``, ``fs.threshold`` (learned blur threshold or None), ``fs.skipped``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        records: list[FrameRecord],
        threshold: float | None = None,
        threshold_source: str | None = None,
        skipped: list[tuple[str, str]] | None = None,
        stats: dict | None = None,
        _arrays: dict | None = None,
    ):
        self.root = Path(root)
        self.records = records
        self.threshold = threshold
        self.threshold_source = threshold_source
        self.skipped = list(skipped or [])
        self.stats = dict(stats or {})
        self._arrays: dict[str, np.ndarray] = _arrays if _arrays is not None else {}

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"FrameSet({len(self)} frames, {len(self.clips())} clips, root={str(self.root)!r})"

    # -- access
    def image(self, i: int) -> np.ndarray:
        """Frame ``i`` as uint8 HxWx3 RGB (a read-only memory-mapped view for ``npy`` storage)."""
        r = self.records[i]
        if r.file.endswith(".npy"):
            arr = self._arrays.get(r.file)
            if arr is None:
                path = self.root / r.file
                try:
                    arr = np.load(path, mmap_mode="r")
                except (OSError, ValueError) as e:
                    raise DataError(f"frame cache file {path} is unreadable ({e}); delete the cache folder to rebuild it") from None
                self._arrays[r.file] = arr
            return arr[r.slot]
        return dio.read_image(self.root / r.file / f"{r.slot:06d}.png")

    def tensor(self, i: int):
        """Frame ``i`` as float32 (3,H,W) in [0,1]."""
        return dio.to_tensor(np.array(self.image(i)))

    def degrees(self) -> np.ndarray:
        return np.array([r.degree for r in self.records], dtype=np.float64)

    def clips(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            out.setdefault(r.clip, []).append(i)
        return out

    def scenes(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            out.setdefault(r.scene, []).append(i)
        return out

    def subset(self, positions: Iterable[int]) -> "FrameSet":
        recs = [self.records[i] for i in positions]
        return FrameSet(self.root, recs, self.threshold, self.threshold_source, self.skipped, self.stats, self._arrays)

    def where(self, pred: Callable[[FrameRecord], bool]) -> "FrameSet":
        return self.subset(i for i, r in enumerate(self.records) if pred(r))

    def with_label(self, label: str) -> "FrameSet":
        """Frames whose given label, or else learned label, is ``label``."""
        return self.where(lambda r: r.effective_label == label)

    def min_size(self) -> tuple[int, int]:
        """Smallest (height, width) over the frames."""
        if not self.records:
            return (0, 0)
        return min(r.height for r in self.records), min(r.width for r in self.records)

    def summary(self) -> dict:
        labels: dict[str, int] = {}
        for r in self.records:
            k = r.effective_label or "unlabelled"
            labels[k] = labels.get(k, 0) + 1
        return {
            "frames": len(self),
            "clips": len(self.clips()),
            "scenes": len(self.scenes()),
            "labels": labels,
            "blur_threshold": self.threshold,
            "blur_threshold_source": self.threshold_source,
            "blur_degree": "variance of the Laplacian of the luma (0..255 scale); frames below the threshold are blurry",
            "skipped": [{"path": p, "reason": why} for p, why in self.skipped],
            **({"stats": self.stats} if self.stats else {}),
        }


# ----------------------------------------------------------------------------- cache

def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _options_key(opts: FrameOptions, kind: str) -> dict:
    d = asdict(opts)
    if kind == "image":  # step / max_frames do not apply to one image
        d["step"], d["max_frames"] = 1, None
    return d


def _cache_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:40] or "clip"
    h = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return f"{stem}-{h}"


def _resize(img: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side:
        return img
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    import cv2

    s = max_side / float(max(h, w))
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


_LAPLACE = np.array(LAPLACE_3X3, dtype=np.float32)
_LUMA = np.array([LUMA_601], dtype=np.float32)


def blur_degree(img: np.ndarray) -> float:
    """Blur degree of a uint8 RGB frame: the same quantity as ``metrics.laplacian_variance_np``
    (Laplacian variance of the 601 luma, 0..255 scale, valid region, from the same weights and
    kernel), computed with OpenCV, which is ~7x faster on a CPU: extraction scores every decoded
    frame. It equals the tensor measure within float32 rounding, not bit for bit, so the two stay
    apart (the frame cache stores these values)."""
    import cv2

    if img.ndim == 2:
        y = img.astype(np.float32)
    else:
        y = cv2.transform(np.ascontiguousarray(img).astype(np.float32), _LUMA)
    if y.shape[0] < 3 or y.shape[1] < 3:
        return 0.0
    lap = cv2.filter2D(y, cv2.CV_32F, _LAPLACE)[1:-1, 1:-1]
    return float(lap.var(dtype=np.float64))


@contextlib.contextmanager
def _locked(folder: Path):
    """Exclusive lock on the cache folder (several processes, e.g. DDP ranks, may extract)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not on Linux/macOS: no lock
        yield
        return
    with open(folder / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _read_manifest(root: Path) -> dict:
    p = root / MANIFEST
    if not p.is_file():
        return {"version": MANIFEST_VERSION, "sources": {}}
    try:
        data = json.loads(p.read_text())
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or not isinstance(data.get("sources"), dict):
            raise ValueError("unexpected layout")
        return data
    except (OSError, ValueError) as e:
        warnings.warn(f"frame cache manifest {p} unreadable ({e}); re-extracting", DataWarning, stacklevel=3)
        return {"version": MANIFEST_VERSION, "sources": {}}


def _write_manifest(root: Path, data: dict) -> None:
    from ..checkpoint import atomic_write

    atomic_write(root / MANIFEST, json.dumps(data, indent=1, allow_nan=False).encode())


_NPY_HEADER = 128  # bytes; the real header is written over this placeholder once N is known


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header for uint8 C-order data of ``shape``, padded to 128 bytes."""
    d = "{'descr': '|u1', 'fortran_order': False, 'shape': %r, }" % (tuple(int(v) for v in shape),)
    body = d.ljust(_NPY_HEADER - 10 - 1) + "\n"
    if len(body) + 10 != _NPY_HEADER:
        raise DataError(f"frame array shape {shape} too large for the cache header")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")


class _FrameWriter:
    """Streams frames of one source into the cache (never holds a whole clip in memory).

    ``npy``: one uint8 (N,H,W,3) .npy written frame by frame behind a placeholder header that is
    filled in at the end; ``png``: one PNG per frame. Both appear atomically (temp name + rename).
    """

    def __init__(self, root: Path, name: str, storage: str):
        self.storage = storage
        self.rel = f"frames/{name}.npy" if storage == "npy" else f"frames/{name}"
        self.dst = root / self.rel
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dst.with_name(self.dst.name + f".tmp{os.getpid()}")
        self.n = 0
        self.shape: tuple[int, ...] | None = None
        if storage == "npy":
            self.f = open(self.tmp, "wb")
            self.f.write(b"\0" * _NPY_HEADER)
        else:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)
            self.f = None

    def add(self, img: np.ndarray) -> None:
        if self.shape is None:
            self.shape = img.shape
        elif img.shape != self.shape:
            raise DataError(f"frame {self.n} is {img.shape[1]}x{img.shape[0]}, the clip's first is {self.shape[1]}x{self.shape[0]}")
        if self.f is not None:
            self.f.write(np.ascontiguousarray(img, dtype=np.uint8).tobytes())
        else:
            dio.write_image(self.tmp / f"{self.n:06d}.png", img)
        self.n += 1

    def finish(self) -> str:
        import shutil

        if self.n == 0:
            self.abort()
            raise DataError("no frames")
        if self.f is not None:
            self.f.seek(0)
            self.f.write(_npy_header((self.n, *self.shape)))
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.dst)
        else:
            shutil.rmtree(self.dst, ignore_errors=True)
            os.replace(self.tmp, self.dst)
        return self.rel

    def abort(self) -> None:
        import shutil

        if self.storage == "npy":
            if self.f is not None and not self.f.closed:
                self.f.close()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _extract_one(src: Source, opts: FrameOptions, root: Path, warn: Callable[[str], None]) -> dict:
    """Decode one source into the cache; returns its manifest entry. Raises DataError if unusable."""
    meta: list[list] = []
    writer = _FrameWriter(root, _cache_name(src.path), opts.storage)
    try:
        if src.kind == "video":
            DECODE_STATS["videos_decoded"] += 1
            for idx, t, img in dio.iter_video_frames(src.path, step=opts.step, max_frames=opts.max_frames):
                img = _resize(img, opts.max_side)
                writer.add(img)
                meta.append([int(idx), round(float(t), 6), blur_degree(img)])
            if not meta:
                raise DataError(f"{src.path}: no decodable frames")
        else:
            DECODE_STATS["images_decoded"] += 1
            img = _resize(dio.read_image(src.path), opts.max_side)
            writer.add(img)
            meta.append([0, None, blur_degree(img)])
        rel = writer.finish()
    except DataError as e:
        writer.abort()
        msg = str(e)
        raise DataError(msg if str(src.path) in msg else f"{src.path}: {msg}") from None
    except BaseException:
        writer.abort()
        raise
    if src.kind == "video" and opts.max_frames is None:
        try:
            info = dio.probe_video(src.path)
            expect = int(round(info["duration"] * info["fps"])) if info["duration"] and info["fps"] else 0
            if expect and meta[-1][0] + 1 < 0.9 * expect - 1:
                warn(
                    f"{src.path}: ends early (decoded frames up to #{meta[-1][0]} of about {expect}); "
                    "the file looks truncated or damaged, keeping the frames before the damage"
                )
        except DataError:
            pass
    h, w = writer.shape[:2]
    return {
        **_file_key(src.path),
        "options": _options_key(opts, src.kind),
        "kind": src.kind,
        "file": rel,
        "height": int(h),
        "width": int(w),
        "frames": meta,
        "extracted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _entry_valid(entry: dict, src: Source, opts: FrameOptions, root: Path) -> bool:
    try:
        if entry.get("options") != _options_key(opts, src.kind):
            return False
        key = _file_key(src.path)
        if entry.get("size") != key["size"] or entry.get("mtime_ns") != key["mtime_ns"]:
            return False
        return (root / entry["file"]).exists()
    except (OSError, KeyError, TypeError):
        return False


def extract_frames(
    cache: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    blurry=None,
    sharp=None,
    unlabelled=None,
    options: FrameOptions | None = None,
    blur_threshold: float | None = None,
    blur_split: Literal["global", "per-clip"] = "global",
    strict: bool = False,
    progress: bool = True,
    warn: Callable[[str], None] | None = None,
) -> FrameSet:
    """Extract (or reuse) the cached frames of a camera dataset; see the module docstring.

    Args:
        cache: the cache folder (created); holds ``manifest.json`` and ``frames/``.
        root / blurry / sharp / unlabelled: the inputs (see :func:`discover_sources`).
        options: frame step, max frames per clip, max side, storage.
        blur_threshold: fixed threshold for unlabelled frames instead of the learned one.
        blur_split: ``global`` compares every unlabelled frame's Laplacian variance with one
            threshold; ``per-clip`` first divides each frame's variance by its clip's 90th
            percentile (so content that is busier in one clip than another does not decide the
            label; the threshold is then on this relative degree). ``per-clip`` suits clips that each
            hold both still and moving moments; loose images need ``global``.
        strict: raise on the first unusable source instead of skipping it with a warning.
        warn: where warnings go (default: :func:`warnings.warn` with :class:`DataWarning`).

    Returns:
        a :class:`FrameSet` of every usable frame, in input order; ``.stats`` says how many sources
        were ``extracted`` and how many were ``cached``.
    """
    opts = options or FrameOptions()
    cache = Path(cache)
    sources = discover_sources(root, blurry=blurry, sharp=sharp, unlabelled=unlabelled)
    cache_abs = cache.resolve()
    sources = [s for s in sources if not s.path.is_relative_to(cache_abs)]  # never ingest our own cache
    if not sources:
        raise DataError(f"no video clips or images found outside the cache folder {cache}")
    if warn is None:
        def warn(msg: str) -> None:
            warnings.warn(msg, DataWarning, stacklevel=3)

    # image sequences: keep every step-th image, at most max_frames per sequence
    kept: list[Source] = []
    for s in sources:
        if s.kind == "image" and s.clip.endswith("/"):
            if s.order % opts.step:
                continue
            if opts.max_frames is not None and s.order // opts.step >= opts.max_frames:
                continue
        kept.append(s)

    skipped: list[tuple[str, str]] = []
    entries: dict[str, dict] = {}
    n_extracted = n_cached = 0
    with _locked(cache):
        manifest = _read_manifest(cache)
        known = manifest["sources"]
        todo = [s for s in kept if not _entry_valid(known.get(str(s.path), {}), s, opts, cache)]
        from ..trainutil import progress as _progress

        with _progress(len(todo), "extracting frames", enabled=progress and bool(todo)) as bar:
            for s in todo:
                try:
                    known[str(s.path)] = _extract_one(s, opts, cache, warn)
                    n_extracted += 1
                except DataError as e:
                    if strict:
                        _write_manifest(cache, manifest)
                        raise
                    known.pop(str(s.path), None)
                    skipped.append((str(s.path), str(e)))
                    warn(f"skipping unusable input: {e}" if str(s.path) in str(e) else f"skipping {s.path}: {e}")
                bar.advance(1)
        for s in kept:
            e = known.get(str(s.path))
            if e is not None and not any(p == str(s.path) for p, _ in skipped):
                entries[str(s.path)] = e
        n_cached = len(entries) - n_extracted
        # forget sources whose file is gone, and delete their cached frames
        for k in [k for k in known if not Path(k).exists()]:
            gone = known.pop(k)
            rel = gone.get("file") if isinstance(gone, dict) else None
            if rel and not any(e.get("file") == rel for e in known.values() if isinstance(e, dict)):
                import shutil

                target = cache / rel
                with contextlib.suppress(OSError):
                    shutil.rmtree(target) if target.is_dir() else target.unlink()

        if not entries:
            detail = "; ".join(why if p in why else f"{p}: {why}" for p, why in skipped) or "nothing to read"
            raise DataError(f"no usable frames in the inputs ({detail})")

        records: list[FrameRecord] = []
        for s in kept:
            e = entries.get(str(s.path))
            if e is None:
                continue
            seq = s.clip.endswith("/")
            clip = s.clip.rstrip("/") if seq else s.clip
            for slot, (idx, t, deg) in enumerate(e["frames"]):
                records.append(
                    FrameRecord(
                        clip=clip,
                        scene=s.scene,
                        index=s.order if seq else int(idx),
                        timestamp=None if t is None else float(t),
                        label=s.label,
                        degree=float(deg),
                        source=str(s.path),
                        file=e["file"],
                        slot=slot,
                        height=int(e["height"]),
                        width=int(e["width"]),
                    )
                )

        threshold, how = None, None
        unl = [r for r in records if r.label is None]
        if unl:
            values = _split_values(unl, blur_split)
            if blur_threshold is not None:
                threshold, how = float(blur_threshold), f"given ({blur_split})"
            else:
                try:
                    threshold = otsu_threshold(values)
                    how = "otsu-log10" if blur_split == "global" else "otsu-log10 per-clip"
                except DataError as e:
                    warn(f"unlabelled frames cannot be split by blur: {e}")
            if threshold is not None:
                for r, v in zip(unl, values):
                    r.auto_label = "blurry" if v < threshold else "sharp"

        fs = FrameSet(cache, records, threshold, how, skipped, {"extracted": n_extracted, "cached": n_cached})
        manifest["last"] = {
            "inputs": {
                "root": str(root) if root else None,
                "blurry": [str(p) for p in _as_list(blurry)],
                "sharp": [str(p) for p in _as_list(sharp)],
                "unlabelled": [str(p) for p in _as_list(unlabelled)],
            },
            "options": asdict(opts),
            "blur_split": blur_split,
            **fs.summary(),
        }
        _write_manifest(cache, manifest)
    return fs


def _split_values(records: Sequence[FrameRecord], mode: str) -> list[float]:
    """The values the blur threshold applies to: degrees, or degrees relative to their clip."""
    if mode == "global":
        return [r.degree for r in records]
    if mode != "per-clip":
        raise DataError(f"blur split must be 'global' or 'per-clip', got {mode!r}")
    by_clip: dict[str, list[float]] = {}
    for r in records:
        by_clip.setdefault(r.clip, []).append(r.degree)
    ref = {c: max(float(np.percentile(v, 90)), 1e-6) for c, v in by_clip.items()}
    return [r.degree / ref[r.clip] for r in records]


def open_frames(cache: str | os.PathLike, **kwargs: Any) -> FrameSet:
    """Alias of :func:`extract_frames` (reads the cache, extracting only what is missing)."""
    return extract_frames(cache, **kwargs)
