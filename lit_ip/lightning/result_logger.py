"""Send a predict run's results to the trainer's loggers (CSV, TensorBoard, W&B, ...).

The :class:`~lit_ip.lightning.writer.PredictionWriter` writes ``summary.json`` and
``metrics.csv``; ``self.log`` is disabled in predict hooks, so without this callback a logger
receives only the config. :class:`LogResults` reads the writer's summary once every rank has
finished (``teardown``, after every callback's ``on_predict_end`` and before the loggers are
finalised) and calls ``logger.log_metrics`` on every logger of the trainer:

    TASK/METHOD/METRIC                      one value per (task, method), step 0
    per_image/TASK/METHOD/METRIC            per image (``per_image=True``), step = data index
    per_image/TASK/METHOD/sNN/METRIC        the same for posterior sample NN > 0 (and ``mean``)

``METHOD`` is the summary's method name made path-safe (``pinv (baseline)`` -> ``pinv_baseline``).
``lit-ip predict`` adds this callback by itself when the trainer has a logger and none is
configured; add it explicitly (``trainer.callbacks``) for ``per_image: true``.
"""
from __future__ import annotations

import re
import warnings
from typing import Iterable, Optional

from lightning import Callback

__all__ = ["LogResults", "summary_metrics", "per_image_metrics"]

#: summary fields that are not metrics
_NOT_METRICS = {"task", "method", "key", "index", "sample"}


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


def _numeric(record: dict) -> dict[str, float]:
    out = {}
    for k, v in record.items():
        if k in _NOT_METRICS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = float(v)
    return out


def summary_metrics(summary: Iterable[dict]) -> dict[str, float]:
    """``{"TASK/METHOD/METRIC": value}`` from the writer's summary records."""
    return {f"{_name(s['task'])}/{_name(s['method'])}/{k}": v
            for s in summary for k, v in _numeric(s).items()}


def per_image_metrics(rows: Iterable[dict]) -> dict[int, dict[str, float]]:
    """``{index: {"per_image/TASK/METHOD[/sNN]/METRIC": value}}`` from the per-image rows."""
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        sample = r.get("sample", 0)
        sub = "" if sample in (0, "0", None) else (f"/s{int(sample):02d}" if str(sample).isdigit() else f"/{_name(sample)}")
        prefix = f"per_image/{_name(r['task'])}/{_name(r['method'])}{sub}"
        out.setdefault(int(r["index"]), {}).update(
            {f"{prefix}/{k}": v for k, v in _numeric(r).items()})
    return out


def find_writer(trainer):
    from .writer import PredictionWriter

    writers = [cb for cb in trainer.callbacks if isinstance(cb, PredictionWriter)]
    return writers[0] if writers else None


class LogResults(Callback):
    """Log the summary (and optionally per-image) metrics of a predict run to every logger.

    Args:
        per_image: also log every image's metrics (step = the image's data index).
    """

    def __init__(self, per_image: bool = False):
        self.per_image = bool(per_image)
        self.logged: Optional[dict[str, float]] = None

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage != "predict" or not trainer.loggers or not trainer.is_global_zero:
            return
        writer = find_writer(trainer)
        if writer is None:
            warnings.warn("LogResults: no PredictionWriter among the trainer's callbacks; nothing to log")
            return
        if not writer.summary:
            warnings.warn("LogResults: the prediction writer has no summary (no finished samples); nothing logged")
            return
        self.logged = summary_metrics(writer.summary)
        per_image = per_image_metrics(writer.load_rows()) if self.per_image else {}
        for logger in trainer.loggers:
            logger.log_metrics(self.logged, step=0)
            for index, metrics in sorted(per_image.items()):
                logger.log_metrics(metrics, step=index)
            logger.save()
