"""The PyAV encoding steps shared by recorded clips (``record``) and the ``--out`` video sink.

Both write RGB frames with millisecond timestamps that strictly increase, turn a failing write (full
disk, file-size limit) into one clear :class:`B2BError`, and flush + close so the file stays playable.
"""

from __future__ import annotations

import fractions

import numpy as np

from b2b_train.errors import B2BError

__all__ = ["encode_rgb", "flush_and_close"]

_MS = fractions.Fraction(1, 1000)


def encode_rgb(container, stream, image: np.ndarray, pts_ms: int, last_pts_ms: int, path, frames: int,
               note: str = "") -> tuple[int, int]:
    """Encode one uint8 RGB frame at ``pts_ms`` (bumped past ``last_pts_ms``) and mux its packets.

    Returns ``(pts_ms used, bytes muxed)``; a write failure raises B2BError naming ``path``.
    """
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    pts = max(int(pts_ms), last_pts_ms + 1)
    frame.pts = pts
    frame.time_base = _MS
    size = 0
    try:
        for packet in stream.encode(frame):
            size += packet.size
            container.mux(packet)
    except Exception as e:  # disk full, file-size limit, quota...
        why = getattr(e, "strerror", None) or str(e)
        raise B2BError(f"writing {path} failed after {frames} frames ({why}){note}") from None
    return pts, size


def flush_and_close(container, stream) -> None:
    """Flush the encoder and close the container, ignoring errors (the file stays playable)."""
    if container is None:
        return
    try:
        for packet in stream.encode(None):
            container.mux(packet)
    except Exception:
        pass
    finally:
        try:
            container.close()
        except Exception:
            pass
