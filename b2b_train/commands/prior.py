"""``b2b-train prior``: the translator prior, trained once on sharp clips through simulated cameras."""

from __future__ import annotations

import click


@click.command(
    "prior",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--clips", "clips", multiple=True, required=True, type=click.Path(),
              help="Sharp clips: a video file or a folder of them (searched recursively). Repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder (resumes if it holds a checkpoint; simulated pairs are cached in OUT/pairs).")
@click.option("--deblurrer", default=None, metavar="FILE",
              help="The frozen deblurrer G is trained in front of (default: the shipped one).")
@click.option("--iters", type=click.IntRange(min=1), default=None, help="Training steps (default 4000).")
@click.option("--crop", type=click.IntRange(min=32), default=None, help="Training crop side, a multiple of 8 (default 128).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Crops per step (default 8).")
@click.option("--cameras-per-clip", type=click.IntRange(min=1), default=None,
              help="Random cameras each clip is filmed with (default 3).")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="CPU threads (0: torch's default).")
@click.option("--device", default=None, help="auto, cpu or cuda (default auto).")
@click.option("--fresh", is_flag=True, help="Discard this folder's checkpoints and start again (the pair cache is kept).")
@click.option("--stop-at", type=int, default=None, help="Stop after this step (resume later with the same command).")
@click.option("--no-progress", is_flag=True, help="No progress bars (log lines only).")
def prior(clips, out_dir, deblurrer, iters, crop, batch, cameras_per_clip, threads, device, fresh, stop_at, no_progress):
    """Train the translator prior: G learns, on sharp clips filmed by many simulated cameras (exposure,
    shake, response and tone curves, noise, JPEG), to hand the frozen deblurrer what it restores best.

    A camera's translator then starts from it (b2b-train translator --set model.init=FILE; calibrate
    does this itself when a prior is installed) instead of from the identity. Validation on held-apart
    simulated frames reports the deblurrer on G(y) against the deblurrer on y.
    Final weights: OUT/translator-prior.safetensors.

    \b
    Example:
      b2b-train prior --clips ../shared/data/videos --out runs/prior
      b2b-train prior --clips a.mkv --clips b.mp4 --out runs/prior --iters 1000 --crop 96
    """
    import dataclasses
    import shutil
    from pathlib import Path

    from ..data.io import VIDEO_EXTS, list_videos
    from ..errors import DataError
    from ..prior import PRIOR_NAME, PriorConfig, train_prior

    files: list[Path] = []
    for c in clips:
        p = Path(c)
        if p.is_dir():
            files += list_videos(p)
        elif p.is_file():
            if p.suffix.lower() not in VIDEO_EXTS:
                raise DataError(f"{p}: not a video file (known: {', '.join(VIDEO_EXTS)})")
            files.append(p)
        else:
            raise DataError(f"clip or folder not found: {p}")
    given = {k: v for k, v in dict(iters=iters, crop=crop, batch=batch, cameras_per_clip=cameras_per_clip,
                                   threads=threads, device=device, deblurrer=deblurrer).items() if v is not None}
    cfg = dataclasses.replace(PriorConfig(), **given)
    out = Path(out_dir)
    if fresh:
        for name in ("checkpoints", "log.csv", "loss.png", "samples"):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
            elif (out / name).exists():
                (out / name).unlink()
    click.echo(f"translator prior: {len(files)} clips x {cfg.cameras_per_clip} cameras, {cfg.iters} steps of "
               f"{cfg.batch}x{cfg.crop}²")
    path = train_prior(cfg, files, out, show_progress=not no_progress, stop_at=stop_at, log=click.echo)
    if path.name == PRIOR_NAME:
        click.echo(f"weights: {path}")
    else:
        click.echo(f"checkpoint: {path} (resume with the same command)")
