"""Image-quality metrics per image and over a data set, synced across ranks.

:class:`ImageMetrics` computes per-image PSNR, SSIM and LPIPS (plus any extra per-image
values the caller declares, e.g. consistency or calibration) and keeps torchmetrics
states for the data set: a :class:`~torchmetrics.MetricCollection` of running means,
torchmetrics' FID and a process-count-independent :class:`~lit_ip.metrics.kid.KID`.

``update`` is local (call it in ``predict_step``); ``compute`` is a collective: call it on
every rank at epoch end, never inside ``predict_step``. LPIPS, FID and KID need backbone
weights from a local file; without it, :attr:`ImageMetrics.missing` says which file is
missing and where to put it, and everything else is still computed.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image.fid import FrechetInceptionDistance

from .backbones import ALEXNET_FILE, VGG16_FILE, AlexNetFeatures, PooledFeatures, VGG16Features, find_weights
from .inception import INCEPTION_FILES, InceptionV3Features
from .kid import KID
from .lpips import LPIPS, shipped_heads

BASE_NAMES = ("psnr", "ssim")


class FID(FrechetInceptionDistance):
    """torchmetrics' FID, usable on a rank that saw no data (its ``compute`` reads an
    ``orig_dtype`` that only ``update`` sets: a rank without items would crash the collective)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.orig_dtype = torch.float32


def missing_backbone_message(looked) -> str:
    looked = [looked] if isinstance(looked, (str, bytes)) or not hasattr(looked, "__iter__") else list(looked)
    return (f"LPIPS (and FID / KID without Inception weights) need AlexNet backbone weights, but none of "
            f"{[str(p) for p in looked]} exists. Put torchvision's {ALEXNET_FILE} in one of those folders "
            f"($LIT_IP_WEIGHTS, $TORCH_HOME/hub/checkpoints), or give its path in the config "
            f"(PredictionWriter: `evaluation.init_args.backbone_weights`). Computing the other metrics without them.")


#: how the data-set feature metrics are labelled in summaries
FEATURE_LABELS = {"inception": "Inception-v3 pool3 (2048-d; comparable with published FID / KID)",
                  "alexnet": "AlexNet conv5, pooled (fallback: NOT comparable with published FID / KID)"}


def ssim_window(size) -> dict:
    """SSIM's Gaussian window: 11 pixels with sigma 1.5, shrunk (window and sigma) to the
    largest odd size that fits an image under 11 pixels."""
    k = min(11, *size)
    k = max(k if k % 2 else k - 1, 1)
    return {"kernel_size": k, "sigma": 1.5 * k / 11}


def default_backbone(backbone_weights: Optional[str] = None) -> tuple[Optional[nn.Module], list[str]]:
    """The AlexNet backbone from ``backbone_weights`` (or the weight folders), or ``None``
    and the message saying where it was looked for."""
    path, looked = find_weights(ALEXNET_FILE, backbone_weights)
    if path is None:
        msg = missing_backbone_message(looked)
        warnings.warn(msg)
        return None, [msg]
    return AlexNetFeatures(weights=str(path)), []


def default_inception(inception_weights: Optional[str] = None) -> tuple[Optional[nn.Module], list[str]]:
    """FID Inception-v3 features from ``inception_weights`` (or the weight folders), or ``None``
    and a note saying where the file was looked for."""
    path, looked = find_weights(INCEPTION_FILES, inception_weights)
    if path is None:
        return None, [f"FID / KID use the AlexNet fallback features: no Inception-v3 weights "
                      f"({INCEPTION_FILES[0]}, torch-fidelity's file) in {looked}"]
    return InceptionV3Features(weights=str(path)), []


def default_vgg(vgg_weights: Optional[str] = None) -> tuple[Optional[nn.Module], list[str]]:
    """The VGG-16 backbone of LPIPS-VGG, or ``None`` and a note saying where it was looked for."""
    path, looked = find_weights(VGG16_FILE, vgg_weights)
    if path is None:
        return None, [f"LPIPS-VGG left out: no torchvision {VGG16_FILE} in {looked}"]
    return VGG16Features(weights=str(path)), []


