"""Forward operators ``y = A(x)`` (noiseless part of a measurement).

Contract (see DESIGN.md):

* :class:`Operator` -- ``forward(x)``; declares ``linear`` and ``differentiable``;
  may offer a generalised pseudo-inverse :meth:`Operator.h_dagger` (PiGDM).
* :class:`LinearOperator` -- adds ``adjoint(y)`` and ``pinv(y)``.
* :class:`SVDOperator` -- a linear operator with a known SVD ``A = U diag(s) V^T``,
  exposed as functions over batches: ``vt(x) -> (B, n)``, ``v(z) -> x``,
  ``ut(y) -> (B, m)``, ``u(z) -> y`` and ``singular_values() -> (B or 1, m)``
  (``n`` = pixels of x, ``m`` = entries of y, zeros where the rank is short).
  ``A x = u(s * vt(x)[:, :m])``; ``forward``, ``adjoint`` and ``pinv`` follow.

Operators whose randomness (masks, kernels) is per sample are *families*:
:meth:`Operator.bind` returns the concrete operator for a batch of sample
indices, drawing from generators seeded by ``(seed, index)``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn


class Operator(nn.Module):
    """Base class of all forward operators.

    Args:
        in_shape: shape of one input image ``(C, H, W)``; ``None`` accepts any shape.
    """

    linear: bool = False
    differentiable: bool = True

    def __init__(self, in_shape: Optional[Sequence[int]] = None):
        super().__init__()
        self.in_shape = None if in_shape is None else tuple(int(s) for s in in_shape)

    # --- interface -------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def bind(self, indices: Sequence[int], seed: int = 0) -> "Operator":
        """The operator for samples ``indices`` (per-sample randomness); default: itself."""
        return self

    def h_dagger(self, y: Tensor) -> Tensor:
        """Generalised pseudo-inverse with ``A(h_dagger(A(x))) = A(x)`` (PiGDM, Sec. 3.2)."""
        raise NotImplementedError(f"{type(self).__name__} has no generalised pseudo-inverse (h_dagger)")

    @property
    def has_h_dagger(self) -> bool:
        return type(self).h_dagger is not Operator.h_dagger

    @property
    def has_svd(self) -> bool:
        return isinstance(self, SVDOperator)

    # --- checks --------------------------------------------------------------
    def check_input(self, x: Tensor, name: str = "x") -> None:
        if self.in_shape is not None and tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"{type(self).__name__} expects {name} of image shape {self.in_shape}, "
                             f"got {tuple(x.shape[1:])}")

    def output_shape(self, in_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of one measurement for one input of ``in_shape`` (by a dry run on zeros)."""
        with torch.no_grad():
            return tuple(self.forward(torch.zeros(1, *in_shape)).shape[1:])

    def describe(self) -> str:
        props = [p for p, ok in (("linear", self.linear), ("SVD", self.has_svd),
                                 ("differentiable", self.differentiable),
                                 ("h_dagger", self.has_h_dagger)) if ok]
        return f"{type(self).__name__} ({', '.join(props) or 'no special properties'})"


