"""Posterior sampling as a LightningModule (``lit-ip predict``).

One run combines one prior, several *tasks* (an operator and a noise model) and
several *methods*; every method solves every task it accepts. In YAML::

    model:
      class_path: lit_ip.lightning.sampling_module.PosteriorSamplingModule
      init_args:
        prior: {class_path: lit_ip.priors.synthetic.RandomGaussianPrior, init_args: {image_shape: [1, 8, 8]}}
        tasks:
          denoise:
            operator: {class_path: lit_ip.operators.identity.Identity}
            noise: {class_path: lit_ip.operators.noise.GaussianNoise, init_args: {sigma: 0.1}}
        methods:
          ddpm: {class_path: lit_ip.methods.base.Unconditional, init_args: {num_steps: 50}}
        num_samples: 1
        seed: 0

Randomness is per sample (``SampleRNG.for_indices``, :mod:`lit_ip.rng`): operator randomness
from ``operator.bind(indices, seed)`` (stream ``operator``), measurement noise from stream
``measurement``, the sampler from stream ``sampler`` (and ``.repeat(n)`` for ``n`` posterior
samples, whose first is the sample of ``num_samples: 1``), so outputs do not depend on batch
size, batch order or the number of processes. The prior counts its evaluations during each
method's call; the counts per posterior sample go to the outputs (``nfe``, ``nfe_backward``).
"""
from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

import torch
from lightning import LightningModule
from torch import Tensor, nn

from ..methods.base import Method
from ..metrics.baselines import trivial_estimate
from ..operators.base import Operator
from ..operators.noise import GaussianNoise, NoiseModel
from ..priors.base import Prior
from ..rng import SampleRNG

