"""Translator-side networks: MIMO-UNet(+), PatchGAN discriminators and VGG features.

Shapes and residual behaviour at odd sizes, parameter counts of the paper configurations against
the published figures and an independent count from the architecture description, the official
key layouts (MIMO-UNet ``{'model': ...}``, Blur2Blur/pix2pix plain state dicts with ``module.``,
torchvision VGG) round-tripping through ``registry.load``, clear errors on tampered files, and
VGG's named layers with early stopping.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from b2b_train.errors import CheckpointError, ConfigError
from b2b_train.nets import registry
from b2b_train.nets.discriminator import MultiScaleDiscriminator, NLayerDiscriminator, receptive_field
from b2b_train.nets.mimo_unet import MIMOUNet, pyramid
from b2b_train.nets.vgg import IMAGENET_MEAN, IMAGENET_STD, VGGFeatures, layer_names

TINY = {"base_channel": 8, "num_res": 1}


@pytest.fixture(scope="module")
def kodak_crop(kodak_images) -> torch.Tensor:
    """A real photo, (1, 3, 37, 53) in [0, 1], odd on both sides."""
    import cv2

    bgr = cv2.imread(str(kodak_images[0]), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[100:137, 200:253, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0)


def _rand_init(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-default values everywhere, so a load that silently skipped a tensor would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net


# ----------------------------------------------------------------------------- MIMO-UNet

def test_mimo_unet_shapes_at_odd_size(kodak_crop):
    net = MIMOUNet(**TINY).eval()
    with torch.no_grad():
        outs = net(kodak_crop)
    assert [tuple(o.shape) for o in outs] == [(1, 3, 10, 14), (1, 3, 19, 27), (1, 3, 37, 53)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_mimo_unet_zero_output_is_identity_at_every_scale(kodak_crop):
    net = MIMOUNet(**TINY, zero_init_output=True)  # everything else keeps its random init
    assert net.feat_extract[0].main[0].weight.abs().sum() > 0
    outs = net.eval()(kodak_crop)
    refs = pyramid(kodak_crop)
    for o, r in zip(outs, refs):
        assert torch.equal(o, r)
    # the ½ and ¼ references are the input's even pixels (nearest halving)
    assert torch.equal(refs[1], kodak_crop[..., ::2, ::2])
    assert torch.equal(refs[0], kodak_crop[..., ::4, ::4])


def test_mimo_unet_smooth_upsample_init_has_no_checkerboard():
    """Default init: a transposed conv (k4 s2) turns a constant map into a 2x2-periodic pattern;
    smooth_upsample_init: constant in, constant out (away from the border), at the same scale."""
    c = 8
    nets = {}
    for smooth in (False, True):
        torch.manual_seed(0)
        nets[smooth] = MIMOUNet(base_channel=c, num_res=1, smooth_upsample_init=smooth)
    ratios = {}
    for smooth, net in nets.items():
        for i, cin in ((3, 4 * c), (4, 2 * c)):
            conv = net.feat_extract[i].main[0]
            with torch.no_grad():
                y = F.conv_transpose2d(torch.ones(1, cin, 8, 8), conv.weight, None, stride=2, padding=1)[..., 2:-2, 2:-2]
            phases = torch.stack([y[..., a::2, b::2] for a in (0, 1) for b in (0, 1)])
            spread = (phases.amax(0) - phases.amin(0)).abs().max()
            ratios[(smooth, i)] = float(spread / y.abs().mean())
    for i in (3, 4):  # the same scale as the default init
        std = {smooth: float(net.feat_extract[i].main[0].weight.std()) for smooth, net in nets.items()}
        assert 0.5 < std[True] / std[False] < 2.0, std
    assert all(ratios[(False, i)] > 0.1 for i in (3, 4)), ratios
    assert all(ratios[(True, i)] < 1e-5 for i in (3, 4)), ratios


def test_mimo_unet_residual_changes_output_and_padding_is_reflect(kodak_crop):
    net = _rand_init(MIMOUNet(**TINY)).eval()
    with torch.no_grad():
        outs = net(kodak_crop)
        # a trained-looking net is not the identity...
        assert all((o - r).abs().max() > 1e-3 for o, r in zip(outs, pyramid(kodak_crop)))
        # ...and an odd-size input behaves as its reflect-padded version, cropped back
        padded = F.pad(kodak_crop, (0, 3, 0, 3), mode="reflect")  # 37x53 -> 40x56
        full = net(padded)
    assert torch.allclose(outs[2], full[2][..., :37, :53], atol=1e-6)
    assert torch.allclose(outs[1], full[1][..., :19, :27], atol=1e-6)
    assert torch.allclose(outs[0], full[0][..., :10, :14], atol=1e-6)


def test_mimo_unet_forward_matches_official_interpolate_formulation():
    """Our strided-slice halving equals the official F.interpolate(scale_factor=0.5) pipeline."""
    net = _rand_init(MIMOUNet(**TINY)).eval()
    x = torch.rand(2, 3, 36, 52, generator=torch.Generator().manual_seed(1))
    up = lambda t: F.interpolate(t, scale_factor=2)  # noqa: E731
    down = lambda t: F.interpolate(t, scale_factor=0.5)  # noqa: E731
    with torch.no_grad():
        x2, x4 = down(x), down(down(x))
        res1 = net.Encoder[0](net.feat_extract[0](x))
        res2 = net.Encoder[1](net.FAM2(net.feat_extract[1](res1), net.SCM2(x2)))
        z = net.Encoder[2](net.FAM1(net.feat_extract[2](res2), net.SCM1(x4)))
        f2 = net.AFFs[1](down(res1), res2, up(z))
        f1 = net.AFFs[0](res1, up(res2), up(up(z)))
        z = net.Decoder[0](z)
        o4 = net.ConvsOut[0](z) + x4
        z = net.Decoder[1](net.Convs[0](torch.cat([net.feat_extract[3](z), f2], 1)))
        o2 = net.ConvsOut[1](z) + x2
        z = net.Decoder[2](net.Convs[1](torch.cat([net.feat_extract[4](z), f1], 1)))
        o1 = net.feat_extract[5](z) + x
        ours = net(x)
    for a, b in zip(ours, (o4, o2, o1)):
        assert torch.equal(a, b)


def test_mimo_unet_exports_with_dynamic_sizes_in_multiples_of_4():
    """What a fused engine that pads once up front to ``spec.multiple`` relies on."""
    from torch.export import Dim

    net = _rand_init(MIMOUNet(**TINY)).eval()
    assert registry.spec("mimo-unet").multiple == 4
    h, w = Dim("h4", min=4, max=512), Dim("w4", min=4, max=512)
    ep = torch.export.export(net, (torch.rand(1, 3, 64, 96),), dynamic_shapes=({2: 4 * h, 3: 4 * w},))
    for size in [(36, 52), (128, 64)]:
        y = torch.rand(1, 3, *size)
        with torch.no_grad():
            for a, b in zip(ep.module()(y), net(y)):
                assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def _mimo_param_count(c: int, r: int) -> int:
    """MIMO-UNet parameters from the paper's architecture description, independent of our module."""
    res = lambda ch: 2 * _conv(3, ch, ch)  # noqa: E731
    scm = lambda p: _conv(3, 3, p // 4) + _conv(1, p // 4, p // 2) + _conv(3, p // 2, p // 2) + _conv(1, p // 2, p - 3) + _conv(1, p, p)  # noqa: E731
    n = 2 * r * (res(c) + res(2 * c) + res(4 * c))  # encoder + decoder
    n += _conv(3, 3, c) + _conv(3, c, 2 * c) + _conv(3, 2 * c, 4 * c) + _conv(4, 4 * c, 2 * c) + _conv(4, 2 * c, c) + _conv(3, c, 3)
    n += _conv(1, 4 * c, 2 * c) + _conv(1, 2 * c, c)  # Convs
    n += _conv(3, 4 * c, 3) + _conv(3, 2 * c, 3)  # ConvsOut
    n += _conv(1, 7 * c, c) + _conv(3, c, c) + _conv(1, 7 * c, 2 * c) + _conv(3, 2 * c, 2 * c)  # AFFs
    n += _conv(3, 4 * c, 4 * c) + _conv(3, 2 * c, 2 * c)  # FAMs
    return n + scm(4 * c) + scm(2 * c)


@pytest.mark.parametrize("name, paper_m, c, r", [("mimo-unet", 6.8, 32, 8), ("mimo-unet-plus", 16.1, 32, 20)])
def test_mimo_unet_parameter_counts_match_the_paper(name, paper_m, c, r):
    net = registry.build(name)
    n = sum(p.numel() for p in net.parameters())
    assert n == _mimo_param_count(c, r)
    assert round(n / 1e6, 1) == paper_m  # Cho et al. 2021 report 6.8 M and 16.1 M
    assert n == registry.spec(name).published_params
    # one key layout for both (dropout has no parameters): 2 tensors per conv, 12 r + 26 convs
    assert len(net.state_dict()) == 2 * (12 * r + 26)


def test_mimo_unet_lite_is_small_and_same_layout():
    lite = registry.build("mimo-unet-lite")
    n = sum(p.numel() for p in lite.parameters())
    assert n < 0.1 * registry.spec("mimo-unet").published_params
    full_keys = set(registry.build("mimo-unet", num_res=lite.num_res).state_dict())
    assert set(lite.state_dict()) == full_keys


def test_mimo_unet_official_key_names_and_shapes():
    """A few keys of chosj95/MIMO-UNet's models/MIMOUNet.py, with the shapes its layers imply."""
    c, r = 32, 8
    sd = registry.build("mimo-unet").state_dict()
    expect = {
        "feat_extract.0.main.0.weight": (c, 3, 3, 3),
        "feat_extract.3.main.0.weight": (4 * c, 2 * c, 4, 4),  # ConvTranspose2d: (in, out, k, k)
        "feat_extract.5.main.0.bias": (3,),
        f"Encoder.2.layers.{r - 1}.main.1.main.0.weight": (4 * c, 4 * c, 3, 3),
        f"Decoder.0.layers.{r - 1}.main.0.main.0.bias": (4 * c,),
        "Convs.1.main.0.weight": (c, 2 * c, 1, 1),
        "ConvsOut.0.main.0.weight": (3, 4 * c, 3, 3),
        "AFFs.0.conv.0.main.0.weight": (c, 7 * c, 1, 1),
        "AFFs.1.conv.1.main.0.weight": (2 * c, 2 * c, 3, 3),
        "FAM1.merge.main.0.weight": (4 * c, 4 * c, 3, 3),
        "SCM1.main.3.main.0.weight": (4 * c - 3, 2 * c, 1, 1),
        "SCM2.conv.main.0.weight": (2 * c, 2 * c, 1, 1),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k


def test_mimo_unet_official_file_round_trip(tmp_path, kodak_crop):
    net = _rand_init(registry.build("mimo-unet", **TINY)).eval()
    official = registry.spec("mimo-unet").to_official(net.state_dict())
    torch.save({"model": official}, tmp_path / "MIMO-UNet.pkl")  # chosj95/MIMO-UNet's format
    loaded = registry.load("mimo-unet", tmp_path / "MIMO-UNet.pkl", **TINY)
    with torch.no_grad():
        for a, b in zip(net(kodak_crop), loaded(kodak_crop)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("prefix", ["", "module.", "module.module."])
def test_blur2blur_generator_file_loads(tmp_path, kodak_crop, prefix):
    """Blur2Blur's latest_net_G.pth: the generator's plain state dict (DataParallel may add module.)."""
    net = _rand_init(registry.build("mimo-unet", **TINY), seed=3).eval()
    torch.save({prefix + k: v for k, v in net.state_dict().items()}, tmp_path / "latest_net_G.pth")
    loaded = registry.load("mimo-unet", tmp_path / "latest_net_G.pth", **TINY)
    with torch.no_grad():
        assert torch.equal(net(kodak_crop)[2], loaded(kodak_crop)[2])


def test_our_safetensors_round_trip(tmp_path, kodak_crop):
    net = _rand_init(registry.build("mimo-unet-lite", **TINY), seed=4).eval()
    registry.save_network(tmp_path / "t.safetensors", net, "mimo-unet-lite", TINY)
    loaded, meta = registry.load_from_file(tmp_path / "t.safetensors")
    assert meta["net"] == "mimo-unet-lite"
    with torch.no_grad():
        assert torch.equal(net(kodak_crop)[2], loaded(kodak_crop)[2])


def _official_file(tmp_path, seed=0):
    net = _rand_init(registry.build("mimo-unet", **TINY), seed=seed)
    return {"model": dict(net.state_dict())}


def test_renamed_key_is_named(tmp_path):
    ck = _official_file(tmp_path)
    ck["model"]["Encoder.1.layers.0.main.1.main.0.wieght"] = ck["model"].pop("Encoder.1.layers.0.main.1.main.0.weight")
    torch.save(ck, tmp_path / "bad.pkl")
    with pytest.raises(CheckpointError) as e:
        registry.load("mimo-unet", tmp_path / "bad.pkl", **TINY)
    msg = str(e.value)
    assert "Encoder.1.layers.0.main.1.main.0.weight" in msg and "wieght" in msg


def test_wrong_shape_is_named(tmp_path):
    ck = _official_file(tmp_path)
    ck["model"]["SCM1.conv.main.0.weight"] = ck["model"]["SCM1.conv.main.0.weight"][:-1]
    torch.save(ck, tmp_path / "bad.pkl")
    with pytest.raises(CheckpointError, match=r"SCM1\.conv\.main\.0\.weight"):
        registry.load("mimo-unet", tmp_path / "bad.pkl", **TINY)


def test_mimo_unet_file_is_not_a_mimo_unet_plus(tmp_path):
    torch.save(_official_file(tmp_path), tmp_path / "MIMO-UNet.pkl")
    with pytest.raises(CheckpointError, match=r"missing \d+ keys.*Decoder\.0\.layers\.1\."):
        registry.load("mimo-unet-plus", tmp_path / "MIMO-UNet.pkl", base_channel=8, num_res=2)


def test_truncated_file(tmp_path):
    torch.save(_official_file(tmp_path), tmp_path / "full.pkl")
    data = (tmp_path / "full.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pkl"):
        registry.load("mimo-unet", tmp_path / "cut.pkl", **TINY)


# ----------------------------------------------------------------------------- discriminators

def test_patchgan_receptive_field_is_70():
    assert receptive_field(3) == 70
    d = _rand_init(NLayerDiscriminator(norm="none"))  # no norm: nothing couples distant pixels
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    assert tuple(out.shape) == (1, 1, 160 // 8 - 2, 160 // 8 - 2)
    out[0, 0, 9, 9].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1)).sum(1)).flatten()
    cols = torch.nonzero(x.grad.abs().sum((0, 1)).sum(0)).flatten()
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_patchgan_layout_and_norm_options():
    d = registry.build("patchgan")
    n = sum(p.numel() for p in d.parameters())
    assert n == registry.spec("patchgan").published_params
    assert round(n / 1e6, 3) == 2.765  # pix2pix prints "2.765 M" for netD basic
    keys = set(d.state_dict())
    # pix2pix names: convs at 0, 2, 5, 8, 11; InstanceNorm (affine=False) has no tensors
    assert keys == {f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")}
    bn = NLayerDiscriminator(norm="batch").state_dict()
    assert "model.2.bias" not in bn and "model.3.running_var" in bn  # pix2pix: no bias before BN
    sn = NLayerDiscriminator(spectral_norm=True)
    assert any("parametrizations.weight" in k for k in sn.state_dict())
    assert sn(torch.rand(1, 3, 64, 64)).shape == (1, 1, 6, 6)
    with pytest.raises(ConfigError, match="group"):
        NLayerDiscriminator(norm="group")
    with pytest.raises(ConfigError, match="base_channel"):
        MIMOUNet(base_channel=7)


@pytest.mark.parametrize("prefix", ["", "module.", "module.module."])
def test_blur2blur_discriminator_file_loads_shared_multiscale(tmp_path, prefix):
    """Released netD (one PatchGAN applied to every scale) loads into patchgan and the shared
    MultiScaleDiscriminator alike."""
    d = _rand_init(NLayerDiscriminator(ndf=16)).eval()
    torch.save({prefix + k: v for k, v in d.state_dict().items()}, tmp_path / "latest_net_D.pth")
    loaded = registry.load("patchgan", tmp_path / "latest_net_D.pth", ndf=16)
    ms = MultiScaleDiscriminator(ndf=16, shared=True)
    from b2b_train.checkpoint import load_any_weights

    load_any_weights(ms, tmp_path / "latest_net_D.pth", remap=registry.spec("patchgan").remap)
    xs = [torch.rand(2, 3, s, s + 8) for s in (32, 64, 128)]
    with torch.no_grad():
        outs = ms.eval()(xs)
        for x, o in zip(xs, outs):
            assert torch.equal(o, d(x))
            assert torch.equal(o, loaded(x))


def test_multiscale_discriminator_shapes_and_sharing():
    shared = MultiScaleDiscriminator(ndf=8)
    per = MultiScaleDiscriminator(ndf=8, shared=False, norm="batch")
    n_shared = sum(p.numel() for p in shared.parameters())
    n_single = sum(p.numel() for p in NLayerDiscriminator(ndf=8, norm="batch").parameters())
    assert sum(p.numel() for p in per.parameters()) == 3 * n_single
    assert n_shared == sum(p.numel() for p in NLayerDiscriminator(ndf=8).parameters())
    outs = MIMOUNet(**TINY)(torch.rand(2, 3, 96, 128))  # translator outputs, coarsest first
    logits = shared(outs)
    assert [tuple(t.shape) for t in logits] == [(2, 1, 1, 2), (2, 1, 4, 6), (2, 1, 10, 14)]
    # one image: the discriminator makes the pyramid itself
    assert [t.shape for t in per(torch.rand(2, 3, 96, 128))] == [t.shape for t in logits]
    with pytest.raises(ValueError, match="expected 3 scales"):
        shared(outs[1:])


# ----------------------------------------------------------------------------- VGG

def test_vgg_layer_names_follow_torchvision_indices():
    n16, n19 = layer_names("vgg16"), layer_names("vgg19")
    assert len(n16) == 31 and len(n19) == 37  # torchvision features lengths
    # torchvision indices used throughout the literature
    assert n16.index("conv2_2") == 7 and n16.index("conv4_1") == 17 and n16.index("conv5_1") == 24
    assert n19.index("relu1_1") == 1 and n19.index("relu2_1") == 6 and n19.index("relu3_1") == 11
    assert n19.index("relu4_1") == 20 and n19.index("relu5_1") == 29 and n19.index("relu5_4") == 35
    assert n19.index("pool4") == 27
    with pytest.raises(ConfigError, match="relu6_1"):
        VGGFeatures("vgg19", layers=("relu1_1", "relu6_1"))


@pytest.mark.parametrize("name, published", [("vgg16", 14_714_688), ("vgg19", 20_024_384)])
def test_vgg_parameter_counts(name, published):
    net = registry.build(name)
    assert sum(p.numel() for p in net.parameters()) == published == registry.spec(name).published_params
    assert not any(p.requires_grad for p in net.parameters())
    assert all(k.startswith("features.") for k in net.state_dict())  # mean/std are not saved


def test_vgg_stops_after_the_last_requested_layer(kodak_crop):
    net = VGGFeatures("vgg19", layers=("relu2_1", "conv1_2"))
    called = []
    for i, m in enumerate(net.features):
        m.register_forward_hook(lambda mod, inp, out, i=i: called.append(i))
    feats = net(kodak_crop)
    assert list(feats) == ["relu2_1", "conv1_2"]  # requested order
    assert called == list(range(7))  # conv1_1 ... relu2_1, nothing after
    assert feats["conv1_2"].shape == (1, 64, 37, 53)
    assert feats["relu2_1"].shape == (1, 128, 18, 26)


def test_vgg_conv_and_relu_and_normalisation(kodak_crop):
    net = VGGFeatures("vgg16", layers=("conv3_3", "relu3_3"))
    feats = net(kodak_crop)
    assert (feats["conv3_3"] < 0).any()  # pre-activation kept (no in-place ReLU)
    assert torch.equal(feats["relu3_3"], feats["conv3_3"].clamp(min=0))
    raw = VGGFeatures("vgg16", layers=("conv3_3",), normalize=False)
    raw.load_state_dict(net.state_dict())
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(raw((kodak_crop - mean) / std)["conv3_3"], feats["conv3_3"], atol=1e-5)


def test_vgg_loads_torchvision_full_model_file(tmp_path, kodak_crop):
    net = _rand_init(registry.build("vgg16", layers=("relu2_2",)), seed=5)
    full = dict(net.state_dict())
    # a torchvision file also holds the classifier (shapes shrunk here; the remap drops it)
    full.update({"classifier.0.weight": torch.zeros(4, 8), "classifier.0.bias": torch.zeros(4)})
    torch.save(full, tmp_path / "vgg16-397923af.pth")
    loaded = registry.load("vgg16", tmp_path / "vgg16-397923af.pth", layers=("relu2_2",))
    assert torch.equal(loaded(kodak_crop)["relu2_2"], net(kodak_crop)["relu2_2"])
    spec = registry.spec("vgg16")
    assert spec.url.endswith("/" + spec.weights_file) and spec.sha256_prefix in spec.weights_file


def test_vgg_missing_features_key_is_named(tmp_path):
    sd = dict(registry.build("vgg19").state_dict())
    del sd["features.34.weight"]
    torch.save(sd, tmp_path / "vgg19-dcbb9e9d.pth")
    with pytest.raises(CheckpointError, match=r"features\.34\.weight"):
        registry.load("vgg19", tmp_path / "vgg19-dcbb9e9d.pth")


def test_lite_translator_is_fast_enough_to_matter():
    """Not a benchmark: just that the lite net is several times cheaper than MIMO-UNet (FLOP proxy)."""
    x = torch.rand(1, 3, 32, 32)
    counts = {}
    for name in ("mimo-unet", "mimo-unet-lite"):
        net = registry.build(name).eval()
        macs = 0

        def hook(m, inp, out):
            nonlocal macs
            macs += out.numel() * m.weight[0].numel() if isinstance(m, torch.nn.Conv2d) else inp[0].numel() * m.weight[0].numel()

        hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        with torch.no_grad():
            net(x)
        for h in hs:
            h.remove()
        counts[name] = macs
    assert counts["mimo-unet-lite"] * 8 < counts["mimo-unet"]


def test_multiscale_d_leaves_out_scales_below_min_side():
    from b2b_train.nets.discriminator import MultiScaleDiscriminator

    d = MultiScaleDiscriminator(num_scales=3, min_side=48, ndf=8, n_layers=2)
    x = torch.rand(2, 3, 96, 96)
    outs = d(x)  # scales 24, 48, 96 px: the 24 px one is not judged
    assert len(outs) == 2 and outs[-1].shape[-1] > outs[0].shape[-1]
    assert len(MultiScaleDiscriminator(num_scales=3, ndf=8, n_layers=2)(x)) == 3
    assert len(MultiScaleDiscriminator(num_scales=3, min_side=500, ndf=8, n_layers=2)(x)) == 1  # full scale kept
