"""Paper Table 2 at laptop scale: does the translator help the deblurrer on an unknown camera?

An "unknown camera" is made from the real clips in ``../shared/data/videos`` by a blur process
unlike b2b's known domain (camera-shake kernels in gamma-2.2 light): every blurry frame is the
average of consecutive frames after 4x temporal interpolation (real scene motion: moving hands,
a flipped pancake, a talking head) while the camera vibrates (sinusoidal shifts of 2-6 px at 320
px, see :func:`vibrate`), in the linear light of an sRGB decoding, re-encoded with this
camera's own response (gamma 1.7 and an S-shaped tone curve) plus Poisson-Gaussian noise and 8-bit
quantisation; its sharp frames are single frames through the same response and noise.

Clips are split three ways and never shared: B (the camera's blurry frames), S (its sharp
frames), and test clips, whose blurry frames are scored against the matching (noise-free) centre
frame. Rows:

* deblurrer alone - the known-blur deblurrer (the shipped one unless ``--deblurrer``);
* deblurrer trained on naive synthetic blur - the same deblurrer fine-tuned on S re-blurred with
  straight-line motion kernels (no camera response, no noise), the paper's "Syn. data" baseline;
* deblurrer ∘ translator (ours) - the Blur2Blur translator trained on B, S (K from S) in front of
  the unchanged deblurrer;
* upper bound - the deblurrer fine-tuned on the unknown camera's own blurry/sharp pairs (from the
  B clips, so still disjoint from the test clips).

Goal (issue 4): ours closes at least half of the gap between "deblurrer alone" and the upper
bound, and gains at least +1.5 dB PSNR. ``--ratios`` adds Table 3's B:S sweep (5:5 ... 9:1).

Budgets (``--budget``): ``smoke`` (minutes; tiny networks; checks the pipeline, numbers
meaningless, BENCHMARKS.md untouched unless --write), ``quick`` (cpu-quick translator, 1000
iterations; naive fine-tune of 300 iterations, upper bound of 3000 (near convergence); about an
hour on an idle 2-core CPU), ``full`` (the paper preset with 20K iterations at 256² crops, batch 16;
naive fine-tune of 3000 iterations, upper bound of 20K; for a GPU, an hour or two). Everything is resumable: rerunning continues the runs
in ``--work``.

    python benchmarks/quality.py --budget quick --work runs/quality
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, update_section  # noqa: E402

BUDGETS = {
    "smoke": {
        "side": 160, "translator": ("cpu-quick", 20, [
            "model.generator=mimo-unet", "model.generator_kwargs={base_channel: 8, num_res: 1}",
            "model.discriminator_kwargs={ndf: 8, n_layers: 2}", "data.crop=64", "data.batch=2",
            "loss.vgg_layers=[relu1_2]", "loss.vgg_layer_weights=[1.0]", "train.deblur_samples=false"]),
        "finetune_iters": 10, "upper_iters": 10, "oracle_iters": 10, "finetune_crop": 64, "finetune_batch": 2, "max_test": 6, "step": 6,
    },
    "quick": {
        "side": 320, "translator": ("cpu-quick", 1000, []),
        "finetune_iters": 300, "upper_iters": 3000, "oracle_iters": 3000, "finetune_crop": 96, "finetune_batch": 4, "max_test": 24, "step": 3,
    },
    "full": {
        "side": 480, "translator": ("paper", 20000, ["train.ckpt_every=1000", "train.val_every=1000"]),
        "finetune_iters": 3000, "upper_iters": 20000, "oracle_iters": 20000, "finetune_crop": 256, "finetune_batch": 8, "max_test": 60, "step": 2,
    },
}

# clips by role (names under ../shared/data/videos); each clip is one scene. B and S hold only
# the ASL webcam clips, so they share the camera's look (paper §3.3: otherwise D separates them by
# scene colour instead of blur); the test set adds two different scenes.
SPLIT = {
    "B": ["asl_gestures/again", "asl_gestures/bird", "asl_gestures/book", "asl_gestures/brother",
          "asl_gestures/eat", "asl_gestures/help"],
    "S": ["asl_gestures/hungry", "asl_gestures/learn", "asl_gestures/milk", "asl_gestures/night"],
    "test": ["asl_gestures/no", "asl_gestures/please", "misc/flipping_a_pancake", "misc/carphone_pristine"],
}


# ----------------------------------------------------------------------------- the unknown camera

def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def camera_response(lin: np.ndarray, a: float = 0.3) -> np.ndarray:
    """This camera's response: gamma 1.7, then an S-curve ``y - a sin(2πy) / 2π`` (more mid-tone
    contrast; monotone for a < 1)."""
    y = np.clip(lin, 0, 1) ** (1 / 1.7)
    return np.clip(y - a * np.sin(2 * np.pi * y) / (2 * np.pi), 0, 1)


def camera_noise(y: np.ndarray, rng: np.random.Generator, shot: float = 4e-4, read: float = 6e-3) -> np.ndarray:
    return np.clip(y + np.sqrt(shot * y + read**2) * rng.standard_normal(y.shape), 0, 1)


def vibrate(seq: list[np.ndarray], rng: np.random.Generator, side: int) -> list[np.ndarray]:
    """The camera vibrates during the exposure (a machine-mounted or desk camera, not a handheld
    random walk): the sub-frames are shifted along ``A sin(2π f u + φ)`` in a random direction plus
    a slower perpendicular sway, with a peak-to-peak extent of 0.6-1.9 % of the frame's longer side
    (2-6 px at 320 px), ``f`` 0.5-1.5 cycles per exposure; the mean shift is removed so the blurry
    frame stays aligned with the centre frame (its ground truth)."""
    import cv2

    n = len(seq)
    u = np.linspace(0.0, 1.0, n)
    f, phi = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
    along = np.sin(2 * np.pi * f * u + phi)
    across = 0.3 * np.sin(np.pi * u + rng.uniform(0, 2 * np.pi))
    extent = rng.uniform(0.006, 0.019) * side
    along = along / max(np.ptp(along), 1e-6) * extent
    across = across * extent
    theta = rng.uniform(0, np.pi)
    dx = along * np.cos(theta) - across * np.sin(theta)
    dy = along * np.sin(theta) + across * np.cos(theta)
    dx, dy = dx - dx.mean(), dy - dy.mean()
    h, w = seq[0].shape[:2]
    out = []
    for img, x, y in zip(seq, dx, dy):
        m = np.float32([[1, 0, x], [0, 1, y]])
        out.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def _q(y: np.ndarray) -> np.ndarray:
    return (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_camera(data: Path, work: Path, side: int, step: int, seed: int = 0, test_per_clip: int = 0) -> dict:
    """Write the unknown camera's frames (PNG) under ``work/camera``.

    ``pool/{blurry,sharp,gt}/<clip>_<frame>.png`` for every B and S clip (blurry, noisy sharp,
    noise-free sharp), ``B`` (blurry frames of the B clips), ``S`` (sharp frames of the S clips),
    ``pairs/{blurry,gt}`` (the B clips' pairs, for the upper bound), ``test/{blurry,gt}`` (at most
    ``test_per_clip`` evenly spaced frames of each test clip; 0 = all).
    """
    import cv2

    from b2b_train.data.io import iter_video_frames, write_image

    root = work / "camera"
    done = root / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    rng = np.random.default_rng(seed)
    counts = {k: 0 for k in ("B", "S", "test", "pairs")}
    window, interp = 7, 4  # average 7 consecutive frames, each pair interpolated 4x
    for role, clips in SPLIT.items():
        for name in clips:
            path = next((data / "videos").glob(name + ".*"))
            frames = []
            for _i, _t, img in iter_video_frames(path):
                h, w = img.shape[:2]
                s = side / max(h, w)
                if s < 1:
                    img = cv2.resize(img, (int(round(w * s)) // 4 * 4, int(round(h * s)) // 4 * 4), interpolation=cv2.INTER_AREA)
                frames.append(srgb_to_linear(img.astype(np.float32) / 255.0))
            stem = name.replace("/", "_")
            r = window // 2
            centres = list(range(r, len(frames) - r, step))
            if role == "test" and test_per_clip and len(centres) > test_per_clip:
                centres = [centres[i] for i in np.linspace(0, len(centres) - 1, test_per_clip).round().astype(int)]
            for c in centres:
                seq = []
                for k in range(c - r, c + r):
                    for j in range(interp):
                        a = j / interp
                        seq.append((1 - a) * frames[k] + a * frames[k + 1])
                seq.append(frames[c + r])
                seq = vibrate(seq, rng, side)
                sharp = camera_response(frames[c])
                blurry = _q(camera_noise(camera_response(np.mean(seq, axis=0)), rng))
                f = f"{stem}_{c:04d}.png"
                if role == "test":
                    write_image(root / "test" / "blurry" / f, blurry)
                    write_image(root / "test" / "gt" / f, _q(sharp))
                    counts["test"] += 1
                    continue
                noisy_sharp = _q(camera_noise(sharp, rng))
                write_image(root / "pool" / "blurry" / f, blurry)
                write_image(root / "pool" / "sharp" / f, noisy_sharp)
                write_image(root / "pool" / "gt" / f, _q(sharp))
                if role == "B":
                    write_image(root / "B" / f, blurry)
                    write_image(root / "pairs" / "blurry" / f, blurry)
                    write_image(root / "pairs" / "gt" / f, _q(sharp))
                    counts["B"] += 1
                    counts["pairs"] += 1
                else:
                    write_image(root / "S" / f, noisy_sharp)
                    counts["S"] += 1
    done.write_text(json.dumps(counts))
    return counts


def naive_known_yaml(work: Path) -> Path:
    """Straight-line motion kernels, whole frame, no camera response, no noise (imgaug-like)."""
    p = work / "naive-known.yaml"
    p.write_text(
        "kernels: {extent: [3.0, 21.0], anxiety: [0.0, 0.0], gaussian: [0.0, 0.0], big_shake: [0.0, 0.0],"
        " exposure: [1.0, 1.0]}\nspatial: {p_uniform: 1.0, p_varying: 0.0, p_local: 0.0}\n"
        "crf: linear\nnoise: {p: 0.0}\nquantize: true\n"
    )
    return p


# ----------------------------------------------------------------------------- rows

def base_deblurrer(args, work: Path, budget: dict) -> Path:
    """The known-blur deblurrer every row starts from (a tiny one is trained for --budget smoke
    when the shipped one is missing)."""
    from b2b_train.shipped import default_deblurrer_path

    if args.deblurrer:
        return Path(args.deblurrer)
    p = default_deblurrer_path()
    if p.is_file():
        return p
    if args.budget != "smoke":
        raise SystemExit(f"the shipped deblurrer is missing ({p}); pass --deblurrer FILE")
    from b2b_train.deblur_trainer import load_deblurrer_config, train_deblurrer

    cfg = load_deblurrer_config("tiny", [f"data.sharp=[{work / 'camera' / 'S'}]", "iters=20", "device=" + args.device])
    return train_deblurrer(cfg, work / "base-deblurrer", progress=False, log=None)


def _digest(path: Path) -> str:
    """Short content hash of the base deblurrer: fine-tunes of another base are redone, not reused."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]


