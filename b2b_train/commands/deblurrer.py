"""``b2b-train deblurrer``: train a known-blur deblurrer (NAFNet/Restormer) on synthetic pairs."""

from __future__ import annotations

import click

from ..cliutil import overrides_argument


@click.command(
    "deblurrer",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--sharp",
    "sharp",
    multiple=True,
    required=True,
    type=click.Path(),
    help="Sharp images: a folder (images and/or clips), an image or a video clip. Repeatable.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumes if it holds a checkpoint).")
@click.option("--config", "config", default="default", show_default=True, help="Preset name (b2b_train/configs/deblurrer/) or a YAML file.")
@click.option("--known", default=None, help="Known-blur preset (b2b_train/configs/known/) or YAML file; default: the config's (kernels).")
@click.option("--val", "val", multiple=True, type=click.Path(), help="Held-apart validation images (folder or files). Default: some of --sharp.")
@click.option("--iters", type=int, default=None, help="Training iterations (overrides the config).")
@click.option("--stop-at", type=int, default=None, help="Stop after this step (resume later with the same command).")
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None, help="Also write the final weights here as fp16 (small file to ship).")
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
@overrides_argument
def deblurrer(sharp, out_dir, config, known, val, iters, stop_at, export, no_progress, overrides):
    """Train a deblurrer that masters one known blur (paper §3.3) from sharp images alone.

    Sharp crops are blurred on the fly with the known blur (the camera-shake kernel bank by
    default) and the network learns blurry -> sharp with NAFNet's recipe. Validation PSNR/SSIM on
    held-apart images, sample grids and a loss plot are written to --out at each validation;
    checkpoints resume exactly. Final weights: OUT/deblurrer.safetensors.

    \b
    Example:
      b2b-train deblurrer --sharp photos/ --sharp desk.mkv --out runs/lite --iters 2000
      b2b-train deblurrer --sharp photos/ --val held/ --out runs/w32 --config nafnet-gopro-width32
      b2b-train deblurrer --sharp photos/ --out runs/x net=nafnet-tiny data.crop=96 optim.lr=5e-4
    """
    import json
    import time

    from ..deblur_trainer import config_from_cli, export_weights, train_deblurrer

    cfg = config_from_cli(config, overrides, sharp=sharp, val=val, known=known, iters=iters)
    t0 = time.time()
    path = train_deblurrer(cfg, out_dir, progress=not no_progress, stop_at=stop_at, log=click.echo)
    if not str(path).endswith("deblurrer.safetensors"):
        click.echo(f"checkpoint: {path}")
        return
    from ..checkpoint import read_meta

    meta = read_meta(path)
    if export:
        export_weights(path, export, fp16=True)
        click.echo(f"exported fp16 weights: {export}")
    v = meta.get("validation", {})
    click.echo(
        f"done in {time.time() - t0:.0f}s: {cfg.net}, {meta.get('steps')} steps on {cfg.known}; "
        f"val PSNR {v.get('psnr', float('nan')):.2f} dB (blurry {v.get('input_psnr', float('nan')):.2f}), "
        f"SSIM {v.get('ssim', float('nan')):.4f} (blurry {v.get('input_ssim', float('nan')):.4f})"
    )
    click.echo(f"weights: {path}")
    click.echo(json.dumps({"weights": str(path), **{k: v.get(k) for k in ("psnr", "ssim", "input_psnr", "input_ssim")}}))
