"""Does the translator prior help? The deblurrer alone against deblurrer ∘ prior, with and without a
fine-tune on the camera, on the quality benchmark's unknown camera and on the deblurrer battery.

The prior (``b2b_train/prior.py``) is trained on sharp clips through random simulated cameras. It
must never see the quality camera's test clips, so its clips are the footage minus
``quality.SPLIT["test"]``; the quality camera's B and S clips are among them (as sharp footage
through *other* simulated cameras, never this camera's blur process), which a real user's camera
would not share: read the camera rows as "a camera of the family the prior was trained on".
The battery rows (held-apart photos, measured and synthetic shake kernels, noise, JPEG) are the
check that the prior does not hurt blur it was not trained on.

Rows, per test clip and overall (all test frames of the camera, ``make_camera(test_per_clip=0)``):

* deblurrer alone;
* deblurrer ∘ prior (no training on the camera);
* deblurrer ∘ prior fine-tuned on the camera's B and S (``--finetune``: the ``cpu-quick`` recipe
  from ``model.init=PRIOR`` with ``loss.content_anchor=init`` and ``--set`` overrides);
* any ``--translator LABEL=FILE`` given (e.g. the identity-started cpu-quick run of quality.py).

    python benchmarks/translator_prior.py --prior runs/prior/translator-prior.safetensors --finetune
    python benchmarks/translator_prior.py --train-prior --prior-iters 3000   # trains the prior first
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, update_section  # noqa: E402
from benchmarks.quality import SPLIT, make_camera  # noqa: E402


def prior_clips(data: Path) -> list[Path]:
    """Every clip of the footage except the quality camera's test clips."""
    test = {Path(n).name for n in SPLIT["test"]}
    clips = sorted(p for p in (data / "videos").rglob("*") if p.suffix in (".mkv", ".mp4") and p.stem not in test)
    return clips


def per_clip(res: dict, key: str) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for p in res["per_image"]:
        clip = p["name"].rsplit("_", 1)[0]
        v = p["psnr"][key]
        out.setdefault(clip, []).append(99.0 if v is None else v)
    return {k: statistics.fmean(v) for k, v in sorted(out.items())}


