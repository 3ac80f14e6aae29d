"""Evaluation with the paper's protocol: deblurrer alone vs deblurrer ∘ translator.

    report = evaluate("test/blurry", "test/sharp", translator="runs/desk/translator.safetensors",
                      deblurrer="default", report="report.json", grid="grid.png")

Rows: ``input`` (the blurry image itself), ``deblur_only`` (G*(y)), ``b2b`` (G*(G(y)), only with a
translator). With ground truth: PSNR and SSIM per :mod:`b2b_train.metrics` (written out under
``"protocol"`` in the report). Always: the no-reference sharpness (variance of the Laplacian) of
every row (and of the ground truth), the only measure when there is no ground truth.

Pairs are matched by relative path without the extension (``a/001.png`` <-> ``a/001.jpg``);
anything unmatched is an error that lists the names. Images are processed whole, one at a time, at
full resolution (the networks pad to their multiple internally).

A PSNR of identical images is +inf; JSON has no infinity, so it is written as ``null`` and counted
under ``"psnr_identical"`` (a mean over images that includes one is also +inf, hence ``null``).
SSIM of identical images is 1.0.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from .errors import B2BError, DataError
from .metrics import laplacian_variance, psnr, ssim
from .data import io as dio

__all__ = ["evaluate", "match_pairs", "evaluate_images", "PROTOCOL", "ROWS"]

ROWS = ("input", "deblur_only", "b2b")

PROTOCOL = {
    "color": "RGB, all three channels",
    "quantization": "outputs clamped to [0,1] and rounded to 8-bit levels round(x*255) before scoring "
    "(what is saved to disk); the translator's output goes to the deblurrer as float (clamped, not rounded), "
    "as in the fused engine",
    "psnr": "10*log10(255^2/MSE), MSE over all pixels and channels of one image, peak 255; mean of per-image PSNRs",
    "psnr_identical": "identical images have PSNR +inf, written as null (JSON has no infinity) and counted in "
    "'psnr_identical'; a mean that includes one is +inf, also null",
    "ssim": "Wang et al. 2004, 11x11 Gaussian window sigma 1.5, K1=0.01, K2=0.03, L=255, on each RGB channel, "
    "valid region only (no padding), averaged over channels, then over images",
    "border": "no border cropped",
    "resolution": "full resolution, whole image in one pass (networks pad to their size multiple internally)",
    "sharpness": "variance of the Laplacian (3x3, 4-neighbour) of ITU-R 601 luma on the 0..255 scale, valid region; "
    "higher = sharper; no reference needed",
    "pairing": "same relative path under --blurry and --gt, extension ignored",
    "translator_output": "full-scale output (last of the three scales)",
}


# ----------------------------------------------------------------------------- pairing

def _stem_key(root: Path, p: Path) -> str:
    return p.relative_to(root).with_suffix("").as_posix()


def _names(xs: Sequence[str], n: int = 8) -> str:
    xs = list(xs)
    more = f" … and {len(xs) - n} more" if len(xs) > n else ""
    return ", ".join(xs[:n]) + more


def match_pairs(blurry_dir: str | os.PathLike, gt_dir: str | os.PathLike | None) -> list[tuple[str, Path, Path | None]]:
    """``(name, blurry_path, gt_path or None)`` sorted by name; DataError lists unmatched names."""
    broot = Path(blurry_dir)
    blurry = dio.list_images(broot)
    bmap: dict[str, Path] = {}
    for p in blurry:
        k = _stem_key(broot, p)
        if k in bmap:
            raise DataError(f"two blurry images share the name {k!r}: {bmap[k].name} and {p.name}")
        bmap[k] = p
    if gt_dir is None:
        return [(k, bmap[k], None) for k in sorted(bmap)]
    groot = Path(gt_dir)
    gmap: dict[str, Path] = {}
    for p in dio.list_images(groot):
        k = _stem_key(groot, p)
        if k in gmap:
            raise DataError(f"two ground-truth images share the name {k!r}: {gmap[k].name} and {p.name}")
        gmap[k] = p
    only_b = sorted(set(bmap) - set(gmap))
    only_g = sorted(set(gmap) - set(bmap))
    if only_b or only_g:
        parts = []
        if only_b:
            parts.append(f"{len(only_b)} blurry image(s) without ground truth in {groot}: {_names(only_b)}")
        if only_g:
            parts.append(f"{len(only_g)} ground-truth image(s) without a blurry image in {broot}: {_names(only_g)}")
        raise DataError("images are paired by name, but " + "; ".join(parts))
    return [(k, bmap[k], gmap[k]) for k in sorted(bmap)]


# ----------------------------------------------------------------------------- networks

def _resolve_net(obj, kind: str, device: torch.device):
    """``None`` / nn.Module / callable / name-or-path -> (callable on (1,3,H,W) floats, description)."""
    if obj is None:
        return None, None
    if isinstance(obj, torch.nn.Module):
        return obj.to(device).eval(), f"{type(obj).__name__} (module)"
    if callable(obj):
        return obj, getattr(obj, "__name__", type(obj).__name__)
    if kind == "translator":
        p = Path(obj)
        if not p.is_file():
            raise B2BError(f"translator checkpoint not found: {p}")
        from .nets.translator_io import load_translator

        net = load_translator(p)
        return net.to(device).eval(), str(p)
    from .shipped import resolve_deblurrer

    net = resolve_deblurrer(str(obj))
    return net.to(device).eval(), str(obj)


def _forward(net, x: torch.Tensor, what: str) -> torch.Tensor:
    y = net(x)
    if isinstance(y, (list, tuple)):  # a raw multi-scale translator: take the full-scale output
        y = y[-1]
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise B2BError(f"the {what} returned {got} for an input of {tuple(x.shape)}")
    return y.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- core

def _json_float(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(v)


def _mean(vals: list[float]) -> float | None:
    if not vals:
        return None
    if any(math.isinf(v) for v in vals):
        return math.inf
    return float(sum(vals) / len(vals))


MIN_SIDE = 8  # smaller images break the sharpness filter and are meaningless to score


def evaluate_images(
    items: Iterable[tuple[str, np.ndarray, np.ndarray | None]],
    translator=None,
    deblurrer=None,
    device: str | torch.device = "cpu",
    keep_images: int = 0,
    progress: bool = True,
    total: int | None = None,
) -> tuple[dict, list[list[np.ndarray]]]:
    """Score in-memory ``(name, blurry uint8, gt uint8 or None)`` items with loaded nets (callables).

    ``items`` may be a generator (images are read one at a time; give ``total`` for the progress bar).
    Returns ``(results, grid_rows)``: per-image and mean metrics (inf kept as floats here), and the
    first ``keep_images`` rows of uint8 images (blurry, deblur only, b2b, gt) for a grid.
    """
    device = torch.device(device)
    per_image: list[dict] = []
    grid_rows: list[list[np.ndarray]] = []
    from .trainutil import progress as _progress

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _progress(total or 0, "evaluating", enabled=progress) as bar, torch.inference_mode():
        for n, (name, b_img, g_img) in enumerate(items):
            if min(b_img.shape[:2]) < MIN_SIDE:
                raise DataError(
                    f"{name}: image is {b_img.shape[1]}x{b_img.shape[0]}, too small to evaluate "
                    f"(at least {MIN_SIDE}x{MIN_SIDE})"
                )
            if g_img is not None and g_img.shape != b_img.shape:
                raise DataError(
                    f"{name}: blurry image is {b_img.shape[1]}x{b_img.shape[0]} but ground truth is "
                    f"{g_img.shape[1]}x{g_img.shape[0]}"
                )
            x = dio.to_tensor(b_img)[None].to(device)
            outs: dict[str, torch.Tensor] = {"input": x}
            if deblurrer is not None:
                outs["deblur_only"] = _forward(deblurrer, x, "deblurrer")
                if translator is not None:
                    outs["b2b"] = _forward(deblurrer, _forward(translator, x, "translator"), "deblurrer")
            rec: dict[str, Any] = {"name": name, "width": int(b_img.shape[1]), "height": int(b_img.shape[0])}
            rec["sharpness"] = {k: float(laplacian_variance(v)[0]) for k, v in outs.items()}
            if g_img is not None:
                gt = dio.to_tensor(g_img)[None].to(device)
                rec["sharpness"]["gt"] = float(laplacian_variance(gt)[0])
                rec["psnr"] = {k: psnr(v, gt) for k, v in outs.items()}
                rec["ssim"] = {k: ssim(v, gt) for k, v in outs.items()} if min(b_img.shape[:2]) >= 11 else {}
            per_image.append(rec)
            if n < keep_images:
                row = [b_img]
                for k in ("deblur_only", "b2b"):
                    if k in outs:
                        row.append(dio.to_uint8(outs[k]))
                if g_img is not None:
                    row.append(g_img)
                grid_rows.append(row)
            last = rec.get("psnr", {}).get("b2b", rec.get("psnr", {}).get("deblur_only"))
            bar.advance(1, **({"psnr": last} if last is not None and math.isfinite(last) else {}))

    if not per_image:
        raise DataError("no images to evaluate")
    has_gt = all("psnr" in p for p in per_image)
    if not has_gt and any("psnr" in p for p in per_image):
        raise DataError("some images have ground truth and some do not")
    rows = [r for r in ROWS if any(r in p["sharpness"] for p in per_image)]
    out: dict[str, Any] = {"n_images": len(per_image), "rows": rows, "per_image": per_image}
    out["sharpness"] = {k: _mean([p["sharpness"][k] for p in per_image]) for k in rows + (["gt"] if has_gt else [])}
    if has_gt:
        out["psnr"] = {k: _mean([p["psnr"][k] for p in per_image]) for k in rows}
        ss = [p["ssim"] for p in per_image if p["ssim"]]
        out["ssim"] = {k: _mean([s[k] for s in ss]) for k in rows} if ss else {k: None for k in rows}
        out["psnr_identical"] = {k: sum(1 for p in per_image if math.isinf(p["psnr"][k])) for k in rows}
    return out, grid_rows


def _jsonable(obj):
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def evaluate(
    blurry_dir: str | os.PathLike,
    gt_dir: str | os.PathLike | None = None,
    translator: str | os.PathLike | torch.nn.Module | Callable | None = None,
    deblurrer: str | os.PathLike | torch.nn.Module | Callable | None = "default",
    report: str | os.PathLike | None = None,
    grid: str | os.PathLike | None = None,
    max_images: int | None = None,
    grid_rows: int = 4,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> dict:
    """Evaluate deblurrer alone and deblurrer ∘ translator on a folder of blurry images.

    Args:
        blurry_dir: blurry test images (searched recursively).
        gt_dir: sharp ground truth with the same relative names, or None (sharpness only).
        translator: a translator checkpoint (``b2b_train.nets.translator_io.load_translator``), a module, or None.
        deblurrer: ``default``, a registry name, a weights file (``b2b_train.shipped.resolve_deblurrer``)
            or a module / callable; None scores the input only.
        report: JSON report path; grid: PNG grid path (blurry | deblur only | b2b | gt).
        max_images: evaluate only the first N pairs (sorted by name).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda:0``...

    Returns:
        the report dict: ``psnr``/``ssim`` (``input``, ``deblur_only``, ``b2b``), ``sharpness``,
        ``n_images``, ``protocol``, ``per_image`` ... (JSON-safe: +inf PSNR is ``None``).
    """
    from .trainutil import pick_device

    t0 = time.perf_counter()
    dev = pick_device(device)
    pairs = match_pairs(blurry_dir, gt_dir)
    if max_images is not None:
        if max_images < 1:
            raise DataError(f"--max-images must be >= 1, got {max_images}")
        pairs = pairs[:max_images]
    deb, deb_desc = _resolve_net(deblurrer, "deblurrer", dev)
    tr, tr_desc = _resolve_net(translator, "translator", dev)
    if tr is not None and deb is None:
        raise B2BError("a translator needs a deblurrer to be evaluated (b2b = deblurrer(translator(y)))")

    def items():
        for name, bp, gp in pairs:
            yield name, dio.read_image(bp), (dio.read_image(gp) if gp is not None else None)

    res, rows = evaluate_images(
        items(), tr, deb, dev, keep_images=grid_rows if grid else 0, progress=progress, total=len(pairs)
    )
    has_gt = gt_dir is not None
    notes = []
    if tr is None:
        notes.append("no translator given: the b2b row (deblurrer∘translator) was not evaluated and is null")
    if deb is None:
        notes.append("no deblurrer given: only the input was scored")
    if not has_gt:
        notes.append("no ground truth given: PSNR/SSIM not computed (null); see sharpness (no-reference)")
    null_rows = {k: None for k in ROWS}
    out: dict[str, Any] = {
        "n_images": res["n_images"],
        "psnr": {**null_rows, **(res.get("psnr") or {})},
        "ssim": {**null_rows, **(res.get("ssim") or {})},
        "sharpness": {**null_rows, **res["sharpness"]},
        "psnr_identical": res.get("psnr_identical", {}),
        "has_ground_truth": has_gt,
        "notes": notes,
        "blurry_dir": str(blurry_dir),
        "gt_dir": str(gt_dir) if gt_dir is not None else None,
        "translator": tr_desc,
        "deblurrer": deb_desc,
        "device": str(dev),
        "seconds": round(time.perf_counter() - t0, 3),
        "protocol": dict(PROTOCOL),
        "per_image": res["per_image"],
    }
    if has_gt and all(min(p["width"], p["height"]) < 11 for p in res["per_image"]):
        out["notes"].append("images smaller than 11x11: SSIM not computed")
    out = _jsonable(out)
    if report is not None:
        from .checkpoint import atomic_write

        rp = Path(report)
        rp.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(rp, json.dumps(out, indent=1, allow_nan=False).encode())
    if grid is not None and rows:
        labels = ["blurry"] + (["deblur only"] if deb is not None else []) + (["b2b"] if tr is not None else [])
        labels += ["ground truth"] if has_gt else []
        dio.save_grid(grid, rows, labels)
    return out
