"""``b2b-train translator``: train the blur->blur translator on one camera's blurry and sharp frames."""

from __future__ import annotations

import click

from ..cliutil import overrides_argument


@click.command(name="translator", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--blurry", required=True, type=click.Path(file_okay=False),
              help="Folder of the camera's blurry clips and/or images (the set B).")
@click.option("--sharp", required=True, type=click.Path(file_okay=False),
              help="Folder of the camera's sharp clips and/or images (S; K is made from it).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, log, samples, translator.safetensors. Rerun to resume.")
@click.option("--known", default=None, metavar="kernels|PRESET|bke:PATH",
              help="Known-blur domain: a b2b_train/configs/known preset (default: kernels) or bke:PATH to a trained BKE.")
@click.option("--config", "config", default="paper", show_default=True, metavar="NAME|FILE",
              help="Translator preset (paper, reference-code, cpu-quick) or a YAML file.")
@click.option("--iters", type=click.IntRange(1), default=None, help="Training iterations (overrides schedule.iters).")
@click.option("--fresh", is_flag=True, help="Delete the run's checkpoints and logs in --out and start over.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@overrides_argument
def translator(blurry, sharp, out, known, config, iters, fresh, no_progress, overrides):
    """Train the blur->blur translator G (Blur2Blur, paper §3.2) for one camera.

    G learns to turn the camera's unknown blur into the known blur that the shipped deblurrer
    handles, from unpaired blurry (B) and sharp (S) material of the same camera. Trailing
    KEY=VALUE arguments override config fields (`b2b-train config show translator paper` lists
    them). Rerunning the same command continues from the newest checkpoint in --out.

    \b
    Example:
      b2b-train translator --blurry clips/blurry --sharp clips/sharp --out runs/desk --config cpu-quick
      b2b-train translator --blurry B --sharp S --out runs/paper --iters 200000 data.batch=8 loss.lambda_rec=1.0
      torchrun --nproc_per_node 2 -m b2b_train.cli translator --blurry B --sharp S --out runs/ddp
    """
    import os

    from ..checkpoint import read_meta
    from ..cliutil import console
    from ..trainer import train_translator

    path = train_translator(
        blurry, sharp, out, config=config, overrides=tuple(overrides), known=known, iters=iters,
        progress=not no_progress, fresh=fresh,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return
    meta = read_meta(path)
    prov = meta.get("provenance", {})
    cfg = meta.get("config", {})
    losses = prov.get("final_losses", {})
    con = console()
    con.print(f"[bold green]translator trained[/bold green]: {path}")
    con.print(
        f"  {meta.get('net')} · {cfg.get('loss', {}).get('gan_mode')} GAN · step {prov.get('steps')} "
        f"({prov.get('steps_this_run')} this run, {prov.get('seconds_this_run')} s) · {prov.get('device')}"
        f"{' x' + str(prov.get('world_size')) if prov.get('world_size', 1) > 1 else ''}"
    )
    held = "held out" if prov.get("val_held_out") else "also trained on: too few frames to hold out"
    con.print(f"  B {prov.get('n_blurry')} frames, S {prov.get('n_sharp')} frames; {prov.get('n_val')} blurry frames "
              f"in the sample grids ({held})")
    if losses:
        con.print("  last losses: " + "  ".join(f"{k} {losses[k]:.4g}" for k in ("loss_d", "loss_g", "rec", "gp") if k in losses))
    if prov.get("vgg_weights") == "random":
        con.print("  [yellow]perceptual loss used RANDOM VGG features (set loss.vgg_weights=PATH)[/yellow]")
    if prov.get("rollbacks"):
        con.print(f"  [yellow]{len(prov['rollbacks'])} NaN/Inf rollback(s); LR scale {prov.get('lr_scale')}[/yellow]")
    run = os.path.dirname(str(path))
    con.print(f"  log {os.path.join(run, 'log.csv')} · plot {os.path.join(run, 'losses.png')} · samples {os.path.join(run, 'samples')}")
    con.print(f"  next: b2b-train evaluate --blurry TEST --gt GT --translator {path} --report {os.path.join(run, 'eval.json')}")
