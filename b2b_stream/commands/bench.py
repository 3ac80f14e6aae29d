"""``b2b-stream bench``: time each stage alone and the whole pipeline; pipeline efficiency."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from b2b_stream.engines import BACKENDS, PRECISION_CHOICES, PRECISION_HELP
from b2b_train.errors import B2BError

BACKEND_CHOICES = [*BACKENDS, "none"]


def _stage(times_s: list[float], wall_s: float, n: int) -> dict:
    import numpy as np

    a = np.asarray(times_s, dtype=np.float64) * 1000.0 if times_s else np.zeros(1)
    return {
        "frames": n,
        "fps": round(n / wall_s, 2) if wall_s > 0 and n else 0.0,
        "ms_p50": round(float(np.percentile(a, 50)), 2),
        "ms_p95": round(float(np.percentile(a, 95)), 2),
    }


def capture_stage(camera: str, size, frames: int, say) -> tuple[dict, list, dict]:
    """Read ``frames`` frames from the source alone; returns (stats, the frames, source info)."""
    from b2b_stream.sources import open_source

    w, h = size if size else (None, None)
    got, times = [], []
    with open_source(camera, width=w, height=h) as src:
        t0 = time.perf_counter()
        last = t0
        for fr in src:
            now = time.perf_counter()
            times.append(now - last)
            last = now
            got.append(fr.image)
            if len(got) >= frames:
                break
        wall = time.perf_counter() - t0
        info = src.info()
    if not got:
        raise B2BError(f"source {camera!r} delivered no frames")
    say(f"capture: {len(got)} frames from {camera} in {wall:.2f} s")
    return _stage(times, wall, len(got)), got, info


def infer_stage(engine, images: list, frames: int, hands: list | None = None) -> tuple[dict, list]:
    """Run the engine alone over ``frames`` frames (cycling the captured ones).

    ``hands``: per captured frame, the hands an ``--roi hands`` engine is told were tracked on the frame
    before (as the pipeline's tracking thread does)."""
    observe = getattr(engine, "observe_hands", None) if hands is not None else None
    engine(images[0])  # warm-up outside the timing (compile, graphs, allocations)
    outs, times = [], []
    t0 = time.perf_counter()
    for i in range(frames):
        if observe is not None:
            observe(hands[(i - 1) % len(images)])
        t = time.perf_counter()
        y = engine(images[i % len(images)])
        times.append(time.perf_counter() - t)
        if len(outs) < len(images):
            outs.append(y)
    wall = time.perf_counter() - t0
    if callable(getattr(engine, "reset", None)):
        engine.reset()
    return _stage(times, wall, frames), outs


def track_stage(tracker, images: list, frames: int) -> tuple[dict, int]:
    """Run the hand tracker alone over ``frames`` deblurred frames (30 fps timestamps)."""
    times, with_hands = [], 0
    t0 = time.perf_counter()
    for i in range(frames):
        t = time.perf_counter()
        hands = tracker.track(images[i % len(images)], i / 30.0)
        times.append(time.perf_counter() - t)
        with_hands += bool(hands)
    wall = time.perf_counter() - t0
    return _stage(times, wall, frames), with_hands


def pipeline_stage(camera: str, size, engine, track: str, frames: int, say) -> dict | None:
    """The whole threaded pipeline (b2b_stream.pipeline) over ``frames`` frames; None if unavailable."""
    try:
        from b2b_stream.pipeline import Pipeline, make_tracker
    except ImportError as e:
        say(f"pipeline: b2b_stream.pipeline not available ({e}); skipped")
        return None
    from b2b_stream.sources import open_source

    w, h = size if size else (None, None)
    src = open_source(camera, width=w, height=h)
    tracker = make_tracker(track) if track != "none" else None
    pipe = Pipeline(src, engine=engine, tracker=tracker, sinks=[], max_frames=frames, status=False)
    return pipe.run()


def run_bench(camera="demo", profile=None, size=None, backend="auto", precision=None, device="auto",
              track="hands", frames=60, deblurrer="default", home=None, say=None, lite=False, roi="none") -> dict:
    """All the numbers of ``b2b-stream bench`` as a dict (also used by benchmarks/)."""
    import platform

    say = say or (lambda m: None)
    cap, images, src_info = capture_stage(camera, size, frames, say)
    h, w = images[0].shape[:2]
    if backend == "none":
        from b2b_stream.pipeline import IdentityEngine

        engine = IdentityEngine("--backend none")
    else:
        from b2b_stream.engines import get_engine, resolve_device

        from b2b_stream.pipeline import set_inference_threads

        dev = resolve_device(device)
        set_inference_threads(track, str(dev), say=say)
        prec = precision or "auto"
        def build(s):
            return get_engine(profile, backend=backend, precision=prec, device=str(dev), size=s,
                              deblurrer=deblurrer, home=home, say=say, lite=lite)

        if roi == "hands":
            from b2b_stream.pipeline import StreamConfig
            from b2b_stream.roi import RoiEngine, require_tracking

            require_tracking(roi, track)
            engine = RoiEngine.from_config(build, (w, h), StreamConfig())
        else:
            engine = build((w, h))
    raw_hands = None
    if roi == "hands" and backend != "none":
        from b2b_stream.pipeline import make_tracker

        with make_tracker(track) as tracker:  # the hands the boxes follow when inference runs alone
            raw_hands = [tracker.track(img, i / 30.0) for i, img in enumerate(images)]
    inf, deblurred = infer_stage(engine, images, frames, raw_hands)
    say(f"infer: {inf['fps']} fps ({getattr(engine, 'backend', '?')})")
    stages = {"capture": cap, "infer": inf}
    hands_frames = None
    tracker = None
    if track != "none":
        from b2b_stream.pipeline import make_tracker

        tracker = make_tracker(track)
        try:
            stages["track"], hands_frames = track_stage(tracker, deblurred, frames)
        finally:
            tracker.close()
        say(f"track: {stages['track']['fps']} fps")
    pipe = pipeline_stage(camera, (w, h) if size else None, engine, track, frames, say)
    slowest = min(stages, key=lambda k: stages[k]["fps"] or float("inf"))
    out = {
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "source": camera,
        "size": [w, h],
        "profile": profile,
        "lite": bool(lite),
        "roi": roi,
        "engine": {"backend": getattr(engine, "backend", "?"), "device": str(getattr(engine, "device", "?")),
                   "precision": getattr(engine, "precision", None),
                   "why": getattr(engine, "info", {}).get("why")},
        "stages": stages,
        "slowest_stage": slowest,
        "slowest_stage_fps": stages[slowest]["fps"],
        "hands_frames_alone": hands_frames,
    }
    if pipe is not None:
        pfps = float(pipe.get("fps") or 0.0)
        out["pipeline"] = {k: pipe.get(k) for k in ("fps", "frames_in", "frames_out", "dropped", "latency_ms",
                                                    "stages_ms", "hands_detected_frames", "end_reason", "policy", "roi")}
        out["efficiency"] = round(pfps / stages[slowest]["fps"], 3) if stages[slowest]["fps"] else None
        sum_medians = sum(float((pipe.get("stages_ms") or {}).get(k) or 0.0) for k in ("capture", "infer", "track"))
        out["latency_p95_over_sum_of_stage_medians"] = (
            round(float(pipe["latency_ms"]["p95"]) / sum_medians, 3)
            if sum_medians and (pipe.get("latency_ms") or {}).get("p95") else None
        )
    return out


@click.command(name="bench")
@click.option("--camera", "camera", default="demo", show_default=True, metavar="SRC",
              help="Source to capture from: webcam index, video file, image folder or demo.")
@click.option("--profile", "profile_name", default=None, metavar="NAME",
              help="Camera profile (default: the shipped deblurrer alone).")
@click.option("--lite", is_flag=True, help="Time the profile's distilled network alone (from `calibrate --lite`).")
@click.option("--size", default=None, metavar="WxH", help="Frame size (default: the source's).")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True,
              help="Engine backend; 'none' times the pipeline without deblurring.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--track", type=click.Choice(["hands", "none"]), default="hands", show_default=True)
