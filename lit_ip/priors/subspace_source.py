"""A restricted Gaussian source for flow matching on small data sets: a Gaussian on the k-dimensional
principal subspace of the training images ("Small-Data Flow Matching", Luo et al. 2025, shown in
Sun's talk "Diffusion models for inverse problems done right"; the talk gives no formula, so the
choices below are ours).

With the training images ``x_i`` (native units, flattened) and their mean ``mu``, the top-``k``
principal directions ``U_k`` (orthonormal columns), the source is

    x1 = mu + U_k z,        z ~ N(0, I_k),

and the flow ``x_t = (1 - t) x0 + t x1`` is trained with the velocity target ``x1 - x0`` as usual
(:class:`lit_ip.lightning.subspace_flow.SubspaceFlowTraining`). ``k`` is given, or the smallest
``k`` whose directions explain a fraction ``explained_variance`` of the training variance.
``x0_hat = x_t - t v`` is still ``E[x0 | x_t]``, so the prior is an ordinary denoiser on its own
path; only its noise is not ``N(0, I)``: samplers start from :meth:`SubspaceFlowPrior.init_noise`.
Methods whose formulas assume isotropic Gaussian noise (the score ``-eps / b``, DPS, PiGDM, ...)
do not hold for this path; unconditional sampling (Euler / DDIM eta = 0) does.

A prior directory of such a model is the usual one plus ``source.safetensors`` (``mean``, ``basis``)
and a ``source`` entry in ``prior.json``; :class:`SubspaceFlowPrior` loads it strictly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .base import Prior
from .pretrained import PretrainedPrior, resolve_prior_dir

SOURCE_FILE = "source.safetensors"


class SubspaceGaussianSource(nn.Module):
    """``x1 = mean + basis z``, ``z ~ N(0, I_k)`` (native units; ``mean`` (D,), ``basis`` (D, k))."""

    def __init__(self, mean: Tensor, basis: Tensor, image_shape: Sequence[int]):
        super().__init__()
        mean, basis = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(basis, dtype=torch.float32)
        D = int(torch.tensor(image_shape).prod())
        if mean.shape != (D,) or basis.dim() != 2 or basis.shape[0] != D:
            raise ValueError(f"mean must be ({D},) and basis ({D}, k) for images {tuple(image_shape)}; got "
                             f"{tuple(mean.shape)} and {tuple(basis.shape)}")
        self.register_buffer("mean", mean)
        self.register_buffer("basis", basis)
        self.image_shape = tuple(int(s) for s in image_shape)

    @property
    def k(self) -> int:
        return int(self.basis.shape[1])

    @classmethod
    def fit(cls, images: Tensor, k: Optional[int] = None, explained_variance: Optional[float] = None
            ) -> "SubspaceGaussianSource":
        """Principal subspace of ``images`` (N, C, H, W) in native units: ``k`` directions, or the fewest
        explaining ``explained_variance`` of the variance (exactly one of the two)."""
        if (k is None) == (explained_variance is None):
            raise ValueError("give exactly one of k and explained_variance")
        x = images.flatten(1).double()
        n = x.shape[0]
        if n < 2:
            raise ValueError("the principal subspace needs at least two training images")
        mu = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mu, full_matrices=False)
        var = s ** 2
        rank = int((var > 1e-10 * var[0]).sum())
        if k is None:
            if not 0 < explained_variance <= 1:
                raise ValueError(f"explained_variance must be in (0, 1], got {explained_variance}")
            frac = torch.cumsum(var, 0) / var.sum()
            k = int((frac < explained_variance - 1e-12).sum()) + 1
        if not 1 <= int(k) <= rank:
            raise ValueError(f"k = {k} is not in [1, {rank}] (the rank of {n} centred training images)")
        return cls(mu, vh[:int(k)].T, images.shape[1:])

    def explained(self, images: Tensor) -> float:
        """Fraction of the variance of ``images`` (native units) inside the subspace."""
        x = images.flatten(1).double() - self.mean.double()
        inside = (x @ self.basis.double()).pow(2).sum()
        return float(inside / x.pow(2).sum())

    def sample_z(self, z: Tensor) -> Tensor:
        """``mean + basis z`` for coefficients ``z`` (B, k), as images."""
        return (self.mean.to(z) + z @ self.basis.to(z).T).view(z.shape[0], *self.image_shape)

    def sample(self, n: int, generator=None, like: Optional[Tensor] = None) -> Tensor:
        z = torch.randn(n, self.k, generator=generator)
        x = self.sample_z(z)
        return x.to(like) if like is not None else x

    def save(self, directory) -> None:
        from safetensors.torch import save_file

        save_file({"mean": self.mean.contiguous().cpu(), "basis": self.basis.contiguous().cpu()},
                  str(Path(directory) / SOURCE_FILE))

    @classmethod
    def load(cls, directory, image_shape: Sequence[int]) -> "SubspaceGaussianSource":
        from safetensors.torch import load_file

        f = Path(directory) / SOURCE_FILE
        if not f.is_file():
            raise FileNotFoundError(f"{directory} has no {SOURCE_FILE} (the restricted source of the prior)")
        state = load_file(str(f))
        if set(state) != {"mean", "basis"}:
            raise ValueError(f"{f} must hold exactly 'mean' and 'basis', has {sorted(state)}")
        return cls(state["mean"], state["basis"], image_shape)

    def config(self) -> dict:
        return {"kind": "subspace_gaussian", "k": self.k, "file": SOURCE_FILE}


def init_noise_from(prior, source: SubspaceGaussianSource, batch_size: int, rng, t_start=None) -> Tensor:
    """``a_T data_mean + b_T x1`` with ``x1`` from the restricted source (``b`` in the prior's units)."""
    t = prior.path.t_max if t_start is None else t_start
    a, b = prior.path.coefficients(torch.as_tensor(t))
    z = rng.randn((batch_size, source.k))
    x1 = source.sample_z(z)
    return a.to(x1) * prior.data_mean + b.to(x1) * x1


class SubspaceFlowPrior(PretrainedPrior):
    """A flow prior trained from a restricted source, from its prior directory (strict).

    Args:
        path_or_name: directory or shipped name.
        clip_x0: as :class:`PretrainedPrior`.
    """

    accepts_source = True

    def __init__(self, path_or_name: str, clip_x0: Optional[bool] = None):
        super().__init__(path_or_name, clip_x0=clip_x0)
        self.source_model = SubspaceGaussianSource.load(resolve_prior_dir(path_or_name), self.image_shape)

    def init_noise(self, batch_size: int, rng, t_start=None) -> Tensor:
        return init_noise_from(self, self.source_model, batch_size, rng, t_start)


class SubspaceSourceGaussian(Prior):
    """Analytic check of restricted-source flows: data ``N(mean, cov)`` (dense, [0, 1] units) on the path
    ``x_t = a x0 + b x1`` with ``x1`` from ``source``; ``x_t | x0 ~ N(a x0 + b mu, b^2 U U^T)``, so

        E[x0 | x_t] = mean + a cov (a^2 cov + b^2 U U^T)^{-1} (x_t - a mean - b mu)     (mean at a = 0).

    ``data_var`` (the Gaussian model of OTODE / PiGDM) defaults to the mean of ``diag(cov)``.
    """

    def __init__(self, mean: Tensor, cov: Tensor, source: SubspaceGaussianSource, path, data_var=None):
        cov = torch.as_tensor(cov, dtype=torch.float64)
        super().__init__(path, source.image_shape, data_mean=float(torch.as_tensor(mean).mean()),
                         data_var=float(cov.diagonal().mean()) if data_var is None else float(data_var))
        self.mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        self.cov, self.source_model = cov, source

    def denoise(self, x_t, t):
        a, b = (c.double() for c in self.path.coefficients(torch.as_tensor(t)))
        x = x_t.flatten(1).double()
        if float(a) == 0:
            return self.mean.to(x).expand_as(x).view_as(x_t).to(x_t)
        U, mu = self.source_model.basis.double(), self.source_model.mean.double()
        K = a ** 2 * self.cov + b ** 2 * U @ U.T
        r = x - a * self.mean - b * mu
        return (self.mean + a * torch.linalg.solve(K, r.T).T @ self.cov).view_as(x_t).to(x_t)

    def init_noise(self, batch_size, rng, t_start=None):
        return init_noise_from(self, self.source_model, batch_size, rng, t_start)