def finetune_naive(args, work: Path, budget: dict, base: Path) -> Path:
    from b2b_train.checkpoint import read_meta
    from b2b_train.deblur_trainer import load_deblurrer_config, train_deblurrer

    meta = read_meta(base)
    net_kwargs = json.dumps(meta.get("net_kwargs", {})).replace('"', "")
    cfg = load_deblurrer_config("default", [
        f"net={meta['net']}", f"net_kwargs={net_kwargs}", f"init={base}", f"known={naive_known_yaml(work)}",
        f"data.sharp=[{work / 'camera' / 'S'}]", "data.holdout=2", f"data.crop={budget['finetune_crop']}",
        f"batch_size={budget['finetune_batch']}", f"iters={budget['finetune_iters']}", "optim.lr=2.0e-4",
        "optim.warmup=0", f"val_every={max(1, budget['finetune_iters'])}", f"ckpt_every={max(1, budget['finetune_iters'] // 3)}",
        f"device={args.device}",
    ])
    return train_deblurrer(cfg, work / f"deblurrer-naive-{_digest(base)}", progress=not args.no_progress, log=None)


def finetune_pairs(args, work: Path, budget: dict, base: Path) -> Path:
    """Upper bound: fine-tune on the unknown camera's own pairs (PSNR loss, Adam, random crops)."""
    from b2b_train.data.io import list_images, read_image, to_tensor
    from b2b_train.losses import psnr_loss
    from b2b_train.nets import registry
    from b2b_train.trainutil import fit_pairs_cosine, pick_device

    iters = budget["upper_iters"]  # trained to (near) convergence: the bound should not be set by the budget
    out = work / f"deblurrer-upper-{_digest(base)}-{iters}" / "deblurrer.safetensors"
    if out.is_file():
        return out
    device = pick_device(args.device)
    net, meta = registry.load_from_file(base, eval_mode=False)
    net = net.to(device).train()
    blurry = [to_tensor(read_image(p)) for p in list_images(work / "camera" / "pairs" / "blurry")]
    gt = [to_tensor(read_image(p)) for p in list_images(work / "camera" / "pairs" / "gt")]
    g = torch.Generator().manual_seed(0)
    c, n = budget["finetune_crop"], budget["finetune_batch"]

    def draw():
        xs, ys = [], []
        for _ in range(n):
            i = int(torch.randint(len(blurry), (1,), generator=g))
            h, w = blurry[i].shape[-2:]
            y0 = int(torch.randint(h - c + 1, (1,), generator=g))
            x0 = int(torch.randint(w - c + 1, (1,), generator=g))
            xs.append(blurry[i][:, y0 : y0 + c, x0 : x0 + c])
            ys.append(gt[i][:, y0 : y0 + c, x0 : x0 + c])
        return torch.stack(xs), torch.stack(ys)

    fit_pairs_cosine(net.parameters(), draw, lambda x, y: psnr_loss(net(x), y), iters=iters, lr=2e-4,
                     betas=(0.9, 0.9), grad_clip=0.01, device=device, description="upper bound",
                     show_progress=not args.no_progress)
    registry.save_network(out, net.eval(), meta["net"], meta.get("net_kwargs", {}), kind="deblurrer",
                          note="quality benchmark upper bound: fine-tuned on the unknown camera's pairs")
    return out


