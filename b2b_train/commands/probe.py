"""``b2b-train probe``: can a discriminator tell this camera's blur from the known blur? Which K?"""

from __future__ import annotations

import click


@click.command(name="probe")
@click.option("--blurry", "blurry", required=True, multiple=True, type=click.Path(exists=True),
              help="The camera's blurry frames: folders, images or clips. Repeatable.")
@click.option("--sharp", "sharp", required=True, multiple=True, type=click.Path(exists=True),
              help="The same camera's sharp frames. Repeatable.")
@click.option("--known", default="kernels", show_default=True, help="Known-blur preset the candidates vary.")
@click.option("--extents", default="3-7,3-11,3-15,3-21", show_default=True,
              help="Candidate kernel extent ranges (px), comma-separated.")
@click.option("--mix/--whole-frame", "mix", default=False, show_default=True,
              help="Candidates with the preset's uniform/varying/local mix, or whole-frame blur only.")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(10), help="Discriminator steps per probe.")
@click.option("--crop", default=96, show_default=True, type=click.IntRange(24), help="Crop side (px).")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(1), help="Crops of each set per step.")
@click.option("--channels", default="32,64,64", show_default=True,
              help="Widths of the high-pass discriminator's convolutions (smaller is faster on a CPU).")
@click.option("--frame-step", default=10, show_default=True, type=click.IntRange(1), help="Every n-th frame of a clip.")
@click.option("--report", default=None, type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("--threads", default=0, type=click.IntRange(0), help="torch CPU threads (0: torch's default).")
def probe(blurry, sharp, known, extents, mix, steps, crop, batch, channels, frame_step, report, threads):
    """Train a discriminator alone (translator = identity) and report how well it tells apart the
    camera's blurry frames B, its sharp frames S and each candidate known blur K.

    AUC 0.5 means indistinguishable, 1.0 always told apart. The chosen K is the candidate at least
    as blurry as B that the discriminator confuses most with B: the translator then has a
    difference to learn and the deblurrer nothing to invent.

    \b
    Example:
      b2b-train probe --blurry clips/fast --sharp clips/slow --report probe.json
    """
    import json

    import torch

    from ..cliutil import console
    from ..deblur_trainer import read_media
    from ..errors import ConfigError
    from ..probe import ProbeConfig, choose_known, extent_candidates, parse_extents

    if threads:
        torch.set_num_threads(threads)
    con = console()
    b = read_media(blurry, frame_step)
    s = read_media(sharp, frame_step)
    con.print(f"probe: {len(b)} blurry and {len(s)} sharp frames; {steps} discriminator steps per pair")
    try:
        widths = [int(c) for c in channels.split(",")]
    except ValueError:
        raise click.BadParameter(f"{channels!r} is not a comma-separated list of widths", param_hint="--channels") from None
    cfg = ProbeConfig(steps=steps, crop=crop, batch=batch, discriminator_kwargs={"channels": widths})
    try:
        ranges = parse_extents(extents)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--extents") from None
    rep = choose_known(b, s, extent_candidates(known, ranges, mix), cfg,
                       log=lambda m: con.print(m))
    from rich.table import Table

    t = Table(title=f"B vs S: AUC {rep['auc_b_vs_s']:.2f}; B's blur degree / S's: {rep['target']:.2f}")
    for col in ("known blur", "K vs B AUC", "K vs S AUC", "degree K/S", ""):
        t.add_column(col, justify="left" if not col or col == "known blur" else "right")
    for name, c in rep["candidates"].items():
        t.add_row(name, f"{c['auc']:.2f}", f"{c['auc_sharp']:.2f}", f"{c['degree_ratio']:.2f}",
                  "chosen" if name == rep["chosen"] else "")
    con.print(t)
    if rep["note"]:
        con.print(f"[yellow]{rep['note']}[/yellow]")
    if report:
        from ..checkpoint import atomic_write

        atomic_write(report, json.dumps(rep, indent=1, default=str).encode())
        con.print(f"report: {report}")
