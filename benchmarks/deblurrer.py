"""Benchmark of the shipped known-blur deblurrers: the battery at 320x240 and 640x480, flicker, speed.

Quality (paper protocol PSNR/SSIM, 8-bit RGB) on images never used in training, at the frame sizes
b2b runs at, one row per question (``benchmarks/_deblur_battery.py``): the deblurrer's own known
domain, camera shake by extent (extents follow the frame size), measured kernels it never saw, an
oversize blur, and inputs that must not get worse (sharp, noisy, JPEG, grayscale, dark).

Temporal stability: on consecutive frames of static-camera clips, the frame-to-frame change of the
output on static pixels (where the input barely changes) against that of the input; a ratio above 1
is flicker the deblurrer adds. Speed: images/s of the deblurrer at 320x240 and 640x480 (and
1280x720 on CUDA). Writes BENCHMARKS.md section ``deblurrer`` and
``benchmarks/out/deblurrer_examples.png``.

    python benchmarks/deblurrer.py                      # the shipped weights
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

# The speed table interleaves torch eager with the engines: OpenMP threads that keep spinning after each
# eager call would take the cores from onnxruntime's next run (measured: about half its quiet speed).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b2b_train.data.io import iter_video_frames, read_image, save_grid, to_tensor  # noqa: E402
from benchmarks._deblur_battery import (  # noqa: E402
    HELD_APART,
    battery_table,
    data_root,
    fit,
    held_apart_images,
    rows,
    run_battery,
)

FLICKER_CLIPS = ("videos/asl_gestures/again.mkv", "videos/asl_gestures/milk.mkv", "videos/misc/carphone_pristine.mp4")
STATIC_LEVEL = 2.0 / 255  # a pixel is static where the (3x3-smoothed) input changes less than this


def load_net(weights: str | None, device):
    from b2b_train.shipped import default_deblurrer_path, resolve_deblurrer

    path = Path(weights) if weights else default_deblurrer_path()
    return resolve_deblurrer(str(path), device=device), path


def own_domain(meta: dict) -> str | None:
    """The known-blur preset or file the weights were trained on, if it can be found here."""
    from b2b_train.config import configs_root

    known = meta.get("known") or meta.get("config", {}).get("known")
    if not known:
        return None
    if (configs_root() / "known" / f"{known}.yaml").exists() or Path(known).exists():
        return known
    return None


@torch.no_grad()
def flicker(net, device, size=(320, 240), frames: int = 40) -> dict:
    """Mean |frame-to-frame change| on static pixels: output over input, per clip and overall."""
    w, h = size
    per = {}
    for rel in FLICKER_CLIPS:
        path = data_root() / rel
        if not path.exists():
            continue
        prev_in = prev_out = None
        din, dout = [], []
        for _, _, img in iter_video_frames(path, max_frames=frames):
            x = fit(to_tensor(img)[None], w, h).to(device)
            o = torch.round(net(x).float().clamp(0, 1) * 255) / 255
            if prev_in is not None:
                change = F.avg_pool2d((x - prev_in).abs().mean(1, keepdim=True), 3, 1, 1)
                static = change < STATIC_LEVEL
                if static.sum() > 100:
                    din.append(float((x - prev_in).abs().mean(1, keepdim=True)[static].mean()))
                    dout.append(float((o - prev_out).abs().mean(1, keepdim=True)[static].mean()))
            prev_in, prev_out = x, o
        if din:
            per[Path(rel).name] = {"input": statistics.fmean(din) * 255, "output": statistics.fmean(dout) * 255,
                                   "pairs": len(din)}
    for v in per.values():
        v["ratio"] = v["output"] / max(v["input"], 1e-9)
    return per


def speed(net, device, runs: int = 10) -> dict:
    """Median time per image of the network in PyTorch eager and, on the CPU, as the onnxruntime
    engine ``b2b-stream run`` builds (uint8 frame in, uint8 frame out), interleaved in one run so
    their ratio is comparable even on a busy machine."""
    img = to_tensor(read_image(data_root() / "images/kodak/kodim05.png"))[None].to(device)
    sizes = [(320, 240), (640, 480)] + ([(1280, 720)] if device.type == "cuda" else [])
    out = {}
    for w, h in sizes:
        x = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
        frame = (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()[None]
        variants = {"torch eager": lambda: net(x)}
        engine = _cpu_engine(net, (w, h)) if device.type == "cpu" else None
        if engine is not None:
            variants["onnxruntime engine"] = lambda: engine.run(frame)
        bf16 = _cpu_engine(net, (w, h), backend="torch", precision="bf16") if device.type == "cpu" else None
        if bf16 is not None and bf16.precision == "bf16":  # only where the CPU has native bf16
            variants["torch bf16 engine (TorchScript)"] = lambda: bf16.run(frame)
        times = {k: [] for k in variants}
        with torch.no_grad():
            for fn in variants.values():
                for _ in range(2):
                    fn()
            for _ in range(runs):
                for k, fn in variants.items():
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t = time.perf_counter()
                    fn()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times[k].append(time.perf_counter() - t)
        base = statistics.median(times["torch eager"])
        for k, ts in times.items():
            med = statistics.median(ts)
            out.setdefault(f"{w}x{h}", {})[k] = {"median_ms": med * 1000, "images_per_s": 1.0 / med,
                                                 "best_images_per_s": 1.0 / min(ts), "vs_eager": base / med}
    return out


def _cpu_engine(net, size, backend: str = "onnxruntime", precision: str = "fp32"):
    """The shipped-deblurrer-alone engine at ``size`` (default: onnxruntime), or None without that backend."""
    import copy

    from b2b_stream.engines import get_engine
    from b2b_train.errors import B2BError

    try:
        return get_engine(None, backend=backend, precision=precision, device="cpu", size=size, deblurrer=copy.deepcopy(net).float(),
                          cache=False, check=False)
    except (B2BError, ImportError) as e:
        print(f"no {backend} engine: {e}")
        return None


@torch.no_grad()
def examples(net, known: str | None, path: Path, label: str) -> None:
    """Blurry | deblurred | sharp crops at 320x240: own domain, unseen KAIR kernel, JPEG input."""
    images = dict(held_apart_images())
    battery = {r.key: r for r in rows(known, 320)}
    picks = [("own domain", "kodim03.png"), ("KAIR motion 8-11", "kodim07.png"), ("JPEG quality 40-60", "flower.jpg")]
    grid = []
    g = torch.Generator().manual_seed(7)
    for key, name in picks:
        row = battery.get(key)
        if row is None:
            continue
        clean = fit(images[name], 320, 240)
        fn = row.degrade[1] if isinstance(row.degrade, list) else row.degrade
        y = fn(clean, g)
        o = net(y.to(next(net.parameters()).device)).float().clamp(0, 1).cpu()
        c = 160
        crop = lambda t: t[0, :, 40 : 40 + c, 80 : 80 + c]  # noqa: E731
        grid.append([crop(y), crop(o), crop(clean)])
    save_grid(path, grid, labels=["input", label, "sharp"], max_cell=160)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="deblurrer weights (default: the shipped file)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net, wpath = load_net(args.weights, device)
    from b2b_train.checkpoint import read_meta

    meta = read_meta(wpath)
    known = own_domain(meta)
    t0 = time.time()
    results = run_battery(net, known)
    quality_s = time.time() - t0
    flick = flicker(net, device)
    spd = speed(net, device)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_path = out_dir / "deblurrer_examples.png"
    examples(net, known, grid_path, str(meta.get("net")))

    from benchmarks._report import header, update_section

    cmd = "python benchmarks/deblurrer.py" + (f" --weights {args.weights}" if args.weights else "")
    total_steps = sum(int(st.get("steps", 0)) for st in meta.get("stages", [])) or meta.get("steps")
    lines = [header("deblurrer: shipped known-blur deblurrer", cmd)]
    try:
        lines.append(f"- CPU load average during the run: {os.getloadavg()[0]:.1f}")
    except OSError:
        pass
    rel = wpath.relative_to(ROOT) if wpath.is_relative_to(ROOT) else wpath
    lines.append(f"- Weights: `{rel}` ({meta.get('net')}, {wpath.stat().st_size / 1e6:.1f} MB, "
                 f"{meta.get('storage', 'float32')} storage), {total_steps} training steps; own domain `{known}`")
    lines.append("- Held-apart images (never trained on): " + ", ".join(f"`{Path(p).name}`" for p in HELD_APART)
                 + ", scaled and centre-cropped to each frame size; blur in linear light (gamma 2.2), 8-bit output; "
                 "rows and their degradations: `benchmarks/_deblur_battery.py`")
    lines.append("")
    lines += battery_table(results, label=str(meta.get("net")))
    lines.append("")
    lines.append(f"Temporal stability (first 40 frames at 320x240; mean |frame-to-frame change| in 8-bit levels on "
                 f"static pixels, where the smoothed input changes by < {STATIC_LEVEL * 255:.0f} levels; ratio > 1 = "
                 "flicker added; the clips' frames 0, 12, ... 60 were among the training images):")
    lines.append("")
    lines.append("| clip | frame pairs | input change | output change | ratio |")
    lines.append("|---|---:|---:|---:|---:|")
    for name, v in flick.items():
        lines.append(f"| {name} | {v['pairs']} | {v['input']:.3f} | {v['output']:.3f} | {v['ratio']:.2f} |")
    lines.append("")
    lines.append(f"Speed of the deblurrer alone (batch 1, {args.device}, {torch.get_num_threads()} threads, "
                 "median of 10 interleaved runs; engines take a uint8 frame and return one; `b2b-stream run` "
                 "times the onnxruntime engine, torch fp32 and, where the CPU has native bf16, the torch bf16 "
                 "engine once per size and keeps the fastest):")
    lines.append("")
    lines.append("| input | runtime | ms / image | images / s (median) | images / s (best) | speed vs eager |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for size, per in spd.items():
        for k, v in per.items():
            lines.append(f"| {size} | {k} | {v['median_ms']:.1f} | {v['images_per_s']:.1f} | "
                         f"{v['best_images_per_s']:.1f} | {v['vs_eager']:.2f}x |")
    lines.append("")
    lines.append(f"Examples (`benchmarks/out/{grid_path.name}`, 160 px crops at 320x240): own domain on kodim03, "
                 "KAIR motion kernel 9 on kodim07, JPEG quality 40-60 on flower.")
    lines.append("")
    lines.append(f"![deblurrer examples](benchmarks/out/{grid_path.name})")
    if meta.get("reproduce"):
        lines += ["", "Reproduce these weights (see `b2b_train/weights/README.md`):", "", "```", meta["reproduce"], "```"]
    md = "\n".join(lines)
    print(md)
    print(f"\n(quality pass {quality_s:.0f}s)")
    (out_dir / "deblurrer.json").write_text(json.dumps(
        {"weights": str(rel), "battery": results, "flicker": flick, "speed": spd}, indent=1, default=str))
    if not args.no_write:
        update_section("deblurrer", md)
        print("wrote BENCHMARKS.md section 'deblurrer'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
