"""``||A||^2`` for methods whose step size is normalised by the operator's norm (MPGD, Score-SDE).

A projection-like step ``x - lr A^T (A x - y)`` is an exact projection for ``lr = 1`` only when
``||A||^2 = 1`` (masks, blur); for 4x average pooling ``||A||^2 = 1/16``. Dividing the step by
``||A||^2 = s_max^2`` (largest singular value) makes one step size mean the same on every operator.
"""
from __future__ import annotations


def check_normalizable(method, operator) -> None:
    """Refuse ``normalize=True`` on an operator without an SVD (no ``s_max``), naming both."""
    if method.normalize and not operator.has_svd:
        raise ValueError(f"{method.name}(normalize=True) divides its step by ||A||^2 from the SVD; "
                         f"{operator.describe()} has none (use normalize=False)")


def step_scale(method, operator) -> float:
    """``s_max^2`` when the method normalises its step, else 1."""
    return float(operator.singular_values().max()) ** 2 if method.normalize else 1.0

__all__ = ["check_normalizable", "step_scale"]
