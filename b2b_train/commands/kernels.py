"""``b2b-train kernels``: preview the known blur, write a known-blur (K) set, export kernels."""

from __future__ import annotations

from pathlib import Path

import click

from ..cliutil import overrides_argument

_CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("kernels", context_settings=_CTX)
def kernels():
    """Known-blur kernels (paper §3.3): preview them, blur a folder of sharp images, export a bank.

    The known blur is a preset of b2b_train/configs/known/ (default: kernels = camera-shake bank, mixing
    whole-frame shake with local blur), a YAML file, or bke:CKPT for blur transferred by a trained
    blur-kernel extractor.

    \b
    Example:
      b2b-train kernels preview --out grid.png
      b2b-train kernels synth --sharp frames/sharp --out frames/known
    """


def _test_pattern(size: int = 256):
    """A synthetic sharp image (edges, dots, text) for previews without --images."""
    import cv2
    import numpy as np

    img = np.full((size, size, 3), 235, np.uint8)
    step = size // 8
    for i in range(8):
        for j in range(8):
            if (i + j) % 2 == 0:
                img[i * step : (i + 1) * step, j * step : j * step + step // 2] = (40, 60, 90)
    cv2.circle(img, (size // 2, size // 2), size // 5, (200, 40, 40), 3)
    for k in range(5):
        cv2.circle(img, (size // 6 + k * size // 7, size - size // 8), 2, (20, 20, 20), -1)
    cv2.putText(img, "b2b", (size // 8, size // 3), cv2.FONT_HERSHEY_SIMPLEX, size / 200, (10, 110, 10), 2)
    return img


def _kernel_image(k, size: int = 160):
    import cv2
    import numpy as np

    a = k.detach().float().cpu().numpy()
    a = a / max(float(a.max()), 1e-12)
    a = cv2.resize(a, (size, size), interpolation=cv2.INTER_NEAREST)
    return (np.stack([a] * 3, -1) * 255).round().astype(np.uint8)


@kernels.command("preview", context_settings=_CTX)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="PNG grid to write.")
@click.option("--known", default="kernels", show_default=True, help="Known-blur preset, YAML file, or bke:CKPT.")
@click.option("--images", type=click.Path(exists=True), default=None, help="Sharp images (folder or file); default: a test pattern.")
@click.option("-n", "--count", type=int, default=6, show_default=True, help="Rows (examples) in the grid.")
@click.option("--size", type=int, default=256, show_default=True, help="Side of the crops shown.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same grid).")
@overrides_argument
def preview(out, known, images, count, size, seed, overrides):
    """Show kernels and blurred samples: sharp | blurry | kernel(s) | sharp-region mask.

    \b
    Example:
      b2b-train kernels preview --out grid.png
      b2b-train kernels preview --out grid.png --images photos/ --known kernels-uniform -n 8
      b2b-train kernels preview --out grid.png spatial.p_uniform=0 spatial.p_varying=0 spatial.p_local=1
    """
    import numpy as np
    import torch

    from ..blur import make_known_blur
    from ..data.io import list_images, read_image, save_grid, to_tensor
    from ..errors import B2BError

    if count < 1 or size < 16:
        raise B2BError("--count must be >= 1 and --size >= 16")
    kb = make_known_blur(known, overrides=overrides)
    if images:
        p = Path(images)
        files = list_images(p) if p.is_dir() else [p]
        src = [read_image(files[i % len(files)]) for i in range(count)]
    else:
        src = [_test_pattern(size)] * count
    g = torch.Generator().manual_seed(seed)
    crops = []
    for img in src:
        h, w = img.shape[:2]
        if h < size or w < size:
            import cv2

            s = size / min(h, w)
            img = cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
            h, w = img.shape[:2]
        y0 = int(torch.randint(h - size + 1, (1,), generator=g))
        x0 = int(torch.randint(w - size + 1, (1,), generator=g))
        crops.append(to_tensor(np.ascontiguousarray(img[y0 : y0 + size, x0 : x0 + size])))
    x = torch.stack(crops)
    if hasattr(kb, "weights"):
        y, info = kb.apply(x, g, return_info=True)
        rows = []
        for i in range(count):
            row = [x[i], y[i]]
            ks = info["kernels"][i]
            used = 1 if int(info["modes"][i]) == 0 else ks.shape[0]  # uniform frames use kernel 1 only
            row += [_kernel_image(ks[j] if j < used else torch.zeros_like(ks[j]), size) for j in range(ks.shape[0])]
            mask = info["sharp_weight"][i, 0, 0]
            row.append((mask[None].expand(3, -1, -1)).clone())
            rows.append(row)
        m = info["kernels"].shape[1]
        labels = ["sharp", "blurry"] + [f"kernel {j + 1}" for j in range(m)] + ["left sharp"]
    else:
        y = kb(x, g)
        rows = [[x[i], y[i]] for i in range(count)]
        labels = ["sharp", "blurry (BKE)"]
    save_grid(out, rows, labels)
    click.echo(kb.describe())
    click.echo(f"wrote {out} ({count} examples)")


@kernels.command("synth", context_settings=_CTX)
@click.option("--sharp", "sharp", required=True, type=click.Path(exists=True), help="Folder of sharp images (searched recursively).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder for the blurred (K) images.")
@click.option("--known", default="kernels", show_default=True, help="Known-blur preset, YAML file, or bke:CKPT.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same K set).")
@click.option("--copies", type=int, default=1, show_default=True, help="Blurred versions per sharp image.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@overrides_argument
def synth(sharp, out, known, seed, copies, device, overwrite, no_progress, overrides):
    """Write a known-blur set K: every sharp image re-blurred with the known blur (paper §3.3).

    Output files keep the sharp images' relative paths (PNG); with --copies N > 1 they get
    suffixes _k0.._kN-1. OUT/known.yaml records the blur and the seed.

    \b
    Example:
      b2b-train kernels synth --sharp frames/sharp --out frames/known
      b2b-train kernels synth --sharp frames/sharp --out frames/known --known kernels-uniform --copies 3
      b2b-train kernels synth --sharp frames/sharp --out frames/known --known bke:runs/bke/bke.safetensors
    """
    import time

    import torch
    import yaml

    from .. import trainutil
    from ..blur import make_known_blur
    from ..config import to_dict
    from ..data.io import list_images, read_image, to_tensor, to_uint8, write_image
    from ..errors import B2BError

    if copies < 1:
        raise B2BError("--copies must be >= 1")
    dev = trainutil.pick_device(device)
    kb = make_known_blur(known, device=dev, overrides=overrides)
    root = Path(sharp)
    files = list_images(root) if root.is_dir() else [root]
    out_dir = Path(out)
    targets = []
    for f in files:
        rel = f.relative_to(root) if root.is_dir() else Path(f.name)
        for c in range(copies):
            name = rel.with_suffix(".png") if copies == 1 else rel.with_name(f"{rel.stem}_k{c}.png")
            targets.append((f, c, out_dir / name))
    if not overwrite:
        existing = [t for _, _, t in targets if t.exists()]
        if existing:
            raise B2BError(f"{existing[0]} exists ({len(existing)} files would be replaced); pass --overwrite")
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    with trainutil.progress(len(targets), "known blur", enabled=not no_progress) as bar:
        cur = None
        for f, c, target in targets:
            if cur is None or cur[0] != f:
                cur = (f, to_tensor(read_image(f))[None].to(dev))
            y = kb(cur[1], g)
            write_image(target, to_uint8(y))
            bar.advance(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"known": known, "seed": seed, "copies": copies, "sharp": str(root.resolve()), "description": kb.describe()}
    if hasattr(kb, "cfg"):
        record["config"] = to_dict(kb.cfg)
    (out_dir / "known.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    click.echo(kb.describe())
    click.echo(f"wrote {len(targets)} blurred images from {len(files)} sharp images to {out_dir} in {time.time() - t0:.1f}s")


@kernels.command("export", context_settings=_CTX)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output .npz (or .mat) file.")
@click.option("-n", "--count", type=int, default=100, show_default=True, help="Number of kernels.")
@click.option("--known", default="kernels", show_default=True, help="Known-blur preset or YAML file (its kernel settings).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@overrides_argument
def export(out, count, known, seed, overrides):
    """Export kernels of the known blur's bank to .npz (keys k1..kN) or .mat (key 'kernels').

    \b
    Example:
      b2b-train kernels export --out bank.npz -n 500
      b2b-train kernels export --out bank.mat kernels.extent=[5,31]
    """
    import numpy as np
    import torch

    from ..blur import make_known_blur
    from ..checkpoint import atomic_write
    from ..errors import B2BError

    if count < 1:
        raise B2BError("--count must be >= 1")
    kb = make_known_blur(known, overrides=overrides)
    if not hasattr(kb, "sample_kernels"):
        raise B2BError("export needs a kernel-bank known blur, not a BKE transfer")
    k = kb.sample_kernels(count, torch.Generator().manual_seed(seed)).numpy().astype(np.float32)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mat":
        import io

        import scipy.io

        cells = np.empty((1, count), dtype=object)
        for i in range(count):
            cells[0, i] = k[i]
        buf = io.BytesIO()
        scipy.io.savemat(buf, {"kernels": cells})
        atomic_write(path, buf.getvalue())
    elif path.suffix == ".npz":
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **{f"k{i + 1}": k[i] for i in range(count)})
        atomic_write(path, buf.getvalue())
    else:
        raise B2BError(f"--out must end in .npz or .mat, got {path.name}")
    click.echo(f"wrote {count} kernels {k.shape[1]}x{k.shape[2]} to {path}")
