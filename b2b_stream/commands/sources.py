"""``b2b-stream sources``: list webcams, or probe what one source delivers."""

from __future__ import annotations

import json
import time

import click


@click.command(name="sources")
@click.argument("src", required=False)
@click.option("--width", type=click.IntRange(min=1), default=None, help="Requested width when probing SRC.")
@click.option("--height", type=click.IntRange(min=1), default=None, help="Requested height when probing SRC.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=None, help="Requested frame rate when probing SRC.")
@click.option("--seconds", type=click.FloatRange(min=0.0), default=2.0, show_default=True,
              help="How long to read SRC to measure its real frame rate.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def sources(src, width, height, fps, seconds, as_json):
    """List the webcams found, or probe one source (webcam index, file, folder, demo).

    Probing reads the source for a moment and prints the requested, native and delivered size and
    frame rate, the measured rate and what the camera reports (exposure, format...).

    \b
    Example:
      b2b-stream sources
      b2b-stream sources 0 --width 1280 --height 720 --fps 30
      b2b-stream sources demo --json
    """
    from b2b_stream.sources import demo_path, list_cameras, open_source

    if src is None:
        cams = list_cameras()
        if as_json:
            click.echo(json.dumps({"cameras": cams, "demo": str(demo_path())}, indent=2))
            return
        if not cams:
            click.echo("no webcams found; use a video file, an image folder or 'demo' as --camera")
        for c in cams:
            click.echo(f"camera {c['index']}: {c['width']}x{c['height']} @ {c['fps'] or '?'} fps ({c['backend']})")
        click.echo(f"demo: {demo_path()}")
        return
    with open_source(src, width, height, fps) as s:
        n = 0
        t0 = time.monotonic()
        for _ in s:
            n += 1
            if time.monotonic() - t0 >= seconds or n >= 2000:
                break
        dt = time.monotonic() - t0
        info = s.info()
    info["read_frames"] = n
    info["read_fps"] = round(n / dt, 2) if dt > 0 else None
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    r, nat, d = info["requested"], info["native"], info["delivered"]
    click.echo(f"{info['kind']} {info['spec']} ({'live' if info['live'] else 'every frame'})")
    click.echo(f"  requested: {r['width'] or '-'}x{r['height'] or '-'} @ {r['fps'] or '-'} fps")
    click.echo(f"  native:    {nat['width']}x{nat['height']} @ {nat['fps'] or '?'} fps")
    click.echo(f"  delivered: {d['width']}x{d['height']} @ {d['fps']:.3g} fps; read {n} frames in {dt:.2f} s "
               f"({info['read_fps']} fps{', measured ' + format(info['measured_fps'], '.1f') if info['measured_fps'] else ''})")
    props = {k: v for k, v in (info.get("properties") or {}).items() if v is not None}
    if props:
        click.echo("  properties: " + ", ".join(f"{k}={v}" for k, v in props.items()))
    for e in info.get("events") or []:
        click.echo(f"  event: {e}")
