"""Per-sample randomness of the particle methods: MCGdiff's, FPS-SMC's, SMCDiff's and TDS's draws do
not depend on the batch or the number of processes (two-process DDP on CPU, gloo, batch 3 per
process, against one process with batch 4), with particles in chunks that cut across measurements."""
from __future__ import annotations

import csv

import pytest

from lit_ip.io import read_png

from conftest import output_files, predict_args, run_cli, small_toy_config

pytestmark = pytest.mark.slow
TASKS, ITEMS = ["denoise", "inpaint"], 5
CHUNKED = {"num_particles": 4, "particle_chunk": 3}
PARTICLE_METHODS = {"mcgdiff": {"class_path": "lit_ip.methods.mcgdiff.MCGdiff", "init_args": dict(CHUNKED)},
                    "fps_smc": {"class_path": "lit_ip.methods.fps.FPSSMC", "init_args": dict(CHUNKED)},
                    "smcdiff": {"class_path": "lit_ip.methods.smcdiff.SMCDiff", "init_args": dict(CHUNKED)},
                    "tds": {"class_path": "lit_ip.methods.smc.TDS", "init_args": dict(CHUNKED)}}


def test_particle_draws_match_across_batches_and_processes(tmp_path):
    one = small_toy_config(tmp_path / "one.yaml", TASKS, [], num_samples=2, items=ITEMS, batch_size=4,
                           extra_methods=PARTICLE_METHODS)
    two = small_toy_config(tmp_path / "two.yaml", TASKS, [], num_samples=2, items=ITEMS, batch_size=3,
                           extra_methods=PARTICLE_METHODS)
    p1 = run_cli(predict_args(one, tmp_path / "out1"), cwd=tmp_path)
    assert p1.returncode == 0, p1.stderr[-3000:]
    p2 = run_cli(predict_args(two, tmp_path / "out2", "--trainer.devices=2", "--trainer.strategy=ddp",
                              "--trainer.accelerator=cpu"), cwd=tmp_path)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "Starting with 2 processes" in p2.stdout + p2.stderr
    files1, files2 = output_files(tmp_path / "out1"), output_files(tmp_path / "out2")
    assert sorted(files1) == sorted(files2)
    rows = [list(csv.DictReader(open(out / "metrics.csv", newline=""))) for out in (tmp_path / "out1", tmp_path / "out2")]
    key = lambda r: (r["key"], r["task"], r["method"], r["sample"])
    by = {key(r): r for r in rows[1]}
    for name in PARTICLE_METHODS:
        pngs = [rel for rel in files1 if rel.endswith(".png") and f"/{name}/" in f"/{rel}"]
        assert len(pngs) >= ITEMS * len(TASKS) * 2, (name, sorted(files1))
        worst = max(float((read_png(files1[r]) - read_png(files2[r])).abs().max()) * 255 for r in pngs)
        assert worst <= 1.0 + 1e-6, f"{name} PNG differs by {worst} grey levels between 1 and 2 processes"
        mine = [r for r in rows[0] if r["method"] == name]
        assert mine and all(key(r) in by for r in mine), name
        for r in mine:
            assert float(by[key(r)]["psnr"]) == pytest.approx(float(r["psnr"]), abs=1e-3), (name, key(r))
