"""Two-process (gloo, CPU) data-parallel translator training keeps the replicas identical."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from b2b_train.checkpoint import load_weights, read_meta, state_dict_digest
from conftest import tiny_translator, write_frame_sets

TINY = tiny_translator(log_every=1, val_every=1000, ckpt_every=2, device="cpu")


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
    return write_frame_sets(tmp_path_factory.mktemp("frames"), asl_clips[4], asl_clips[5], step=10, max_frames=5)


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
