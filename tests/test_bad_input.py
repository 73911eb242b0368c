"""Bad input gives clear errors; untrusted keys never write outside the output folder."""
from __future__ import annotations

import random

import pytest
import torch
from lightning import Trainer
from torch.utils.data import Dataset

from lit_ip import io
from lit_ip.cli import main
from lit_ip.data.folder import ImageFolder
from lit_ip.lightning.datamodules import ImageDataModule
from lit_ip.lightning.sampling_module import PosteriorSamplingModule, Task
from lit_ip.lightning.writer import PredictionWriter
from lit_ip.methods.base import Unconditional
from lit_ip.operators.identity import Identity
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.synthetic import RandomGaussianPrior

from conftest import TOY_CONFIG, predict_args

SHAPE = (1, 4, 4)


@pytest.fixture(scope="module")
def module():
    prior = RandomGaussianPrior(SHAPE, seed=0)
    return PosteriorSamplingModule(prior, {"denoise": Task(Identity(SHAPE), GaussianNoise(0.1))},
                                   {"ddpm": Unconditional(2)})


def given(y, keys=("k0", "k1")):
    return {"y": y, "key": list(keys), "index": torch.arange(len(keys))}


def test_measurement_of_wrong_shape(module):
    with pytest.raises(ValueError, match=r"task 'denoise'.*shape \(1, 5, 5\).*\(1, 4, 4\)"):
        module.reconstruct(given(torch.zeros(2, 1, 5, 5)))


def test_nan_in_measurement(module):
    y = torch.zeros(2, *SHAPE)
    y[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*rows \[1\]"):
        module.reconstruct(given(y))


def test_negative_sigma():
    with pytest.raises(ValueError, match="sigma must be .*>= 0.*got -0.1"):
        GaussianNoise(-0.1)


@pytest.mark.parametrize("override, message", [
    ("--model.init_args.tasks.denoise.noise.init_args.sigma=-0.1",
     "ValueError: noise sigma must be a finite number >= 0 (in [0, 1] image units), got -0.1"),
    ("--model.init_args.tasks.denoise.operator.init_args.in_shape=[1, 4, 4]",
     "task 'denoise': operator Identity takes images of shape (1, 4, 4), but the prior "
     "RandomGaussianPrior makes images of shape (1, 8, 8)"),
])
def test_config_errors_fail_the_cli_with_the_cause(override, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    monkeypatch.delenv("LIT_IP_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as err:
        main(predict_args(TOY_CONFIG, tmp_path, override))
    assert err.value.code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "metrics").exists()


def test_operator_shape_must_match_prior():
    prior = RandomGaussianPrior(SHAPE, seed=0)
    with pytest.raises(ValueError, match=r"task 'big'.*\(1, 8, 8\).*prior.*\(1, 4, 4\)"):
        PosteriorSamplingModule(prior, {"big": Task(Identity((1, 8, 8)))}, {"ddpm": Unconditional(2)})


def test_data_images_must_match_prior(module):
    batch = {"image": torch.zeros(1, 3, 4, 4), "key": ["photo"], "index": torch.tensor([0])}
    with pytest.raises(ValueError, match=r"photo.*\(3, 4, 4\).*\(1, 4, 4\)"):
        module.reconstruct(batch)


def test_given_measurements_need_known_tasks(module):
    with pytest.raises(ValueError, match=r"unknown tasks \['deblur'\]"):
        module.reconstruct({"y": {"deblur": torch.zeros(1, *SHAPE)}, "key": ["a"], "index": torch.tensor([0])})


def test_reserved_or_unsafe_names_are_refused():
    prior = RandomGaussianPrior(SHAPE, seed=0)
    for bad in ("pinv", "../x", "a/b", ""):
        with pytest.raises(ValueError, match="name .* is not allowed"):
            PosteriorSamplingModule(prior, {"t": Task(Identity(SHAPE))}, {bad: Unconditional(2)})


def test_unknown_class_path_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    with pytest.raises(SystemExit) as err:
        main(predict_args(TOY_CONFIG, tmp_path,
                          "--model.init_args.methods.dps.class_path=lit_ip.methods.base.NoSuchMethod"))
    assert err.value.code != 0
    assert "NoSuchMethod" in capsys.readouterr().err


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        ImageFolder(str(tmp_path / "bad"))[0]


# --- keys ---------------------------------------------------------------------
NASTY = ["../../etc/passwd", "/abs/path", "a/../../b", "..", ".", "", "a\\..\\b", "nul\x00byte",
         "~/.ssh/x", ".hidden", "x" * 400, "名前 with spaces", "a:b*c?d", "CON", "-rf"]


def test_sanitised_keys_are_single_safe_components():
    rnd = random.Random(0)
    alphabet = "ab./\\:*?~ \x00é-_"
    keys = NASTY + ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(500)]
    seen = {}
    for k in keys:
        s = io.sanitize_key(k)
        assert s not in ("", ".", "..") and not s.startswith(".") and len(s) <= 120
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in s), s
        assert seen.setdefault(s, k) == k, f"{k!r} and {seen[s]!r} collide as {s!r}"
    assert io.sanitize_key("sample_00001") == "sample_00001"  # safe keys are kept


def test_safe_path_refuses_escapes(tmp_path):
    for part in ("..", ".", "", "a/b", "../x", "a\\b"):
        with pytest.raises(ValueError, match="unsafe path component"):
            io.safe_path(tmp_path, part)
    assert io.safe_path(tmp_path, "a", "b.png") == (tmp_path / "a" / "b.png").resolve()


class NastyKeys(Dataset):
    def __len__(self):
        return len(NASTY)

    def __getitem__(self, i):
        return {"image": torch.full(SHAPE, 0.5), "key": NASTY[i], "index": i}


def test_writer_keeps_nasty_keys_inside_output_dir(tmp_path, module):
    out = tmp_path / "box" / "out"
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False,
                      callbacks=[PredictionWriter(str(out), print_summary=False)])
    trainer.predict(module, datamodule=ImageDataModule(NastyKeys(), batch_size=4), return_predictions=False)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents]
    assert outside == []
    assert len(list((out / "ground_truth").glob("*.png"))) == len(NASTY)
    assert len(list((out / "metrics").glob("*.json"))) == len(NASTY)
