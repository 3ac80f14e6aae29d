"""Engines on the CPU (torch backend), the engine cache, profiles and the clear errors.

The torch eager engine must be bit-exact with the eager fused module; the cache must never serve a
stale, corrupt or foreign file. Frames are real Kodak crops; the networks the registry's tiny variants
(random weights, fixed seed). onnxruntime and ``auto``: test_engines_onnx.py; torch.compile:
test_engines_compile.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b_stream import engines
from b2b_stream.engines import get_engine
from b2b_stream.engines.runtime import compare_frames
from b2b_stream.fuse import FusedDeblur
from b2b_train.errors import B2BError
from b2b_train.hashing import file_sha256
from conftest import TRANSLATOR, real_frames, tiny_nets

W, H = 72, 48  # not a multiple of 16 in width: the engine pads and crops inside


@pytest.fixture(scope="module")
def nets():
    return tiny_nets(seed=2)


@pytest.fixture(scope="module")
def frames(kodak_images):
    return real_frames(kodak_images, 3, H, W, offset=6)


def _eager(nets, frames, multiple):
    """The eager fp32 fused module (the reference every backend is held to)."""
    tr, db, _ = nets
    with torch.no_grad():
        return FusedDeblur(tr, db, multiple=multiple)(torch.from_numpy(frames)).numpy()


def test_torch_eager_engine_is_bit_exact(nets, frames, b2b_home):
    tr, db, m = nets
    eng = get_engine(None, backend="torch", precision="fp32", torch_mode="eager", size=(W, H), translator=tr, deblurrer=db)
    assert (eng.backend, eng.device, eng.precision) == ("torch", "cpu", "fp32")
    assert eng.info["mode"] == "eager" and eng.info["cache"] == "built"
    assert eng.info["check"]["max_abs"] == 0
    ref = _eager(nets, frames, eng.info["multiple"])
    assert np.array_equal(eng.run(frames), ref)
    # one HxWx3 frame (compared with a batch of one: CPU kernels may round differently per batch size)
    assert np.array_equal(eng(frames[1]), _eager(nets, frames[1:2], eng.info["multiple"])[0])
    assert eng.info["translator"].startswith(type(tr).__name__) and "note" not in eng.info
    # submit(): a CPU engine computes at once (depth 1); its result is run()'s, for a batch and a frame
    assert eng.async_depth == 1
    pending = eng.submit(frames)
    assert pending.ready() and np.array_equal(pending.result(), ref)
    assert np.array_equal(eng.submit(frames[1]).result(), eng(frames[1]))
    # the caller's networks were not cast or moved
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in db.parameters())


def test_torch_script_engine_is_the_cpu_default_and_matches_eager(nets, frames, b2b_home):
    tr, db, m = nets
    eng = get_engine(None, backend="torch", precision="fp32", size=(W, H), translator=tr, deblurrer=db)
    assert eng.info["mode"] == "script" and "note" not in eng.info
    ref = _eager(nets, frames, eng.info["multiple"])
    # one traced graph for the engine's size, frozen (constant folding may round a last bit differently)
    assert compare_frames(eng.run(frames), ref)["max_abs"] <= 1
    assert compare_frames(eng(frames[1])[None], ref[1:2])["max_abs"] <= 1
    with pytest.raises(B2BError, match="built for"):
        eng.run(np.zeros((1, H + 8, W, 3), np.uint8))
    # without a frame size the CPU default stays eager (a traced graph has one size)
    any_size = get_engine(None, backend="torch", size=None, translator=tr, deblurrer=db)
    assert any_size.info["mode"] == "eager"


def _messages():
    out: list[str] = []
    return out, out.append


def test_cache_hit_miss_stale_and_corrupt(nets, frames, b2b_home):
    tr, db, m = nets
    kw = dict(backend="torch", torch_mode="eager", size=(W, H), translator=tr, check=False)
    msgs, say = _messages()
    e1 = get_engine(None, deblurrer=db, say=say, **kw)
    assert e1.info["cache"] == "built"
    file = Path(e1.info["file"])
    manifest = file.with_suffix(".json")
    man = json.loads(manifest.read_text())
    assert man["sha256"] == file_sha256(file) and man["key"]["size"] == [W, H]
    assert man["key"]["deblurrer"].endswith(engines._digest(db).split(":")[1])
    assert file.suffix == ".safetensors" and man["key"]["variant"] == "eager"
    out1 = e1.run(frames)

    # hit: same key, file unchanged -> loaded, not rebuilt
    mtime = file.stat().st_mtime_ns
    e2 = get_engine(None, deblurrer=db, say=say, **kw)
    assert e2.info["cache"] == "hit" and file.stat().st_mtime_ns == mtime
    assert np.array_equal(e2.run(frames), out1)

    # stale: other deblurrer weights -> new key -> rebuilt, says why, new output
    import copy

    db2 = copy.deepcopy(db)
    with torch.no_grad():
        next(db2.parameters()).add_(0.05)
    msgs.clear()
    e3 = get_engine(None, deblurrer=db2, say=say, **kw)
    assert e3.info["cache"] == "built"
    assert any("stale engine" in s and "deblurrer" in s for s in msgs), msgs
    assert not np.array_equal(e3.run(frames), out1)
    assert np.array_equal(e3.run(frames), _eager((tr, db2, m), frames, e3.info["multiple"]))

    # corrupt file: bytes changed behind the manifest's back -> rebuilt, never loaded
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    msgs.clear()
    e4 = get_engine(None, deblurrer=db2, say=say, **kw)
    assert e4.info["cache"] == "built" and any("does not match its manifest" in s for s in msgs), msgs
    assert json.loads(manifest.read_text())["sha256"] == file_sha256(file)

    # corrupt manifest, then a foreign file with no manifest -> rebuilt
    manifest.write_text("{not json")
    msgs.clear()
    assert get_engine(None, deblurrer=db2, say=say, **kw).info["cache"] == "built"
    assert any("corrupt" in s for s in msgs), msgs
    manifest.unlink()
    msgs.clear()
    assert get_engine(None, deblurrer=db2, say=say, **kw).info["cache"] == "built"
    assert any("no manifest" in s for s in msgs), msgs

    # another size is another slot: both stay cached
    e5 = get_engine(None, deblurrer=db2, say=say, **dict(kw, size=(W - 8, H)))
    assert e5.info["cache"] == "built" and e5.info["file"] != str(file)
    assert get_engine(None, deblurrer=db2, say=say, **kw).info["cache"] == "hit"


def test_tampered_file_is_never_deserialised(tmp_path, monkeypatch):
    """Hash and signature are checked before load() sees the file (exported programs unpickle)."""
    monkeypatch.setenv("B2B_CACHE", str(tmp_path / "cache"))
    slot = engines._Slot(tmp_path, "tensorrt-fp16-cuda-64x48", ".ep")
    key = {"backend": "tensorrt", "size": [64, 48]}
    loaded, built = [], []

    def build(path):
        path.write_bytes(b"trusted engine bytes")
        built.append(path.name)
        return {}

    class Fake(engines.Engine):
        backend = "tensorrt"

    def load(path, man):
        loaded.append(path.read_bytes())
        return Fake(device="cpu", precision="fp16", size=(64, 48))

    say = lambda m: None  # noqa: E731
    assert engines._cached(slot, key, build, load, True, say).status == "built"
    assert engines._cached(slot, key, build, load, True, say).status == "hit"
    slot.file.write_bytes(b"malicious pickle bytes")  # same size or not, the hash differs
    loaded.clear()
    res = engines._cached(slot, key, build, load, True, say)
    assert res.status == "built" and loaded == [b"trusted engine bytes"]  # only the rebuilt file was loaded
    assert not list(tmp_path.glob(".*.building*"))
    # a forger who also rewrites the manifest's hash and size still lacks this user's signing key
    evil = b"malicious pickle, manifest edited to match"
    slot.file.write_bytes(evil)
    man = json.loads(slot.manifest.read_text())
    man.update(sha256=file_sha256(slot.file), bytes=len(evil))
    slot.manifest.write_text(json.dumps(man))
    loaded.clear()
    msgs: list[str] = []
    res = engines._cached(slot, key, build, load, True, msgs.append)
    assert res.status == "built" and loaded == [b"trusted engine bytes"], msgs
    assert any("not signed" in m for m in msgs), msgs
    assert oct((tmp_path / "cache" / "engine-signing.key").stat().st_mode & 0o777) == "0o600"


def test_tensorrt_missing_or_without_cuda_is_a_clear_error(nets, b2b_home):
    tr, db, m = nets
    with pytest.raises(B2BError, match="CUDA"):
        get_engine(None, backend="tensorrt", device="cpu", size=(W, H), translator=tr, deblurrer=db)
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(B2BError, match="torch-tensorrt") as e:
            engines._import_tensorrt()
        assert "pip install" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(B2BError, match="torch-tensorrt"):
            engines.build_tensorrt(FusedDeblur(tr, db, m), torch.zeros(1, H, W, 3, dtype=torch.uint8),
                                   b2b_home / "x.ep", "fp16")
    if not torch.cuda.is_available():
        with pytest.raises(B2BError, match="CUDA is not available"):
            get_engine(None, backend="torch", device="cuda", size=(W, H), translator=tr, deblurrer=db)


def test_bad_options(nets, b2b_home):
    tr, db, m = nets
    with pytest.raises(B2BError, match="unknown backend"):
        get_engine(None, backend="tvm", size=(W, H), translator=tr, deblurrer=db)
    with pytest.raises(B2BError, match="WIDTHxHEIGHT"):
        get_engine(None, backend="torch", size="wide", translator=tr, deblurrer=db)
    with pytest.raises(B2BError, match="needs CUDA"):
        get_engine(None, backend="torch", torch_mode="cudagraphs", device="cpu", size=(W, H), translator=tr, deblurrer=db)
    eng = get_engine(None, backend="torch", size=(W, H), translator=tr, deblurrer=db, cache=False)
    assert eng.info["file"] is None and not (b2b_home / "engines").exists()
    with pytest.raises(B2BError, match="uint8"):
        eng(np.zeros((H, W, 3), np.float32))
    with pytest.raises(B2BError, match=r"\(N, H, W, 3\)"):
        eng(np.zeros((H, W), np.uint8))


def test_profile_translator_is_loaded_and_keyed(nets, frames, b2b_home):
    from b2b_stream.profile import Profile
    from b2b_train.nets.registry import save_network, spec

    tr, db, m = nets
    prof = Profile.open("desk", create=True)
    with pytest.raises(B2BError, match="calibrate"):
        get_engine("desk", backend="torch", size=(W, H), deblurrer=db)
    save_network(prof.translator_path, tr, TRANSLATOR, dict(spec(TRANSLATOR).tiny_kwargs))
    eng = get_engine("desk", backend="torch", size=(W, H), deblurrer=db)
    assert eng.info["profile"] == "desk" and eng.info["translator"]
    assert str(b2b_home / "engines" / "desk") in eng.info["file"]
    assert np.array_equal(eng.run(frames), _eager(nets, frames, eng.info["multiple"]))


def test_without_profile_runs_the_shipped_deblurrer(b2b_home, frames):
    import os

    shipped = pytest.importorskip("b2b_train.shipped")
    if not shipped.default_deblurrer_path().is_file() and not os.environ.get("B2B_REQUIRE_DATA"):
        pytest.skip(f"shipped deblurrer weights not built yet ({shipped.default_deblurrer_path()})")
    eng = get_engine(None, backend="torch", size=(W, H))
    ref = shipped.resolve_deblurrer("default").eval()
    assert eng.info["translator"] is None
    assert eng.info["deblurrer"].split(":")[1] == engines._digest(ref).split(":")[1]
    assert "shipped default deblurrer" in eng.info["note"]
    assert eng(frames[0]).shape == frames[0].shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["eager", "cudagraphs"])
def test_cuda_engine_keeps_two_frames_in_flight_without_mixing_them(nets, frames, b2b_home, mode):
    """The CUDA ring: three frames submitted back to back (the third reuses the first's buffers)
    each come out as run() gives them alone, in any order of result() calls."""
    tr, db, _ = nets
    eng = get_engine(None, backend="torch", device="cuda", precision="fp32", torch_mode=mode, size=(W, H),
                     translator=tr, deblurrer=db, cache=False)
    assert eng.async_depth == 2
    alone = [eng(f) for f in frames]
    p = [eng.submit(f) for f in frames]
    for i in (2, 0, 1):
        assert np.array_equal(p[i].result(), alone[i])
        assert p[i].ready()


def test_cuda_ring_settles_a_frame_before_reusing_its_buffers():
    """The bookkeeping of the CUDA engines' buffer ring, run on the CPU with a stand-in event: the
    third submit reuses the first one's host buffers only after settling it, so every result stays
    the output of its own frame, whatever the order of result() calls."""
    from b2b_stream.engines import _CudaRing

    class Event:  # records nothing: CPU work is done when enqueued
        made = []

        def __init__(self):
            self.synced = False
            Event.made.append(self)

        def record(self):
            pass

        def query(self):
            return True

        def synchronize(self):
            self.synced = True

    ring = _CudaRing(torch.device("cpu"), depth=2, pin=False, event=Event)
    frames = [np.full((1, 4, 6, 3), v, np.uint8) for v in (10, 20, 30)]
    p = [ring.submit(f, lambda x: 255 - x) for f in frames]
    assert Event.made[0].synced and not Event.made[1].synced  # frame 0 settled when frame 2 took its slot
    assert [int(p[i].result()[0, 0, 0, 0]) for i in (2, 1, 0)] == [225, 235, 245]
    assert p[0].result() is p[0].result() and p[0].ready()
    # a result is a copy: running more frames through the ring does not change it
    ring.submit(frames[0], lambda x: x * 0)
    ring.submit(frames[0], lambda x: x * 0)
    assert int(p[1].result()[0, 0, 0, 0]) == 235 and int(p[2].result().max()) == 225


def test_each_backend_name_has_one_registered_module():
    """Every name of BACKENDS but "auto" is registered by its own backend module; available_backends
    asks each registered backend, in BACKENDS order."""
    from b2b_stream.engines import BACKENDS, registry

    specs = [registry.spec(name) for name in BACKENDS if name != "auto"]
    assert sorted(registry.REGISTRY) == sorted(BACKENDS[1:])
    assert [s.name for s in specs] == list(BACKENDS[1:])
    assert {s.name: s.ext for s in specs} == {"tensorrt": ".ep", "torch": ".safetensors", "onnxruntime": ".onnx"}
    assert len({s.build.__module__ for s in specs}) == 3
    assert [s.name for s in specs if s.needs_cuda] == ["tensorrt"]
    assert engines.available_backends("cpu")[0] == "torch" and "tensorrt" not in engines.available_backends("cpu")
    with pytest.raises(B2BError, match="unknown backend 'auto'"):
        registry.spec("auto")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.spec("torch"))


def test_time_engine_times_single_frames_at_the_engine_size():
    """The one timing loop (build's speed line, auto's CPU choice): optional warm-up, then ``runs`` frames."""

    class Counting(engines.Engine):
        backend = "counting"

        def __init__(self, size):
            super().__init__(device="cpu", precision="fp32", size=size)
            self.shapes = []

        def _run(self, a):
            self.shapes.append(a.shape)
            return a

    e = Counting((40, 24))
    assert engines.time_engine(e, runs=3) > 0
    assert e.shapes == [(1, 24, 40, 3)] * 4  # one warm-up frame, three timed
    e.shapes.clear()
    engines.time_engine(e, runs=2, warmup=False)
    assert e.shapes == [(1, 24, 40, 3)] * 2
    free = Counting(None)
    engines.time_engine(free, runs=1, warmup=False)
    assert free.shapes == [(1, 480, 640, 3)]
