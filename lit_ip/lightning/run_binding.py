"""Bind an output folder to the settings that made its outputs.

A resumed run skips every key whose files exist, so the files must belong to the settings
of the rerun. The first run writes ``run_config.json``: a flat ``{setting: value}`` record
of everything that changes an output -- the prior (class, settings, a digest of its
weights), every task (operator, noise), every method with all its settings (schedule
included), ``num_samples``, ``seed``, the (task, method) pairs, the evaluation options, the
numeric precision and the data selection (source, ``indices``, ``limit``, shards,
channels). A rerun whose record differs is refused before any work, naming the differing
settings. Settings that change no output are left out and may differ on resume: devices,
strategy and number of processes, batch size, DataLoader workers, ``on_error``, progress
bars, ``figure_images``, ``print_summary`` and ``output_dir`` itself (seeds are per sample,
so results do not depend on batching or processes; see ``docs/scale.md``).

A folder that holds no output yet (only ``run_config.json``, ``config.yaml``: an attempt
that failed before its first sample) takes the new settings. A folder that holds files but
no ``run_config.json`` is refused as well: it was not written
by this writer (or by a version that did not record its settings), and writing into it
could mix or overwrite someone's files.
"""
from __future__ import annotations

import enum
import hashlib
import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import io

RUN_FILE = "run_config.json"
#: attribute names that never change an output (counters, run-time state, loader settings)
NEUTRAL = frozenset({
    "training", "evaluations", "compile", "compile_backend", "batch_size", "num_workers",
    "on_error", "errors_dir", "shuffle_train", "prepare_data_per_node", "trainer", "rank",
    "world_size", "assigned", "skipped", "allow_zero_length_dataloader_with_multiple_devices",
})
_MAX_LIST = 32
#: what a folder holds before any output is written (it may then be re-bound to new settings)
NO_OUTPUTS = frozenset({RUN_FILE, "config.yaml"})
NOTE = "settings that change outputs; a rerun must match them"
_MAX_DEPTH = 8


class RunConfigError(ValueError):
    """The output folder belongs to other settings (or to nobody)."""


def _digest(data: bytes) -> str:
    return "sha1:" + hashlib.sha1(data).hexdigest()[:16]


def tensor_digest(t: Tensor) -> str:
    t = t.detach().cpu().contiguous()
    head = f"{t.dtype}{tuple(t.shape)}".encode()
    return _digest(head + (t.view(torch.uint8).numpy().tobytes() if t.numel() else b""))


def state_digest(module: nn.Module) -> str:
    h = hashlib.sha1()
    for name, t in sorted(module.state_dict().items()):
        name = name.replace("_orig_mod.", "")  # torch.compile's wrapper changes no output
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().tobytes())
    return "sha1:" + h.hexdigest()[:16]


