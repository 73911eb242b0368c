"""Issue 11, outputs: a run folder is bound to its settings; damaged outputs are redone; the
writer touches only its own files; permissions follow the umask; duplicate keys are refused;
SIGTERM abandons the sample in flight and the run resumes; config.yaml refuses links."""
from __future__ import annotations

import os
import signal

import pytest
from lightning import Trainer
from torch.utils.data import Dataset

from lit_ip.cli import main
from lit_ip.data.analytic import AnalyticPriorSamples
from lit_ip.io import sanitize_key
from lit_ip.lightning.datamodules import ImageDataModule
from lit_ip.lightning.interrupt import RunInterrupted
from lit_ip.lightning.resume import DuplicateKeyError
from lit_ip.lightning.run_binding import RUN_FILE, RunConfigError
from lit_ip.lightning.sampling_module import PosteriorSamplingModule, Task
from lit_ip.lightning.writer import PredictionWriter
from lit_ip.methods.base import Unconditional
from lit_ip.operators.identity import Identity
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.synthetic import RandomGaussianPrior

from conftest import predict_args, small_toy_config

SHAPE = (1, 4, 4)


class KillAfter(Unconditional):
    """Sends SIGTERM to its own process at the start of call number ``after + 1``."""

    def __init__(self, num_steps: int = 3, after: int = 10**9, signum: int = int(signal.SIGTERM)):
        super().__init__(num_steps)
        self._after, self._calls, self._signum = after, 0, signum  # private: not settings of the run

    def sample(self, prior, operator, y, rng, noise=None):
        self._calls += 1
        if self._calls == self._after + 1:
            os.kill(os.getpid(), self._signum)
        return super().sample(prior, operator, y, rng, noise)


class Keyed(Dataset):
    """Items with the given keys (index = position) drawn from an analytic source."""

    def __init__(self, source, keys):
        self.source, self.keys = source, list(keys)

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        return {**self.source[i], "key": self.keys[i], "index": i}


@pytest.fixture(scope="module")
def prior():
    return RandomGaussianPrior(SHAPE, seed=0)


def module(prior, method=None):
    return PosteriorSamplingModule(prior, {"denoise": Task(Identity(SHAPE), GaussianNoise(0.1))},
                                   {"ddpm": method or KillAfter(3)}, seed=3)


def run(mod, source, out, batch_size=2):
    writer = PredictionWriter(str(out), figure_images=2, print_summary=False)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False, callbacks=[writer])
    trainer.predict(mod, datamodule=ImageDataModule(source, batch_size=batch_size), return_predictions=False)


def outputs(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.suffix in (".png", ".json") and p.parent.name not in ("figures",)
            and p.name not in ("summary.json", RUN_FILE)}


# --- 1. a changed configuration is refused, naming the settings ------------------------------
def test_rerun_with_other_method_settings_is_refused_naming_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    cfg = small_toy_config(tmp_path / "c.yaml", ["denoise"], ["dps"], num_steps=4, items=3, batch_size=2)
    out = tmp_path / "out"
    main(predict_args(cfg, out))
    kept = {n: (out / n).read_bytes() for n in ("metrics.csv", "summary.json", "config.yaml", RUN_FILE)}
    with pytest.raises(SystemExit) as err:  # the reproduction
        main(predict_args(cfg, out, "--model.init_args.methods.dps.init_args.zeta=0.1",
                          "--model.init_args.methods.dps.init_args.num_steps=5"))
    assert err.value.code == 1
    msg = capsys.readouterr().err
    assert "methods.dps.num_steps: 4 -> 5" in msg and "methods.dps.zeta: 0.5 -> 0.1" in msg
    assert {n: (out / n).read_bytes() for n in kept} == kept, "nothing rewritten, config.yaml included"
    with pytest.raises(SystemExit):  # the data selection is a setting too
        main(predict_args(cfg, out, "--data.init_args.limit=2"))
    assert "data.limit: null -> 2" in capsys.readouterr().err
    main(predict_args(cfg, out, "--data.init_args.batch_size=1"))  # output-neutral: accepted
    assert (out / "metrics.csv").read_bytes() == kept["metrics.csv"]


