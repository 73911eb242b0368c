"""predict sends its summary (and per-image) metrics to the trainer's loggers."""
from __future__ import annotations

import csv
import json
import struct

import pytest
import yaml

from lit_ip.cli import main

from conftest import small_toy_config

TASKS, METHODS = ("denoise", "sr_2x"), ("moment_matching", "dps")


def _run(tmp_path, logger: dict, per_image: bool = False):
    cfg_path = small_toy_config(tmp_path / "toy.yaml", TASKS, METHODS, num_steps=4, items=3, batch_size=2)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["trainer"]["logger"] = logger
    cfg["trainer"]["callbacks"][0]["init_args"]["output_dir"] = str(tmp_path / "out")
    cfg["trainer"]["callbacks"][0]["init_args"]["print_summary"] = False
    if per_image:
        cfg["trainer"]["callbacks"].append({"class_path": "lit_ip.lightning.result_logger.LogResults",
                                            "init_args": {"per_image": True}})
    cfg_path.write_text(yaml.safe_dump(cfg))
    main(["predict", "--config", str(cfg_path), "--trainer.enable_progress_bar=false"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
    return summary, rows


def _expected(summary):
    name = lambda m: m.replace(" (baseline)", "_baseline")  # noqa: E731
    return {f"{s['task']}/{name(s['method'])}/{k}": float(s[k])
            for s in summary for k in ("psnr", "ssim", "nfe", "images") if k in s}


def test_csv_logger_gets_summary_and_per_image_metrics(tmp_path):
    summary, rows = _run(tmp_path, {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                    "init_args": {"save_dir": str(tmp_path / "logs"), "name": "run"}},
                         per_image=True)
    logged = list(csv.DictReader(open(tmp_path / "logs" / "run" / "version_0" / "metrics.csv")))
    step0 = {k: float(v) for r in logged if r["step"] == "0" for k, v in r.items() if v and k != "step"}
    expected = _expected(summary)
    assert len(expected) >= len(TASKS) * (len(METHODS) + 1) * 3
    for k, v in expected.items():
        assert step0[k] == pytest.approx(v, rel=1e-6), k
    per_image = {(int(r["step"]), k): float(v) for r in logged for k, v in r.items()
                 if v and k.startswith("per_image/")}
    for r in rows:  # every image's PSNR, at step = its data index
        key = (int(r["index"]), f"per_image/{r['task']}/{r['method']}/psnr")
        assert per_image[key] == pytest.approx(float(r["psnr"]), rel=1e-6), key


def _tensorboard_scalars(folder) -> dict:
    """tag -> {step: value} from TensorBoard event files (TFRecord framing, tensorboardX protos)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict = {}
    for f in folder.rglob("events.out.tfevents.*"):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            ev = Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in ev.summary.value:
                out.setdefault(v.tag, {})[ev.step] = v.simple_value
    return out


def test_tensorboard_logger_gets_summary_metrics_by_default(tmp_path):
    """No LogResults in the config: lit-ip predict adds it because the trainer has a logger."""
    pytest.importorskip("tensorboardX")
    summary, _ = _run(tmp_path, {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                                 "init_args": {"save_dir": str(tmp_path / "tb"), "name": "run"}})
    scalars = _tensorboard_scalars(tmp_path / "tb")
    for k, v in _expected(summary).items():
        assert scalars[k][0] == pytest.approx(v, rel=1e-5), k
    assert not any(k.startswith("per_image/") for k in scalars)


def test_no_logger_logs_nothing_and_runs(tmp_path):
    summary, _ = _run(tmp_path, False)
    assert summary and not (tmp_path / "lightning_logs").exists()
