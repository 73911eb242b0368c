"""Image metrics (PSNR/SSIM/LPIPS/FID/KID), measurement consistency and calibration.

Feature metrics use small randomly initialised backbones; nothing is downloaded.
"""
import math

import pytest
import torch

from lit_ip.metrics.backbones import AlexNetFeatures, PooledFeatures, load_state_dict
from lit_ip.metrics.calibration import calibration, dataset_mse_ratio, posterior_stats
from lit_ip.metrics.consistency import measurement_consistency, residual_rms
from lit_ip.metrics.image import ImageMetrics
from lit_ip.metrics.kid import KID
from lit_ip.metrics.lpips import LPIPS, shipped_heads

F32 = torch.float32


def tiny_backbone(seed=0):
    """A small random AlexNet-shaped backbone (He init, so features are O(1))."""
    torch.manual_seed(seed)
    net = AlexNetFeatures(widths=(8, 8, 12, 8, 8)).float()
    for m in net.features:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return net


def images(n, seed, size=32, channels=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=g, dtype=F32)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=F32)).clamp(0, 1)
    return noisy, x


def test_psnr_and_ssim_per_image_match_independent_formulas():
    from skimage.metrics import structural_similarity

    pred, target = images(3, 0)
    m = ImageMetrics(fid=False, kid=False, lpips=False)
    vals = m.per_image(pred, target)
    mse = ((pred - target) ** 2).flatten(1).mean(1).double()
    assert torch.allclose(vals["psnr"].double(), 10 * torch.log10(1 / mse), atol=1e-3)
    for i in range(3):
        ref = structural_similarity(pred[i].numpy(), target[i].numpy(), channel_axis=0, data_range=1.0,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(float(vals["ssim"][i]) - ref) < 2e-3


def test_dataset_values_are_means_of_per_image_values_over_batches():
    m = ImageMetrics(backbone=tiny_backbone(), extra=("consistency",), kid_subsets=3)
    rows = []
    for b, n in enumerate((3, 1, 4)):
        pred, target = images(n, b)
        c = torch.rand(n, dtype=F32)
        v = m.update(pred, target, torch.arange(n) + 10 * b, extra={"consistency": c})
        assert torch.equal(v["consistency"], c)
        rows.append(v)
    out = m.compute()
    for name in ("psnr", "ssim", "lpips", "consistency"):
        assert out[name] == pytest.approx(float(torch.cat([r[name] for r in rows]).mean()), rel=1e-5)
    assert math.isfinite(out["fid"]) and math.isfinite(out["kid_mean"])
    with pytest.raises(ValueError, match="extra values"):
        m.update(*images(2, 5), torch.arange(2))


def test_missing_backbone_weights_names_the_file_and_keeps_other_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_IP_WEIGHTS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.warns(UserWarning, match="alexnet-owt-7be5be79.pth"):
        m = ImageMetrics()
    for name in ("alexnet-owt-7be5be79.pth", "weights-inception-2015-12-05-6726825d.pth", "vgg16-397923af.pth"):
        said = [msg for msg in m.missing + m.notes if name in msg]  # each missing file, with both places looked
        assert len(said) == 1 and str(tmp_path / "nowhere" / name) in said[0], name
        assert str(tmp_path / "torch" / "hub" / "checkpoints" / name) in said[0], name
    assert len(m.missing) == 1 and "alexnet" in m.missing[0]  # the other two are optional (notes)
    assert m.lpips is None and m.lpips_vgg is None and m.fid is None and m.kid is None
    pred, target = images(2, 1)
    m.update(pred, target, torch.arange(2))
    out = m.compute()
    assert set(out) == {"psnr", "ssim"} and out["psnr"] > 10


def test_backbone_weights_load_strictly_from_a_local_file(tmp_path):
    src = tiny_backbone(1)
    state = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too
    torch.save(state, tmp_path / "alex.pth")
    loaded = AlexNetFeatures(widths=(8, 8, 12, 8, 8), weights=str(tmp_path / "alex.pth"))
    x = torch.rand(2, 3, 40, 40, dtype=F32)
    for a, b in zip(src(x), loaded(x)):
        assert torch.equal(a, b)
    del state["features.3.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="missing"):
        AlexNetFeatures(widths=(8, 8, 12, 8, 8), weights=str(tmp_path / "broken.pth"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state_dict(tmp_path / "absent.pth")


def test_lpips_heads_from_the_shipped_file_and_distance_properties():
    heads = load_state_dict(shipped_heads("alex"))
    torch.manual_seed(0)
    lp = LPIPS(AlexNetFeatures().float(), heads=str(shipped_heads("alex")))
    for i, h in enumerate(lp.heads):
        assert torch.equal(h.weight, heads[f"lin{i}.model.1.weight"].float())
    x, _ = images(2, 3, size=24, channels=1)  # gray and small: made RGB and upsampled
    y = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    d_xy, d_yx = lp(x, y), lp(y, x)
    assert torch.allclose(lp(x, x), torch.zeros(2), atol=1e-6)
    assert (d_xy > 1e-4).all() and torch.allclose(d_xy, d_yx, rtol=1e-4)
    with pytest.raises(ValueError, match="equal shape"):
        lp(x, y[:1])


def test_fid_zero_for_identical_sets_and_kid_independent_of_update_order():
    feats = PooledFeatures(tiny_backbone(2))
    real, _ = images(12, 4)
    m = ImageMetrics(backbone=feats.backbone, lpips=False, kid_subsets=4, kid_subset_size=12)
    m.update(real, real, torch.arange(12))
    out = m.compute()
    fake = (real * 0.6 + 0.3).clamp(0, 1)
    kids = []
    for order in (range(12), reversed(range(12))):  # same data, other arrival order
        k = KID(feats, subsets=4, subset_size=8)
        for i in order:
            k.update(real[i:i + 1], True, [i])
            k.update(fake[i:i + 1], False, [i])
        kids.append(k.compute())
    assert abs(out["fid"]) < 1e-6 and abs(out["kid_mean"]) < 0.1 * float(kids[0]["kid_mean"])
    assert torch.allclose(kids[0]["kid_mean"], kids[1]["kid_mean"], rtol=1e-9)
    assert int(kids[0]["kid_subset_size"]) == 8


# --- consistency ---------------------------------------------------------------------------
def test_measurement_consistency_is_one_at_the_noise_level():
    g = torch.Generator().manual_seed(0)
    ax = torch.rand(4, 1, 64, 64, generator=g, dtype=F32)
    sigma = 0.05
    y = ax + sigma * torch.randn(ax.shape, generator=g, dtype=F32)
    c = measurement_consistency(y, ax, sigma)
    assert torch.allclose(c, torch.ones(4), atol=0.03)
    assert torch.allclose(measurement_consistency(y, y, sigma), torch.zeros(4))
    assert torch.isnan(measurement_consistency(y, ax, 0.0)).all()
    assert torch.allclose(residual_rms(y, ax), c * sigma)
    with pytest.raises(ValueError, match="shape"):
        residual_rms(y, ax[:, :, :3])


# --- calibration -----------------------------------------------------------------------------
def _gaussian_posterior(n_samples, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.rand(6, 1, 16, 16, generator=g, dtype=torch.float64)
    sd = 0.02 + 0.1 * torch.rand(6, 1, 16, 16, generator=g, dtype=torch.float64)
    truth = mu + sd * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    samples = mu[:, None] + spread * sd[:, None] * torch.randn(6, n_samples, 1, 16, 16, generator=g,
                                                               dtype=torch.float64)
    return samples, truth, sd


def test_calibration_of_an_exact_posterior_sampler():
    samples, truth, sd = _gaussian_posterior(200)
    cal = calibration(samples, truth)
    assert float(cal["coverage90"].mean()) == pytest.approx(0.9, abs=0.03)
    ratio = dataset_mse_ratio(cal["mse_samples"].mean(), cal["mse_mean"].mean(), 200)
    assert ratio == pytest.approx(2.0, abs=0.15)
    mean, std = posterior_stats(samples)
    assert torch.allclose(std, sd, rtol=0.2)


def test_calibration_flags_collapsed_and_overdispersed_samplers():
    few, truth, _ = _gaussian_posterior(4)
    ok = calibration(few, truth)  # the N/(N+1) correction keeps the target at 2 for small N
    assert float(ok["mse_samples"].mean() / ok["mse_mean"].mean() * 5 / 4) == pytest.approx(2.0, abs=0.25)
    collapsed, truth, _ = _gaussian_posterior(50, spread=0.01)
    cal = calibration(collapsed, truth)
    assert float(cal["coverage90"].mean()) < 0.1 and float(cal["mse_ratio"].mean()) < 1.1
    wide, truth, _ = _gaussian_posterior(50, spread=3.0)
    cal = calibration(wide, truth)
    assert float(cal["coverage90"].mean()) > 0.99 and float(cal["mse_ratio"].mean()) > 4
    with pytest.raises(ValueError, match="N>=2"):
        calibration(few[:, :1], truth)


def test_ssim_window_shrinks_for_tiny_images():
    x, _ = images(2, 9, size=4, channels=1)
    vals = ImageMetrics(fid=False, kid=False, lpips=False).per_image(x, x)
    assert torch.allclose(vals["ssim"], torch.ones(2), atol=1e-5)


def test_evaluation_fresh_and_read_back_paths_agree():
    """A resumed run feeds finished keys from their PNGs and table rows; the data-set values
    must equal those of the run that computed them fresh."""
    from types import SimpleNamespace

    from lit_ip.metrics.evaluation import Evaluation, as_png, std_image
    from lit_ip.operators.noise import GaussianNoise

    class Half(torch.nn.Module):  # a toy operator: keep the left half of the image
        def forward(self, x):
            return x[..., :8]

    spec = SimpleNamespace(operator=SimpleNamespace(bind=lambda idx, seed: Half()), noise=GaussianNoise(0.05))
    fresh, reread = (Evaluation(backbone=tiny_backbone(5), kid_subsets=3, kid_subset_size=4) for _ in range(2))
    for ev in (fresh, reread):
        torch.manual_seed(0)  # the same random LPIPS heads (real runs load them from a file)
        ev.setup({"half": ["m"]}, num_samples=3)
    g = torch.Generator().manual_seed(0)
    for i in range(5):
        gt = torch.rand(3, 16, 16, generator=g, dtype=F32)
        samples = (gt + 0.1 * torch.randn(3, 3, 16, 16, generator=g, dtype=F32)).clamp(0, 1)
        y = gt[..., :8] + 0.05 * torch.randn(3, 16, 8, generator=g, dtype=F32)
        vals = fresh.row_values("half", "m", samples, gt, y, i, spec, seed=0)
        assert set(vals) == {("m", 0), ("m", 1), ("m", 2), ("m", "mean")}
        assert 0.5 < vals[("m", 0)]["consistency"] < 5 and 0 <= vals[("m", "mean")]["coverage90"] <= 1
        rows = [dict(task="half", method="m", sample=s, **v) for (_, s), v in vals.items()]
        reread.update_from_rows("half", "m", as_png(samples[0]), as_png(gt), i, json_roundtrip(rows))
        assert torch.allclose(std_image(samples), (2 * samples.std(0)).clamp(0, 1))
    a, b = fresh.compute()[("half", "m")], reread.compute()[("half", "m")]
    assert set(a) >= {"lpips", "fid", "kid_mean", "consistency", "coverage90", "mse_ratio"}
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-9), k
    assert set(fresh.columns) == {"lpips", "consistency", "residual_rms", "coverage90", "mse_samples",
                                  "mse_mean", "mse_ratio"}


def json_roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))
