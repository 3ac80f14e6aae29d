"""May a newly trained deblurrer replace the one it started from? Scored on held-apart photos.

Both networks restore the same held-apart photos (``benchmarks/_deblur_battery.py``'s HELD_APART,
never trained on), degraded once with a fixed seed by the shipped deblurrers' domain (``webcam``:
blur, sharp frames, noise, JPEG), by the default known blur and by whole-frame shake; the candidate
passes when its mean PSNR beats the reference's by at least ``--margin`` dB on ``webcam`` and loses
no more than ``--tolerance`` dB on the other two.
Prints one JSON line; exit status 0 = pass, 1 = fail, 2 = error. Runs on the CPU or a GPU.

    python benchmarks/gate_deblurrer.py --candidate gpu_back/lite/deblurrer.safetensors \
        --reference b2b_train/weights/deblurrer-lite.safetensors --images .devdata/images
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._deblur_battery import HELD_APART  # noqa: E402
from b2b_train.blur import make_known_blur  # noqa: E402
from b2b_train.data.io import read_image, to_tensor  # noqa: E402
from b2b_train.metrics import psnr  # noqa: E402
from b2b_train.nets import registry  # noqa: E402
from b2b_train.trainutil import pick_device  # noqa: E402

SEED = 2024


def find(images: Path, rel: str) -> Path:
    """``images/kodak/kodim03.png`` under ``images`` with any image extension (the campaign's are WebP)."""
    stem = Path(rel).relative_to("images").with_suffix("")
    hits = sorted((images / stem.parent).glob(stem.name + ".*"))
    if not hits:
        raise FileNotFoundError(f"held-apart image {stem} not found under {images}")
    return hits[0]


@torch.no_grad()
def score(net, pairs) -> float:
    vals = []
    for blurry, sharp in pairs:
        vals.append(psnr(net(blurry).float().clamp(0, 1), sharp))
    return sum(vals) / len(vals)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidate", required=True)
    ap.add_argument("--reference", default=None, help="weights to beat (omit for a first run: the blurry input)")
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "images"))
    ap.add_argument("--margin", type=float, default=0.02, help="dB the candidate must gain on the webcam domain")
    ap.add_argument("--tolerance", type=float, default=0.1, help="dB it may lose on the other blurs")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    try:
        sharp = [to_tensor(read_image(find(Path(args.images), p)))[None].to(device) for p in HELD_APART]
        cand = registry.load_from_file(args.candidate)[0].to(device).eval()
        ref = registry.load_from_file(args.reference)[0].to(device).eval() if args.reference else None
    except Exception as e:  # noqa: BLE001 - one clear line, exit 2
        print(json.dumps({"error": str(e)}))
        return 2
    out = {"candidate": str(args.candidate), "reference": str(args.reference), "margin_db": args.margin,
           "tolerance_db": args.tolerance, "sets": {}}
    passed = True
    for preset in ("webcam", "kernels", "kernels-uniform"):
        blur = make_known_blur(preset, device)
        g = torch.Generator(device=device).manual_seed(SEED)
        pairs = [(blur(s, generator=g).clamp(0, 1), s) for s in sharp]
        row = {"input": sum(psnr(b, s) for b, s in pairs) / len(pairs), "candidate": score(cand, pairs)}
        row["reference"] = score(ref, pairs) if ref is not None else row["input"]
        row["gain_db"] = row["candidate"] - row["reference"]
        out["sets"][preset] = {k: round(v, 3) for k, v in row.items()}
        passed = passed and row["gain_db"] >= (args.margin if preset == "webcam" else -args.tolerance)
    out["pass"] = passed
    print(json.dumps(out))
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