class Composed(torch.nn.Module):
    """deblurrer ∘ translator as one module (for the battery, which takes a single network)."""

    def __init__(self, translator, deblurrer):
        super().__init__()
        self.translator, self.deblurrer = translator, deblurrer

    def forward(self, x):
        return self.deblurrer(self.translator(x).clamp(0, 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", default=None, help="the prior's file (default: WORK/prior/translator-prior.safetensors)")
    ap.add_argument("--train-prior", action="store_true", help="train (or resume) the prior in WORK/prior first")
    ap.add_argument("--prior-iters", type=int, default=3000)
    ap.add_argument("--prior-crop", type=int, default=96)
    ap.add_argument("--finetune", action="store_true", help="also fine-tune the prior on the camera (cpu-quick)")
    ap.add_argument("--finetune-iters", type=int, default=1000)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="translator overrides for the fine-tune (repeatable)")
    ap.add_argument("--translator", action="append", default=[], metavar="LABEL=FILE", help="extra rows")
    ap.add_argument("--work", default=str(ROOT / "runs" / "quality"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--no-battery", action="store_true", help="skip the deblurrer battery rows")
    ap.add_argument("--max-images", type=int, default=None, help="score only the first N test pairs")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--section", default="translator-prior")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from b2b_train.evaluate import evaluate
    from b2b_train.shipped import default_deblurrer_path, resolve_deblurrer
    from b2b_train.nets.translator_io import load_translator

    work, data = Path(args.work), Path(args.data)
    t0 = time.time()
    counts = make_camera(data, work, 320, 3, 0, 0)
    cam = work / "camera"
    print(f"[prior] camera: {counts}", flush=True)
    prior = Path(args.prior) if args.prior else work / "prior" / "translator-prior.safetensors"
    if args.train_prior:
        from b2b_train.prior import PriorConfig, train_prior

        cfg = PriorConfig(crop=args.prior_crop, iters=args.prior_iters, threads=args.threads)
        prior = train_prior(cfg, prior_clips(data), prior.parent, show_progress=False)
    if not prior.is_file():
        ap.error(f"prior not found: {prior} (train it with --train-prior or b2b-train prior)")
    deb_path = default_deblurrer_path("cpu")
    translators = {"deblurrer ∘ prior": prior}
    if args.finetune:
        from b2b_train.trainer import train_translator

        over = [f"model.init={prior}", "loss.content_anchor=init", f"train.threads={args.threads}", *args.overrides]
        t1 = time.time()
        translators["deblurrer ∘ prior fine-tuned (cpu-quick)"] = train_translator(
            cam / "B", cam / "S", prior.parent / "finetune", "cpu-quick", over, iters=args.finetune_iters, progress=False)
        print(f"[prior] fine-tune: {time.time() - t1:.0f} s", flush=True)
    for spec in args.translator:
        label, _, f = spec.partition("=")
        translators[label] = Path(f)

    grid = ROOT / "benchmarks" / "out" / f"{args.section.replace('-', '_')}_grid.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    results = {}
    for i, (label, f) in enumerate(translators.items()):
        results[label] = evaluate(cam / "test" / "blurry", cam / "test" / "gt", translator=str(f), deblurrer=str(deb_path),
                                  max_images=args.max_images, device="cpu", progress=False,
                                  grid=grid if i == 0 else None)
        print(f"[prior] {label}: {results[label]['psnr']['b2b']:.2f} dB", flush=True)
    first = next(iter(results.values()))
    clips = per_clip(first, "deblur_only")
    base = first["psnr"]["deblur_only"]

    md = [header(f"Translator prior (`{args.section}`)", "python benchmarks/translator_prior.py "
                 + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))), ""]
    from b2b_train.checkpoint import read_meta

    full_meta = read_meta(prior)
    meta = full_meta.get("prior", {})
    target = (full_meta.get("config") or {}).get("target", "reference")  # priors before `target` used the source frame
    md.append(f"Prior `{prior.name}` (target: the camera's {'still frame' if target == 'still' else 'source frame'}): "
              f"{meta.get('steps', '?')} steps on {meta.get('pairs', '?')} simulated pairs from "
              f"{len(meta.get('clips', []))} clips x their random cameras (its own validation: deblurrer on G(y) "
              f"{meta.get('validation', {}).get('prior', float('nan')):.2f} dB vs on y "
              f"{meta.get('validation', {}).get('deblurred', float('nan')):.2f} dB); deblurrer `{deb_path.name}`. "
              f"Camera: the quality benchmark's unknown camera, all {first['n_images']} test pairs of its "
              f"{len(clips)} held-apart clips (never seen by the prior).")
    md += ["", "| row | " + " | ".join(clips) + " | all (PSNR dB) | vs deblurrer alone |",
           "|---|" + "---:|" * (len(clips) + 2)]
    md.append("| blurry input | " + " | ".join(f"{v:.2f}" for v in per_clip(first, "input").values())
              + f" | {first['psnr']['input']:.2f} | |")
    md.append("| deblurrer alone | " + " | ".join(f"{v:.2f}" for v in clips.values()) + f" | {base:.2f} | |")
    verdicts = []
    for label, r in results.items():
        pc = per_clip(r, "b2b")
        worst = min(pc[c] - clips[c] for c in clips)
        md.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in pc.values())
                  + f" | {r['psnr']['b2b']:.2f} | {r['psnr']['b2b'] - base:+.2f} dB (worst clip {worst:+.2f}) |")
        verdicts.append((label, r["psnr"]["b2b"] - base, worst))

    if not args.no_battery:
        from benchmarks._deblur_battery import run_battery

        deb = resolve_deblurrer(str(deb_path)).eval()
        alone = run_battery(deb, None, sizes=((320, 240),))
        withp = run_battery(Composed(load_translator(prior), deb).eval(), None, sizes=((320, 240),))
        md += ["", "Deblurrer battery (held-apart photos at 320x240, `benchmarks/_deblur_battery.py`): blur and "
                   "degradations the prior was not trained on.", "",
               "| row | input PSNR | deblurrer alone | deblurrer ∘ prior | prior's effect |", "|---|---:|---:|---:|---:|"]
        for a, b in zip(alone, withp):
            md.append(f"| {a['row']} | {a['input'][0]:.2f} | {a['output'][0]:.2f} | {b['output'][0]:.2f} | "
                      f"{b['output'][0] - a['output'][0]:+.2f} dB |")
    md += ["", "Verdict: " + "; ".join(f"{lbl}: {g:+.2f} dB overall, worst clip {w:+.2f} dB" for lbl, g, w in verdicts) + ".",
           "", f"Sample grid (blurry | deblur only | deblurrer ∘ prior | ground truth): `{grid.relative_to(ROOT)}`; "
           f"this run {(time.time() - t0) / 60:.1f} min."]
    text = "\n".join(md)
    print(text)
    if not args.no_write:
        update_section(args.section, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
