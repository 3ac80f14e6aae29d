"""CPU speed of the fused engine per backend, as ratios measured within one run.

Translator ``mimo-unet-lite`` + deblurrer ``nafnet-lite`` (the lite profile's networks; random weights,
speed does not depend on them), on real frames of an ASL clip resized to each size. Variants, timed
frame by frame in interleaved rounds (so load changes on a shared machine hit all of them alike):

* ``unfused``: each network alone with host round trips between them (what an app without the fused
  module does: numpy -> tensor -> translator -> numpy -> tensor -> deblurrer -> numpy);
* ``torch eager``: the fused module (uint8 in/out, one forward);
* ``torch eager channels-last``;
* ``onnxruntime``: the fused module exported to ONNX, CPU execution provider;
* ``torch.compile`` with ``--compile`` (minutes of compile on 2 cores).

Writes the BENCHMARKS.md section ``speed`` (``--no-write`` to only print).

    python benchmarks/speed.py
    python benchmarks/speed.py --sizes 320x240 --rounds 10 --threads 1 --no-write
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b2b_stream.engines import TorchEngine, compare_frames, get_engine  # noqa: E402
from b2b_stream.fuse import FusedDeblur  # noqa: E402


def real_frames(size, n: int = 8) -> list[np.ndarray]:
    import cv2

    from b2b_train.data.io import iter_video_frames

    data = Path(os.environ.get("B2B_DATA") or ROOT.parent / "shared" / "data")
    clips = sorted((data / "videos" / "asl_gestures").glob("*.mkv"))
    if not clips:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]
    out = []
    for _, _, img in iter_video_frames(clips[0], step=3, max_frames=n):
        out.append(np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA)))
    return out


def unfused_fn(tr, db):
    from b2b_train.data.io import to_tensor, to_uint8

    def run(img: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = tr(to_tensor(img)[None])
            mid = to_uint8((x[-1] if isinstance(x, (list, tuple)) else x).clamp(0, 1))  # back on the host
            return to_uint8(db(to_tensor(mid)[None]))

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="320x240,640x480")
    ap.add_argument("--translator", default="mimo-unet-lite")
    ap.add_argument("--deblurrer", default="nafnet-lite")
    ap.add_argument("--rounds", type=int, default=8, help="timed frames per variant and size")
    ap.add_argument("--threads", type=int, default=None, help="torch/onnxruntime threads (default: all cores)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build on a CPU)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)

    import b2b_train.nets  # noqa: F401
    from b2b_train.nets import registry

    torch.manual_seed(0)
    tr = registry.build(args.translator).eval()
    db = registry.build(args.deblurrer).eval()
    m = int(np.lcm(registry.spec(args.translator).multiple, registry.spec(args.deblurrer).multiple))
    rows = []
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="b2b-speed-"))
    for size_s in args.sizes.split(","):
        w, h = (int(v) for v in size_s.lower().split("x"))
        frames = real_frames((w, h))
        variants = {"unfused (host between nets)": unfused_fn(tr, db)}
        fused = FusedDeblur(tr, db, multiple=m).eval()
        variants["torch eager (fused)"] = TorchEngine(fused, device=torch.device("cpu"), precision="fp32",
                                                      mode="eager", size=(w, h))
        import copy

        cl = FusedDeblur(copy.deepcopy(tr), copy.deepcopy(db), multiple=m).eval().to(memory_format=torch.channels_last)
        variants["torch eager channels-last (fused)"] = TorchEngine(cl, device=torch.device("cpu"), precision="fp32",
                                                                    mode="eager", size=(w, h))
        build_s = {}
        try:
            t0 = time.perf_counter()
            variants["onnxruntime (fused)"] = get_engine(None, backend="onnxruntime", size=(w, h), translator=tr,
                                                         deblurrer=db, multiple=m, home=home, check=False)
            build_s["onnxruntime (fused)"] = time.perf_counter() - t0
        except Exception as e:  # onnxruntime missing
            print(f"onnxruntime skipped: {e}")
        if args.compile:
            t0 = time.perf_counter()
            eng = TorchEngine(FusedDeblur(tr, db, multiple=m).eval(), device=torch.device("cpu"), precision="fp32",
                              mode="compile", size=(w, h))
            eng.warmup(1)
            variants["torch.compile (fused)"] = eng
            build_s["torch.compile (fused)"] = time.perf_counter() - t0
        ref = variants["torch eager (fused)"](frames[0])
        agree = {k: compare_frames(fn(frames[0]), ref) for k, fn in variants.items()}
        for fn in variants.values():  # warm-up
            fn(frames[1])
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            for k, fn in variants.items():
                img = frames[r % len(frames)]
                t = time.perf_counter()
                fn(img)
                times[k].append(time.perf_counter() - t)
        base = statistics.median(times["unfused (host between nets)"])
        for k in variants:
            med = statistics.median(times[k])
            rows.append((f"{w}x{h}", k, 1 / med, med * 1000, base / med, agree[k], build_s.get(k)))
            print(f"{w}x{h} {k:38s} {1 / med:7.2f} fps  {med * 1000:8.1f} ms  x{base / med:.2f}  "
                  f"max|Δ| vs eager {agree[k]['max_abs']}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    from benchmarks._report import header, update_section

    cmd = "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        header("CPU speed of the fused engine", cmd.strip()),
        "",
        f"Networks: `{args.translator}` + `{args.deblurrer}` (random weights), batch 1, {threads} thread(s), "
        f"real ASL-clip frames; median of {args.rounds} interleaved frames per variant. "
        f"Ratio = speed / unfused speed, measured in the same run. "
        f"1-minute load average at the end: {load:.1f}" + (" (other jobs were running: absolute fps are low, "
                                                           "ratios are the comparable part)" if load and load > threads else "")
        + ".",
        "",
        "| size | variant | fps | ms/frame | ratio to unfused | max Δ vs fused eager (levels) | build s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for size, k, fps, ms, ratio, c, b in rows:
        lines.append(f"| {size} | {k} | {fps:.2f} | {ms:.1f} | {ratio:.2f} | {c['max_abs']} | "
                     f"{'' if b is None else f'{b:.1f}'} |")
    md = "\n".join(lines) + "\n"
    print(md)
    if not args.no_write:
        print("wrote", update_section("speed", md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
