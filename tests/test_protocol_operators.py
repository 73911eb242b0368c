"""Operators of the published protocols: linear ones (adjoint, A pinv A = A), motion kernels,
JPEG, phase retrieval, quantisation, HDR, compositions and Poisson noise."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lit_ip.methods.dps import DPS
from lit_ip.methods.pigdm import PiGDM
from lit_ip.operators.compose import Compose
from lit_ip.operators.hdr import HDRClip
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.jpeg import JPEG
from lit_ip.operators.noise import PoissonNoise
from lit_ip.operators.phase_retrieval import PhaseRetrieval
from lit_ip.operators.protocol import DPSGaussianBlur, KernelBlur, MotionBlur, motion_kernel, truncated_gaussian
from lit_ip.operators.quantize import Quantize
from lit_ip.operators.resize import BicubicSR
from lit_ip.rng import SampleRNG


@pytest.fixture(scope="module")
def photo():
    """A 64x64 natural RGB crop in [0, 1] (skimage's astronaut, shipped with scikit-image)."""
    from skimage import data
    from skimage.transform import resize
    img = resize(data.astronaut()[:256, 128:384], (64, 64), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# --- linear protocol operators ------------------------------------------------------------

LINEAR = {
    "sr4_bicubic": lambda: BicubicSR(4, (3, 64, 64)),
    "gaussian_61": lambda: DPSGaussianBlur((3, 64, 64)),
    "gaussian_13": lambda: DPSGaussianBlur((3, 64, 64), kernel_size=13, std=2.0),
    "motion_9": lambda: MotionBlur((3, 32, 32), kernel_size=9).bind([4, 11], seed=3),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_protocol_operators_adjoint_and_pinv(name):
    op = LINEAR[name]().double()
    shape = (2, *op.in_shape)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = torch.randn(op(x).shape, generator=g, dtype=torch.float64)
    lhs, rhs = (op(x) * y).sum(), (x * op.adjoint(y)).sum()
    assert abs(float(lhs - rhs)) < 1e-9 * float(lhs.abs() + rhs.abs())
    tol = 2e-3 if name.startswith("motion") else 1e-6      # motion blur: CG; others: SVD (float32 factors)
    assert _rel(op(op.pinv(op(x))), op(x)) < tol


def test_bicubic_sr_matches_pil_bicubic_away_from_the_border(photo):
    from PIL import Image
    x = photo[0, 0]
    pil = Image.fromarray(x.numpy().astype(np.float32), mode="F").resize((16, 16), Image.BICUBIC)
    ref = torch.from_numpy(np.array(pil))
    ours = BicubicSR(4, (1, 64, 64))(x[None, None])[0, 0]
    # same Keys kernel (a = -0.5), sampling positions and antialiasing width as MATLAB imresize;
    # PIL renormalises at the border where MATLAB / DPS mirror, so compare the interior
    assert torch.allclose(ours[2:-2, 2:-2], ref[2:-2, 2:-2], atol=1e-5)


def test_dps_gaussian_kernel_is_scipy_truncated_gaussian():
    from scipy.ndimage import gaussian_filter
    delta = np.zeros((61, 61))
    delta[30, 30] = 1
    ref = torch.from_numpy(gaussian_filter(delta, sigma=3.0))
    k = truncated_gaussian(61, 3.0)
    assert torch.allclose(torch.outer(k, k), ref, atol=1e-12)
    assert int((k > 0).sum()) == 25


def test_kernel_blur_is_a_correlation_with_padding(photo):
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1
    assert torch.allclose(KernelBlur(delta, (3, 64, 64))(photo), photo)
    shifted = torch.zeros(5, 5)
    shifted[2, 3] = 1                               # y[i, j] = x[i, j + 1] (correlation)
    y = KernelBlur(shifted, (3, 64, 64), boundary="zero")(photo)
    assert torch.allclose(y[..., :-1], photo[..., 1:]) and torch.all(y[..., -1] == 0)
    with pytest.raises(ValueError, match="larger"):
        KernelBlur(torch.ones(9, 9) / 81, (3, 4, 4))


# --- motion kernels --------------------------------------------------------------------------

def test_motion_kernels_are_seeded_per_sample():
    fam = MotionBlur((3, 64, 64), kernel_size=61, intensity=0.5)
    a = fam.kernels_for([3, 7], seed=1)
    assert a.shape == (2, 61, 61)
    assert torch.equal(a, fam.kernels_for([3, 7], seed=1))
    assert torch.equal(a[0], fam.kernels_for([7, 3], seed=1)[1])      # batch order does not matter
    assert torch.equal(a[0], fam.kernels_for([3], seed=1)[0])         # nor batch size
    assert not torch.allclose(a[0], a[1])
    assert not torch.allclose(a[0], fam.kernels_for([3], seed=2)[0])
    assert (a >= 0).all() and torch.allclose(a.sum((1, 2)), torch.ones(2))
    bound = fam.bind([3, 7], seed=1)
    assert torch.equal(bound.kernels, a)
    with pytest.raises(RuntimeError, match="bind"):
        fam(torch.zeros(1, 3, 64, 64))


def test_motion_kernel_shape_properties():
    coords = torch.arange(61, dtype=torch.float64) - 30
    spreads = []
    for intensity in (0.0, 0.5):
        for s in range(4):
            k = motion_kernel(61, intensity, torch.Generator().manual_seed(s), dtype=torch.float64)
            my, mx = (k.sum(1) * coords).sum(), (k.sum(0) * coords).sum()
            assert abs(float(my)) < 1.0 and abs(float(mx)) < 1.0    # centred
            cy, cx = coords[:, None] - my, coords[None, :] - mx
            cov = torch.stack([torch.stack([(k * cy * cy).sum(), (k * cy * cx).sum()]),
                               torch.stack([(k * cx * cy).sum(), (k * cx * cx).sum()])])
            ev = torch.linalg.eigvalsh(cov)
            assert ev[1] > 4.0                                      # a real blur, not a dot
            spreads.append(float(ev[0] / ev[1]))
    assert max(spreads[:4]) < 0.01     # intensity 0: a straight segment
    assert max(spreads[4:]) > 0.01     # intensity 0.5: the path bends


# --- JPEG ----------------------------------------------------------------------------------

@pytest.mark.parametrize("output", ["image", "coefficients"])
def test_jpeg_h_dagger_is_a_generalised_inverse(photo, output):
    op = JPEG(10, (3, 64, 64), output=output)
    y = op(photo)
    again = op(op.h_dagger(y))
    assert _rel(again, y) < 0.02
    assert y.shape == ((1, 3, 64, 64) if output == "image" else (1, 6, 32, 32))
    assert torch.allclose(op.h_dagger(op(photo)), JPEG(10, (3, 64, 64))(photo), atol=1.5 / 255)


def test_jpeg_error_decreases_with_quality_and_matches_libjpeg(photo):
    from PIL import Image
    errors = [float(((JPEG(q, (3, 64, 64))(photo) - photo) ** 2).mean()) for q in (5, 10, 20, 50, 90)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    img = (photo[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    for q in (10, 50):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        ref = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1)[None].float() / 255
        ours = JPEG(q, (3, 64, 64))(photo)
        psnr = -10 * torch.log10(((ours - ref) ** 2).mean())
        assert psnr > 33                 # same codec up to libjpeg's upsampling and integer DCT


def test_jpeg_odd_sizes_and_method_compatibility(photo):
    op = JPEG(20, (3, 40, 40))
    x = photo[..., :40, :40]
    assert op(x).shape == x.shape and _rel(op(x), x) < 0.2
    assert not op.linear and not op.differentiable and op.has_h_dagger
    with pytest.raises(ValueError, match="differentiable"):
        DPS(num_steps=10).check_operator(op)
    PiGDM(num_steps=10).check_operator(op)


# --- phase retrieval ------------------------------------------------------------------------

def test_phase_retrieval_invariances_and_parseval():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 3, 32, 32)
    x[..., 8:24, 6:22] = torch.rand(1, 3, 16, 16, generator=g)
    op = PhaseRetrieval(oversample=2.0)
    y = op(x)
    assert y.shape == (1, 3, 64, 64)
    assert torch.allclose(y, op(torch.roll(x, (5, -4), dims=(-2, -1))), atol=1e-5)   # translation
    assert torch.allclose(y, op(torch.flip(x, (-2, -1))), atol=1e-5)                 # x(n) -> x(-n)
    pm = PhaseRetrieval(oversample=2.0, data_range=(-1.0, 1.0))
    xs = torch.rand(1, 3, 32, 32, generator=g)
    assert torch.allclose(pm(xs), pm(1 - xs), atol=1e-5)       # global sign flip z -> -z
    assert torch.allclose((y ** 2).sum((-2, -1)), (x ** 2).sum((-2, -1)), rtol=1e-5)   # Parseval
    assert not torch.allclose(y, op(torch.rand(1, 3, 32, 32, generator=g)), atol=1e-2)
    assert PhaseRetrieval(pad=64, data_range=(-1, 1)).output_shape((3, 256, 256)) == (3, 384, 384)


def test_phase_retrieval_is_differentiable_without_h_dagger():
    op = PhaseRetrieval(oversample=1.5)
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    op(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    DPS(num_steps=10).check_operator(op)
    with pytest.raises(ValueError, match="h_dagger"):
        PiGDM(num_steps=10).check_operator(op)


# --- quantisation, HDR, compositions ---------------------------------------------------------

def test_quantize_and_hdr_consistency(photo):
    q = Quantize(bits=3)
    y = q(photo)
    assert torch.equal(q(q.h_dagger(y)), y)
    assert len(torch.unique(y)) <= 8 and float((y - photo).abs().max()) <= 0.5 / 7 + 1e-6
    assert not q.differentiable
    h = HDRClip(scale=2.0)
    y = h(photo)
    assert torch.allclose(h(h.h_dagger(y)), y, atol=1e-6)
    inside = (y > 0) & (y < 1)
    assert inside.float().mean() > 0.3 and torch.allclose(h.h_dagger(y)[inside], photo[inside], atol=1e-6)
    assert y.min() >= 0 and y.max() <= 1 and (y == 1).any()
    DPS(num_steps=10).check_operator(h)


def test_sr_jpeg_inpainting_composition(photo):
    op = Compose(RandomInpainting(0.3, (3, 16, 16)), Compose(JPEG(20, (3, 16, 16)), BicubicSR(4, (3, 64, 64))))
    assert not op.linear and not op.differentiable and op.has_h_dagger
    bound = op.bind([0, 1], seed=5)
    x = photo.repeat(2, 1, 1, 1)
    y = bound(x)
    assert y.shape == (2, 3, 16, 16)
    assert torch.equal(y, op.bind([0, 1], seed=5)(x)) and not torch.equal(y[0], y[1])
    assert bound.h_dagger(y).shape == x.shape
    PiGDM(num_steps=10).check_operator(bound)
    with pytest.raises(ValueError, match="differentiable"):
        DPS(num_steps=10).check_operator(bound)


# --- Poisson noise ---------------------------------------------------------------------------

def test_poisson_noise_mean_variance_and_determinism():
    clean = torch.full((4, 1, 64, 64), 0.3)
    clean[:, :, :32] = 0.8
    noise = PoissonNoise(rate=50.0)
    y = noise.sample(clean, SampleRNG.for_indices(range(4), seed=0, stream=1))
    for value in (0.3, 0.8):
        sel = y[clean == value]
        n = sel.numel()
        assert abs(float(sel.mean()) - value) < 4 * (value / 50 / n) ** 0.5
        assert abs(float(sel.var()) / (value / 50) - 1) < 0.1
    assert torch.allclose(y * 50, (y * 50).round(), atol=1e-4)             # counts / rate
    again = noise.sample(clean[2:3], SampleRNG.for_indices([2], seed=0, stream=1))
    assert torch.equal(again[0], y[2])
    with pytest.raises(ValueError, match="non-negative"):
        noise.sample(clean - 1, SampleRNG.for_indices(range(4), seed=0, stream=1))
