"""``b2b-train distill``: one network (the lite student) that imitates deblurrer∘translator."""

from __future__ import annotations

import click


@click.command(
    "distill",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--translator", "translator", required=True, type=click.Path(dir_okay=False),
              help="The camera's trained translator (translator.safetensors).")
@click.option("--blurry", "blurry", multiple=True, required=True, type=click.Path(),
              help="The camera's blurry frames: a folder (images and/or clips), an image or a clip. Repeatable.")
@click.option("--deblurrer", default="default", show_default=True, metavar="NAME|FILE",
              help="The deblurrer paired with the translator; the student copies its architecture and weights.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder (resumes if it holds a checkpoint).")
@click.option("--iters", type=click.IntRange(min=0), default=None, help="Training steps (default 600: a few minutes on a CPU).")
@click.option("--crop", type=click.IntRange(min=16), default=None, help="Training crop side (default 128).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Crops per step (default 4).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="AdamW learning rate (default 2e-4).")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="CPU threads (0: torch's default).")
@click.option("--max-frames", type=click.IntRange(min=2), default=None, help="Blurry frames read (default 48).")
@click.option("--fresh", is_flag=True, help="Discard this folder's checkpoints and start again.")
@click.option("--stop-at", type=int, default=None, help="Stop after this step (resume later with the same command).")
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None,
              help="Also write the final weights here (fp16, small), e.g. profiles/NAME/lite.safetensors.")
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
def distill(translator, blurry, deblurrer, out_dir, iters, crop, batch, lr, threads, max_frames, fresh, stop_at,
            export, no_progress):
    """Distil deblurrer∘translator into ONE network with the deblurrer's architecture (the "lite" student).

    The student starts as a copy of the deblurrer and learns, on the camera's own blurry frames, to
    output what translator + deblurrer output (targets computed once on whole frames). It then runs
    at the deblurrer's speed, without the translator. Fidelity is reported as PSNR against the
    two-network output on held-apart frames, next to the deblurrer alone (where the student starts).
    Final weights: OUT/student.safetensors (load with --deblurrer FILE anywhere).

    \b
    Example:
      b2b-train distill --translator runs/desk/translator.safetensors --blurry frames/blurry --out runs/desk-lite
      b2b-train distill --translator T.safetensors --blurry clip.mkv --out runs/x --iters 1200 --export lite.safetensors
    """
    import json
    import time

    from ..distill import distill as run_distill

    kw = {}
    if max_frames is not None:
        kw["max_frames"] = max_frames
    t0 = time.time()
    res = run_distill(translator, deblurrer, list(blurry), out_dir, iters=iters, crop=crop, batch=batch, lr=lr,
                      threads=threads, progress=not no_progress, fresh=fresh, stop_at=stop_at, log=click.echo, **kw)
    if not res["done"]:
        click.echo(f"checkpoint: {res['weights']}")
        return
    if export:
        from ..deblur_trainer import export_weights

        export_weights(res["weights"], export, fp16=True)
        click.echo(f"exported fp16 weights: {export}")
    click.echo(
        f"done in {time.time() - t0:.0f}s: {res['net']}, {res['steps']} steps; student vs teacher "
        f"{res['psnr_student']:.2f} dB (deblurrer alone {res['psnr_baseline']:.2f} dB) on {res['frames']['val']} held-apart frames"
    )
    click.echo(f"weights: {res['weights']}")
    click.echo(json.dumps({k: res[k] for k in ("weights", "psnr_student", "psnr_baseline", "steps", "seconds")}))
