"""Camera profiles: one folder per camera with everything b2b learned about it.

Layout under :func:`home` (``$B2B_HOME`` or the current directory)::

    profiles/<name>/
        profile.json            name, created, cameras seen, notes
        clips/sharp/*.mkv       recorded clips, each with a JSON of metadata beside it
        clips/blurry/*.mkv
        frames/                 frames extracted from the clips (a cache; safe to delete)
        probe.json              the probe's AUCs and chosen known blur (calibrate)
        known.yaml              the known blur the translator learns to produce (the probe's choice)
        translator/             translator training run (checkpoints, logs)
        translator.safetensors  the final translator
        report.json             evaluation report
        samples/                sample images of the evaluation
    engines/<name>/             built engines for this profile (a cache; safe to delete)

A profile is portable: copy ``profiles/<name>`` to another machine and run it there (engines are
rebuilt for the new machine).

    prof = Profile.open("desk", create=True)
    prof.clips("blurry")          # [Path, ...]
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path

from b2b_train.errors import B2BError

__all__ = ["LABELS", "home", "validate_name", "Profile", "list_profiles", "ProfileError", "require_lite"]

LABELS = ("sharp", "blurry")
CLIP_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".webm")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ProfileError(B2BError):
    """A profile name is invalid or the profile does not exist."""


def home() -> Path:
    """Root holding ``profiles/`` and ``engines/``: ``$B2B_HOME`` or the current directory."""
    env = os.environ.get("B2B_HOME")
    return Path(env).expanduser() if env else Path.cwd()


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe profile name, else raise :class:`ProfileError`.

    Allowed: 1-64 characters, letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit;
    no path separators, no ``..``, no absolute paths, so a profile stays inside ``profiles/``.
    """
    if not isinstance(name, str) or not name:
        raise ProfileError("profile name is empty; use letters, digits, '.', '_' or '-' (e.g. 'desk')")
    if "/" in name or "\\" in name or os.path.isabs(name) or ".." in name or not _NAME_RE.match(name):
        raise ProfileError(
            f"invalid profile name {name!r}: use 1-64 letters, digits, '.', '_' or '-' starting with a "
            "letter or digit (no path separators, no '..')"
        )
    return name


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def list_profiles(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the profiles under ``root`` (default :func:`home`)."""
    base = Path(root) if root is not None else home()
    folder = base / "profiles"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _NAME_RE.match(p.name))


class Profile:
    """One camera profile folder (see the module docstring for the layout)."""

    def __init__(self, name: str, home_dir: str | os.PathLike | None = None):
        self.name = validate_name(name)
        self.home = Path(home_dir).expanduser() if home_dir is not None else home()
        self.root = self.home / "profiles" / self.name
        # Belt and braces: the resolved folder must stay inside <home>/profiles.
        parent = (self.home / "profiles").resolve()
        if self.root.resolve().parent != parent:
            raise ProfileError(f"invalid profile name {name!r}: it resolves outside {parent}")

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, name: str, home: str | os.PathLike | None = None, create: bool = False) -> "Profile":
        """Open profile ``name`` under ``home``; ``create=True`` makes it if missing."""
        prof = cls(name, home)
        if prof.exists():
            return prof
        if not create:
            known = list_profiles(prof.home)
            hint = f" (profiles here: {', '.join(known)})" if known else ""
            raise ProfileError(
                f"no profile {name!r} under {prof.home / 'profiles'}{hint}; record clips first: "
                f"b2b-stream record --camera 0 --label sharp --profile {name}"
            )
        prof.create()
        return prof

    def exists(self) -> bool:
        return (self.root / "profile.json").is_file()

    def create(self) -> "Profile":
        for label in LABELS:
            self.clips_dir(label).mkdir(parents=True, exist_ok=True)
        if not self.exists():
            self.write_meta({"name": self.name, "created": _now(), "cameras": []})
        return self

    # ----------------------------------------------------------------- paths
    @property
    def meta_path(self) -> Path:
        return self.root / "profile.json"

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def translator_dir(self) -> Path:
        return self.root / "translator"

    @property
    def translator_path(self) -> Path:
        return self.root / "translator.safetensors"

    @property
    def lite_dir(self) -> Path:
        """The lite student's distillation run (``calibrate --lite``)."""
        return self.root / "lite"

    @property
    def lite_path(self) -> Path:
        """The lite student: one network imitating deblurrer∘translator (``calibrate --lite``)."""
        return self.root / "lite.safetensors"

    @property
    def report_path(self) -> Path:
        return self.root / "report.json"

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    @property
    def engines_dir(self) -> Path:
        return self.home / "engines" / self.name

    def clips_dir(self, label: str) -> Path:
        return self.root / "clips" / _check_label(label)

    def clips(self, label: str) -> list[Path]:
        """Recorded clip files of one label, oldest first (by name: names carry a timestamp)."""
        folder = self.clips_dir(label)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in CLIP_SUFFIXES and p.is_file())

    def clip_meta(self, clip: str | os.PathLike) -> dict:
        """The JSON written beside a clip (empty dict if there is none or it is unreadable)."""
        path = Path(clip).with_suffix(".json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def new_clip_path(self, label: str, suffix: str = ".mkv") -> Path:
        """A fresh, unused clip path ``clips/<label>/<label>_<UTC time>[_n].mkv``."""
        folder = self.clips_dir(label)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"{label}_{stamp}{suffix}"
        n = 1
        while path.exists() or path.with_suffix(".json").exists():
            path = folder / f"{label}_{stamp}_{n}{suffix}"
            n += 1
        return path

    # ----------------------------------------------------------------- metadata
    def read_meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ProfileError(f"{self.meta_path}: unreadable profile metadata ({e})") from None

    def write_meta(self, meta: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.meta_path)

    def note_camera(self, camera: dict) -> None:
        """Remember a camera description (spec, size, fps) in ``profile.json`` (no duplicates)."""
        meta = self.read_meta() or {"name": self.name, "created": _now()}
        cams = meta.setdefault("cameras", [])
        entry = {k: camera.get(k) for k in ("spec", "kind", "width", "height", "fps", "name") if k in camera}
        if entry not in cams:
            cams.append(entry)
        meta["updated"] = _now()
        self.write_meta(meta)

    def summary(self) -> dict:
        """Counts of clips, frames and seconds per label, and what has been built."""
        out: dict = {"name": self.name, "root": str(self.root)}
        for label in LABELS:
            clips = self.clips(label)
            frames = 0
            seconds = 0.0
            for c in clips:
                m = self.clip_meta(c)
                frames += int(m.get("frames") or 0)
                seconds += float(m.get("seconds") or 0.0)
            out[label] = {"clips": len(clips), "frames": frames, "seconds": round(seconds, 2)}
        out["translator"] = self.translator_path.is_file()
        out["lite"] = self.lite_path.is_file()
        out["report"] = self.report_path.is_file()
        return out

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, root={str(self.root)!r})"


def require_lite(profile, *, weights: bool = True) -> Path | None:
    """What ``--lite`` needs, checked in one place: a profile, and (``weights``) its distilled network.

    ``run --lite`` checks before opening the camera, the engines when loading the network; the
    path is returned. ``weights=False`` (``--backend none``, which loads no network) checks the profile only.
    """
    if profile is None:
        raise B2BError("--lite runs a calibrated profile's distilled network: give --profile NAME")
    if not weights:
        return None
    root = Path(getattr(profile, "root"))
    name = getattr(profile, "name", None) or root.name
    path = Path(getattr(profile, "lite_path", None) or root / "lite.safetensors")
    if not path.is_file():
        raise B2BError(
            f"profile {name!r} has no lite network ({path} missing): run "
            f"`b2b-stream calibrate --profile {name} --lite` first, or run without --lite"
        )
    return path


def _check_label(label: str) -> str:
    if label not in LABELS:
        raise ProfileError(f"unknown clip label {label!r} (use one of: {', '.join(LABELS)})")
    return label
