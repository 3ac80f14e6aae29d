"""Security: no unpickling of untrusted data, no code from data, no listening sockets, paths stay in their roots.

* A source scan (AST, not grep, so ``model.eval()`` is not confused with ``eval(...)``) of every module
  in ``b2b_train``, ``b2b_stream`` and ``benchmarks``: no ``torch.load`` without ``weights_only=True``,
  no ``pickle``/``marshal``/``dill``/``joblib``/``shelve`` loads, no ``yaml.load`` without a safe loader,
  no ``eval``/``exec``/``compile`` builtins, no ``np.load(allow_pickle=True)``, no ``shell=True``.
  The only deserialiser of pickled content, ``torch.export.load`` of a cached engine, is allowed in
  the tensorrt backend (``b2b_stream/engines/tensorrt_backend.py``) alone, reached only through the
  engine cache, where a file is loaded only after its SHA-256 matches a manifest signed with this
  user's key (``test_engines.py::test_tampered_file_is_never_deserialised``).
* ``b2b-stream run`` opens no listening socket: a real run is sampled while it works, its socket
  inodes matched against ``/proc/net/{tcp,tcp6,udp,udp6}`` (psutil is not installed). The detector is
  first shown to see a real listening socket, so the test can fail.
* Paths from configs and profiles stay inside their roots: preset names cannot leave
  ``b2b_train/configs/<kind>/``; every path a profile hands out is under ``<home>/profiles/<name>`` or
  ``<home>/engines/<name>``.

Covered elsewhere: payload pickles passed to every weight argument (``test_faults_input.py``),
``read_foreign_state_dict`` refusing payloads (``test_core.py``), ``weights fetch`` verifying the
SHA-256 before installing anything (``test_weights_cli.py::test_fetch_bad_checksum_is_refused_and_leaves_nothing``,
``test_fetch_refuses_without_any_checksum``), unsafe profile names (``test_stream_profile.py``).
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from b2b_train.config import preset_path
from b2b_train.errors import ConfigError

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("b2b_train", "b2b_stream", "benchmarks")
ENGINES = REPO / "b2b_stream" / "engines"
ALLOWED = {("b2b_stream/engines/tensorrt_backend.py", "torch.export.load")}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str, filename: str) -> list[str]:
    """Unsafe deserialisation / code-execution calls in ``source`` as ``file:line: what``."""
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        why = None
        if name in ("eval", "exec", "compile") and isinstance(node.func, ast.Name):
            why = f"{name}() builtin"
        elif name.endswith("torch.load"):
            if not _is_const(_kw(node, "weights_only"), True):
                why = "torch.load without weights_only=True"
        elif name.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve", "joblib", "cloudpickle") and (
            name.endswith(("load", "loads", "open", "Unpickler"))
        ):
            why = f"{name}"
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or "Safe" not in _dotted(loader):
                why = f"{name} without SafeLoader"
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            why = name
        elif name.endswith(("np.load", "numpy.load")) and not _is_const(_kw(node, "allow_pickle") or ast.Constant(False), False):
            why = "np.load(allow_pickle=True)"
        elif _is_const(_kw(node, "shell"), True):
            why = f"{name}(shell=True)"
        elif name.endswith(("torch.export.load", "torch.jit.load", "torch.package.PackageImporter")):
            why = name
        if why:
            found.append(f"{filename}:{node.lineno}: {why}")
    return found


def test_the_scanner_finds_each_unsafe_pattern():
    bad = """
import pickle, yaml, torch, numpy as np, subprocess
pickle.loads(b"")
pickle.load(open("x", "rb"))
yaml.load("a: 1")
yaml.load("a: 1", Loader=yaml.FullLoader)
yaml.unsafe_load("a")
torch.load("x.pth")
torch.load("x.pth", weights_only=False)
np.load("x.npy", allow_pickle=True)
eval("1+1")
exec("x=1")
subprocess.run("ls", shell=True)
torch.export.load("e.pt2")
"""
    assert len(unsafe_calls(bad, "bad.py")) == 12
    good = """
