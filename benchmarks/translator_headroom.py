"""How much can a translator give on the quality benchmark's camera, and does the GAN point there?

Three measurements, for the question the translator issue asks before any long run ("measure before
you train"):

* **honest ceiling** - the test frames' ground truth blurred with the known blur at a few extents,
  with and without this camera's own sensor noise, then deblurred (``quality.ceiling``): what a
  perfect B->K mapping could reach;
* **translator oracle** - the cpu-quick generator trained *with* the camera's pairs through the
  frozen deblurrer (``quality.translator_oracle``): the most this generator in front of this
  deblurrer gives, and how far it moves the frames (G(y) vs y);
* **alignment** - a high-pass discriminator trained alone on K against the camera's blurry frames
  (G = identity), then asked to score the test frames, the oracle's G(B) and any ``--translator``:
  if the oracle's frames score as more K-like than the input, the adversarial objective rewards the
  change that helps, and a GAN that fails is failing to follow it, not following the wrong signal.

    python benchmarks/translator_headroom.py --work runs/quality --translator runs/t16/hp-a/translator.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmarks._report import header, update_section  # noqa: E402


def _tiles(x: torch.Tensor, s: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return torch.cat([x[..., i : i + s, j : j + s] for i in range(0, h - s + 1, s) for j in range(0, w - s + 1, s)])


def alignment(work: Path, known: str, translators: dict[str, Path], steps: int, crop: int, n_test: int) -> dict:
    """Train a high-pass D on K (from S) vs B, then score tiles of K, the test frames and each G(test)."""
    from b2b_train.blur import make_known_blur
    from b2b_train.data.io import list_images, read_image, to_tensor
    from b2b_train.metrics import psnr
    from b2b_train.nets import registry
    from b2b_train.probe import ProbeCrops, auc
    from b2b_train.trainer import load_translator

    cam = work / "camera"
    b = [read_image(p) for p in list_images(cam / "B")]
    s = [read_image(p) for p in list_images(cam / "S")]
    kb = make_known_blur(known)
    torch.manual_seed(0)
    b_crops, k_crops = ProbeCrops(b, crop, seed=0), ProbeCrops(s, crop, known=kb, seed=1)
    d = registry.build("highpass", channels=[32, 64, 64])
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    for _ in range(steps):
        loss = F.softplus(-d(k_crops(8))).mean() + F.softplus(d(b_crops(8))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    d.eval()

    def score(images):
        with torch.no_grad():
            return torch.cat([d(_tiles(x, crop)).reshape(-1, crop * crop).mean(1) for x in images])

    test = [to_tensor(read_image(p))[None] for p in list_images(cam / "test" / "blurry")[:n_test]]
    g = torch.Generator().manual_seed(5)
    known_frames = [kb(to_tensor(x)[None], g).clamp(0, 1) for x in s[::3]]
    sk, sb = score(known_frames), score(test)
    out = {"auc_k_vs_b": auc(sk, sb), "score_k": float(sk.mean()), "score_b": float(sb.mean()), "translators": {}}
    for name, path in translators.items():
        t = load_translator(path)
        with torch.no_grad():
            gy = [t(x).clamp(0, 1) for x in test]
        sg = score(gy)
        out["translators"][name] = {"auc_k_vs_gb": auc(sk, sg), "score_gb": float(sg.mean()),
                                    "psnr_gb_vs_b": float(np.mean([psnr(a, x) for a, x in zip(gy, test)]))}
    return out


def main(argv=None) -> int:
    import quality as q

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "quality"), help="quality.py's work folder for its camera")
    ap.add_argument("--budget", default="quick", choices=sorted(q.BUDGETS))
    ap.add_argument("--known", default="kernels", help="known blur the alignment's D is trained on (preset or YAML)")
    ap.add_argument("--extent", default="3-11", help="its kernel extent range (px)")
    ap.add_argument("--translator", action="append", default=[], metavar="[NAME=]FILE",
                    help="a trained translator to score for alignment and PSNR (repeatable)")
    ap.add_argument("--d-steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the translator-headroom section of BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    work = Path(args.work)
    budget = q.BUDGETS[args.budget]
    from b2b_train.probe import known_yaml, parse_extents
    from b2b_train.shipped import default_deblurrer_path

    base = default_deblurrer_path()
    ns = types.SimpleNamespace(device="cpu", no_progress=False, data=str(ROOT.parent / "shared" / "data"))
    q.make_camera(Path(ns.data), work, budget["side"], budget["step"], 0,
                  max(1, budget["max_test"] // len(q.SPLIT["test"])))
    oracle = q.translator_oracle(ns, work, budget, base)
    mt = budget["max_test"]
    alone = q.score(work, base, None, max_images=mt, device="cpu")
    named = {"oracle": oracle}
    for item in args.translator:
        name, _, path = item.rpartition("=")
        named[name or Path(path).parent.name] = Path(path)
    scores = {n: q.score(work, base, p, max_images=mt, device="cpu") for n, p in named.items()}
    (lo, hi), = parse_extents(args.extent)
    kfile = work / f"known-{lo:g}-{hi:g}.yaml"
    kfile.write_text(known_yaml(args.known, (lo, hi)))
    align = alignment(work, str(kfile), named, args.d_steps, 64, mt)
    ceil = q.ceiling(work, base, oracle, mt, "cpu")

    a = alone["psnr"]["deblur_only"]
    cmd = "python benchmarks/translator_headroom.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [header("Translator headroom on the quality camera (`translator-headroom`)", cmd), "",
          f"The quality benchmark's unknown camera (`{work}`, budget `{args.budget}`: {mt} test pairs of its held-apart "
          f"clips); deblurrer `{base.name}`: blurry input {alone['psnr']['input']:.2f} dB, deblurrer alone {a:.2f} dB.", "",
          "Honest ceiling (the test frames' ground truth under the known blur, deblurred):", "",
          "| known blur | K | deblurred | vs deblurrer alone | K + camera noise | deblurred | vs deblurrer alone |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {c['extent'][0]:g}-{c['extent'][1]:g} px | {c['psnr_k']:.2f} | {c['psnr_deblurred']:.2f} | "
           f"{c['psnr_deblurred'] - a:+.2f} | {c['psnr_k_noisy']:.2f} | {c['psnr_deblurred_noisy']:.2f} | "
           f"{c['psnr_deblurred_noisy'] - a:+.2f} |" for c in ceil if c["label"][0].isdigit()]
    md += ["", f"Alignment: a high-pass discriminator (32-64-64) trained alone for {args.d_steps} steps on K "
               f"({args.known} at {lo:g}-{hi:g} px, from S) against B scores tiles of K, of the test frames and of "
               f"each translator's output. K vs test frames AUC {align['auc_k_vs_b']:.2f} (mean score K "
               f"{align['score_k']:+.3f}, B {align['score_b']:+.3f}); a lower AUC for G(B) means G made the frames "
               "more K-like, below 0.5 more K-like than K.", "",
           "| translator | b2b PSNR | vs deblurrer alone | G(B) vs B PSNR | D's score of G(B) | K vs G(B) AUC |",
           "|---|---:|---:|---:|---:|---:|"]
    for n in named:
        r, al = scores[n], align["translators"][n]
        label = (f"oracle (trained with the camera's pairs, {budget['oracle_iters']} steps)" if n == "oracle" else n)
        md.append(f"| {label} | {r['psnr']['b2b']:.2f} | {r['psnr']['b2b'] - a:+.2f} | {al['psnr_gb_vs_b']:.1f} | "
                  f"{al['score_gb']:+.3f} | {al['auc_k_vs_gb']:.2f} |")
    md += ["", f"This run {(time.time() - t0) / 60:.1f} min (the oracle is reused once trained)."]
    text = "\n".join(md)
    print(text)
    if args.write:
        update_section("translator-headroom", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
