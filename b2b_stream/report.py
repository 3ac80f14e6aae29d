"""The report of one pipeline run: what ``--report FILE.json`` holds and what ``Pipeline.run()`` returns.

:class:`RunReport` names every key of the JSON once, with its type. It also reads like the mapping it is
written as (``report["latency_ms"]["p95"]``, ``report.get("end_reason")``), so code written against the
JSON reads the object the same way; the sections below the top level are plain dicts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator, TypedDict

__all__ = ["RunReport", "Latency", "MemoryUse", "StartEnd", "STAGES", "STAGE_NOTES", "jsonable"]

STAGES = ("capture", "infer", "track", "output")

STAGE_NOTES = {
    "capture": "wait for the source's next frame (about one frame interval for a live camera)",
    "output": "writing every sink (video encode, JSONL, window, callback)",
}


class Latency(TypedDict):
    """Capture -> output latency in ms over the stats window (None before the first frame)."""

    p50: float | None
    p95: float | None
    mean: float | None
    max: float | None


class MemoryUse(TypedDict):
    """Resident memory in MB (None where /proc is not there)."""

    start: float | None
    peak: float | None
    end: float | None


class StartEnd(TypedDict):
    """A count at the start and at the end of the run (open file descriptors, threads)."""

    start: int | None
    end: int | None


@dataclass
class RunReport(Mapping):
    """One run's numbers, in the order the JSON lists them."""

    frames_in: int
    frames_out: int
    dropped: int  # frames the slots dropped (oldest first) because a stage was busy
    dropped_by_stage: dict[str, int]  # slot name -> dropped
    discarded_at_stop: int  # frames still queued when the run was stopped
    source_skipped: int  # frames the source itself skipped (a live file read slower than its pace)
    fps: float  # frames out / duration
    duration_s: float  # first capture -> last output
    latency_ms: Latency
    stages_ms: dict[str, float | None]  # stage (STAGES) -> median ms
    stages_ms_p95: dict[str, float | None]
    stage_notes: dict[str, str]
    backend: str
    device: str
    precision: str | None
    engine: dict[str, Any]  # the engine's info, made JSON-safe
    roi: dict[str, Any] | None  # --roi hands: the RoiEngine's report
    tracking: str  # hands | none
    hands_detected_frames: int
    policy: str  # latest | block
    slot_size: int
    end_reason: str | None
    error: str | None
    source: dict[str, Any]  # the source's info()
    sinks: list[str]
    rss_mb: MemoryUse
    open_fds: StartEnd
    threads: StartEnd
    started_at: str | None  # ISO 8601, UTC

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The JSON object (the section dicts are shared, not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """What ``--report`` writes: the object indented by 2, with a final newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunReport":
        """The report a JSON object holds; a missing or unknown key is an error."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [k for k in names if k not in data]
        unknown = [k for k in data if k not in names]
        if missing or unknown:
            raise ValueError(f"not a run report: missing {missing}, unknown {unknown}")
        return cls(**{k: data[k] for k in names})

    # -- read like the JSON object
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_NAMES)

    def __len__(self) -> int:
        return len(_FIELD_NAMES)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunReport))


def jsonable(obj):
    """``obj`` if JSON can hold it, else the same with what it cannot hold (in dicts and lists) as strings."""
    try:
        json.dumps(obj)
        return obj
    except (TypeError, ValueError):
        if isinstance(obj, dict):
            return {str(k): jsonable(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [jsonable(v) for v in obj]
        return str(obj)
