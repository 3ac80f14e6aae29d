"""Is an int8 ONNX Runtime engine worth having on this CPU? Static quantisation of the shipped deblurrer.

The fused engine (uint8 frame -> deblurred uint8 frame, the shipped lite deblurrer alone) is exported
to ONNX as ``b2b-stream`` builds it, then quantised statically by ONNX Runtime (weights int8 per
channel, activations uint8, MinMax calibration) on frames of the camera's own footage (the first ASL
clips), in QDQ and QOperator form, convolutions only or every supported op. Each variant is scored
on the deblurrer battery's held-apart images (``benchmarks/_deblur_battery.py``: own domain and shake
at 320x240; PSNR against the clean image, vs the fp32 engine's) and timed against the fp32 engine,
interleaved frame by frame on the same frames in one run, one inference thread (as in the pipeline).
Writes BENCHMARKS.md section ``int8-cpu``. Run it on a quiet machine.

    python benchmarks/int8_cpu.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._deblur_battery import data_root, held_apart_images, rows, score_row  # noqa: E402

VARIANTS = {  # name -> (format, ops to quantise; None = every op ONNX Runtime can quantise)
    "QDQ, Conv": ("QDQ", ["Conv"]),
    "QOperator, Conv": ("QOperator", ["Conv"]),
    "QDQ, all ops": ("QDQ", None),
}


class EngineNet(torch.nn.Module):
    """An ONNX engine seen as a network on (1, 3, H, W) floats in [0, 1], for the battery."""

    def __init__(self, engine):
        super().__init__()
        self.engine = engine
        self.dummy = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x):
        frame = (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return torch.from_numpy(self.engine(frame)).permute(2, 0, 1)[None].float() / 255


def calibration_frames(size, clips: int = 3, per_clip: int = 8, step: int = 5) -> list[np.ndarray]:
    import cv2

    from b2b_train.data.io import iter_video_frames

    out = []
    for clip in sorted((data_root() / "videos" / "asl_gestures").glob("*.mkv"))[:clips]:
        for i, _t, img in iter_video_frames(clip, max_frames=per_clip * step):
            if i % step == 0:
                out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    return out


def quantise(fp32: Path, out: Path, frames: list[np.ndarray], fmt: str, ops) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(frames)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"frames": x[None]}

    quantize_static(str(fp32), str(out), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                    calibrate_method=CalibrationMethod.MinMax)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--runs", type=int, default=30, help="timed frames per engine")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import os

    from b2b_stream.engines import OnnxEngine, export_onnx, parse_size
    from b2b_stream.fuse import FusedDeblur, net_multiple
    from b2b_train.shipped import load_default_deblurrer
    from benchmarks._report import header, update_section

    torch.set_num_threads(1)
    w, h = parse_size(args.size)
    load = os.getloadavg()[0]
    deb = load_default_deblurrer().eval()
    fused = FusedDeblur(None, deb, multiple=net_multiple(None, deb)).eval()
    calib = calibration_frames((w, h))
    images = held_apart_images()
    battery = [r for r in rows(None, w) if r.key in ("shake S", "shake M", "shake L", "KAIR motion 8-11")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="b2b-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(fused, torch.zeros(1, h, w, 3, dtype=torch.uint8), fp32)
        engines = {"fp32": OnnxEngine(fp32, device="cpu", precision="fp32", size=(w, h), threads=1)}
        for name, (fmt, ops) in VARIANTS.items():
            path = Path(tmp) / f"{fmt}-{'conv' if ops else 'all'}.onnx"
            quantise(fp32, path, calib, fmt, ops)
            engines[name] = OnnxEngine(path, device="cpu", precision="int8", size=(w, h), threads=1)
        for name, eng in engines.items():
            scores = [score_row(EngineNet(eng), r, images, w, h) for r in battery]
            results[name] = {"psnr": statistics.fmean(s["output"][0] for s in scores),
                             "input": statistics.fmean(s["input"][0] for s in scores), "times": []}
        frames = calib[: max(1, min(len(calib), 10))]
        for name, eng in engines.items():
            eng(frames[0])  # warm-up
        for k in range(args.runs):  # interleaved: every engine sees the machine in the same state
            fr = frames[k % len(frames)]
            for name, eng in engines.items():
                t = time.perf_counter()
                eng(fr)
                results[name]["times"].append(time.perf_counter() - t)
    base = results["fp32"]
    t32 = statistics.median(base["times"])
    lines = [header("Int8 ONNX Runtime engines on this CPU (`int8-cpu`)"),
             f"- CPU load average before the run: {load:.1f}", "",
             f"The shipped deblurrer alone as a fused ONNX engine at {w}x{h}, statically quantised by ONNX Runtime "
             f"(weights int8 per channel, activations uint8, MinMax) on {len(calib)} frames of the first 3 ASL clips; "
             "scored on the battery's held-apart images (shake 3-16 px and the unseen KAIR kernels at this size; mean "
             f"PSNR against the clean image, input {base['input']:.2f} dB); timed interleaved, {args.runs} frames, "
             "1 thread.", "",
             "| engine | PSNR (dB) | vs fp32 (dB) | ms / frame (median) | speed vs fp32 |",
             "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        tm = statistics.median(r["times"])
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['psnr'] - base['psnr']:+.2f} | {1000 * tm:.1f} | {t32 / tm:.2f}x |")
    faster = [n for n, r in results.items() if n != "fp32" and statistics.median(r["times"]) < t32
              and r["psnr"] >= base["psnr"] - 0.1]
    lines += ["", ("Variants faster than fp32 and within 0.1 dB: " + ", ".join(faster)) if faster else
              "No int8 variant is both faster than fp32 and within 0.1 dB of it here, so b2b does not offer one "
              "(issue 14 asks for int8 only where it wins)."]
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        update_section("int8-cpu", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
