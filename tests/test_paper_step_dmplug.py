"""DMPlug (Wang et al. 2024, arXiv:2405.16749, Eq. 7 / Algorithm 3's inner loop) against the paper's
update written out here in its [-1, 1] units (see tests/paper_steps_common.py), never calling the
method's code: ``G(z')`` is DDIM with eta = 0 from ``x'_T = z'``, the loss is the mean squared
residual ``mean((y' - A G(z'))^2)`` (the authors' code), and Adam steps ``z'`` at the paper's lr 1e-2.
Ours works on ``z = (z' + a_T) / 2`` with the per-sample sum of squares in [0, 1] units; Adam is
invariant to the loss's scale, so the same trajectory needs lr 1e-2 / 2 = 5e-3 (its default).
"""
from __future__ import annotations

import pytest
import torch

from lit_ip.methods.dmplug import DMPlug
from lit_ip.operators.noise import GaussianNoise

from paper_steps_common import B, F64, SHAPE, SIGMA, FixedNoise, dense, gaussian_prior, matrix, paper_y, problem, randn

GRID = (999.0, 500.0, 0.0)            # 3 DDIM steps: the method's default grid (uniform, endpoints)


def paper_G(prior, zp):
    """DDIM (eta = 0) in [-1, 1] units over GRID: x'_s = sqrt(abar_s) x0' + sqrt(1 - abar_s) eps',
    eps' = (x'_t - sqrt(abar_t) x0') / sqrt(1 - abar_t); the last step returns x0'."""
    x = zp
    for k, t in enumerate(GRID):
        t = torch.tensor(t, dtype=F64)
        a, b = (float(v) for v in prior.coefficients(t, x))
        b_net = 2 * b                                            # sqrt(1 - abar_t)
        x0p = 2 * prior.denoise((x + a) / 2, t) - 1              # the denoiser, read in paper units
        if k == len(GRID) - 1:
            return x0p
        a_n, b_n = (float(v) for v in prior.coefficients(torch.tensor(GRID[k + 1], dtype=F64), x))
        eps = (x - a * x0p) / b_net
        x = a_n * x0p + 2 * b_n * eps


def paper_adam(prior, zp, yp, A, lr, steps, betas=(0.9, 0.999), eps=1e-8):
    """``steps`` Adam iterations (Kingma & Ba 2015, Algorithm 1) on mean((y' - A G(z'))^2), per image."""
    m = torch.zeros_like(zp)
    v = torch.zeros_like(zp)
    for k in range(1, steps + 1):
        z = zp.detach().requires_grad_(True)
        with torch.enable_grad():
            r = yp - paper_G(prior, z).flatten(1) @ A.T
            (g,) = torch.autograd.grad((r ** 2).mean(1).sum(), z)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g ** 2
        m_hat, v_hat = m / (1 - betas[0] ** k), v / (1 - betas[1] ** k)
        zp = zp - lr * m_hat / (v_hat.sqrt() + eps)
    return zp


@pytest.mark.parametrize("iterations", [1, 3])
def test_dmplug_adam_on_the_initial_noise_is_the_papers(iterations):
    prior, op = gaussian_prior(), dense()
    method = DMPlug(num_steps=3, iterations=iterations, select="last")
    assert [float(t) for t in method.schedule.times(prior.path, 3)] == list(GRID)
    _, y = problem(method, prior, op, GaussianNoise(SIGMA))
    eps0 = randn(B, *SHAPE, seed=21)
    out = method.sample(prior, op, y, FixedNoise(eps0))
    # the paper's z' ~ N(0, I) is x'_T; ours is the same draw, a_T data_mean + b_T eps, read in paper units
    a_T, b_T = (float(v) for v in prior.coefficients(torch.tensor(GRID[0], dtype=F64), eps0))
    z0p = 2 * (a_T * prior.data_mean + b_T * eps0) - a_T
    A = matrix(op)
    zp = paper_adam(prior, z0p, paper_y(y, A), A, lr=1e-2, steps=iterations)
    torch.testing.assert_close(out, (paper_G(prior, zp) + 1) / 2)
    # a different lr (ours at the paper's number, twice the step) gives a different answer
    wrong = paper_adam(prior, z0p, paper_y(y, A), A, lr=2e-2, steps=iterations)
    assert (out - (paper_G(prior, wrong) + 1) / 2).abs().max() > 1e-4
