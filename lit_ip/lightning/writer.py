"""Write posterior-sampling outputs once per sample, atomically, resumably.

Layout under ``output_dir`` (``KEY`` = the sample's key made file-name safe)::

    ground_truth/KEY.png
    TASK/measurement/KEY.png        y as an image (the pseudo-inverse if y is not image-shaped)
    TASK/pinv/KEY.png               pseudo-inverse (linear) or h_dagger baseline
    TASK/METHOD/KEY.png             reconstruction (KEY_s00.png ... and KEY_mean.png if num_samples > 1)
    metrics/KEY.json                per-image PSNR / SSIM rows, written last (marks the key done)
    metrics.csv, metrics.md, summary.json, figures/TASK.png     (rank 0, at the end)

A key whose outputs all exist and read back is skipped *before sampling* (the module asks
:meth:`PredictionWriter.is_complete`), so a rerun resumes an interrupted run; each key
is handled by exactly one rank, so the decision needs no communication. A damaged output
is removed and redone (:mod:`.resume`); two data items that would share output files are
refused. The folder is bound to the run's settings (``run_config.json``,
:mod:`.run_binding`): a rerun with settings that change outputs is refused before any work.
Every file goes through a temporary file, ``fsync`` and ``os.replace``; existing files are
never rewritten; SIGTERM / SIGINT abandon the sample in flight (:mod:`.interrupt`).
Metrics (torchmetrics functional, ``data_range=1``) compare images clipped to [0, 1],
i.e. what the PNGs show.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .. import io
from ..data.shards import read_skipped
from ..metrics.baselines import TRIVIAL, best_baselines
from ..metrics.evaluation import Evaluation, std_image
from . import interrupt, run_binding
from .figures import FigureRow, image_grid
from .resume import KeyLedger, usable
from .sampling_module import PosteriorSamplingModule

COLUMNS = ("key", "index", "task", "method", "sample", "psnr", "ssim", "nfe", "nfe_backward")
PINV = "pinv"


def image_metrics(preds: Tensor, target: Tensor) -> tuple[list[float], list[float]]:
    """Per-image PSNR (dB) and SSIM of ``preds`` (N, C, H, W) against ``target`` (1 or N, C, H, W)."""
    preds = preds.detach().float().cpu().clamp(0, 1)
    target = target.detach().float().cpu().clamp(0, 1).expand_as(preds)
    psnr = peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    k = min(11, min(preds.shape[-2:]))
    k = k if k % 2 else k - 1  # standard 11x11 window, sigma 1.5; shrunk for images under 11 pixels
    ssim = structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none",
                                               kernel_size=k, sigma=1.5 * k / 11)
    return [float(v) for v in psnr.reshape(-1)], [float(v) for v in ssim.reshape(-1)]


def counted_nfe(summary: list[dict]) -> dict:
    """``{"nfe": {method: ...}, "nfe_backward": {method: ...}}``: prior evaluations per posterior
    sample as counted by the prior during the run, averaged over the method's tasks."""
    out: dict = {"nfe": {}, "nfe_backward": {}}
    for key in out:
        per: dict[str, list[float]] = defaultdict(list)
        for s in summary:
            if key in s and not s["method"].endswith("(mean of samples)"):
                per[s["method"]].append(float(s[key]))
        out[key] = {m: sum(v) / len(v) for m, v in per.items()}
    return out


def is_image_shape(shape) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


