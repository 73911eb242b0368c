"""The one place that converts between network parameterisations.

With ``x_t = a x0 + b eps`` (coefficients broadcast to the batch):

* eps-prediction:      ``x0 = (x_t - b eps) / a``
* x0-prediction:       identity
* v-prediction (Salimans & Ho 2022, VP only, ``a^2 + b^2 = 1``): ``v = a eps - b x0``,
  so ``x0 = a x_t - b v``
* velocity (flow matching): ``u = a' x0 + b' eps`` with ``a' = da/dt``, ``b' = db/dt``;
  eliminating eps: ``x0 = (b u - b' x_t) / (b a' - a b')``
* score:  ``grad log p_t(x_t) = -(x_t - a x0) / b^2 = -eps / b``

Nothing else in the package re-derives these formulas.
"""
from __future__ import annotations

from torch import Tensor

PREDICTIONS = ("eps", "x0", "v", "velocity")


def x0_from(prediction: str, out: Tensor, x_t: Tensor, a, b, da=None, db=None) -> Tensor:
    """Tweedie estimate ``x0_hat`` from a network output of the given kind."""
    if prediction == "x0":
        return out
    if prediction == "eps":
        return (x_t - b * out) / a
    if prediction == "v":
        return a * x_t - b * out
    if prediction == "velocity":
        if da is None or db is None:
            raise ValueError("velocity parameterisation needs the path derivatives da, db")
        return (b * out - db * x_t) / (b * da - a * db)
    raise ValueError(f"unknown prediction type {prediction!r}; known: {PREDICTIONS}")


def eps_from_x0(x0: Tensor, x_t: Tensor, a, b) -> Tensor:
    """``eps = (x_t - a x0) / b``."""
    return (x_t - a * x0) / b


def x0_from_eps(eps: Tensor, x_t: Tensor, a, b) -> Tensor:
    return x0_from("eps", eps, x_t, a, b)


def score_from_x0(x0: Tensor, x_t: Tensor, a, b) -> Tensor:
    """Tweedie: ``grad log p_t(x_t) = (a x0_hat - x_t) / b^2``."""
    return (a * x0 - x_t) / b ** 2


def x0_from_score(score: Tensor, x_t: Tensor, a, b) -> Tensor:
    """Tweedie: ``x0_hat = (x_t + b^2 score) / a``."""
    return (x_t + b ** 2 * score) / a


def target_from(prediction: str, x0: Tensor, eps: Tensor, a, b, da=None, db=None) -> Tensor:
    """Regression target of a network of the given kind (used in training)."""
    if prediction == "x0":
        return x0
    if prediction == "eps":
        return eps
    if prediction == "v":
        return a * eps - b * x0
    if prediction == "velocity":
        return da * x0 + db * eps
    raise ValueError(f"unknown prediction type {prediction!r}; known: {PREDICTIONS}")
