"""``lit-ip report``: comparison tables across runs and the metric-vs-NFE figure."""
import csv
import json

import pytest

from lit_ip.cli import main as cli
from lit_ip.reports import build_table, load_run


def fake_run(root, name, steps, psnr, fid=None):
    """A run folder as the prediction writer leaves it (summary.json only)."""
    d = root / name
    d.mkdir()
    rows = []
    for task, offset in (("sr4", 0.0), ("inpaint", 3.0)):
        rows.append({"task": task, "method": "pinv (baseline)", "images": 4, "psnr": 10.0 + offset, "ssim": 0.3})
        row = {"task": task, "method": "dps", "images": 4, "psnr": psnr + offset, "ssim": 0.5, "nan": 0}
        if fid is not None:
            row["fid"] = fid
        rows.append(row)
        rows.append({"task": task, "method": "dps (mean of samples)", "images": 4, "psnr": psnr + offset + 1,
                     "ssim": 0.6})
    (d / "summary.json").write_text(json.dumps({"summary": rows, "nfe": {"dps": steps}}))
    return d


def test_report_tables_and_figure(tmp_path, capsys):
    runs = [fake_run(tmp_path, f"dps_{n}", n, 20.0 + n / 50, fid=100.0 / n) for n in (25, 50, 100)]
    res = cli(["report", *map(str, runs), "--out", str(tmp_path / "rep"), "--metrics", "psnr,fid,lpips"])
    assert set(res["figures"]) == {"psnr", "fid"}  # no run reports lpips
    png = (tmp_path / "rep" / "psnr_vs_nfe.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    with open(tmp_path / "rep" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 6
    dps = {(r["task"], int(r["nfe"])): float(r["psnr"]) for r in rows if r["method"] == "dps"}
    assert dps == {("sr4", n): pytest.approx(20.0 + n / 50) for n in (25, 50, 100)} | {
        ("inpaint", n): pytest.approx(23.0 + n / 50) for n in (25, 50, 100)}
    assert {r["nfe"] for r in rows if r["method"] == "pinv (baseline)"} == {""}  # no network
    assert list(rows[0])[:5] == ["task", "method", "run", "images", "nfe"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| task | method | run |" in md and md.count("\n| inpaint | dps |") == 3
    assert "no figure for ['lpips']" in capsys.readouterr().out


def test_report_orders_columns_and_names_missing_summaries(tmp_path):
    run = fake_run(tmp_path, "a", 10, 20.0, fid=5.0)
    rows, cols = build_table([run])
    assert cols[:7] == ["task", "method", "run", "images", "nfe", "psnr", "ssim"] and "fid" in cols
    assert "nan" in cols  # any other numeric column is kept
    assert all(r["run"] == "a" for r in load_run(run))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        build_table([tmp_path / "empty"])


@pytest.mark.slow
def test_report_on_real_predict_runs(tmp_path):
    """Two short predict runs of the toy config at different step counts, then the report."""
    import yaml

    from conftest import TOY_CONFIG

    outs = []
    for steps in (5, 20):
        cfg = yaml.safe_load(TOY_CONFIG.read_text())
        cfg["trainer"]["callbacks"][0]["init_args"].update(output_dir=str(tmp_path / f"toy_{steps}"),
                                                           print_summary=False)
        cfg["trainer"]["enable_progress_bar"] = False
        cfg["model"]["init_args"]["methods"] = {
            "ddrm": {"class_path": "lit_ip.methods.ddrm.DDRM", "init_args": {"num_steps": steps}}}
        cfg["model"]["init_args"]["skip_incompatible"] = True
        (tmp_path / f"toy_{steps}.yaml").write_text(yaml.safe_dump(cfg))
        cli(["predict", "--config", str(tmp_path / f"toy_{steps}.yaml")])
        outs.append(tmp_path / f"toy_{steps}")
    res = cli(["report", *map(str, outs), "--out", str(tmp_path / "rep")])
    methods = {r["method"] for r in res["rows"]}
    assert any("pinv" in m for m in methods) and len(methods) >= 2
    nfes = sorted({r["nfe"] for r in res["rows"] if r.get("nfe")})
    assert nfes == [5, 20] and "psnr" in res["figures"]
    for task in {r["task"] for r in res["rows"]}:  # the two runs differ in NFE only: one line per task
        ddrm = [r for r in res["rows"] if r["task"] == task and r["method"] == "ddrm"]
        assert len(ddrm) in (0, 2) and len({r["_series"] for r in ddrm}) <= 1, task
    assert res["images"] and all(p.endswith(".png") for p in res["images"].values())
