"""Trivial estimates (lit_ip.metrics.baselines) and their place in the writer's outputs."""
from __future__ import annotations

import pytest
import torch

from lit_ip.metrics.baselines import best_baselines, trivial_estimate, trivial_kind
from lit_ip.operators.blur import GaussianBlur
from lit_ip.operators.colorization import Colorization
from lit_ip.operators.identity import Identity
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.resize import AveragePoolSR

SHAPE = (3, 8, 8)


def test_measurement_is_the_trivial_estimate_where_it_is_an_image():
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(0))
    for op in (Identity(SHAPE), GaussianBlur(sigma=1.0, kernel_size=5, in_shape=SHAPE),
               RandomInpainting(0.5, SHAPE).bind([0, 1], 0)):
        y = op(x)
        assert trivial_kind(op, SHAPE) == "measurement"
        assert torch.equal(trivial_estimate(op, y), y)


@pytest.mark.parametrize("weights", [(0.299, 0.587, 0.114), (0.5, 1.0, 0.25)])
def test_colorization_gives_the_grey_image_consistent_with_y(weights):
    op = Colorization(weights, in_shape=SHAPE)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    y = op(x)
    g = trivial_estimate(op, y)
    assert trivial_kind(op, SHAPE) == "luminance" and g.shape == x.shape
    torch.testing.assert_close(g[:, 0], g[:, 1]) and torch.testing.assert_close(g[:, 0], g[:, 2])
    torch.testing.assert_close(op(g), y)  # consistent with the measurement
    # the grey image of a grey picture is the picture itself
    grey = x[:, :1].expand_as(x).contiguous()
    torch.testing.assert_close(trivial_estimate(op, op(grey)), grey)


def test_no_trivial_estimate_for_super_resolution():
    op = AveragePoolSR(2, in_shape=SHAPE)
    assert trivial_kind(op, SHAPE) is None
    assert trivial_estimate(op, op(torch.rand(1, *SHAPE))) is None


def test_best_baseline_is_the_higher_psnr():
    rows = [{"task": "deblur", "method": "pinv (baseline)", "psnr": 4.3, "ssim": 0.1},
            {"task": "deblur", "method": "trivial (baseline)", "psnr": 26.2, "ssim": 0.8},
            {"task": "sr", "method": "pinv (baseline)", "psnr": 24.0, "ssim": 0.7},
            {"task": "sr", "method": "dps", "psnr": 30.0, "ssim": 0.9}]
    best = best_baselines(rows, {"pinv (baseline)": "pinv", "trivial (baseline)": "trivial"})
    assert best == {"deblur": {"method": "trivial", "psnr": 26.2, "ssim": 0.8},
                    "sr": {"method": "pinv", "psnr": 24.0, "ssim": 0.7}}