def describe(obj: Any, depth: int = 0, weights: bool = True) -> Any:
    """A JSON-able description of ``obj``: plain values as they are, tensors and long lists
    as digests, objects as their class and public attributes (recursively), modules with a
    digest of their state dict (once, at the outermost module)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, Tensor):
        return tensor_digest(obj) if obj.numel() > 8 else obj.tolist()
    if isinstance(obj, (torch.dtype, torch.device, os.PathLike, enum.Enum)):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return tensor_digest(torch.from_numpy(np.ascontiguousarray(obj)))
    if isinstance(obj, np.generic):
        return describe(obj.item(), depth, weights)
    if isinstance(obj, (set, frozenset)):
        obj = sorted(obj, key=repr)
    if isinstance(obj, (list, tuple)):
        items = [describe(v, depth + 1, weights) for v in obj]
        return items if len(items) <= _MAX_LIST else _digest(json.dumps(items, sort_keys=True).encode())
    if isinstance(obj, dict):
        out = {str(k): describe(v, depth + 1, weights) for k, v in obj.items()}
        return out if len(out) <= _MAX_LIST else _digest(json.dumps(out, sort_keys=True).encode())
    if isinstance(obj, type) or inspect.isroutine(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    cls = type(obj)
    out: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    if depth > _MAX_DEPTH or not hasattr(obj, "__dict__"):
        return out  # (no repr: it may hold a memory address)
    if isinstance(obj, nn.Module):
        if weights:
            out["weights"] = state_digest(obj)
        for name, child in obj.named_children():
            child = getattr(child, "_orig_mod", child)  # torch.compile's wrapper
            out[name] = describe(child, depth + 1, weights=False)
    for k, v in vars(obj).items():
        if k.startswith("_") or k in NEUTRAL or k in out:
            continue
        if isinstance(v, (nn.Module, Tensor)) and isinstance(obj, nn.Module):
            continue  # children and tensors are covered by the module's description and digest
        out[k] = describe(v, depth + 1, weights)
    return out


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if isinstance(obj, dict) and obj:
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def run_settings(pl_module, trainer=None, writer=None) -> dict[str, Any]:
    """The output-affecting settings of a posterior-sampling run, flat (see the module docstring)."""
    record: dict[str, Any] = {
        "prior": describe(pl_module.prior),
        "tasks": {name: {"operator": describe(t.operator), "noise": describe(t.noise)}
                  for name, t in pl_module.tasks.items()},
        "methods": {name: describe(m) for name, m in pl_module.methods.items()},
        "num_samples": pl_module.num_samples, "seed": pl_module.seed,
        "pairs": {t: list(ms) for t, ms in pl_module.pairs.items()},
    }
    if writer is not None:
        record["evaluation"] = describe(getattr(writer.evaluation, "options", writer.evaluation))
    if trainer is not None:
        record["precision"] = str(getattr(trainer, "precision", None))
        dm = getattr(trainer, "datamodule", None)
        record["data"] = describe(dm) if dm is not None else "dataloaders given directly"
    return flatten(record)


def _short(v: Any, n: int = 60) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= n else s[: n - 1] + "…"


def differences(old: dict, new: dict) -> list[str]:
    """``"key: old -> new"`` for every setting that differs (missing on one side included)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            out.append(f"{k}: {_short(a)} -> {_short(b)}")
    return out


def bind_run(root: Path, settings: dict, write: bool = True) -> None:
    """Refuse ``root`` if its recorded settings differ from ``settings`` (or it holds foreign
    files); otherwise record them (``write``: on one process only)."""
    root = Path(root)
    record_file = root / RUN_FILE
    settings = json.loads(json.dumps(settings, sort_keys=True))  # as it reads back
    if record_file.is_symlink():
        raise RunConfigError(f"{record_file} is a symbolic link; refusing to use {root}")
    if record_file.exists():
        old = io.read_json(record_file).get("settings", {})
        diff = differences(old, settings)
        if diff and not set(p.name for p in root.iterdir()) - NO_OUTPUTS:
            if write:  # an earlier attempt failed before writing any output: nothing to mix
                io.write_json(record_file, {"settings": settings, "note": NOTE})
            return
        if diff:
            more = f"\n  ... and {len(diff) - 12} more" if len(diff) > 12 else ""
            raise RunConfigError(
                f"output_dir {root} holds the outputs of other settings, so resuming would mix "
                f"results; differing settings (recorded -> now):\n  " + "\n  ".join(diff[:12]) + more
                + "\nUse a new output_dir, or restore these settings to resume (devices, batch size "
                  "and workers may differ).")
        return
    if root.is_dir():
        foreign = sorted(p.name for p in root.iterdir())
        if foreign:
            raise RunConfigError(
                f"output_dir {root} already holds files ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}) but no {RUN_FILE}: it was not written by "
                f"lit-ip's prediction writer (or by a version that did not record its settings). "
                f"Choose a new or empty output_dir.")
    if write:
        io.write_json(record_file, {"settings": settings, "note": NOTE})


def check_run(root: Path, pl_module, trainer=None, writer=None) -> None:
    """:func:`bind_run` with :func:`run_settings` of this run: every process checks before
    anything is written, then global rank 0 records the settings."""
    settings = run_settings(pl_module, trainer, writer)
    bind_run(root, settings, write=False)
    if trainer is not None:
        trainer.strategy.barrier("lit_ip_run_binding")
    if trainer is None or trainer.is_global_zero:
        bind_run(root, settings, write=True)
