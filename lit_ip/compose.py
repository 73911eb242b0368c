"""Compose one run from several ``--config`` files (one file per concern).

jsonargparse applies several ``--config`` files one after the other, and a dict-valued
argument given by a later file *replaces* the earlier one: ``model.init_args.methods`` of
``configs/method/dps.yaml`` would drop the methods of ``configs/method/pigdm.yaml``.
``lit-ip`` therefore merges the files itself before parsing (:func:`compose_argv`):

* mappings merge key by key, recursively (``tasks`` and ``methods`` of several files add up);
* a mapping whose ``class_path`` differs from the one it overrides replaces it whole
  (a different class has other ``init_args``); the same ``class_path`` merges its ``init_args``;
* any other value (a list such as ``trainer.callbacks``, a number) is replaced by the later file;
* a ``model`` without ``class_path`` (the per-part files carry none) is a
  :class:`~lit_ip.lightning.sampling_module.PosteriorSamplingModule` for ``predict``.

The merged config takes the place of the first ``--config``; command-line flags after it
override it as usual. One ``--config`` is passed through untouched. Example::

    lit-ip predict --config configs/trainer/cpu.yaml --config configs/data/natural_crops.yaml \\
        --config configs/prior/natural_ddpm.yaml --config configs/task/rgb32/sr_4x.yaml \\
        --config configs/method/dps.yaml --config configs/method/pigdm.yaml
"""
from __future__ import annotations

import atexit
import copy
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

__all__ = ["merge", "compose", "compose_argv", "POSTERIOR_MODULE"]

POSTERIOR_MODULE = "lit_ip.lightning.sampling_module.PosteriorSamplingModule"
_CONFIG_FLAGS = ("--config", "-c")


def merge(base: Any, over: Any) -> Any:
    """``over`` applied on ``base`` by the rules of this module (inputs are not modified)."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    if "class_path" in over and "class_path" in base and _short(over["class_path"]) != _short(base["class_path"]):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if k in out else copy.deepcopy(v)
    return out


def _short(class_path: Any) -> str:
    """``a.b.C`` and ``C`` name the same class for the same-class test."""
    return str(class_path).rsplit(".", 1)[-1]


def load(source: str) -> dict:
    """A config file's mapping (or an inline YAML mapping, as jsonargparse accepts)."""
    path = Path(source)
    if path.is_file():
        data = yaml.safe_load(path.read_text())
        where = f"config file {source}"
    else:
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as e:
            raise ValueError(f"--config {source!r}: not a file and not inline YAML ({e})") from None
        if not isinstance(data, dict):
            raise FileNotFoundError(f"--config {source!r}: no such file")
        where = "inline config"
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a mapping at top level, got {type(data).__name__}")
    return data


def compose(sources: Sequence[str], subcommand: Optional[str] = None) -> dict:
    """The merged mapping of ``sources`` in order (see the module docstring)."""
    out: dict = {}
    for s in sources:
        out = merge(out, load(s))
    model = out.get("model")
    if subcommand == "predict" and isinstance(model, dict) and "class_path" not in model:
        out["model"] = {"class_path": POSTERIOR_MODULE, **model}
    return out


def _config_positions(argv: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(start, stop, value)`` of every ``--config X`` / ``--config=X`` / ``-c X`` in argv."""
    found, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in _CONFIG_FLAGS and i + 1 < len(argv):
            found.append((i, i + 2, argv[i + 1]))
            i += 2
            continue
        if a.startswith("--config="):
            found.append((i, i + 1, a.split("=", 1)[1]))
        i += 1
    return found


def compose_argv(argv: Sequence[str]) -> list[str]:
    """argv with the subcommand's several ``--config`` files replaced by one merged file.

    Only the configs after the subcommand (the first argument) are merged; with fewer
    than two, argv is returned unchanged. The merged file lives in a temporary folder
    removed at exit; the run's own ``config.yaml`` is what gets saved with its outputs.
    """
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        return argv
    found = _config_positions(argv[1:])
    if len(found) < 2:
        return argv
    merged = compose([v for *_, v in found], subcommand=argv[0])
    folder = tempfile.mkdtemp(prefix="lit_ip_config_")
    path = os.path.join(folder, "composed.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    atexit.register(_remove, folder)
    rest = argv[1:]
    keep = [a for j, a in enumerate(rest) if not any(s <= j < e for s, e, _ in found)]
    first = found[0][0]
    before = len([j for j in range(first) if not any(s <= j < e for s, e, _ in found)])
    return [argv[0], *keep[:before], "--config", path, *keep[before:]]


def _remove(folder: str) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
