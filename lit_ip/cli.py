"""``lit-ip``: LightningCLI for ``fit`` / ``predict`` (+ small utility subcommands).

    lit-ip predict --config configs/predict/demo.yaml
    lit-ip fit --config configs/fit/faces_ddpm.yaml

Model and data are chosen by ``class_path`` in the YAML (subclass mode), so any
LightningModule / LightningDataModule of this package (or the user's) plugs in.
Utility subcommands that are not Lightning runs are dispatched through
:data:`TOOLS` (name -> "module:function" taking the remaining argv).

Errors a user causes -- a config that does not parse or cannot be built, unreadable data,
a refused checkpoint, an output folder of other settings -- print one line naming the cause
(``lit-ip: error: ...``, exit status 1; 2 for a config that does not parse) instead of a
traceback. ``--debug`` (anywhere on the command line) or ``LIT_IP_DEBUG=1`` shows the full
message and traceback. A run stopped by SIGTERM / SIGINT exits with ``128 + signal``.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Optional, Sequence

#: non-Lightning subcommands: name -> "module:function(argv)"
TOOLS: dict[str, str] = {
    "make-shards": "lit_ip.data.make_shards:main",
    "report": "lit_ip.reports:main",
    "memorization": "lit_ip.metrics.memorization:main",
}


DEBUG_FLAG = "--debug"


def debug() -> bool:
    """Full tracebacks wanted (``--debug``, ``LIT_IP_DEBUG=1``; ``LIT_IP_TRACEBACK=1`` still works)."""
    return any(os.environ.get(v, "") not in ("", "0") for v in ("LIT_IP_DEBUG", "LIT_IP_TRACEBACK"))


def user_errors() -> tuple:
    """Exception types that mean a bad input (config, data, checkpoint, output folder)."""
    from .data.shards import ShardError
    from .models.checkpoints import CheckpointError

    return (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError, ShardError, CheckpointError)


def _fail(text: str, code: int = 1):
    print(f"lit-ip: error: {text}\n(run with --debug or LIT_IP_DEBUG=1 for the full traceback)",
          file=sys.stderr)
    raise SystemExit(code)


def config_cause(message: str) -> str:
    """The innermost cause of a jsonargparse error, led by the keys on the way to it:
    ``model > methods > DPS > zeta: Expected a <class 'float'>. Got value: abc``."""
    lines = [ln for ln in message.splitlines() if ln.strip()]
    keys = re.findall(r'Parser key "([^"]+)"|class_path \'(?:[\w.]+\.)?(\w+)\'', message)
    path = [a or b for a, b in keys]
    skip = re.compile(r"^\s*(- )?(Expected a <class 'NoneType'>|Given value|Subtypes:|Errors:|Does not validate"
                      r"|Parser key|Problem with given class_path)")
    leaves = [ln for ln in lines if not skip.match(ln)]
    leaf = max(leaves, key=lambda ln: len(ln) - len(ln.lstrip())).strip(" -") if leaves else lines[0]
    return (" > ".join(dict.fromkeys(path)) + ": " if path else "") + leaf


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
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

    class OneLineErrorParser(LightningArgumentParser):
        """A parse error prints its cause in one line (the usage text only with ``--debug``)."""

        def error(self, message: str, ex: Optional[Exception] = None):
            if not self.exit_on_error or debug():
                return super().error(message, ex)
            _fail(f"in the configuration: {config_cause(message)}", code=2)

    class SafeSaveConfig(SaveConfigCallback):
        """Lightning's ``config.yaml``, written like every other output: atomically, never
        through a symbolic link planted in the output folder."""

        def setup(self, trainer, pl_module, stage: str) -> None:
            from pathlib import Path

            from . import io

            if self.already_saved:
                return
            log_dir = trainer.log_dir
            if trainer.is_global_zero and log_dir is not None:
                if Path(log_dir, self.config_filename).is_symlink():
                    raise ValueError(f"refusing to write {Path(log_dir, self.config_filename)}: it is a "
                                     f"symbolic link")
                path = io.safe_path(log_dir, self.config_filename)  # refuses links leading outside
                io.write_text(path, self.parser.dump(self.config, skip_none=False))
            if trainer.is_global_zero:
                self.save_config(trainer, pl_module, stage)  # Lightning's hook for extra copies
                self.already_saved = True
            self.already_saved = trainer.strategy.broadcast(self.already_saved)

    class LitIPCLI(LightningCLI):
        """LightningCLI with predict defaults suited to writing outputs to disk.

        * ``predict --return_predictions`` defaults to false: the prediction writer
          writes every batch, nothing is kept in memory (pass ``true`` to keep them).
        * For ``predict``, an unset ``trainer.default_root_dir`` becomes the output folder
          of the configured prediction writer, so ``config.yaml`` lands next to the outputs.
        * An error while building the objects of the config (bad sigma, missing prior, ...)
          is reported as its root cause in one line (``--debug`` for the traceback).
        """

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("parser_class", OneLineErrorParser)
            kwargs.setdefault("save_config_callback", SafeSaveConfig)
            super().__init__(*args, **kwargs)

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
            except Exception as e:
                if debug():
                    raise
                cause = _root_cause(e)
                _fail(f"cannot build the configuration: {type(cause).__name__}: {cause}")

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

    return _cli_class()(LightningModule, LightningDataModule, subclass_mode_model=True,
                        subclass_mode_data=True, args=args, save_config_kwargs={"overwrite": True},
                        seed_everything_default=False)


def main(args: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if args is None else args)
    if DEBUG_FLAG in argv:
        argv = [a for a in argv if a != DEBUG_FLAG]
        os.environ["LIT_IP_DEBUG"] = "1"
        if args is None:
            sys.argv[1:] = argv
    from .lightning.interrupt import RunInterrupted

    try:
        if argv and argv[0] in TOOLS:
            mod, fn = TOOLS[argv[0]].split(":")
            return getattr(importlib.import_module(mod), fn)(argv[1:])
        return _lightning_cli(None if args is None else argv)
    except RunInterrupted as e:
        print(f"lit-ip: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except user_errors() as e:
        if debug():
            raise
        _fail(f"{type(e).__name__}: {e}")


def console() -> int:
    """Console-script entry (``lit-ip``): like :func:`main`, but returns an exit status
    (a returned object would be printed by ``sys.exit``)."""
    out = main()
    return out if isinstance(out, int) else 0


if __name__ == "__main__":  # pragma: no cover
    main()
