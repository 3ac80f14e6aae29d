"""Soak run of the real-time pipeline: 10 000+ frames from a looping file with a deliberately slow sink.

The source is a real clip (an ASL webcam clip from ``../shared/data``, else the shipped demo clip)
played in a loop *as a camera* (``realtime``: a grabber thread paces it at ``--fps`` and keeps only
the newest frame), resized to ``--size``. Frames go through the fused engine (the shipped default
deblurrer when its weights exist, else ``--backend none``) into a sink that sleeps ``--sink-ms`` per
frame, slower than the source, so the latest-frame slots must drop frames (counted) instead of
queueing them. Every ``--sample-every`` output frames it records RSS (``/proc/self/statm``), open
file descriptors and live threads.

Pass criteria (printed and written): RSS growth from the first sample after warm-up to the end
within 5 % (+ 5 MB slack for allocator noise), p95 latency below ``--p95-limit-ms``, drops counted
(frames_in == frames_out + dropped + discarded), open fds and threads at the end equal to the
start. Writes the ``soak`` section of BENCHMARKS.md and of RELIABILITY.md, and
``benchmarks/out/soak.json``.

    python benchmarks/soak.py                       # 10 000 frames, 160x120, shipped deblurrer
    python benchmarks/soak.py --frames 2000 --no-write
    python benchmarks/soak.py --backend none --fps 120 --frames 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _default_clip() -> str:
    data = Path(os.environ.get("B2B_DATA", ROOT.parent / "shared" / "data"))
    clips = sorted((data / "videos" / "asl_gestures").glob("*.mkv"))
    return str(clips[0]) if clips else "demo"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10_000, help="frames to capture")
    ap.add_argument("--clip", default=None, help="video file to loop (default: an ASL clip, else demo)")
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--fps", type=float, default=60.0, help="pace of the looping file (like a camera)")
    ap.add_argument("--sink-ms", type=float, default=200.0, help="the slow sink's time per frame")
    ap.add_argument("--backend", default="auto", help="auto: torch with the shipped deblurrer if present, else none")
    ap.add_argument("--sample-every", type=int, default=50)
    ap.add_argument("--p95-limit-ms", type=float, default=500.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md / RELIABILITY.md")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from b2b_stream.pipeline import Pipeline, StreamConfig, make_engine, rss_mb
    from b2b_stream.sinks import SlowSink
    from b2b_stream.sources import open_source

    w, h = (int(v) for v in args.size.lower().split("x"))
    backend = args.backend
    note = ""
    if backend == "auto":
        from b2b_train.shipped import default_deblurrer_path

        try:
            ok = default_deblurrer_path().is_file()
        except Exception:
            ok = False
        backend = "torch" if ok else "none"
        note = "shipped default deblurrer" if ok else "no shipped weights: --backend none (pipeline only)"
    clip = args.clip or _default_clip()
    home = tempfile.mkdtemp(prefix="b2b-soak-")
    engine = make_engine(None, backend, "fp32", "cpu", (w, h), home=home)
    src = open_source(clip, w, h, args.fps, realtime=True, loop=True, stall_timeout=2.0)
    sink = SlowSink(args.sink_ms / 1000.0)
    samples: list[dict] = []
    t0 = time.monotonic()

    def sample(item) -> None:
        if pipe.frames_out % args.sample_every == 0:
            samples.append({"t": round(time.monotonic() - t0, 1), "frames_out": pipe.frames_out,
                            "frames_in": pipe.frames_in, "rss_mb": rss_mb(), "fds": _fds(),
                            "threads": threading.active_count(), "dropped": pipe.dropped})

    fds0, threads0, rss0 = _fds(), threading.active_count(), rss_mb()
    pipe = Pipeline(src, engine, None, [sink], max_frames=args.frames, config=StreamConfig(), status=False)
    pipe.on_item = sample
    rep = pipe.run()
    src.close()
    time.sleep(0.5)  # let released threads finish
    fds1, threads1, rss1 = _fds(), threading.active_count(), rss_mb()

    warm = samples[min(len(samples) - 1, max(1, len(samples) // 10))] if samples else {"rss_mb": rss0}
    rss_w = warm["rss_mb"]
    growth = (rss1 - rss_w) if (rss1 is not None and rss_w is not None) else None
    checks = {
        "rss_flat": growth is not None and growth <= 0.05 * rss_w + 5.0,
        "p95_bounded": rep["latency_ms"]["p95"] is not None and rep["latency_ms"]["p95"] <= args.p95_limit_ms,
        "drops_counted": rep["frames_in"] == rep["frames_out"] + rep["dropped"] + rep.get("discarded_at_stop", 0),
        "fds_flat": fds1 <= fds0,
        "threads_flat": threads1 <= threads0,
        "all_frames": rep["frames_in"] >= args.frames,
    }
    result = {
        "frames_in": rep["frames_in"], "frames_out": rep["frames_out"], "dropped": rep["dropped"],
        "dropped_by_stage": rep["dropped_by_stage"], "duration_s": rep["duration_s"], "fps_out": rep["fps"],
        "latency_ms": rep["latency_ms"], "stages_ms": rep["stages_ms"], "backend": rep["backend"], "note": note,
        "size": [w, h], "source_fps": args.fps, "sink_ms": args.sink_ms, "clip": clip,
        "rss_mb": {"before": rss0, "after_warmup": rss_w, "end": rss1, "peak": rep["rss_mb"]["peak"], "growth_after_warmup": growth},
        "open_fds": {"start": fds0, "end": fds1}, "threads": {"start": threads0, "end": threads1},
        "end_reason": rep["end_reason"], "checks": checks, "samples": samples,
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))

    if not args.no_write:
        from benchmarks._report import header, update_section

        lat = rep["latency_ms"]
        rows = "\n".join(f"| {s['frames_out']} | {s['frames_in']} | {s['t']} | {s['rss_mb']} | {s['fds']} | {s['threads']} | {s['dropped']} |"
                         for s in samples[:: max(1, len(samples) // 10)])
        md = (
            header("Soak: 10 000+ frames, slow sink") + "\n"
            f"Looping `{Path(clip).name}` as a camera at {args.fps:g} fps, {w}x{h}, engine `{rep['backend']}` "
            f"({note or 'as requested'}), sink sleeping {args.sink_ms:g} ms/frame (slower than the source).\n\n"
            "| frames in | out | dropped | duration | p50 / p95 / max latency | RSS before → after warm-up → end (peak) | open fds start → end | threads start → end |\n"
            "|---|---|---|---|---|---|---|---|\n"
            f"| {rep['frames_in']} | {rep['frames_out']} | {rep['dropped']} | {rep['duration_s']:.0f} s | "
            f"{lat['p50']} / {lat['p95']} / {lat['max']} ms | {rss0} → {rss_w} → {rss1} MB ({rep['rss_mb']['peak']}) | "
            f"{fds0} → {fds1} | {threads0} → {threads1} |\n\n"
            "Checks: " + ", ".join(f"{k} {'OK' if v else 'FAIL'}" for k, v in checks.items()) + "\n\n"
            "<details><summary>samples</summary>\n\n| frames out | frames in | t (s) | RSS (MB) | fds | threads | dropped |\n"
            "|---|---|---|---|---|---|---|\n" + rows + "\n\n</details>\n"
        )
        update_section("soak", md)
        rel = ROOT / "RELIABILITY.md"
        if rel.is_file():
            update_section("soak", md.replace("## Soak", "### Soak", 1), path=rel)
        print("wrote BENCHMARKS.md and RELIABILITY.md section 'soak'")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
