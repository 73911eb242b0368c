"""Two-process DDP predict (CPU, gloo) writes every key exactly once and matches one process.

Both runs use a cut-down toy config with a gradient method (moment matching), an SVD method
(DDRM), a per-sample-random operator (inpainting masks), a vector measurement (compressed
sensing) and two posterior samples per measurement; batch sizes differ (4 vs 3 per process).
"""
from __future__ import annotations

import csv
from collections import Counter

import pytest

from lit_ip.io import read_png

from conftest import output_files, predict_args, run_cli, small_toy_config

pytestmark = pytest.mark.slow
TASKS, METHODS, ITEMS = ["denoise", "inpaint", "cs"], ["moment_matching", "ddrm"], 6


def metric_rows(out):
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def ident(r):
    return r["key"], r["task"], r["method"], r["sample"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-process output, DDP output, DDP stdout+stderr, journal of item reads (pid, index))."""
    work = tmp_path_factory.mktemp("ddp")
    journal = work / "journal.txt"
    one = small_toy_config(work / "one.yaml", TASKS, METHODS, num_samples=2, items=ITEMS, batch_size=4)
    two = small_toy_config(work / "two.yaml", TASKS, METHODS, num_samples=2, items=ITEMS, batch_size=3,
                           source_wrapper=lambda src: {"class_path": "conftest.JournaledSource",
                                                       "init_args": {"source": src, "journal": str(journal)}})
    p1 = run_cli(predict_args(one, work / "out1"), cwd=work)
    assert p1.returncode == 0, p1.stderr[-3000:]
    p2 = run_cli(predict_args(two, work / "out2", "--trainer.devices=2", "--trainer.strategy=ddp",
                              "--trainer.accelerator=cpu"), cwd=work)
    assert p2.returncode == 0, p2.stderr[-3000:]
    reads = [tuple(int(v) for v in line.split()) for line in journal.read_text().splitlines()]
    return work / "out1", work / "out2", p2.stdout + p2.stderr, reads


def test_ddp_shards_items_across_two_processes(runs):
    _, _, log, reads = runs
    assert "Starting with 2 processes" in log
    by_index = Counter(i for _, i in reads)
    assert sorted(by_index) == list(range(ITEMS)) and max(by_index.values()) == 1, by_index
    assert len({pid for pid, _ in reads}) == 2, "both processes should have read items"


def test_ddp_writes_each_key_once_and_matches_one_process(runs):
    out1, out2, _, _ = runs
    files1, files2 = output_files(out1), output_files(out2)
    assert sorted(files1) == sorted(files2)
    assert len([f for f in files1 if f.startswith("metrics/") and f.count("/") == 1]) == ITEMS  # done markers
    assert len([f for f in files1 if f.startswith("metrics/pairs/")]) == ITEMS * len(TASKS) * len(METHODS)
    assert not list(out2.rglob("*.tmp"))
    worst = 0.0
    for rel, p1 in files1.items():
        if rel.endswith(".png"):  # same per-sample seeds: at most one grey level of rounding
            worst = max(worst, float((read_png(p1) - read_png(files2[rel])).abs().max()) * 255)
    assert worst <= 1.0 + 1e-6, f"PNG differs by {worst} grey levels"
    rows1, rows2 = metric_rows(out1), metric_rows(out2)
    counts = Counter(ident(r) for r in rows2)
    assert max(counts.values()) == 1 and set(counts) == {ident(r) for r in rows1}
    # pinv + 2 samples + mean per method, and the trivial estimate where y is an image (not cs)
    assert len(rows1) == ITEMS * (len(TASKS) * (1 + len(METHODS) * 3) + len(TASKS) - 1)
    by_id = {ident(r): r for r in rows2}
    for r in rows1:
        assert float(by_id[ident(r)]["psnr"]) == pytest.approx(float(r["psnr"]), abs=1e-3)
        assert float(by_id[ident(r)]["ssim"]) == pytest.approx(float(r["ssim"]), abs=1e-4)
