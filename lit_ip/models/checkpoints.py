"""Safe, strict loading of network weights from local files.

* Reading never unpickles code: ``.safetensors`` files are read by safetensors, anything else
  by ``torch.load(weights_only=True)``, which refuses pickled objects other than tensors and
  plain containers.
* Loading is strict: a missing, unexpected or mis-shaped key is an error listing the first
  offenders; nothing is ever left at its random initialisation. So is a tensor whose kind
  does not match (integer or bool weights for a float parameter would be cast silently by
  ``load_state_dict`` into garbage).
* A file that cannot be read (truncated, not a checkpoint) is an error naming the file.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

PathLike = Union[str, os.PathLike]

#: keys under which training scripts commonly nest the weights
NESTED_KEYS = ("state_dict", "model", "ema", "module")


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely or does not match the network."""


def read_state_dict(path: PathLike, key: Optional[str] = None, strip_prefix: str = "") -> dict[str, Tensor]:
    """Tensors of a checkpoint file as a flat ``{name: tensor}`` dict on the CPU.

    Args:
        path: ``.safetensors`` or a ``torch.save`` file (``.pt``, ``.pth``, ``.bin``, ...).
        key: take the sub-dict stored under ``key`` (e.g. ``"ema"``); None accepts a flat dict.
        strip_prefix: remove this prefix from every key that has it (e.g. ``"module."``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            obj = load_file(str(path))
        except Exception as err:  # SafetensorError and OSError for truncated or foreign files
            raise CheckpointError(f"{path} cannot be read as safetensors (truncated or damaged?): "
                                  f"{type(err).__name__}: {err}") from err
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise CheckpointError(
                f"{path} is not a tensors-only checkpoint and was refused (loading it would run "
                f"pickled code; convert it to safetensors in a trusted environment): {err}") from err
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} cannot be read as a torch checkpoint (truncated or damaged?): "
                                  f"{type(err).__name__}: {err}") from err
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{path} has no entry {key!r}; top-level entries: {found}")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        nested = [k for k in NESTED_KEYS if isinstance(obj, Mapping) and k in obj]
        hint = f"; pass key= one of {nested}" if nested else ""
        raise CheckpointError(f"{path} is not a flat state dict of tensors{hint}")
    if strip_prefix:
        obj = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in obj.items()}
    return dict(obj)


def mismatch_report(expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]],
                    limit: int = 5) -> str:
    """The first missing / unexpected / mis-shaped keys between two ``{name: shape}`` maps ('' if none)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} (network {tuple(expected[k])}, file {tuple(found[k])})"
              for k in expected if k in found and tuple(expected[k]) != tuple(found[k])]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str = "checkpoint") -> nn.Module:
    """``module.load_state_dict(state, strict=True)``, failing with a :func:`mismatch_report`."""
    own = module.state_dict()
    expected = {k: v.shape for k, v in own.items()}
    report = mismatch_report(expected, {k: v.shape for k, v in state.items()})
    if report:
        raise CheckpointError(f"{source} does not match {type(module).__name__}: {report}")
    kinds = [f"{k} ({state[k].dtype} in the file, {v.dtype} in the network)" for k, v in own.items()
             if v.is_floating_point() and not state[k].is_floating_point()]
    if kinds:
        more = f" ... and {len(kinds) - 5} more" if len(kinds) > 5 else ""
        raise CheckpointError(f"{source} stores non-float weights for float parameters: "
                              f"{', '.join(kinds[:5])}{more}")
    module.load_state_dict(state, strict=True)
    return module


def load_checkpoint(module: nn.Module, path: PathLike, key: Optional[str] = None,
                    strip_prefix: str = "") -> nn.Module:
    """Read ``path`` safely and load it strictly into ``module``; returns ``module``."""
    return load_strict(module, read_state_dict(path, key, strip_prefix), str(path))


def save_state_dict(module_or_state, path: PathLike) -> Path:
    """Write weights as safetensors (``.safetensors`` suffix) or a tensors-only ``torch.save``."""
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
