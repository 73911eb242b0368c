"""Data-set evaluation of a posterior-sampling run, one (task, method) pair at a time.

:class:`Evaluation` is what the prediction writer uses beyond PSNR / SSIM:

* per image (rows of the per-image table): LPIPS of every sample, measurement
  consistency ``||y - A(x)|| / (sigma sqrt(m))`` and its RMS residual, and with several
  samples per measurement the calibration values (coverage of the central 90% interval,
  MSE/MMSE ratio) on the posterior-mean row;
* per (task, method) over the data set: an :class:`~lit_ip.metrics.image.ImageMetrics`
  (synced means, FID, KID) fed with the first sample of every measurement.

Images enter the data-set metrics as their 8-bit PNGs show them, so that a resumed run
(which reads finished keys back from disk) gives the same values as an uninterrupted one.
``update`` is local; ``compute`` is a collective (all ranks, at epoch end).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .calibration import calibration, dataset_mse_ratio, posterior_stats
from .consistency import measurement_consistency, residual_rms
from .image import FEATURE_LABELS, ImageMetrics, feature_networks
from .lpips import shipped_heads

SAMPLE_COLUMNS = ("lpips", "lpips_vgg", "consistency", "residual_rms")
CALIBRATION_COLUMNS = ("coverage90", "mse_samples", "mse_mean", "mse_ratio")


def as_png(x: Tensor) -> Tensor:
    """What an 8-bit PNG of ``x`` (values in [0, 1]) shows, as floats."""
    return (x.detach().float().clamp(0, 1) * 255).round() / 255


def _finite(v: float) -> Optional[float]:
    return v if math.isfinite(v) else None


class Evaluation(nn.Module):
    """Per-image and data-set metrics of every (task, method) pair.

    Args: as :class:`~lit_ip.metrics.image.ImageMetrics` (``backbone_weights`` names the
    local AlexNet file for LPIPS; ``inception_weights`` the FID Inception-v3 file, default for
    FID / KID when found, else the AlexNet features, labelled; ``vgg_weights`` the VGG-16 file
    of LPIPS-VGG; files are looked for in ``$LIT_IP_WEIGHTS`` and ``$TORCH_HOME/hub/checkpoints``;
    a missing file leaves its metric out with a message).
    """

    def __init__(self, backbone_weights: Optional[str] = None, lpips_heads: Optional[str] = None,
                 lpips: bool = True, fid: bool = True, kid: bool = True, kid_subsets: int = 50,
                 kid_subset_size: int = 1000, backbone: Optional[nn.Module] = None,
                 inception_weights: Optional[str] = None, fid_features: str = "auto",
                 lpips_vgg: bool = True, vgg_weights: Optional[str] = None,
                 features: Optional[nn.Module] = None, vgg_backbone: Optional[nn.Module] = None):
        super().__init__()
        self.options = dict(backbone_weights=backbone_weights, lpips_heads=lpips_heads, lpips=lpips,
                            fid=fid, kid=kid, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                            inception_weights=inception_weights, fid_features=fid_features,
                            lpips_vgg=lpips_vgg, vgg_weights=vgg_weights)
        self.backbone, self.features, self.vgg = backbone, features, vgg_backbone
        self.feature_name: Optional[str] = None
        self.pairs: dict[tuple[str, str], ImageMetrics] = {}
        self.metrics = nn.ModuleDict()
        self.num_samples = 1
        self.missing: list[str] = []
        self.notes: list[str] = []

    def setup(self, pairs: dict[str, list[str]], num_samples: int) -> None:
        """Declare the (task, method) pairs before any update (every rank the same)."""
        self.num_samples = int(num_samples)
        extra = ("consistency", "residual_rms") + (CALIBRATION_COLUMNS if self.num_samples > 1 else ())
        self.metrics = nn.ModuleDict()
        self.pairs = {}
        opts = dict(self.options)
        given_backbone = self.backbone is not None
        nets = feature_networks(self.backbone, self.features, self.vgg, backbone_weights=opts.pop("backbone_weights"),
                                inception_weights=opts.pop("inception_weights"), vgg_weights=opts.pop("vgg_weights"),
                                fid_features=opts.pop("fid_features"), need_alexnet=opts["lpips"],
                                need_features=opts["fid"] or opts["kid"], need_vgg=opts["lpips_vgg"])
        self.backbone, self.features, self.vgg = nets["backbone"], nets["features"], nets["vgg"]
        self.feature_name, self.missing, self.notes = nets["feature_name"], nets["missing"], nets["notes"]
        if self.backbone is not None and opts["lpips_heads"] is None and not given_backbone:
            opts["lpips_heads"] = str(shipped_heads("alex"))
        opts.update(lpips=opts["lpips"] and self.backbone is not None, lpips_vgg=opts["lpips_vgg"] and self.vgg is not None,
                    fid=opts["fid"] and self.features is not None, kid=opts["kid"] and self.features is not None)
        for task, methods in pairs.items():
            for method in methods:
                m = ImageMetrics(extra=extra, backbone=self.backbone, features=self.features,
                                 vgg_backbone=self.vgg, **opts)
                self.pairs[(task, method)] = m
                self.metrics[f"{task}/{method}".replace(".", "_")] = m

    @property
    def columns(self) -> tuple[str, ...]:
        """Per-image table columns this evaluation adds."""
        have = {"lpips": any(m.lpips is not None for m in self.pairs.values()),
                "lpips_vgg": any(m.lpips_vgg is not None for m in self.pairs.values())}
        cols = tuple(c for c in SAMPLE_COLUMNS if have.get(c, True))
        return cols + (CALIBRATION_COLUMNS if self.num_samples > 1 else ())

    def describe(self) -> str:
        lp = [n for n, net in (("LPIPS (AlexNet)", self.backbone), ("LPIPS-VGG", self.vgg)) if net is not None]
        feats = ", ".join(lp) or "LPIPS left out (backbone weights missing)"
        feats += (f"; FID and KID on {FEATURE_LABELS.get(self.feature_name, self.feature_name)} features"
                  if self.feature_name else "; FID / KID left out (feature weights missing)")
        feats += "".join(f" [{n}]" for n in self.notes)
        return (f"{feats}, data-set values over the first sample of each measurement as its PNG shows it; "
                f"consistency = ||y - A(x)|| / (sigma_y sqrt(m)); with several samples, coverage90 and "
                f"mse_ratio (2 for an exact posterior sampler) on the posterior-mean rows")

    # --- one measurement (local) -----------------------------------------------------
    def row_values(self, task: str, method: str, samples: Tensor, gt: Optional[Tensor], y: Tensor,
                   index: int, spec, seed: int) -> dict[tuple, dict]:
        """Per-image table values keyed by ``(method, sample)`` (``"mean"`` for calibration);
        ``spec`` has the task's ``operator`` (bound here to sample ``index``) and ``noise``."""
        n = samples.shape[0]
        op = spec.operator.bind([int(index)] * n, seed)
        op = op if op is spec.operator else op.to(samples.device)
        res = self.measure(task, method, samples, gt, y, op, float(spec.noise.sigma), index)
        out = {(method, k): v for k, v in enumerate(res["samples"])}
        if n > 1:
            out[(method, "mean")] = res["mean"]
        return out

    @torch.no_grad()
    def measure(self, task: str, method: str, samples: Tensor, gt: Optional[Tensor], y: Tensor,
                forward: Callable[[Tensor], Tensor], sigma: float, index: int) -> dict:
        """Values of one measurement: ``{"samples": [row values per sample], "mean": {...}}``;
        updates the data-set states when the ground truth is known.

        ``samples``: (n, C, H, W); ``forward`` applies this sample's operator to a batch.
        """
        n = samples.shape[0]
        ax = forward(samples.float()).detach()
        ys = y.float().expand(n, *y.shape)
        rms = residual_rms(ys, ax)
        cons = measurement_consistency(ys, ax, sigma)
        rows = [{"consistency": _finite(float(c)), "residual_rms": float(r)} for c, r in zip(cons, rms)]
        mean_row: dict = {}
        if gt is None:
            return {"samples": rows, "mean": mean_row}
        samples, gt = samples.detach().cpu(), gt.detach().cpu()
        metric = self.pairs[(task, method)]
        for name in ("lpips", "lpips_vgg"):
            net = getattr(metric, name)
            if net is not None:
                for row, v in zip(rows, net(as_png(samples), as_png(gt).expand_as(samples))):
                    row[name] = float(v)
        if n > 1:
            cal = calibration(samples.float()[None], gt.float()[None])
            mean_row = {k: float(v[0]) for k, v in cal.items()}
        self.update(task, method, samples[0], gt, index, {**rows[0], **mean_row})
        return {"samples": rows, "mean": mean_row}

    def update(self, task: str, method: str, recon: Tensor, gt: Tensor, index: int, values: dict) -> None:
        """Data-set states from one image pair and its stored row values (also used when a
        resumed run reads a finished key back from disk)."""
        metric = self.pairs[(task, method)]
        extra = {k: torch.tensor([math.nan if values.get(k) is None else float(values[k])])
                 for k in metric.extra}
        metric.update(as_png(recon)[None], as_png(gt)[None], torch.tensor([int(index)]), extra)

    def update_from_rows(self, task: str, method: str, recon: Tensor, gt: Tensor, index: int,
                         rows: list[dict]) -> None:
        """:meth:`update` from the written first-sample image and the key's table rows."""
        values: dict = {}
        for r in rows:
            if r.get("task") == task and r.get("method") == method and str(r.get("sample")) in ("0", "mean"):
                values.update(r)
        self.update(task, method, recon, gt, index, values)

    # --- data set (collective) -----------------------------------------------------------
    def compute(self) -> dict[tuple[str, str], dict]:
        """``(task, method) -> {lpips, fid, kid_mean, kid_std, consistency, ...}``; every rank."""
        out = {}
        for pair, metric in self.pairs.items():
            vals = metric.compute()
            vals = {k: v for k, v in vals.items() if k not in ("psnr", "ssim", "mse_samples", "mse_mean")}
            if self.num_samples > 1:
                raw = metric.means
                vals["mse_ratio"] = dataset_mse_ratio(float(raw["mse_samples"].compute()),
                                                      float(raw["mse_mean"].compute()), self.num_samples)
            out[pair] = vals
        return out

    def reset(self) -> None:
        for m in self.pairs.values():
            m.reset()


def std_image(samples: Tensor) -> Tensor:
    """Per-pixel standard deviation of ``samples`` (n, C, H, W) as an image: ``2 * std``
    (a [0, 1]-valued sample set has std <= 0.5, so this fills the PNG range)."""
    return (2 * posterior_stats(samples[None])[1][0]).clamp(0, 1)
