"""Linear operators: adjointness, pseudo-inverses, functional SVDs, per-sample masks,
composition, shape errors. Every registry operator is checked in float64."""
import pytest
import torch
import torch.nn.functional as F

from lit_ip.operators import (OPERATORS, AveragePoolSR, BicubicSR, BoxInpainting, Colorization, Compose,
                              CompressedSensing, GaussianBlur, Identity, MaskInpainting, Operator,
                              RandomInpainting, UniformBlur, dense_matrix, make_operator)

SHAPE = (3, 8, 8)
NAMES = sorted(OPERATORS)
B = 3


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


SHAPES = [SHAPE, (2, 4, 6)]  # a non-square shape catches row/column mix-ups


def bound(name, indices=tuple(range(B)), seed=7, shape=SHAPE):
    return make_operator(name, shape).bind(list(indices), seed)


def out_shape(op):
    return op.output_shape(op.in_shape)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def close(a, b, tol=1e-9):
    """Relative closeness per batch (scale of b)."""
    scale = b.abs().max().clamp_min(1.0)
    return (a - b).abs().max().item() <= tol * scale.item()


SVD_NAMES = [n for n in NAMES if make_operator(n, SHAPE).has_svd]
CG_TOL = 1e-6  # operators without an SVD use the conjugate-gradient pinv


def pinv_tol(op):
    return 1e-9 if op.has_svd else CG_TOL


