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

#: modules imported before parsing, so that every prior / operator / method / schedule / data
#: class is a known subclass: short class names work (``--model.prior.help GaussianPrior``) and
#: ``--model.prior.help`` lists them all
PART_MODULES = (
    "lit_ip.priors.analytic", "lit_ip.priors.synthetic", "lit_ip.priors.network",
    "lit_ip.priors.pretrained", "lit_ip.priors.loaders", "lit_ip.operators", "lit_ip.methods",
    "lit_ip.sampling.schedules", "lit_ip.data.bundled", "lit_ip.data.folder", "lit_ip.data.analytic",
    "lit_ip.lightning.sampling_module", "lit_ip.lightning.datamodules", "lit_ip.lightning.writer",
    "lit_ip.lightning.training",
)

#: ``--model.prior.help`` / ``--model.methods.help`` without a class name: list the classes
HELP_LISTS = {"prior": ("lit_ip.priors.base", "Prior"), "methods": ("lit_ip.methods.base", "Method")}

EPILOG = """other subcommands (not Lightning runs; each takes --help):
  report        compare finished predict runs (tables, quality-vs-NFE, image grids)
  make-shards   write an image folder or data set as webdataset shards
  memorization  nearest training images of generated samples

several --config files compose (one file per concern: prior, task, method, data,
trainer); mappings such as model.init_args.methods merge across files (lit_ip.compose)."""


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
        * For ``predict`` with a logger, the summary metrics are logged to it
          (:class:`~lit_ip.lightning.result_logger.LogResults`, added unless configured).
        * An error while building the objects of the config (bad sigma, missing prior, ...)
          is reported as its root cause in one line (``--debug`` for the traceback).
        """

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            """Only the Lightning runs that apply: ``fit`` (train a prior), ``predict`` (sample)."""
            return {k: v for k, v in LightningCLI.subcommands().items() if k in ("fit", "predict")}

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("parser_class", OneLineErrorParser)
            kwargs.setdefault("save_config_callback", SafeSaveConfig)
            super().__init__(*args, **kwargs)

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
                self._log_results()
            except Exception as e:
                if debug():
                    raise
                cause = _root_cause(e)
                _fail(f"cannot build the configuration: {type(cause).__name__}: {cause}")

        def _log_results(self) -> None:
            """predict with a logger: send the summary metrics to it (``LogResults``), unless
            the config already has that callback."""
            from .lightning.result_logger import LogResults

            trainer = getattr(self, "trainer", None)
            if self.subcommand == "predict" and trainer is not None and trainer.loggers and \
                    not any(isinstance(cb, LogResults) for cb in trainer.callbacks):
                trainer.callbacks.append(LogResults())

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

    for mod in PART_MODULES:
        importlib.import_module(mod)
    return _cli_class()(LightningModule, LightningDataModule, subclass_mode_model=True,
                        subclass_mode_data=True, args=args, save_config_kwargs={"overwrite": True},
                        seed_everything_default=False,
                        parser_kwargs={"epilog": EPILOG, "formatter_class": _formatter()})


def _formatter():
    """jsonargparse's help formatter keeping the epilog's line breaks."""
    import argparse

    from jsonargparse import DefaultHelpFormatter

    class Formatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    return Formatter


def _subclasses(cls) -> list[type]:
    out, todo = [], [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out and not sub.__name__.startswith("_"):
                out.append(sub)
                todo.append(sub)
    return out


def list_classes(argv: Sequence[str]) -> Optional[str]:
    """The class list for a bare ``--model.prior.help`` / ``--model.methods.help`` in argv, else None
    (jsonargparse's ``.help`` needs a class name; without one it lists nothing)."""
    import re

    for i, a in enumerate(argv):
        m = re.fullmatch(r"--model\.(?:init_args\.)?(prior|methods)\.help", a)
        if m and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            for mod in PART_MODULES:
                importlib.import_module(mod)
            module, name = HELP_LISTS[m.group(1)]
            base = getattr(importlib.import_module(module), name)
            rows = []
            for c in sorted(_subclasses(base), key=lambda c: (c.__module__, c.__name__)):
                doc = (c.__doc__ or "").strip().splitlines()
                rows.append(f"  {c.__name__:28s} {c.__module__}.{c.__name__}" + (f"\n      {doc[0]}" if doc else ""))
            return (f"{name} classes (short or full name; `{a} NAME` shows a class's arguments):\n"
                    + "\n".join(rows))
    return None


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
        listing = list_classes(argv)
        if listing is not None:
            print(listing)
            return 0
        from .compose import compose_argv

        composed = compose_argv(argv)
        return _lightning_cli(None if (args is None and composed == argv) else composed)
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
