"""Closing several resources at the end of a run or a failed set-up, where one failing must not keep
the others open (the pipeline, ``open_pipeline`` and the ROI engine's per-size engines)."""

from __future__ import annotations

__all__ = ["close_quietly"]


def close_quietly(*things) -> None:
    """Close each of ``things`` that is not None and has ``close()``, whatever the others do."""
    for thing in things:
        close = getattr(thing, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