@click.option("--frames", type=click.IntRange(5, 100000), default=60, show_default=True,
              help="Frames per stage and for the pipeline.")
@click.option("--deblurrer", default="default", show_default=True, metavar="NAME|FILE")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Root of profiles/ and engines/ (default: $B2B_HOME or .).")
@click.option("--roi", type=click.Choice(["none", "hands"]), default="none", show_default=True,
              help="hands: deblur only a box around the tracked hands (as `run --roi hands`).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the numbers here.")
def bench(camera, profile_name, lite, size, backend, precision, device, track, frames, deblurrer, home, roi, json_path):
    """Time each stage alone (capture, infer, track) and the whole threaded pipeline.

    Pipeline efficiency = pipeline fps / fps of the slowest stage alone: 1.0 means the threads
    overlap perfectly and the pipeline runs as fast as its bottleneck allows.

    \b
    Example:
      b2b-stream bench
      b2b-stream bench --camera clip.mp4 --profile desk --size 640x480 --frames 200 --json bench.json
      b2b-stream bench --backend onnxruntime --track none
      b2b-stream bench --camera demo --size 320x240 --profile desk --lite
      b2b-stream bench --camera demo --size 640x480 --roi hands
    """
    from rich.console import Console
    from rich.table import Table

    from b2b_stream.engines import parse_size

    console = Console(soft_wrap=True, highlight=False)
    wh = parse_size(size) if size else None
    res = run_bench(camera, profile_name, wh, backend, precision, device, track, frames, deblurrer, home,
                    say=lambda m: console.print(m, style="dim", markup=False), lite=lite, roi=roi)
    table = Table(title=f"b2b-stream bench: {res['source']} at {res['size'][0]}x{res['size'][1]}, "
                        f"{res['engine']['backend']} on {res['engine']['device']}")
    for col in ("stage", "fps", "ms p50", "ms p95"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, st in res["stages"].items():
        mark = " (slowest)" if name == res["slowest_stage"] else ""
        table.add_row(name + mark, f"{st['fps']:.1f}", f"{st['ms_p50']:.1f}", f"{st['ms_p95']:.1f}")
    p = res.get("pipeline")
    if p:
        lat = p.get("latency_ms") or {}
        table.add_row("pipeline", f"{p['fps']:.1f}", f"{lat.get('p50') or 0:.1f} (latency)",
                      f"{lat.get('p95') or 0:.1f} (latency)")
    console.print(table)
    if p:
        console.print(f"pipeline efficiency: {res['efficiency']} (pipeline {p['fps']:.1f} fps / slowest stage "
                      f"{res['slowest_stage']} {res['slowest_stage_fps']:.1f} fps); dropped {p.get('dropped')}; "
                      f"p95 latency / sum of stage medians: {res.get('latency_p95_over_sum_of_stage_medians')}",
                      markup=False)
    if p and p.get("roi"):
        r = p["roi"]
        console.print(f"--roi hands: {r['frames_roi']} frames deblurred in a box around the hands, "
                      f"{r['frames_full']} whole", markup=False)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=2, default=str) + "\n")
        console.print(f"wrote {json_path}", markup=False)