class LinearOperator(Operator):
    """A linear operator: subclasses implement ``forward`` and ``adjoint``.

    ``pinv`` defaults to the minimum-norm least-squares solution by conjugate
    gradients on the normal equations ``A^T A x = A^T y`` started at 0 (which stays in
    the row space of A, hence minimum norm).
    """

    linear = True

    def adjoint(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pinv(self, y: Tensor, iters: int = 200, tol: float = 1e-10) -> Tensor:
        from .linalg import conjugate_gradient
        rhs = self.adjoint(y)
        return conjugate_gradient(lambda v: self.adjoint(self.forward(v)), rhs, iters=iters, tol=tol)

    def h_dagger(self, y: Tensor) -> Tensor:
        return self.pinv(y)

    # --- linear solves that methods share (closed form in SVDOperator) -------------------
    def prox_l2(self, z: Tensor, y: Tensor, rho, iters: int = 100, tol: float = 1e-10) -> Tensor:
        """``argmin_x ||y - A x||^2 + rho ||x - z||^2 = z + (A^T A + rho I)^{-1} A^T (y - A z)`` per
        sample (the data proximal step of HQS / DiffPIR; ``rho = 0`` is the projection
        ``z + A^+ (y - A z)``). By conjugate gradients here."""
        from .linalg import conjugate_gradient
        rhs = self.adjoint(y - self.forward(z))
        return z + conjugate_gradient(lambda v: self.adjoint(self.forward(v)) + rho * v, rhs, iters=iters, tol=tol)

    def gram_solve(self, r: Tensor, weight, c, iters: int = 100, tol: float = 1e-10) -> Tensor:
        """``(weight A A^T + c I)^{-1} r`` per sample, in measurement space (PiGDM's Eq. 7 and the
        moment-matching covariance with ``weight = r_t^2``, ``c = sigma_y^2``). By conjugate gradients
        here (minimum-norm where singular)."""
        from .linalg import conjugate_gradient
        return conjugate_gradient(lambda u: weight * self.forward(self.adjoint(u)) + c * u, r, iters=iters, tol=tol)


class SVDOperator(LinearOperator):
    """A linear operator with a functional SVD (DDRM, Kawar et al. 2022, App. B)."""

    def vt(self, x: Tensor) -> Tensor:  # (B, *in) -> (B, n)
        raise NotImplementedError

    def v(self, z: Tensor) -> Tensor:  # (B, n) -> (B, *in)
        raise NotImplementedError

    def ut(self, y: Tensor) -> Tensor:  # (B, *out) -> (B, m)
        raise NotImplementedError

    def u(self, z: Tensor) -> Tensor:  # (B, m) -> (B, *out)
        raise NotImplementedError

    def singular_values(self) -> Tensor:  # (B or 1, m), >= 0
        raise NotImplementedError

    # --- derived from the SVD ----------------------------------------------
    def _m(self) -> int:
        return self.singular_values().shape[-1]

    def forward(self, x: Tensor) -> Tensor:
        s = self.singular_values().to(x)
        return self.u(s * self.vt(x)[:, : s.shape[-1]])

    def adjoint(self, y: Tensor) -> Tensor:
        s = self.singular_values().to(y)
        z = s * self.ut(y)
        return self.v(self.pad(z, y.shape[0]))

    def pinv(self, y: Tensor) -> Tensor:
        s = self.singular_values().to(y)
        z = self.ut(y) * self.inv_or_zero(s)
        return self.v(self.pad(z, y.shape[0]))

    def prox_l2(self, z, y, rho, iters=100, tol=1e-10):
        """Closed form: per spectral coordinate ``(s (U^T y) + rho z_bar) / (s^2 + rho)``, the null
        space (``s = 0``) untouched."""
        s = self.singular_values().to(z)
        zb = self.vt(z)
        m = s.shape[-1]
        head = zb[:, :m]
        measured = s > 1e-8
        fit = (s * self.ut(y) + rho * head) / (s ** 2 + rho).clamp_min(1e-300)
        return self.v(torch.cat([torch.where(measured, fit, head), zb[:, m:]], dim=1))

    def gram_solve(self, r, weight, c, iters=100, tol=1e-10):
        """Closed form: ``U diag(1 / (weight s^2 + c)) U^T r`` (0 where both vanish)."""
        s = self.singular_values().to(r)
        den = weight * s ** 2 + c
        return self.u(torch.where(den > 0, self.ut(r) / den.clamp_min(1e-300), torch.zeros_like(den)))

    def pad(self, z: Tensor, batch: int) -> Tensor:
        """Pad ``(B, m)`` spectral coefficients with zeros to ``(B, n)``."""
        n = self.num_pixels()
        return torch.cat([z, z.new_zeros(batch, n - z.shape[-1])], dim=1) if n > z.shape[-1] else z

    def num_pixels(self) -> int:
        if self.in_shape is None:
            raise ValueError(f"{type(self).__name__} needs in_shape for its SVD")
        n = 1
        for d in self.in_shape:
            n *= d
        return n

    @staticmethod
    def inv_or_zero(s: Tensor, eps: float = 1e-8) -> Tensor:
        return torch.where(s > eps, 1 / s.clamp_min(eps), torch.zeros_like(s))
