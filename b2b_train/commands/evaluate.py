"""``b2b-train evaluate``: PSNR/SSIM (paper protocol) of deblurrer alone and deblurrer∘translator."""

from __future__ import annotations

import click


def _fmt(v, digits: int) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


@click.command(name="evaluate")
@click.option("--blurry", "blurry", required=True, type=click.Path(file_okay=False), help="Folder of blurry test images.")
@click.option("--gt", "gt", default=None, type=click.Path(file_okay=False),
              help="Folder of sharp ground truth, same relative names (omit: no-reference sharpness only).")
@click.option("--translator", default=None, type=click.Path(dir_okay=False),
              help="Translator checkpoint (translator.safetensors); omit to score the deblurrer alone.")
@click.option("--deblurrer", default="default", show_default=True,
              help="Deblurrer: 'default', a registry name, or a weights file (.safetensors / official .pth).")
@click.option("--report", required=True, type=click.Path(dir_okay=False), help="Where to write the JSON report.")
@click.option("--grid", default=None, type=click.Path(dir_okay=False),
              help="PNG grid: blurry | deblur only | b2b | ground truth (first rows).")
@click.option("--grid-rows", default=4, show_default=True, type=click.IntRange(1, 64), help="Images in the grid.")
@click.option("--max-images", default=None, type=click.IntRange(1), help="Evaluate only the first N images (by name).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate(blurry, gt, translator, deblurrer, report, grid, grid_rows, max_images, device, no_progress):
    """Score the deblurrer alone and deblurrer∘translator on blurry test images.

    PSNR and SSIM on RGB (8-bit levels, peak 255, no border cropped, Gaussian SSIM averaged over
    channels; the full protocol is written into the report), plus the blurry input itself as a row
    and the no-reference sharpness (Laplacian variance) of every row. Pairs are matched by file name.

    \b
    Example:
      b2b-train evaluate --blurry test/blurry --gt test/sharp \\
          --translator runs/desk/translator.safetensors --report runs/desk/eval.json --grid runs/desk/eval.png
      b2b-train evaluate --blurry frames/blurry --report sharpness.json   # no ground truth
    """
    from ..cliutil import console
    from ..evaluate import evaluate as run_eval

    rep = run_eval(
        blurry,
        gt,
        translator=translator,
        deblurrer=deblurrer,
        report=report,
        grid=grid,
        max_images=max_images,
        grid_rows=grid_rows,
        device=device,
        progress=not no_progress,
    )
    from rich.table import Table

    con = console()
    t = Table(title=f"{rep['n_images']} image(s) on {rep['device']}")
    t.add_column("row")
    if rep["has_ground_truth"]:
        t.add_column("PSNR (dB)", justify="right")
        t.add_column("SSIM", justify="right")
    t.add_column("sharpness", justify="right")
    for row, label in (("input", "blurry input"), ("deblur_only", "deblur only"), ("b2b", "b2b (deblur∘translate)")):
        if rep["sharpness"].get(row) is None and rep["psnr"].get(row) is None:
            continue
        cells = [label]
        if rep["has_ground_truth"]:
            p = rep["psnr"].get(row)
            ident = rep.get("psnr_identical", {}).get(row)
            cells += ["inf" if p is None and ident else _fmt(p, 2), _fmt(rep["ssim"].get(row), 4)]
        cells.append(_fmt(rep["sharpness"].get(row), 1))
        t.add_row(*cells)
    con.print(t)
    for n in rep["notes"]:
        con.print(f"[dim]{n}[/dim]")
    con.print(f"report: {report}" + (f"   grid: {grid}" if grid else ""))
