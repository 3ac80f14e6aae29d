"""Calibration: a camera profile's clips -> trained translator -> evaluation -> built engine.

    report = calibrate("desk", camera="0", config="auto", iters=None)

Steps (each resumable; rerunning continues where it stopped, ``fresh=True`` restarts training):

1. check the profile holds enough blurry and sharp material, and say how to record what is missing;
   then probe it (:mod:`b2b_train.probe`): a discriminator trained alone tells how well the blurry
   clips differ from the sharp ones and from each candidate known blur, and the probe chooses the
   known blur's kernel extent (at least as blurry as the camera's, the nearest to it), written to
   ``profiles/<name>/known.yaml`` for the translator; its AUCs go to ``probe.json`` and the report;
2. train the blur->blur translator with :func:`b2b_train.trainer.train_translator` on the profile's
   clips (``profiles/<name>/translator/``: checkpoints, logs, sample grids, loss plot), then copy the
   final weights to ``profiles/<name>/translator.safetensors``;
3. build (or reuse) the fused engine for the camera's frame size;
4. evaluate on frames of the blurry clips: no-reference sharpness of the input, deblurrer alone and
   deblurrer∘translator, a sample grid, and the hand-detection rate before/after (when the hand
   model is installed); written to ``profiles/<name>/report.json``.
5. with ``lite=True``, after the translator: distil deblurrer∘translator into one network of the
   deblurrer's architecture on the profile's blurry clips (:func:`b2b_train.distill.distill`, run in
   ``profiles/<name>/lite/``, resumable), written to ``profiles/<name>/lite.safetensors``; its fidelity
   to the two-network engine (PSNR on held-apart frames, and the deblurrer alone as the baseline),
   steps and seconds go into the report under ``lite``, and its engine is built too.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from b2b_train.checkpoint import atomic_write
from b2b_train.errors import B2BError

from .report import jsonable
from .profile import Profile

__all__ = ["MIN_FRAMES", "PROBE_EXTENTS", "check_material", "probe_known", "calibrate", "default_config"]

MIN_FRAMES = 16  # per label; far fewer frames cannot tell the camera's blur from its content
# candidate kernel extents (px) the probe chooses the known blur from: a webcam's blur at 640x480 is
# rarely beyond 15 px, and the shipped deblurrer restores 3-11 px best (BENCHMARKS.md deblurrer)
PROBE_EXTENTS = ((3.0, 7.0), (3.0, 11.0), (3.0, 15.0))


def default_config() -> str:
    """``paper`` on a CUDA machine, ``cpu-quick`` elsewhere (the paper's 1M iterations are GPU-days)."""
    import torch

    return "paper" if torch.cuda.is_available() else "cpu-quick"


def _frames_in(paths: list[Path]) -> int:
    from b2b_train.data.io import IMAGE_EXTS, probe_video

    n = 0
    for p in paths:
        if p.suffix.lower() in IMAGE_EXTS:
            n += 1
            continue
        try:
            info = probe_video(p)
        except B2BError:
            continue
        n += info["frames"] or int(round(info["duration"] * (info["fps"] or 30)))
    return n


def check_material(prof: Profile, camera: str | None = None) -> dict:
    """Count the profile's clips and frames per label; raise one clear B2BError if any is short."""
    cam = camera if camera is not None else "0"
    counts = {}
    missing = []
    for label, how in (("blurry", "move your hands naturally and quickly"), ("sharp", "move slowly, in good light")):
        clips = prof.clips(label)
        frames = _frames_in(clips)
        counts[label] = {"clips": len(clips), "frames": frames}
        if frames < MIN_FRAMES:
            have = f"has {len(clips)} {label} clip(s) with {frames} frames" if clips else f"has no {label} clips"
            missing.append(
                f"{have} (needs at least {MIN_FRAMES} frames): record some with "
                f"`b2b-stream record --camera {cam} --label {label} --profile {prof.name}` ({how})"
            )
    if missing:
        raise B2BError(f"profile {prof.name!r} " + "; and it ".join(missing))
    return counts


def _sample_frames(clips: list[Path], n: int, max_side: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Up to ``n`` frames spread evenly over the clips (name, uint8 RGB)."""
    import cv2

    from b2b_train.data.io import IMAGE_EXTS, iter_video_frames, read_image

    per_clip = max(1, -(-n // max(1, len(clips))))
    out: list[tuple[str, np.ndarray]] = []
    for clip in clips:
        if clip.suffix.lower() in IMAGE_EXTS:
            frames = [(0, read_image(clip))]
        else:
            try:
                frames = [(i, img) for i, _t, img in iter_video_frames(clip)]
            except B2BError:
                continue
        if not frames:
            continue
        idx = np.linspace(0, len(frames) - 1, min(per_clip, len(frames))).round().astype(int)
        for k in dict.fromkeys(idx.tolist()):
            i, img = frames[k]
            if max_side and max(img.shape[:2]) > max_side:
                s = max_side / max(img.shape[:2])
                img = cv2.resize(img, (int(img.shape[1] * s) // 2 * 2, int(img.shape[0] * s) // 2 * 2), interpolation=cv2.INTER_AREA)
            out.append((f"{clip.stem}_{i:05d}", img))
        if len(out) >= n:
            break
    return out[:n]


def _hand_rates(frames: list[tuple[str, np.ndarray]], engines: dict, say: Callable[[str], None]) -> dict | None:
    """Share of frames with at least one hand: raw and after each engine (None without a model)."""
    from .tracking import HandTracker, resolve_hand_model

    try:
        model = resolve_hand_model(None)
    except B2BError as e:
        say(f"hand-detection rate skipped: {e}")
        return None
    out = {"frames": len(frames)}
    variants = {"raw": None, **engines}
    for name, engine in variants.items():
        with HandTracker(model) as tracker:
            hits = 0
            for k, (_n, img) in enumerate(frames):
                # Each frame is its own moment: no tracking carried between unrelated frames.
                out_img = img if engine is None else engine(img)
                hits += bool(tracker.track(out_img, k * 10.0))
        out[name] = round(hits / max(1, len(frames)), 4)
    return out


def probe_known(prof: Profile, known: str | None, steps: int, counts: dict, fresh: bool = False,
                say: Callable[[str], None] = print) -> tuple[str | None, dict | None]:
    """Probe the profile's clips and choose the known blur's extent: ``(known YAML path, report)``, or
    ``(known, None)`` where nothing is probed (``steps`` 0, or a BKE known blur, which has no extent).

    The report is kept in ``probe.json`` with the material it was made from; an unchanged profile
    reuses it (and so trains with the same K, which a resumed translator run requires)."""
    if steps <= 0 or (known or "").startswith("bke:"):
        return known, None
    from b2b_train.deblur_trainer import read_media
    from b2b_train.probe import ProbeConfig, choose_known, extent_candidates, known_yaml

    base = known or "kernels"
    out_json, out_yaml = prof.root / "probe.json", prof.root / "known.yaml"
    key = {"material": counts, "known": base, "steps": steps, "extents": [list(e) for e in PROBE_EXTENTS]}
    if not fresh and out_json.is_file() and out_yaml.is_file():
        try:
            old = json.loads(out_json.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("key") == key:
            say(f"probe: reusing {out_json} (chosen known blur {old['chosen']})")
            return str(out_yaml), old
    blurry = read_media([prof.clips_dir("blurry")], frame_step=10)
    sharp = read_media([prof.clips_dir("sharp")], frame_step=10)
    crop = max(24, min(64, *(min(f.shape[:2]) for f in blurry + sharp)) // 4 * 4)
    cfg = ProbeConfig(steps=steps, batch=8, crop=crop, discriminator_kwargs={"channels": [16, 32, 32]})
    say(f"probe: can a discriminator tell the blurry clips from the sharp ones and from the known blur? "
        f"({len(blurry)} blurry, {len(sharp)} sharp frames, {steps} steps per pair)")
    cands = extent_candidates(base, PROBE_EXTENTS)
    rep = choose_known(blurry, sharp, cands, cfg, log=say)
    extent = dict(zip(cands, PROBE_EXTENTS))[rep["chosen"]]
    rep.update(key=key, known=base, extent=list(extent))
    atomic_write(out_yaml, known_yaml(base, extent).encode())
    atomic_write(out_json, (json.dumps(rep, indent=1, default=str) + "\n").encode())
    say(f"probe: known blur {base} at {rep['chosen']} ({out_yaml})")
    return str(out_yaml), rep


def _verdict(train_meta: dict, hands: dict | None, tolerance: float = 0.05, probe: dict | None = None) -> list[str]:
    """What the user should know before trusting the profile (the report's ``warnings``)."""
    out = []
    if probe:
        if probe.get("note"):
            out.append("probe: " + probe["note"])
        chosen = (probe.get("candidates") or {}).get(probe.get("chosen")) or {}
        if chosen.get("auc") is not None and chosen["auc"] < 0.55:
            out.append(f"probe: the camera's blur already looks like the known blur ({probe['chosen']}, AUC "
                       f"{chosen['auc']:.2f}): the translator has little to change, expect b2b close to the "
                       "deblurrer alone")
    prov = (train_meta or {}).get("provenance") or {}
    note = (prov.get("known_match") or {}).get("note")
    if note:
        out.append(note)
    if prov.get("vgg_weights") == "random":
        out.append("the translator's content loss used random VGG features (no ImageNet VGG file): "
                   "`b2b-train weights fetch vgg16` (or vgg19 for the paper preset) and calibrate again with --fresh")
    if hands and "b2b" in hands and "deblur_only" in hands and hands["b2b"] < hands["deblur_only"] - tolerance:
        out.append(f"with the translator, hands are found in fewer frames ({hands['b2b']:.0%}) than with the "
                   f"deblurrer alone ({hands['deblur_only']:.0%}): train longer (--iters), record more clips, "
                   f"or run without --profile until then")
    return out


def _distill_lite(prof: Profile, iters: int | None, fresh: bool, progress: bool, say: Callable[[str], None],
                  **settings) -> dict:
    """Distil the profile's deblurrer∘translator into ``lite.safetensors``; the numbers for the report.

    ``settings``: :class:`b2b_train.distill.DistillConfig` fields (defaults otherwise)."""
    from b2b_train.distill import distill

    say(f"distilling translator + deblurrer into one network (lite) in {prof.lite_dir}")
    res = distill(prof.translator_path, "default", prof.clips_dir("blurry"), prof.lite_dir, iters=iters,
                  progress=progress, fresh=fresh, restart_if_teacher_changed=True, log=say, **settings)
    tmp = prof.lite_path.with_suffix(".safetensors.tmp")
    shutil.copyfile(res["weights"], tmp)
    tmp.replace(prof.lite_path)
    if Path(res["weights"] + ".json").is_file():
        shutil.copyfile(res["weights"] + ".json", str(prof.lite_path) + ".json")
    say(f"lite: {prof.lite_path}: {res['psnr_student']:.2f} dB vs translator + deblurrer "
        f"(deblurrer alone {res['psnr_baseline']:.2f} dB)")
    return {
        "weights": str(prof.lite_path),
        "net": res["net"],
        "psnr_vs_teacher": res["psnr_student"],
        "baseline_psnr_vs_teacher": res["psnr_baseline"],
        "steps": res["steps"],
        "seconds": res["seconds"],
        "frames": res["frames"],
        "protocol": "PSNR (8-bit, peak 255, whole frames) against translator + deblurrer on held-apart blurry "
                    "frames; baseline = the deblurrer alone",
    }


def calibrate(
    profile: str,
    camera: str | None = None,
    config: str = "auto",
    overrides: tuple[str, ...] = (),
    iters: int | None = None,
    known: str | None = None,
    fresh: bool = False,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    eval_frames: int = 24,
    lite: bool = False,
    lite_iters: int | None = None,
    probe_steps: int = 200,
    home: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict:
    """Train, evaluate and build for one profile; returns (and writes) the profile's report."""
    from b2b_train import trainer as tr
    from b2b_train.evaluate import evaluate

    from .engines import get_engine

    prof = Profile.open(profile, home=home, create=False)
    counts = check_material(prof, camera)
    say(
        f"profile {prof.name}: {counts['blurry']['frames']} blurry frames in {counts['blurry']['clips']} clip(s), "
        f"{counts['sharp']['frames']} sharp frames in {counts['sharp']['clips']} clip(s)"
    )
    cfg_name = default_config() if config == "auto" else config
    train_known, probe = probe_known(prof, known, probe_steps, counts, fresh=fresh, say=say)
    if probe is not None:  # the probe's choice replaces the trainer's Laplacian strength matching
        overrides = tuple(overrides) + ("data.match_known_blur=false",)
    say(f"training the translator (config {cfg_name}{', fresh' if fresh else ''}) in {prof.translator_dir}")
    weights = tr.train_translator(
        prof.clips_dir("blurry"),
        prof.clips_dir("sharp"),
        prof.translator_dir,
        config=cfg_name,
        overrides=overrides,
        known=train_known,
        iters=iters,
        progress=progress,
        fresh=fresh,
    )
    weights = Path(weights)
    tmp = prof.translator_path.with_suffix(".safetensors.tmp")
    shutil.copyfile(weights, tmp)
    tmp.replace(prof.translator_path)
    if Path(str(weights) + ".json").is_file():
        shutil.copyfile(str(weights) + ".json", str(prof.translator_path) + ".json")
    say(f"translator: {prof.translator_path}")

    lite_report = None
    if lite:
        lite_report = _distill_lite(prof, lite_iters, fresh, progress, say)

    # -- engine for the camera's frame size
    from b2b_train.data.io import probe_video

    size = None
    for clip in prof.clips("blurry"):
        try:
            info = probe_video(clip)
            size = (info["width"], info["height"])
            break
        except B2BError:
            continue
    size = size or (640, 480)
    engine = get_engine(prof.name, backend=backend, precision=precision, device=device, size=size, home=prof.home, say=say)
    say(f"engine: {engine.backend} on {engine.device} for {size[0]}x{size[1]}")

    # -- evaluation on frames of the blurry clips (no ground truth: sharpness + hand detection)
    eval_dir = prof.frames_dir / "eval_blurry"
    if eval_dir.exists():
        shutil.rmtree(eval_dir)
    frames = _sample_frames(prof.clips("blurry"), eval_frames)
    from b2b_train.data.io import write_image

    for name, img in frames:
        write_image(eval_dir / f"{name}.png", img)
    prof.samples_dir.mkdir(parents=True, exist_ok=True)
    grid = prof.samples_dir / "calibration_grid.png"
    ev = evaluate(eval_dir, None, translator=prof.translator_path, deblurrer="default", grid=grid, progress=progress)
    say("measuring hand detection before/after ...")
    deblur_only = get_engine(None, backend="torch", device=device, size=size, home=prof.home, cache=False, check=False, say=lambda m: None)
    variants = {"deblur_only": deblur_only, "b2b": engine}
    if lite:
        lite_engine = get_engine(prof.name, backend=backend, precision=precision, device=device, size=size,
                                 home=prof.home, say=say, lite=True)
        say(f"lite engine: {lite_engine.backend} on {lite_engine.device} for {size[0]}x{size[1]}")
        lite_report["engine"] = {"backend": lite_engine.backend, "info": jsonable(lite_engine.info)}
        from b2b_train.data.io import to_tensor
        from b2b_train.metrics import laplacian_variance

        # same measure as the evaluation's sharpness, on the lite engine's output for the same frames
        vals = [float(laplacian_variance(to_tensor(lite_engine(img))[None])[0]) for _n, img in frames]
        lite_report["sharpness"] = float(np.mean(vals)) if vals else None
        variants["lite"] = lite_engine
    hands = _hand_rates(frames, variants, say)

    train_meta = {}
    meta_file = Path(str(prof.translator_path) + ".json")
    if meta_file.is_file():
        try:
            train_meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError:
            train_meta = {}
    warnings = _verdict(train_meta, hands, probe=probe)
    for w in warnings:
        say("warning: " + w)
    report = {
        "profile": prof.name,
        "camera": camera,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "material": counts,
        "translator": {"weights": str(prof.translator_path), "config": cfg_name, "overrides": list(overrides),
                       "iters": train_meta.get("step") or train_meta.get("iters"), "meta": train_meta},
        "engine": {"backend": engine.backend, "device": str(engine.device), "size": list(size), "info": jsonable(engine.info)},
        "evaluation": {k: ev.get(k) for k in ("n_images", "sharpness", "psnr", "ssim", "protocol", "notes") if k in ev},
        "hand_detection_rate": hands,
        **({"probe": {k: probe.get(k) for k in ("auc_b_vs_s", "target", "candidates", "chosen", "extent", "known", "note")}}
           if probe else {}),
        **({"lite": lite_report} if lite_report is not None else {}),
        "samples": [str(grid)] if grid.is_file() else [],
        "warnings": warnings,
    }
    atomic_write(prof.report_path, (json.dumps(report, indent=2) + "\n").encode())
    return report
