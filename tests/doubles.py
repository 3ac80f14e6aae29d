"""Test doubles for the streaming code: stand-ins for hardware the tests do not have."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np


class SimulatedCamera:
    """A ``cv2.VideoCapture``-like camera replaying RGB frames, which can fail on cue.

    For tests of the reconnect logic without hardware::

        cams = []
        def opener():
            cams.append(SimulatedCamera(frames, fps=30, fail_after=50 if not cams else None))
            return cams[-1]
        src = open_source("sim", opener=opener)

    ``fail_after``: after this many frames, ``mode="fail"`` makes ``read()`` return ``(False, None)``
    (an unplugged camera), ``mode="freeze"`` makes it block until ``release()`` (a hung driver).
    """

    name = "simulated"

    def __init__(self, frames, fps: float = 30.0, fail_after: int | None = None, mode: str = "fail"):
        if mode not in ("fail", "freeze"):
            raise ValueError("mode must be 'fail' or 'freeze'")
        self._bgr = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR) for f in frames]
        if not self._bgr:
            raise ValueError("SimulatedCamera needs at least one frame")
        self.fps = float(fps)
        self.fail_after = fail_after
        self.mode = mode
        self.delivered = 0
        self.released = threading.Event()
        self._next_t = time.monotonic()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return not self.released.is_set()

    def read(self):
        if self.released.is_set():
            return False, None
        if self.fail_after is not None and self.delivered >= self.fail_after:
            if self.mode == "freeze":
                self.released.wait()
            else:
                time.sleep(0.02)
            return False, None
        delay = self._next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_t = max(self._next_t + 1.0 / self.fps, time.monotonic() - 1.0)
        img = self._bgr[self.delivered % len(self._bgr)]
        self.delivered += 1
        return True, img.copy()

    def get(self, prop) -> float:
        h, w = self._bgr[0].shape[:2]
        return {cv2.CAP_PROP_FRAME_WIDTH: w, cv2.CAP_PROP_FRAME_HEIGHT: h, cv2.CAP_PROP_FPS: self.fps}.get(prop, -1.0)

    def set(self, prop, value) -> bool:
        return False

    def release(self) -> None:
        self.released.set()
