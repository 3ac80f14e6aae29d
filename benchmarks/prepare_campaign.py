"""Prepare ``.devdata/``: everything a lent GPU needs for ``benchmarks/gpu_campaign.sh``, in one folder.

The GPU machine receives only a copy of the repository (no ``../shared``, no PyAV), and the copy with
its carried folders may be at most 64 MiB. This writes, as lossless WebP (the photos' exact pixels at
about 3/4 of their PNG size):

- ``images/``: the sharp photos of ``../shared/data/images`` (training and held-apart validation);
- ``frames/``: a few frames of every clip (the webcam look in the deblurrers' training);
- ``cam/{B,S}``: evenly spaced blurry and sharp frames of the quality benchmark's unknown camera at
  the quick budget (``benchmarks/quality.py``), for the translator experiments and the translator
  speed case (its test frames stay here: translators are scored here, on the CPU);
- ``resume/``: the newest weights earlier campaigns brought back for runs that do not ship yet
  (``resume/deblurrer-mid.safetensors``), copied from ``--resume`` when given.

    python benchmarks/prepare_campaign.py                  # then: device run, carry [".devdata"]
    python benchmarks/prepare_campaign.py --resume gpu_back/mid/deblurrer.safetensors

It fails when the folder is over its size budget (default 44 MiB: the repository itself, with the
shipped weights and the hand model, takes about 17 of the 64).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 2**20


def write_webp(path: Path, rgb) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".webp", rgb[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101 = lossless
    if not ok:
        raise SystemExit(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def folder_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / ".devdata"))
    ap.add_argument("--frames-per-clip", type=int, default=2)
    ap.add_argument("--cam-frames", type=int, nargs=2, default=(48, 32), metavar=("B", "S"),
                    help="camera frames kept (evenly spaced; noisy frames compress poorly)")
    ap.add_argument("--resume", action="append", default=[], metavar="FILE",
                    help="weights to resume from (deblurrer-mid: a nafnet-mid file); may repeat")
    ap.add_argument("--budget-mib", type=float, default=44.0)
    args = ap.parse_args(argv)

    from b2b_train.checkpoint import read_meta
    from b2b_train.data.io import iter_video_frames, list_images, read_image

    data, out = Path(args.data), Path(args.out)
    if not (data / "images").is_dir():
        raise SystemExit(f"no images folder in {data} (pass --data)")
    for sub in ("images", "frames", "cam"):
        shutil.rmtree(out / sub, ignore_errors=True)
    n_img = 0
    for p in list_images(data / "images"):
        rel = p.relative_to(data / "images").with_suffix(".webp")
        write_webp(out / "images" / rel, read_image(p))
        n_img += 1
    clips = sorted(q for q in (data / "videos").rglob("*") if q.suffix.lower() in (".mkv", ".mp4", ".avi", ".mov"))
    n_fr = 0
    for c in clips:
        frames = list(iter_video_frames(c, step=12, max_frames=2 * args.frames_per_clip))[:: 2][: args.frames_per_clip]
        for i, _t, im in frames:
            write_webp(out / "frames" / f"{c.stem}_{i:04d}.webp", im)
            n_fr += 1

    from benchmarks.quality import BUDGETS, make_camera

    quick = BUDGETS["quick"]
    work = out / "_camera_work"
    shutil.rmtree(work, ignore_errors=True)
    make_camera(data, work, quick["side"], quick["step"], test_per_clip=1)
    cam = work / "camera"
    for sub, keep in zip(("B", "S"), args.cam_frames):
        files = list_images(cam / sub)
        picks = sorted({int(i * len(files) / keep) for i in range(min(keep, len(files)))})
        for i in picks:
            write_webp(out / "cam" / sub / (files[i].stem + ".webp"), read_image(files[i]))
    shutil.rmtree(work, ignore_errors=True)

    for f in args.resume:
        meta = read_meta(f)
        name = {"nafnet-mid": "deblurrer-mid.safetensors"}.get(meta.get("net"))
        if name is None:
            raise SystemExit(f"{f}: a {meta.get('net')!r} file; --resume takes nafnet-mid deblurrers")
        (out / "resume").mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out / "resume" / name)
        if Path(str(f) + ".json").is_file():
            shutil.copy2(str(f) + ".json", out / "resume" / (name + ".json"))

    size = folder_size(out) / MIB
    print(f"{out}: {n_img} photos, {n_fr} clip frames, camera B {len(list((out / 'cam' / 'B').iterdir()))} / "
          f"S {len(list((out / 'cam' / 'S').iterdir()))}; "
          f"{size:.1f} MiB")
    if size > args.budget_mib:
        raise SystemExit(f"{out} is {size:.1f} MiB, over the {args.budget_mib:g} MiB budget: use fewer --frames-per-clip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
