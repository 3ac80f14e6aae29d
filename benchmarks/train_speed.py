"""Training speed: the per-crop reference data path against the batched device path, in one run.

For each case, both paths train the same network on the same images, alternating in rounds so both
see the same machine state; the table gives crops/s, the step time and the share of it spent making
data (crops and known blur, timed alone with the device synchronised), and the new/old ratio.

- ``deblurrer-lite``: nafnet-lite at 128 px (the shipped CPU deblurrer);
- ``deblurrer-w32``: the nafnet-gopro-width32 architecture at 256 px (the GPU-grade class);
- ``translator-lite`` / ``translator``: one translator iteration (G, D step with gradient penalty,
  G step with the content loss), mimo-unet-lite / mimo-unet, 256 px crops.

Old path: host crops (``CropSampler``), known blur sized to each batch's draws, fp32, contiguous
memory, the loss read on the host every step. New path: ``ImageBank`` crops on the device,
static-shape known blur, autocast as ``precision=auto`` chooses (bf16 on CUDA and on a CPU with bf16
hardware), channels-last, fused AdamW on CUDA, no host read inside the step. The translator's old and
new paths are its ``train.data_path`` settings (the new one also prefetches B/S crops on CUDA).

``--quality N`` also trains nafnet-lite N steps from the same initial weights on each path and
compares validation PSNR on held-apart photos (same problem, faster: the two should agree).

    python benchmarks/train_speed.py --write                      # CPU defaults (small batches)
    python benchmarks/train_speed.py --images .devdata/images --write   # on a GPU: its default batches
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b2b_train.blur import make_known_blur  # noqa: E402
from b2b_train.data.bank import ImageBank  # noqa: E402
from b2b_train.data.io import list_images, read_image  # noqa: E402
from b2b_train.deblur_trainer import CropSampler, SharpSet  # noqa: E402
from b2b_train.losses import psnr_loss  # noqa: E402
from b2b_train.nets import registry  # noqa: E402
from b2b_train.trainutil import autocast_dtype, pick_device  # noqa: E402

# (net, crop, batch on CPU, batch on CUDA)
DEBLUR_CASES = {
    "deblurrer-lite": ("nafnet-lite", 128, 8, 256),
    "deblurrer-w32": ("nafnet-gopro-width32", 256, 2, 32),
}
TRANSLATOR_CASES = {
    "translator-lite": ("mimo-unet-lite", 256, 2, 16),
    "translator": ("mimo-unet", 256, 1, 16),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_images(folder: Path, min_side: int, limit: int = 0) -> list[np.ndarray]:
    imgs = [read_image(p) for p in list_images(folder)]
    imgs = [im for im in imgs if min(im.shape[:2]) >= min_side]
    return imgs[:limit] if limit else imgs


class DeblurPath:
    """One training set-up of a deblurrer on one data path."""

    def __init__(self, new: bool, net_name: str, crop: int, batch: int, images, device, init_state):
        self.new, self.crop, self.batch, self.device = new, crop, batch, device
        self.net = registry.build(net_name).to(device)
        self.net.load_state_dict(init_state)
        self.amp = autocast_dtype("auto", device) if new else None
        if new:
            self.net = self.net.to(memory_format=torch.channels_last)
            self.sampler = ImageBank(images, device, seed=0)
        else:
            self.sampler = CropSampler(SharpSet(images, [str(i) for i in range(len(images))]), crop, seed=0)
        blur = make_known_blur("kernels", device)
        self.blur = blur.with_static_shapes() if new else blur
        self.gen = torch.Generator(device=device).manual_seed(1)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=5e-4, betas=(0.9, 0.9),
                                     fused=True if (new and device.type == "cuda") else None)

    def data(self):
        if self.new:
            sharp = self.sampler.batch(self.batch, self.crop)
        else:
            sharp = self.sampler.batch(self.batch).to(self.device, non_blocking=True)
        blurry = self.blur(sharp, generator=self.gen).clamp(0, 1)
        if self.new:
            blurry = blurry.contiguous(memory_format=torch.channels_last)
        return sharp, blurry

    def step(self) -> None:
        sharp, blurry = self.data()
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            pred = self.net(blurry)
        loss = psnr_loss(pred, sharp)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 0.01)
        self.opt.step()
        if not self.new:
            float(loss)  # the old loop read the loss (and checked it) every step


def timed(fn, n: int, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n


def bench_deblurrer(name: str, images, device, steps: int, rounds: int, batch: int | None) -> dict:
    net_name, crop, b_cpu, b_gpu = DEBLUR_CASES[name]
    b = batch or (b_gpu if device.type == "cuda" else b_cpu)
    imgs = [im for im in images if min(im.shape[:2]) >= crop]
    init = {k: v.clone() for k, v in registry.build(net_name).state_dict().items()}
    paths = {"old": DeblurPath(False, net_name, crop, b, imgs, device, init),
             "new": DeblurPath(True, net_name, crop, b, imgs, device, init)}
    for p in paths.values():  # warm-up (allocator, cuDNN choices, first-call costs)
        for _ in range(2):
            p.step()
    step_t = {k: [] for k in paths}
    data_t = {k: [] for k in paths}
    for _ in range(rounds):
        for k, p in paths.items():
            step_t[k].append(timed(p.step, steps, device))
            data_t[k].append(timed(p.data, max(2, steps // 2), device))
    return _row(name, f"{net_name} {crop}px batch {b}", b, step_t, data_t)


def _row(name, what, batch, step_t, data_t) -> dict:
    out = {"case": name, "what": what}
    for k in ("old", "new"):
        st, dt = float(np.median(step_t[k])), float(np.median(data_t[k]))
        out[k] = {"step_ms": st * 1000, "crops_per_s": batch / st, "data_share": min(1.0, dt / st)}
    out["ratio"] = out["new"]["crops_per_s"] / out["old"]["crops_per_s"]
    return out


def bench_translator(name: str, cam: Path, device, steps: int, rounds: int, batch: int | None) -> dict:
    from b2b_train.trainer import TranslatorTrainer, load_translator_config

    gen_name, crop, b_cpu, b_gpu = TRANSLATOR_CASES[name]
    b = batch or (b_gpu if device.type == "cuda" else b_cpu)
    # the campaign's camera frames are 320x240: the crop shrinks to fit them (and says so in the row)
    smallest = min(min(read_image(p).shape[:2]) for d in ("B", "S") for p in list_images(cam / d)[:4])
    crop = min(crop, smallest // 16 * 16)
    trainers = {}
    work = Path(tempfile.mkdtemp(prefix="b2b-train-speed-"))
    for k, data_path in (("old", "per-crop"), ("new", "batched")):
        cfg = load_translator_config("cpu-quick", [
            f"model.generator={gen_name}", "model.generator_kwargs={}", f"data.crop={crop}", f"data.batch={b}",
            "data.val_images=1", f"data.val_size={crop}", "data.match_known_blur=false",
            f"train.data_path={data_path}", f"train.device={device.type}", "train.deblur_samples=false",
        ])
        t = TranslatorTrainer(cfg, cam / "B", cam / "S", work / k, show_progress=False)
        t.setup()
        trainers[k] = t

    def step(t):
        def run():
            t.train_step()
            t.step += 1
        return run

    def data(t):
        def run():
            batch = t.data.next()
            ys = batch.sharp.to(device, non_blocking=True)
            with torch.no_grad():
                t._known_blur_step(ys, t._generator())
        return run

    for t in trainers.values():
        for _ in range(2):
            step(t)()
    step_t = {k: [] for k in trainers}
    data_t = {k: [] for k in trainers}
    for _ in range(rounds):
        for k, t in trainers.items():
            step_t[k].append(timed(step(t), steps, device))
            data_t[k].append(timed(data(t), max(2, steps // 2), device))
    for t in trainers.values():
        t.data.close()
    return _row(name, f"{gen_name} + D + content loss, {crop}px batch {b}", b, step_t, data_t)


def quality(images, val_images, device, steps: int) -> dict:
    """Same problem, faster: nafnet-lite ``steps`` steps on each path from the same weights; val PSNR."""
    from b2b_train.deblur_trainer import evaluate_pairs

    init = {k: v.clone() for k, v in registry.build("nafnet-lite").state_dict().items()}
    blur = make_known_blur("kernels", device)
    g = torch.Generator(device=device).manual_seed(123)
    pairs = []
    for im in val_images:
        sharp = torch.from_numpy(im[:256, :256]).permute(2, 0, 1)[None].float().div(255).to(device)
        pairs.append((blur(sharp, generator=g).clamp(0, 1), sharp))
    out = {}
    for k, new in (("old", False), ("new", True)):
        torch.manual_seed(0)
        p = DeblurPath(new, "nafnet-lite", 128, 8, images, device, init)
        t0 = time.perf_counter()
        for _ in range(steps):
            p.step()
        sync(device)
        secs = time.perf_counter() - t0
        res = evaluate_pairs(p.net, pairs)
        out[k] = {"val_psnr": res["psnr"], "input_psnr": res["input_psnr"], "seconds": secs}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default=None, help="sharp photos (default ../shared/data/images)")
    ap.add_argument("--cam", default=None, help="a folder with B/ and S/ frame folders for the translator cases "
                                                "(default: two ASL clips' frames, made here)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", default="", help="comma-separated cases (default all): " +
                    ", ".join([*DEBLUR_CASES, *TRANSLATOR_CASES]))
    ap.add_argument("--steps", type=int, default=0, help="timed steps per round (default 3 on a CPU, 20 on CUDA)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating old/new rounds; medians are reported")
    ap.add_argument("--batch", type=int, default=None, help="one batch size for every case (default: per case and device)")
    ap.add_argument("--quality", type=int, default=0, help="also train nafnet-lite this many steps on each path "
                                                           "and compare validation PSNR")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the train-speed section of BENCHMARKS.md")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here (a GPU run brings it back)")
    ap.add_argument("--from-json", default=None, help="write BENCHMARKS.md from a JSON an earlier run wrote")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.from_json:
        import json

        saved = json.loads(Path(args.from_json).read_text())
        write(saved["rows"], saved.get("quality"), torch.device(saved["device"]), argparse.Namespace(**saved["args"]),
              machine=saved.get("machine"), command=saved.get("command"))
        return 0
    device = pick_device(args.device)
    steps = args.steps or (20 if device.type == "cuda" else 3)
    root = Path(__file__).resolve().parent.parent
    img_dir = Path(args.images) if args.images else root.parent / "shared" / "data" / "images"
    only = [c for c in args.only.split(",") if c] or [*DEBLUR_CASES, *TRANSLATOR_CASES]
    unknown = set(only) - set(DEBLUR_CASES) - set(TRANSLATOR_CASES)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    images = load_images(img_dir, 128)
    if not images:
        ap.error(f"no images of at least 128 px in {img_dir}")
    rows = []
    for case in only:
        if case in DEBLUR_CASES:
            rows.append(bench_deblurrer(case, images, device, steps, args.rounds, args.batch))
        else:
            cam = Path(args.cam) if args.cam else make_cam(root)
            rows.append(bench_translator(case, cam, device, max(1, steps // 2) if device.type == "cpu" else steps,
                                         args.rounds, args.batch))
        r = rows[-1]
        print(f"{r['case']:16s} {r['what']:48s} old {r['old']['crops_per_s']:8.1f} crops/s "
              f"(data {r['old']['data_share']:.0%})  new {r['new']['crops_per_s']:8.1f} crops/s "
              f"(data {r['new']['data_share']:.0%})  x{r['ratio']:.2f}", flush=True)
        save_json(args, rows, None, device)  # after every case: a time limit keeps what was measured
    qual = None
    if args.quality:
        val = [images[i] for i in range(0, len(images), max(1, len(images) // 6))][:6]
        train = [im for im in images if not any(im is v for v in val)]
        qual = quality(train, val, device, args.quality)
        print("quality", qual)
    save_json(args, rows, qual, device)
    if args.write:
        write(rows, qual, device, args)
    return 0


def save_json(args, rows: list, qual, device: torch.device) -> None:
    if not args.json:
        return
    import json

    from benchmarks._report import machine_line

    Path(args.json).write_text(json.dumps({
        "rows": rows, "quality": qual, "device": device.type, "args": vars(args), "machine": machine_line(),
        "command": "python " + " ".join(sys.argv)}, indent=1))


def make_cam(root: Path) -> Path:
    """B and S frame folders from two ASL clips (the translator only needs frames to crop)."""
    from b2b_train.data.io import iter_video_frames, write_image

    cam = Path(tempfile.mkdtemp(prefix="b2b-train-speed-cam-"))
    clips = sorted((root.parent / "shared" / "data" / "videos" / "asl_gestures").glob("*.m[kp][v4]"))
    if len(clips) < 2:
        raise SystemExit("need two ASL clips in ../shared/data/videos/asl_gestures (or pass --cam)")
    for sub, clip in (("B", clips[0]), ("S", clips[1])):
        (cam / sub).mkdir(parents=True)
        for i, _t, im in iter_video_frames(clip, step=4, max_frames=12):
            write_image(cam / sub / f"{i:04d}.png", im)
    return cam


def write(rows, qual, device, args, machine=None, command=None) -> None:
    from benchmarks._report import header, update_section

    head = header(f"Training speed, old vs new data path ({device.type})", command)
    if machine:  # a run on another machine (a lent GPU): its own description, not this one's
        head = "\n".join(f"- Machine: {machine}" if ln.startswith("- Machine:") else ln for ln in head.splitlines()) + "\n"
    lines = [head, ""]
    lines += ["| case | what | old crops/s | old data share | new crops/s | new data share | new / old |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['what']} | {r['old']['crops_per_s']:.1f} | {r['old']['data_share']:.0%} | "
                     f"{r['new']['crops_per_s']:.1f} | {r['new']['data_share']:.0%} | **{r['ratio']:.2f}x** |")
    lines += ["", f"Medians of {args.rounds} alternating rounds; data share = crops + known blur timed alone, "
              "device synchronised, over the whole step's time. New path's autocast: "
              f"{autocast_dtype('auto', device) or 'fp32'}. The translator's batched path differs from its per-crop "
              "one on CUDA (known blur from a device generator, B/S crops prefetched); on a CPU it trains in fp32 "
              "on both, so the two rows there are the same step (bf16 autocast there is not yet checked for "
              "GAN quality)."]
    if qual:
        o, n = qual["old"], qual["new"]
        lines += ["", f"Same problem, faster: nafnet-lite, {args.quality} steps of batch 8 at 128 px from the same "
                  f"initial weights, validation PSNR on {6} held-apart photos (256 px, blurry input "
                  f"{o['input_psnr']:.2f} dB): old path **{o['val_psnr']:.2f} dB** in {o['seconds']:.0f} s, "
                  f"new path **{n['val_psnr']:.2f} dB** in {n['seconds']:.0f} s "
                  f"(difference {n['val_psnr'] - o['val_psnr']:+.2f} dB)."]
    update_section(f"train-speed-{device.type}", "\n".join(lines) + "\n")
    print(f"wrote section train-speed-{device.type} of BENCHMARKS.md")


if __name__ == "__main__":
    raise SystemExit(main())
