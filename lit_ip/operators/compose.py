"""Composition of two operators, ``A = outer ∘ inner``."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from .base import LinearOperator, Operator

_SEED_MIX = 1_000_003


class Compose(LinearOperator):
    """``A(x) = outer(inner(x))``.

    Linear iff both parts are (``adjoint = inner^T outer^T``; ``pinv`` is the base-class
    conjugate-gradient minimum-norm solution, as a product of SVDs has no SVD in general);
    differentiable iff both are. ``h_dagger``: the exact ``pinv`` when linear, otherwise
    PiGDM's approximation ``inner^† ∘ outer^†`` (Song et al. 2023, Sec. 5.3).
    ``bind`` binds both parts, ``inner`` with ``seed`` and ``outer`` with a seed derived
    from it, so two random families in one composition draw independently.

    Args:
        outer: operator applied second.
        inner: operator applied first (its ``in_shape`` is the composition's).
    """

    def __init__(self, outer: Operator, inner: Operator):
        for name, op in (("outer", outer), ("inner", inner)):
            if not isinstance(op, Operator):
                raise TypeError(f"Compose: {name} must be an Operator, got {type(op).__name__}")
        super().__init__(inner.in_shape)
        self.outer, self.inner = outer, inner
        self.linear = bool(outer.linear and inner.linear)
        self.differentiable = bool(outer.differentiable and inner.differentiable)
        if inner.in_shape is not None and outer.in_shape is not None:
            mid = inner.output_shape(inner.in_shape)
            if tuple(mid) != tuple(outer.in_shape):
                raise ValueError(f"Compose: inner {type(inner).__name__} outputs shape {tuple(mid)} but outer "
                                 f"{type(outer).__name__} takes {tuple(outer.in_shape)}")

    def bind(self, indices: Sequence[int], seed: int = 0) -> "Compose":
        inner = self.inner.bind(indices, seed)
        outer = self.outer.bind(indices, (int(seed) * _SEED_MIX + 1) % (2 ** 62))
        return self if (inner is self.inner and outer is self.outer) else Compose(outer, inner)

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.inner(x))

    def _need_linear(self, what: str) -> None:
        if not self.linear:
            raise TypeError(f"Compose({type(self.outer).__name__}, {type(self.inner).__name__}) has no {what}: "
                            f"it is not linear")

    def adjoint(self, y: Tensor) -> Tensor:
        self._need_linear("adjoint")
        return self.inner.adjoint(self.outer.adjoint(y))

    def pinv(self, y: Tensor, iters: int = 200, tol: float = 1e-10) -> Tensor:
        self._need_linear("pseudo-inverse")
        return super().pinv(y, iters=iters, tol=tol)

    @property
    def has_h_dagger(self) -> bool:
        return self.linear or (self.outer.has_h_dagger and self.inner.has_h_dagger)

    def h_dagger(self, y: Tensor) -> Tensor:
        if self.linear:
            return self.pinv(y)
        if not self.has_h_dagger:
            raise NotImplementedError(f"Compose: both {type(self.outer).__name__} and "
                                      f"{type(self.inner).__name__} need an h_dagger")
        return self.inner.h_dagger(self.outer.h_dagger(y))

    def output_shape(self, in_shape):
        return self.outer.output_shape(self.inner.output_shape(in_shape))
