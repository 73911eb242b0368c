"""Training a denoiser on a noise path (``lit-ip fit``), with EMA and prior export.

:class:`DiffusionTraining` minimises, in the network's native units ``x0 = lo + (hi - lo) img``,

    E_{t, x0, eps} || net(a_t x0 + b_t eps, t * time_scale) - target ||^2,

with ``target`` = eps (DDPM, Ho et al. 2020), x0, v (Salimans & Ho 2022) or the velocity
``a'_t x0 + b'_t eps`` (rectified flow / flow matching, Liu et al. 2023; Lipman et al. 2023),
from :func:`lit_ip.priors.parameterization.target_from`. Time is uniform over the path's
training range (integer steps for :class:`~lit_ip.priors.paths.VPPath`).

The optimizer and learning-rate schedule come from the config: ``optimizer`` and
``lr_scheduler`` init arguments are callables (LightningCLI's ``OptimizerCallable`` /
``LRSchedulerCallable``, given in YAML by ``class_path`` / ``init_args``, e.g.
``optimizer: {class_path: torch.optim.SGD, init_args: {lr: 0.01}}``). Unset, the optimizer is
AdamW(``lr``, ``betas``, ``weight_decay``) and the schedule a linear warm-up, then constant or
cosine decay to ``min_lr_ratio`` times the base rate at ``trainer.max_steps`` (applied to either
optimizer unless ``lr_scheduler`` is given). Gradient clipping is the
Trainer's ``gradient_clip_val``. An exponential moving average of the weights
(``ema_decay``, with the usual warm-up ``min(decay, (1 + n) / (10 + n))``) is kept in the
checkpoint, used for validation, and is what :class:`ExportPrior` writes.
"""
from __future__ import annotations

import copy
import csv
import math
import shutil
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch
from lightning import Callback, LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from ..models.checkpoints import load_strict
from ..operators.base import Operator
from ..priors import parameterization as P
from ..priors.network import NetworkPrior
from ..priors.paths import NoisePath, VPPath
from ..priors.pretrained import load_network, save_prior_dir


