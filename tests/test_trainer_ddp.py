"""Two-process (gloo, CPU) data-parallel translator training keeps the replicas identical."""

from __future__ import annotations

import os
import socket

import cv2
import pytest
import torch
import torch.multiprocessing as mp

from b2b_train.checkpoint import load_weights, read_meta, state_dict_digest
from b2b_train.data.io import iter_video_frames, write_image

TINY = [
    "model.generator=mimo-unet",
    "model.generator_kwargs={base_channel: 8, num_res: 1}",
    "model.discriminator_kwargs={ndf: 8, n_layers: 2}",
    "data.crop=48", "data.batch=4", "data.val_images=2", "data.val_size=48",
    "loss.vgg_arch=vgg16", "loss.vgg_layers=[relu1_2]", "loss.vgg_layer_weights=[1.0]",
    "train.log_every=1", "train.val_every=1000", "train.ckpt_every=2", "train.deblur_samples=false",
    "train.device=cpu",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, blurry: str, sharp: str, out: str, iters: int, report: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from b2b_train.trainer import TranslatorTrainer, load_translator_config

    cfg = load_translator_config("cpu-quick", TINY, iters=iters)
    t = TranslatorTrainer(cfg, blurry, sharp, out, show_progress=False)
    seen = []
    t.on_step = lambda s, m: seen.append(m["loss_d"])
    try:
        t.run()
        # every rank reports its own replica's digests and what it saw
        with open(f"{report}.{rank}", "w") as f:
            f.write(f"{state_dict_digest(t.G)} {state_dict_digest(t.D)} {len(seen)} {seen[0]!r}\n")
    finally:
        t.dist.close()


@pytest.fixture(scope="module")
def frames(tmp_path_factory, asl_clips):
    root = tmp_path_factory.mktemp("frames")
    for clip, label in ((asl_clips[4], "blurry"), (asl_clips[5], "sharp")):
        for i, _t, img in iter_video_frames(clip, step=10, max_frames=5):
            write_image(root / label / f"{clip.stem}_{i:03d}.png", cv2.resize(img, (128, 96), interpolation=cv2.INTER_AREA))
    return root / "blurry", root / "sharp"


def test_two_process_gloo_run_keeps_replicas_identical(frames, tmp_path):
    out = tmp_path / "ddp"
    report = str(tmp_path / "digest")
    iters = 3
    mp.spawn(_worker, args=(2, _free_port(), str(frames[0]), str(frames[1]), str(out), iters, report), nprocs=2, join=True)
    lines = [open(f"{report}.{r}").read().split() for r in range(2)]
    g0, d0, n0, first0 = lines[0]
    g1, d1, n1, first1 = lines[1]
    assert (g0, d0) == (g1, d1)           # identical weights on both ranks after 3 steps
    assert n0 == n1 == str(iters)
    assert first0 != first1                # ... although each rank trained on its own shard
    meta = read_meta(out / "translator.safetensors")
    prov = meta["provenance"]
    assert prov["world_size"] == 2 and prov["steps"] == iters
    assert prov["replica_digests"][0] == prov["replica_digests"][1] == [g0, d0]
    w, _ = load_weights(out / "translator.safetensors")
    assert state_dict_digest(w) == g0
    # only rank 0 wrote files: one log, one set of checkpoints
    assert (out / "log.csv").is_file() and not list(out.glob("*.1"))
