"""Every registered network, timm-style: build its tiny variant, forward at an odd size, backward,
``torch.export`` in eval mode at a fixed size, and ONNX export checked against ONNX Runtime.

The list comes from ``b2b_train.nets.names()``, so a network registered later is tested without
editing this file. A network is skipped only when its spec has no ``tiny_kwargs`` (the skip
reason says so). Networks with ``eval_kwargs`` (the TLC test-time variants) are also
exported with those arguments, since that is how they run when deployed.

``torch.export.export`` (the graph TensorRT and the dynamo ONNX exporter start from) must agree
with eager within ``EXPORT_TOL``. ONNX: torch 2.13's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``, opset 17), run with onnxruntime's CPU provider; outputs
must agree with eager PyTorch within ``ONNX_TOL`` absolute (scaled by the output's magnitude when
that exceeds 1). The dynamo-based ONNX exporter also works on these networks but costs 5-10x more
time, so it is checked once, on the translator (``test_dynamo_onnx_exporter_on_the_translator``).

Specs whose tiny variants are the same architecture with the same settings (e.g. the NAFNet
GoPro/REDS entries differ only in full-size width, which ``tiny`` overrides) are exported once:
the first name of each group by sort order represents it.

Inputs: one (1, 3, H, W) image in [0, 1], unless the spec provides ``example_inputs``
(two-input networks such as the blur-kernel extractor): a callable returning a tuple of tensors
(called with ``size=(H, W)`` when it takes that argument), a tuple of tensors, or a tuple of shapes.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_leaves

import b2b_train.nets as nets

ODD = (37, 53)
FIXED = (48, 64)
ONNX_TOL = 1e-4
EXPORT_TOL = 1e-5

ALL = nets.names()


def _signature(net: torch.nn.Module) -> str:
    """Module tree with every module's class and plain settings: equal means same computation in
    eval mode (dropout and identity modules are left out)."""
    parts = []
    for mod_name, m in net.named_modules():
        if isinstance(m, (torch.nn.Identity, torch.nn.modules.dropout._DropoutNd)):
            continue  # the same computation in eval mode
        attrs = sorted(
            (k, repr(v)) for k, v in vars(m).items()
            if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple, list, type(None)))
        )
        parts.append((mod_name, type(m).__module__, type(m).__qualname__, tuple(attrs)))
    return repr(parts)


def _export_variants() -> list[tuple[str, bool]]:
    variants = [(n, False) for n in ALL] + [(n, True) for n in ALL if nets.spec(n).eval_kwargs]
    seen: set[str] = set()
    chosen = []
    for name, ev in variants:
        spec = nets.spec(name)
        if not spec.tiny_kwargs:
            chosen.append((name, ev))  # skipped (with its reason) inside the test
            continue
        try:
            kwargs = {**spec.tiny_kwargs, **(spec.eval_kwargs if ev else {})}
            sig = _signature(spec.build(**kwargs).eval())
        except Exception:  # the test itself will report the failure
            sig = f"unbuildable:{name}:{ev}"
        sig += repr(spec.example_inputs is not None)
        if sig not in seen:
            seen.add(sig)
            chosen.append((name, ev))
    return chosen


VARIANTS = _export_variants()


def _tiny(name: str, eval_variant: bool = False) -> torch.nn.Module:
    spec = nets.spec(name)
    if not spec.tiny_kwargs:
        pytest.skip(f"{name}: its NetSpec has no tiny_kwargs (no small variant to test)")
    kwargs = dict(spec.tiny_kwargs)
    if eval_variant:
        kwargs.update(spec.eval_kwargs)
    torch.manual_seed(0)
    return spec.build(**kwargs)


def _inputs(name: str, size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    ex = nets.spec(name).example_inputs
    if ex is None:
        return (torch.rand(1, 3, *size, generator=g),)
    if callable(ex):
        ex = ex(size=size) if "size" in inspect.signature(ex).parameters else ex()
    if isinstance(ex, torch.Tensor):
        ex = (ex,)
    out = []
    for e in ex:
        out.append(e.detach().clone() if isinstance(e, torch.Tensor) else torch.rand(*e, generator=g))
    return tuple(out)


def _leaves(out) -> list[torch.Tensor]:
    leaves = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
    assert leaves, "network returned no tensors"
    return leaves


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_at_odd_size(name):
    net = _tiny(name).train()
    xs = tuple(x.requires_grad_(True) for x in _inputs(name, ODD))
    out = net(*xs)
    leaves = _leaves(out)
    for t in leaves:
        assert torch.isfinite(t).all(), f"{name}: non-finite output"
    family = nets.spec(name).family
    if family == "deblurrer":
        assert leaves[0].shape == xs[0].shape
    if family == "translator":
        assert leaves[-1].shape == xs[0].shape  # full-resolution output last
    loss = sum(t.float().square().mean() for t in leaves)
    loss.backward()
    for x in xs:
        assert x.grad is not None and torch.isfinite(x.grad).all()
    assert any(x.grad.abs().sum() > 0 for x in xs), f"{name}: no gradient reaches the input"
    trainable = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    for k, p in trainable:
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {k}"
    if trainable:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in trainable)


@pytest.mark.parametrize("name, eval_variant", VARIANTS, ids=[n + ("[eval_kwargs]" if e else "") for n, e in VARIANTS])
def test_torch_export_and_onnx_match_eager(name, eval_variant, tmp_path):
    net = _tiny(name, eval_variant).eval()
    xs = _inputs(name, FIXED, seed=1)
    with torch.no_grad():
        ref = [t.detach() for t in _leaves(net(*xs))]

    ep = torch.export.export(net, xs)
    with torch.no_grad():
        got = _leaves(ep.module()(*xs))
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= EXPORT_TOL * max(1.0, b.abs().max().item())

    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, xs, str(path), dynamo=False, opset_version=17)
    _check_onnx(path, xs, ref, name)


def _check_onnx(path, xs, ref, name):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), xs)}
    outs = sess.run(None, feeds)
    assert len(outs) == len(ref)
    for o, r in zip(outs, ref):
        r = r.numpy()
        assert o.shape == r.shape
        err = float(np.abs(o - r).max())
        assert err <= ONNX_TOL * max(1.0, float(np.abs(r).max())), f"{name}: onnxruntime differs by {err:.2e}"


def test_dynamo_onnx_exporter_on_the_translator(tmp_path):
    net = _tiny("mimo-unet").eval()
    xs = _inputs("mimo-unet", FIXED, seed=2)
    with torch.no_grad():
        ref = _leaves(net(*xs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(torch.export.export(net, xs), xs, dynamo=True, verbose=False)
    program.save(str(tmp_path / "mimo.onnx"))
    _check_onnx(tmp_path / "mimo.onnx", xs, ref, "mimo-unet")
