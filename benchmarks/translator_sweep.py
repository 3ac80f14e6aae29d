"""Train several translator variants side by side, then score each in front of the deblurrer.

Made for the short GPU loans and for long CPU sessions, and for the question issue 4 leaves open: which settings stop the translator from harming the deblurrer
when the perceptual loss runs on random VGG features? Two steps, so the training can run where the
GPU is and the scoring where the test pairs are:

    # train (GPU machine or here): one process per variant, --parallel at a time, under a wall-clock limit
    python benchmarks/translator_sweep.py train --blurry B --sharp S --work runs/sweep \\
        --config cpu-quick --iters 1000 --limit 3600 --parallel 2 \\
        --variant base --variant lr4:loss.lambda_rec=4 --variant s1:train.seed=1

    # score (needs the test pairs): PSNR/SSIM of deblurrer alone and deblurrer ∘ each translator
    python benchmarks/translator_sweep.py score --work runs/sweep --test-blurry T/blurry --test-gt T/gt

A variant is ``NAME`` or ``NAME:KEY=VALUE;KEY=VALUE`` (config overrides, ``;``-separated because
values may hold commas). A run that reaches the limit gets SIGINT (the trainer checkpoints), and
its newest checkpoint's generator is exported, marked ``partial_run``. ``score`` writes
``sweep.json`` and, with ``--write``, the ``translator-sweep`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_variant(spec: str) -> tuple[str, list[str]]:
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise SystemExit(f"bad variant name {name!r} (letters, digits, '-', '_', '.')")
    return name, [kv.strip() for kv in rest.split(";") if kv.strip()]


def export_latest(run: Path) -> Path | None:
    """Write ``translator.safetensors`` from the newest checkpoint of an interrupted run."""
    import yaml

    from b2b_train.nets import registry
    from b2b_train.trainutil import CheckpointManager

    got = CheckpointManager(run / "checkpoints").latest(warn=print)
    if got is None:
        return None
    state, _meta = got
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    kw = cfg["model"].get("generator_kwargs") or {}
    net = registry.build(cfg["model"]["generator"], **kw)
    net.load_state_dict(state["G"])
    out = run / "translator.safetensors"
    registry.save_network(out, net.eval(), cfg["model"]["generator"], kw, config=cfg, kind="translator",
                          provenance={"steps": int(state["step"]), "partial_run": True})
    return out


def train(args) -> int:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    pending = [parse_variant(spec) for spec in args.variant]
    procs = {}
    status = {}
    t0 = time.perf_counter()

    def start(name: str, over: list[str]) -> None:
        run = work / name
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "b2b_train.cli", "translator", "--blurry", args.blurry, "--sharp", args.sharp,
               "--out", str(run), "--config", args.config, "--iters", str(args.iters), "--no-progress",
               f"train.threads={args.threads}", f"train.device={args.device}", *args.set, *over]
        (run / "command.txt").write_text(shlex.join(cmd) + "\n")
        (run / "variant.json").write_text(json.dumps({"overrides": [*args.set, *over], "config": args.config, "iters": args.iters}))
        log = open(run / "train.log", "w")
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log, run)
        print(f"[sweep] {name}: started at {time.perf_counter() - t0:.0f} s ({' '.join(over) or 'preset as is'})", flush=True)

    while pending or procs:
        over_time = time.perf_counter() - t0 > args.limit
        while pending and len(procs) < args.parallel and not over_time:
            start(*pending.pop(0))
        if over_time:
            for name, _over in pending:
                status[name] = {"rc": None, "seconds": 0.0, "weights": None, "partial": True, "skipped": "out of time"}
                print(f"[sweep] {name}: not started (out of time)", flush=True)
            pending = []
        time.sleep(2)
        for name, (p, log, run) in list(procs.items()):
            if p.poll() is None and not over_time:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # the trainer saves a checkpoint and stops
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
            rc = p.returncode
            weights = run / "translator.safetensors"
            if not weights.is_file():
                weights = export_latest(run)
            status[name] = {"rc": rc, "seconds": round(time.perf_counter() - t0, 1),
                            "weights": str(weights) if weights else None, "partial": rc != 0}
            print(f"[sweep] {name}: rc {rc} after {status[name]['seconds']} s, weights {weights}", flush=True)
            del procs[name]
    (work / "train_status.json").write_text(json.dumps(status, indent=1))
    return 0 if all(s["weights"] for s in status.values()) else 1


def score(args) -> int:
    from benchmarks._report import header, update_section
    from b2b_train.checkpoint import read_meta
    from b2b_train.evaluate import evaluate
    from b2b_train.trainutil import CsvLogger

    work = Path(args.work)
    runs = sorted(p.parent for p in work.glob("*/translator.safetensors"))
    if not runs:
        raise SystemExit(f"no trained variants under {work}")
    rows = []
    for run in runs:
        rep = evaluate(args.test_blurry, args.test_gt, translator=str(run / "translator.safetensors"),
                       deblurrer=args.deblurrer, max_images=args.max_images, device=args.device, progress=False,
                       grid=str(work / f"{run.name}_grid.png"))
        prov = read_meta(run / "translator.safetensors").get("provenance") or {}
        val = CsvLogger(run / "val.csv").read()  # blur degree of input / translated at each validation
        var = json.loads((run / "variant.json").read_text()) if (run / "variant.json").is_file() else {}
        over = [o for o in var.get("overrides", []) if o not in args.common]
        rows.append({"variant": run.name, "overrides": over, "psnr_b2b": rep["psnr"]["b2b"], "ssim_b2b": rep["ssim"]["b2b"],
                     "psnr_deblur_only": rep["psnr"]["deblur_only"], "ssim_deblur_only": rep["ssim"]["deblur_only"],
                     "delta_db": rep["psnr"]["b2b"] - rep["psnr"]["deblur_only"], "steps": prov.get("steps"),
                     "partial": bool(prov.get("partial_run")), "val": val[-1] if val else {}, "n_images": rep["n_images"]})
        print(f"[sweep] {run.name}: b2b {rep['psnr']['b2b']:.2f} dB vs deblurrer alone {rep['psnr']['deblur_only']:.2f} "
              f"({rows[-1]['delta_db']:+.2f})", flush=True)
    (work / "sweep.json").write_text(json.dumps(rows, indent=1))
    lines = [header("Translator variants side by side (`translator-sweep`)", args.command_line),
             "", args.note or "", "",
             f"Test pairs: `{args.test_blurry}` ({rows[0]['n_images']} images); deblurrer: "
             f"{'the shipped one' if args.deblurrer == 'default' else args.deblurrer}; PSNR/SSIM as `b2b-train evaluate`. Deblurrer alone: "
             f"{rows[0]['psnr_deblur_only']:.2f} dB / {rows[0]['ssim_deblur_only']:.4f}.", "",
             "| variant | overrides | steps | PSNR b2b | Δ vs deblurrer alone | SSIM b2b |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        over = " ".join(f"`{o}`" for o in r["overrides"]) or "preset"
        lines.append(f"| {r['variant']} | {over} | {r['steps'] or '?'}{' (cut)' if r['partial'] else ''} | "
                     f"{r['psnr_b2b']:.2f} | {r['delta_db']:+.2f} | {r['ssim_b2b']:.4f} |")
    md = "\n".join(lines) + "\n"
    (work / "sweep.md").write_text(md)
    print(md)
    if args.write:
        update_section(args.section, md)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--blurry", required=True)
    t.add_argument("--sharp", required=True)
    t.add_argument("--work", required=True)
    t.add_argument("--config", default="cpu-quick")
    t.add_argument("--iters", type=int, default=1000)
    t.add_argument("--variant", action="append", required=True, help="NAME or NAME:KEY=VALUE;KEY=VALUE")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant")
    t.add_argument("--limit", type=float, default=3600, help="wall-clock seconds for the whole sweep")
    t.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    t.add_argument("--parallel", type=int, default=2,
                   help="runs at once (1 on a GPU: eight processes on one H200 stalled each other, see gpu_campaign.sh)")
    t.add_argument("--device", default="auto")
    s = sub.add_parser("score")
    s.add_argument("--work", required=True)
    s.add_argument("--test-blurry", required=True)
    s.add_argument("--test-gt", required=True)
    s.add_argument("--deblurrer", default="default", help="deblurrer for every row (default: the shipped one)")
    s.add_argument("--max-images", type=int, default=None)
    s.add_argument("--device", default="cpu")
    s.add_argument("--common", action="append", default=[], metavar="KEY=VALUE",
                   help="an override every variant had (the train step's --set): left out of the table")
    s.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    s.add_argument("--section", default="translator-sweep")
    s.add_argument("--note", default="", help="a paragraph for the report (where and how the runs were trained)")
    s.add_argument("--command-line", default=None, help="the command to record (default: this one)")
    args = ap.parse_args(argv)
    return train(args) if args.cmd == "train" else score(args)


if __name__ == "__main__":
    sys.exit(main())
