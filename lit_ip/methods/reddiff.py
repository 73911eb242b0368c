"""RED-diff, from "A variational perspective on solving inverse problems with diffusion models",
Mardani, Song, Kautz & Vahdat 2023 (ICLR 2024, arXiv:2305.04391), Eq. (9)-(10) and Algorithm 1.

The posterior is approximated by ``q = N(mu, sigma_q^2 I)`` with ``sigma_q -> 0``; minimising
``KL(q || p(x0 | y))`` becomes, with the denoising-score-matching form of the prior term,

    min_mu  ||y - A(mu)||^2 / (2 sigma_y^2) + E_{t, eps}[ lambda_t <sg(eps_hat(x_t, t) - eps), mu> ],
    x_t = a_t mu + b_t eps,   lambda_t = lambda * b_t / a_t   (the paper's 1 / sqrt(SNR) weighting),

where ``sg`` stops the gradient (the regulariser's gradient is ``lambda_t (eps_hat - eps)``, no
network backward). It is solved by Adam, one step per time of a *descending* schedule, with a
fresh ``eps`` at every step. Written in the path's ``(a, b)`` it runs on VP/DDPM and
rectified-flow priors; times with ``a = 0`` (where ``x_t`` does not depend on ``mu``) are skipped.

RED-diff is an optimiser: its output is a MAP-like point estimate, not a posterior sample.
Different seeds (different ``eps`` draws) give nearly the same ``mu``; it must not be used where
posterior samples (spread, calibration) are required.
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
        lam: lambda, the overall weight of the diffusion regulariser (paper: 0.25).
        lr: Adam learning rate in [0, 1] image units (the paper's 0.1 in [-1, 1] units is 0.05).
        sigma_y: likelihood std; None = the noise model's sigma.
        init: ``"pinv"`` (``mu_0 = h_dagger(y)``, the pseudo-inverse for linear operators) or
            ``"mean"`` (the prior's mean pixel value).
        beta1, beta2: Adam's moment decay rates (paper: 0.9, 0.99).
    """

    requires = ("differentiable",)
    INITS = ("pinv", "mean")

    def __init__(self, num_steps: int = 1000, lam: float = 0.25, lr: float = 0.05,
                 sigma_y: Optional[float] = None, init: str = "pinv", beta1: float = 0.9, beta2: float = 0.99,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
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

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
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
            reg = self.lam * b / a * per_sample_sum((eps_hat - eps) * mu)
            opt.zero_grad()
            (p.fit.nll(mu) + reg).sum().backward()
            opt.step()
        return mu.detach()

    def times(self, prior) -> list:
        """The schedule's times where ``x_t`` depends on ``mu`` (``a > 0``)."""
        return [t for t in self.schedule.times(prior.path, self.num_steps) if self.informative(prior, t)]

    def expected_nfe(self, prior):
        return {"nfe": len(self.times(prior)), "nfe_backward": 0}
