"""configs/predict/all_methods.yaml is generated from configs/method/*.yaml and stays in sync;
the bundled held-out crops are the data set's crops."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import yaml

from lit_ip.data.bundled import NaturalCrops
from lit_ip.data.folder import ImageFolder

REPO = Path(__file__).resolve().parent.parent


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_all_methods_config_is_generated_from_the_method_configs():
    tool = _tool("make_all_methods_config")
    assert (REPO / "configs/predict/all_methods.yaml").read_text() == tool.build(), \
        "configs/predict/all_methods.yaml is stale: run python tools/make_all_methods_config.py"
    cfg = yaml.safe_load((REPO / "configs/predict/all_methods.yaml").read_text())["model"]["init_args"]
    shipped = {}
    for f in (REPO / "configs/method").glob("*.yaml"):
        shipped.update(yaml.safe_load(f.read_text())["model"]["init_args"]["methods"])
    assert cfg["methods"] == shipped and len(shipped) >= 1
    demo = yaml.safe_load((REPO / "configs/predict/demo.yaml").read_text())["model"]["init_args"]
    assert cfg["tasks"] == demo["tasks"] and cfg["num_samples"] == 4
    assert cfg["prior"]["init_args"]["path_or_name"] == "natural_ddpm"


def test_all_methods_config_parses(tmp_path):
    """The CLI parses the generated config (every class_path and argument type-checks)."""
    from lit_ip.cli import main

    out = tmp_path / "cfg.yaml"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main(["predict", "--config", str(REPO / "configs/predict/all_methods.yaml"), "--print_config"])
        except SystemExit as e:
            assert e.code in (0, None)
    out.write_text(buf.getvalue())
    printed = yaml.safe_load(out.read_text())
    assert set(printed["model"]["init_args"]["methods"]) == set(
        yaml.safe_load((REPO / "configs/predict/all_methods.yaml").read_text())["model"]["init_args"]["methods"])


def test_bundled_heldout_crops_are_the_data_set_crops():
    tool = _tool("make_heldout_crops")
    data = NaturalCrops(split="heldout", size=32)
    folder = ImageFolder(str(tool.FOLDER), channels=3)
    want = {data[i]["key"]: data[i]["image"] for i in tool.heldout_indices(len(data))}
    assert sorted(want) == folder.keys
    for i, key in enumerate(folder.keys):
        assert (folder[i]["image"] - want[key]).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
    assert all(k.split("_")[0] in ("chelsea", "coffee") for k in folder.keys)  # held-out photographs
