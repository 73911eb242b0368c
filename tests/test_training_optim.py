"""The training module's optimizer and learning-rate schedule come from the config."""
import pytest
import torch
import yaml
from test_training import TINY_NET

from lit_ip.cli import main
from lit_ip.lightning.training import DiffusionTraining


def _fit(tmp_path, **model_args):
    """``lit-ip fit`` for 2 steps of a tiny network on 8x8 faces; returns the LightningCLI."""
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0,
                    "enable_progress_bar": False, "enable_checkpointing": False, "logger": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "lit_ip.lightning.training.DiffusionTraining",
                  "init_args": {"network": TINY_NET, "warmup_steps": 1, "lr_schedule": "constant",
                                "ema_decay": 0.9, **model_args}},
        "data": {"class_path": "lit_ip.lightning.train_data.TrainingData",
                 "init_args": {"train": {"class_path": "lit_ip.data.bundled.LFWFaces",
                                         "init_args": {"split": "train", "size": 8}},
                               "batch_size": 4}},
    }
    f = tmp_path / "fit.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return main(["fit", "--config", str(f)])


def test_sgd_and_its_schedule_from_the_config(tmp_path):
    cli = _fit(tmp_path, optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05, "momentum": 0.5}},
               lr_scheduler={"class_path": "torch.optim.lr_scheduler.StepLR",
                             "init_args": {"step_size": 1, "gamma": 0.5}})
    assert cli.trainer.global_step == 2
    (opt,) = cli.trainer.optimizers
    assert type(opt) is torch.optim.SGD and opt.defaults["momentum"] == 0.5
    state = [opt.state[p] for p in cli.model.network.parameters() if p.requires_grad]
    assert all("momentum_buffer" in s for s in state)                 # SGD did the two steps
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5 ** 2)  # StepLR stepped per training step


def test_the_configured_optimizer_takes_the_built_in_schedule_without_lr_scheduler(tmp_path):
    cli = _fit(tmp_path, optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05}})
    (opt,) = cli.trainer.optimizers
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["lr"] == pytest.approx(0.05)  # warm-up 1, constant


def test_default_is_adamw_with_the_module_arguments(tmp_path):
    cli = _fit(tmp_path, lr=1e-3, weight_decay=0.01)
    (opt,) = cli.trainer.optimizers
    assert type(opt) is torch.optim.AdamW
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["weight_decay"] == 0.01 and opt.defaults["betas"] == (0.9, 0.999)
    assert all("exp_avg" in opt.state[p] for p in cli.model.network.parameters() if p.requires_grad)
    plain = DiffusionTraining(torch.nn.Linear(1, 1))
    assert (plain.lr, plain.weight_decay, plain.betas) == (2e-4, 0.0, (0.9, 0.999))   # the former defaults


def test_adamw_arguments_next_to_another_optimizer_are_refused():
    with pytest.raises(ValueError, match="default AdamW"):
        DiffusionTraining(torch.nn.Linear(1, 1), lr=1e-3, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
