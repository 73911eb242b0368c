"""Compare lit_ip's FID Inception-v3 with torch-fidelity's on the same (random) weights.

torch-fidelity imports torchvision at package level, which does not load against a CPU torch, so
its two modules are loaded from a folder given on the command line without running its __init__:

    pip install --no-deps --target /tmp/tf torch-fidelity
    python tools/check_inception_vs_torch_fidelity.py /tmp/tf

Prints the largest absolute and the relative difference of the 2048-d features of uint8 images.
"""
from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import torch

from lit_ip.metrics.inception import InceptionV3Features


def main(argv=None) -> float:
    target = Path((argv or sys.argv[1:])[0])
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [str(target / "torch_fidelity")]
    sys.modules["torch_fidelity"] = pkg
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.manual_seed(0)
    net = InceptionV3Features()
    for m in net.modules():  # He init and non-trivial BN so that features are O(1) and differ
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "inception.pth")
        torch.save(net.state_dict(), path)
        ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
        ours = InceptionV3Features(weights=path)
    x = (torch.rand(2, 3, 40, 48) * 255).round().to(torch.uint8)
    with torch.no_grad():
        a, b = ref(x)[0], ours(x.float() / 255)
    rel = float((a - b).norm() / a.norm())
    print(f"max abs diff {float((a - b).abs().max()):.3g} (features up to {float(a.abs().max()):.3g}), relative {rel:.3g}")
    return rel


if __name__ == "__main__":
    main()
