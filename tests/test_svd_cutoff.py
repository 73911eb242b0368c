"""Truncated SVD for replacement methods (DDNM+, DDRM) on ill-conditioned, noisy problems."""
import torch

from lit_ip.methods import DDRM, DDNMPlus
from lit_ip.methods.spectral import Spectrum
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.analytic import GaussianPrior
from lit_ip.rng import SampleRNG


def _problem(n=256, d=16):
    g = torch.Generator().manual_seed(0)
    Q1, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    Q2, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.logspace(0, -6, d, dtype=torch.float64)       # a blur-like decaying spectrum
    op = DenseMatrixOperator(Q1 @ torch.diag(s) @ Q2.T, (1, 4, 4))
    prior = GaussianPrior(0.5 * torch.ones(d, dtype=torch.float64), 0.04 * torch.eye(d, dtype=torch.float64), (1, 4, 4))
    x = prior.sample(n, SampleRNG.for_indices(range(n), 1)).double()
    noise = GaussianNoise(0.05)
    y = noise.sample(op(x), SampleRNG.for_indices(range(n), 0, stream=1, dtype=torch.float64))
    return prior, op, noise, x, y


def test_spectrum_cutoff_moves_small_singular_values_to_the_null_space():
    prior, op, noise, x, y = _problem(n=2)
    assert int(Spectrum(op, y).measured.sum()) == 16
    assert int(Spectrum(op, y, cutoff=0.05).measured.sum()) == int((op.singular_values() > 0.05).sum())


def test_truncation_stops_noise_amplification():
    prior, op, noise, x, y = _problem()
    rng = lambda: SampleRNG.for_indices(range(len(y)), 0, dtype=torch.float64)
    mse = lambda m: float(((m.sample(prior, op, y, rng(), noise) - x) ** 2).mean())
    # a sampler that ignores y has MSE 2 x 0.04 (two independent prior draws). DDNM+ replaces
    # measured coordinates by ybar and so copies noise sigma/s (up to 5e4) into x unless the
    # spectrum is truncated
    full, cut = mse(DDNMPlus(50)), mse(DDNMPlus(50, svd_cutoff=0.05))
    assert cut < 0.08 < full, (cut, full)
    # DDRM weighs ybar by s / sigma_y where it is noisier than the state: stable without it
    assert mse(DDRM(20)) < 0.08