def feature_networks(backbone=None, features=None, vgg=None, *, backbone_weights=None, inception_weights=None,
                     vgg_weights=None, fid_features: str = "auto", need_alexnet: bool = True,
                     need_features: bool = True, need_vgg: bool = True) -> dict:
    """Resolve the networks of LPIPS / LPIPS-VGG / FID / KID (given ones are kept).

    ``fid_features``: ``"auto"`` (Inception-v3 when its weights are found, else AlexNet,
    labelled), ``"inception"`` (required: missing weights raise) or ``"alexnet"``. A given
    ``backbone`` without ``features`` (tests) means AlexNet features under ``"auto"``.
    Returns ``{"backbone", "features", "vgg", "feature_name", "missing", "notes"}``: ``missing``
    names the AlexNet file whose absence leaves LPIPS (and FID / KID without Inception) out,
    ``notes`` say where the optional Inception-v3 and VGG-16 files were looked for when absent.
    """
    if fid_features not in ("auto", "inception", "alexnet"):
        raise ValueError(f"fid_features must be 'auto', 'inception' or 'alexnet', got {fid_features!r}")
    missing: list[str] = []
    notes: list[str] = []
    name = None if features is None else "custom"
    if need_features and features is None and fid_features != "alexnet" and not (
            backbone is not None and fid_features == "auto"):
        features, note = default_inception(inception_weights)
        if features is None and fid_features == "inception":
            raise FileNotFoundError(note[0])
        notes += note
        name = "inception" if features is not None else None
    if backbone is None and (need_alexnet or (need_features and features is None)):
        backbone, note = default_backbone(backbone_weights)
        missing += note
    if need_features and features is None and backbone is not None:
        features, name = PooledFeatures(backbone), "alexnet"
    if need_vgg and vgg is None:
        vgg, note = default_vgg(vgg_weights)
        notes += note
    return {"backbone": backbone, "features": features if need_features else None,
            "vgg": vgg if need_vgg else None, "feature_name": name if need_features else None, "missing": missing,
            "notes": notes}


