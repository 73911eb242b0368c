"""RED-diff, from "A variational perspective on solving inverse problems with diffusion models",
Mardani, Song, Kautz & Vahdat 2023 (ICLR 2024, arXiv:2305.04391), Eq. (9)-(10) and Algorithm 1.

The posterior is approximated by ``q = N(mu, sigma_q^2 I)`` with ``sigma_q -> 0``; minimising
``KL(q || p(x0 | y))`` becomes, with the denoising-score-matching form of the prior term,

    min_mu  ||y - A(mu)||^2 / (2 sigma_y^2) + E_{t, eps}[ lambda_t <sg(eps_hat(x_t, t) - eps), mu> ],
    x_t = a_t mu + b_t eps,   lambda_t = lambda sigma_t / alpha_t   (the paper's 1 / sqrt(SNR) weighting),

where ``sg`` stops the gradient (the regulariser's gradient is ``lambda_t (eps_hat - eps)``, no
network backward).

Units. The paper writes the loss for [-1, 1] images ``mu' = 2 mu - 1``, measurements
``y' ~ 2 y`` with noise ``sigma_v = 2 sigma_y`` and the network's level ``sigma_t / alpha_t = 2 b / a``
(``b`` our [0, 1] path). Then ``||y' - A mu'||^2 / (2 sigma_v^2) = ||y - A mu||^2 / (2 sigma_y^2)`` and
``lambda (2 b / a) <sg(.), mu'>`` has gradient ``4 lambda (b / a) sg(.)`` in ``mu``: in our units the
paper's loss is (``weighting="paper"``, the default)

    ||y - A(mu)||^2 / (2 sigma_y^2) + 4 lambda (b / a) <sg(eps_hat - eps), mu>.

The authors' code (``weighting="code"``) drops ``sigma_y`` and averages both terms over entries,
``mean((y' - A mu')^2) / 2 + lambda (sigma_t / alpha_t) mean(sg(.) mu')``, i.e. in our units
``4 [ ||y - A mu||^2 / (2 m) + lambda (b / a) <sg(.), mu> / n ]`` (``m`` measurements, ``n`` pixels):
a prior weight relative to the data term ``m / (4 n sigma_y^2)`` times the paper's (400 at
``sigma_y = 0.025``, ``m = n``). Adam's step does not depend on the overall scale of the loss;
its learning rate is in image units (the paper's 0.1 on [-1, 1] images is 0.05 here). It is solved by Adam, one step per time of a *descending* schedule, with a
fresh ``eps`` at every step. Written in the path's ``(a, b)`` it runs on VP/DDPM and
rectified-flow priors; times with ``a = 0`` (where ``x_t`` does not depend on ``mu``) are skipped.

RED-diff is an optimiser: its output is a MAP-like point estimate, not a posterior sample.
Different seeds (different ``eps`` draws) give nearly the same ``mu``; it must not be used where
posterior samples (spread, calibration) are required.

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/reddiff.yaml: weighting='paper' with lam = 25, init='mean', 50 Adam
steps; PSNR dB of the output). The paper's lam = 0.25 in its own units weighs the prior 1/400 as
much as the authors' code does at sigma_y = 0.025: it returns y on denoising (20.3 = y) and the
pseudo-inverse initialisation on deblurring (5.3: the blur's near-null space has no data gradient,
so the checkerboard of A^+ y stays), and the code's weighting at lam = 0.25 is not better (21.3 /
5.3). lam = 25 with init='mean' beats the trivial estimate on denoise (24.0 vs 20.3), inpainting
(20.4 / 25.4 vs 7.1 / 12.8), deblur (26.8 vs 25.1) and, by less than the standard error, sr_4x (23.1
vs 22.2); not colorization (19.9 vs 24.4 for the luminance image, cause not established).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``reddiff`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.42 vs pinv 26.65, colorize 16.04
vs grey 15.57; natural_rf sr_4x 26.80 vs pinv 26.65. It beats it on every task run with faces_ddpm
(5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule
from .base import Method
from .likelihood import per_sample_sum


class REDDiff(Method):
    """RED-diff (Mardani et al. 2023): Adam on ``mu`` over a descending time schedule.

    Needs a differentiable operator; the data term is the noise model's data fit (Gaussian with
    ``sigma_y``, or an explicit ``sigma_y`` for noiseless data; Poisson by its Gaussian
    approximation). Adam acts element-wise on a sum of per-sample losses, so samples stay
    independent.

    Args:
        num_steps: Adam iterations = network evaluations (paper: 1000).
        lam: lambda, the overall weight of the diffusion regulariser, in the paper's units
            (paper: 0.25).
        weighting: ``"paper"`` (the paper's loss, data term ``/ (2 sigma_y^2)``) or ``"code"``
            (the authors' code: per-entry means, no ``sigma_y``); see the module docstring.
        lr: Adam learning rate in [0, 1] image units (the paper's 0.1 in [-1, 1] units is 0.05).
        sigma_y: likelihood std; None = the noise model's sigma.
        init: ``"pinv"`` (``mu_0 = h_dagger(y)``, the pseudo-inverse for linear operators) or
            ``"mean"`` (the prior's mean pixel value).
        beta1, beta2: Adam's moment decay rates (paper: 0.9, 0.99).
    """

    requires = ("differentiable",)
    INITS = ("pinv", "mean")
    WEIGHTINGS = ("paper", "code")

    def __init__(self, num_steps: int = 1000, lam: float = 0.25, lr: float = 0.05,
                 sigma_y: Optional[float] = None, init: str = "pinv", beta1: float = 0.9, beta2: float = 0.99,
                 weighting: str = "paper", schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if weighting not in self.WEIGHTINGS:
            raise ValueError(f"RED-diff weighting must be one of {self.WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        if not float(lam) >= 0 or not float(lr) > 0:
            raise ValueError(f"RED-diff needs lam >= 0 and lr > 0, got {lam}, {lr}")
        if init not in self.INITS:
            raise ValueError(f"RED-diff init must be one of {self.INITS}, got {init!r}")
        if sigma_y is not None and not float(sigma_y) > 0:
            raise ValueError(f"RED-diff sigma_y must be > 0, got {sigma_y}")
        self.lam, self.lr, self.init = float(lam), float(lr), init
        self.sigma_y = None if sigma_y is None else float(sigma_y)
        self.beta1, self.beta2 = float(beta1), float(beta2)

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if self.init == "pinv" and not (operator.linear or operator.has_h_dagger):
            raise ValueError(f"RED-diff init='pinv' needs a pseudo-inverse, but {operator.describe()} has "
                             f"none; use init='mean'")

    def likelihood_sigma(self):
        return self.sigma_y

    def loss(self, p, mu, eps_hat, eps, a, b):
        """The per-sample loss in our units (module docstring): ``weighting="paper"`` or ``"code"``."""
        inner = per_sample_sum((eps_hat - eps) * mu)
        if self.weighting == "paper":
            return p.fit.nll(mu) + 4 * self.lam * b / a * inner
        m, n = p.y[0].numel(), mu[0].numel()
        return 4 * (0.5 * per_sample_sum(p.fit.residual(mu) ** 2) / m + self.lam * b / a * inner / n)

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        if self.weighting == "paper":
            p.fit.require_density(self.name)
        shape = (y.shape[0], *prior.image_shape)
        with torch.no_grad():
            mu0 = operator.h_dagger(y) if self.init == "pinv" else torch.full(shape, prior.data_mean)
        mu = mu0.to(y).detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([mu], lr=self.lr, betas=(self.beta1, self.beta2))
        for t in self.times(prior):
            a, b = prior.coefficients(t, mu)
            eps = rng.randn(shape).to(mu)
            with torch.no_grad():
                eps_hat = prior.eps(a * mu + b * eps, t)
            opt.zero_grad()
            self.loss(p, mu, eps_hat, eps, a, b).sum().backward()
            opt.step()
        return mu.detach()

    def times(self, prior) -> list:
        """The schedule's times where ``x_t`` depends on ``mu`` (``a > 0``)."""
        return [t for t in self.schedule.times(prior.path, self.num_steps) if self.informative(prior, t)]

    def expected_nfe(self, prior):
        return {"nfe": len(self.times(prior)), "nfe_backward": 0}
