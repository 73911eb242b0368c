"""NetworkPrior unit conversions and strict loading of prior directories."""
import json
import math

import pytest
import torch
from torch import nn

from lit_ip.models.unet import DiffusersUNet, load_unet_dir, save_unet_dir
from lit_ip.priors.analytic import GaussianMixturePrior
from lit_ip.priors.network import NetworkPrior
from lit_ip.priors.paths import RectifiedFlowPath, VPPath
from lit_ip.priors.pretrained import PretrainedPrior, load_network, save_prior_dir
from lit_ip.sampling.schedules import UniformTime

SHAPE = (1, 4, 4)
D = math.prod(SHAPE)


def _mixture(path):
    g = torch.Generator().manual_seed(0)
    means = 0.2 + 0.6 * torch.rand(3, D, generator=g, dtype=torch.float64)
    A = 0.1 * torch.randn(3, D, D, generator=g, dtype=torch.float64)
    covs = A @ A.transpose(1, 2) + 0.01 * torch.eye(D, dtype=torch.float64)
    return GaussianMixturePrior(torch.tensor([0.2, 0.3, 0.5]), means, covs, SHAPE, path)


class OracleNetwork(nn.Module):
    """Exact prediction of a [0, 1]-unit analytic prior, expressed the way a network trained on
    data in [lo, hi] with time input ``t * time_scale`` would return it. Written from the
    definitions (eps = noise, v = a eps - b x0, velocity = d/dt x_t), not from the wrapper."""

    def __init__(self, exact, native_path, kind, lo, hi, time_scale):
        super().__init__()
        self.exact, self.path, self.kind = exact, native_path, kind
        self.lo, self.span, self.time_scale = lo, hi - lo, time_scale

    def forward(self, x_native, t_in):
        assert t_in.shape == (x_native.shape[0],)
        t = float(t_in[0]) / self.time_scale
        a, b = (c.to(x_native) for c in self.path.coefficients(torch.tensor(t)))
        x_unit = (x_native - a * self.lo) / self.span           # the [0, 1]-unit noisy image
        x0 = self.lo + self.span * self.exact.denoise(x_unit, t)  # native clean estimate
        eps = (x_native - a * x0) / b
        if self.kind == "eps":
            return eps
        if self.kind == "x0":
            return x0
        if self.kind == "v":
            return a * eps - b * x0
        assert isinstance(self.path, RectifiedFlowPath)  # a = 1 - t, b = t
        return -x0 + eps


CASES = [(VPPath(), k, 1.0) for k in ("eps", "x0", "v")] + \
        [(RectifiedFlowPath(), k, 999.0) for k in ("velocity", "eps", "x0")]


@pytest.mark.parametrize("data_range", [(-1.0, 1.0), (0.0, 1.0)])
@pytest.mark.parametrize("native_path,kind,time_scale", CASES)
def test_wrapper_returns_the_exact_denoiser(native_path, kind, time_scale, data_range):
    lo, hi = data_range
    exact = _mixture(native_path.scaled(1 / (hi - lo)))
    prior = NetworkPrior(OracleNetwork(exact, native_path, kind, lo, hi, time_scale), native_path,
                         kind, SHAPE, data_range, time_scale)
    assert prior.path.scale == pytest.approx(1 / (hi - lo))
    assert prior.data_var == pytest.approx(1 / (hi - lo) ** 2)
    g = torch.Generator().manual_seed(1)
    x0 = exact.sample(6, type("R", (), {"rand": lambda s, sh: torch.rand(sh, generator=g),
                                         "randn": lambda s, sh: torch.randn(sh, generator=g)})())
    for t in torch.stack(UniformTime().times(native_path, 5))[:-1]:
        a, b = prior.coefficients(t, x0)
        if kind == "eps" and a < 1e-3:
            continue  # eps-prediction cannot give x0 where the signal is gone (rectified flow, t = 1)
        x_t = a * x0 + b * torch.randn(x0.shape, generator=g)
        got, want = prior.denoise(x_t, t), exact.denoise(x_t, t)
        assert torch.allclose(got, want, atol=2e-4 * (1 + float(b / a))), (kind, float(t))


def test_time_scale_reaches_the_network():
    seen = []

    class Probe(nn.Module):
        def forward(self, x, t):
            seen.append(t.clone())
            return torch.zeros_like(x)

    prior = NetworkPrior(Probe(), RectifiedFlowPath(), "velocity", SHAPE, (-1, 1), time_scale=999)
    prior.denoise(torch.zeros(3, *SHAPE), torch.tensor(0.25))
    assert seen[0].shape == (3,) and torch.allclose(seen[0], torch.full((3,), 249.75))


def test_wrong_output_shape_is_refused():
    class TwoC(nn.Module):
        def forward(self, x, t):
            return torch.cat([x, x], 1)

    prior = NetworkPrior(TwoC(), VPPath(), "eps", SHAPE)
    with pytest.raises(ValueError, match="first C channels"):
        prior.denoise(torch.zeros(2, *SHAPE), 10.0)


