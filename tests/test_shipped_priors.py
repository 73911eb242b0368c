"""The priors shipped in lit_ip/assets/priors, checked on held-out images they never saw."""
import pytest
import torch

from lit_ip.data.bundled import LFWFaces, NaturalCrops, SkimagePhotos
from lit_ip.lightning.training import sample_prior
from lit_ip.metrics.memorization import pairwise_rms
from lit_ip.priors.pretrained import ASSETS, PretrainedPrior, shipped_priors
from lit_ip.sampling.schedules import UniformTime

NAMES = ["faces_ddpm", "faces_rf", "natural_ddpm", "natural_rf"]
SIGMAS = (0.05, 0.1, 0.2, 0.4)  # noise std relative to the signal, [0, 1] image units


def _load(name):
    if name not in shipped_priors():
        pytest.skip(f"shipped prior {name} is not trained yet "
                    f"(lit-ip fit --config configs/fit/{name}.yaml writes it)")
    return PretrainedPrior(name)


def _heldout(name, n=32):
    ds = LFWFaces("heldout") if name.startswith("faces") else NaturalCrops("heldout")
    idx = torch.linspace(0, len(ds) - 1, min(n, len(ds))).round().long().unique()
    return torch.stack([ds[int(i)]["image"] for i in idx])


def _time_for(prior, sigma):
    """The path time at which ``b / a`` is closest to ``sigma``."""
    grid = torch.stack(UniformTime().times(prior.path, 500))
    ab = [prior.path.coefficients(t) for t in grid]
    ratio = torch.stack([b / a.clamp_min(1e-12) for a, b in ab])
    return grid[int((ratio - sigma).abs().argmin())]


def _denoising_gain(prior, x0, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for sigma in SIGMAS:
        t = _time_for(prior, sigma)
        a, b = prior.coefficients(t, x0)
        x_t = a * x0 + b * torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            x0_hat = prior.denoise(x_t, t)
        out[sigma] = (float((x0_hat - x0).pow(2).mean()), float((x_t / a - x0).pow(2).mean()))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_closer_to_heldout_images_than_noise(name):
    prior = _load(name)
    held = _heldout(name)
    samples = sample_prior(prior, 8, num_steps=20, seed=0).clamp(0, 1)
    assert samples.shape[1:] == held.shape[1:] and torch.isfinite(samples).all()
    g = torch.Generator().manual_seed(0)
    noise = (held.mean() + held.std() * torch.randn(samples.shape, generator=g)).clamp(0, 1)
    d_samples = pairwise_rms(samples, held).min(1).values.mean()
    d_noise = pairwise_rms(noise, held).min(1).values.mean()
    assert d_samples < d_noise, (float(d_samples), float(d_noise))


@pytest.mark.parametrize("name", NAMES)
def test_one_step_denoiser_lowers_mse_at_every_level(name):
    prior = _load(name)
    for sigma, (mse_hat, mse_noisy) in _denoising_gain(prior, _heldout(name)).items():
        assert mse_hat < mse_noisy, (name, sigma, mse_hat, mse_noisy)


@pytest.mark.parametrize("name", ["natural_ddpm", "natural_rf"])
def test_natural_priors_denoise_larger_photographs(name):
    _load(name)
    prior = PretrainedPrior(name, image_shape=(3, 64, 96))
    photos = SkimagePhotos(["chelsea", "coffee"], size=(64, 96))
    x0 = torch.stack([photos[i]["image"] for i in range(2)])
    for sigma, (mse_hat, mse_noisy) in _denoising_gain(prior, x0).items():
        assert mse_hat < mse_noisy, (name, sigma, mse_hat, mse_noisy)


def test_shipped_directories_are_complete_and_small():
    names = shipped_priors()
    if not names:
        pytest.skip("no shipped priors yet")
    total = 0
    for name in names:
        d = ASSETS / name
        for f in ("config.json", "diffusion_pytorch_model.safetensors", "prior.json",
                  "training_curve.csv", "training_curve.png", "fit_config.yaml"):
            assert (d / f).is_file(), f"{name}: {f} missing"
        total += (d / "diffusion_pytorch_model.safetensors").stat().st_size
    assert total <= 20 * 2 ** 20, f"shipped weights take {total / 2 ** 20:.1f} MB > 20 MB"