class DiffusionTraining(LightningModule):
    """Denoiser training.

    Args:
        network: ``(x_native, t_in) -> prediction`` (e.g. :class:`lit_ip.models.unet.DiffusersUNet`);
            None takes the architecture (and weights) from ``init_from``.
        path: noise path in native units (``VPPath()`` for DDPM, ``RectifiedFlowPath()`` for flows).
        prediction: ``eps``, ``x0``, ``v`` or ``velocity``.
        data_range: native data range the [0, 1] images are mapped to.
        time_scale: network time = path time * time_scale (e.g. 999 for flows).
        image_shape: (C, H, W) recorded in the exported prior; default: from the first batch.
        optimizer: ``params -> torch.optim.Optimizer`` (a ``class_path`` spec in YAML); None:
            AdamW with ``lr`` (default 2e-4), ``betas`` (default (0.9, 0.999)) and
            ``weight_decay`` (default 0), which must then be left unset.
        lr_scheduler: ``optimizer -> scheduler``, stepped every training step; None: the
            built-in schedule of ``warmup_steps``, ``lr_schedule`` ("constant" | "cosine") and
            ``min_lr_ratio``.
        ema_decay: EMA decay (0 disables averaging: the EMA copy tracks the weights).
        init_from: prior directory, shipped prior name or diffusers UNet directory to start from
            (fine-tuning); loaded strictly.
        freeze: parameter-name prefixes (e.g. ``"unet.down_blocks"``) kept fixed.
        val_levels: number of fixed noise levels at which held-out loss is measured.
        clip_x0: recorded in the exported prior as its default for clamping ``x0_hat`` to [0, 1]
            (also used for the sample grids); training itself never clamps.
    """

    def __init__(self, network: Optional[nn.Module] = None, path: Optional[NoisePath] = None,
                 prediction: str = "eps", data_range: Sequence[float] = (-1.0, 1.0),
                 time_scale: float = 1.0, image_shape: Optional[Sequence[int]] = None,
                 lr: Optional[float] = None, weight_decay: Optional[float] = None,
                 betas: Optional[Sequence[float]] = None,
                 warmup_steps: int = 100, lr_schedule: str = "cosine", min_lr_ratio: float = 0.1,
                 ema_decay: float = 0.999, init_from: Optional[str] = None,
                 freeze: Sequence[str] = (), val_levels: int = 8, clip_x0: bool = True,
                 optimizer: Optional[OptimizerCallable] = None,
                 lr_scheduler: Optional[LRSchedulerCallable] = None):
        super().__init__()
        if prediction not in P.PREDICTIONS:
            raise ValueError(f"unknown prediction type {prediction!r}; known: {P.PREDICTIONS}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        if optimizer is not None and (lr, weight_decay, betas) != (None, None, None):
            raise ValueError("lr / weight_decay / betas configure the default AdamW; with an optimizer "
                             "given, set them in its init_args instead")
        if network is None and init_from is None:
            raise ValueError("give a network, or init_from (a prior / diffusers directory) to take it from")
        if network is None:
            network = load_network(init_from)
        elif init_from is not None:
            src = load_network(init_from)
            load_strict(network.unet if hasattr(network, "unet") else network,
                        src.unet.state_dict(), str(init_from))
        self.network = network
        self.path = path if path is not None else VPPath()
        self.prediction, self.time_scale = prediction, float(time_scale)
        self.data_range = tuple(float(v) for v in data_range)
        self.image_shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        self.lr = 2e-4 if lr is None else float(lr)
        self.weight_decay = 0.0 if weight_decay is None else float(weight_decay)
        self.betas = (0.9, 0.999) if betas is None else tuple(betas)
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.warmup_steps, self.lr_schedule, self.min_lr_ratio = int(warmup_steps), lr_schedule, float(min_lr_ratio)
        self.ema_decay, self.val_levels = float(ema_decay), int(val_levels)
        self.clip_x0 = bool(clip_x0)
        self.init_from = init_from
        self._freeze(freeze)
        self.ema_network = copy.deepcopy(network).requires_grad_(False).eval()
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def _freeze(self, prefixes: Sequence[str]) -> None:
        names = [n for n, _ in self.network.named_parameters()]
        for pre in prefixes:
            hit = [n for n in names if n.startswith(pre)]
            if not hit:
                raise ValueError(f"freeze prefix {pre!r} matches no parameter; names start like {names[:3]}")
            for n, p in self.network.named_parameters():
                if n.startswith(pre):
                    p.requires_grad_(False)

    # --- the loss ------------------------------------------------------------
    def sample_times(self, n: int, generator=None) -> Tensor:
        """Training times: uniform integer steps on a VP path, uniform on [t_min, t_max] otherwise."""
        if isinstance(self.path, VPPath):
            return torch.randint(0, self.path.num_train_steps, (n,), generator=generator).double()
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return self.path.t_min + (self.path.t_max - self.path.t_min) * u

    def loss(self, net: nn.Module, images: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """Per-sample mean squared error of ``net`` against its regression target (native units)."""
        lo, hi = self.data_range
        x0 = lo + (hi - lo) * images
        shape = (-1,) + (1,) * (images.dim() - 1)
        a, b = (c.to(images).view(shape) for c in self.path.coefficients(t))
        da = db = None
        if self.prediction == "velocity":
            da, db = (c.to(images).view(shape) for c in self.path.derivatives(t))
        target = P.target_from(self.prediction, x0, eps, a, b, da, db)
        out = net(a * x0 + b * eps, (t * self.time_scale).to(images))
        return (out - target).pow(2).flatten(1).mean(1)

    def batch_loss(self, images: Tensor) -> Tensor:
        """The training loss of one batch (fresh times and noise)."""
        t = self.sample_times(images.shape[0]).to(images.device)
        return self.loss(self.network, images, t, self.noise_like(images)).mean()

    def training_step(self, batch, batch_idx):
        images = batch["image"]
        if self.image_shape is None:
            self.image_shape = tuple(images.shape[1:])
        loss = self.batch_loss(images)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        """Held-out loss of the EMA network at ``val_levels`` fixed times with fixed noise."""
        images = batch["image"]
        g = torch.Generator().manual_seed(1000 + batch_idx)
        lo, hi = self.path.t_min, self.path.t_max
        levels = torch.linspace(lo, hi, self.val_levels + 2, dtype=torch.float64)[1:-1]
        if isinstance(self.path, VPPath):
            levels = levels.round()
        losses = []
        for t in levels:
            eps = self.noise_like(images, g)
            tt = t.repeat(images.shape[0]).to(images.device)
            losses.append(self.loss(self.ema_network, images, tt, eps))
        self.log("val_loss", torch.stack(losses).mean(), prog_bar=True, on_epoch=True,
                 batch_size=images.shape[0])

    def noise_like(self, images: Tensor, generator=None) -> Tensor:
        """The path's noise ``eps`` for a batch (native units): standard Gaussian; a subclass may draw
        from another source (lit_ip.lightning.subspace_flow)."""
        return torch.randn(images.shape, generator=generator).to(images)

    # --- EMA -----------------------------------------------------------------
    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx):
        n = int(self.ema_updates)
        d = min(self.ema_decay, (1 + n) / (10 + n))
        for pe, p in zip(self.ema_network.parameters(), self.network.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(self.ema_network.buffers(), self.network.buffers()):
            be.copy_(b)
        self.ema_updates += 1

    # --- optimisation -----------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.network.parameters() if p.requires_grad]
        if not params:
            raise ValueError("every parameter is frozen; nothing to train")
        if self.optimizer_factory is not None:
            opt = self.optimizer_factory(params)
        else:
            opt = torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        if self.scheduler_factory is not None:
            return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "step"}}
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps > 0 else 0

        def factor(step: int) -> float:
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            if self.lr_schedule == "constant" or total <= self.warmup_steps:
                return 1.0
            u = min(1.0, (step - self.warmup_steps) / (total - self.warmup_steps))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * u))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- checkpoint extras and export --------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["image_shape"] = self.image_shape

    def on_load_checkpoint(self, checkpoint):
        self.image_shape = checkpoint.get("image_shape", self.image_shape)

    def prior(self, ema: bool = True) -> NetworkPrior:
        """The current (EMA) network as a prior in [0, 1] units."""
        if self.image_shape is None:
            raise ValueError("image_shape is unknown before the first training batch; pass image_shape")
        return NetworkPrior(self.ema_network if ema else self.network, self.path, self.prediction,
                            self.image_shape, self.data_range, self.time_scale, clip_x0=self.clip_x0)

    def exportable_unet(self):
        """The EMA network's diffusers UNet, once the image shape is known (else a clear error)."""
        unet = getattr(self.ema_network, "unet", None)
        if unet is None or not hasattr(unet, "config"):
            raise TypeError(f"export needs a diffusers UNet network (DiffusersUNet); got "
                            f"{type(self.ema_network).__name__}")
        if self.image_shape is None:
            raise ValueError("image_shape is unknown (no batch seen); pass image_shape")
        return unet

    def export_prior(self, directory, extra: Optional[dict] = None) -> Path:
        """Write the EMA network as a prior directory (our format)."""
        unet = self.exportable_unet()
        return save_prior_dir(directory, unet, self.path, self.prediction, self.data_range,
                              self.image_shape, self.time_scale, self.clip_x0, extra)


