"""``b2b-stream calibrate``: learn a camera's blur from its profile clips, evaluate, build the engine."""

from __future__ import annotations

import click

from b2b_stream.engines import BACKENDS, PRECISION_CHOICES, PRECISION_HELP
from b2b_train.cliutil import overrides_argument


@click.command()
@click.option("--camera", default=None, help="The camera the clips came from (index, file, folder or demo); used in hints.")
@click.option("--profile", "profile_name", default="default", show_default=True, help="Camera profile to calibrate.")
@click.option("--config", default="auto", show_default=True,
              help="Translator preset (paper, reference-code, cpu-quick) or YAML file; auto = paper on CUDA, cpu-quick on CPU.")
@click.option("--iters", type=click.IntRange(min=1), default=None, help="Training iterations (overrides the config).")
@click.option("--known", default=None, help="Known-blur domain: a known-blur preset (default kernels) or bke:PATH.")
@click.option("--fresh", is_flag=True, help="Discard the profile's translator training and start again.")
@click.option("--backend", type=click.Choice(list(BACKENDS)), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--eval-frames", type=click.IntRange(min=1), default=24, show_default=True, help="Blurry frames used for the evaluation.")
@click.option("--lite", is_flag=True,
              help="Also distil translator + deblurrer into one network (profiles/NAME/lite.safetensors) "
                   "for `run --lite`: deblurrer speed, fidelity reported as PSNR vs the two networks.")
@click.option("--lite-iters", type=click.IntRange(min=1), default=None, help="Distillation steps (default 600).")
@click.option("--probe-steps", type=click.IntRange(min=0), default=200, show_default=True,
              help="Discriminator steps per probe pair that choose the known blur's extent (0: no probe).")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="Root of profiles/ and engines/ (default: $B2B_HOME or .).")
@overrides_argument
def calibrate(camera, profile_name, config, iters, known, fresh, backend, precision, device, eval_frames, lite, lite_iters,
              probe_steps, home, overrides):
    """Train the camera's blur translator from its recorded clips, evaluate it and build its engine.

    Resumable: running it again continues the training where it stopped; --fresh restarts.
    Extra KEY=VALUE arguments override translator config fields.

    \b
    Example:
      b2b-stream calibrate --camera 0 --profile desk
      b2b-stream calibrate --camera 0 --profile desk --iters 500 data.batch_size=4
      b2b-stream calibrate --camera 0 --profile desk --lite      # + one-network student for a CPU
    """
    from rich.console import Console
    from rich.table import Table

    from b2b_stream.calibrate import calibrate as run_calibration

    console = Console(stderr=True)
    report = run_calibration(
        profile_name,
        camera=camera,
        config=config,
        overrides=tuple(overrides),
        iters=iters,
        known=known,
        fresh=fresh,
        backend=backend,
        precision=precision,
        device=device,
        eval_frames=eval_frames,
        lite=lite,
        lite_iters=lite_iters,
        probe_steps=probe_steps,
        home=home,
        say=lambda m: console.print(f"[dim]{m}[/dim]"),
    )
    table = Table(title=f"calibration of profile {report['profile']}")
    table.add_column("")
    table.add_column("input", justify="right")
    table.add_column("deblurrer alone", justify="right")
    table.add_column("b2b (translate + deblur)", justify="right")
    lite_rep = report.get("lite")
    if lite_rep:
        table.add_column("lite (one network)", justify="right")
    sharp = report["evaluation"].get("sharpness") or {}
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    table.add_row("sharpness (Laplacian var.)", fmt(sharp.get("input")), fmt(sharp.get("deblur_only")), fmt(sharp.get("b2b")),
                  *([fmt(lite_rep.get("sharpness"))] if lite_rep else []))
    hands = report.get("hand_detection_rate")
    if hands:
        pct = lambda v: "-" if v is None else f"{100 * v:.0f} %"  # noqa: E731
        table.add_row(f"frames with hands (of {hands['frames']})", pct(hands.get("raw")), pct(hands.get("deblur_only")), pct(hands.get("b2b")),
                      *([pct(hands.get("lite"))] if lite_rep else []))
    if lite_rep:
        table.add_row("PSNR vs translate + deblur (dB)", "", f"{lite_rep['baseline_psnr_vs_teacher']:.2f}", "",
                      f"{lite_rep['psnr_vs_teacher']:.2f}")
    console.print(table)
    probe = report.get("probe")
    if probe:
        aucs = ", ".join(f"{n} {c['auc']:.2f}" for n, c in probe["candidates"].items())
        console.print(f"probe: blurry vs sharp AUC {probe['auc_b_vs_s']:.2f}; known blur vs blurry AUC {aucs}; "
                      f"chosen {probe['chosen']}")
    click.echo(f"report: {report_path(report_name=report['profile'], home=home)}")
    click.echo(f"next: b2b-stream run --camera {camera or 0} --profile {report['profile']}"
               f"{' --lite' if lite_rep else ''} --show")


def report_path(report_name: str, home=None):
    from b2b_stream.profile import Profile

    return Profile(report_name, home).report_path
