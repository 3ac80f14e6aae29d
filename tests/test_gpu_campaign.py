"""The lent-GPU campaign script runs end to end (every stage a few steps, on the CPU) and returns
at most the files the device tool brings back. Slow (about 4 minutes): `pytest -m slow`."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest


@pytest.mark.slow
def test_campaign_smoke_returns_its_five_files(repo_root, shared_data, tmp_path):
    dev = tmp_path / "devdata"
    subprocess.run([sys.executable, "benchmarks/prepare_campaign.py", "--data", str(shared_data), "--out", str(dev)],
                   cwd=repo_root, check=True)
    link = repo_root / ".devdata"
    if link.exists():
        pytest.skip(".devdata exists in the checkout; not replacing it")
    link.symlink_to(dev)
    try:
        out = tmp_path / "out"
        env = {**os.environ, "DEVICE": "cpu", "SMOKE": "1", "OUT": str(out), "SPEED_S": "300", "LITE_S": "120",
               "MID_S": "120", "SWEEP_S": "60"}
        subprocess.run(["bash", "benchmarks/gpu_campaign.sh"], cwd=repo_root, env=env, check=True)
    finally:
        link.unlink()
    files = sorted(p.name for p in out.iterdir())
    assert files == ["campaign.log", "lite.tar", "mid.tar", "speed.json", "sweep.tar"]
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    for stage in ("lite", "mid"):
        names = tarfile.open(out / f"{stage}.tar").getnames()
        assert f"{stage}/deblurrer.safetensors" in names and f"{stage}/gate.json" in names
