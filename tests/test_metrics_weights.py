"""Paper-comparable feature metrics from local weight files: Inception-v3 FID / KID, LPIPS-VGG,
weight lookup in $LIT_IP_WEIGHTS and $TORCH_HOME/hub/checkpoints. The weight files are random
networks of the real architectures (same keys and shapes) written by the tests; nothing downloads."""
from __future__ import annotations

import hashlib

import pytest
import torch

from lit_ip.metrics.backbones import VGG16Features, find_weights
from lit_ip.metrics.evaluation import Evaluation
from lit_ip.metrics.image import ImageMetrics
from lit_ip.metrics.inception import INCEPTION_FILES, InceptionV3Features, resize_bilinear_tf1

#: sha256 of the sorted "key:[shape]" lines of torch-fidelity's FeatureExtractorInceptionV3
#: state dict (0.4.0, 566 entries incl. BatchNorm counters), the layout of its weight file
TORCH_FIDELITY_LAYOUT = "cd36bcf4883935e5bc430934132957704fa70f7dfec1eeb2fcfc3288bc5075c9"
#: torchvision vgg16 ``features`` convolutions: index -> (out, in)
VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
               14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512),
               26: (512, 512), 28: (512, 512)}


def layout_hash(state) -> str:
    lines = "\n".join(f"{k}:{list(v.shape)}" for k, v in sorted(state.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def inception_state():
    torch.manual_seed(0)
    net = InceptionV3Features()
    for m in net.modules():  # He init (features O(1) through the depth); BN statistics as in a trained file
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net.state_dict()


def images(n, seed, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_inception_has_torch_fidelity_layout(inception_state):
    assert len(inception_state) == 566
    assert layout_hash(inception_state) == TORCH_FIDELITY_LAYOUT


def test_tf1_bilinear_resize_rule():
    """TF1 resize_bilinear(align_corners=False): src = dst * in / out (no half-pixel shift)."""
    x = torch.tensor([[[[0.0, 1.0, 4.0]]]]).expand(1, 1, 3, 3)
    up = resize_bilinear_tf1(x, 6)
    assert torch.allclose(up[0, 0, 0], torch.tensor([0.0, 0.5, 1.0, 2.5, 4.0, 4.0]))
    assert torch.allclose(resize_bilinear_tf1(torch.arange(16.0).view(1, 1, 4, 4), 2)[0, 0],
                          torch.tensor([[0.0, 2.0], [8.0, 10.0]]))


def test_inception_is_the_default_from_torch_hub_folder(tmp_path, monkeypatch, inception_state):
    monkeypatch.setenv("LIT_IP_WEIGHTS", str(tmp_path / "ours"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(inception_state, hub / INCEPTION_FILES[0])
    assert find_weights(INCEPTION_FILES)[0] == hub / INCEPTION_FILES[0]
    m = ImageMetrics(lpips=False, lpips_vgg=False, kid_subsets=2, kid_subset_size=3)
    assert m.feature_name == "inception" and isinstance(m.fid.inception, InceptionV3Features)
    net = m.fid.inception
    assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, inception_state["Mixed_7c.branch_pool.conv.weight"])
    assert torch.equal(net.Conv2d_1a_3x3.bn.running_var, inception_state["Conv2d_1a_3x3.bn.running_var"])
    net.SIZE = 75  # the smallest input Inception takes: same network, 16x less work for the test
    a, b = images(3, 1), images(3, 2) * 0.3
    feats = net(a)
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()
    m.update(a, a, torch.arange(3))
    same = m.compute()["fid"]
    m.reset()
    m.update(b, a, torch.arange(3))
    other = m.compute()
    assert abs(same) < 1e-2 * other["fid"] and other["fid"] > 0 and "kid_mean" in other


def test_inception_file_loads_strictly_and_required_mode_names_the_places(tmp_path, monkeypatch, inception_state):
    monkeypatch.setenv("LIT_IP_WEIGHTS", str(tmp_path / "ours"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match="hub/checkpoints"):
        ImageMetrics(lpips=False, lpips_vgg=False, fid_features="inception")
    bad = dict(inception_state)
    bad.pop("fc.bias")
    (tmp_path / "ours").mkdir()
    torch.save(bad, tmp_path / "ours" / INCEPTION_FILES[1])
    with pytest.raises(ValueError, match="fc.bias"):
        ImageMetrics(lpips=False, lpips_vgg=False)


def test_alexnet_fallback_is_labelled(tmp_path, monkeypatch):
    from test_metrics import tiny_backbone

    monkeypatch.setenv("LIT_IP_WEIGHTS", str(tmp_path / "ours"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ev = Evaluation(backbone=tiny_backbone(), lpips_vgg=False)
    ev.setup({"t": ["m"]}, 1)
    assert ev.feature_name == "alexnet" and "NOT comparable" in ev.describe()


def test_lpips_vgg_beside_alexnet_from_torchvision_file(tmp_path, monkeypatch):
    from test_metrics import tiny_backbone

    torch.manual_seed(1)
    net = VGG16Features()
    assert {int(k.split(".")[1]): tuple(v.shape[:2]) for k, v in net.state_dict().items()
            if k.endswith("weight")} == VGG16_CONVS
    for conv in net.features:  # He init: features O(1) through 13 layers
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(conv.weight)
    state = {**net.state_dict(), "classifier.0.weight": torch.zeros(4, 4), "classifier.0.bias": torch.zeros(4)}
    (tmp_path / "ours").mkdir()
    torch.save(state, tmp_path / "ours" / "vgg16-397923af.pth")
    monkeypatch.setenv("LIT_IP_WEIGHTS", str(tmp_path / "ours"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    m = ImageMetrics(backbone=tiny_backbone(), fid=False, kid=False)
    assert m.lpips is not None and m.lpips_vgg is not None and "lpips_vgg" in m.names
    assert torch.equal(m.lpips_vgg.backbone.features[28].weight, state["features.28.weight"])
    a, b = images(2, 3, size=32), images(2, 4, size=32)
    d = m.per_image(a, b)
    assert d["lpips_vgg"].shape == (2,) and (d["lpips_vgg"] > 0).all()
    assert torch.allclose(m.per_image(a, a)["lpips_vgg"], torch.zeros(2), atol=1e-6)
    nearer = m.per_image(a, (a + 0.05 * (b - a)))["lpips_vgg"]
    assert (nearer < d["lpips_vgg"]).all()
    ev = Evaluation(backbone=tiny_backbone(), fid=False, kid=False)
    ev.setup({"t": ["m"]}, 1)
    assert "lpips_vgg" in ev.columns and "LPIPS-VGG" in ev.describe()