def test_clip_x0_projects_onto_the_data_range():
    class Wild(nn.Module):
        def forward(self, x, t):
            return 50 * torch.randn_like(x)

    x = torch.rand(4, *SHAPE)
    raw = NetworkPrior(Wild(), VPPath(), "eps", SHAPE).denoise(x, 900.0)
    assert raw.min() < 0 and raw.max() > 1
    torch.manual_seed(0)
    clipped = NetworkPrior(Wild(), VPPath(), "eps", SHAPE, clip_x0=True).denoise(x, 900.0)
    torch.manual_seed(0)
    again = NetworkPrior(Wild(), VPPath(), "eps", SHAPE).denoise(x, 900.0)
    assert torch.equal(clipped, again.clamp(0, 1))


def _tiny_unet(channels=(8, 16), c=1):
    return DiffusersUNet(in_channels=c, sample_size=8, block_out_channels=channels,
                         layers_per_block=1, norm_num_groups=4)


def test_learned_sigma_adapter_keeps_first_channels():
    net = _tiny_unet()
    wide = DiffusersUNet(in_channels=1, out_channels=2, sample_size=8, block_out_channels=(8, 16),
                         layers_per_block=1, norm_num_groups=4)
    adapter = DiffusersUNet.wrap(wide.unet, keep_channels=1)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 500.0])
    assert adapter(x, t).shape == x.shape
    assert torch.equal(adapter(x, t), wide(x, t)[:, :1])
    assert net(x, t).shape == x.shape


def test_prior_directory_round_trip(tmp_path):
    net = _tiny_unet()
    save_prior_dir(tmp_path / "p", net.unet, RectifiedFlowPath(), "velocity", (-1, 1), (1, 8, 8), 999.0,
                   clip_x0=True)
    assert PretrainedPrior(str(tmp_path / "p")).clip_x0
    prior = PretrainedPrior(str(tmp_path / "p"), clip_x0=False)
    assert prior.prediction == "velocity" and prior.time_scale == 999.0 and not prior.clip_x0
    assert prior.image_shape == (1, 8, 8) and prior.path.kind == "rf"
    x = torch.rand(2, 1, 8, 8)
    ref = NetworkPrior(net, RectifiedFlowPath(), "velocity", (1, 8, 8), (-1, 1), 999.0)
    assert torch.allclose(prior.denoise(x, 0.5), ref.denoise(x, 0.5), atol=1e-6)
    from diffusers import UNet2DModel
    theirs = UNet2DModel.from_pretrained(str(tmp_path / "p"), local_files_only=True)  # diffusers reads it
    assert all(torch.equal(v, net.unet.state_dict()[k]) for k, v in theirs.state_dict().items())
    bigger = PretrainedPrior(str(tmp_path / "p"), image_shape=(1, 16, 16))
    assert bigger.denoise(torch.rand(1, 1, 16, 16), 0.5).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="divisible"):
        PretrainedPrior(str(tmp_path / "p"), image_shape=(1, 9, 9))


def test_a_users_diffusers_directory_is_a_network(tmp_path):
    net = _tiny_unet()
    net.unet.save_pretrained(tmp_path / "user")  # diffusers' own writer
    loaded = load_network(str(tmp_path / "user"))
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([7.0])
    assert torch.allclose(loaded(x, t), net(x, t), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="prior.json"):
        PretrainedPrior(str(tmp_path / "user"))


def test_incomplete_directory_fails_clearly(tmp_path):
    net = _tiny_unet()
    d = save_prior_dir(tmp_path / "p", net.unet, VPPath(), "eps", (-1, 1), (1, 8, 8))
    (d / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing diffusion_pytorch_model.safetensors"):
        PretrainedPrior(str(d))
    meta = json.loads((d / "prior.json").read_text())
    del meta["prediction"]
    save_unet_dir(net.unet, d)
    (d / "prior.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="prediction"):
        PretrainedPrior(str(d))
    with pytest.raises(FileNotFoundError, match="not a shipped prior"):
        PretrainedPrior("no_such_prior_name")


def test_weights_not_matching_config_list_the_mismatches(tmp_path):
    small, other = _tiny_unet((8, 16)), _tiny_unet((8, 24))
    save_unet_dir(small.unet, tmp_path / "p")
    save_unet_dir(other.unet, tmp_path / "q")
    # config of `small`, weights of `other`
    (tmp_path / "q" / "config.json").write_text((tmp_path / "p" / "config.json").read_text())
    with pytest.raises(ValueError, match=r"\d+ wrong shape: down_blocks\.1\S* \(network \(16, .*file \(24, "):
        load_unet_dir(tmp_path / "q")
    # a weights file with a key removed and one added
    from safetensors.torch import load_file, save_file
    state = load_file(str(tmp_path / "p" / "diffusion_pytorch_model.safetensors"))
    first = sorted(state)[0]
    state["bogus.weight"] = state.pop(first)
    save_file(state, str(tmp_path / "p" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match=f"1 missing: {first}; 1 unexpected: bogus.weight"):
        load_unet_dir(tmp_path / "p")
