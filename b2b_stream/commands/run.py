"""``b2b-stream run``: capture -> translate -> deblur -> track hands, in real time."""

from __future__ import annotations

import click

from b2b_stream.engines import BACKENDS, PRECISION_CHOICES, PRECISION_HELP
from b2b_train.errors import B2BError

BACKEND_CHOICES = [*BACKENDS, "none"]


@click.command(name="run")
@click.option("--camera", default="0", show_default=True, help="Source: webcam index, video file, image folder, or 'demo'.")
@click.option("--profile", "profile_name", default=None,
              help="Camera profile (its translator + the deblurrer). Without one: the shipped default deblurrer alone.")
@click.option("--lite", is_flag=True,
              help="Run the profile's distilled network alone (from `calibrate --lite`): deblurrer speed, no translator.")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="Root of profiles/ and engines/ (default: $B2B_HOME or .).")
@click.option("--show", is_flag=True, help="Window: raw | deblurred side by side, hands drawn, stats; q/Esc quits.")
@click.option("--track", type=click.Choice(["hands", "none"]), default="hands", show_default=True, help="Hand tracking on the deblurred frames.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the deblurred video (.mp4 or .mkv).")
@click.option("--landmarks", type=click.Path(dir_okay=False), default=None, help="Write hand landmarks as JSON Lines.")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Write the run's report (fps, latency, drops...) as JSON.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Stop after N captured frames.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True,
              help="Engine backend; 'none' passes frames through without deblurring.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Requested frame width (frames are resized to it).")
@click.option("--height", type=click.IntRange(min=1), default=None, help="Requested frame height.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=None, help="Requested camera frame rate.")
@click.option("--realtime/--no-realtime", default=None,
              help="Play files at their native pace like a camera (latest frame, drops) instead of processing every frame.")
@click.option("--loop", is_flag=True, help="Loop a file source (soak tests).")
@click.option("--virtual-cam", is_flag=True, help="Also send the deblurred frames to a virtual webcam (needs pyvirtualcam).")
@click.option("--smooth", is_flag=True,
              help="Smooth the hand landmarks (One-Euro filter): less jitter for apps, a little lag; see --set smooth_beta=...")
@click.option("--roi", type=click.Choice(["none", "hands"]), default=None,
              help="hands: deblur only a box around the tracked hands (whole frame when none is tracked); "
                   "see --set roi_margin=... roi_full_every=...")
@click.option("--hand-model", type=click.Path(dir_okay=False), default=None, help="hand_landmarker.task to use.")
@click.option("--config", "config", default="default", show_default=True, help="Stream preset (b2b_train/configs/stream) or YAML file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a stream setting, e.g. --set slot_size=2.")
@click.option("--quiet", is_flag=True, help="No live status line.")
def run(camera, profile_name, lite, home, show, track, out, landmarks, report, frames, backend, precision, device,
        width, height, fps, realtime, loop, virtual_cam, smooth, roi, hand_model, config, overrides, quiet):
    """Deblur a camera in real time (translate -> deblur) and track hands on the result.

    Stages run in their own threads with latest-frame hand-over: a slow stage drops the oldest
    frames (counted) instead of adding latency. Ctrl-C, the end of a file or a lost camera end the
    run cleanly with every output file closed and playable.

    \b
    Example:
      b2b-stream run --camera 0 --profile desk --show
      b2b-stream run --camera 0 --profile desk --lite --show      # after calibrate --lite: one network
      b2b-stream run --camera demo --frames 300 --out demo.mp4 --landmarks hands.jsonl --report run.json
      b2b-stream run --camera clip.mp4 --backend none --track hands --landmarks raw_hands.jsonl
      b2b-stream run --camera 0 --profile desk --smooth --landmarks hands.jsonl   # steadier landmarks for an app
      b2b-stream run --camera 0 --width 640 --height 480 --roi hands --show   # deblur around the hands only
    """
    from rich.console import Console

    from b2b_train.config import load_config
    from b2b_stream.api import open_pipeline
    from b2b_stream.pipeline import StreamConfig, sigterm_as_interrupt

    console = Console(stderr=True)
    styles = {"info": "{}", "detail": "[dim]{}[/]", "event": "[yellow]{}[/]"}
    cfg = load_config(StreamConfig, config, overrides)
    with sigterm_as_interrupt():
        pipe = open_pipeline(camera, profile_name, backend, track, precision=precision, device=device, width=width,
                             height=height, fps=fps, realtime=realtime, loop=loop or None, max_frames=frames,
                             hand_model=hand_model, config=cfg, home=home, lite=lite, smooth=smooth or None,
                             roi=roi, out=out, landmarks=landmarks, virtual_cam=virtual_cam, show=show,
                             leave_cores=True, status=False if quiet else None, report_path=report, console=console,
                             say=lambda kind, m: console.print(styles[kind].format(m)))
        with pipe:
            rep = pipe.run()

    lat = rep.latency_ms
    st = rep.stages_ms
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    click.echo(
        f"{rep.frames_out}/{rep.frames_in} frames out ({rep.dropped} dropped), {rep.fps:.1f} fps, "
        f"latency p50 {f(lat['p50'])} / p95 {f(lat['p95'])} ms, stages capture {f(st['capture'])} infer {f(st['infer'])} "
        f"track {f(st['track'])} ms, {rep.backend} on {rep.device}"
        + (f", hands in {rep.hands_detected_frames} frames" if rep.tracking == "hands" else "")
    )
    click.echo(f"ended: {rep.end_reason}")
    for label, path in (("video", out), ("landmarks", landmarks), ("report", report)):
        if path:
            click.echo(f"{label}: {path}")
    if rep.end_reason == "camera lost":
        raise B2BError(f"camera {camera} was lost ({'; '.join(rep.source.get('events', [])[-2:])}); outputs were closed")
