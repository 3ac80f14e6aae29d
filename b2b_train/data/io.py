"""Reading and writing images and video frames, with one clear error for anything unusable.

Everything returns ``uint8`` RGB ``HxWx3`` arrays: grayscale is expanded, alpha dropped (composited
on nothing: just removed), 16-bit scaled to 8-bit. Tensors inside b2b_train are float (3,H,W) in [0,1].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "MAX_SIDE",
    "read_image",
    "write_image",
    "list_images",
    "list_videos",
    "normalise_image",
    "probe_video",
    "iter_video_frames",
    "to_tensor",
    "to_uint8",
    "save_grid",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mkv", ".mp4", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m")
MAX_SIDE = 16384  # refuse absurd images instead of exhausting memory


def normalise_image(img: np.ndarray, source: str = "image") -> np.ndarray:
    """Any decoded image (gray, RGBA, 16-bit, float) -> uint8 HxWx3 RGB (already in RGB order)."""
    if img is None or not isinstance(img, np.ndarray) or img.size == 0:
        raise DataError(f"{source}: empty or undecodable image")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise DataError(f"{source}: unsupported image shape {img.shape}")
    h, w, c = img.shape
    if h < 1 or w < 1:
        raise DataError(f"{source}: image has no pixels ({w}x{h})")
    if max(h, w) > MAX_SIDE:
        raise DataError(f"{source}: image is {w}x{h}, larger than the {MAX_SIDE}px limit")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        raise DataError(f"{source}: unsupported pixel type {img.dtype}")
    if c == 1:
        img = np.repeat(img, 3, axis=2)
    elif c == 2:  # gray + alpha
        img = np.repeat(img[..., :1], 3, axis=2)
    elif c == 4:
        img = img[..., :3]
    elif c != 3:
        raise DataError(f"{source}: unsupported number of channels ({c})")
    return np.ascontiguousarray(img)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into uint8 HxWx3 RGB, or raise DataError naming the file."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise DataError(f"{path}: empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: not a readable image (corrupt or unknown format)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    return normalise_image(img, str(path))


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 HxWx3 RGB (or HxW gray) image; format from the extension."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(img)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]
    ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(arr))
    if not ok:
        raise DataError(f"cannot encode image as {path.suffix}")
    from ..checkpoint import atomic_write

    atomic_write(path, buf.tobytes())


def _list(folder: str | os.PathLike, exts: Sequence[str], what: str) -> list[Path]:
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{what} folder not found: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder}")
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    except PermissionError as e:
        raise DataError(f"cannot read folder {folder}: {e.strerror}") from None
    return files


def list_images(folder: str | os.PathLike, required: bool = True) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); DataError if none and ``required``."""
    files = _list(folder, IMAGE_EXTS, "image")
    if required and not files:
        raise DataError(f"no images in {folder} (looked for {', '.join(IMAGE_EXTS)})")
    return files


def list_videos(folder: str | os.PathLike, required: bool = True) -> list[Path]:
    """Video files under ``folder`` (recursive, sorted)."""
    files = _list(folder, VIDEO_EXTS, "video")
    if required and not files:
        raise DataError(f"no video clips in {folder} (looked for {', '.join(VIDEO_EXTS)})")
    return files


def _open_container(path: Path):
    import av

    if not path.is_file():
        raise DataError(f"clip not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable video ({e.__class__.__name__}: {e})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: has no video stream")
    return container


def probe_video(path: str | os.PathLike) -> dict:
    """Basic facts of a clip: width, height, fps, frames (may be 0 if unknown), duration, codec."""
    path = Path(path)
    c = _open_container(path)
    try:
        s = c.streams.video[0]
        fps = float(s.average_rate) if s.average_rate else (float(s.guessed_rate) if s.guessed_rate else 0.0)
        duration = float(s.duration * s.time_base) if s.duration and s.time_base else (
            c.duration / 1e6 if c.duration else 0.0
        )
        return {
            "path": str(path),
            "width": int(s.codec_context.width),
            "height": int(s.codec_context.height),
            "fps": fps,
            "frames": int(s.frames or 0),
            "duration": duration,
            "codec": s.codec_context.name,
        }
    finally:
        c.close()


def iter_video_frames(
    path: str | os.PathLike, step: int = 1, max_frames: int | None = None, start: int = 0
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode a clip: yields ``(index, pts_seconds, uint8 RGB HxWx3)`` for every ``step``-th frame.

    A clip that breaks off part-way (truncated file) yields the frames decoded before the damage;
    a clip with no decodable frame at all raises DataError.
    """
    import av

    if step < 1:
        raise ValueError("step must be >= 1")
    path = Path(path)
    c = _open_container(path)
    n_out = 0
    idx = -1
    try:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in c.decode(stream):
                idx += 1
                if idx < start or (idx - start) % step:
                    continue
                t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else idx / 30.0
                yield idx, t, frame.to_ndarray(format="rgb24")
                n_out += 1
                if max_frames is not None and n_out >= max_frames:
                    return
        except (av.error.FFmpegError, EOFError) as e:
            if n_out == 0:
                raise DataError(f"{path}: no decodable frames ({e.__class__.__name__})") from None
            return
        if n_out == 0 and idx < 0:
            raise DataError(f"{path}: no decodable frames")
    finally:
        c.close()


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 (3,H,W) in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (3,H,W) or (1,3,H,W) in [0,1] -> uint8 HxWx3 (rounded, clamped)."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError("to_uint8 takes one image")
        x = x[0]
    return x.detach().float().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def save_grid(
    path: str | os.PathLike,
    rows: Sequence[Sequence[np.ndarray | torch.Tensor]],
    labels: Sequence[str] | None = None,
    pad: int = 4,
    max_cell: int = 320,
) -> None:
    """Save a PNG grid: one row per example, one column per stage (labels on top).

    Cells may be uint8 HxWx3 arrays or float (3,H,W) tensors; each is resized to fit ``max_cell``.
    """
    import cv2

    cells: list[list[np.ndarray]] = []
    for row in rows:
        out = []
        for c in row:
            a = to_uint8(c) if isinstance(c, torch.Tensor) else normalise_image(np.asarray(c))
            h, w = a.shape[:2]
            s = min(1.0, max_cell / max(h, w))
            if s < 1.0:
                a = cv2.resize(a, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
            out.append(a)
        cells.append(out)
    if not cells or not cells[0]:
        raise ValueError("save_grid needs at least one image")
    ncol = max(len(r) for r in cells)
    col_w = [max((r[j].shape[1] for r in cells if j < len(r)), default=0) for j in range(ncol)]
    row_h = [max(c.shape[0] for c in r) for r in cells]
    top = 22 if labels else 0
    H = top + sum(row_h) + pad * (len(cells) + 1)
    W = sum(col_w) + pad * (ncol + 1)
    canvas = np.full((H, W, 3), 255, np.uint8)
    if labels:
        x = pad
        for j, lab in enumerate(labels[:ncol]):
            cv2.putText(canvas, str(lab), (x, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            x += col_w[j] + pad
    y = top + pad
    for i, r in enumerate(cells):
        x = pad
        for j, c in enumerate(r):
            canvas[y : y + c.shape[0], x : x + c.shape[1]] = c
            x += col_w[j] + pad
        y += row_h[i] + pad
    write_image(path, canvas)
