"""``b2b-stream models``: install or check the hand-tracking model."""

from __future__ import annotations

import glob

import click

from b2b_train.errors import B2BError


@click.group(name="models")
def models():
    """Check or replace the models b2b-stream needs at run time (the hand landmarker).

    b2b ships MediaPipe's hand landmarker (from mediapipe 0.10.21); these commands put another
    version in the cache, which then takes precedence.

    \b
    Example:
      b2b-stream models hands --check
      pip download --no-deps mediapipe==0.10.21 -d wheels
      b2b-stream models hands --from-wheel wheels/mediapipe-0.10.21-*.whl
    """


@models.command(name="hands")
@click.option("--from-wheel", "wheel", metavar="WHEEL",
              help="Build the model from mediapipe 0.10.21's wheel (offline route). Globs are expanded.")
@click.option("--download", is_flag=True, help="Download Google's hand_landmarker.task (online) and check its SHA-256.")
@click.option("--check", is_flag=True, help="Load the installed model and run it on the demo clip.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to install (default: $B2B_CACHE/models/hand_landmarker.task, ~/.cache/b2b by default).")
@click.option("--model", type=click.Path(dir_okay=False), default=None, help="Model to --check (default: the resolved one).")
def hands(wheel, download, check, out, model):
    """Check the MediaPipe hand-landmarker model, or install another one (from a wheel or by download).

    Without options, says which model is used: --model, then $B2B_HAND_MODEL, then the cache,
    then the one shipped with b2b (mediapipe 0.10.21's, SHA-256 checked).

    \b
    Example:
      b2b-stream models hands --from-wheel .cache/wheels/mediapipe-0.10.21-*.whl
      b2b-stream models hands --download
      b2b-stream models hands --check
    """
    from b2b_stream import tracking

    if wheel and download:
        raise B2BError("give either --from-wheel or --download, not both")
    installed = None
    if wheel:
        matches = sorted(glob.glob(wheel)) or [wheel]
        if len(matches) > 1:
            raise B2BError(f"--from-wheel {wheel} matches {len(matches)} files; give one")
        data = tracking.build_bundle_from_wheel(matches[0])
        installed = tracking.install_bundle(data, out)
        click.echo(f"installed hand model from {matches[0]} -> {installed} ({len(data) / 1e6:.1f} MB)")
    elif download:
        installed = tracking.download_hand_model(out)
        click.echo(f"downloaded and verified hand model -> {installed}")
    if check or installed is not None:
        res = tracking.check_hand_model(installed or model)
        click.echo(
            f"hand model OK: {res['model']} (sha256 {res['sha256'][:12]}...), hands found in "
            f"{res['frames_with_hands']}/{res['frames']} frames of the demo clip"
        )
        if res["frames_with_hands"] == 0:
            raise B2BError("the hand model loads but found no hands in the demo clip; reinstall it")
        return
    path = tracking.resolve_hand_model(model)
    shipped = " (shipped with b2b, from mediapipe 0.10.21; SHA-256 verified)" if path == tracking.SHIPPED_MODEL else ""
    click.echo(f"hand model: {path}{shipped}")
