"""``b2b-stream build``: compile a profile's translator + deblurrer into one cached fused engine."""

from __future__ import annotations

import time

import click

from b2b_stream.engines import BACKENDS, PRECISION_CHOICES, PRECISION_HELP, TORCH_MODES

BACKEND_CHOICES = list(BACKENDS)


def profile_size(profile) -> tuple[int, int] | None:
    """The (W, H) of the camera a profile was recorded with (the last one noted), if known."""
    try:
        meta = profile.read_meta() or {}
    except Exception:
        return None
    for cam in reversed(meta.get("cameras") or []):
        w, h = cam.get("width"), cam.get("height")
        if w and h:
            return int(w), int(h)
    return None


def resolve_size(size: str | None, profile_name: str | None, home) -> tuple[tuple[int, int], str]:
    """``--size`` if given, else the profile camera's size, else 640x480; and where it came from."""
    from b2b_stream.engines import parse_size

    if size:
        return parse_size(size), "--size"
    if profile_name:
        from b2b_stream.profile import Profile

        wh = profile_size(Profile.open(profile_name, home=home))
        if wh:
            return wh, "the profile's camera"
    return (640, 480), "default"


@click.command(name="build")
@click.option("--profile", "profile_name", metavar="NAME", default=None,
              help="Camera profile whose translator to fuse (default: none, the shipped deblurrer alone).")
@click.option("--lite", is_flag=True,
              help="Build the profile's distilled network alone (from `calibrate --lite`), cached in engines/<profile>/lite/.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True,
              help="auto: tensorrt on CUDA when installed, else torch; on the CPU the faster of onnxruntime and torch.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--size", metavar="WxH", default=None,
              help="Frame size to build for (default: the profile camera's, else 640x480).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--torch-mode", type=click.Choice(TORCH_MODES), default="auto", show_default=True,
              help="Variant of the torch backend (auto: compile on CUDA, eager on the CPU).")
@click.option("--deblurrer", default="default", show_default=True, metavar="NAME|FILE",
              help="Deblurrer: 'default' (shipped), a registry name with cached weights, or a weights file.")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Root of profiles/ and engines/ (default: $B2B_HOME or .).")
@click.option("--rebuild", is_flag=True, help="Build even when a valid cached engine exists.")
def build(profile_name, lite, backend, precision, size, device, torch_mode, deblurrer, home, rebuild):
    """Compile translator + deblurrer into one fused engine and cache it under engines/<profile>/.

    The engine takes uint8 RGB frames of one size and returns deblurred uint8 frames; everything in
    between (scaling, padding, both networks, rounding) runs on the device. A cached engine is
    reused only if its manifest matches (network hashes, backend, precision, device, size and
    versions), its file's SHA-256 is intact and the manifest carries this user's signature;
    otherwise it is rebuilt and the reason printed.
    Prints the backend chosen and why, the file, the time taken and a check against the eager
    fp32 module.

    \b
    Example:
      b2b-stream build --profile desk
      b2b-stream build --profile desk --lite --size 320x240
      b2b-stream build --profile desk --backend onnxruntime --size 640x480
      b2b-stream build --profile desk --backend tensorrt --precision fp16 --size 1280x720
    """
    from rich.console import Console

    from b2b_stream.engines import get_engine, resolve_device, time_engine

    console = Console(soft_wrap=True, markup=False)
    dev = resolve_device(device)
    wh, size_from = resolve_size(size, profile_name, home)
    lines: list[str] = []

    def say(msg: str) -> None:
        lines.append(msg)
        console.print(msg, style="dim", markup=False)

    t0 = time.perf_counter()
    with console.status(f"building {backend} engine for {wh[0]}x{wh[1]} ..."):
        engine = get_engine(profile_name, backend=backend, precision=precision, device=str(dev), size=wh,
                            deblurrer=deblurrer, torch_mode=torch_mode, home=home, rebuild=rebuild, say=say,
                            lite=lite)
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        engine.warmup(1)
        warm = time.perf_counter() - t1
        fps = 1.0 / max(1e-9, time_engine(engine, warmup=False))
    info = engine.info
    check = info.get("check")
    console.print("engine ready: ", style="bold green", end="")
    console.print(f"{engine.backend}"
                  + (f" ({info['mode']})" if info.get("mode") else "")
                  + f", {engine.precision}, {engine.device}, {wh[0]}x{wh[1]} (size from {size_from})", markup=False)
    console.print(f"  why:    {info.get('why')}", markup=False)
    if info.get("note"):
        console.print(f"  note:   {info['note']}", markup=False)
    console.print(f"  file:   {info.get('file') or '(not cached)'}  [{info.get('cache')}]", markup=False)
    console.print(f"  time:   {seconds:.1f} s to {'build' if info.get('cache') == 'built' else 'load'}"
                  f" (built in {info.get('build_seconds')} s), warm-up {warm:.1f} s", markup=False)
    if check:
        console.print(f"  check vs eager fp32: max |diff| {check['max_abs']} levels, "
                      f"{100 * check['within_1']:.3f} % of pixels within 1 level", markup=False)
    else:
        console.print("  check vs eager fp32: done when the engine was built (see its manifest)", markup=False)
    console.print(f"  speed:  {fps:.1f} frames/s on this machine (batch 1, end to end)", markup=False)
    if check and check["within_1"] < 0.99:
        console.print(
            f"warning: this engine differs from eager fp32 by more than 1 level on "
            f"{100 * (1 - check['within_1']):.2f} % of pixels; compare with --precision fp32 or another --backend",
            highlight=False)
