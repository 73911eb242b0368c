"""Issue 11, checkpoints: non-float weights, damaged files, configs that change the computation
without changing keys, and scheduler configs the library does not implement are refused,
naming the field."""
from __future__ import annotations

import json
import re

import pytest
import torch

from lit_ip.models.checkpoints import CheckpointError, load_checkpoint, load_strict, save_state_dict
from lit_ip.models.unet import make_unet
from lit_ip.priors.loaders import DiffusersPrior
from lit_ip.priors.paths import VPPath
from lit_ip.priors.pretrained import PretrainedPrior, save_prior_dir


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return make_unet(1, 1, 8, (8, 8), 1, norm_num_groups=4, attention_head_dim=4)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_non_float_weights_are_refused_naming_the_key(dtype):
    net = tiny_unet()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].to(dtype)
    with pytest.raises(CheckpointError, match=rf"non-float weights.*{name} \({dtype}"):
        load_strict(tiny_unet(1), state, "file.pt")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_checkpoint_names_the_file(tmp_path, suffix):
    f = save_state_dict(tiny_unet(), tmp_path / f"w{suffix}")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"w\{suffix} cannot be read.*truncated"):
        load_checkpoint(tiny_unet(), f)


@pytest.fixture
def prior_dir(tmp_path):
    d = save_prior_dir(tmp_path / "prior", tiny_unet(), VPPath(), "eps", (-1, 1), (1, 8, 8))
    PretrainedPrior(str(d))  # loads as saved
    return d


@pytest.mark.parametrize("file, field, value", [
    ("config.json", "act_fn", "mish"),
    ("config.json", "flip_sin_to_cos", False),
    ("prior.json", "prediction", "v"),
    ("prior.json", "data_range", [0.0, 1.0]),
])
def test_edited_config_that_keeps_the_keys_is_refused(prior_dir, file, field, value):
    cfg = json.loads((prior_dir / file).read_text())
    assert cfg[field] != value
    cfg[field] = value
    (prior_dir / file).write_text(json.dumps(cfg))
    now = re.escape(json.dumps(value))
    with pytest.raises(CheckpointError, match=rf"{file} does not describe.*{field}: .* when saved, now {now}"):
        PretrainedPrior(str(prior_dir))


def diffusers_dir(path, unet_config=None, **sched):
    from diffusers import DDPMScheduler

    unet = tiny_unet()
    unet.save_pretrained(path)
    DDPMScheduler(**sched).save_pretrained(path)
    if unet_config:
        cfg = json.loads((path / "config.json").read_text())
        cfg.update(unet_config)
        (path / "config.json").write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("change, message", [
    ({"_class_name": "ScoreSdeVeScheduler", "sigma_max": 348.0}, "_class_name 'ScoreSdeVeScheduler' is a variance-exploding"),
    ({"_class_name": "KarrasVeScheduler"}, "_class_name 'KarrasVeScheduler' is a variance-exploding"),
    ({"_class_name": "FlowMatchEulerDiscreteScheduler"}, "_class_name 'FlowMatchEulerDiscreteScheduler' is a flow-matching"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr: true"),
    ({"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 10}, "num_train_timesteps 10 is not a DDPM training grid"),
    ({"_class_name": "EulerDiscreteScheduler", "timestep_type": "continuous"}, "timestep_type 'continuous'"),
])
def test_scheduler_configs_we_cannot_honour_are_refused(tmp_path, change, message):
    d = diffusers_dir(tmp_path / "m")
    cfg = json.loads((d / "scheduler_config.json").read_text())
    DiffusersPrior(str(d))  # as saved: a DDPM grid
    cfg.update(change)
    (d / "scheduler_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="scheduler_config.json: " + message.replace("(", r"\(")):
        DiffusersPrior(str(d))


def test_scheduler_config_that_is_a_list_and_class_conditional_unet(tmp_path):
    d = diffusers_dir(tmp_path / "m")
    (d / "scheduler_config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="scheduler_config.json: a scheduler config must be a JSON object"):
        DiffusersPrior(str(d))
    d = diffusers_dir(tmp_path / "c", unet_config={"num_class_embeds": 10})
    with pytest.raises(CheckpointError, match="config.json: num_class_embeds = 10: a class-conditional UNet"):
        DiffusersPrior(str(d))


def test_class_conditional_prior_directory_is_refused(prior_dir):
    cfg = json.loads((prior_dir / "config.json").read_text())
    cfg["class_embed_type"] = "timestep"
    (prior_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json: class_embed_type = 'timestep': a class-conditional"):
        PretrainedPrior(str(prior_dir))
