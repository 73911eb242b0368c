"""The prior interface every method talks to.

A prior is a denoiser over a noise path: for a batch ``x_t`` at time ``t`` it
returns Tweedie's posterior mean ``x0_hat = E[x0 | x_t]``; the noise estimate and
the score follow from :mod:`lit_ip.priors.parameterization`. Its path and images
are in [0, 1] image units (a network working in [-1, 1] converts inside its wrapper).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from . import parameterization as P
from .paths import NoisePath


@dataclass
class EvaluationCount:
    """Prior evaluations, counted in images (a call on a batch of ``B`` counts ``B``).

    ``forward``: calls of :meth:`Prior.denoise` (network forward passes). ``backward``: passes
    of a gradient back through a denoiser output (vector-Jacobian products; a Jacobian-vector
    product by double backward is counted by the method that does it, with :meth:`add_backward`).
    """

    forward: int = 0
    backward: int = 0

    def reset(self) -> None:
        self.forward = self.backward = 0

    def add_backward(self, rows: int) -> None:
        self.backward += int(rows)

    def per_sample(self, samples: int) -> dict:
        """``{"nfe": forward / samples, "nfe_backward": backward / samples}``."""
        n = max(int(samples), 1)
        return {"nfe": self.forward / n, "nfe_backward": self.backward / n}


def _counted(denoise):
    """Wrap a subclass's ``denoise`` so that the outermost call is counted (a subclass calling
    ``super().denoise`` counts once)."""

    @functools.wraps(denoise)
    def wrapper(self, x_t, t, *args, **kwargs):
        depth = self.__dict__.get("_denoise_depth", 0)
        self.__dict__["_denoise_depth"] = depth + 1
        try:
            out = denoise(self, x_t, t, *args, **kwargs)
        finally:
            self.__dict__["_denoise_depth"] = depth
        if depth == 0:
            count, rows = self.evaluations, int(x_t.shape[0])
            count.forward += rows
            if isinstance(out, Tensor) and out.requires_grad:
                out.register_hook(lambda g: count.add_backward(rows))
        return out

    wrapper._counted = True
    return wrapper


class Prior(nn.Module):
    """Base class. Subclasses implement :meth:`denoise`; every call of it is counted in
    :attr:`evaluations` (forward calls, and gradients passed back through its output).

    Args:
        path: noise path in [0, 1] image units.
        image_shape: shape of one image, e.g. ``(3, 32, 32)``.
        data_mean: mean pixel value, used to start samplers at ``a_T * mean + b_T * eps``.
        data_var: per-pixel variance of the data, used by methods that approximate
            ``p(x0 | x_t)`` by an isotropic Gaussian (PiGDM's ``r_t``).
    """

    def __init__(self, path: NoisePath, image_shape: Sequence[int],
                 data_mean: float = 0.5, data_var: float = 0.25):
        super().__init__()
        self.path = path
        self.image_shape = tuple(int(s) for s in image_shape)
        self.data_mean = float(data_mean)
        self.data_var = float(data_var)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("denoise")
        if own is not None and not getattr(own, "_counted", False):
            cls.denoise = _counted(own)

    @property
    def evaluations(self) -> EvaluationCount:
        """Counted prior evaluations since the last :meth:`EvaluationCount.reset`."""
        count = self.__dict__.get("_evaluations")
        if count is None:
            count = self.__dict__["_evaluations"] = EvaluationCount()
        return count

    # --- to implement ---------------------------------------------------
    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``E[x0 | x_t]`` for a batch ``x_t`` of shape ``(B, *image_shape)`` at scalar time ``t``."""
        raise NotImplementedError

    # --- derived ----------------------------------------------------------
    def coefficients(self, t: Optional[Tensor], like: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) at ``t`` as 0-dim tensors with the dtype and device of ``like``."""
        a, b = self.path.coefficients(t)
        return a.to(like), b.to(like)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        a, b = self.coefficients(t, x_t)
        return P.eps_from_x0(self.denoise(x_t, t), x_t, a, b)

    def score(self, x_t: Tensor, t: Tensor) -> Tensor:
        a, b = self.coefficients(t, x_t)
        return P.score_from_x0(self.denoise(x_t, t), x_t, a, b)

    def check_images(self, x: Tensor, name: str = "x") -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"{name} has image shape {tuple(x.shape[1:])}, but the prior "
                             f"{type(self).__name__} works on images of shape {self.image_shape}")

    def init_noise(self, batch_size: int, rng, t_start: Optional[Tensor] = None) -> Tensor:
        """A draw from (approximately) ``p_T``: ``a_T * data_mean + b_T * eps``."""
        t = self.path.t_max if t_start is None else t_start
        a, b = self.path.coefficients(torch.as_tensor(t))
        eps = rng.randn((batch_size, *self.image_shape))
        return (a.to(eps) * self.data_mean + b.to(eps) * eps)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        for b in self.buffers():
            return b.dtype
        return torch.float32