#: output-folder names a task or method may not take (the writer's folders and files)
RESERVED = {"ground_truth", "measurement", "pinv", "metrics", "figures", "skipped", "metrics.csv",
            "metrics.md", "summary.json", "config.yaml", "run_config.json"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_NAME = 100  # a folder name and, for tasks, figures/TASK.png: well under file-system limits


class Task:
    """One measurement model: ``y = noise(operator(x))``.

    Args:
        operator: the forward operator (or a family bound per sample).
        noise: the noise model; default noiseless.
    """

    def __init__(self, operator: Operator, noise: Optional[NoiseModel] = None):
        if not isinstance(operator, Operator):
            raise TypeError(f"Task operator must be a lit_ip Operator, got {type(operator).__name__}")
        self.operator = operator
        self.noise = GaussianNoise(0.0) if noise is None else noise

    def __repr__(self) -> str:
        return f"Task({self.operator.describe()}, {self.noise!r})"


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(str(name)) or name in RESERVED or len(str(name)) > _MAX_NAME:
        raise ValueError(f"{kind} name {name!r} is not allowed: use up to {_MAX_NAME} letters, digits, "
                         f"'_', '-', '.' (not starting with a symbol) and none of {sorted(RESERVED)}")
    return str(name)


def measurement_pseudo_inverse(op: Operator, y: Tensor) -> Optional[Tensor]:
    """``op.pinv(y)`` for linear operators, ``op.h_dagger(y)`` when defined, else None."""
    if op.linear:
        return op.pinv(y)
    if op.has_h_dagger:
        return op.h_dagger(y)
    return None


class PosteriorSamplingModule(LightningModule):
    """Draw posterior samples for every (task, method) pair.

    Args:
        prior: the image prior (any :class:`~lit_ip.priors.base.Prior`).
        tasks: name -> :class:`Task` (operator and noise).
        methods: name -> :class:`~lit_ip.methods.base.Method`.
        num_samples: posterior samples per measurement.
        seed: run seed for measurement noise, operator randomness and samplers.
        skip_incompatible: drop (task, method) pairs whose operator lacks a property the
            method needs, instead of refusing the whole configuration.
    """

    def __init__(self, prior: Prior, tasks: dict[str, Task], methods: dict[str, Method],
                 num_samples: int = 1, seed: int = 0, skip_incompatible: bool = False):
        super().__init__()
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a lit_ip Prior, got {type(prior).__name__}")
        if not tasks:
            raise ValueError("give at least one task (name -> {operator, noise})")
        if not methods:
            raise ValueError("give at least one method (name -> class_path spec)")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.prior = prior
        self.tasks = {_check_name("task", k): v for k, v in tasks.items()}
        self.methods = {_check_name("method", k): v for k, v in methods.items()}
        self.operators = nn.ModuleDict({k: t.operator for k, t in self.tasks.items()})
        self.noises = nn.ModuleDict({k: t.noise for k, t in self.tasks.items()})
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.pairs = self._validate(bool(skip_incompatible))
        self._skip: Optional[Callable[[str], bool]] = None
        self._skip_pair: Optional[Callable[[str, str, str], bool]] = None
        self._listeners: list[Callable[[dict], None]] = []

    # --- construction-time checks -------------------------------------------
    def _validate(self, skip_incompatible: bool) -> dict[str, list[str]]:
        shape = self.prior.image_shape
        pairs, refused = {}, []
        for tname, task in self.tasks.items():
            op = task.operator
            if op.in_shape is not None and tuple(op.in_shape) != tuple(shape):
                raise ValueError(f"task {tname!r}: operator {type(op).__name__} takes images of shape "
                                 f"{tuple(op.in_shape)}, but the prior {type(self.prior).__name__} makes "
                                 f"images of shape {tuple(shape)}")
            try:
                op.bind([0], self.seed).output_shape(shape)
            except Exception as e:
                raise ValueError(f"task {tname!r}: operator {type(op).__name__} cannot be applied to "
                                 f"images of shape {tuple(shape)}: {e}") from e
            pairs[tname] = []
            for mname, method in self.methods.items():
                if not isinstance(method, Method):
                    raise TypeError(f"method {mname!r} must be a lit_ip Method, got {type(method).__name__}")
                try:
                    method.check_operator(op)
                    pairs[tname].append(mname)
                except ValueError as e:
                    refused.append(f"method {mname!r} on task {tname!r}: {e}")
        if refused and not skip_incompatible:
            raise ValueError("incompatible (task, method) pairs (set skip_incompatible: true to drop "
                             "them):\n  " + "\n  ".join(refused))
        return pairs

    # --- skipping (set by the prediction writer) ----------------------------
    def set_skip(self, fn: Optional[Callable[[str, int], bool]]) -> None:
        """``fn(key, index) -> True`` marks samples whose outputs already exist (not sampled again)."""
        self._skip = fn

    def set_pair_skip(self, fn: Optional[Callable[[str, str, str], bool]]) -> None:
        """``fn(key, task, method) -> True`` marks (sample, task, method) results already written
        (by an interrupted run): that method is not run again on that sample."""
        self._skip_pair = fn

    # --- listeners (the prediction writer, the progress bar) ------------------
    def add_listener(self, fn: Callable[[dict], None]) -> None:
        """``fn(event)`` is called before each method runs on a batch (``event="start"``) and with
        its result as soon as it is done (``"done"``; ``"skipped"`` for finished work); see
        :meth:`_solve` for the fields."""
        if fn not in self._listeners:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[dict], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _emit(self, **event) -> None:
        for fn in list(self._listeners):
            fn(event)

    # --- the work -----------------------------------------------------------
    def predict_step(self, batch: dict, batch_idx: int = 0, dataloader_idx: int = 0) -> dict:
        # Lightning runs predict under inference mode; gradient-based methods (DPS, PiGDM)
        # need autograd, so leave it and copy the inputs out of inference mode.
        with torch.inference_mode(False):
            return self.reconstruct(batch)

    def reconstruct(self, batch: dict) -> dict:
        """Run every (task, method) pair on a batch; see :meth:`predict_step`.

        ``batch`` holds ``key`` (list of str), ``index`` (ints) and either ``image``
        (ground truth, measurements are simulated) or ``y`` (given measurements: a tensor
        if there is one task, else a dict task -> tensor).

        Returns ``{"key", "index", "image" (or None), "tasks": {task: {"y", "pinv" (or
        None), "recon": {method: (B, num_samples, C, H, W)}, "nfe": {method: {"nfe", "nfe_backward"}}}}}``.
        """
        keys = [str(k) for k in batch["key"]]
        indices = [int(i) for i in batch["index"]]
        rows = [j for j, k in enumerate(keys) if self._skip is None or not self._skip(k, indices[j])]
        if len(rows) < len(keys):  # finished keys: all their (task, method) work counts as done
            self._emit(event="skipped", task=None, method=None,
                       count=(len(keys) - len(rows)) * sum(len(m) for m in self.pairs.values()))
        keys, indices = [keys[j] for j in rows], [indices[j] for j in rows]
        out = {"key": keys, "index": indices, "image": None, "tasks": {}}
        if not rows:
            return out
        sel = torch.as_tensor(rows, device=self.device)
        image = batch.get("image")
        if image is not None:
            image = image.index_select(0, sel.to(image.device)).detach().clone().to(self.device, torch.float32)
            self.prior.check_images(image, f"data items {keys[:3]}{'...' if len(keys) > 3 else ''}")
            out["image"] = image
        given = self._given_measurements(batch.get("y"), sel)
        if image is None and given is None:
            raise ValueError("a batch needs ground-truth 'image' or given measurements 'y'")
        for tname, task in self.tasks.items():
            if given is not None and tname not in given:
                continue
            out["tasks"][tname] = self._solve(tname, task, indices, keys, image,
                                              None if given is None else given[tname])
        return out

    def _given_measurements(self, y, sel: Tensor) -> Optional[dict]:
        if y is None:
            return None
        if isinstance(y, Tensor):
            if len(self.tasks) != 1:
                raise ValueError(f"given measurements 'y' as one tensor are ambiguous with "
                                 f"{len(self.tasks)} tasks: give a dict task name -> tensor")
            y = {next(iter(self.tasks)): y}
        unknown = sorted(set(y) - set(self.tasks))
        if unknown:
            raise ValueError(f"given measurements for unknown tasks {unknown}; tasks are {sorted(self.tasks)}")
        return {k: v.index_select(0, sel.to(v.device)).detach().clone().to(self.device, torch.float32)
                for k, v in y.items()}

    def _solve(self, tname: str, task: Task, indices: list[int], keys: list[str],
               image: Optional[Tensor], y: Optional[Tensor]) -> dict:
        """One task on a batch: the measurement, its baselines, then every method.

        A method skips the samples whose result is already written (``set_pair_skip``); its
        ``recon`` then has only the rows listed in ``rows[method]``. After each method the
        listeners get ``{"event": "done", "task", "method", "count", "rows", "keys", "indices",
        "image", "y", "pinv", "trivial", "samples" (rows, num_samples, C, H, W), "nfe"}``.
        """
        op = self._bind(task.operator, indices)
        if y is None:
            with torch.no_grad():
                y = task.noise.sample(op(image), self._rng(indices, "measurement"))
        with torch.no_grad():
            try:
                pinv = measurement_pseudo_inverse(op, y)
                trivial = trivial_estimate(op, y, self.prior.image_shape)
            except ValueError as e:
                raise ValueError(f"task {tname!r}, keys {keys[:3]}: measurement y of shape {tuple(y.shape[1:])} "
                                 f"does not fit the operator: {e}") from e
        n = self.num_samples
        recon, nfe, done_rows = {}, {}, {}
        for mname in self.pairs[tname]:
            method = self.methods[mname]
            need = [j for j, k in enumerate(keys)
                    if self._skip_pair is None or not self._skip_pair(k, tname, mname)]
            if len(need) < len(keys):
                self._emit(event="skipped", task=tname, method=mname, count=len(keys) - len(need))
            if not need:
                continue
            sub = [indices[j] for j in need]
            sel = torch.as_tensor(need, device=y.device)
            y_sub = y.index_select(0, sel)
            op_n = self._bind(task.operator, [i for i in sub for _ in range(n)])
            y_n = y_sub if n == 1 else y_sub.repeat_interleave(n, 0)
            try:
                method.check_inputs(self.prior, op_n, y_n, task.noise)
            except ValueError as e:
                raise ValueError(f"task {tname!r}, method {mname!r}, keys {keys[:3]}: {e}") from e
            self._show_progress(f"{tname}/{mname}")
            self._emit(event="start", task=tname, method=mname, count=len(need))
            rng = self._rng(sub, "sampler")  # fresh per method: same start noise for all
            self.prior.evaluations.reset()
            x = method.sample(self.prior, op_n, y_n, rng if n == 1 else rng.repeat(n), task.noise)
            nfe[mname] = self.prior.evaluations.per_sample(len(sub) * n)
            recon[mname] = x.detach().reshape(len(sub), n, *self.prior.image_shape)
            done_rows[mname] = need
            pick = lambda v: None if v is None else v.index_select(0, sel.to(v.device))  # noqa: E731
            self._emit(event="done", task=tname, method=mname, count=len(need), rows=need,
                       keys=[keys[j] for j in need], indices=sub, image=pick(image), y=y_sub,
                       pinv=pick(pinv), trivial=pick(trivial), samples=recon[mname], nfe=nfe[mname])
        return {"y": y.detach(), "pinv": None if pinv is None else pinv.detach(),
                "trivial": None if trivial is None else trivial.detach(),
                "recon": recon, "nfe": nfe, "rows": done_rows}

    def _show_progress(self, text: str) -> None:
        """Show the running (task, method) next to Lightning's tqdm predict bar, if there is one."""
        trainer = self._trainer
        bar = getattr(getattr(trainer, "progress_bar_callback", None), "_predict_progress_bar", None)
        if bar is not None and hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(text, refresh=True)

    def _bind(self, family: Operator, indices: Sequence[int]) -> Operator:
        op = family.bind(list(indices), self.seed)
        return op if op is family else op.to(self.device)

    def _rng(self, indices: Sequence[int], stream: str) -> SampleRNG:
        return SampleRNG.for_indices(indices, self.seed, stream, device=self.device)

    # predict-only module: nothing to optimise
    def configure_optimizers(self):
        return None

    def describe(self) -> str:
        lines = [f"prior: {type(self.prior).__name__} {self.prior.image_shape}",
                 f"num_samples: {self.num_samples}, seed: {self.seed}"]
        for tname, task in self.tasks.items():
            lines.append(f"task {tname}: {task!r} -> methods {self.pairs[tname]}")
        lines += [f"method {mname}: {method!r}" for mname, method in self.methods.items()]
        return "\n".join(lines)
