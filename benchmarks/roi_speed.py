"""What ``--roi hands`` buys on the CPU: the pipeline at 640x480 with the whole frame vs boxes around the hands.

Runs ``b2b-stream bench`` (``b2b_stream.commands.bench.run_bench``) on the demo camera (a real ASL clip
looping at 30 fps, two hands in view) with the shipped deblurrer alone, hand tracking on, once per
variant in one run, so the speeds compare as ratios. Writes ``benchmarks/out/roi_speed.json`` and
BENCHMARKS.md section ``roi-speed``. Run it on a quiet machine (no training in the background).

    python benchmarks/roi_speed.py --frames 150
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--camera", default="demo")
    ap.add_argument("--precision", default="fp32,auto", help="comma-separated precisions, one pair of runs each")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    from b2b_stream.commands.bench import run_bench
    from b2b_stream.engines import parse_size
    from benchmarks._report import header, update_section

    size = parse_size(args.size)
    load = os.getloadavg()[0]
    res = {}
    precisions = [p for p in args.precision.split(",") if p]
    for prec in precisions:
        for roi in ("none", "hands"):
            res[f"{roi}-{prec}"] = run_bench(args.camera, None, size, args.backend, prec, "cpu", "hands", args.frames,
                                             say=lambda m: print(m, flush=True), roi=roi)
    (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "out" / "roi_speed.json").write_text(json.dumps(res, indent=1, default=str))

    lines = [header("What `--roi hands` buys on the CPU (`roi-speed`)"),
             f"- CPU load average before the run: {load:.1f}", "",
             f"`b2b-stream bench` on `{args.camera}` at {size[0]}x{size[1]}, {args.frames} frames per stage, the shipped "
             "deblurrer alone, MediaPipe hand tracking on; inference gets "
             "1 of the 2 cores while tracking runs. `--roi hands` deblurs boxes of 160-352 px around the hands tracked "
             "on the frame before (one per hand, or one for both where that costs fewer pixels; whole frame without hands and every 30 frames). "
             "Infer alone with `--roi hands` follows the hands tracked on the raw frames. Precision `auto` "
             "(the default since 2026-12-04) times onnxruntime fp32, torch fp32 and, where the CPU has native bf16, "
             "torch bf16 once per frame or box size and keeps the fastest; `fp32` the first two.", "",
             "| deblurred | --precision | engine | infer alone (fps) | track alone (fps) | pipeline (fps) | latency p50 / p95 (ms) | efficiency | box frames |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for key, r in res.items():
        roi, prec = key.split("-", 1)
        label = "whole frame" if roi == "none" else "`--roi hands`"
        p = r.get("pipeline") or {}
        lat = p.get("latency_ms") or {}
        box = p.get("roi") or {}
        eng = r.get("engine") or {}
        share = f"{box['frames_roi']}/{box['frames_roi'] + box['frames_full']}" if box else "-"
        lines.append(f"| {label} | {prec} | {eng.get('backend')} {eng.get('precision')} | {r['stages']['infer']['fps']:.1f} | "
                     f"{r['stages']['track']['fps']:.1f} | "
                     f"{p.get('fps', 0):.1f} | {lat.get('p50') or 0:.0f} / {lat.get('p95') or 0:.0f} | "
                     f"{r.get('efficiency')} | {share} |")
    lines.append("")
    for prec in precisions:
        ratio = res[f"hands-{prec}"]["pipeline"]["fps"] / max(1e-9, res[f"none-{prec}"]["pipeline"]["fps"])
        lines.append(f"- `--precision {prec}`: `--roi hands` runs the pipeline {ratio:.2f}x as fast as the whole frame.")
    if len(precisions) > 1:
        a, b = precisions[0], precisions[-1]
        for roi in ("none", "hands"):
            ratio = res[f"{roi}-{b}"]["pipeline"]["fps"] / max(1e-9, res[f"{roi}-{a}"]["pipeline"]["fps"])
            lines.append(f"- {'whole frame' if roi == 'none' else '`--roi hands`'}: `--precision {b}` runs the "
                         f"pipeline {ratio:.2f}x as fast as `--precision {a}`.")
    lines.append("(issue 14 asks for >= 15 fps end to end at 640x480 with the lite deblurrer.)")
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        update_section("roi-speed", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
