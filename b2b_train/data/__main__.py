"""``python -m b2b_train.data``: extract (or reuse) a camera dataset's frames and show the B/S split.

Prints the learned blur threshold, label counts, skipped files and the scene-disjoint split, and
writes them into ``<cache>/manifest.json``.
"""

from __future__ import annotations

import json

import click


@click.command(name="b2b-data", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cache", required=True, type=click.Path(file_okay=False), help="Frame cache folder (created).")
@click.option("--root", default=None, type=click.Path(exists=False), help="Dataset folder (blurry/ and sharp/ inside are labelled).")
@click.option("--blurry", multiple=True, type=click.Path(), help="Blurry clips/images (folder or file; repeatable).")
@click.option("--sharp", multiple=True, type=click.Path(), help="Sharp clips/images (folder or file; repeatable).")
@click.option("--unlabelled", multiple=True, type=click.Path(), help="Unlabelled clips/images, split by blur degree.")
@click.option("--step", default=1, show_default=True, type=click.IntRange(1), help="Keep every N-th frame.")
@click.option("--max-frames", default=None, type=click.IntRange(1), help="At most N frames per clip.")
@click.option("--max-side", default=None, type=click.IntRange(16), help="Shrink frames to this longer side.")
@click.option("--storage", default="npy", show_default=True, type=click.Choice(["npy", "png"]))
@click.option("--blur-split", default="global", show_default=True, type=click.Choice(["global", "per-clip"]),
              help="Threshold unlabelled frames on their Laplacian variance, or on it relative to their clip.")
@click.option("--threshold", default=None, type=float, help="Fixed blur threshold instead of the learned one.")
@click.option("--ratio", default="6:4", show_default=True, help="B:S scene ratio (paper 6:4; 5:5 ... 9:1).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--strict", is_flag=True, help="Fail on the first unusable file instead of skipping it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def main(cache, root, blurry, sharp, unlabelled, step, max_frames, max_side, storage, blur_split, threshold,
         ratio, seed, strict, as_json):
    """Decode clips/images into the frame cache once and show labels, blur threshold and B/S split.

    \b
    Example:
      python -m b2b_train.data --unlabelled clips/ --cache runs/desk/frames --step 2 --max-side 640
      python -m b2b_train.data --blurry rec/blurry --sharp rec/sharp --cache runs/desk/frames
    """
    from ..errors import B2BError
    from .frames import FrameOptions, extract_frames
    from .sets import make_unpaired

    warnings_seen: list[str] = []
    fs = extract_frames(
        cache, root, blurry=list(blurry) or None, sharp=list(sharp) or None, unlabelled=list(unlabelled) or None,
        options=FrameOptions(step, max_frames, max_side, storage), blur_threshold=threshold,
        blur_split=blur_split, strict=strict, warn=lambda m: (warnings_seen.append(m), click.secho(m, fg="yellow", err=True)),
    )
    out = {"frames": fs.summary()}
    try:
        out["split"] = make_unpaired(fs, ratio=ratio, seed=seed).summary()
    except B2BError as e:
        out["split"] = {"error": str(e)}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    f = out["frames"]
    click.echo(f"{f['frames']} frames from {f['clips']} clip(s) in {f['scenes']} scene(s); "
               f"extracted {f['stats']['extracted']}, reused {f['stats']['cached']} from {cache}")
    click.echo("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(f["labels"].items())))
    if f["blur_threshold"] is not None:
        rel = " relative to its clip's 90th percentile" if "per-clip" in (f["blur_threshold_source"] or "") else ""
        click.echo(f"blur threshold: {f['blur_threshold']:.4g} ({f['blur_threshold_source']}); "
                   f"frames with a lower Laplacian variance{rel} are blurry")
    for sk in f["skipped"]:
        click.secho(f"skipped: {sk['path']}: {sk['reason']}", fg="yellow")
    sp = out["split"]
    if "error" in sp:
        click.secho(f"B/S split: {sp['error']}", fg="red")
    else:
        click.echo(f"B/S split ({sp['mode']}, ratio {sp['ratio']}): B {sp['b_frames']} frames from "
                   f"{sp['b_scenes']} scene(s), S {sp['s_frames']} frames from {sp['s_scenes']} scene(s)")


def run(argv=None) -> None:
    from ..cliutil import run_main

    run_main(main, argv)


if __name__ == "__main__":
    run()
