"""``lit-ip predict`` end to end (subprocess) and the CLI's predict defaults."""
from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from lit_ip.cli import TOOLS, main
from lit_ip.io import read_png

from conftest import TOY_CONFIG, load_config, predict_args, small_toy_config

_TOY = load_config()
KEYS = [f"sample_{i:05d}" for i in range(_TOY["data"]["init_args"]["source"]["init_args"]["num_samples"])]
TASKS = tuple(_TOY["model"]["init_args"]["tasks"])
METHODS = tuple(_TOY["model"]["init_args"]["methods"])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_toy_config_writes_every_output(toy_run):
    proc, out = toy_run
    for key in KEYS:
        assert (out / "ground_truth" / f"{key}.png").is_file()
        assert (out / "metrics" / f"{key}.json").is_file()
        for task in TASKS:
            for sub in ("measurement", "pinv") + METHODS:
                assert (out / task / sub / f"{key}.png").is_file(), (task, sub, key)
    for task in TASKS:
        fig = read_png(out / "figures" / f"{task}.png")
        assert min(fig.shape[1:]) > 200  # a real figure, not an empty canvas
    assert (out / "config.yaml").is_file(), "the run's config is saved next to its outputs"
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    assert "Posterior sampling summary" in proc.stdout and "pinv (baseline)" in proc.stdout


def test_metrics_table_matches_written_images(toy_run):
    _, out = toy_run
    rows = read_csv(out / "metrics.csv")
    ids = Counter((r["key"], r["task"], r["method"], r["sample"]) for r in rows)
    assert set(k for k, *_ in ids) == set(KEYS) and max(ids.values()) == 1
    # where y has the image's shape it is the trivial estimate (not SR's smaller y, not CS's vector)
    trivial = {(t, "trivial") for t in TASKS if t not in ("cs", "sr_2x")}
    assert {(t, m) for _, t, m, _ in ids} == {(t, m) for t in TASKS for m in ("pinv",) + METHODS} | trivial
    for r in rows:  # PSNR recomputed from the 8-bit PNGs agrees up to quantisation
        sub = "measurement" if r["method"] == "trivial" else r["method"]
        x = read_png(out / r["task"] / sub / f"{r['key']}.png")
        gt = read_png(out / "ground_truth" / f"{r['key']}.png")
        psnr = float(peak_signal_noise_ratio(x[None], gt[None], data_range=1.0))
        assert abs(psnr - float(r["psnr"])) < 0.3, r
        assert -1 <= float(r["ssim"]) <= 1
    summary = json.loads((out / "summary.json").read_text())
    for s in summary["summary"]:
        method = s["method"].replace(" (baseline)", "")
        vals = [float(r["psnr"]) for r in rows if r["task"] == s["task"] and r["method"] == method]
        assert s["images"] == len(KEYS) and s["psnr"] == pytest.approx(sum(vals) / len(vals), rel=1e-6)
    shown = summary["measurement_shown_as"]
    assert shown["cs"] == "pinv (y has shape (24,))"  # compressed sensing: y is a vector
    assert all(shown[t] == "y" for t in TASKS if t != "cs")


def test_exact_method_beats_baselines_on_the_gaussian_toy(toy_run):
    """Moment matching samples the exact posterior of the Gaussian prior: it must beat both the
    pseudo-inverse and unconditional sampling on every task (ignoring y would not)."""
    _, out = toy_run
    summary = {(s["task"], s["method"]): s["psnr"] for s in json.loads((out / "summary.json").read_text())["summary"]}
    for t in TASKS:
        exact = summary[(t, "moment_matching")]
        assert exact > summary[(t, "pinv (baseline)")] and exact > summary[(t, "unconditional")] + 3, t


def test_measurement_is_noisy_operator_output(toy_run):
    """The denoising measurement PNG is the ground truth plus noise of the config's sigma."""
    _, out = toy_run
    sigma = _TOY["model"]["init_args"]["tasks"]["denoise"]["noise"]["init_args"]["sigma"]
    diffs = torch.cat([(read_png(out / "denoise" / "measurement" / f"{k}.png")
                        - read_png(out / "ground_truth" / f"{k}.png")).flatten() for k in KEYS])
    inside = diffs.abs() < 0.4  # ignore the few pixels clipped at 0 or 1
    assert 0.8 * sigma < float(diffs[inside].std()) < 1.2 * sigma


def test_predict_defaults_to_not_keeping_predictions(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    small = small_toy_config(tmp_path / "small.yaml", ["denoise"], ["unconditional"], num_steps=2, items=2)
    cli = main(predict_args(small, tmp_path / "a"))
    assert cli.config["predict"]["return_predictions"] is False
    assert cli.trainer.predict_loop.return_predictions is False
    assert cli.trainer.default_root_dir == str(tmp_path / "a")
    cli = main(predict_args(small, tmp_path / "b", "--return_predictions=true"))
    assert cli.trainer.predict_loop.return_predictions is True


PREDICT_CONFIGS = sorted((TOY_CONFIG.parent).glob("*.yaml"))


@pytest.mark.parametrize("config", PREDICT_CONFIGS, ids=lambda c: c.stem)
def test_predict_configs_parse(config, monkeypatch, capsys):
    """Every shipped predict config names importable classes with valid arguments."""
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    with pytest.raises(SystemExit) as err:
        main(["predict", "--config", str(config), "--print_config"])
    assert err.value.code in (0, None), capsys.readouterr().err[-2000:]
    printed = capsys.readouterr().out
    assert "PosteriorSamplingModule" in printed and "PredictionWriter" in printed


def _echo_tool(argv):
    return ("echo", list(argv))


def test_tools_dict_dispatches_before_lightning(monkeypatch):
    monkeypatch.setitem(TOOLS, "echo-tool", "test_cli:_echo_tool")
    assert main(["echo-tool", "x", "--y"]) == ("echo", ["x", "--y"])