class PredictionWriter(BasePredictionWriter):
    """Writes what :class:`PosteriorSamplingModule` returns (``write_interval="batch"``).

    Args:
        output_dir: output folder (created).
        figure_images: columns in the per-task figure.
        print_summary: print the mean PSNR / SSIM table at the end (rank 0).
        evaluation: LPIPS / FID / KID / consistency / calibration settings
            (:class:`~lit_ip.metrics.evaluation.Evaluation`; default: on, weights from
            the default folder, left out with a message when missing).
    """

    def __init__(self, output_dir: str, figure_images: int = 6, print_summary: bool = True,
                 evaluation: Optional[Evaluation] = None):
        super().__init__(write_interval="batch")
        self.evaluation = Evaluation() if evaluation is None else evaluation
        self.root = Path(output_dir)
        self.figure_images = int(figure_images)
        self.print_summary = bool(print_summary)
        self.layout: dict[str, Any] = {}
        self.summary: list[dict] = []
        self.ledger = KeyLedger()
        self.signals = interrupt.StopOnSignal()
        self._fresh: set[tuple[str, str, str]] = set()  # (key, task, method) computed by this run

    # --- layout ----------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return io.safe_path(self.root, *parts)

    def recon_names(self, skey: str) -> list[str]:
        n = self.layout["num_samples"]
        return [f"{skey}.png"] if n == 1 else ([f"{skey}_s{k:02d}.png" for k in range(n)]
                                              + [f"{skey}_mean.png", f"{skey}_std.png"])

    def expected_files(self, key: str) -> list[Path]:
        """The final outputs of ``key`` for the current configuration (ground truth aside)."""
        skey = io.sanitize_key(key)
        files = [self.path("metrics", f"{skey}.json")]
        for task, methods in self.layout["pairs"].items():
            if self.layout["display"][task] is not None:
                files.append(self.path(task, "measurement", f"{skey}.png"))
            if self.layout["has_pinv"][task]:
                files.append(self.path(task, PINV, f"{skey}.png"))
            files += [self.path(task, m, name) for m in methods for name in self.recon_names(skey)]
        return files

    def is_complete(self, key: str, index: Optional[int] = None) -> bool:
        """All outputs of ``key`` exist and read back (damaged ones are removed to be redone);
        refuses a second data item claiming the same output names."""
        skey = io.sanitize_key(key)
        record = self.path("metrics", f"{skey}.json")
        self.ledger.claim(skey, key, index, io.read_json(record) if usable(record) else None)
        gt = self.path("ground_truth", f"{skey}.png")
        gt_ok = not gt.exists() or usable(gt)  # damaged: removed, so the key is redone
        return all([usable(p) for p in self.expected_files(key)]) and gt_ok  # all checked

    # --- Lightning hooks ---------------------------------------------------------
    def on_predict_start(self, trainer, pl_module) -> None:
        if not isinstance(pl_module, PosteriorSamplingModule):
            raise TypeError(f"PredictionWriter writes the outputs of PosteriorSamplingModule, "
                            f"not {type(pl_module).__name__}")
        shape = pl_module.prior.image_shape
        display, has_pinv = {}, {}
        for task, t in pl_module.tasks.items():
            op = t.operator
            has_pinv[task] = bool(op.linear or op.has_h_dagger)
            y_shape = op.bind([0], pl_module.seed).output_shape(shape)
            display[task] = "y" if is_image_shape(y_shape) else (
                f"pinv (y has shape {tuple(y_shape)})" if has_pinv[task] else None)
        self.layout = {"pairs": pl_module.pairs, "num_samples": pl_module.num_samples,
                       "display": display, "has_pinv": has_pinv, "run": pl_module.describe(),
                       "tasks": pl_module.tasks, "seed": pl_module.seed}
        self.evaluation.setup(pl_module.pairs, pl_module.num_samples)
        self.root.mkdir(parents=True, exist_ok=True)
        pl_module.set_skip(self.is_complete)
        pl_module.set_pair_skip(self.is_pair_complete)
        pl_module.add_listener(self.on_result)
        self._fresh = set()
        self.signals.install()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.signals.restore()

    def setup(self, trainer, pl_module, stage: str) -> None:
        if isinstance(pl_module, PosteriorSamplingModule):  # refuse other settings' outputs first
            run_binding.check_run(self.root, pl_module, trainer, self)
        dm = trainer.datamodule  # data sources that skip damaged samples list them here
        if dm is not None and hasattr(dm, "report_skipped_to"):
            dm.report_skipped_to(self.root / "skipped")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        if prediction is None:
            return
        for j in range(len(prediction["key"])):
            self.write_sample(prediction, j)
        fresh = set(prediction["key"])  # finished keys skipped by a resumed run still count
        for key, index in zip(batch["key"], batch["index"]):
            if key not in fresh:
                self.evaluate_written(str(key), int(index))

    def evaluate_written(self, key: str, index: int) -> None:
        """Feed the data-set metrics with a key finished by an earlier run (from its files)."""
        skey = io.sanitize_key(key)
        gt = self.path("ground_truth", f"{skey}.png")
        if not gt.exists():
            return
        rows = io.read_json(self.path("metrics", f"{skey}.json"))["rows"]
        for task, methods in self.layout["pairs"].items():
            for m in methods:
                self.evaluation.update_from_rows(task, m, io.read_png(self.path(task, m, self.recon_names(skey)[0])),
                                                 io.read_png(gt), index, rows)

    def on_predict_end(self, trainer, pl_module) -> None:
        pl_module.set_skip(None)
        pl_module.set_pair_skip(None)
        pl_module.remove_listener(self.on_result)
        results = self.evaluation.compute()  # a collective: every rank, never in predict_step
        trainer.strategy.barrier("lit_ip_writer_done")
        if trainer.is_global_zero:
            self.finalize(results)
        trainer.strategy.barrier("lit_ip_writer_final")
        self.signals.restore()  # a signal during the tables above stops the run like any other

    # --- one sample --------------------------------------------------------------
    def _write_png(self, path: Path, image: Tensor) -> None:
        if not path.exists():
            io.write_png(path, image)

    def pair_record(self, key: str, task: str, method: str) -> Path:
        """Where one (sample, task, method) result's metric rows wait until the sample is done."""
        return self.path("metrics", "pairs", task, method, f"{io.sanitize_key(key)}.json")

    def is_pair_complete(self, key: str, task: str, method: str) -> bool:
        """The method's images and metric rows for this sample are written (a resumed run skips it)."""
        skey = io.sanitize_key(key)   # damaged files are removed by usable() and redone
        return all([usable(self.pair_record(key, task, method))]
                   + [usable(self.path(task, method, n)) for n in self.recon_names(skey)])

    def on_result(self, event: dict) -> None:
        """Write one (task, method) result of a batch as soon as the module has it: the shared
        images of its samples (ground truth, measurement, pseudo-inverse), the method's images
        and its metric rows (``metrics/pairs/TASK/METHOD/KEY.json``)."""
        if event["event"] != "done":
            return
        # the module runs methods outside inference mode; the metric states were made inside it
        with torch.inference_mode():
            self._write_result(event)

    def _write_result(self, event: dict) -> None:
        task, method = event["task"], event["method"]
        for i, (key, index) in enumerate(zip(event["keys"], event["indices"])):
            skey = io.sanitize_key(key)
            gt = None if event["image"] is None else event["image"][i]
            y, pinv = event["y"][i], None if event["pinv"] is None else event["pinv"][i]
            if gt is not None:
                self._write_png(self.path("ground_truth", f"{skey}.png"), gt)
            self._write_shared(task, skey, y, pinv)
            xs = event["samples"][i]
            extra = self.evaluation.row_values(task, method, xs, gt, y, int(index),
                                               self.layout["tasks"][task], self.layout["seed"])
            if len(xs) > 1:
                self._write_png(self.path(task, method, f"{skey}_std.png"), std_image(xs))
            images = list(xs) + ([xs.mean(0)] if len(xs) > 1 else [])
            labels = list(range(len(xs))) + (["mean"] if len(xs) > 1 else [])
            for name, img in zip(self.recon_names(skey), images):
                self._write_png(self.path(task, method, name), img)
            rows = []
            if gt is not None:
                rows = self._rows(key, int(index), task, [(method, s, im) for s, im in zip(labels, images)],
                                  gt, {method: event["nfe"]}, extra)
            io.write_json(self.pair_record(key, task, method), {"key": key, "index": int(index), "rows": rows})
            self._fresh.add((key, task, method))

    def _write_shared(self, task: str, skey: str, y: Tensor, pinv: Optional[Tensor]) -> None:
        shown = self.layout["display"][task]
        if shown is not None:
            self._write_png(self.path(task, "measurement", f"{skey}.png"), y if shown == "y" else pinv)
        if pinv is not None:
            self._write_png(self.path(task, PINV, f"{skey}.png"), pinv)

    @staticmethod
    def _rows(key, index, task, candidates, gt, counted, extra) -> list[dict]:
        """Metric rows of ``candidates`` ``[(method, sample, image)]`` against ``gt``."""
        psnr, ssim = image_metrics(torch.stack([c[2] for c in candidates]), gt[None])
        return [{"key": key, "index": index, "task": task, "method": m, "sample": s,
                 "psnr": p, "ssim": q, **counted.get(m, {}), **extra.get((m, s), {})}
                for (m, s, _), p, q in zip(candidates, psnr, ssim)]

    def write_sample(self, pred: dict, j: int) -> None:
        """Finish sample ``j`` of a batch: baseline rows plus every (task, method) record, then
        ``metrics/KEY.json`` (the "done" marker). Records a resumed run did not recompute feed
        the data-set metrics from their files."""
        key, index = pred["key"][j], int(pred["index"][j])
        skey = io.sanitize_key(key)
        gt = None if pred["image"] is None else pred["image"][j]
        if gt is not None:  # (again: a damaged copy was removed while its pairs were kept)
            self._write_png(self.path("ground_truth", f"{skey}.png"), gt)
        rows = []
        for task, res in pred["tasks"].items():
            pinv = None if res["pinv"] is None else res["pinv"][j]
            self._write_shared(task, skey, res["y"][j], pinv)
            trivial = None if res.get("trivial") is None else res["trivial"][j]
            base = [(name, 0, im) for name, im in ((PINV, pinv), (TRIVIAL, trivial)) if im is not None]
            if gt is not None and base:
                rows += self._rows(key, index, task, base, gt, {}, {})
            for method in self.layout["pairs"][task]:
                record = self.pair_record(key, task, method)
                if not usable(record):
                    return  # not every method has run on this sample: it stays incomplete
                pair_rows = io.read_json(record)["rows"]
                rows += pair_rows
                if (key, task, method) not in self._fresh and gt is not None:
                    self.evaluation.update_from_rows(task, method, io.read_png(
                        self.path(task, method, self.recon_names(skey)[0])), io.read_png(
                        self.path("ground_truth", f"{skey}.png")), index, pair_rows)
        self._write_metrics(skey, {"key": key, "index": index, "rows": rows})

    def _write_metrics(self, skey: str, record: dict) -> None:
        path = self.path("metrics", f"{skey}.json")
        ident = lambda rows: sorted((r["task"], r["method"], str(r["sample"])) for r in rows)  # noqa: E731
        if usable(path):  # damaged: removed by usable(), replaced here
            old = io.read_json(path)
            self.ledger.claim(skey, record["key"], record["index"], old)  # another rank's item?
            if ident(old.get("rows", [])) == ident(record["rows"]):
                return
        io.write_json(path, record)

    # --- end of run (rank 0) -----------------------------------------------------
    def load_rows(self) -> list[dict]:
        """All metric rows under ``metrics/`` that belong to the current (task, method) pairs."""
        wanted = {(t, m) for t, ms in self.layout["pairs"].items() for m in ms + [PINV, TRIVIAL]}
        rows = []
        for f in sorted(self.path("metrics").glob("*.json")):
            rows += [r for r in io.read_json(f)["rows"] if (r["task"], r["method"]) in wanted]
        return sorted(rows, key=lambda r: (r["task"], r["method"], r["index"], str(r["sample"])))

    @staticmethod
    def summarize(rows: list[dict]) -> list[dict]:
        """Mean PSNR / SSIM per (task, method); the pseudo-inverse and posterior-mean rows apart."""
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in rows:
            name = ("pinv (baseline)" if r["method"] == PINV else
                    "trivial (baseline)" if r["method"] == TRIVIAL else
                    f"{r['method']} (mean of samples)" if r["sample"] == "mean" else r["method"])
            groups[(r["task"], name)].append(r)
        out = []
        for (task, name), rs in groups.items():
            out.append({"task": task, "method": name, "images": len({r["key"] for r in rs}),
                        "psnr": sum(r["psnr"] for r in rs) / len(rs),
                        "ssim": sum(r["ssim"] for r in rs) / len(rs),
                        "nan": sum(1 for r in rs if math.isnan(r["psnr"]))})
            for k in ("nfe", "nfe_backward"):     # counted per sample, averaged over the images
                if all(r.get(k) is not None for r in rs):
                    out[-1][k] = sum(float(r[k]) for r in rs) / len(rs)
        order = lambda s: (s["task"], not s["method"].endswith("(baseline)"), s["method"])  # noqa: E731
        return sorted(out, key=order)

    def output_folders(self) -> list[Path]:
        """The folders this writer writes into (the root, not the folders below it)."""
        folders = [self.root] + [self.path(d) for d in ("ground_truth", "metrics", "figures")]
        for task, methods in self.layout["pairs"].items():
            folders += [self.path(task, d) for d in ("measurement", PINV, *methods)]
            folders += [self.path("metrics", "pairs", task, m) for m in methods]
        return folders

    def finalize(self, results: Optional[dict] = None) -> None:
        """Merge per-key metrics into tables, write summary and figures (all ranks are done)."""
        for folder in self.output_folders():  # this writer's temporary files, left by a killed run
            io.remove_own_temp_files(folder)
        rows = self.load_rows()
        columns = COLUMNS + self.evaluation.columns
        io.write_csv(self.path("metrics.csv"), rows, columns)
        io.write_text(self.path("metrics.md"), io.markdown_table(rows, columns))
        self.summary = self.summarize(rows)
        for s in self.summary:  # data-set LPIPS / FID / KID / consistency / calibration
            s.update((results or {}).get((s["task"], s["method"]), {}))
        io.write_json(self.path("summary.json"), {
            **counted_nfe(self.summary), "best_baseline": self.best_baseline(),
            "missing_weights": self.evaluation.missing,
            "skipped_samples": read_skipped(self.root / "skipped"),
            "evaluation": self.evaluation.describe(),
            "summary": self.summary, "num_images": len({r["key"] for r in rows}),
            "num_samples": self.layout["num_samples"], "measurement_shown_as": self.layout["display"],
            "run": self.layout["run"].splitlines(),
            "metrics": "PSNR (dB) and SSIM, torchmetrics, data_range=1, images clipped to [0, 1]"})
        for task in self.layout["pairs"]:
            self.write_figure(task)
        if self.print_summary:
            cols = ("task", "method", "images", "psnr", "ssim") + tuple(
                c for c in ("lpips", "fid", "kid_mean", "consistency", "coverage90", "mse_ratio")
                if any(c in s for s in self.summary))
            print(f"\nPosterior sampling summary ({self.root}):\n" + io.markdown_table(self.summary, cols))
            best = self.best_baseline()
            if best:
                print("best baseline per task (to beat): " + ", ".join(
                    f"{t} {b['method']} {b['psnr']:.2f} dB" for t, b in sorted(best.items())))
            skipped = read_skipped(self.root / "skipped")
            if skipped:
                print(f"WARNING: {len(skipped)} damaged samples skipped (listed in summary.json)")
            for s in self.summary:
                if s["nan"]:
                    print(f"WARNING: {s['method']} on {s['task']}: {s['nan']} outputs are NaN (diverged)")

    def best_baseline(self) -> dict:
        """Per task, the better of the pseudo-inverse and the trivial estimate (mean PSNR)."""
        return best_baselines(self.summary, {"pinv (baseline)": PINV, "trivial (baseline)": TRIVIAL})

    def write_figure(self, task: str) -> Optional[Path]:
        """Grid for ``task`` from the written PNGs (first ``figure_images`` keys in name order)."""
        gt_dir = self.path("ground_truth")
        names = sorted(p.name for p in gt_dir.glob("*.png"))[: self.figure_images] if gt_dir.exists() else []
        if not names:
            names = sorted(p.name for p in self.path(task, PINV).glob("*.png"))[: self.figure_images]
        if not names:
            return None
        skeys = [n[:-4] for n in names]
        metrics = self._metrics_by_key(task, skeys)

        def load(*parts):
            p = self.path(*parts)
            return io.read_png(p) if p.exists() else None

        shown = self.layout["display"][task]
        rows = [FigureRow("ground truth", [load("ground_truth", n) for n in names])]
        if shown is not None:
            label = "measurement" if shown == "y" else "measurement\n(shown as pinv)"
            caps = [self._caption(metrics.get((k, TRIVIAL))) for k in skeys]
            if any(caps):  # the trivial estimate is the measurement read as an image (grey: colorize)
                label, caps = label + "\n= trivial estimate", [c and f"{c} (trivial)" for c in caps]
            rows.append(FigureRow(label, [load(task, "measurement", n) for n in names], caps))
        methods = ([PINV] if self.layout["has_pinv"][task] else []) + self.layout["pairs"][task]
        for m in methods:
            first = [self.recon_names(k)[0] if m != PINV else f"{k}.png" for k in skeys]
            caps = [self._caption(metrics.get((k, m))) for k in skeys]
            rows.append(FigureRow("pseudo-inverse" if m == PINV else m,
                                  [load(task, m, f) for f in first], caps))
            if m != PINV and self.layout["num_samples"] > 1:  # posterior mean, per-pixel spread
                rows.append(FigureRow(f"{m}\nposterior mean", [load(task, m, f"{k}_mean.png") for k in skeys],
                                      [self._caption(metrics.get((k, m, "mean"))) for k in skeys]))
                rows.append(FigureRow(f"{m}\n2 x std", [load(task, m, f"{k}_std.png") for k in skeys]))
        png = image_grid(rows, [k if len(k) <= 18 else k[:17] + "…" for k in skeys],
                         title=f"task: {task}" + (" (per method: one posterior sample, the mean, 2 x std)"
                                                  if self.layout["num_samples"] > 1 else ""))
        return io.write_bytes(self.path("figures", f"{task}.png"), png)

    def _metrics_by_key(self, task: str, skeys: list[str]) -> dict:
        out = {}
        for k in skeys:
            p = self.path("metrics", f"{k}.json")
            if p.exists():
                for r in io.read_json(p)["rows"]:
                    if r["task"] == task and r["sample"] in (0, "0"):
                        out[(k, r["method"])] = r
                    elif r["task"] == task and r["sample"] == "mean":
                        out[(k, r["method"], "mean")] = r
        return out

    @staticmethod
    def _caption(row: Optional[dict]) -> str:
        if row is None:
            return ""
        p = row["psnr"]
        return f"{p:.1f} dB" if math.isfinite(p) else "exact"