# --- generic linear-operator properties --------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_adjoint(name):
    op = bound(name)
    x, y = rand(B, *SHAPE, seed=1), rand(B, *out_shape(op), seed=2)
    lhs = (op(x) * y).flatten(1).sum(1)
    rhs = (x * op.adjoint(y)).flatten(1).sum(1)
    assert close(lhs, rhs, 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_autograd_vjp_is_adjoint(name):
    op = bound(name)
    x = rand(B, *SHAPE, seed=3).requires_grad_(True)
    y = rand(B, *out_shape(op), seed=4)
    (op(x) * y).sum().backward()
    assert op.differentiable and close(x.grad, op.adjoint(y), 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_pinv_is_consistent_and_minimum_norm(name):
    op = bound(name)
    x = rand(B, *SHAPE, seed=5)
    y = op(x)
    assert close(op(op.pinv(y)), y, pinv_tol(op))
    # minimum norm: pinv(y) lies in the row space, so pinv(A pinv(y)) = pinv(y) ...
    z = op.pinv(rand(B, *out_shape(op), seed=6))
    assert close(op.pinv(op(z)), z, pinv_tol(op))
    # ... and it is shorter than x, which reproduces the same measurement
    assert ((op.pinv(y) ** 2).flatten(1).sum(1) <= (x ** 2).flatten(1).sum(1) + 1e-9).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_agrees_with_dense_matrix(name, shape):
    op = bound(name, indices=(5,), shape=shape)  # one sample: its mask broadcasts over the basis batch
    M = dense_matrix(op, shape)
    assert M.shape == (torch.Size(out_shape(op)).numel(), torch.Size(shape).numel())
    x, y = rand(1, *shape, seed=7), rand(1, *out_shape(op), seed=8)
    assert close(op.adjoint(y).flatten(), M.T @ y.flatten(), 1e-10)
    assert close(op.pinv(y).flatten(), torch.linalg.pinv(M) @ y.flatten(), pinv_tol(op) * 100)
    assert close(op(x).flatten(), M @ x.flatten(), 1e-12)


# --- functional SVD ----------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SVD_NAMES)
def test_svd_consistency(name, shape):
    op = bound(name, shape=shape)
    n, m = torch.Size(shape).numel(), torch.Size(out_shape(op)).numel()
    s = op.singular_values()
    assert s.shape[-1] == m and s.shape[0] in (1, B) and (s >= 0).all()
    x = rand(B, *shape, seed=9)
    assert close(op.u(s * op.vt(x)[:, :m]), op(x), 1e-10)
    z_n, z_m = rand(B, n, seed=10), rand(B, m, seed=11)
    y = rand(B, *out_shape(op), seed=12)
    assert close(op.v(op.vt(x)), x) and close(op.vt(op.v(z_n)), z_n)
    assert close(op.ut(op.u(z_m)), z_m) and close(op.u(op.ut(y)), y)
    assert close(op.vt(x).norm(dim=1), x.flatten(1).norm(dim=1))  # orthonormal V


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SVD_NAMES)
def test_singular_values_match_dense_svd(name, shape):
    op = bound(name, indices=(2,), shape=shape)
    M = dense_matrix(op, shape)
    ours = op.singular_values()[0].sort(descending=True).values
    ref = torch.linalg.svdvals(M)
    assert ours.shape == ref.shape and close(ours, ref, 1e-10)


# --- shape errors -----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_raise_clear_errors(name):
    op = bound(name)
    with pytest.raises(ValueError, match="shape"):
        op(torch.zeros(B, 3, 8, 6))
    with pytest.raises(ValueError, match="shape"):
        op.adjoint(torch.zeros(B, 5))
    if op.has_svd:
        with pytest.raises(ValueError, match="shape"):
            op.vt(torch.zeros(B, 2, 8, 8))


def test_per_sample_masks_need_matching_batch():
    op = RandomInpainting(0.5, SHAPE).bind([0, 1, 2])
    with pytest.raises(ValueError, match="bind"):
        op(torch.zeros(2, *SHAPE))


@pytest.mark.parametrize("family", [RandomInpainting(0.3, SHAPE), BoxInpainting(3, SHAPE)])
def test_unbound_family_raises(family):
    with pytest.raises(RuntimeError, match="bind"):
        family(torch.zeros(1, *SHAPE))
    with pytest.raises(RuntimeError, match="bind"):
        family.singular_values()
    assert family.output_shape(SHAPE) == SHAPE


def test_constructor_errors():
    with pytest.raises(ValueError, match="factor"):
        AveragePoolSR(3, SHAPE)
    with pytest.raises(ValueError, match="factor"):
        BicubicSR(0, SHAPE)
    with pytest.raises(ValueError, match="odd"):
        UniformBlur(4, SHAPE)
    with pytest.raises(ValueError, match="boundary"):
        GaussianBlur(1.0, 5, SHAPE, boundary="mirror")
    with pytest.raises(ValueError, match="C = 3"):
        Colorization(in_shape=(4, 8, 8))
    with pytest.raises(ValueError, match="fraction_missing"):
        RandomInpainting(1.0, SHAPE)
    with pytest.raises(ValueError, match="box_size"):
        BoxInpainting(9, SHAPE)
    with pytest.raises(ValueError, match="0 \\(missing\\) and 1"):
        MaskInpainting(torch.full((1, 1, 8, 8), 0.5), SHAPE)
    with pytest.raises(ValueError, match="limit"):
        CompressedSensing(10, (3, 64, 64))
    with pytest.raises(ValueError, match="outputs shape"):
        Compose(AveragePoolSR(2, SHAPE), AveragePoolSR(2, SHAPE))


# --- per-sample masks -------------------------------------------------------

@pytest.mark.parametrize("family", [RandomInpainting(0.5, (1, 16, 16)), BoxInpainting(4, (1, 16, 16))])
def test_masks_depend_only_on_index_and_seed(family):
    a = family.bind([0, 1, 2, 3], seed=11).mask
    b = family.bind([3, 1], seed=11).mask
    assert torch.equal(a[3], b[0]) and torch.equal(a[1], b[1])
    assert all(not torch.equal(a[i], a[j]) for i in range(4) for j in range(i))
    assert not torch.equal(a[0], family.bind([0], seed=12).mask[0])


def test_mask_contents():
    rnd = RandomInpainting(0.25, (3, 16, 16)).bind(range(4))
    assert rnd.mask.shape == (4, 1, 16, 16)
    assert torch.allclose(1 - rnd.observed_fraction(), torch.full((4,), 0.25))
    box = BoxInpainting([4, 6], (3, 16, 16)).bind(range(4))
    assert ((1 - box.mask).flatten(1).sum(1) == 24).all()
    centred = BoxInpainting(4, (3, 16, 16), random_position=False).bind([0, 9]).mask
    assert torch.equal(centred[0], centred[1]) and centred[0, 0, 6:10, 6:10].sum() == 0


def test_compose_binds_both_parts_per_index():
    fam = Compose(RandomInpainting(0.5, SHAPE), RandomInpainting(0.5, SHAPE))
    a, b = fam.bind([0, 1, 2], seed=3), fam.bind([2], seed=3)
    assert isinstance(a.inner, MaskInpainting) and isinstance(a.outer, MaskInpainting)
    assert torch.equal(a.inner.mask[2], b.inner.mask[0]) and torch.equal(a.outer.mask[2], b.outer.mask[0])
    assert not torch.equal(a.inner.mask, a.outer.mask)  # the two parts draw independently
    fixed = make_operator("compose_blur_sr", SHAPE)
    assert fixed.bind([0, 1]) is fixed


# --- operator-specific facts --------------------------------------------------

@pytest.mark.parametrize("op", [AveragePoolSR(2, SHAPE), BicubicSR(2, SHAPE), GaussianBlur(1.0, 5, SHAPE),
                                UniformBlur(3, SHAPE), Colorization(in_shape=SHAPE)])
def test_normalised_operators_keep_constants(op):
    c = torch.full((1, *SHAPE), 0.37)
    assert torch.allclose(op(c), torch.full_like(op(c), 0.37))


def test_reference_implementations():
    x = rand(2, 3, 24, 24, seed=13)
    assert torch.allclose(AveragePoolSR(4, (3, 24, 24))(x), F.avg_pool2d(x, 4))
    g = GaussianBlur(1.5, 7, (3, 24, 24))
    k = torch.outer(g.kernel, g.kernel).expand(3, 1, 7, 7)
    assert torch.allclose(g(x), F.conv2d(F.pad(x, (3,) * 4, mode="reflect"), k, groups=3))
    z = UniformBlur(3, (3, 24, 24), boundary="zero")
    assert torch.allclose(z(x), F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True))
    w = torch.tensor([0.299, 0.587, 0.114])
    assert torch.allclose(Colorization(in_shape=(3, 24, 24))(x), (x * w[:, None, None]).sum(1, keepdim=True))
    # away from the border, bicubic matches PyTorch's antialiased Keys (a = -0.5) resize
    ref = F.interpolate(x, scale_factor=1 / 3, mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(BicubicSR(3, (3, 24, 24))(x)[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2])


def test_compressed_sensing_matrix_is_seeded():
    a, b = CompressedSensing(20, SHAPE, seed=1), CompressedSensing(20, SHAPE, seed=1)
    assert torch.equal(a.matrix, b.matrix) and not torch.equal(a.matrix, CompressedSensing(20, SHAPE, 2).matrix)
    assert abs(a.matrix.pow(2).sum(0).mean().item() - 1) < 0.2  # columns have unit norm on average


def test_identity_and_float32_inputs():
    assert torch.equal(dense_matrix(Identity(SHAPE), SHAPE), torch.eye(192))
    for name in NAMES:
        op = bound(name)
        x = rand(B, *SHAPE, seed=14)
        y32 = op(x.float())
        assert y32.dtype == torch.float32 and torch.allclose(y32.double(), op(x), atol=1e-5)


# --- composition ------------------------------------------------------------

class Cube(Operator):
    """A nonlinear operator with an exact inverse as its h_dagger (test helper)."""

    def forward(self, x):
        return x ** 3

    def h_dagger(self, y):
        return y.sign() * y.abs() ** (1 / 3)


class Sign(Operator):
    differentiable = False

    def forward(self, x):
        return x.sign()


def test_compose_linear_properties():
    blur, pool = GaussianBlur(1.0, 5, SHAPE), AveragePoolSR(2, SHAPE)
    op = Compose(pool, blur)
    assert op.linear and op.differentiable and not op.has_svd and op.in_shape == SHAPE
    assert torch.allclose(dense_matrix(op, SHAPE), dense_matrix(pool, SHAPE) @ dense_matrix(blur, SHAPE))
    assert op.output_shape(SHAPE) == (3, 4, 4)


def test_compose_nonlinear_parts():
    op = Compose(AveragePoolSR(2, SHAPE), Cube(SHAPE))
    assert not op.linear and op.differentiable and op.has_h_dagger
    with pytest.raises(TypeError, match="not linear"):
        op.adjoint(torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError, match="not linear"):
        op.pinv(torch.zeros(1, 3, 4, 4))
    y = op(rand(2, *SHAPE, seed=15))
    assert torch.allclose(op(op.h_dagger(y)), y)  # PiGDM's composed h_dagger is consistent here
    rough = Compose(Sign(SHAPE), Identity(SHAPE))
    assert not rough.differentiable and not rough.has_h_dagger
    with pytest.raises(NotImplementedError, match="h_dagger"):
        rough.h_dagger(torch.zeros(1, *SHAPE))


# --- configs -----------------------------------------------------------------

def test_operators_build_from_plain_yaml_config():
    from jsonargparse import ArgumentParser
    parser = ArgumentParser()
    parser.add_argument("--op", type=Operator)
    cfg = parser.parse_string("""
op:
  class_path: lit_ip.operators.Compose
  init_args:
    outer:
      class_path: lit_ip.operators.AveragePoolSR
      init_args: {factor: 2, in_shape: [3, 8, 8]}
    inner:
      class_path: lit_ip.operators.GaussianBlur
      init_args: {sigma: 1.0, kernel_size: 5, in_shape: [3, 8, 8]}
""")
    op = parser.instantiate(cfg).op
    ref = make_operator("compose_blur_sr", SHAPE)
    x = rand(1, *SHAPE, seed=16)
    assert isinstance(op, Compose) and torch.allclose(op(x), ref(x))


# --- the linear solves methods share (prox_l2, gram_solve): closed form = definition -------------
def _dense_solution(op, z, y, rho):
    """``argmin ||y - A x||^2 + rho ||x - z||^2`` per sample from the dense matrix (rho > 0)."""
    A = dense_matrix(op, SHAPE)
    n = A.shape[1]
    lhs = A.T @ A + rho * torch.eye(n)
    rhs = (A.T @ y.flatten(1).T + rho * z.flatten(1).T)
    return torch.linalg.solve(lhs, rhs).T.reshape(z.shape)


@pytest.mark.parametrize("rho", [0.3, 4.0])
@pytest.mark.parametrize("name", NAMES)
def test_prox_l2_solves_the_proximal_problem(name, rho):
    op = bound(name, indices=[0])
    z, y = rand(1, *SHAPE, seed=3), rand(1, *out_shape(op), seed=4)
    ref = _dense_solution(op, z, y, rho)
    assert close(op.prox_l2(z, y, rho, iters=500, tol=1e-24), ref, 1e-6 if not op.has_svd else 1e-9)
    if op.has_svd:   # the closed form agrees with the generic conjugate-gradient solve
        from lit_ip.operators.base import LinearOperator
        cg = LinearOperator.prox_l2(op, z, y, rho, iters=500, tol=1e-24)
        assert close(cg, ref, 1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gram_solve_inverts_w_A_At_plus_c(name):
    op = bound(name, indices=[0])
    r = rand(1, *out_shape(op), seed=5)
    w, c = 0.7, 0.05
    u = op.gram_solve(r, w, c, iters=500, tol=1e-24)
    back = w * op(op.adjoint(u)) + c * u
    assert close(back, r, 1e-6 if not op.has_svd else 1e-9)