# --- 5. the writer touches only its own files ---------------------------------------------------
def test_a_folder_with_foreign_files_is_refused_and_user_files_survive(prior, tmp_path):
    source = AnalyticPriorSamples(prior, 3, seed=1)
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / ".draft.tmp").write_text("mine")
    (out / "metrics.csv").write_text("my table")
    with pytest.raises(RunConfigError, match=r"already holds files \(metrics.csv, notes\)"):
        run(module(prior), source, out)
    assert (out / "notes" / ".draft.tmp").read_text() == "mine"
    assert (out / "metrics.csv").read_text() == "my table"
    # in a folder of its own, the end-of-run sweep removes only the writer's temporary files
    own = tmp_path / "own"
    run(module(prior), source, own)
    (own / "notes").mkdir()
    (own / "notes" / ".draft.tmp").write_text("mine")
    (own / "denoise" / "ddpm" / ".x.tmp").write_text("a user's file")
    left = own / "metrics" / ".sample_00000.json.litip-k1ll3d.tmp"
    left.write_text("{")
    run(module(prior), source, own)
    assert (own / "notes" / ".draft.tmp").read_text() == "mine"
    assert (own / "denoise" / "ddpm" / ".x.tmp").exists()
    assert not left.exists()


# --- 4. a damaged output is detected and redone -------------------------------------------------
def test_empty_metrics_json_and_png_are_redone(prior, tmp_path, capsys):
    source = AnalyticPriorSamples(prior, 4, seed=1)
    out = tmp_path / "out"
    run(module(prior), source, out)
    good = outputs(out)
    damaged = [out / "metrics" / "sample_00001.json", out / "denoise" / "ddpm" / "sample_00002.png",
               out / "ground_truth" / "sample_00003.png"]
    for p in damaged:
        p.write_bytes(b"")  # what a power loss before the rename used to leave
    (out / "denoise" / "pinv" / "sample_00000.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    run(module(prior), source, out)
    err = capsys.readouterr().err
    for p in damaged:
        assert f"damaged output {p}" in err
    assert outputs(out) == good


# --- 7. permissions follow the umask ------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_honour_the_umask(prior, tmp_path, umask):
    old = os.umask(umask)
    try:
        run(module(prior), AnalyticPriorSamples(prior, 2, seed=1), tmp_path / "out")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files and {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~umask}
    dirs = [p for p in (tmp_path / "out").rglob("*") if p.is_dir()]
    assert {p.stat().st_mode & 0o777 for p in dirs} == {0o777 & ~umask}


# --- 3. duplicate and colliding keys ------------------------------------------------------------
def test_colliding_and_duplicate_keys(prior, tmp_path):
    source = AnalyticPriorSamples(prior, 4, seed=1)
    mangled = sanitize_key("a/b")
    assert mangled == "a_b-3ec69c85"  # the pair: the literal key must get its own name
    assert sanitize_key(mangled) != mangled
    run(module(prior), Keyed(source, ["a/b", mangled, "c", "d"]), tmp_path / "ok")
    assert len(list((tmp_path / "ok" / "metrics").glob("*.json"))) == 4
    import json
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["num_images"] == 4
    with pytest.raises(DuplicateKeyError, match=r"same key 'im0'.*index 0.*index 2"):
        run(module(prior), Keyed(source, ["im0", "x", "im0", "y"]), tmp_path / "dup", batch_size=1)


# --- 8. SIGTERM abandons the sample in flight; the rerun resumes ---------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_abandons_the_batch_in_flight_and_the_rerun_resumes(prior, tmp_path, signum):
    source = AnalyticPriorSamples(prior, 6, seed=1)
    run(module(prior), source, tmp_path / "whole")
    before = signal.getsignal(signum)
    out = tmp_path / "out"
    with pytest.raises(RunInterrupted, match=signal.Signals(signum).name):
        run(module(prior, KillAfter(3, after=1, signum=int(signum))), source, out)  # during batch 2
    assert signal.getsignal(signum) == before, "handlers restored"
    assert sorted(p.name for p in (out / "metrics").glob("*.json")) == ["sample_00000.json", "sample_00001.json"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "nothing partial"
    assert not (out / "summary.json").exists()
    run(module(prior), source, out)
    assert outputs(out) == outputs(tmp_path / "whole")


def test_cli_exits_with_128_plus_signal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    cfg = small_toy_config(tmp_path / "c.yaml", ["denoise"], ["unconditional"], num_steps=3, items=4, batch_size=2)
    out = tmp_path / "out"
    killer = ["--model.init_args.methods.unconditional.class_path=test_run_integrity.KillAfter",
              "--model.init_args.methods.unconditional.init_args.after=1"]
    with pytest.raises(SystemExit) as err:
        main(predict_args(cfg, out, *killer))
    assert err.value.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err


# --- 10. config.yaml is written with the same refusal of links ------------------------------------
def test_config_yaml_does_not_follow_a_planted_link(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    cfg = small_toy_config(tmp_path / "c.yaml", ["denoise"], ["unconditional"], num_steps=3, items=2)
    out = tmp_path / "out"
    main(predict_args(cfg, out))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "config.yaml").unlink()
    (out / "config.yaml").symlink_to(victim)
    with pytest.raises(SystemExit) as err:
        main(predict_args(cfg, out))
    assert err.value.code == 1 and "config.yaml" in capsys.readouterr().err
    assert victim.read_text() == "precious"


def test_output_neutral_settings_leave_the_record_unchanged(prior, tmp_path):
    """Batch size, workers, on_error and the rank's share of the shards are not settings of the
    outputs; the data selection, a method setting and the seed are."""
    from types import SimpleNamespace

    from PIL import Image

    from lit_ip.data.make_shards import make_shards
    from lit_ip.lightning.datamodules import ShardDataModule
    from lit_ip.lightning.run_binding import differences, run_settings

    source = AnalyticPriorSamples(prior, 4, seed=1)

    def record(mod=None, dm=None):
        trainer = SimpleNamespace(precision="32-true", datamodule=dm or ImageDataModule(source))
        return run_settings(mod or module(prior), trainer)

    base = record()
    assert differences(base, record(dm=ImageDataModule(source, batch_size=1, num_workers=2))) == []
    assert differences(base, record(dm=ImageDataModule(source, indices=[0, 2]))) == [
        "data.indices: null -> [0, 2]"]
    assert differences(base, record(mod=module(prior, KillAfter(4)))) == ["methods.ddpm.num_steps: 3 -> 4"]
    other_seed = PosteriorSamplingModule(prior, {"denoise": Task(Identity(SHAPE), GaussianNoise(0.1))},
                                         {"ddpm": KillAfter(3)}, seed=4)
    assert differences(base, record(mod=other_seed)) == ["seed: 3 -> 4"]
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.new("RGB", (4, 4), (60 * i, 0, 0)).save(tmp_path / "imgs" / f"im{i}.png")
    make_shards(tmp_path / "imgs", tmp_path / "sh", per_shard=2)
    ranks = []
    for rank in (0, 1):
        dm = ShardDataModule(str(tmp_path / "sh"), batch_size=1 + rank, on_error=("raise", "skip")[rank])
        dm.setup()
        dm.source.assign(rank, 2)
        ranks.append(record(dm=dm))
    assert differences(*ranks) == []


class Unreadable(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise ValueError(f"cannot read item {i}")


def test_an_attempt_that_failed_before_any_output_can_be_rerun_with_new_settings(prior, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="cannot read item 0"):
        run(module(prior), Unreadable(), out)  # bound, but nothing written
    assert sorted(p.name for p in out.iterdir()) == [RUN_FILE]
    run(module(prior), AnalyticPriorSamples(prior, 2, seed=1), out)  # fixed data: accepted
    with pytest.raises(RunConfigError, match="data.source.num_samples: 2 -> 3"):
        run(module(prior), AnalyticPriorSamples(prior, 3, seed=1), out)  # now it holds outputs
