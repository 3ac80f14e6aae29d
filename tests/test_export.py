"""The torch.export contract the TensorRT backend relies on, checked on the CPU.

torch-tensorrt compiles an ``ExportedProgram``; so the fused module must export as ONE graph (no graph
breaks), with a uint8 input and a uint8 output, at a static camera shape, and also in half precision
(fp16 weights, the float casts inside). A dynamic-shape export (H and W multiples of the networks'
multiple, via ``torch.export.Dim``) must give the same frames as eager at other sizes. ONNX export
keeps uint8 in and out.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from b2b_stream.fuse import FusedDeblur
from conftest import real_frames, tiny_nets


@pytest.fixture(scope="module")
def fused():
    tr, db, m = tiny_nets(seed=1)
    return FusedDeblur(tr, db, multiple=m).eval()


def _io_dtypes(ep: torch.export.ExportedProgram) -> tuple[list, list]:
    sig = ep.graph_signature
    user_inputs = set(sig.user_inputs)
    ins, outs = [], []
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            ins.append(node.meta["val"].dtype)
        if node.op == "output":
            outs = [a.meta["val"].dtype for a in node.args[0]]
    return ins, outs


def test_static_export_one_graph_uint8_io(fused, kodak_images):
    m = fused.multiple
    frames = torch.from_numpy(real_frames(kodak_images, 1, 3 * m, 4 * m))
    # strict export traces with TorchDynamo and fails on any graph break: one whole graph or an error
    ep = torch.export.export(fused, (frames,), strict=True)
    ins, outs = _io_dtypes(ep)
    assert ins == [torch.uint8] and outs == [torch.uint8]
    with torch.no_grad():
        assert torch.equal(ep.module()(frames), fused(frames))
    # static: the exported program refuses another size instead of computing garbage
    other = torch.from_numpy(real_frames(kodak_images, 1, 2 * m, 4 * m))
    with pytest.raises(Exception):
        ep.module()(other)


def test_dynamic_shape_export_over_multiples(fused, kodak_images):
    m = fused.multiple
    Dim = torch.export.Dim
    hb, wb = Dim("h_blocks", min=1, max=2160 // m), Dim("w_blocks", min=1, max=3840 // m)
    ex = torch.from_numpy(real_frames(kodak_images, 1, 3 * m, 4 * m))
    ep = torch.export.export(fused, (ex,), dynamic_shapes={"frames": {1: m * hb, 2: m * wb}})
    mod = ep.module()
    for i, (h, w) in enumerate([(2 * m, 5 * m), (5 * m, 3 * m)]):
        x = torch.from_numpy(real_frames(kodak_images, 1, h, w, offset=i + 2))
        with torch.no_grad():
            assert torch.equal(mod(x), fused(x)), (h, w)


def test_half_precision_variant_exports(fused, kodak_images):
    m = fused.multiple
    half = copy.deepcopy(fused).half()
    frames = torch.from_numpy(real_frames(kodak_images, 1, 2 * m, 3 * m))
    ep = torch.export.export(half, (frames,))
    ins, outs = _io_dtypes(ep)
    assert ins == [torch.uint8] and outs == [torch.uint8]
    params = [p for p in ep.state_dict.values() if p.is_floating_point()]
    assert params and all(p.dtype == torch.float16 for p in params)
    casts = [n for n in ep.graph.nodes if n.op == "call_function" and "to" in str(n.target)
             and any(getattr(a, "__class__", None) is torch.dtype for a in list(n.args) + list(n.kwargs.values()))]
    dtypes = {a for n in casts for a in list(n.args) + list(n.kwargs.values()) if isinstance(a, torch.dtype)}
    assert torch.float16 in dtypes and torch.uint8 in dtypes  # uint8 -> fp16 in, float -> uint8 out


def test_onnx_export_keeps_uint8(fused, kodak_images, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from b2b_stream.engines import export_onnx

    m = fused.multiple
    frames = torch.from_numpy(real_frames(kodak_images, 1, 3 * m, 3 * m + 5, offset=4))  # padding inside
    path = tmp_path / "fused.onnx"
    export_onnx(fused, frames, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.type == "tensor(uint8)" and out.type == "tensor(uint8)"
    got = sess.run(None, {inp.name: frames.numpy()})[0]
    with torch.no_grad():
        ref = fused(frames).numpy()
    d = np.abs(got.astype(int) - ref.astype(int))
    assert d.max() <= 2 and (d <= 1).mean() >= 0.999
