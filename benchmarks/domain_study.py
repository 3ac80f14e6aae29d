"""Which known domain can a lite deblurrer master? Candidate domains trained alike, scored on one battery.

Each candidate is the default domain (``b2b_train/configs/known/kernels.yaml``) with a few
overrides (kernel extents, the uniform/varying/local/sharp mix, noise, JPEG). Every candidate
fine-tunes the same starting weights (the shipped lite deblurrer by default) with the same recipe
and budget, in parallel lanes of one thread each, resuming where a lane stopped; the weights are
scored at each budget on the battery of ``benchmarks/_deblur_battery.py`` (held-apart images at
320x240 and 640x480: the candidate's own domain, shake by extent, unseen measured kernels, sharp,
noisy and JPEG input). Writes ``benchmarks/out/<section>.json`` and BENCHMARKS.md section
``domain-study``.

    python benchmarks/domain_study.py --iters 1000 --budgets 500,1000 --lanes 2
    python benchmarks/domain_study.py --only webcam --iters 200 --budgets 200 --no-write   # one quick lane
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._deblur_battery import HELD_APART, battery_table, data_root, run_battery  # noqa: E402

# what a webcam adds to the default domain: sharp frames, stronger sensor noise, MJPEG
WEBCAM = ["spatial.p_uniform=0.45", "spatial.p_varying=0.15", "spatial.p_local=0.25", "spatial.p_sharp=0.15",
          "noise.shot=[0.0,0.0005]", "noise.read=[0.0,0.01]", "compression.p=0.5", "compression.quality=[40,95]"]
CANDIDATES = {
    "default": [],
    "webcam": WEBCAM,
    "webcam-3-15": WEBCAM + ["kernels.extent=[3.0,15.0]"],
    "webcam-no-local": [o for o in WEBCAM if "spatial" not in o]
    + ["spatial.p_uniform=0.6", "spatial.p_varying=0.25", "spatial.p_local=0.0", "spatial.p_sharp=0.15"],
}
# candidates that differ in their training images rather than their blur: extra trainer overrides.
# `upscaled` adds every image enlarged 1.5x (cubic): soft, unblurred targets, as a webcam whose optics
# or ISP soften every frame delivers, so the deblurrer learns to remove the added blur and leave a frame's
# own softness (a net trained only on crisp photos sharpens soft frames: -8 dB on kodim07 at 640x480).
CANDIDATES["webcam-upscaled"] = WEBCAM
TRAIN_EXTRAS = {"webcam-upscaled": ["data.scales=[1.0,0.5,1.5]"]}
RECIPE = ["batch_size=8", "data.crop=128", "optim.lr=0.0005", "optim.warmup=50", "data_path=batched",
          "threads=1", "keep_checkpoints=2"]


def write_domain(name: str, overrides: list[str], folder: Path) -> Path:
    from b2b_train.blur.known_blur_config import KnownBlurConfig
    from b2b_train.config import dump_yaml, load_config

    cfg = load_config(KnownBlurConfig, "kernels", overrides, kind="known")
    path = folder / f"{name}.yaml"
    path.write_text(f"# domain-study candidate {name}: kernels.yaml with {overrides}\n" + dump_yaml(cfg))
    return path


def train_lane(name: str, known: Path, out: Path, init: str, iters: int, stop_at: int | None, seed: int) -> Path:
    root = data_root()
    cmd = [sys.executable, "-c", "import sys; from b2b_train.cli import main; sys.exit(main())", "deblurrer", "--config", "shipped", "--known", str(known),
           "--sharp", str(root / "images"), "--sharp", str(root / "videos"), "--out", str(out / name),
           "--iters", str(iters), "--no-progress"]
    for p in HELD_APART:
        cmd += ["--val", str(root / p)]
    if stop_at is not None and stop_at < iters:
        cmd += ["--stop-at", str(stop_at)]
    cmd += RECIPE + TRAIN_EXTRAS.get(name, []) + [f"init={init}", f"seed={seed}", f"val_every={iters}", "ckpt_every=250"]
    log = out / f"{name}.log"
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"lane {name} failed (rc {rc}); see {log}")
    final = out / name / "deblurrer.safetensors"
    if stop_at is None or stop_at >= iters:
        return final
    ckpts = sorted((out / name / "checkpoints").glob("*.safetensors"))
    return ckpts[-1]


def load_net(path: Path):
    """The deblurrer of a weights file or of a training checkpoint (its ``model`` state)."""
    from b2b_train.checkpoint import load_state, read_meta
    from b2b_train.nets import registry
    from b2b_train.shipped import resolve_deblurrer

    meta = read_meta(path)
    if meta.get("kind") != "deblurrer-train-state":
        return resolve_deblurrer(str(path))
    state, meta = load_state(path)
    net = registry.build(meta["config"]["net"])
    net.load_state_dict(state["model"])
    return net.eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=1000, help="schedule length of every candidate")
    ap.add_argument("--budgets", default="500,1000", help="steps at which the weights are scored")
    ap.add_argument("--lanes", type=int, default=2, help="candidates trained at once (one thread each)")
    ap.add_argument("--init", default=str(ROOT / "b2b_train/weights/deblurrer-lite.safetensors"))
    ap.add_argument("--only", action="append", default=[], help="candidate names to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "domain-study"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--section", default="domain-study", help="BENCHMARKS.md section to write")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    names = args.only or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        ap.error(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    out = Path(args.out)
    (out / "domains").mkdir(parents=True, exist_ok=True)
    domains = {n: write_domain(n, CANDIDATES[n], out / "domains") for n in names}
    torch.set_num_threads(2)
    from b2b_train.shipped import resolve_deblurrer

    t0 = time.time()
    start = resolve_deblurrer(args.init)
    common = run_battery(start, None)  # the same weights: only the own-domain row differs
    results = {"start": {n: run_battery(start, str(domains[n]), only=("own",)) + common for n in names}}
    for b in budgets:
        with ThreadPoolExecutor(args.lanes) as pool:
            futs = {n: pool.submit(train_lane, n, domains[n], out, args.init, args.iters, b, args.seed) for n in names}
            weights = {n: f.result() for n, f in futs.items()}
        results[str(b)] = {n: run_battery(load_net(w), str(domains[n])) for n, w in weights.items()}
        print(f"budget {b}: scored {len(weights)} candidate(s) at {time.time() - t0:.0f}s", flush=True)
    (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "out" / f"{args.section.replace('-', '_')}.json").write_text(json.dumps(
        {"candidates": {n: CANDIDATES[n] for n in names}, "train_extras": {n: TRAIN_EXTRAS.get(n, []) for n in names}, "recipe": RECIPE, "iters": args.iters, "init": args.init,
         "results": results}, indent=1))
    md = report(names, budgets, results, args, time.time() - t0)
    print(md)
    if not args.no_write:
        from benchmarks._report import update_section

        update_section(args.section, md)
    return 0


def _summary(res: list[dict]) -> dict:
    """Mean gain per row name over the frame sizes."""
    by = {}
    for r in res:
        by.setdefault(r["key"], []).append(r["gain"])
    return {k: sum(v) / len(v) for k, v in by.items()}


def report(names, budgets, results, args, seconds) -> str:
    from benchmarks._report import header

    cmd = (f"python benchmarks/domain_study.py --iters {args.iters} --budgets {','.join(map(str, budgets))} "
           f"--lanes {args.lanes}" + "".join(f" --only {n}" for n in args.only)
           + (f" --section {args.section}" if args.section != "domain-study" else ""))
    lines = [header(f"{args.section}: which known domain a lite deblurrer masters", cmd), ""]
    lines.append(f"Every candidate fine-tunes `{Path(args.init).name}` with one recipe ({' '.join(RECIPE)}, "
                 f"cosine over {args.iters} steps, seed {args.seed}) on the photos and clip frames of `../shared/data` "
                 f"minus the held-apart images, and is scored on the battery of `benchmarks/_deblur_battery.py` "
                 f"(held-apart images, 320x240 and 640x480; shake extents scale with the frame). {seconds / 60:.0f} min.")
    lines.append("")
    for n in names:
        lines.append(f"- `{n}`: kernels.yaml" + (f" with `{' '.join(CANDIDATES[n])}`" if CANDIDATES[n] else "")
                     + (f"; trained with `{' '.join(TRAIN_EXTRAS[n])}`" if n in TRAIN_EXTRAS else ""))
    lines.append("")
    cols = list(_summary(results["start"][names[0]]).keys())
    lines.append("Mean gain over the input (dB, both frame sizes) by row; `own domain` is each candidate's own blur; "
                 "shake S/M/L: 3-6/6-10/10-16 px at 320x240, twice that at 640x480:")
    lines.append("")
    lines.append("| candidate | steps | " + " | ".join(cols) + " |")
    lines.append("|---|---:|" + "---:|" * len(cols))
    for n in names:
        for b in ["start"] + [str(b) for b in budgets]:
            s = _summary(results[b][n])
            lines.append(f"| {n} | {0 if b == 'start' else b} | " + " | ".join(f"{s.get(c, float('nan')):+.2f}" for c in cols) + " |")
    last = str(budgets[-1])
    for n in names:
        lines += ["", f"`{n}` after {last} steps:", ""] + battery_table(results[last][n])
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
