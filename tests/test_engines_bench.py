"""``b2b-stream bench`` on a real ASL clip: every stage timed alone, the pipeline, and its efficiency."""

from __future__ import annotations

import json

from click.testing import CliRunner

from b2b_stream.commands.bench import bench
from conftest import DEBLURRER, tiny_nets


def test_bench_writes_stage_and_pipeline_numbers(asl_clips, hand_model, b2b_home, tmp_path):
    from b2b_train.nets.registry import save_network, spec

    _, db, _ = tiny_nets(seed=6)
    deb = tmp_path / "deblurrer.safetensors"
    save_network(deb, db, DEBLURRER, dict(spec(DEBLURRER).tiny_kwargs))
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(bench, ["--camera", str(asl_clips[0]), "--size", "160x120", "--backend", "torch",
                                   "--deblurrer", str(deb), "--frames", "8", "--json", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["size"] == [160, 120] and res["engine"]["backend"] == "torch"
    assert set(res["stages"]) == {"capture", "infer", "track"}
    for st in res["stages"].values():
        assert st["frames"] == 8 and st["fps"] > 0 and st["ms_p95"] >= st["ms_p50"] >= 0
    slowest = min(res["stages"], key=lambda k: res["stages"][k]["fps"])
    assert res["slowest_stage"] == slowest
    p = res["pipeline"]
    assert p["frames_out"] == 8 and p["fps"] > 0
    assert abs(res["efficiency"] - p["fps"] / res["stages"][slowest]["fps"]) < 1e-2
    assert "pipeline efficiency" in r.output and "Example:" in CliRunner().invoke(bench, ["--help"]).output
