"""torch.compile on the CPU equals eager (marked slow: inductor's C++ compile takes minutes on 2 shared cores).

Tolerance: within 1 uint8 level on >= 99.9 % of pixels (inductor may fuse and reorder float ops).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from b2b_stream.engines import compare_frames, get_engine
from b2b_stream.fuse import FusedDeblur
from conftest import real_frames, tiny_nets

pytestmark = pytest.mark.slow


def test_torch_compile_engine_matches_eager(kodak_images, b2b_home):
    tr, db, m = tiny_nets(seed=5)
    W, H = 64, 48
    frames = real_frames(kodak_images, 1, H, W, offset=11)
    eng = get_engine(None, backend="torch", torch_mode="compile", size=(W, H), translator=tr, deblurrer=db)
    assert eng.info["mode"] == "compile"
    with torch.no_grad():
        ref = FusedDeblur(tr, db, multiple=eng.info["multiple"])(torch.from_numpy(frames)).numpy()
    c = compare_frames(eng.run(frames), ref)
    assert c["max_abs"] <= 2 and c["within_1"] >= 0.999, c
    assert eng.info["check"]["within_1"] >= 0.999
    assert np.array_equal(eng.run(frames), eng.run(frames))  # deterministic run to run