class _Unobserved(Operator):
    """The operator that measures nothing (for unconditional sampling through a Method)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], 1)


@torch.no_grad()
def sample_prior(prior, n: int, num_steps: int = 50, seed: int = 0, eta: Optional[float] = None,
                 batch_size: int = 64) -> Tensor:
    """``n`` unconditional samples in [0, 1] (unclipped). eta defaults to 1 (DDPM ancestral)
    on VP paths and 0 (Euler) otherwise."""
    from ..methods.base import Unconditional
    from ..rng import SampleRNG

    if eta is None:
        eta = 1.0 if prior.path.kind == "vp" else 0.0
    method, op, out = Unconditional(num_steps=num_steps, eta=eta), _Unobserved(), []
    for s in range(0, n, batch_size):
        idx = list(range(s, min(n, s + batch_size)))
        rng = SampleRNG.for_indices(idx, seed=seed, stream=0)
        out.append(method.sample(prior, op, torch.zeros(len(idx), 1, device=prior.device), rng))
    return torch.cat(out)


def save_grid(images: Tensor, file, ncol: int = 8) -> None:
    """Save images (N, C, H, W) in [0, 1] as one PNG grid."""
    from PIL import Image

    x = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = x.shape
    rows = math.ceil(n / ncol)
    grid = torch.ones(c, rows * (h + 2) + 2, ncol * (w + 2) + 2)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, 2 + r * (h + 2):2 + r * (h + 2) + h, 2 + q * (w + 2):2 + q * (w + 2) + w] = x[i]
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Path(file).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if c == 1 else arr).save(file)


class ExportPrior(Callback):
    """Records the training curve, saves sample grids, and exports the EMA prior at the end of fit.

    Writes into ``dirpath``: the prior directory files, ``training_curve.csv`` / ``.png``
    (mean train loss per ``log_every_n_steps`` and held-out loss), ``samples.png``, the
    fit config (``fit_config.yaml``, when LightningCLI saved one), and, every
    ``sample_every_n_steps`` (0: never), ``samples/step_XXXXXX.png``.
    """

    def __init__(self, dirpath: str, log_every_n_steps: int = 50, sample_every_n_steps: int = 0,
                 num_samples: int = 16, sample_steps: int = 50, seed: int = 0):
        self.dirpath = Path(dirpath)
        self.log_every, self.sample_every = int(log_every_n_steps), int(sample_every_n_steps)
        self.num_samples, self.sample_steps, self.seed = int(num_samples), int(sample_steps), int(seed)
        self.history: list[dict] = []
        self._acc, self._count = 0.0, 0

    def state_dict(self):
        return {"history": self.history}

    def load_state_dict(self, state):
        self.history = list(state.get("history", []))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._acc += float(loss)
        self._count += 1
        step = trainer.global_step
        if step % self.log_every == 0:
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            self.history.append({"step": step, "train_loss": self._acc / self._count, "lr": lr})
            self._acc, self._count = 0.0, 0
        if self.sample_every and step % self.sample_every == 0 and trainer.is_global_zero:
            self._samples(pl_module, self.dirpath / "samples" / f"step_{step:06d}.png")

    def on_validation_end(self, trainer, pl_module):
        if "val_loss" in trainer.callback_metrics and not trainer.sanity_checking:
            self.history.append({"step": trainer.global_step,
                                 "val_loss": float(trainer.callback_metrics["val_loss"])})

    def _samples(self, pl_module, file):
        was = pl_module.training
        pl_module.eval()
        try:
            x = sample_prior(pl_module.prior(), self.num_samples, self.sample_steps, self.seed)
        finally:
            pl_module.train(was)
        save_grid(x, file)
        return x

    def on_train_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        extra = {"training": {"global_step": trainer.global_step, "ema_decay": pl_module.ema_decay,
                              "init_from": pl_module.init_from}}
        pl_module.export_prior(self.dirpath, extra)
        self.write_curve()
        cfg = Path(trainer.log_dir or "") / "config.yaml"
        if cfg.is_file():
            shutil.copy(cfg, self.dirpath / "fit_config.yaml")
        self._samples(pl_module, self.dirpath / "samples.png")

    def write_curve(self) -> None:
        keys = ["step", "train_loss", "val_loss", "lr"]
        with open(self.dirpath / "training_curve.csv", "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            for row in self.history:
                w.writerow({k: row.get(k, "") for k in keys})
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover
            warnings.warn("matplotlib missing: training_curve.png not written")
            return
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for k in ("train_loss", "val_loss"):
            pts = [(r["step"], r[k]) for r in self.history if k in r]
            if pts:
                ax.plot(*zip(*pts), label=k, marker="o" if k == "val_loss" else None, ms=3)
        ax.set_xlabel("step"), ax.set_ylabel("MSE (native units)"), ax.set_yscale("log")
        ax.legend(), fig.tight_layout()
        fig.savefig(self.dirpath / "training_curve.png", dpi=100)
        plt.close(fig)
