"""Two-process DDP predict (CPU, gloo) writes every key exactly once and matches one process."""
from __future__ import annotations

import csv
from collections import Counter

import pytest
import yaml

from lit_ip.io import read_png

from conftest import TOY_CONFIG, output_files, predict_args, run_cli

pytestmark = pytest.mark.slow


def metric_rows(out):
    with open(out / "metrics.csv", newline="") as f:
        return {(r["key"], r["task"], r["method"], r["sample"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The toy config under 2-process DDP, batch size 3, with a journal of item reads."""
    work = tmp_path_factory.mktemp("toy_ddp")
    out, journal = work / "out", work / "journal.txt"
    cfg = yaml.safe_load(TOY_CONFIG.read_text())
    data = cfg["data"]["init_args"]
    data["source"] = {"class_path": "conftest.JournaledSource",
                      "init_args": {"source": data["source"], "journal": str(journal)}}
    data["batch_size"] = 3
    config = work / "toy_ddp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = run_cli(predict_args(config, out, "--trainer.devices=2", "--trainer.strategy=ddp",
                                "--trainer.accelerator=cpu"), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reads = [tuple(int(v) for v in line.split()) for line in journal.read_text().splitlines()]
    return proc, out, reads


def test_ddp_shards_items_across_two_processes(ddp_run):
    proc, _, reads = ddp_run
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    by_index = Counter(i for _, i in reads)
    assert sorted(by_index) == list(range(8)) and max(by_index.values()) == 1, by_index
    pids = {pid for pid, _ in reads}
    assert len(pids) == 2, f"items were read by processes {pids}"


def test_ddp_writes_each_key_once_and_matches_one_process(toy_run, ddp_run):
    _, out1 = toy_run
    _, out2, _ = ddp_run
    files1, files2 = output_files(out1), output_files(out2)
    assert sorted(files1) == sorted(files2)
    assert not list(out2.rglob("*.tmp"))
    worst = 0.0
    for rel, p1 in files1.items():
        if rel.endswith(".png"):  # same per-sample seeds: at most one grey level of rounding
            worst = max(worst, float((read_png(p1) - read_png(files2[rel])).abs().max()) * 255)
    assert worst <= 1.0 + 1e-6, f"PNG differs by {worst} grey levels"
    rows1, rows2 = metric_rows(out1), metric_rows(out2)
    with open(out2 / "metrics.csv", newline="") as f:
        counts = Counter((r["key"], r["task"], r["method"], r["sample"]) for r in csv.DictReader(f))
    assert max(counts.values()) == 1 and set(counts) == set(rows1)
    for k, r in rows1.items():
        assert float(rows2[k]["psnr"]) == pytest.approx(float(r["psnr"]), abs=1e-3)
        assert float(rows2[k]["ssim"]) == pytest.approx(float(r["ssim"]), abs=1e-4)
