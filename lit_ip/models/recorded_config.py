"""The computation a weights file was saved for, recorded in the file and checked on load.

Editing ``config.json`` (``act_fn``, ``flip_sin_to_cos``, ...) or ``prior.json``
(``prediction: v`` for an eps network, another path) keeps every key and shape, so a strict
load cannot notice, and the network silently computes something else. :func:`save_unet_dir`
and :func:`~lit_ip.priors.pretrained.save_prior_dir` therefore store the UNet config and
the prior's computation fields (:data:`PRIOR_FIELDS`) in the safetensors header metadata
(key :data:`KEY`); loading compares them with the config files and refuses a difference,
naming the field. Files without the record (third-party checkpoints, or saved before it
existed) load as before: nothing can be checked for them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from .checkpoints import CheckpointError

KEY = "lit_ip.computation"
#: prior.json fields that change what the network's output means (``non_isotropic``: the level-map
#: encoding and ``sigma_data`` of a non-isotropic prior)
PRIOR_FIELDS = ("path", "prediction", "data_range", "time_scale", "non_isotropic")


def unet_fields(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def prior_fields(meta: dict) -> dict:
    return {k: meta[k] for k in PRIOR_FIELDS if k in meta}


def metadata(record: dict) -> dict[str, str]:
    """Safetensors metadata holding ``record`` (``{"unet": ..., "prior": ...}``)."""
    return {KEY: json.dumps(record, sort_keys=True)}


def read_record(weights: Path) -> Optional[dict]:
    """The record stored in a safetensors file (None if absent or not safetensors)."""
    if Path(weights).suffix != ".safetensors" or not Path(weights).is_file():
        return None   # a missing file is reported by the loader
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - damaged files are reported by the loader
        raise CheckpointError(f"{weights} cannot be read as safetensors: {type(err).__name__}: {err}") from err
    return json.loads(meta[KEY]) if KEY in meta else None


def _norm(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def check(weights: Path, section: str, current: dict, config_file: Path) -> None:
    """Refuse if ``current`` (fields of ``config_file``) differs from what ``weights`` records."""
    record = read_record(weights)
    if record is None or section not in record:
        return
    saved = record[section]
    diff = [f"{k}: {_norm(saved.get(k, '<absent>'))} when saved, now {_norm(current.get(k, '<absent>'))}"
            for k in sorted(set(saved) | set(current)) if _norm(saved.get(k)) != _norm(current.get(k))]
    if diff:
        raise CheckpointError(f"{config_file} does not describe the computation {weights.name} was saved "
                              f"for ({'; '.join(diff[:5])}); restore the file (these settings change "
                              f"what the network computes without changing its weights)")