def translator_oracle(args, work: Path, budget: dict, base: Path) -> Path:
    """The translator's own upper bound: the cpu-quick generator trained *with* the camera's pairs
    (the B clips' blurry frames and their ground truth), so that the frozen deblurrer restores G(y)
    best, with the low-pass content term that keeps G a blur->blur map. No unpaired recipe can do
    better with this generator in front of this deblurrer; what it reaches over the deblurrer alone
    is the headroom the GAN is chasing."""
    from b2b_train.data.io import list_images, read_image
    from b2b_train.distill import PairSampler
    from b2b_train.losses import lowpass_l1, psnr_loss
    from b2b_train.nets import registry
    from b2b_train.shipped import resolve_deblurrer
    from b2b_train.trainer import FullResolution
    from b2b_train.trainutil import fit_pairs_cosine, pick_device

    iters = budget["oracle_iters"]
    out = work / f"translator-oracle-{_digest(base)}-{iters}" / "translator.safetensors"
    if out.is_file():
        return out
    device = pick_device(args.device)
    torch.manual_seed(0)
    deb = resolve_deblurrer(str(base)).to(device).eval().requires_grad_(False)
    kwargs = {"zero_init_output": True}
    G = registry.build("mimo-unet-lite", **kwargs).to(device).train()
    full = FullResolution(G, multiple=registry.spec("mimo-unet-lite").multiple)
    pairs = work / "camera" / "pairs"
    sampler = PairSampler([read_image(p) for p in list_images(pairs / "blurry")],
                          [read_image(p) for p in list_images(pairs / "gt")], budget["finetune_crop"], seed=0)

    def loss(y, gt):
        g = full(y)
        return psnr_loss(deb(g), gt) + 10.0 * lowpass_l1(g, y, 2.0)  # the prior's content weight

    fit_pairs_cosine(G.parameters(), lambda: sampler.batch(budget["finetune_batch"]), loss, iters=iters, lr=2e-4,
                     betas=(0.9, 0.99), grad_clip=1.0, device=device, description="translator oracle",
                     show_progress=not args.no_progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    registry.save_network(out, G.eval(), "mimo-unet-lite", kwargs, kind="translator",
                          note="quality benchmark translator oracle: trained with the camera's pairs")
    return out


def train_ours(args, work: Path, budget: dict, b_dir: Path, s_dir: Path, name: str = "translator") -> Path:
    from b2b_train.trainer import train_translator

    preset, iters, over = budget["translator"]
    over = list(over) + [f"train.device={args.device}", f"train.threads={args.threads}"] + list(args.overrides)
    if args.vgg_weights:
        over.append(f"loss.vgg_weights={args.vgg_weights}")
    return train_translator(b_dir, s_dir, work / name, config=preset, overrides=over, iters=iters,
                            progress=not args.no_progress)


def score(work: Path, deblurrer, translator=None, grid=None, max_images=None, device="auto") -> dict:
    from b2b_train.evaluate import evaluate

    return evaluate(work / "camera" / "test" / "blurry", work / "camera" / "test" / "gt", translator=translator,
                    deblurrer=str(deblurrer), grid=grid, max_images=max_images, device=device, progress=False)


def ratio_sweep(args, work: Path, budget: dict, base: Path) -> list[tuple[str, float, float]]:
    """Table 3: pool the B and S clips, give a B:S share of them (whole clips) to B (their blurry
    frames) and the rest to S (their sharp frames), train a translator for each ratio, score it."""
    import shutil

    from b2b_train.data import split_scenes

    clips = SPLIT["B"] + SPLIT["S"]
    pool = work / "camera" / "pool"
    rows = []
    for ratio in ("5:5", "6:4", "7:3", "8:2", "9:1"):
        tag = ratio.replace(":", "-")
        d = work / f"ratio-{tag}"
        b_names, s_names = split_scenes({c: float(len(list((pool / "blurry").glob(c.replace("/", "_") + "_*.png"))))
                                         for c in clips}, ratio, seed=0)
        for role, names, src in (("B", b_names, pool / "blurry"), ("S", s_names, pool / "sharp")):
            dst = d / role
            if (dst / ".done").is_file():
                continue
            dst.mkdir(parents=True, exist_ok=True)
            for nm in names:
                for p in src.glob(nm.replace("/", "_") + "_*.png"):
                    shutil.copy(p, dst / p.name)
            (dst / ".done").write_text("")
        t = train_ours(args, work, budget, d / "B", d / "S", name=f"ratio-{tag}/translator")
        rep = score(work, base, t, max_images=budget["max_test"], device=args.device)
        rows.append((ratio, rep["psnr"]["b2b"], rep["ssim"]["b2b"]))
    return rows


def ceiling(work: Path, deblurrer: Path, translator: Path, max_images: int | None, device: str = "cpu") -> list[dict]:
    """What the deblurrer makes of the known blur on the camera's frames: the test frames' ground truth
    blurred with the known blur (the translator's own extent, and fixed extents for comparison), then
    deblurred. Where K is as blurry as B, that is what a perfect translator could reach.

    The translator can only help where the deblurrer restores its known blur better than it restores
    the camera's: if ``deblurred K`` is below ``deblurrer alone`` on the camera's frames, even a perfect
    B->K mapping loses. Each row draws its blur with the same seed (reproducible)."""
    from b2b_train.blur import make_known_blur
    from b2b_train.checkpoint import read_meta
    from b2b_train.data.io import list_images, read_image, to_tensor
    from b2b_train.metrics import psnr
    from b2b_train.shipped import resolve_deblurrer
    from b2b_train.trainutil import pick_device

    dev = pick_device(device)
    net = resolve_deblurrer(str(deblurrer)).to(dev).eval()
    meta = read_meta(translator)
    known = (meta.get("config") or {}).get("known") or "kernels"
    match = (meta.get("provenance") or {}).get("known_match") or {}
    own = tuple(match.get("chosen") or ())
    gts = list_images(work / "camera" / "test" / "gt")[: max_images or None]
    images = [to_tensor(read_image(p))[None].to(dev) for p in gts]
    extents = [("the translator's (matched) " if match else "the translator's ", own)] if own else []
    extents += [("", e) for e in ((3.0, 7.0), (3.0, 11.0), (3.0, 21.0)) if e != own]
    rows = []
    for prefix, ext in extents:
        label = f"{prefix}{ext[0]:g}-{ext[1]:g} px"
        kb = make_known_blur(known, device=dev, overrides=[f"kernels.extent=[{ext[0]}, {ext[1]}]"])
        g = torch.Generator(device=dev).manual_seed(0)
        rng = np.random.default_rng(0)
        pk, pd, pkn, pdn = [], [], [], []
        for x in images:
            y = kb(x, g)
            # the honest row: K as the camera would deliver it, with the camera's own sensor noise and
            # 8-bit quantisation, which G(B) keeps (a translator cannot give back noise-free frames)
            yn = torch.from_numpy(_q(camera_noise(y[0].permute(1, 2, 0).cpu().numpy(), rng)))
            yn = (yn.permute(2, 0, 1)[None].float() / 255.0).to(dev)
            with torch.no_grad():
                out = net(y).float().clamp(0, 1)
                out_n = net(yn).float().clamp(0, 1)
            pk.append(psnr(y, x))
            pd.append(psnr(out, x))
            pkn.append(psnr(yn, x))
            pdn.append(psnr(out_n, x))
        rows.append({"known": str(known), "label": label, "extent": list(ext), "psnr_k": float(np.mean(pk)),
                     "psnr_deblurred": float(np.mean(pd)), "psnr_k_noisy": float(np.mean(pkn)),
                     "psnr_deblurred_noisy": float(np.mean(pdn)), "n": len(images)})
    return rows


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    ap.add_argument("--work", default=str(ROOT / "runs" / "quality"), help="working folder (resumable)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--deblurrer", default=None, help="known-blur deblurrer weights (default: the shipped one)")
    ap.add_argument("--vgg-weights", default=None, help="torchvision VGG file for the perceptual loss")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ratios", action="store_true", help="also run Table 3's B:S ratio sweep")
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md even for --budget smoke")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md (experiments)")
    ap.add_argument("--section", default="quality",
                    help="BENCHMARKS.md section to write (e.g. quality-uniform for a run with --set overrides)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra translator config override (repeatable), e.g. --set loss.lambda_rec=2")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    budget = BUDGETS[args.budget]
    work = Path(args.work) / args.budget
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings = {}

    stored = json.loads((work / "timings.json").read_text()) if (work / "timings.json").is_file() else {}

    def timed(name, fn, *a):
        s = time.time()
        out = fn(*a)
        timings[name] = time.time() - s
        if timings[name] < 30 and name in stored:  # resumed from an earlier run (setup only): keep that run's time
            timings[name] = stored[name]
        (work / "timings.json").write_text(json.dumps({**stored, **timings}))
        print(f"[quality] {name}: {timings[name]:.0f} s", flush=True)
        return out

    counts = timed("camera", make_camera, Path(args.data), work, budget["side"], budget["step"], 0,
                   max(1, budget["max_test"] // len(SPLIT["test"])))
    print(f"[quality] unknown camera: {counts}", flush=True)
    base = timed("base deblurrer", base_deblurrer, args, work, budget)
    translator = timed("translator", train_ours, args, work, budget, work / "camera" / "B", work / "camera" / "S")
    naive = timed("naive fine-tune", finetune_naive, args, work, budget, base)
    upper = timed("upper bound", finetune_pairs, args, work, budget, base)
    oracle = timed("translator oracle", translator_oracle, args, work, budget, base)

    publish = (args.budget != "smoke" or args.write) and not args.no_write
    grid = (ROOT / "benchmarks" / "out" / f"{args.section.replace('-', '_')}_grid.png") if publish else (work / "quality_grid.png")
    grid.parent.mkdir(parents=True, exist_ok=True)
    mt = budget["max_test"]
    alone = score(work, base, None, max_images=mt, device=args.device)
    ours = score(work, base, translator, grid=grid, max_images=mt, device=args.device)
    syn = score(work, naive, None, max_images=mt, device=args.device)
    up = score(work, upper, None, max_images=mt, device=args.device)
    orc = score(work, base, oracle, max_images=mt, device=args.device)
    rows = [
        ("blurry input", alone["psnr"]["input"], alone["ssim"]["input"]),
        ("deblurrer alone", alone["psnr"]["deblur_only"], alone["ssim"]["deblur_only"]),
        ("deblurrer trained on naive synthetic blur", syn["psnr"]["deblur_only"], syn["ssim"]["deblur_only"]),
        ("**deblurrer ∘ translator (ours)**", ours["psnr"]["b2b"], ours["ssim"]["b2b"]),
        ("upper bound: deblurrer trained on the camera's pairs", up["psnr"]["deblur_only"], up["ssim"]["deblur_only"]),
        ("translator's upper bound: the same translator trained with the camera's pairs (oracle)",
         orc["psnr"]["b2b"], orc["ssim"]["b2b"]),
    ]
    gain = ours["psnr"]["b2b"] - alone["psnr"]["deblur_only"]
    gap = up["psnr"]["deblur_only"] - alone["psnr"]["deblur_only"]
    closed = gain / gap if gap > 1e-6 else float("nan")
    ok = gain >= 1.5 and closed >= 0.5

    sweep = timed("ratio sweep", ratio_sweep, args, work, budget, base) if args.ratios else []
    ceil = timed("ceiling", ceiling, work, base, translator, mt, args.device)

    cmd = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    from b2b_train.checkpoint import read_meta

    prov = read_meta(translator).get("provenance", {})
    title = "Quality: paper Table 2 at laptop scale" + (f", with {', '.join(args.overrides)}" if args.overrides else "")
    md = [header(f"{title} (`{args.section}`)", cmd), ""]
    md.append(
        f"Unknown camera from real clips (frame averaging after 4x interpolation while the camera vibrates 2-6 px, gamma-1.7 + S-curve response, "
        f"noise): B {counts['B']} frames ({len(SPLIT['B'])} clips), S {counts['S']} frames ({len(SPLIT['S'])} clips), "
        f"test {min(counts['test'], mt)} pairs from {len(SPLIT['test'])} held-apart clips; frames at most {budget['side']} px. "
        f"Budget `{args.budget}`: translator `{budget['translator'][0]}` for {budget['translator'][1]} iterations "
        f"(VGG weights: {prov.get('vgg_weights', '?')}), naive fine-tune {budget['finetune_iters']} iterations, "
        f"upper bound {budget['upper_iters']}; "
        f"deblurrer `{base.name}`. PSNR/SSIM as `b2b-train evaluate` (RGB, 8-bit, peak 255, no border crop)."
    )
    md += ["", f"Translator's {prov.get('known', 'known blur: ?')}"
               + (f"; overrides: {', '.join(f'`{o}`' for o in args.overrides)}" if args.overrides else "") + "."]
    md += ["", "| row | PSNR (dB) | SSIM |", "|---|---:|---:|"]
    md += [f"| {n} | {p:.2f} | {s:.4f} |" for n, p, s in rows]
    md += ["", f"Ours vs deblurrer alone: **{gain:+.2f} dB**; gap to the upper bound closed: **{closed:.0%}** "
               f"(goal: >= +1.5 dB and >= 50 %: {'met' if ok else 'NOT met'}). The translator oracle, trained with "
               f"ground truth for {budget['oracle_iters']} steps, reaches "
               f"{orc['psnr']['b2b'] - alone['psnr']['deblur_only']:+.2f} dB over the deblurrer alone: the most this "
               "generator in front of this deblurrer can give."]
    if ceil:
        md += ["", "What the deblurrer makes of the known blur on this camera's frames: the test frames' ground truth "
                   f"blurred with the known blur (`{ceil[0]['known']}`; extent as listed), then deblurred; once as the "
                   "known blur makes it (light sensor noise) and once with this camera's own sensor noise and 8-bit "
                   "quantisation on top (the honest ceiling: G(B) keeps the camera's noise). Where K is about as blurry as B "
                   "(compare the K columns with the blurry input), the deblurred K columns bound what a perfect translator "
                   "could reach; where they are below the deblurrer alone, a translator towards that K can only lose.", "",
               "| known blur extent | K PSNR | deblurred K | vs deblurrer alone | K + camera noise | deblurred | vs deblurrer alone |",
               "|---|---:|---:|---:|---:|---:|---:|"]
        a = alone["psnr"]["deblur_only"]
        md += [f"| {c['label']} | {c['psnr_k']:.2f} | {c['psnr_deblurred']:.2f} | {c['psnr_deblurred'] - a:+.2f} dB | "
               f"{c['psnr_k_noisy']:.2f} | {c['psnr_deblurred_noisy']:.2f} | {c['psnr_deblurred_noisy'] - a:+.2f} dB |"
               for c in ceil]
    if sweep:
        md += ["", "Table 3 (B:S ratio of the pooled training clips):", "", "| B:S | PSNR | SSIM |", "|---|---:|---:|"]
        md += [f"| {r} | {p:.2f} | {s:.4f} |" for r, p, s in sweep]
    notes = []
    if prov.get("vgg_weights") == "random":
        notes.append("the perceptual (content) loss used randomly initialised VGG features (no torchvision VGG file "
                     "on this machine): rerun with `--vgg-weights vgg16-397923af.pth` (cpu-quick) or vgg19 (paper)")
    from b2b_train.trainutil import CsvLogger

    val = CsvLogger(translator.parent / "val.csv").read()
    if val:
        v = val[-1]
        notes.append(f"translator validation (blur degree, Laplacian variance, lower = blurrier): input "
                     f"{float(v['val_lapvar_in']):.0f}, translated {float(v['val_lapvar_out']):.0f}"
                     + (f", deblurred translated {float(v['val_lapvar_deblurred']):.0f}" if v.get("val_lapvar_deblurred") else ""))
    if notes:
        md += ["", "Notes: " + "; ".join(notes) + "."]
    md += ["", "Timings: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
           + f" (this invocation {(time.time() - t0) / 60:.1f} min; finished stages are reused).", "",
           f"Sample grid (blurry | deblur only | b2b | ground truth): `{grid.relative_to(ROOT) if publish else grid}`"]
    text = "\n".join(md)
    print(text)
    (work / "quality.md").write_text(text)
    if publish:
        update_section(args.section, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