import yaml, torch, numpy as np
yaml.safe_load("a: 1")
yaml.load("a: 1", Loader=yaml.SafeLoader)
torch.load("x.pth", map_location="cpu", weights_only=True)
np.load("x.npy")
np.load("x.npz", allow_pickle=False)
model.eval()
"""
    assert unsafe_calls(good, "good.py") == []


def test_no_module_unpickles_or_executes_data():
    found = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for hit in unsafe_calls(path.read_text(), rel):
                if not any(hit.startswith(f"{f}:") and hit.endswith(w) for f, w in ALLOWED):
                    found.append(hit)
    assert found == [], "unsafe calls:\n" + "\n".join(found)


def _functions(tree: ast.AST, name: str | None = None) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and name in (None, n.name)]


def _calls(node: ast.AST, name: str) -> list[ast.Call]:
    return [c for c in ast.walk(node) if isinstance(c, ast.Call) and _dotted(c.func) == name]


def test_engine_deserialiser_sits_behind_the_signed_manifest_check():
    """The one allowed ``torch.export.load`` is reached only through the manifest/HMAC check.

    It sits in one function of the tensorrt backend, which only that backend's registered ``load``
    uses; the selection policy hands a backend's ``load`` to nothing but the cache's ``_cached``, and
    ``_cached`` calls it only after ``_read_manifest``, which checks the HMAC signature."""
    trees = {p.name: ast.parse(p.read_text(), p.name) for p in sorted(ENGINES.glob("*.py"))}
    loaders = [(f, n) for f, tree in trees.items() for n in _functions(tree) if _calls(n, "torch.export.load")]
    assert [(f, n.name) for f, n in loaders] == [("tensorrt_backend.py", "load_tensorrt")]
    users = {f for f, tree in trees.items() for x in ast.walk(tree)
             if (isinstance(x, ast.Name) and x.id == "load_tensorrt")
             or (isinstance(x, ast.alias) and x.name == "load_tensorrt")}
    assert users == {"tensorrt_backend.py"}, users
    (backend_load,) = _functions(trees["tensorrt_backend.py"], "_load")
    assert any(isinstance(x, ast.Name) and x.id == "load_tensorrt" for x in ast.walk(backend_load))
    # the policy: every use of a spec's .load is an argument of _cached(...)
    policy = trees["policy.py"]
    loads = {id(x) for x in ast.walk(policy) if isinstance(x, ast.Attribute) and x.attr == "load"}
    in_cached = {id(x) for c in _calls(policy, "_cached") for a in c.args for x in ast.walk(a)
                 if isinstance(x, ast.Attribute) and x.attr == "load"}
    assert loads and loads == in_cached
    # the cache: load() only after _read_manifest, which compares the signature
    (read_manifest,) = _functions(trees["cache.py"], "_read_manifest")
    assert _calls(read_manifest, "hmac.compare_digest")
    (cached,) = _functions(trees["cache.py"], "_cached")
    first_check = min(c.lineno for c in _calls(cached, "_read_manifest"))
    loads_in_cached = [c.lineno for c in _calls(cached, "load")]
    assert loads_in_cached and first_check < min(loads_in_cached)


# ----------------------------------------------------------------------------- sockets


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _listening(pid: int) -> list[str]:
    """Listening TCP / bound UDP sockets of ``pid``: ``proto local_address`` entries."""
    inodes = _socket_inodes(pid)
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        p = Path(f"/proc/net/{proto}")
        if not p.exists():
            continue
        for line in p.read_text().splitlines()[1:]:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if inode in inodes and (state == "0A" or proto.startswith("udp")):
                found.append(f"{proto} {local}")
    return found


def test_listening_detector_sees_a_real_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        assert any(e.startswith("tcp ") for e in _listening(os.getpid()))
    finally:
        srv.close()
    assert not any(e.startswith("tcp ") for e in _listening(os.getpid()))


def test_stream_run_opens_no_listening_socket(tmp_path, hand_model):
    env = dict(os.environ, B2B_HOME=str(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "b2b_stream.cli", "run", "--camera", "demo", "--frames", "30", "--backend", "torch",
         "--device", "cpu", "--width", "160", "--height", "120", "--track", "hands", "--hand-model", str(hand_model),
         "--quiet",
         "--report", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    seen, samples = [], 0
    while proc.poll() is None:
        seen += _listening(proc.pid)
        samples += 1
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert samples >= 5, "the run ended before it could be observed"
    assert (tmp_path / "r.json").is_file()
    assert seen == [], f"listening sockets: {sorted(set(seen))}"


def test_no_module_opens_a_server_socket():
    hits = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for n in ast.walk(tree):
                if isinstance(n, ast.Call) and _dotted(n.func).split(".")[-1] in ("listen", "serve_forever", "bind",
                                                                                   "create_server", "start_server"):
                    hits.append(f"{path.relative_to(REPO)}:{n.lineno}")
    assert hits == [], hits


# ----------------------------------------------------------------------------- roots


@pytest.mark.parametrize("kind", ["translator", "deblurrer", "known", "stream", "bke"])
@pytest.mark.parametrize("name", ["../translator/paper", "../../pyproject", "a/../../b", "..", "x/y", "paper\\..\\x"])
def test_preset_names_stay_inside_their_folder(kind, name):
    with pytest.raises(ConfigError, match="config name|not found"):
        preset_path(kind, name)


def test_preset_names_and_files_still_resolve(tmp_path):
    assert preset_path("translator", "cpu-quick").parent.name == "translator"
    f = tmp_path / "mine.yaml"
    f.write_text("schedule: {iters: 3}\n")
    assert preset_path("translator", str(f)) == f  # an explicit YAML path is the user's choice


def test_every_profile_path_is_inside_its_root(tmp_path):
    from b2b_stream.profile import LABELS, Profile

    prof = Profile.open("cam-1", home=tmp_path, create=True)
    root = (tmp_path / "profiles" / "cam-1").resolve()
    eng = (tmp_path / "engines" / "cam-1").resolve()
    paths = [prof.root, prof.meta_path, prof.frames_dir, prof.translator_dir, prof.translator_path, prof.report_path,
             prof.samples_dir, *(prof.clips_dir(lb) for lb in LABELS), *(prof.new_clip_path(lb) for lb in LABELS)]
    for p in paths:
        r = Path(p).resolve()
        assert r == root or root in r.parents, p
    assert Path(prof.engines_dir).resolve() == eng
