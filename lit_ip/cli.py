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
import os
import sys
from typing import Optional, Sequence

#: non-Lightning subcommands: name -> "module:function(argv)"
TOOLS: dict[str, str] = {
    "make-shards": "lit_ip.data.make_shards:main",
    "report": "lit_ip.reports:main",
    "memorization": "lit_ip.metrics.memorization:main",
}


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (jsonargparse wraps a constructor's error)."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _cli_class():
    from lightning.pytorch.cli import LightningCLI

    class LitIPCLI(LightningCLI):
        """LightningCLI with predict defaults suited to writing outputs to disk.

        * ``predict --return_predictions`` defaults to false: the prediction writer
          writes every batch, nothing is kept in memory (pass ``true`` to keep them).
        * For ``predict``, an unset ``trainer.default_root_dir`` becomes the output folder
          of the configured prediction writer, so ``config.yaml`` lands next to the outputs.
        * An error while building the objects of the config (bad sigma, missing prior, ...)
          is reported as its root cause in one line (``LIT_IP_TRACEBACK=1`` for the traceback).
        """

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
            except Exception as e:
                if os.environ.get("LIT_IP_TRACEBACK"):
                    raise
                cause = _root_cause(e)
                print(f"lit-ip: error: cannot build the configuration: {type(cause).__name__}: {cause}\n"
                      f"(set LIT_IP_TRACEBACK=1 for the full traceback)", file=sys.stderr)
                raise SystemExit(1) from e

        def before_instantiate_classes(self) -> None:
            if self.subcommand != "predict":
                return
            cfg = self.config["predict"]
            if cfg.get("return_predictions") is None:
                cfg["return_predictions"] = False
            if cfg["trainer"].get("default_root_dir") is None:
                for cb in cfg["trainer"].get("callbacks") or []:
                    out = (getattr(cb, "init_args", None) or {}).get("output_dir")
                    if out is not None:
                        cfg["trainer"]["default_root_dir"] = out
                        break

    return LitIPCLI


def _lightning_cli(args):
    from lightning import LightningDataModule, LightningModule

    from .lightning.progress import quiet_lightning

    quiet_lightning()  # no Lightning tips / LeafSpec deprecation notice

    return _cli_class()(LightningModule, LightningDataModule, subclass_mode_model=True,
                        subclass_mode_data=True, args=args, save_config_kwargs={"overwrite": True},
                        seed_everything_default=False)


def main(args: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TOOLS:
        mod, fn = TOOLS[argv[0]].split(":")
        return getattr(importlib.import_module(mod), fn)(argv[1:])
    return _lightning_cli(None if args is None else argv)


def console() -> int:
    """Console-script entry (``lit-ip``): like :func:`main`, but returns an exit status
    (a returned object would be printed by ``sys.exit``)."""
    out = main()
    return out if isinstance(out, int) else 0


if __name__ == "__main__":  # pragma: no cover
    main()
