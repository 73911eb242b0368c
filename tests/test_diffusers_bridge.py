"""diffusers bridge: beta schedules against diffusers' own alphas, model ids from the local HF cache."""

import pytest
import torch

from lit_ip.priors.betas import DIFFUSERS_NAMES, SCHEDULES, make_betas
from lit_ip.priors.loaders import DiffusersPrior, read_scheduler_config
from lit_ip.priors.paths import VPPath

CASES = [("linear", 1000, 1e-4, 2e-2), ("scaled_linear", 1000, 8.5e-4, 1.2e-2),
         ("squaredcos_cap_v2", 1000, 1e-4, 2e-2), ("sigmoid", 1000, 1e-4, 2e-2), ("scaled_linear", 50, 1e-3, 5e-2)]


@pytest.mark.parametrize("name,T,start,end", CASES)
def test_alphas_match_diffusers(name, T, start, end, tmp_path):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=name, beta_start=start, beta_end=end)
    path = VPPath(T, name, start, end)
    t = torch.arange(T, dtype=torch.float64)
    a, b = path.coefficients(t)
    assert torch.allclose(a.double() ** 2, ref.alphas_cumprod.double(), rtol=2e-5, atol=1e-7)
    assert torch.allclose((a.double() ** 2 + b.double() ** 2), torch.ones(T, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(make_betas(name, T, start, end), ref.betas.double(), rtol=1e-5, atol=1e-8)
    ref.save_pretrained(tmp_path)  # the scheduler config a diffusers model directory carries
    native, pred, learned = read_scheduler_config(tmp_path / "scheduler_config.json")
    assert native.schedule == DIFFUSERS_NAMES[name] and native.num_train_steps == T
    assert torch.allclose(native.coefficients(t)[0].double() ** 2, ref.alphas_cumprod.double(), rtol=2e-5, atol=1e-7)


def test_one_place_for_beta_schedules():
    import lit_ip.priors.loaders as loaders

    assert loaders.BETA_SCHEDULES is DIFFUSERS_NAMES and set(DIFFUSERS_NAMES.values()) <= set(SCHEDULES)
    with pytest.raises(ValueError, match="laplace"):
        VPPath(100, "laplace")


def _hf_cache(root, model_id, revision="0123abcd"):
    from test_checkpoints import _diffusers_dir

    repo = root / "hub" / f"models--{model_id.replace('/', '--')}"
    snap = repo / "snapshots" / revision
    unet = _diffusers_dir(snap, num_train_timesteps=1000, beta_schedule="linear")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snap, unet


def test_model_id_from_the_local_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snap, unet = _hf_cache(tmp_path / "hf", "google/ddpm-cifar10-32")
    prior = DiffusersPrior("google/ddpm-cifar10-32")
    assert prior.directory == str(snap) and prior.image_shape == (3, 16, 16)
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([10.0])
    with torch.no_grad():
        assert torch.equal(prior.network(x, t), unet(x, t).sample)


def test_absent_model_id_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        DiffusersPrior("google/ddpm-cifar10-32")
    msg = str(err.value)
    assert str(tmp_path / "hf" / "hub" / "models--google--ddpm-cifar10-32") in msg and "offline" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DiffusersPrior(str(tmp_path / "no" / "such" / "dir"))
