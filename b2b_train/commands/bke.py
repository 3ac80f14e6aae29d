"""``b2b-train bke``: train the blur-kernel extractor on paired data, or transfer blur with it."""

from __future__ import annotations

from pathlib import Path

import click

from ..cliutil import overrides_argument

_CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("bke", context_settings=_CTX)
def bke():
    """Blur-kernel extractor (Tran et al. CVPR 2021): the paper's route to the known-blur set K.

    Train it on a paired blurry/sharp dataset (GoPro, REDS, RSBlur... two folders matched by file
    name), then transfer that dataset's blur onto your camera's sharp frames. A trained checkpoint
    is also a known-blur source anywhere a preset is accepted: --known bke:OUT/bke.safetensors.

    \b
    Example:
      b2b-train bke train --blurry GOPRO/train/blur --sharp GOPRO/train/sharp --out runs/bke
      b2b-train bke transfer --bke runs/bke/bke.safetensors --sharp frames/sharp --out frames/known
    """


@bke.command("train", context_settings=_CTX)
@click.option("--blurry", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of blurry images.")
@click.option("--sharp", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of sharp images (same names).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumes if it holds a checkpoint).")
@click.option("--config", default="paper", show_default=True, help="Preset (b2b_train/configs/bke/: paper, gpu-small, cpu-tiny) or YAML file.")
@click.option("--iters", type=int, default=None, help="Iterations (overrides the config; restart periods scale with it).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@overrides_argument
def train(blurry, sharp, out_dir, config, iters, no_progress, overrides):
    """Train the BKE with the published recipe (Charbonnier, Adam 1e-4, cosine restarts).

    Pairs are matched by relative path without extension; give the same root twice for GoPro's
    <scene>/blur + <scene>/sharp layout. Writes OUT/bke.safetensors (it records the pair
    folders, so bke:OUT/bke.safetensors works as a known blur), OUT/log.csv, OUT/loss.png.

    \b
    Example:
      b2b-train bke train --blurry REDS/train_blur --sharp REDS/train_sharp --out runs/bke-reds
      b2b-train bke train --blurry GOPRO/train --sharp GOPRO/train --out runs/bke --config gpu-small
      b2b-train bke train --blurry pairs/b --sharp pairs/s --out runs/tiny --config cpu-tiny --iters 100
    """
    import time

    from ..bke_trainer import train_bke
    from ..checkpoint import read_meta
    from ..trainutil import CsvLogger

    t0 = time.time()
    path = train_bke(blurry, sharp, out_dir, config=config, overrides=overrides, iters=iters,
                     progress=not no_progress, log=click.echo)
    meta = read_meta(path)
    rows = CsvLogger(Path(out_dir) / "log.csv").read()
    first = float(rows[0]["loss"]) if rows else float("nan")
    last = float(rows[-1]["loss"]) if rows else float("nan")
    click.echo(
        f"done in {time.time() - t0:.0f}s: {meta.get('net')} on {meta.get('pairs')} pairs, "
        f"{meta.get('iters')} iterations; loss {first:.4f} -> {last:.4f}"
    )
    click.echo(f"weights: {path}")


@bke.command("transfer", context_settings=_CTX)
@click.option("--bke", "bke_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="BKE weights: ours (bke.safetensors) or the authors' .pth (GOPRO_woVAE.pth...).")
@click.option("--pairs-blurry", type=click.Path(exists=True, file_okay=False), default=None,
              help="Blurry images of the paired dataset (default: the folders recorded in --bke).")
@click.option("--pairs-sharp", type=click.Path(exists=True, file_okay=False), default=None, help="Sharp images of the paired dataset.")
@click.option("--sharp", "sharp", required=True, type=click.Path(exists=True), help="Your sharp images (folder or file).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder for the blurred (K) images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (which pairs, which crops).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def transfer(bke_path, pairs_blurry, pairs_sharp, sharp, out, seed, device, overwrite, no_progress):
    """Blur your sharp images with blur taken from random pairs of a paired dataset (any image size).

    \b
    Example:
      b2b-train bke transfer --bke runs/bke/bke.safetensors --sharp frames/sharp --out frames/known
      b2b-train bke transfer --bke GOPRO_woVAE.pth --pairs-blurry GOPRO/test/blur \\
          --pairs-sharp GOPRO/test/sharp --sharp frames/sharp --out frames/known --device cuda
    """
    import time

    import torch

    from .. import trainutil
    from ..blur.bke_transfer import BKETransfer, PairedImages, load_bke
    from ..data.io import list_images, read_image, to_tensor, to_uint8, write_image
    from ..errors import B2BError

    dev = trainutil.pick_device(device)
    net, meta = load_bke(bke_path, dev)
    pb = pairs_blurry or meta.get("pairs_blurry")
    ps = pairs_sharp or meta.get("pairs_sharp")
    if not pb or not ps:
        raise B2BError(f"{bke_path} does not record its paired folders: pass --pairs-blurry and --pairs-sharp")
    if bool(pairs_blurry) != bool(pairs_sharp):
        raise B2BError("give both --pairs-blurry and --pairs-sharp, or neither")
    tr = BKETransfer(net, PairedImages.from_folders(pb, ps), dev, source=Path(bke_path).name)
    root = Path(sharp)
    files = list_images(root) if root.is_dir() else [root]
    out_dir = Path(out)
    targets = [(f, out_dir / ((f.relative_to(root) if root.is_dir() else Path(f.name)).with_suffix(".png"))) for f in files]
    if not overwrite:
        existing = [t for _, t in targets if t.exists()]
        if existing:
            raise B2BError(f"{existing[0]} exists ({len(existing)} files would be replaced); pass --overwrite")
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    with trainutil.progress(len(targets), "BKE transfer", enabled=not no_progress) as bar:
        for f, target in targets:
            x = to_tensor(read_image(f))[None].to(dev)
            write_image(target, to_uint8(tr(x, g)))
            bar.advance(1)
    click.echo(tr.describe())
    click.echo(f"wrote {len(targets)} images to {out_dir} in {time.time() - t0:.1f}s")