class ImageMetrics(nn.Module):
    """Per-image and data-set metrics for reconstructions against ground truth in [0, 1].

    Args:
        backbone_weights: local torchvision AlexNet weights for LPIPS / FID / KID; ``None``
            looks for ``$LIT_IP_WEIGHTS/alexnet-owt-7be5be79.pth`` (default folder
            ``~/.cache/lit_ip/weights``).
        lpips_heads: LPIPS linear heads; ``None`` uses the file shipped with torchmetrics.
        extra: names of further per-image values passed to :meth:`update` (their data-set
            means are synced like the others).
        fid, kid, lpips: switch the feature metrics off.
        kid_subsets, kid_subset_size: KID subsets (the size shrinks to the data).
        backbone: a ready tap backbone (tests: a small random one); bypasses the files and
            leaves the LPIPS heads random unless ``lpips_heads`` is given.
        inception_weights: local FID Inception-v3 file (torch-fidelity's
            ``weights-inception-2015-12-05-6726825d.pth``); ``None`` looks in the weight folders.
        fid_features: ``"auto"`` (Inception when found, else AlexNet, labelled), ``"inception"``, ``"alexnet"``.
        lpips_vgg, vgg_weights: LPIPS with VGG-16 (torchvision ``vgg16-397923af.pth``) beside AlexNet.
        features, vgg_backbone: ready FID / KID feature module and LPIPS-VGG backbone (tests).
    """

    def __init__(self, backbone_weights: Optional[str] = None, lpips_heads: Optional[str] = None,
                 extra: Sequence[str] = (), fid: bool = True, kid: bool = True, lpips: bool = True,
                 kid_subsets: int = 50, kid_subset_size: int = 1000,
                 backbone: Optional[nn.Module] = None, inception_weights: Optional[str] = None,
                 fid_features: str = "auto", lpips_vgg: bool = True, vgg_weights: Optional[str] = None,
                 features: Optional[nn.Module] = None, vgg_backbone: Optional[nn.Module] = None):
        super().__init__()
        given_backbone = backbone is not None
        nets = feature_networks(backbone, features, vgg_backbone, backbone_weights=backbone_weights,
                                inception_weights=inception_weights, vgg_weights=vgg_weights,
                                fid_features=fid_features, need_alexnet=lpips, need_features=fid or kid,
                                need_vgg=lpips_vgg)
        self.missing: list[str] = nets["missing"]
        self.notes: list[str] = nets["notes"]
        backbone, feats, vgg = nets["backbone"], nets["features"], nets["vgg"]
        self.feature_name = nets["feature_name"]
        if backbone is not None and lpips_heads is None and not given_backbone:
            lpips_heads = str(shipped_heads("alex"))
        self.lpips = LPIPS(backbone, lpips_heads) if (lpips and backbone is not None) else None
        self.lpips_vgg = (LPIPS(vgg, None if vgg_backbone is not None else str(shipped_heads("vgg")))
                          if (lpips_vgg and vgg is not None) else None)
        self.fid = FID(feature=feats, normalize=True) if (fid and feats) else None
        self.kid = (KID(feats, subsets=kid_subsets, subset_size=kid_subset_size)
                    if (kid and feats) else None)
        self.extra = tuple(extra)
        self.names = (BASE_NAMES + (("lpips",) if self.lpips is not None else ())
                      + (("lpips_vgg",) if self.lpips_vgg is not None else ()) + self.extra)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate per-image metric names: {self.names}")
        self.means = MetricCollection({n: MeanMetric(nan_strategy="ignore") for n in self.names},
                                      compute_groups=False)  # NaN: not applicable (e.g. sigma 0)

    # --- per batch (local) ---------------------------------------------------
    @torch.no_grad()
    def per_image(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """PSNR (dB), SSIM and LPIPS of every image of the batch, each a ``(B,)`` tensor."""
        if pred.shape != target.shape or pred.dim() != 4:
            raise ValueError(f"metrics need pred and target of equal shape (B, C, H, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        pred, target = pred.float(), target.float()
        out = {"psnr": peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
               "ssim": structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none",
                                                           **ssim_window(pred.shape[-2:]))}
        if self.lpips is not None:
            out["lpips"] = self.lpips(pred, target)
        if self.lpips_vgg is not None:
            out["lpips_vgg"] = self.lpips_vgg(pred, target)
        return out

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor, index: Tensor,
               extra: Optional[Mapping[str, Tensor]] = None) -> dict[str, Tensor]:
        """Update the data-set states with one batch; returns its per-image values."""
        values = self.per_image(pred, target)
        extra = dict(extra or {})
        if set(extra) != set(self.extra):
            raise ValueError(f"ImageMetrics was declared with extra values {sorted(self.extra)}, "
                             f"but update got {sorted(extra)}")
        for name, v in extra.items():
            values[name] = torch.as_tensor(v, dtype=torch.float32, device=pred.device).reshape(-1)
        for name in self.names:
            self.means[name].update(values[name])
        index = torch.as_tensor(index, device=pred.device)
        for real, imgs in ((True, target), (False, pred)):
            if self.fid is not None:
                self.fid.update(imgs.float(), real=real)
            if self.kid is not None:
                self.kid.update(imgs.float(), real=real, index=index)
        return values

    # --- data set (collective) ----------------------------------------------------
    def compute(self) -> dict[str, float]:
        """Data-set values; a collective under DDP (every rank must call it)."""
        with warnings.catch_warnings():  # a rank without items is expected under DDP
            warnings.filterwarnings("ignore", message=".*was called before the ``update``")
            return self._compute()

    def _compute(self) -> dict[str, float]:
        out = {n: float(v) for n, v in self.means.compute().items()}
        if self.fid is not None:
            out["fid"] = _or_nan(self.fid.compute)
        if self.kid is not None:
            kid = _or_nan(self.kid.compute)
            out.update({k: float(v) for k, v in kid.items()} if isinstance(kid, dict)
                       else {"kid_mean": kid, "kid_std": kid})
        return out

    def reset(self) -> None:
        for m in (self.means, self.fid, self.kid):
            if m is not None:
                m.reset()


def _or_nan(compute):
    """FID / KID need >= 2 samples; fewer gives NaN (the same on every rank)."""
    try:
        value = compute()
    except RuntimeError as err:
        if "sample" not in str(err):
            raise
        return math.nan
    return value if isinstance(value, dict) else float(value)
