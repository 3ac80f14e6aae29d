"""Deblurrers (NAFNet, Restormer), their shared layers and TLC local statistics.

Checks shapes at odd sizes, exact residual behaviour, published parameter counts, loading files
written in the official BasicSR layouts, clear errors on tampered files, TLC against brute-force
references, the export-friendly LayerNorm, and export of the TLC variants.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from b2b_train.checkpoint import load_any_weights
from b2b_train.errors import CheckpointError
from b2b_train.nets import registry
from b2b_train.nets.layers import (
    BiasFreeLayerNorm2d,
    LayerNorm2d,
    local_avg_pool2d,
    pad_to_multiple,
    tlc_window,
    tlc_window_starts,
)
from b2b_train.nets.nafnet import NAFNet
from b2b_train.nets.restormer import Restormer, local_transposed_attention, transposed_attention

DEBLURRERS = ["nafnet-gopro-width32", "nafnet-gopro-width64", "nafnet-reds-width64", "nafnet-lite",
              "nafnet-tiny", "restormer-motion"]


def tiny(name: str, **kw) -> torch.nn.Module:
    s = registry.spec(name)
    return s.build(**{**s.tiny_kwargs, **kw})


def randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (including NAFNet's zero-initialised beta/gamma) non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif name.endswith("temperature"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


# ----------------------------------------------------------------------------- registry & shapes

def test_all_deblurrers_registered_with_tiny_variants():
    assert set(DEBLURRERS) <= set(registry.names("deblurrer"))
    for name in DEBLURRERS:
        s = registry.spec(name)
        assert s.family == "deblurrer"
        assert isinstance(s.tiny_kwargs, dict) and s.tiny_kwargs
        assert s.multiple in (8, 16)


@pytest.mark.parametrize("name", ["nafnet-tiny", "nafnet-lite", "restormer-motion"])
@pytest.mark.parametrize("hw", [(45, 67), (7, 9)])
def test_any_input_size_keeps_shape(name, hw):
    # the registered lite/tiny NAFNets themselves; Restormer through its tiny variant
    net = randomize(tiny(name) if name == "restormer-motion" else registry.build(name))
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    # batch items are independent (no statistics mixed across the batch)
    with torch.no_grad():
        y1 = net(x[1:])
    torch.testing.assert_close(y[1:], y1, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,last", [("nafnet-tiny", "ending"), ("restormer-motion", "output")])
def test_output_is_residual_to_the_input(name, last):
    """With the last conv zeroed the network must return its input exactly, whatever the padding."""
    net = randomize(tiny(name))
    with torch.no_grad():
        conv = getattr(net, last)
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()
    x = torch.rand(1, 3, 45, 67)
    with torch.no_grad():
        assert torch.equal(net(x), x)


def test_padding_only_touches_bottom_right():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    for mode in ("constant", "reflect", "replicate"):
        y = pad_to_multiple(x, 8, mode=mode)
        assert y.shape[-2:] == (8, 8)
        assert torch.equal(y[..., :5, :7], x)
    assert pad_to_multiple(x[..., :4, :4], 4) is not None and pad_to_multiple(x[..., :4, :4], 4).shape[-1] == 4
    # a side too short to reflect falls back to edge replication instead of failing
    assert pad_to_multiple(torch.rand(1, 1, 2, 3), 8, mode="reflect").shape[-2:] == (8, 8)


# Published figures: NAFNet paper/README (17.11 M, 67.89 M), Restormer paper (26.13 M).
@pytest.mark.parametrize("name,millions", [
    ("nafnet-gopro-width32", 17.11), ("nafnet-gopro-width64", 67.89), ("nafnet-reds-width64", 67.89),
    ("restormer-motion", 26.13),
])
def test_published_parameter_counts(name, millions):
    with torch.device("meta"):
        net = registry.build(name)
    n = sum(p.numel() for p in net.parameters())
    assert round(n / 1e6, 2) == millions
    assert abs(n - registry.spec(name).published_params) / n < 1e-3


def test_lite_sizes_are_small():
    with torch.device("meta"):
        lite, tiny_net = registry.build("nafnet-lite"), registry.build("nafnet-tiny")
    n_lite = sum(p.numel() for p in lite.parameters())
    n_tiny = sum(p.numel() for p in tiny_net.parameters())
    assert n_tiny < n_lite < 2_000_000


# ----------------------------------------------------------------------------- official layouts

def _official_file(tmp_path, net, spec, wrapper: str, prefix: str = ""):
    sd = spec.to_official(net.state_dict())
    sd = {prefix + k: v.clone() for k, v in sd.items()}
    path = tmp_path / f"official-{wrapper}.pth"
    torch.save({wrapper: sd, "iter": 1000}, path)
    return path


@pytest.mark.parametrize("name", ["nafnet-tiny", "restormer-motion"])
@pytest.mark.parametrize("wrapper,prefix", [("params", ""), ("params_ema", ""), ("params", "module.")])
def test_official_basicsr_layout_round_trip(tmp_path, name, wrapper, prefix):
    spec = registry.spec(name)
    src = randomize(tiny(name), seed=1)
    path = _official_file(tmp_path, src, spec, wrapper, prefix)
    dst = tiny(name)
    load_any_weights(dst, path, remap=spec.remap, what=name)
    dst.eval()
    x = torch.rand(1, 3, 21, 27)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    # the registry's loader does the same from an explicit path
    net = registry.load(name, path, **spec.tiny_kwargs)
    with torch.no_grad():
        assert torch.equal(src(x), net(x))


def test_official_keys_are_the_published_names():
    """A few keys exactly as they appear in the published NAFNet and Restormer files."""
    with torch.device("meta"):
        naf = registry.build("nafnet-gopro-width32").state_dict()
        rest = registry.build("restormer-motion").state_dict()
    for k in ["intro.weight", "encoders.3.27.sca.1.weight", "encoders.0.0.norm1.weight", "encoders.0.0.beta",
              "middle_blks.0.gamma", "ups.0.0.weight", "downs.3.bias", "decoders.3.0.conv5.bias", "ending.bias"]:
        assert k in naf, k
    assert tuple(naf["encoders.0.0.beta"].shape) == (1, 32, 1, 1)
    for k in ["patch_embed.proj.weight", "encoder_level1.0.norm1.body.weight", "encoder_level1.0.norm1.body.bias",
              "latent.7.attn.temperature", "encoder_level2.0.attn.qkv_dwconv.weight", "down1_2.body.0.weight",
              "up2_1.body.0.weight", "reduce_chan_level3.weight", "refinement.3.ffn.project_out.weight",
              "output.weight"]:
        assert k in rest, k
    assert tuple(rest["encoder_level1.0.ffn.project_in.weight"].shape) == (int(48 * 2.66) * 2, 48, 1, 1)


def test_params_ema_preferred_over_params(tmp_path):
    spec = registry.spec("nafnet-tiny")
    a, b = randomize(registry.build("nafnet-tiny"), 1), randomize(registry.build("nafnet-tiny"), 2)
    path = tmp_path / "both.pth"
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, path)
    net = registry.load("nafnet-tiny", path)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(net(x), b(x))
    assert spec.remap is not None


@pytest.mark.parametrize("tamper", ["drop", "rename", "reshape", "truncate"])
def test_tampered_official_file_names_the_problem(tmp_path, tamper):
    net = randomize(registry.build("nafnet-tiny"))
    sd = dict(net.state_dict())
    path = tmp_path / "bad.pth"
    if tamper == "drop":
        del sd["encoders.1.0.conv2.weight"]
        expect = ["missing", "encoders.1.0.conv2.weight"]
    elif tamper == "rename":
        sd["encoders.1.0.conv2.kernel"] = sd.pop("encoders.1.0.conv2.weight")
        expect = ["unexpected", "encoders.1.0.conv2.kernel", "encoders.1.0.conv2.weight"]
    elif tamper == "reshape":
        sd["ending.weight"] = torch.zeros(3, 9, 3, 3)
        expect = ["shape", "ending.weight"]
    if tamper == "truncate":
        torch.save({"params": sd}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        expect = [str(path)]
    else:
        torch.save({"params": sd}, path)
    with pytest.raises(CheckpointError) as e:
        registry.load("nafnet-tiny", path)
    for word in expect:
        assert word in str(e.value)


def test_restormer_file_does_not_fit_nafnet(tmp_path):
    path = tmp_path / "restormer.pth"
    torch.save({"params": tiny("restormer-motion").state_dict()}, path)
    with pytest.raises(CheckpointError, match="missing .*unexpected"):
        registry.load("nafnet-tiny", path)


# ----------------------------------------------------------------------------- layer norm

@pytest.mark.parametrize("eps", [1e-6, 1e-5])
def test_layernorm2d_matches_reference(eps):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 7, generator=g) * 3 + 1
    ln = LayerNorm2d(6, eps=eps)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(6, generator=g))
        ln.bias.copy_(torch.randn(6, generator=g))
    mu = x.mean(1, keepdim=True)
    var = ((x - mu) ** 2).mean(1, keepdim=True)
    ref = (x - mu) / torch.sqrt(var + eps) * ln.weight.view(1, -1, 1, 1) + ln.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)
    # gradients flow to input and parameters
    x.requires_grad_(True)
    ln(x).square().sum().backward()
    assert x.grad is not None and ln.weight.grad is not None and torch.isfinite(x.grad).all()


def test_biasfree_layernorm_matches_restormer_formula():
    x = torch.randn(2, 4, 3, 5) + 2
    n = BiasFreeLayerNorm2d(4)
    with torch.no_grad():
        n.weight.copy_(torch.tensor([0.5, 1.0, 2.0, -1.0]))
    var = x.var(1, unbiased=False, keepdim=True)
    ref = x / torch.sqrt(var + 1e-5) * n.weight.view(1, -1, 1, 1)
    torch.testing.assert_close(n(x), ref, atol=1e-5, rtol=1e-5)
    assert [k for k, _ in n.named_parameters()] == ["weight"]


def test_layernorm2d_exports_as_one_layernormalization_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ln = LayerNorm2d(8).eval()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(1, 8, 6, 10) * 4
    ep = torch.export.export(ln, (x,))
    assert any("layer_norm" in str(n.target) for n in ep.graph.nodes if n.op == "call_function")
    path = tmp_path / "ln.onnx"
    torch.onnx.export(ln, (x,), dynamo=True).save(str(path))
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("LayerNormalization") == 1
    assert not {"ReduceMean", "Pow", "Sqrt"} & set(ops)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), ln(x).detach(), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- TLC

def _reference_local_pool(x, k):
    """Brute force: average pool of every full window, borders replicated (TLC AvgPool2d semantics)."""
    h, w = x.shape[-2:]
    kh, kw = min(h, k[0]), min(w, k[1])
    if kh == h and kw == w:
        return x.mean((2, 3), keepdim=True).expand_as(x)
    out = F.avg_pool2d(x.double(), (kh, kw), stride=1)
    ph, pw = h - out.shape[-2], w - out.shape[-1]
    return F.pad(out, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate").to(x.dtype)


@pytest.mark.parametrize("hw,k", [((40, 50), (12, 12)), ((33, 17), (20, 6)), ((24, 24), (30, 8)), ((9, 9), (9, 9))])
def test_local_avg_pool_matches_brute_force(hw, k):
    x = torch.randn(2, 3, *hw) * 5 + 10
    y = local_avg_pool2d(x, k)
    ref = _reference_local_pool(x, k)
    torch.testing.assert_close(y.expand_as(x), ref, atol=1e-4, rtol=1e-5)
    if k[0] >= hw[0] and k[1] >= hw[1]:
        assert y.shape[-2:] == (1, 1)  # the global case stays a cheap broadcast
    else:
        assert y.shape == x.shape


def test_tlc_window_starts_cover_evenly():
    for n in range(1, 60):
        for k in range(1, 40):
            s = tlc_window_starts(n, k)
            kk = min(n, k)
            assert s[0] == 0 and s[-1] == n - kk
            assert len(s) == (n - 1) // kk + 1
            covered = set()
            for a in s:
                covered.update(range(a, a + kk))
            assert covered == set(range(n))


def test_tlc_windows_are_the_official_ones():
    # megvii-research/TLC: base_size 1.5 x train (384 for 256 crops), scaled with each level
    for level in range(5):
        assert tlc_window(256, level, multiple=16) == (384 >> level, 384 >> level)
    assert tlc_window((256, 320), 0) == (384, 480)
    net = NAFNet(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1], tlc=True, train_size=256)
    assert net.encoders[0][0].sca[0].window == (384, 384)
    assert net.middle_blks[0].sca[0].window == (96, 96)
    assert net.decoders[1][0].sca[0].window == (384, 384)
    r = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2], tlc=True)
    assert r.latent[0].attn.window == (48, 48) and r.refinement[0].attn.window == (384, 384)
    assert r.set_tlc(False).latent[0].attn.window is None


def _reference_local_attention(qkv, heads, temperature, k):
    """Straightforward TLC grids / grids_inverse: accumulate window outputs and divide by coverage."""
    n, c3, h, w = qkv.shape
    kh, kw = min(h, k[0]), min(w, k[1])
    acc = torch.zeros(n, c3 // 3, h, w, dtype=torch.float64)
    cnt = torch.zeros(1, 1, h, w, dtype=torch.float64)
    for r in tlc_window_starts(h, kh):
        for c in tlc_window_starts(w, kw):
            win = qkv[:, :, r:r + kh, c:c + kw].double()
            acc[:, :, r:r + kh, c:c + kw] += transposed_attention(win, heads, temperature.double())
            cnt[:, :, r:r + kh, c:c + kw] += 1
    return (acc / cnt).float()


@pytest.mark.parametrize("hw,k", [((20, 30), (8, 12)), ((17, 9), (6, 9)), ((12, 12), (12, 12))])
def test_local_transposed_attention_matches_reference(hw, k):
    qkv = torch.randn(2, 3 * 4, *hw)
    temp = torch.tensor([0.7, 1.3]).view(2, 1, 1)
    y = local_transposed_attention(qkv, 2, temp, k)
    torch.testing.assert_close(y, _reference_local_attention(qkv, 2, temp, k), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["nafnet-tiny", "restormer-motion"])
def test_tlc_equals_global_on_small_inputs_and_differs_on_large(name):
    net = randomize(tiny(name), seed=3)
    local = tiny(name, tlc=True, train_size=16).eval()  # windows 24 px at full resolution
    local.load_state_dict(net.state_dict())
    assert local.tlc and not net.tlc
    small = torch.rand(1, 3, 20, 21)
    with torch.no_grad():
        torch.testing.assert_close(local(small), net(small), atol=1e-5, rtol=1e-5)
    large = torch.rand(1, 3, 40, 61)  # 2 x 3 windows of 24 px at full resolution
    with torch.no_grad():
        yg, yl = net(large), local(large)
    assert torch.isfinite(yl).all()
    diff = (yg - yl).abs()
    assert diff.max() > 1e-4  # local statistics really are used
    assert diff.mean() < 0.5 * (yg - large).abs().mean() + 1e-3  # ...and stay a small correction
    # switching on an existing network gives the same result as building it local
    with torch.no_grad():
        torch.testing.assert_close(net.set_tlc(True, 16)(large), yl)


@pytest.mark.parametrize("name", [
    "nafnet-tiny",
    # Restormer's windowed attention makes a large ONNX graph (~10 s CPU to export): slow set only
    pytest.param("restormer-motion", marks=pytest.mark.slow),
])
def test_tlc_variants_export_to_onnx(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = randomize(tiny(name, tlc=True, train_size=16), seed=4)
    x = torch.rand(1, 3, 21, 45)  # padded 24 x 48: two TLC windows side by side at every level
    with torch.no_grad():
        ref = net(x)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(net, (x,), dynamo=True, optimize=False).save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["nafnet-tiny", "restormer-motion"])
def test_tlc_variants_torch_export(name):
    net = randomize(tiny(name, tlc=True, train_size=16), seed=4)
    x = torch.rand(1, 3, 21, 45)
    with torch.no_grad():
        ref = net(x)
    ep = torch.export.export(net, (x,))
    torch.testing.assert_close(ep.module()(x), ref, atol=1e-5, rtol=1e-5)


def test_nafnet_on_a_real_photo(kodak_images):
    """A real image through a randomly initialised lite net with and without TLC: finite, right size."""
    from b2b_train.data.io import read_image, to_tensor

    img = to_tensor(read_image(kodak_images[0]))[None, :, :101, :131]
    net = randomize(registry.build("nafnet-lite"), seed=5)
    with torch.no_grad():
        y = net(img)
        yl = net.set_tlc(True, 32)(img)
    assert y.shape == img.shape and yl.shape == img.shape
    assert torch.isfinite(y).all() and torch.isfinite(yl).all()
    assert not math.isclose(float((y - yl).abs().max()), 0.0)
