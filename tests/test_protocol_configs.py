"""The published-protocol configs (configs/predict/protocols): every one parses at full size
into operators and methods that accept each other, and runs end to end through ``lit-ip
predict`` on CPU with a tiny random ADM checkpoint (shape and plumbing only)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from lit_ip.methods.base import Method
from lit_ip.models.adm import adm_from_preset
from lit_ip.models.checkpoints import save_state_dict
from lit_ip.operators.base import Operator
from lit_ip.operators.noise import NoiseModel

ROOT = Path(__file__).resolve().parents[1] / "configs" / "predict" / "protocols"
CONFIGS = sorted(ROOT.glob("*.yaml"))
SIZE = 32
TINY = {
    "ffhq_10m": dict(image_size=SIZE, model_channels=32, channel_mult=[1, 1, 2],
                     attention_resolutions=[16, 8], num_head_channels=16),
    "imagenet256_uncond": dict(image_size=SIZE, model_channels=32, channel_mult=[1, 2, 2],
                               attention_resolutions=[16, 8, 4], num_head_channels=16),
}


def _instantiate(kind, spec):
    parser = ArgumentParser()
    parser.add_argument("--obj", type=kind)
    return parser.instantiate(parser.parse_object({"obj": spec})).obj


def test_every_protocol_has_a_config():
    names = {c.stem for c in CONFIGS}
    for expected in ("dps_ffhq_sr4", "dps_ffhq_inpaint_box", "dps_ffhq_inpaint_random",
                     "dps_ffhq_gaussian_blur", "dps_ffhq_motion_blur", "pigdm_imagenet_sr4",
                     "pigdm_imagenet_inpainting", "pigdm_imagenet_jpeg", "dmps_ffhq"):
        assert expected in names
    for c in CONFIGS:
        text = c.read_text()
        assert "[0, 1]" in text, f"{c.name} must state the units of sigma_y"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_protocol_parses_at_full_size(config):
    cfg = yaml.safe_load(config.read_text())["model"]["init_args"]
    prior = cfg["prior"]["init_args"]
    assert prior["preset"] in TINY and prior["checkpoint"].endswith(".pt")
    methods = {k: _instantiate(Method, v) for k, v in cfg["methods"].items()}
    for name, task in cfg["tasks"].items():
        op = _instantiate(Operator, task["operator"])
        noise = _instantiate(NoiseModel, task["noise"])
        assert op.in_shape == (3, 256, 256), name
        assert op.bind([0, 1], seed=0).output_shape((3, 256, 256))
        for m in methods.values():
            m.check_operator(op)
        if noise.sigma > 0:
            assert noise.sigma <= 0.25  # [0, 1] units


def _shrink(node, key=None):
    """Scale the protocol down to SIZE x SIZE images and 2 sampler steps."""
    if isinstance(node, dict):
        return {k: _shrink(v, k) for k, v in node.items()}
    if isinstance(node, list) and key == "in_shape":
        return [node[0]] + [max(1, v * SIZE // 256) for v in node[1:]]
    if key == "box_size":
        return max(1, node * SIZE // 256)
    if key == "kernel_size":
        return min(node, 9)
    if key == "num_steps":
        return 2
    if isinstance(node, list):
        return [_shrink(v) for v in node]
    return node


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("protocols")
    ckpts = {}
    for preset, kw in TINY.items():
        torch.manual_seed(0)
        net = adm_from_preset(preset, **kw)
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.02)
        ckpts[preset] = save_state_dict(net, d / f"{preset}.pt")
    from PIL import Image
    rng = np.random.default_rng(0)
    (d / "images").mkdir()
    for i in range(2):
        Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(d / "images" / f"img{i}.png")
    return d, ckpts


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_protocol_runs_end_to_end_on_a_tiny_checkpoint(config, tiny_setup, monkeypatch):
    from PIL import Image

    from lit_ip.cli import main
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    d, ckpts = tiny_setup
    cfg = yaml.safe_load(config.read_text())
    model = cfg["model"]["init_args"]
    tasks, methods = list(model["tasks"]), list(model["methods"])
    small = copy.deepcopy(cfg)
    small["model"]["init_args"]["tasks"] = _shrink(model["tasks"])
    small["model"]["init_args"]["methods"] = _shrink(model["methods"])
    prior = small["model"]["init_args"]["prior"]["init_args"]
    prior.update(TINY[prior["preset"]], checkpoint=str(ckpts[prior["preset"]]))
    small["data"]["init_args"]["source"]["init_args"].update(root=str(d / "images"), size=SIZE)
    small["data"]["init_args"]["batch_size"] = 2
    out = d / "out" / config.stem
    small["trainer"].update(accelerator="cpu", enable_progress_bar=False)
    small["trainer"]["callbacks"][0]["init_args"].update(output_dir=str(out), print_summary=False)
    path = d / f"{config.stem}.yaml"
    path.write_text(yaml.safe_dump(small))
    main(["predict", "--config", str(path)])
    for t in tasks:
        for m in methods:
            files = sorted((out / t / m).glob("*.png"))
            assert [f.stem for f in files] == ["img0", "img1"], (t, m)
            with Image.open(files[0]) as im:
                assert im.size == (SIZE, SIZE)
