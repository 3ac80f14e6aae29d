"""``b2b-train weights``: list, inspect, convert, fetch (with file:// URLs only; nothing downloads)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from click.testing import CliRunner

from b2b_train.cli import main as train_main
from b2b_train.commands.weights import recorded_digest, verify_digest, weights
from b2b_train.errors import B2BError, CheckpointError
from b2b_train.nets import registry
from b2b_train.nets.registry import NetSpec


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("B2B_CACHE", str(root))
    monkeypatch.setenv("COLUMNS", "200")
    return root / "weights"


@pytest.fixture()
def runner():
    return CliRunner()


def _tiny_official(path, seed=0):
    """A BasicSR-style file of the registered nafnet-tiny network with random weights."""
    torch.manual_seed(seed)
    net = registry.build("nafnet-tiny")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.save({"params": {"module." + k: v for k, v in net.state_dict().items()}}, path)
    return net.eval()


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_command_has_help_with_example(runner):
    for args in ([], ["list"], ["inspect"], ["convert"], ["fetch"]):
        r = runner.invoke(weights, args + ["--help"])
        assert r.exit_code == 0, r.output
        assert "Example:" in r.output


def test_list_shows_networks_and_cache_state(runner, cache, tmp_path):
    r = runner.invoke(weights, ["list", "--family", "deblurrer"])
    assert r.exit_code == 0, r.output
    for name in ["nafnet-gopro-width32", "nafnet-lite", "restormer-motion", "NAFNet-GoPro-width32.pth", "17.11 M"]:
        assert name in r.output
    assert "0 with weights in the cache" in r.output
    assert "mimo-unet" not in r.output  # filtered by family
    cache.mkdir(parents=True)
    _tiny_official(cache / "x.pth")
    net = registry.build("nafnet-tiny")
    registry.save_network(cache / "nafnet-tiny.safetensors", net, "nafnet-tiny")
    r = runner.invoke(weights, ["list", "--family", "deblurrer"])
    assert "nafnet-tiny.safetensors" in r.output
    assert "1 with weights in the cache" in r.output


def test_inspect_names_the_network_an_official_file_fits(runner, tmp_path):
    path = tmp_path / "official.pth"
    _tiny_official(path)
    r = runner.invoke(weights, ["inspect", str(path), "--keys", "3"])
    assert r.exit_code == 0, r.output
    assert "fits: nafnet-tiny" in r.output
    assert "intro.weight" in r.output and "module." not in r.output
    assert "fits: restormer-motion" not in r.output


def test_inspect_a_tampered_file_shows_the_closest_network(runner, tmp_path):
    path = tmp_path / "bad.pth"
    net = registry.build("nafnet-tiny")
    sd = net.state_dict()
    del sd["decoders.0.0.conv4.weight"]
    torch.save({"params": sd}, path)
    r = runner.invoke(weights, ["inspect", str(path)])
    assert r.exit_code == 0, r.output
    assert "fits: no registered network" in r.output
    assert "closest: nafnet-tiny" in r.output and "decoders.0.0.conv4.weight" in r.output


def test_convert_official_to_safetensors_reloads_alone(runner, tmp_path):
    src = tmp_path / "official.pth"
    ref = _tiny_official(src, seed=3)
    dst = tmp_path / "ours.safetensors"
    r = runner.invoke(weights, ["convert", "nafnet-tiny", str(src), str(dst)])
    assert r.exit_code == 0, r.output
    assert "converted" in r.output
    net, meta = registry.load_from_file(dst)
    assert meta["net"] == "nafnet-tiny" and meta["source_sha256"] == _sha(src)
    x = torch.rand(1, 3, 33, 29)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    r = runner.invoke(weights, ["inspect", str(dst)])
    assert "b2b file for network nafnet-tiny" in r.output and "fits: nafnet-tiny" in r.output
    # our file of a non-default configuration fits through the kwargs in its metadata
    kw = {"width": 8, "enc_blk_nums": [1], "dec_blk_nums": [1], "middle_blk_num": 1}
    small = tmp_path / "small.safetensors"
    registry.save_network(small, registry.build("nafnet-tiny", **kw), "nafnet-tiny", kw)
    r = runner.invoke(weights, ["inspect", str(small)])
    assert "fits: nafnet-tiny with" in r.output and "fits: nafnet-tiny\n" not in r.output


def test_convert_wrong_network_fails_clearly(tmp_path, capsys):
    src = tmp_path / "official.pth"
    _tiny_official(src)
    with pytest.raises(SystemExit) as e:
        train_main(["weights", "convert", "restormer-motion", str(src), str(tmp_path / "o.safetensors")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit restormer-motion" in err and "missing" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.safetensors").exists()


def test_fetch_good_checksum_installs_into_cache(runner, cache, tmp_path):
    src = tmp_path / "served" / "tiny.safetensors"
    src.parent.mkdir()
    ref = registry.build("nafnet-tiny").eval()
    registry.save_network(src, ref, "nafnet-tiny")
    digest = _sha(src)
    r = runner.invoke(weights, ["fetch", "nafnet-tiny", "--url", src.as_uri(), "--sha256", digest])
    assert r.exit_code == 0, r.output
    installed = cache / "nafnet-tiny.safetensors"
    assert installed.is_file() and _sha(installed) == digest
    assert [p.name for p in cache.iterdir()] == ["nafnet-tiny.safetensors"]  # no temporary left
    net = registry.load("nafnet-tiny")  # found in the cache by name
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    # again: already there, nothing downloaded; the 8-hex-digit prefix form is accepted too
    r = runner.invoke(weights, ["fetch", "nafnet-tiny", "--url", src.as_uri(), "--sha256", digest[:8]])
    assert r.exit_code == 0 and "already present" in r.output


def test_fetch_bad_checksum_is_refused_and_leaves_nothing(cache, tmp_path, capsys):
    src = tmp_path / "tiny.pth"
    _tiny_official(src)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(SystemExit) as e:
        train_main(["weights", "fetch", "nafnet-tiny", "--url", src.as_uri(), "--sha256", wrong])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and _sha(src) in err
    assert not cache.exists() or list(cache.iterdir()) == []


def test_fetch_refuses_without_any_checksum(runner, cache, tmp_path):
    src = tmp_path / "tiny.pth"
    _tiny_official(src)
    r = runner.invoke(weights, ["fetch", "nafnet-tiny", "--url", src.as_uri()])
    assert isinstance(r.exception, CheckpointError) and "--sha256" in str(r.exception)
    r = runner.invoke(weights, ["fetch", "restormer-motion"])  # official URL but no published digest
    assert isinstance(r.exception, CheckpointError) and "no checksum" in str(r.exception)
    r = runner.invoke(weights, ["fetch", "nafnet-tiny", "--url", src.as_uri(), "--sha256", "abc"])
    assert isinstance(r.exception, B2BError) and "prefix" in str(r.exception)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_fetch_checks_the_file_fits_before_installing(runner, cache, tmp_path):
    src = tmp_path / "restormer.pth"
    s = registry.spec("restormer-motion")
    torch.save({"params": s.build(**s.tiny_kwargs).state_dict()}, src)
    r = runner.invoke(weights, ["fetch", "nafnet-tiny", "--url", src.as_uri(), "--sha256", _sha(src)])
    assert isinstance(r.exception, CheckpointError) and "does not fit nafnet-tiny" in str(r.exception)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_fetch_unreachable_url_fails_clearly(runner, cache, tmp_path):
    r = runner.invoke(weights, ["fetch", "nafnet-tiny", "--url", (tmp_path / "nope.pth").as_uri(),
                                "--sha256", "0" * 64])
    assert isinstance(r.exception, CheckpointError) and "cannot download" in str(r.exception)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_digest_rules():
    full = hashlib.sha256(b"x").hexdigest()
    assert verify_digest(full, full.upper())
    assert verify_digest(full, full[:8])
    assert not verify_digest(full, "0" * 8 if not full.startswith("0" * 8) else "f" * 8)
    with pytest.raises(B2BError):
        verify_digest(full, "xyz12345")
    # torch.hub naming: the hex suffix of the published file name is the digest prefix
    hub = NetSpec(name="x", family="features", build=lambda: None, weights_file="vgg16-397923af.pth",
                  url="https://download.pytorch.org/models/vgg16-397923af.pth")
    assert recorded_digest(hub) == "397923af"
    assert recorded_digest(registry.spec("nafnet-gopro-width32")) == registry.spec("nafnet-gopro-width32").sha256
    assert recorded_digest(registry.spec("restormer-motion")) is None
