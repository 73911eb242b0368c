"""``lit-ip``: LightningCLI for ``fit`` / ``predict`` (+ small utility subcommands).

    lit-ip predict --config configs/predict/demo.yaml
    lit-ip fit --config configs/fit/faces_ddpm.yaml

Model and data are chosen by ``class_path`` in the YAML (subclass mode), so any
LightningModule / LightningDataModule of this package (or the user's) plugs in.
Utility subcommands that are not Lightning runs are dispatched through
:data:`TOOLS` (name -> "module:function" taking the remaining argv).
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

#: non-Lightning subcommands: name -> "module:function(argv)"
TOOLS: dict[str, str] = {}


def _lightning_cli(args):
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI(LightningModule, LightningDataModule, subclass_mode_model=True,
                subclass_mode_data=True, args=args, save_config_kwargs={"overwrite": True},
                seed_everything_default=False)


def main(args: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOLS:
        mod, fn = TOOLS[argv[0]].split(":")
        return getattr(importlib.import_module(mod), fn)(argv[1:])
    return _lightning_cli(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
