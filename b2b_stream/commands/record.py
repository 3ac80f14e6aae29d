"""``b2b-stream record``: guided recording of sharp / blurry clips into a camera profile."""

from __future__ import annotations

import click

from b2b_train.errors import B2BError


class Preview:
    """A small OpenCV preview window with guidance text; ``show()`` returns False when q/Esc is hit."""

    def __init__(self, title: str, guidance: str):
        import cv2

        from b2b_stream.sinks import display_available

        ok, why = display_available()
        if not ok:
            raise B2BError(why)
        self.title = title
        self.guidance = guidance
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise B2BError(f"cannot open a window ({str(e).strip().splitlines()[-1]})") from None

    def show(self, rgb, lines) -> bool:
        import cv2
        import numpy as np

        from b2b_stream.sinks import draw_stats

        img = draw_stats(np.ascontiguousarray(rgb).copy(), list(lines))
        cv2.imshow(self.title, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), ord("Q"), 27)

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


@click.command(name="record")
@click.option("--camera", "camera", default="0", show_default=True,
              help="Source: webcam index, video file, image folder, or 'demo'.")
@click.option("--label", type=click.Choice(["sharp", "blurry"]), required=True, help="What kind of clip this is.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None,
              help="Length of the clip (default: 20 s from a camera, the whole file from a file).")
@click.option("--profile", "profile_name", default="default", show_default=True, help="Camera profile to record into.")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="Root of profiles/ (default: $B2B_HOME or .).")
@click.option("--no-preview", is_flag=True, help="Do not open a preview window.")
@click.option("--countdown", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Seconds of preview before recording starts (cameras only).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Requested frame width.")
@click.option("--height", type=click.IntRange(min=1), default=None, help="Requested frame height.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=None, help="Requested frame rate.")
@click.option("--codec", type=click.Choice(["auto", "ffv1", "x264rgb"]), default="auto", show_default=True,
              help="Lossless codec in MKV: libx264rgb CRF 0 (auto's choice where available: fastest) or FFV1.")
def record(camera, label, seconds, profile_name, home, no_preview, countdown, width, height, fps, codec):
    """Record a SHARP or BLURRY clip from a camera into its profile, losslessly.

    Calibration needs both kinds from the same camera: blurry clips with the motion blur you want
    removed, and sharp clips of the same kind of scene. Record a few of each (20-60 s in total per
    label is a good start). Ctrl-C or q stops early and keeps what was recorded.

    \b
    Example:
      b2b-stream record --camera 0 --label sharp  --profile desk --seconds 20
      b2b-stream record --camera 0 --label blurry --profile desk --seconds 20
      b2b-stream record --camera clip.mp4 --label blurry --profile test --no-preview
    """
    from rich.console import Console

    from b2b_stream.profile import Profile
    from b2b_stream.record import GUIDANCE, record_clip
    from b2b_stream.sources import open_source

    console = Console(stderr=True)
    prof = Profile.open(profile_name, home=home, create=True)
    src = open_source(camera, width, height, fps)
    preview = None
    try:
        if seconds is None and src.live:
            seconds = 20.0
        console.print(f"[bold]{GUIDANCE[label]}[/]")
        console.print(f"source: {src.describe()}")
        if not no_preview:
            try:
                preview = Preview(f"b2b record {label} ({prof.name})", GUIDANCE[label])
            except B2BError as e:
                console.print(f"[yellow]no preview:[/] {e}; recording without one (use --no-preview to hide this)")
        path = prof.new_clip_path(label)
        meta = record_clip(
            src, path, label, seconds=seconds, codec=codec, countdown=countdown, preview=preview,
            progress=True, say=lambda m: console.print(m),
        )
    finally:
        if preview is not None:
            preview.close()
        src.close()
    if not meta.get("frames"):
        click.echo("nothing recorded")
        return
    prof.note_camera({"spec": str(camera), "kind": src.kind, "width": meta["width"], "height": meta["height"], "fps": meta["fps"]})
    summ = prof.summary()
    early = " (stopped early)" if meta.get("stopped_early") else ""
    click.echo(
        f"recorded {meta['frames']} frames ({meta['seconds']:.1f} s, {meta['width']}x{meta['height']} @ {meta['fps']:.3g} fps, "
        f"{meta['codec']} lossless){early} -> {path}"
    )
    click.echo(
        f"profile {prof.name}: {summ['sharp']['clips']} sharp clip(s) {summ['sharp']['seconds']:.1f} s, "
        f"{summ['blurry']['clips']} blurry clip(s) {summ['blurry']['seconds']:.1f} s"
    )
    other = "blurry" if label == "sharp" else "sharp"
    if summ[other]["clips"] == 0:
        click.echo(f"next: b2b-stream record --camera {camera} --label {other} --profile {prof.name}")
    else:
        click.echo(f"next: b2b-stream calibrate --camera {camera} --profile {prof.name}")
