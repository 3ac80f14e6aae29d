"""Benchmark of the shipped known-blur deblurrer: quality on held-apart images, and CPU speed.

Quality (paper protocol PSNR/SSIM, 8-bit RGB, no border crop) on images never used in training,
blurred in linear light (gamma 2.2, as the known-blur domain does) and quantised to 8 bits:

* (a) the kernel bank: ``b2b_train/configs/known/kernels-uniform.yaml`` (whole-frame camera shake, one
  random kernel per image, with the domain's sensor noise) and the default mixed domain
  ``b2b_train/configs/known/kernels.yaml`` (uniform + spatially varying + local blur);
* (b) kernels the network never saw: KAIR's motion kernels 8-11 (25 px) and ``k_large_1/2``
  (67/70 px), noise-free.

Compared: the blurry input, a classical baseline (Wiener deconvolution in linear light with the
TRUE kernel and the best single noise-to-signal ratio of a small grid, picked on the test set itself,
an optimistic baseline) and the deblurrer. Speed: images/s of the deblurrer at 320x240 and 640x480
on this CPU. Writes BENCHMARKS.md section ``deblurrer`` and ``benchmarks/out/deblurrer_examples.png``.

    python benchmarks/deblurrer.py                 # the shipped weights
    python benchmarks/deblurrer.py --weights runs/x/deblurrer.safetensors --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b2b_train.blur import convolve, load_kernels, make_known_blur  # noqa: E402
from b2b_train.data.io import read_image, save_grid, to_tensor  # noqa: E402
from b2b_train.metrics import psnr, ssim  # noqa: E402

# The images set apart from the shipped deblurrer's training (b2b_train/weights/README.md).
HELD_APART = [
    "images/kodak/kodim03.png",
    "images/kodak/kodim07.png",
    "images/kodak/kodim12.png",
    "images/kodak/kodim15.png",
    "images/skimage/chelsea.png",
    "images/sklearn/flower.jpg",
]
NSR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
SEED = 2024


def data_root() -> Path:
    env = os.environ.get("B2B_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def wiener(blurry_lin: torch.Tensor, kernel: torch.Tensor, nsr: float) -> torch.Tensor:
    """Wiener deconvolution of (1,3,H,W) linear-light images with one (s,s) kernel (true convolution).

    Reflect-pads by the kernel size so the circular FFT sees no hard border; returns (1,3,H,W).
    """
    x = blurry_lin.double()
    _, _, h, w = x.shape
    s = kernel.shape[-1]
    p = min(s, h - 1, w - 1)
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    hp, wp = xp.shape[-2:]
    kp = torch.zeros(hp, wp, dtype=torch.float64)
    kp[:s, :s] = kernel.double()
    kp = torch.roll(kp, shifts=(-(s // 2), -(s // 2)), dims=(0, 1))
    K = torch.fft.rfft2(kp)
    Y = torch.fft.rfft2(xp)
    X = Y * K.conj() / (K.abs() ** 2 + nsr)
    out = torch.fft.irfft2(X, s=(hp, wp))[..., p : p + h, p : p + w]
    return out.float().clamp(0, 1)


def blur_with_kernel(sharp: torch.Tensor, kernel: torch.Tensor, crf) -> torch.Tensor:
    """Blur (1,3,H,W) in linear light with one kernel and quantise to 8 bits (no noise)."""
    lin = crf.to_linear(sharp)
    y = convolve(lin, kernel[None].to(sharp), "reflect", "auto")
    return torch.round(crf.from_linear(y).clamp(0, 1) * 255) / 255


def load_net(weights: str | None):
    from b2b_train.shipped import default_deblurrer_path, resolve_deblurrer

    path = Path(weights) if weights else default_deblurrer_path()
    return resolve_deblurrer(str(path)), path


@torch.no_grad()
def run_net(net, x: torch.Tensor) -> torch.Tensor:
    return net(x).float().clamp(0, 1)


def score(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    return psnr(a, b), ssim(a, b)


def evaluate_pairs(net, pairs, crf, with_wiener: bool) -> tuple[list[dict], list]:
    """pairs: [(name, sharp, blurry, kernel or None)] -> per-pair scores and outputs."""
    rows, outs = [], []
    for name, sharp, blurry, k in pairs:
        out = run_net(net, blurry)
        r = {"name": name, "blurry": score(blurry, sharp), "net": score(out, sharp), "wiener": {}}
        if with_wiener and k is not None:
            lin = crf.to_linear(blurry)
            for n in NSR_GRID:
                r["wiener"][n] = score(crf.from_linear(wiener(lin, k, n)), sharp)
        rows.append(r)
        outs.append((name, sharp, blurry, out))
    return rows, outs


def summarise(rows: list[dict]) -> dict:
    """Mean PSNR/SSIM of blurry, net and (best single NSR) Wiener over per-pair rows."""
    mean = lambda v: (statistics.fmean(p for p, _ in v), statistics.fmean(s for _, s in v))  # noqa: E731
    summary = {"n": len(rows), "blurry": mean([r["blurry"] for r in rows]), "net": mean([r["net"] for r in rows])}
    if rows and rows[0]["wiener"]:
        best = max(NSR_GRID, key=lambda n: mean([r["wiener"][n] for r in rows])[0])
        summary["wiener"] = mean([r["wiener"][best] for r in rows])
        summary["wiener_nsr"] = best
    return summary


def wiener_image(blurry, k, crf, nsr):
    return crf.from_linear(wiener(crf.to_linear(blurry), k, nsr))


def speed(net, sizes=((320, 240), (640, 480)), runs: int = 10) -> dict:
    img = to_tensor(read_image(data_root() / "images/kodak/kodim05.png"))[None]
    out = {}
    for w, h in sizes:
        x = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
        with torch.no_grad():
            for _ in range(2):
                net(x)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        out[f"{w}x{h}"] = {"median_ms": med * 1000, "images_per_s": 1.0 / med, "best_images_per_s": 1.0 / min(times)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="deblurrer weights (default: the shipped file)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for the speed test")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    net, wpath = load_net(args.weights)
    from b2b_train.checkpoint import read_meta

    meta = read_meta(wpath)
    root = data_root()
    sharp_imgs = [(Path(p).name, to_tensor(read_image(root / p))[None]) for p in HELD_APART]
    g = torch.Generator().manual_seed(SEED)

    # (a) the kernel bank: whole-frame shake (true kernel known -> Wiener) and the default mix
    uni = make_known_blur("kernels-uniform")
    crf = uni.crf
    pairs_a = []
    for name, s in sharp_imgs:
        y, info = uni.apply(s, g, return_info=True)
        pairs_a.append((name, s, y, info["kernels"][0, 0].cpu()))
    mix = make_known_blur("kernels")
    pairs_m = [(name, s, mix(s, g), None) for name, s in sharp_imgs]
    # (b) unseen kernels
    kdir = root / "kernels"
    kair = load_kernels(kdir / "kernels_12.npz")[8:12]
    large = [load_kernels(kdir / f"k_large_{i}.png")[0] for i in (1, 2)]
    unseen = [(f"KAIR motion {i + 8}", k) for i, k in enumerate(kair)] + [
        (f"k_large_{i + 1}", k) for i, k in enumerate(large)
    ]
    pairs_b, per_kernel = [], {}
    for kname, k in unseen:
        kp = [(f"{name} / {kname}", s, blur_with_kernel(s, k, crf), k) for name, s in sharp_imgs]
        pairs_b += kp
        per_kernel[kname] = kp

    t0 = time.time()
    sets = {}
    rows_a, outs_a = evaluate_pairs(net, pairs_a, crf, True)
    rows_m, _ = evaluate_pairs(net, pairs_m, crf, False)
    rows_b, outs_b = evaluate_pairs(net, pairs_b, crf, True)
    sets["(a) kernel bank, whole-frame shake"] = summarise(rows_a)
    sets["(a) kernel bank, default mix (uniform/varying/local)"] = summarise(rows_m)
    sets["(b) unseen: KAIR motion 8-11 + k_large_1/2"] = summarise(rows_b)
    kernel_rows = {kname: summarise([r for r in rows_b if r["name"].endswith(" / " + kname)]) for kname in per_kernel}
    quality_s = time.time() - t0
    spd = speed(net)

    # example grid: blurry | Wiener (true kernel) | deblurrer | sharp, 160 px crops
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    best_a = sets["(a) kernel bank, whole-frame shake"]["wiener_nsr"]
    best_b = sets["(b) unseen: KAIR motion 8-11 + k_large_1/2"]["wiener_nsr"]
    # one kernel-bank image (kodim03), KAIR kernel 9 on kodim07, k_large_1 on chelsea
    picks = [(pairs_a[0], outs_a[0], best_a), (pairs_b[6 * 1 + 1], outs_b[6 * 1 + 1], best_b), (pairs_b[6 * 4 + 4], outs_b[6 * 4 + 4], best_b)]
    for (name, s, y, k), (_, _, _, o), nsr in picks:
        w = wiener_image(y, k, crf, nsr)
        _, _, h, wd = s.shape
        c = 144
        top, left = max(0, (h - c) // 2), max(0, (wd - c) // 2)
        crop = lambda t: t[0, :, top : top + c, left : left + c]  # noqa: E731
        rows.append([crop(y), crop(w), crop(o), crop(s)])
    grid_path = out_dir / "deblurrer_examples.png"
    save_grid(grid_path, rows, labels=["blurry", "Wiener (true k)", str(meta.get("net")), "sharp"], max_cell=144)

    val = meta.get("validation", {})
    lines = []
    from benchmarks._report import header, update_section

    cmd = "python benchmarks/deblurrer.py" + (f" --weights {args.weights}" if args.weights else "")
    lines.append(header("deblurrer: shipped known-blur deblurrer", cmd))
    try:
        load = os.getloadavg()[0]
        lines.append(f"- CPU load average during the run: {load:.1f} (the machine is shared; speed is noisy)")
    except OSError:
        pass
    lines.append(
        f"- Weights: `{wpath.relative_to(ROOT) if wpath.is_relative_to(ROOT) else wpath}` "
        f"({meta.get('net')}, {wpath.stat().st_size / 1e6:.1f} MB, {meta.get('storage', 'float32')} storage), "
        f"{sum(int(st.get('steps', 0)) for st in meta.get('stages', [])) or meta.get('steps')} training steps on `{meta.get('known')}`"
    )
    lines.append(
        "- Held-apart images (never trained on): " + ", ".join(f"`{Path(p).name}`" for p in HELD_APART)
        + " (full size); blur in linear light (gamma 2.2), 8-bit output"
    )
    if val:
        lines.append(
            f"- Training-time validation (same images, 256 px centre crops, default mix): PSNR {val.get('psnr', 0):.2f} dB "
            f"(blurry {val.get('input_psnr', 0):.2f}), SSIM {val.get('ssim', 0):.3f} (blurry {val.get('input_ssim', 0):.3f})"
        )
    lines.append(
        "- Wiener: linear-light deconvolution with the TRUE kernel, best single NSR from "
        f"{list(NSR_GRID)} chosen on the test set (optimistic; per set and per kernel row)."
    )
    lines.append("")
    lines.append(f"| blur | pairs | blurry PSNR / SSIM | Wiener (true kernel) | {meta.get('net')} | gain vs blurry |")
    lines.append("|---|---:|---:|---:|---:|---:|")

    def fmt(v):
        return f"{v[0]:.2f} / {v[1]:.3f}"

    for name, r in list(sets.items()) + [(f"&nbsp;&nbsp;{k}", v) for k, v in kernel_rows.items()]:
        wcol = f"{fmt(r['wiener'])} (nsr {r['wiener_nsr']:g})" if "wiener" in r else "n/a (spatially varying)"
        lines.append(
            f"| {name} | {r['n']} | {fmt(r['blurry'])} | {wcol} | {fmt(r['net'])} | "
            f"{r['net'][0] - r['blurry'][0]:+.2f} dB |"
        )
    cfg = meta.get("config", {})
    total_steps = sum(int(st.get("steps", 0)) for st in meta.get("stages", [])) or meta.get("steps")
    gain = sets["(a) kernel bank, whole-frame shake"]["net"][0] - sets["(a) kernel bank, whole-frame shake"]["blurry"][0]
    gain_mix = sets["(a) kernel bank, default mix (uniform/varying/local)"]
    gain_mix = gain_mix["net"][0] - gain_mix["blurry"][0]
    lines.append("")
    lines.append(
        f"Goal of issue 3: at least +5 dB over the blurry input on the kernel-bank domain. "
        f"Reached: {gain:+.2f} dB (whole-frame shake), {gain_mix:+.2f} dB (default mix): "
        + ("goal met." if min(gain, gain_mix) >= 5 else
           f"**not met**; these weights had {total_steps} steps in {max(1, len(meta.get('stages', [])))} stage(s) "
           f"(the last: batch {cfg.get('batch_size')}, {cfg.get('data', {}).get('crop')} px crops; commands below), "
           "nearly all on a 2-core CPU; NAFNet's GoPro recipe trains for 200k steps of batch 32 on GPUs. Rerun the same "
           "command with more `--iters` (or on a GPU) for a stronger default.")
    )
    lines.append("")
    lines.append("Speed of the deblurrer alone (PyTorch eager, float32, batch 1, "
                 f"{torch.get_num_threads()} threads, median of 10):")
    lines.append("")
    lines.append("| input | ms / image | images / s (median) | images / s (best) |")
    lines.append("|---|---:|---:|---:|")
    for size, v in spd.items():
        lines.append(f"| {size} | {v['median_ms']:.1f} | {v['images_per_s']:.1f} | {v['best_images_per_s']:.1f} |")
    lines.append("")
    lines.append(f"Examples (`benchmarks/out/{grid_path.name}`, 144 px centre crops): kernel-bank shake on kodim03, "
                 "KAIR motion kernel 9 on kodim07, k_large_1 on chelsea.")
    lines.append("")
    lines.append(f"![deblurrer examples](benchmarks/out/{grid_path.name})")
    reproduce = meta.get("reproduce")
    if reproduce:
        lines.append("")
        lines.append("Reproduce the shipped weights (see `b2b_train/weights/README.md`):")
        lines.append("")
        lines.append("```")
        lines.append(reproduce)
        lines.append("```")
    md = "\n".join(lines)
    print(md)
    print(f"\n(quality pass {quality_s:.0f}s)")
    (out_dir / "deblurrer.json").write_text(json.dumps({"sets": sets, "kernels": kernel_rows, "speed": spd}, indent=2, default=str))
    if not args.no_write:
        update_section("deblurrer", md)
        print("wrote BENCHMARKS.md section 'deblurrer'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
