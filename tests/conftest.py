"""Shared test helpers: running the ``lit-ip`` CLI in a subprocess, and one cached
one-process run of the toy predict config (used by the CLI and DDP tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIG = REPO / "configs" / "predict" / "gaussian_toy.yaml"


def cli_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # so that configs can use test helpers such as ``conftest.JournaledSource``
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class JournaledSource(Dataset):
    """A data source that appends ``"<pid> <index>"`` to ``journal`` on every item read
    (to check which process handled which item under DDP)."""

    def __init__(self, source: Dataset, journal: str):
        self.source, self.journal = source, journal

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        with open(self.journal, "a") as f:
            f.write(f"{os.getpid()} {int(i)}\n")
        return self.source[i]


def run_cli(args, cwd, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m lit_ip *args`` in ``cwd``; returns the completed process (never raises on failure)."""
    return subprocess.run([sys.executable, "-m", "lit_ip", *map(str, args)], cwd=str(cwd), env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def predict_args(config: Path, out: Path, *extra) -> list:
    return ["predict", "--config", str(config), f"--trainer.callbacks.init_args.output_dir={out}",
            "--trainer.enable_progress_bar=false", *map(str, extra)]


def output_files(root: Path) -> dict[str, Path]:
    """Relative path -> path of every per-sample output (PNG and per-key JSON) under ``root``."""
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
            if p.is_file() and p.suffix in (".png", ".json") and p.parent.name != "figures"
            and p.parent != root}


def load_config(path: Path = TOY_CONFIG) -> dict:
    return yaml.safe_load(Path(path).read_text())


def small_toy_config(dst: Path, tasks, methods, num_steps: int = 8, num_samples: int = 1,
                     items: int = 6, batch_size: int = 4, source_wrapper=None, extra_methods=None) -> Path:
    """A cut-down copy of the toy config (chosen tasks and methods, fewer steps), written to ``dst``.

    ``source_wrapper(spec) -> spec`` may wrap the data-source spec (e.g. in ``JournaledSource``);
    ``extra_methods`` (name -> spec) adds methods the toy config does not list.
    """
    cfg = load_config()
    model = cfg["model"]["init_args"]
    model["tasks"] = {k: model["tasks"][k] for k in tasks}
    model["methods"] = {**{k: model["methods"][k] for k in methods}, **(extra_methods or {})}
    for spec in model["methods"].values():
        spec.setdefault("init_args", {})["num_steps"] = num_steps
    model["num_samples"] = num_samples
    data = cfg["data"]["init_args"]
    data["source"]["init_args"]["num_samples"] = items
    data["batch_size"] = batch_size
    if source_wrapper is not None:
        data["source"] = source_wrapper(data["source"])
    dst.write_text(yaml.safe_dump(cfg))
    return dst


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """One-process run of ``configs/predict/gaussian_toy.yaml``: (completed process, output dir)."""
    work = tmp_path_factory.mktemp("toy_1proc")
    out = work / "out"
    proc = run_cli(predict_args(TOY_CONFIG, out), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out
