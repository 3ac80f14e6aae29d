"""``b2b-stream run``: capture -> translate -> deblur -> track hands, in real time."""

from __future__ import annotations

import signal
import threading

import click

from b2b_stream.engines import BACKENDS, PRECISIONS
from b2b_train.errors import B2BError

BACKEND_CHOICES = [*BACKENDS, "none"]


def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


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
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
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
    from b2b_stream.pipeline import Pipeline, StreamConfig, make_engine, make_tracker, set_inference_threads
    from b2b_stream.profile import Profile
    from b2b_stream.roi import require_tracking
    from b2b_stream.sinks import JsonlSink, VideoSink, VirtualCamSink, WindowSink, display_available
    from b2b_stream.sources import open_source

    console = Console(stderr=True)
    cfg = load_config(StreamConfig, config, overrides)
    if smooth:
        cfg.smooth = True
    if roi is not None:
        cfg.roi = roi
    require_tracking(cfg.roi, track)
    if show:  # fail before opening the camera or building an engine
        ok, why = display_available()
        if not ok:
            raise B2BError(f"--show needs a display: {why}; use --out FILE.mp4 to save the result instead")
    prof = Profile.open(profile_name, home=home) if profile_name else None
    if lite and prof is None:
        raise B2BError("--lite runs a calibrated profile's distilled network: give --profile NAME")
    if lite and backend != "none" and not prof.lite_path.is_file():  # before opening the camera
        raise B2BError(f"profile {prof.name!r} has no lite network ({prof.lite_path} missing): run "
                       f"`b2b-stream calibrate --profile {prof.name} --lite` first, or run without --lite")

    old_term = _sigterm_as_interrupt()
    source = engine = tracker = None
    sinks = []
    try:
        source = open_source(camera, width, height, fps, realtime=realtime, loop=loop or None,
                             stall_timeout=cfg.stall_timeout_s, reconnect_timeout=cfg.reconnect_timeout_s,
                             on_event=lambda m: console.print(f"[yellow]{m}[/]"))
        console.print(f"source: {source.describe()}")
        if prof is None and backend != "none":
            console.print("no --profile: running the shipped default deblurrer alone (no blur translation for this camera)")
        if backend != "none":
            set_inference_threads(track, device, say=lambda m: console.print(f"[dim]{m}[/]"))
        engine = make_engine(prof, backend, precision, device, (source.width, source.height), home=home,
                             say=lambda m: console.print(f"[dim]{m}[/]"), lite=lite, config=cfg)
        console.print(f"engine: {getattr(engine, 'backend', '?')} on {getattr(engine, 'device', '?')}")
        tracker = make_tracker(track, hand_model, cfg)
        holder = {}
        if out:
            sinks.append(VideoSink(out, fps=source.fps, what=cfg.video_content, crf=cfg.video_crf,
                                   index_time=not source.live))
        if landmarks:
            sinks.append(JsonlSink(landmarks, fps=None if source.live else source.fps))
        if virtual_cam:
            sinks.append(VirtualCamSink(source.width, source.height, source.fps))
        if show:
            sinks.append(WindowSink("b2b-stream (q quits)", stats=lambda: holder["p"].live_lines()))
        pipe = Pipeline(source, engine, tracker, sinks, max_frames=frames, config=cfg,
                        status=False if quiet else None, report_path=report, console=console)
        holder["p"] = pipe
        rep = pipe.run()
    except BaseException:
        for s in sinks:
            try:
                s.close()
            except Exception:
                pass
        if source is not None:
            source.close()
        if tracker is not None:
            tracker.close()
        raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        close = getattr(engine, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass

    lat = rep["latency_ms"]
    st = rep["stages_ms"]
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    click.echo(
        f"{rep['frames_out']}/{rep['frames_in']} frames out ({rep['dropped']} dropped), {rep['fps']:.1f} fps, "
        f"latency p50 {f(lat['p50'])} / p95 {f(lat['p95'])} ms, stages capture {f(st['capture'])} infer {f(st['infer'])} "
        f"track {f(st['track'])} ms, {rep['backend']} on {rep['device']}"
        + (f", hands in {rep['hands_detected_frames']} frames" if rep["tracking"] == "hands" else "")
    )
    click.echo(f"ended: {rep['end_reason']}")
    for label, path in (("video", out), ("landmarks", landmarks), ("report", report)):
        if path:
            click.echo(f"{label}: {path}")
    if rep.get("end_reason") == "camera lost":
        raise B2BError(f"camera {camera} was lost ({'; '.join(rep['source'].get('events', [])[-2:])}); outputs were closed")


