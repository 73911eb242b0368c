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

from conftest import TOY_CONFIG, predict_args

KEYS = [f"sample_{i:05d}" for i in range(8)]  # gaussian_toy: 8 prior draws
TASKS = ("denoise", "inpaint")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_toy_config_writes_every_output(toy_run):
    proc, out = toy_run
    for key in KEYS:
        assert (out / "ground_truth" / f"{key}.png").is_file()
        assert (out / "metrics" / f"{key}.json").is_file()
        for task in TASKS:
            for sub in ("measurement", "pinv", "ddpm_unconditional"):
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
    assert {(t, m) for _, t, m, _ in ids} == {(t, m) for t in TASKS for m in ("pinv", "ddpm_unconditional")}
    for r in rows:  # PSNR recomputed from the 8-bit PNGs agrees up to quantisation
        sub = "pinv" if r["method"] == "pinv" else r["method"]
        x = read_png(out / r["task"] / sub / f"{r['key']}.png")
        gt = read_png(out / "ground_truth" / f"{r['key']}.png")
        psnr = float(peak_signal_noise_ratio(x[None], gt[None], data_range=1.0))
        assert abs(psnr - float(r["psnr"])) < 0.3, r
        assert -1 <= float(r["ssim"]) <= 1
    summary = json.loads((out / "summary.json").read_text())
    for s in summary["summary"]:
        method = "pinv" if s["method"] == "pinv (baseline)" else s["method"]
        vals = [float(r["psnr"]) for r in rows if r["task"] == s["task"] and r["method"] == method]
        assert s["images"] == len(KEYS) and s["psnr"] == pytest.approx(sum(vals) / len(vals), rel=1e-6)
    assert summary["measurement_shown_as"] == {"denoise": "y", "inpaint": "y"}


def test_measurement_is_noisy_operator_output(toy_run):
    """The denoising measurement PNG is the ground truth plus noise of std ~0.1 (the config's sigma)."""
    _, out = toy_run
    diffs = torch.cat([(read_png(out / "denoise" / "measurement" / f"{k}.png")
                        - read_png(out / "ground_truth" / f"{k}.png")).flatten() for k in KEYS])
    inside = diffs.abs() < 0.4  # ignore the few pixels clipped at 0 or 1
    assert 0.08 < float(diffs[inside].std()) < 0.12


def test_predict_defaults_to_not_keeping_predictions(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    cli = main(predict_args(TOY_CONFIG, tmp_path / "a", "--data.init_args.source.init_args.num_samples=2",
                            "--model.init_args.methods.ddpm_unconditional.init_args.num_steps=2"))
    assert cli.config["predict"]["return_predictions"] is False
    assert cli.trainer.predict_loop.return_predictions is False
    assert cli.trainer.default_root_dir == str(tmp_path / "a")
    cli = main(predict_args(TOY_CONFIG, tmp_path / "b", "--data.init_args.source.init_args.num_samples=2",
                            "--model.init_args.methods.ddpm_unconditional.init_args.num_steps=2",
                            "--return_predictions=true"))
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
