"""The lite profile: one distilled network vs translator + deblurrer, speed and fidelity, on this CPU.

(a) Speed at 320×240 (``--size``), batch 1, in one run with interleaved rounds (load changes on a
shared machine hit every variant alike): the fused two-network engine (translator ``mimo-unet-lite``
+ deblurrer ``nafnet-lite``) vs the lite student alone (``nafnet-lite``), each in torch eager and
onnxruntime, with 1 and 2 threads; fps and the ratio lite / two networks. Speed does not depend on
the weights; the networks are the profile's (``--profile``), or the given translator + the shipped
deblurrer, or random ``mimo-unet-lite`` + the shipped deblurrer.

(b) Fidelity, with ``--translator CKPT`` (a trained translator): distils deblurrer∘translator into the
student on real ASL-clip frames at the benchmark size (the last clip's frames held apart) and reports
PSNR(student, teacher) against the baseline PSNR(deblurrer alone, teacher) along the run, and the
seconds it took. With ``--profile NAME`` (calibrated with ``--lite``): the numbers recorded in the
profile's ``lite.safetensors``, recomputed on its held-apart frames.

Writes the BENCHMARKS.md section ``lite`` (``--no-write`` to only print).

    python benchmarks/lite.py --translator runs/cam/translator.safetensors --iters 600
    python benchmarks/lite.py --profile desk
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed import real_frames  # noqa: E402
from b2b_stream.engines import TorchEngine, compare_frames, get_engine  # noqa: E402
from b2b_stream.fuse import FusedDeblur, net_multiple  # noqa: E402


def asl_frames(size, clips: int = 6, per_clip: int = 8, step: int = 4) -> list[np.ndarray]:
    import cv2

    from b2b_train.data.io import iter_video_frames

    data = Path(os.environ.get("B2B_DATA") or ROOT.parent / "shared" / "data")
    out = []
    for clip in sorted((data / "videos" / "asl_gestures").glob("*.mkv"))[:clips]:
        for _, _, img in iter_video_frames(clip, step=step, max_frames=per_clip):
            out.append(np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA)))
    return out


def networks(args):
    """(translator, deblurrer, student, description)."""
    from b2b_train.nets import registry
    from b2b_train.shipped import resolve_deblurrer
    from b2b_train.nets.translator_io import load_translator

    db = resolve_deblurrer("default")
    if args.profile:
        from b2b_stream.engines import _open_profile, profile_networks

        prof = _open_profile(args.profile, args.home)
        tr, db = profile_networks(prof)
        _, st = profile_networks(prof, lite=True)
        return tr, db, st, f"profile `{args.profile}`"
    if args.translator:
        tr = load_translator(args.translator)
        desc = f"translator `{args.translator}`"
    else:
        torch.manual_seed(0)
        tr = registry.build("mimo-unet-lite").eval()
        desc = "random `mimo-unet-lite`"
    import copy

    return tr, db, copy.deepcopy(db), desc + " + shipped `nafnet-lite`; student = a `nafnet-lite` (same architecture)"


def speed(tr, db, st, size, rounds: int, threads_list: list[int]) -> list[tuple]:
    w, h = size
    frames = real_frames((w, h))
    home = Path(tempfile.mkdtemp(prefix="b2b-lite-"))
    m2 = net_multiple(tr, db)
    m1 = net_multiple(st)
    variants: dict[tuple, object] = {}
    for th in threads_list:
        torch.set_num_threads(th)
        for label, t, d, m in (("translator + deblurrer", tr, db, m2), ("lite student", None, st, m1)):
            variants[(label, "torch eager", th)] = TorchEngine(FusedDeblur(t, d, multiple=m).eval(),
                                                               device=torch.device("cpu"), precision="fp32",
                                                               mode="eager", size=(w, h))
            try:
                variants[(label, "onnxruntime", th)] = get_engine(None, backend="onnxruntime", size=(w, h),
                                                                  translator=t, deblurrer=d, multiple=m,
                                                                  home=home, check=False, say=lambda s: None)
            except Exception as e:  # onnxruntime missing
                print(f"onnxruntime skipped: {e}")
    refs = {}
    for k, fn in variants.items():  # warm-up, and agreement of each backend with torch eager
        torch.set_num_threads(k[2])
        out = fn(frames[0])
        refs.setdefault((k[0], k[2]), out)
        fn(frames[1])
    times: dict[tuple, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for k, fn in variants.items():
            torch.set_num_threads(k[2])
            img = frames[r % len(frames)]
            t0 = time.perf_counter()
            fn(img)
            times[k].append(time.perf_counter() - t0)
    rows = []
    for k in variants:
        med = statistics.median(times[k])
        two = statistics.median(times[("translator + deblurrer", k[1], k[2])])
        agree = compare_frames(variants[k](frames[0]), refs[(k[0], k[2])])["max_abs"]
        rows.append((k[0], k[1], k[2], 1 / med, med * 1000, two / med, agree))
        print(f"{k[0]:24s} {k[1]:12s} {k[2]} thr {1 / med:7.2f} fps {med * 1000:8.1f} ms  x{two / med:.2f}")
    return rows


def fidelity_by_distilling(tr, db, size, iters: int, threads: int, work: Path) -> dict:
    from b2b_train.distill import distill
    from b2b_train.trainutil import CsvLogger

    frames = asl_frames(size)
    res = distill(tr, db, frames, work, iters=iters, threads=threads, progress=False, max_frames=len(frames),
                  val_frames=6, val_every=max(1, iters // 6), fresh=True)
    curve = [(int(float(r["step"])), float(r["val_psnr"])) for r in CsvLogger(work / "log.csv").read() if r.get("val_psnr")]
    return {**res, "curve": curve, "n_frames": len(frames)}


def fidelity_of_profile(args) -> dict:
    from b2b_train.checkpoint import read_meta
    from b2b_train.data.io import to_tensor
    from b2b_train.distill import DistillConfig, load_blurry_frames, teacher_fn
    from b2b_train.metrics import psnr
    from b2b_stream.engines import _open_profile, profile_networks

    prof = _open_profile(args.profile, args.home)
    meta = read_meta(prof.lite_path)
    cfg = meta.get("config") or {}
    d = DistillConfig()
    frames, _ = load_blurry_frames(prof.clips_dir("blurry"), cfg.get("max_frames", d.max_frames),
                                   cfg.get("frame_step", d.frame_step), cfg.get("max_side", d.max_side))
    val = frames[-cfg.get("val_frames", d.val_frames):]
    tr, db = profile_networks(prof)
    _, st = profile_networks(prof, lite=True)
    teacher = teacher_fn(tr, db)
    ps, pb = [], []
    with torch.no_grad():
        for f in val:
            x = to_tensor(f)[None]
            t = (teacher(x) * 255).round() / 255
            ps.append(psnr(st(x).clamp(0, 1), t))
            pb.append(psnr(db(x).clamp(0, 1), t))
    return {"recorded": meta.get("distillation"), "psnr_student": float(np.mean(ps)), "psnr_baseline": float(np.mean(pb)),
            "n_val": len(val), "size": list(val[0].shape[1::-1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--profile", default=None, help="a profile calibrated with --lite")
    ap.add_argument("--home", default=None)
    ap.add_argument("--translator", default=None, help="a trained translator: distil on ASL frames and report fidelity")
    ap.add_argument("--iters", type=int, default=600, help="distillation steps with --translator")
    ap.add_argument("--rounds", type=int, default=12, help="timed frames per variant")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--distill-threads", type=int, default=1, help="threads for the distillation (--translator)")
    ap.add_argument("--work", default=None, help="distillation folder (default: a temporary one)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    threads_list = [int(t) for t in args.threads.split(",")]
    load_start = os.getloadavg()
    tr, db, st, desc = networks(args)

    fid = None
    if args.translator and not args.profile:
        work = Path(args.work or tempfile.mkdtemp(prefix="b2b-lite-distill-"))
        torch.set_num_threads(args.distill_threads)
        fid = fidelity_by_distilling(tr, db, (w, h), args.iters, args.distill_threads, work)
        from b2b_train.nets import registry

        st, _ = registry.load_from_file(fid["weights"])
    elif args.profile:
        fid = fidelity_of_profile(args)
    rows = speed(tr, db, st, (w, h), args.rounds, threads_list)
    load_end = os.getloadavg()

    from benchmarks._report import header, update_section

    cmd = "python benchmarks/lite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        header("Lite profile: one distilled network vs translator + deblurrer (`lite`)", cmd.strip()),
        "",
        f"Networks: {desc}. {w}x{h}, batch 1, real ASL-clip frames; median of {args.rounds} interleaved frames "
        f"per variant; ratio = lite fps / two-network fps for the same backend and threads, measured in the same run. "
        f"Load average (1/5/15 min) at the start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
        f"at the end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f} on {os.cpu_count()} cores "
        "(above the thread count means other jobs shared the cores: ratios are the comparable part).",
        "",
        "| network(s) | backend | threads | fps | ms/frame | ratio to two networks | max Δ vs torch eager (levels) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, backend, th, fps, ms, ratio, agree in sorted(rows, key=lambda r: (r[2], r[1], r[0])):
        lines.append(f"| {label} | {backend} | {th} | {fps:.2f} | {ms:.1f} | {ratio:.2f} | {agree} |")
    if fid is not None and "curve" in fid:
        lines += [
            "",
            f"Fidelity (distilled here: `b2b_train.distill`, {fid['steps']} steps of {fid['frames']['train']} training "
            f"frames, {args.distill_threads} thread(s), {fid['seconds']:.0f} s of training, "
            f"{fid['seconds_total_session']:.0f} s with reading frames and the teacher's targets): "
            f"{fid['n_frames']} ASL frames at {w}x{h} from 6 clips, the last {fid['frames']['val']} "
            "(of the last clip, unseen in training) held apart. PSNR against the two-network output "
            "(8-bit, peak 255, whole frames):",
            "",
            "| | PSNR vs translator + deblurrer (dB) |",
            "|---|---:|",
            f"| deblurrer alone (baseline, the student's start) | {fid['psnr_baseline']:.2f} |",
        ]
        for s, v in fid["curve"]:
            lines.append(f"| student after {s} steps | {v:.2f} |")
    elif fid is not None:
        rec = fid.get("recorded") or {}
        lines += [
            "",
            f"Fidelity of profile `{args.profile}`'s student on its {fid['n_val']} held-apart blurry frames "
            f"({fid['size'][0]}x{fid['size'][1]}): {fid['psnr_student']:.2f} dB vs translator + deblurrer "
            f"(deblurrer alone {fid['psnr_baseline']:.2f} dB); recorded at calibration: "
            f"{rec.get('psnr_student')} dB after {rec.get('steps')} steps in {rec.get('seconds')} s.",
        ]
    md = "\n".join(lines) + "\n"
    print(md)
    if not args.no_write:
        print("wrote", update_section("lite", md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
