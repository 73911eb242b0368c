"""``lit-ip report``: panels per setting, lines only across NFE, frontiers, image comparison grids."""
import json

import pytest
import torch

from lit_ip import io
from lit_ip.lightning.figures import CAPTION, GAP, TOP
from lit_ip.report_figures import _panels, frontier
from lit_ip.reports import report


def run(root, name, prior, steps, psnr, zeta=1.0, keys=("a", "b", "c")):
    """A finished run folder: summary.json with the writer's ``run`` lines, and PNG outputs."""
    d = root / name
    lines = [f"prior: {prior} (3, 8, 8)", "num_samples: 1, seed: 0",
             "task sr4: Task(AveragePoolSR(factor=2), GaussianNoise(0.02)) -> methods ['dps']",
             f"method dps: DPS(num_steps={steps}, zeta={zeta}, eta=1.0)"]
    rows = [{"task": "sr4", "method": "pinv (baseline)", "images": 3, "psnr": 15.0},
            {"task": "sr4", "method": "dps", "images": 3, "psnr": psnr, "nfe": steps}]
    g = torch.Generator().manual_seed(len(name))
    for k in keys:
        for sub in ("ground_truth", "sr4/measurement", "sr4/pinv", "sr4/dps"):
            (d / sub).mkdir(parents=True, exist_ok=True)
            io.write_png(d / sub / f"{k}.png", torch.rand(3, 8, 8, generator=g))
        (d / "metrics").mkdir(exist_ok=True)
        (d / "metrics" / f"{k}.json").write_text(json.dumps({"key": k, "rows": [
            {"task": "sr4", "method": "dps", "sample": 0, "psnr": psnr}]}))
    (d / "summary.json").write_text(json.dumps({"summary": rows, "run": lines}))
    return d


def test_frontier_keeps_points_no_cheaper_point_beats():
    pts = [(10, 20.0), (20, 19.0), (40, 25.0), (40, 24.0), (80, 24.5), (160, 26.0)]
    assert frontier(pts, lower_is_better=False) == [(10, 20.0), (40, 25.0), (160, 26.0)]
    assert frontier([(10, 5.0), (20, 6.0), (30, 1.0)], lower_is_better=True) == [(10, 5.0), (30, 1.0)]


def test_only_runs_differing_in_nfe_are_joined(tmp_path):
    runs = [run(tmp_path, "a25", "PretrainedPrior(natural_ddpm)", 25, 20.0),
            run(tmp_path, "a50", "PretrainedPrior(natural_ddpm)", 50, 21.0),
            run(tmp_path, "a50z", "PretrainedPrior(natural_ddpm)", 50, 22.0, zeta=2.0),
            run(tmp_path, "b50", "PretrainedPrior(natural_rf)", 50, 18.0)]
    res = report(runs, tmp_path / "rep", ["psnr"], max_images=0)
    dps = {r["run"]: r for r in res["rows"] if r["method"] == "dps"}
    assert dps["a25"]["_series"] == dps["a50"]["_series"]          # differ in num_steps only: one line
    assert dps["a50z"]["_series"] != dps["a50"]["_series"]         # other zeta: another line ...
    assert dps["a50z"]["_context"] == dps["a50"]["_context"]       # ... in the same panel
    assert dps["b50"]["_context"] != dps["a50"]["_context"]        # other prior: another panel
    panels = _panels(res["rows"], "psnr")
    assert len(panels) == 2 and sorted(len(v) for v in panels.values()) == [1, 3]
    fr = {(r["run"], r["nfe"]) for r in res["frontiers"]["psnr"]}
    assert fr == {("a25", 25), ("a50z", 50), ("b50", 50)}
    assert "a50z" in (tmp_path / "rep" / "frontier_psnr.md").read_text()


def test_panels_are_faceted_into_a_grid(tmp_path):
    from lit_ip.report_figures import plot_grid

    rows = [{"task": f"t{i}", "method": "m", "run": "r", "nfe": n, "psnr": 20.0 + n / 10}
            for i in range(5) for n in (10, 20)]
    png = io.read_png(plot_grid(rows, "psnr", tmp_path / "g.png"))
    h, w = png.shape[-2:]
    assert 1.5 < w / h < 2.2  # 3 columns x 2 rows (one row of 5 panels would be ~6:1)


def test_image_comparison_shows_the_same_images_across_runs(tmp_path):
    runs = [run(tmp_path, "r1", "P", 25, 20.0, keys=("a", "b", "c")),
            run(tmp_path, "r2", "P", 50, 21.0, keys=("b", "c", "d"))]
    res = report(runs, tmp_path / "rep", ["psnr"], max_images=4)
    assert set(res["images"]) == {"sr4"}
    png = io.read_png(res["images"]["sr4"])
    cell = 8 * 12  # 8-pixel images upscaled to >= 96 pixels
    rows = 2 + 2 * 2  # ground truth, measurement, then (run, method) for pinv and dps of each run
    assert png.shape[-2] == TOP + rows * (cell + CAPTION + GAP)
    assert png.shape[-1] > 2 * cell and png.shape[-1] < 3 * (cell + GAP) + 200  # the 2 common keys b, c


def test_report_without_run_lines_joins_by_method_as_before(tmp_path):
    for n in (10, 20):
        d = tmp_path / f"r{n}"
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({"summary": [
            {"task": "t", "method": "dps", "psnr": 20.0 + n, "images": 1}], "nfe": {"dps": n}}))
    res = report([tmp_path / "r10", tmp_path / "r20"], tmp_path / "rep", ["psnr"])
    assert len({r["_series"] for r in res["rows"]}) == 1 and res["images"] == {}
    with pytest.raises(FileNotFoundError):
        report([tmp_path / "nothing"], tmp_path / "rep2")
