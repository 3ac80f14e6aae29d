"""Which precision a CPU engine runs: bf16 only where the CPU has it natively, and only on torch."""

import numpy as np
import pytest

from b2b_stream.engines import cpu_precision as cp
from b2b_stream.engines import get_engine
from b2b_stream.engines.runtime import compare_frames
from b2b_stream.fuse import example_frames


@pytest.fixture
def native(monkeypatch):
    def set_to(value: bool):
        monkeypatch.setattr(cp, "native_cpu_bf16", lambda: value)
    return set_to


def test_rules_with_native_bf16(native):
    native(True)
    assert cp.cpu_precision("auto", "auto") == ("auto", None)  # the engine choice measures it
    assert cp.cpu_precision("auto", "torch") == ("bf16", None)
    assert cp.cpu_precision("auto", "onnxruntime") == ("fp32", None)
    assert cp.cpu_precision("bf16", "torch") == ("bf16", None)
    prec, note = cp.cpu_precision("bf16", "onnxruntime")
    assert prec == "fp32" and "onnxruntime" in note
    prec, note = cp.cpu_precision("fp16", "torch")
    assert prec == "fp32" and "fp16" in note
    assert cp.cpu_precision("fp32", "auto") == ("fp32", None)


def test_rules_without_native_bf16(native):
    native(False)
    assert cp.cpu_precision("auto", "torch") == ("fp32", None)
    prec, note = cp.cpu_precision("bf16", "torch")
    assert prec == "fp32" and "native bf16" in note


def test_native_query_answers_a_bool():
    assert isinstance(cp.native_cpu_bf16(), bool)


@pytest.mark.skipif(not cp.native_cpu_bf16(), reason="this CPU has no native bf16")
def test_bf16_torch_engine_matches_fp32_within_a_level_on_the_shipped_deblurrer():
    # the shipped network, real weights: bf16 must stay within ~1 level of fp32 on a real-looking frame
    frames = example_frames(1, 96, 128, seed=3).numpy()
    e32 = get_engine(None, backend="torch", precision="fp32", size=(128, 96), cache=False, check=False)
    e16 = get_engine(None, backend="torch", precision="bf16", size=(128, 96), cache=False, check=False)
    assert e16.precision == "bf16" and e32.precision == "fp32"
    d = compare_frames(e16.run(frames), e32.run(frames))
    assert d["within_1"] >= 0.99 and d["max_abs"] <= 4, d
    assert e16.run(frames).dtype == np.uint8
