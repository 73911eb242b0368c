"""The one-call helpers of ``lit_ip.api`` give what ``lit-ip predict`` gives for the same
(seed, index): same masks, measurements, samples and metrics."""
from __future__ import annotations

import pytest
import torch

import lit_ip
from lit_ip import bind, posterior_sample, prior_sample, pseudo_inverse, psnr_ssim, simulate_measurement
from lit_ip.lightning.sampling_module import PosteriorSamplingModule, Task
from lit_ip.lightning.training import sample_prior
from lit_ip.lightning.writer import image_metrics
from lit_ip.methods import DDRM, DPS, PiGDM
from lit_ip.operators import AveragePoolSR, GaussianNoise, RandomInpainting
from lit_ip.priors.synthetic import RandomGaussianPrior
from lit_ip.rng import SampleRNG

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def prior():
    return RandomGaussianPrior(image_shape=SHAPE, seed=0, std=0.15)


def test_exported_from_package():
    for name in ("posterior_sample", "prior_sample", "simulate_measurement", "pseudo_inverse", "psnr_ssim"):
        assert name in lit_ip.__all__ and callable(getattr(lit_ip, name))


@pytest.mark.parametrize("num_samples", [1, 3])
def test_matches_the_predict_module(prior, num_samples):
    """Same seed and indices -> the sampling module's measurements and samples, whatever the batch."""
    indices, seed = [5, 2, 9], 7
    x = prior.sample(3, SampleRNG.for_indices(indices, 1)).clamp(0, 1)
    op, noise = RandomInpainting(0.5, SHAPE), GaussianNoise(0.05)
    methods = {"pigdm": PiGDM(num_steps=10), "ddrm": DDRM(num_steps=5), "dps": DPS(num_steps=8, zeta=0.1)}
    module = PosteriorSamplingModule(prior, {"inpaint": Task(op, noise)}, methods,
                                     num_samples=num_samples, seed=seed)
    out = module.reconstruct({"image": x, "key": [f"k{i}" for i in indices], "index": indices})["tasks"]["inpaint"]

    y = simulate_measurement(op, x, noise, seed=seed, indices=indices)
    torch.testing.assert_close(y, out["y"], rtol=0, atol=0)
    torch.testing.assert_close(pseudo_inverse(op, y, seed=seed, indices=indices), out["pinv"])
    for name, method in methods.items():
        # one row at a time (another batch composition than the module's)
        xs = torch.cat([posterior_sample(prior, op, y[j:j + 1], method, noise, num_samples=num_samples,
                                         seed=seed, indices=[i]) for j, i in enumerate(indices)])
        assert xs.shape == (3, num_samples, *SHAPE)
        torch.testing.assert_close(xs, out["recon"][name], rtol=1e-4, atol=1e-5)


def test_family_is_bound_to_the_indices(prior):
    op = RandomInpainting(0.5, SHAPE)
    x = torch.full((2, *SHAPE), 0.5)
    y = simulate_measurement(op, x, indices=[0, 1])
    masks = bind(op, [0, 1]).mask
    torch.testing.assert_close(y, masks * x)
    assert not torch.equal(masks[0], masks[1])
    torch.testing.assert_close(simulate_measurement(op, x[1:], indices=[1]), y[1:])


def test_index_count_must_match_rows(prior):
    op = AveragePoolSR(2, SHAPE)
    with pytest.raises(ValueError, match="3 rows but 2 indices"):
        simulate_measurement(op, torch.zeros(3, *SHAPE), indices=[0, 1])
    y = simulate_measurement(op, torch.zeros(2, *SHAPE))
    with pytest.raises(TypeError, match="lit_ip Method"):
        posterior_sample(prior, op, y, "pigdm")
    with pytest.raises(ValueError, match="num_samples"):
        posterior_sample(prior, op, y, PiGDM(num_steps=2), num_samples=0)


def test_prior_sample_matches_training_samples(prior):
    torch.testing.assert_close(prior_sample(prior, 4, seed=3), sample_prior(prior, 4, seed=3))


def test_psnr_ssim_is_the_writers(prior):
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, *SHAPE, generator=g) * 1.2 - 0.1
    target = torch.rand(2, 1, *SHAPE, generator=g)
    psnr, ssim = psnr_ssim(pred, target)
    assert psnr.shape == ssim.shape == (2, 3)
    p2, s2 = image_metrics(pred.reshape(6, *SHAPE), target.expand_as(pred).reshape(6, *SHAPE))
    torch.testing.assert_close(psnr.flatten(), torch.tensor(p2, dtype=psnr.dtype))
    torch.testing.assert_close(ssim.flatten(), torch.tensor(s2, dtype=ssim.dtype))
