"""Hand landmarks with MediaPipe's HandLandmarker (Tasks API, VIDEO mode) on RGB frames.

    with HandTracker() as tracker:                   # model found by resolve_hand_model(None)
        hands = tracker.track(frame.image, frame.t_capture)
        # [{"handedness": "Left", "score": 0.97, "landmarks": [[x, y, z] * 21]}]

``x``/``y`` are normalised to the image width/height (0..1), ``z`` is MediaPipe's relative depth.

The model file (``hand_landmarker.task``) is found, in this order, at: an explicit path,
``$B2B_HAND_MODEL``, the cache ``$B2B_CACHE/models/hand_landmarker.task`` (default cache
``~/.cache/b2b``), then the bundle shipped with b2b (``b2b_stream/models/hand_landmarker.task``, built
from mediapipe 0.10.21's Apache-2.0 models; see ``models/NOTICE.md``), whose SHA-256 is checked each
time it is resolved. Nothing downloads implicitly. Two ways to put another version in the cache:

* offline: ``b2b-stream models hands --from-wheel mediapipe-0.10.21-*.whl``. The mediapipe 0.10.21
  wheel (``pip download --no-deps mediapipe==0.10.21``) carries the palm detector and hand-landmark
  TFLite models; bundled uncompressed in one zip as ``hand_detector.tflite`` and
  ``hand_landmarks_detector.tflite`` they form a valid ``hand_landmarker.task``.
* online: ``b2b-stream models hands --download`` fetches Google's published bundle and checks its
  SHA-256 before installing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from b2b_train.errors import B2BError
from b2b_train.hashing import file_sha256

__all__ = [
    "HandTracker",
    "resolve_hand_model",
    "default_hand_model_path",
    "shipped_hand_model",
    "cache_dir",
    "build_bundle_from_wheel",
    "install_bundle",
    "download_hand_model",
    "check_hand_model",
    "draw_hands",
    "HAND_CONNECTIONS",
    "MODEL_URL",
    "MODEL_SHA256",
    "SHIPPED_MODEL",
    "SHIPPED_SHA256",
]

MODEL_NAME = "hand_landmarker.task"
# Google's published bundle (float16, version 1) and its SHA-256 / size.
MODEL_URL = "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/1/hand_landmarker.task"
MODEL_SHA256 = "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1"
MODEL_BYTES = 7_819_105
# Members of the mediapipe wheel -> names inside a hand_landmarker.task bundle.
WHEEL_MEMBERS = {
    "mediapipe/modules/palm_detection/palm_detection_full.tflite": "hand_detector.tflite",
    "mediapipe/modules/hand_landmark/hand_landmark_full.tflite": "hand_landmarks_detector.tflite",
}
# The bundle shipped as package data: mediapipe 0.10.21's two TFLite models packed by
# build_bundle_from_wheel (provenance in models/hand_landmarker.task.json, licence in models/NOTICE.md).
SHIPPED_MODEL = Path(__file__).resolve().parent / "models" / MODEL_NAME
SHIPPED_SHA256 = "161bab669fec9eb960561f420fc2f883a8cbcc0b809824dd3dd01fc3f4010125"
SHIPPED_BYTES = 7_819_037
OFFLINE_HOWTO = (
    "offline: pip download --no-deps mediapipe==0.10.21 -d wheels && "
    "b2b-stream models hands --from-wheel wheels/mediapipe-0.10.21-*.whl; "
    "online: b2b-stream models hands --download"
)

# The 21-point hand skeleton (MediaPipe's landmark order).
HAND_CONNECTIONS = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)


@contextlib.contextmanager
def _quiet_native_logs():
    """Silence MediaPipe/LiteRT's C++ INFO chatter on fd 2 while the graph starts (B2B_VERBOSE=1 keeps it)."""
    if os.environ.get("B2B_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class HandModelError(B2BError):
    """The hand-landmarker model is missing or unusable."""


def cache_dir() -> Path:
    """``$B2B_CACHE`` or ``~/.cache/b2b``."""
    env = os.environ.get("B2B_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "b2b"


def default_hand_model_path() -> Path:
    return cache_dir() / "models" / MODEL_NAME


def shipped_hand_model() -> Path:
    """The bundle shipped with b2b, after checking its SHA-256; a clear error when missing or altered."""
    p = SHIPPED_MODEL
    if not p.is_file():
        raise HandModelError(f"hand-tracking model not installed (looked for {default_hand_model_path()} and the "
                             f"shipped {p}); reinstall b2b or install one: {OFFLINE_HOWTO}")
    digest = file_sha256(p)
    if digest != SHIPPED_SHA256:
        raise HandModelError(
            f"the shipped hand model {p} is damaged (SHA-256 {digest[:16]}..., {p.stat().st_size} bytes; expected "
            f"{SHIPPED_SHA256[:16]}..., {SHIPPED_BYTES} bytes; a Git LFS pointer or a partial copy?): reinstall b2b, "
            f"or install one: {OFFLINE_HOWTO}"
        )
    return p


def _is_shipped(p: Path) -> bool:
    try:
        return p.resolve() == SHIPPED_MODEL
    except OSError:
        return False


def resolve_hand_model(path: str | os.PathLike | None = None) -> Path:
    """The hand model to use: ``path``, then ``$B2B_HAND_MODEL``, then the cache, then the shipped bundle
    (SHA-256 checked); else a clear error."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise HandModelError(f"hand model {p} not found ({OFFLINE_HOWTO})")
        return shipped_hand_model() if _is_shipped(p) else p
    env = os.environ.get("B2B_HAND_MODEL")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise HandModelError(f"B2B_HAND_MODEL={env} does not exist ({OFFLINE_HOWTO})")
        return shipped_hand_model() if _is_shipped(p) else p
    p = default_hand_model_path()
    if p.is_file():
        return p
    return shipped_hand_model()


def build_bundle_from_wheel(wheel: str | os.PathLike) -> bytes:
    """The bytes of a ``hand_landmarker.task`` made from a mediapipe wheel's two TFLite models."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise HandModelError(f"wheel {wheel} not found (get it with: pip download --no-deps mediapipe==0.10.21 -d wheels)")
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            missing = [m for m in WHEEL_MEMBERS if m not in names]
            if missing:
                raise HandModelError(
                    f"{wheel.name} does not contain {missing[0]}; use mediapipe 0.10.21's wheel "
                    "(pip download --no-deps mediapipe==0.10.21)"
                )
            parts = {dst: zf.read(src) for src, dst in WHEEL_MEMBERS.items()}
    except zipfile.BadZipFile:
        raise HandModelError(f"{wheel} is not a wheel (not a zip file)") from None
    buf = io.BytesIO()
    # STORED (uncompressed): MediaPipe memory-maps the members of a .task bundle.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as out:
        for name in ("hand_detector.tflite", "hand_landmarks_detector.tflite"):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            out.writestr(info, parts[name])
    return buf.getvalue()


def install_bundle(data: bytes, out: str | os.PathLike | None = None) -> Path:
    """Write a model bundle atomically to ``out`` (default: the cache) after checking it loads."""
    out = Path(out).expanduser() if out else default_hand_model_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hand_landmarker.", suffix=".task", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _load_check(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out


def download_hand_model(out: str | os.PathLike | None = None, url: str = MODEL_URL, sha256: str = MODEL_SHA256) -> Path:
    """Download Google's bundle, verify its SHA-256, install it (explicit, online use only)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 (fixed https URL)
            data = r.read()
    except Exception as e:
        raise HandModelError(f"download of {url} failed ({e}); {OFFLINE_HOWTO.split(';')[0]}") from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and digest != sha256:
        raise HandModelError(f"downloaded hand model has SHA-256 {digest}, expected {sha256}; not installed")
    return install_bundle(data, out)


def _load_check(path: Path) -> None:
    try:
        lm = _create_landmarker(path, num_hands=1)
    except HandModelError:
        raise
    lm.close()


def _create_landmarker(path: Path, num_hands=2, min_detection=0.5, min_presence=0.5, min_tracking=0.5, video=True):
    try:
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as e:  # pragma: no cover - mediapipe is a dependency
        raise HandModelError(f"mediapipe is not importable ({e}); pip install mediapipe") from None
    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        num_hands=int(num_hands),
        min_hand_detection_confidence=float(min_detection),
        min_hand_presence_confidence=float(min_presence),
        min_tracking_confidence=float(min_tracking),
    )
    try:
        with _quiet_native_logs():
            return vision.HandLandmarker.create_from_options(opts)
    except Exception as e:
        raise HandModelError(f"{path} is not a usable hand-landmarker model ({str(e).splitlines()[0]}); {OFFLINE_HOWTO}") from None


def check_hand_model(path: str | os.PathLike | None = None, clip: str | os.PathLike | None = None, max_frames: int = 60) -> dict:
    """Load the model and run it over a clip (default: the demo clip); returns detection counts."""
    from .sources import demo_path, open_source

    model = resolve_hand_model(path)
    clip = clip or demo_path()
    frames = detected = 0
    with HandTracker(model) as tracker, open_source(str(clip), loop=False, realtime=False) as src:
        for frame in src:
            hands = tracker.track(frame.image, frames / 30.0)
            frames += 1
            detected += bool(hands)
            if frames >= max_frames:
                break
    return {
        "model": str(model),
        "sha256": file_sha256(model),
        "clip": str(clip),
        "frames": frames,
        "frames_with_hands": detected,
    }


class HandTracker:
    """MediaPipe HandLandmarker in VIDEO mode; :meth:`track` takes RGB uint8 and a time in seconds."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        num_hands: int = 2,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ):
        self.model_path = resolve_hand_model(model)
        self._lm = _create_landmarker(
            self.model_path, num_hands, min_detection_confidence, min_presence_confidence, min_tracking_confidence
        )
        self._last_ms = -1
        self.frames = 0
        self.frames_with_hands = 0

    def track(self, image: np.ndarray, t_seconds: float | None = None) -> list[dict]:
        """Hands in one RGB uint8 HxWx3 frame. ``t_seconds``: capture time (monotonic seconds)."""
        import mediapipe as mp

        if self._lm is None:
            raise B2BError("HandTracker is closed")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise B2BError(f"HandTracker.track needs uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        # VIDEO mode needs strictly increasing integer milliseconds.
        ms = int(round((t_seconds if t_seconds is not None else self.frames / 30.0) * 1000.0))
        if ms <= self._last_ms:
            ms = self._last_ms + 1
        self._last_ms = ms
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self.frames == 0:  # the first call logs a few native warnings
            with _quiet_native_logs():
                result = self._lm.detect_for_video(mp_image, ms)
        else:
            result = self._lm.detect_for_video(mp_image, ms)
        hands = []
        for i, lms in enumerate(result.hand_landmarks):
            cat = result.handedness[i][0] if i < len(result.handedness) and result.handedness[i] else None
            hands.append({
                "handedness": cat.category_name if cat is not None else None,
                "score": round(float(cat.score), 4) if cat is not None else None,
                "landmarks": [[round(float(p.x), 5), round(float(p.y), 5), round(float(p.z), 5)] for p in lms],
            })
        self.frames += 1
        self.frames_with_hands += bool(hands)
        return hands

    def close(self) -> None:
        """Release MediaPipe's graph now (its ``__del__`` at interpreter exit raises otherwise)."""
        lm, self._lm = self._lm, None
        if lm is not None:
            try:
                with _quiet_native_logs():
                    lm.close()
            except Exception:
                pass

    def __enter__(self) -> "HandTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # best effort; callers should close() explicitly
        try:
            self.close()
        except Exception:
            pass


def draw_hands(image: np.ndarray, hands: list[dict], color=(0, 255, 0), thickness: int = 2) -> np.ndarray:
    """A copy of an RGB image with each hand's skeleton drawn (landmarks normalised to 0..1)."""
    import cv2

    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    for hand in hands or []:
        pts = [(int(round(x * w)), int(round(y * h))) for x, y, *_ in hand["landmarks"]]
        for a, b in HAND_CONNECTIONS:
            if a < len(pts) and b < len(pts):
                cv2.line(out, pts[a], pts[b], color, thickness, cv2.LINE_AA)
        for p in pts:
            cv2.circle(out, p, max(2, thickness + 1), (255, 64, 64), -1, cv2.LINE_AA)
    return out
