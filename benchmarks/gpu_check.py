"""One short GPU check: CUDA, then the fused engine's speed with every torch variant, in < 5 minutes.

Runs on a lent GPU machine with only torch (CUDA build), numpy, safetensors and pyyaml; the repository
on ``PYTHONPATH`` (``benchmarks/gpu.sh`` sets it). Times fused fp16 MIMO-UNet + NAFNet-width32 at
1280x720 (random weights: speed does not depend on them) as:

    eager fp32 (the baseline), eager fp16, eager fp16 channels-last, autocast fp16, one CUDA graph,
    torch.compile (default, reduce-overhead, max-autotune-no-cudagraphs, compile + CUDA graph),
    onnxruntime CUDA provider (if onnxruntime-gpu is installed), tensorrt (if torch-tensorrt is),
    and b2b's own get_engine(backend="auto") path end to end (tiny variants of the same networks at
    320x240: build, cache hit, check against eager fp32).

Each variant reports fps end to end (uint8 numpy frame in, uint8 numpy frame out, what an app sees)
and on the device (uint8 tensor already on the GPU), the ratio to eager fp32, and how its output
differs from eager fp32 (max |diff| in 8-bit levels, share of pixels within 1 level).

Robustness: the quick variants run in one worker process, each compile-heavy variant in its own
worker with a time limit (a hung or slow compile is killed, reported, and the rest goes on); the
whole run keeps to ``--budget`` seconds. Results: ``$OUT/gpu_check.json`` and ``$OUT/gpu_check.md``
(``$OUT`` defaults to ``./gpu_out``).

    bash benchmarks/gpu.sh                 # what the lead runs
    python benchmarks/gpu_check.py --size 640x480 --budget 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# (group, variants) run by one worker each, in this order; "quick" first so the baseline always exists.
GROUPS = [
    ("quick", ["eager-fp32", "eager-fp16", "eager-fp16-cl", "autocast-fp16-cl", "cudagraphs-fp16-cl"], 110),
    ("onnxruntime", ["onnxruntime-fp16"], 100),
    ("tensorrt", ["tensorrt-fp16"], 200),
    ("engine-api", ["get_engine-auto"], 110),
    ("compile", ["compile-fp16-cl"], 150),
    ("compile-cudagraphs", ["compile+cudagraphs-fp16-cl"], 110),
    ("reduce-overhead", ["reduce-overhead-fp16-cl"], 130),
    ("max-autotune", ["max-autotune-fp16-cl"], 180),
]
RESERVE_S = 8.0


# ----------------------------------------------------------------------------- worker side

def _build_nets(translator: str, deblurrer: str, tiny: bool = False):
    import torch

    import b2b_train.nets  # noqa: F401  (fills the registry)
    from b2b_train.nets import registry

    torch.manual_seed(0)
    kw = (lambda n: dict(registry.spec(n).tiny_kwargs)) if tiny else (lambda n: {})
    # translator "none": the deblurrer alone, which is also the shape of a --lite (distilled) engine
    tr = None if translator == "none" else registry.build(translator, **kw(translator)).eval()
    db = registry.build(deblurrer, **kw(deblurrer)).eval()
    m = 1
    import math

    for name in ((deblurrer,) if tr is None else (translator, deblurrer)):
        k = max(1, int(registry.spec(name).multiple))
        m = m * k // math.gcd(m, k)
    return tr, db, m


def _frames(size):
    from b2b_stream.fuse import example_frames

    w, h = size
    return example_frames(1, h, w, seed=3).numpy()


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _time(fn, budget_s: float = 3.0, max_iters: int = 200, warmup: int = 3):
    for _ in range(warmup):
        fn()
    _sync()
    n, t0 = 0, time.perf_counter()
    while n < max_iters and (n < 5 or time.perf_counter() - t0 < budget_s):
        fn()
        n += 1
    _sync()
    dt = time.perf_counter() - t0
    return n / dt, dt / n * 1000.0


def _variant(name: str, tr, db, m: int, size, workdir: Path, args) -> dict:
    import numpy as np
    import torch

    from b2b_stream.engines import TorchEngine, compare_frames
    from b2b_stream.fuse import FusedDeblur

    dev = torch.device(args.device)
    frame = _frames(size)
    res: dict = {"variant": name}
    t_build = time.perf_counter()
    fp16 = "fp16" in name
    cl = name.endswith("-cl")
    device_fn = None
    eng = None  # the Engine of the variants that have one (for the pipelined timing)

    def fused(dtype):
        import copy

        f = FusedDeblur(copy.deepcopy(tr) if tr is not None else None, copy.deepcopy(db), multiple=m).to(dev, dtype).eval()
        if cl:
            f = f.to(memory_format=torch.channels_last)
        return f

    if name.startswith(("eager", "cudagraphs", "compile", "reduce-overhead", "max-autotune")):
        mode = name.rsplit("-fp", 1)[0]
        f = fused(torch.float16 if fp16 else torch.float32)
        eng = TorchEngine(f, device=dev, precision="fp16" if fp16 else "fp32", mode=mode, size=size)
        out = eng.run(frame)  # compiles / captures
        run = lambda: eng.run(frame)  # noqa: E731
        if mode in ("eager", "compile", "max-autotune", "reduce-overhead"):
            x_dev = torch.from_numpy(frame).to(dev)

            def device_fn():
                with torch.inference_mode():
                    return eng._fn(x_dev)
        elif mode in ("cudagraphs", "compile+cudagraphs"):
            def device_fn():
                eng._graph.replay()
    elif name == "autocast-fp16-cl":
        f = fused(torch.float32)
        x_dev = torch.from_numpy(frame).to(dev)

        def device_fn():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                return f(x_dev)

        def run():
            x = torch.from_numpy(frame).to(dev, non_blocking=True)
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                return f(x).cpu().numpy()

        out = run()
    elif name == "onnxruntime-fp16":
        try:
            import onnxruntime as ort
        except ImportError:
            return {"variant": name, "skipped": "onnxruntime not installed"}
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return {"variant": name, "skipped": f"onnxruntime {ort.__version__} has no CUDA provider (needs onnxruntime-gpu)"}
        from b2b_stream.engines import OnnxEngine, export_onnx

        f = fused(torch.float16)
        path = workdir / "fused_fp16.onnx"
        export_onnx(f, torch.from_numpy(frame).to(dev), path)
        eng = OnnxEngine(path, device=str(dev), precision="fp16", size=size)
        out = eng.run(frame)
        run = lambda: eng.run(frame)  # noqa: E731
    elif name == "tensorrt-fp16":
        try:
            import torch_tensorrt  # noqa: F401
        except ImportError as e:
            return {"variant": name, "skipped": f"torch-tensorrt not installed ({e})"}
        from b2b_stream.engines import TensorRTEngine, build_tensorrt, load_tensorrt

        f = fused(torch.float16)
        path = workdir / "fused_fp16.ep"
        build_tensorrt(f, torch.from_numpy(frame).to(dev), path, "fp16")
        eng = TensorRTEngine(load_tensorrt(path), device="cuda:0", precision="fp16", size=size)
        out = eng.run(frame)
        run = lambda: eng.run(frame)  # noqa: E731
    elif name == "get_engine-auto":
        from b2b_stream.engines import get_engine

        small = tuple(args.api_size)
        tr, db, _ = _build_nets(args.translator, args.deblurrer, tiny=True)  # the code path, not the speed
        msgs: list[str] = []
        home = workdir / "home"
        t0 = time.perf_counter()
        e1 = get_engine(None, backend="auto", precision="fp16", device=args.device, size=small, translator=tr,
                        deblurrer=db, home=home, say=msgs.append)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        e2 = get_engine(None, backend="auto", precision="fp16", device=args.device, size=small, translator=tr,
                        deblurrer=db, home=home, say=msgs.append)
        second = time.perf_counter() - t0
        x = _frames(small)
        fps, ms = _time(lambda: e2.run(x), budget_s=2.0)
        return {
            "variant": name, "size": list(small), "backend": e2.backend, "mode": e2.info.get("mode"),
            "why": e1.info.get("why"), "first_call_s": round(first, 2), "second_call_s": round(second, 2),
            "cache_first": e1.info.get("cache"), "cache_second": e2.info.get("cache"),
            "check": e1.info.get("check"), "fps_e2e": fps, "ms_e2e": ms, "messages": msgs[-6:],
        }
    else:
        return {"variant": name, "error": "unknown variant"}
    res["build_s"] = round(time.perf_counter() - t_build, 2)
    if not np.isfinite(out.astype(np.float32)).all():
        res["note"] = "non-finite output"
    res["fps_e2e"], res["ms_e2e"] = _time(run, budget_s=args.step_seconds)
    if eng is not None and getattr(eng, "async_depth", 1) > 1:
        # as the pipeline's inference thread does when frames are waiting: submit frame n+1, then
        # settle frame n (upload, download and host copies overlap the GPU's work)
        import collections

        inflight: collections.deque = collections.deque()

        def pipelined():
            inflight.append(eng.submit(frame))
            if len(inflight) >= eng.async_depth:
                inflight.popleft().result()

        res["fps_pipelined"], res["ms_pipelined"] = _time(pipelined, budget_s=args.step_seconds)
        while inflight:
            inflight.popleft().result()
        # correctness with frames in flight: three different frames submitted back to back (the third
        # reuses the first one's ring slot) must each equal what run() gives for that frame alone
        rng = np.random.default_rng(0)
        probes = [frame, np.ascontiguousarray(frame[::-1, ::-1]),
                  np.clip(frame.astype(np.int16) + rng.integers(-20, 21, frame.shape), 0, 255).astype(np.uint8)]
        pending = [eng.submit(p) for p in probes]
        got = [p.result() for p in pending]
        diffs = [int(np.abs(g.astype(np.int16) - eng.run(p).astype(np.int16)).max()) for g, p in zip(got, probes)]
        res["pipelined_check"] = {"frames": len(probes), "max_abs_vs_run": max(diffs)}
    if device_fn is not None:
        res["fps_device"], res["ms_device"] = _time(device_fn, budget_s=args.step_seconds)
    ref_path = workdir / "eager-fp32.npy"
    if name == "eager-fp32":
        np.save(ref_path, out)
    if ref_path.exists():
        res["vs_eager_fp32"] = compare_frames(out, np.load(ref_path))
    if dev.type == "cuda":
        res["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    return res


def worker(args) -> int:
    import torch

    results_file = Path(args.results)
    workdir = Path(args.workdir)
    size = tuple(args.size)

    def emit(rec: dict) -> None:
        with open(results_file, "a") as f:
            f.write(json.dumps(rec) + "\n")

    try:
        tr, db, m = _build_nets(args.translator, args.deblurrer, args.tiny)
    except Exception as e:  # nets not importable / buildable
        for v in args.variants:
            emit({"variant": v, "error": f"building the networks failed: {type(e).__name__}: {e}"})
        return 1
    torch.backends.cudnn.benchmark = True
    if args.device == "cpu":
        torch.set_num_threads(1)
    for v in args.variants:
        t0 = time.perf_counter()
        try:
            rec = _variant(v, tr, db, m, size, workdir, args)
        except Exception as e:
            rec = {"variant": v, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                   "traceback": traceback.format_exc()[-2000:]}
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        emit(rec)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return 0


# ----------------------------------------------------------------------------- orchestrator

def _env() -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_build"] = torch.version.cuda
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info["gpu"] = p.name
            info["capability"] = f"{p.major}.{p.minor}"
            info["gpu_memory_gb"] = round(p.total_memory / 2**30, 1)
            info["cudnn"] = torch.backends.cudnn.version()
            x = torch.randn(1024, 1024, device="cuda")
            info["matmul_ok"] = bool(torch.isfinite(x @ x).all().item())
    except Exception as e:  # torch missing or broken CUDA
        info["error"] = f"{type(e).__name__}: {e}"
    for mod in ("onnxruntime", "torch_tensorrt", "triton"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "?")
        except Exception:
            info[mod] = None
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        info["nvidia_smi"] = None
    return info


def _markdown(env: dict, rows: list[dict], args, total_s: float) -> str:
    w, h = args.size
    base = next((r for r in rows if r.get("variant") == "eager-fp32" and "fps_e2e" in r), None)
    lines = [
        f"GPU check: fused `{args.translator}` + `{args.deblurrer}` at {w}x{h}, random weights, batch 1.",
        f"Machine: {env.get('gpu')} (sm {env.get('capability')}, {env.get('gpu_memory_gb')} GiB), "
        f"torch {env.get('torch')} / CUDA {env.get('cuda_build')}, python {env.get('python')}; "
        f"onnxruntime {env.get('onnxruntime')}, torch-tensorrt {env.get('torch_tensorrt')}. "
        f"Command: `bash benchmarks/gpu.sh`; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"total {total_s:.0f} s.",
        "",
        "End to end = uint8 numpy frame in -> uint8 numpy frame out (copies included); device = uint8 tensor "
        "already on the GPU; pipelined = end to end with two frames in flight (`Engine.submit`, what the pipeline's "
        "inference thread does when frames wait). Ratio = end-to-end fps / eager fp32 end-to-end fps. "
        "Δ = |output - eager fp32 output| in 8-bit levels.",
        "",
        "| variant | fps end to end | ms | fps pipelined | fps device | ratio | build s | max Δ | ≤1 level | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else ""

    for r in rows:
        if r.get("variant") == "get_engine-auto":
            continue
        note = (r.get("skipped") or r.get("error") or r.get("note") or "").replace("|", "/")[:120]
        pc = r.get("pipelined_check")
        if pc:  # frames in flight must give exactly what run() gives
            d = pc["max_abs_vs_run"]
            note = (note + "; " if note else "") + ("in flight = run()" if d == 0 else f"IN-FLIGHT FRAMES DIFFER from run() by {d} levels")
        fps = r.get("fps_e2e")
        ratio = fps / base["fps_e2e"] if (fps and base) else None
        c = r.get("vs_eager_fp32") or {}
        within = 100 * c["within_1"] if "within_1" in c else None
        lines.append(
            f"| {r['variant']} | {num(fps, '.1f')} | {num(r.get('ms_e2e'), '.1f')} | {num(r.get('fps_pipelined'), '.1f')} | "
            f"{num(r.get('fps_device'), '.1f')} | "
            f"{num(ratio, '.2f')} | {num(r.get('build_s'), '.1f')} | {c.get('max_abs', '')} | "
            f"{num(within, '.3f')}{' %' if within is not None else ''} | {note} |"
        )
    api = next((r for r in rows if r.get("variant") == "get_engine-auto"), None)
    if api:
        lines += ["", f"b2b `get_engine(backend='auto', precision='fp16', device='{args.device}')` (tiny nets): " + (
            f"{api.get('backend')} ({api.get('mode')}) at {api.get('size')}: first call {api.get('first_call_s')} s "
            f"({api.get('cache_first')}), second {api.get('second_call_s')} s ({api.get('cache_second')}), "
            f"{api.get('fps_e2e', 0):.1f} fps, check {api.get('check')}; why: {api.get('why')}"
            if "error" not in api and "skipped" not in api else (api.get("error") or api.get("skipped")))]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--api-size", default="320x240", help="size for the get_engine end-to-end check")
    ap.add_argument("--translator", default="mimo-unet",
                    help="translator net, or 'none' for the deblurrer alone (the shape of a --lite engine)")
    ap.add_argument("--deblurrer", default="nafnet-gopro-width32")
    ap.add_argument("--budget", type=float, default=270.0, help="seconds for the whole check")
    ap.add_argument("--step-seconds", type=float, default=2.5, help="timing window per variant")
    ap.add_argument("--only", default="", help="comma-separated group names to run (default: all)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "./gpu_out")
    # worker mode (internal)
    ap.add_argument("--device", default="cuda:0", help=argparse.SUPPRESS)  # cpu: dry run of the script itself
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tiny nets (dry runs)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variants", default="", help=argparse.SUPPRESS)
    ap.add_argument("--results", default="", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.size = [int(v) for v in args.size.lower().split("x")]
    args.api_size = [int(v) for v in args.api_size.lower().split("x")]
    if args.worker:
        args.variants = [v for v in args.variants.split(",") if v]
        return worker(args)

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = _env()
    print(json.dumps(env, indent=1), flush=True)
    report = {"env": env, "size": args.size, "translator": args.translator, "deblurrer": args.deblurrer, "results": []}
    if not env.get("cuda_available") and args.device != "cpu":
        report["error"] = "CUDA not available"
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        (out / "gpu_check.md").write_text(f"GPU check: CUDA not available ({env})\n")
        print("CUDA not available", flush=True)
        return 1
    only = {g for g in args.only.split(",") if g}
    workdir = Path(tempfile.mkdtemp(prefix="b2b-gpu-"))
    results_file = workdir / "results.jsonl"
    results_file.touch()
    env_vars = dict(os.environ)
    env_vars["PYTHONPATH"] = str(REPO) + (os.pathsep + env_vars["PYTHONPATH"] if env_vars.get("PYTHONPATH") else "")
    for group, variants, cap in GROUPS:
        if only and group not in only:
            continue
        left = args.budget - (time.perf_counter() - t_start) - RESERVE_S
        if left < 20:
            for v in variants:
                report["results"].append({"variant": v, "skipped": "out of time budget"})
            continue
        limit = min(cap, left)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--variants", ",".join(variants),
               "--results", str(results_file), "--workdir", str(workdir), "--size", "x".join(map(str, args.size)),
               "--api-size", "x".join(map(str, args.api_size)), "--translator", args.translator,
               "--deblurrer", args.deblurrer, "--step-seconds", str(args.step_seconds), "--device", args.device]
        if args.tiny:
            cmd.append("--tiny")
        print(f"[{time.perf_counter() - t_start:5.0f}s] {group}: {', '.join(variants)} (limit {limit:.0f}s)", flush=True)
        before = {json.loads(line)["variant"] for line in results_file.read_text().splitlines() if line.strip()}
        log_path = workdir / f"{group}.log"
        with open(log_path, "w") as logf:
            # own process group: on timeout the worker and its compile sub-processes all go
            proc = subprocess.Popen(cmd, env=env_vars, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=limit)
                tail = log_path.read_text(errors="replace")[-1500:]
                if rc not in (0, 1):
                    print(tail, flush=True)
            except subprocess.TimeoutExpired:
                import signal

                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                tail = f"killed after {limit:.0f}s (time limit of this step)"
        try:
            (out / "logs").mkdir(exist_ok=True)
            (out / "logs" / f"{group}.log").write_text(log_path.read_text(errors="replace")[-20000:])
        except OSError:
            pass
        done = {json.loads(line)["variant"] for line in results_file.read_text().splitlines() if line.strip()}
        for v in variants:
            if v not in done and v not in before:
                with open(results_file, "a") as f:
                    f.write(json.dumps({"variant": v, "error": f"worker did not finish: {tail.splitlines()[-1] if tail else '?'}"}) + "\n")
        for line in results_file.read_text().splitlines():
            rec = json.loads(line)
            if rec["variant"] in variants and rec["variant"] not in before:
                msg = {k: rec.get(k) for k in ("fps_e2e", "fps_pipelined", "fps_device", "vs_eager_fp32", "skipped", "error") if rec.get(k) is not None}
                print(f"    {rec['variant']}: {msg}", flush=True)
    recs = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]
    report["results"] = recs + report["results"]
    base = next((r for r in recs if r["variant"] == "eager-fp32" and r.get("fps_e2e")), None)
    for r in report["results"]:
        if base and r.get("fps_e2e") and r["variant"] != "get_engine-auto":
            r["ratio_to_eager_fp32"] = r["fps_e2e"] / base["fps_e2e"]
    total = time.perf_counter() - t_start
    report["total_seconds"] = round(total, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    md = _markdown(env, report["results"], args, total)
    (out / "gpu_check.md").write_text(md)
    print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
