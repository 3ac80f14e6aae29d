"""The onnxruntime backend and ``backend="auto"`` on the CPU.

Tolerance: onnxruntime's kernels differ from PyTorch's, so its frames must be within 1 uint8 level of
the eager fp32 fused module on >= 99.9 % of pixels and never more than 2 levels off. One engine folder
serves the whole file (the ONNX export is the slow part), which also exercises cache hits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from b2b_stream.engines import compare_frames, get_engine  # noqa: E402
from b2b_stream.fuse import FusedDeblur  # noqa: E402
from b2b_train.errors import B2BError  # noqa: E402
from b2b_train.hashing import file_sha256  # noqa: E402
from conftest import real_frames, tiny_nets  # noqa: E402

W, H = 72, 48


@pytest.fixture(scope="module")
def nets():
    return tiny_nets(seed=3)


@pytest.fixture(scope="module")
def frames(kodak_images):
    return real_frames(kodak_images, 2, H, W, offset=9)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-home")


def _eager(nets, frames, multiple):
    tr, db, _ = nets
    with torch.no_grad():
        return FusedDeblur(tr, db, multiple=multiple)(torch.from_numpy(frames)).numpy()


def test_onnxruntime_matches_eager_and_is_cached(nets, frames, home):
    tr, db, m = nets
    msgs: list[str] = []
    kw = dict(backend="onnxruntime", size=(W, H), translator=tr, deblurrer=db, home=home, say=msgs.append)
    eng = get_engine(None, **kw)
    assert eng.backend == "onnxruntime" and eng.info["cache"] == "built" and eng.info["file"].endswith(".onnx")
    c = compare_frames(eng.run(frames), _eager(nets, frames, eng.info["multiple"]))
    assert c["max_abs"] <= 2 and c["within_1"] >= 0.999, c
    assert eng.info["check"]["within_1"] >= 0.999 and eng.info["check"]["against"] == "eager fp32"
    again = get_engine(None, **kw)
    assert again.info["cache"] == "hit" and any("cached engine" in s for s in msgs)
    assert np.array_equal(again.run(frames), eng.run(frames))
    # submit() takes a batch larger than the static engine's max_batch (1) as run() does
    assert eng.max_batch == 1 and len(frames) > 1
    assert np.array_equal(eng.submit(frames).result(), eng.run(frames))
    # a static engine refuses another frame size with a clear message
    with pytest.raises(B2BError, match=f"built for {W}x{H}"):
        eng(frames[0, : H - 8])


def test_corrupt_onnx_file_is_rebuilt(nets, frames, home):
    tr, db, m = nets
    msgs: list[str] = []
    kw = dict(backend="onnxruntime", size=(W, H), translator=tr, deblurrer=db, home=home, say=msgs.append)
    path = Path(get_engine(None, **kw).info["file"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    eng = get_engine(None, **kw)
    assert eng.info["cache"] == "built" and any("does not match its manifest" in s for s in msgs), msgs
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == file_sha256(path)
    assert compare_frames(eng.run(frames), _eager(nets, frames, eng.info["multiple"]))["within_1"] >= 0.999


def test_auto_on_cpu_picks_the_faster_and_says_why(nets, frames, home):
    tr, db, m = nets
    e = get_engine(None, backend="auto", precision="fp16", size=(W, H), translator=tr, deblurrer=db, home=home)
    assert e.backend in ("onnxruntime", "torch") and e.device == "cpu"
    assert "measured fastest" in e.info["why"]
    assert e.precision == "fp32" and "fp16 asked for on the CPU" in e.info["note"]
    choice = json.loads((home / "engines" / "default" / f"auto-cpu-{W}x{H}.json").read_text())
    assert choice["backend"] == e.backend and set(choice["fps"]) == {"onnxruntime", "torch fp32"}
    again = get_engine(None, backend="auto", precision="fp32", size=(W, H), translator=tr, deblurrer=db, home=home)
    assert again.backend == e.backend and "measured earlier" in again.info["why"]
    assert again.info["cache"] == "hit"
    assert compare_frames(again.run(frames), _eager(nets, frames, again.info["multiple"]))["within_1"] >= 0.999


def test_auto_precision_on_cpu_also_times_native_bf16(nets, frames, home):
    from b2b_stream.engines.cpu_precision import native_cpu_bf16

    tr, db, m = nets
    e = get_engine(None, backend="auto", precision="auto", size=(W, H), translator=tr, deblurrer=db, home=home)
    choice = json.loads((home / "engines" / "default" / f"auto-cpu-auto-{W}x{H}.json").read_text())
    expected = {"onnxruntime", "torch fp32"} | ({"torch bf16"} if native_cpu_bf16() else set())
    assert set(choice["fps"]) == expected
    assert (choice["backend"], choice["precision"]) == (e.backend, e.precision)
    assert "measured fastest" in e.info["why"]
    # whichever won, the frames are the eager fp32 module's within a level or two (bf16 rounds the weights)
    got = compare_frames(e.run(frames), _eager(nets, frames, e.info["multiple"]))
    assert got["max_abs"] <= (0 if e.precision == "fp32" and e.backend == "torch" else 8) and got["within_1"] >= 0.95
