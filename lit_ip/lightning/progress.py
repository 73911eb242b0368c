"""What a user sees while ``lit-ip predict`` runs: one bar over the work, no library chatter.

* :func:`quiet_lightning` drops Lightning's "💡 Tip: ..." advertisements (info records of the
  ``lightning.pytorch.utilities.rank_zero`` logger starting with the tip marker) and the
  ``LeafSpec`` deprecation notice that Lightning's own pytree copy triggers in torch (a
  ``FutureWarning`` with that exact message). Nothing else is filtered: our own warnings
  (missing LPIPS weights, NaN outputs) and Lightning's errors stay visible.
* :class:`WorkProgressBar` is a Lightning progress bar whose unit is one (task, method, image)
  item: its total is ``images x (task, method) pairs`` of this process, it advances as each
  method finishes on a batch (items a resumed run skips count at once) and shows the running
  pair and an ETA. Being a :class:`~lightning.pytorch.callbacks.ProgressBar`, it replaces
  Lightning's per-batch bar (one bar, not two).

The sampling module announces work through listeners
(:meth:`~lit_ip.lightning.sampling_module.PosteriorSamplingModule.add_listener`): events
``{"event": "start", "task", "method", "count"}`` before a method runs and
``{"event": "done" | "skipped", "task", "method", "count", ...}`` after.
"""
from __future__ import annotations

import logging
import sys
import warnings
from typing import Optional

from lightning.pytorch.callbacks import ProgressBar

TIP = "💡 Tip:"
LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP)


_FILTER = _DropTips()


def quiet_lightning() -> None:
    """Install the two filters (idempotent)."""
    for name in _LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
    warnings.filterwarnings("ignore", message=LEAFSPEC, category=FutureWarning)


def work_units(trainer, pl_module) -> Optional[int]:
    """(task, method, image) items this process will handle, or None if unknown."""
    loaders = trainer.predict_dataloaders
    if loaders is None:
        return None
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    try:
        images = sum(len(dl.sampler) if getattr(dl, "sampler", None) is not None else len(dl.dataset)
                     for dl in loaders)
    except TypeError:  # iterable data sets (shards) have no length
        return None
    return images * sum(len(ms) for ms in pl_module.pairs.values())


class WorkProgressBar(ProgressBar):
    """One tqdm bar counting (task, method, image) items, with an ETA (see module doc).

    Args:
        leave: keep the finished bar on screen.
    """

    def __init__(self, leave: bool = True):
        super().__init__()
        quiet_lightning()
        self.leave = bool(leave)
        self._enabled = True
        self.bar = None

    # ProgressBar interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_predict_start(self, trainer, pl_module) -> None:
        if hasattr(pl_module, "add_listener"):
            pl_module.add_listener(self.on_work)
        if self._enabled and trainer.is_global_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=work_units(trainer, pl_module), desc="posterior sampling",
                            unit="item", dynamic_ncols=True, leave=self.leave, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "(task, method, image) [{elapsed}<{remaining}{postfix}]")

    def on_work(self, event: dict) -> None:
        if self.bar is None:
            return
        if event["event"] == "start":
            self.bar.set_postfix_str(f"{event['task']}/{event['method']}", refresh=True)
        else:
            self.bar.update(int(event["count"]))

    def on_predict_end(self, trainer, pl_module) -> None:
        if hasattr(pl_module, "remove_listener"):
            pl_module.remove_listener(self.on_work)
        if self.bar is not None:
            self.bar.close()
            self.bar = None


__all__ = ["quiet_lightning", "work_units", "WorkProgressBar", "TIP", "LEAFSPEC"]
