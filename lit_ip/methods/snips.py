"""SNIPS: solving noisy inverse problems stochastically, Kawar, Vaksman & Elad 2021, NeurIPS
(arXiv:2105.14951), Algorithm 1; survey form: Daras et al. 2024 (arXiv:2410.00083), Eq. 3.31.

Annealed Langevin dynamics in the spectral domain of ``A = U diag(s) V^T``: with ``u_bar = V^T u``
(the state in VE coordinates ``u = x_t / a`` at level ``sigma``) and ``y_bar = U^T y``, each spectral
coordinate has the likelihood score

    grad_j = s_j (y_bar_j - s_j u_bar_j) / |sigma_y^2 - sigma^2 s_j^2|     (0 where s_j = 0),

and the Langevin step is pre-conditioned per coordinate by ``Lambda_j`` (the paper's approximate
negative inverse Hessian):

    u_bar <- u_bar + alpha Lambda (V^T s(u, sigma) + grad) + sqrt(2 alpha Lambda) z_bar,
    alpha = delta sigma^2,   Lambda_j = min(1, |sigma_y^2 / s_j^2 - sigma^2| / sigma^2)  (1 in the null space).

``Lambda_j`` is our reading of the paper's pre-conditioner: the step in a measured coordinate is
the smaller of the prior's (``sigma^2``) and the likelihood's (``|sigma_y^2 / s_j^2 - sigma^2|``)
variance, which keeps ``alpha Lambda grad_j`` bounded where ``sigma s_j`` crosses ``sigma_y`` (the
paper's ``|.|`` denominator vanishes there). The paper starts the measured coordinates near
``y_bar / s``; here every coordinate starts from the prior mean plus noise at the top level. Units
and levels as :class:`~lit_ip.methods.score_ald.ScoreALD`. Needs an operator with an SVD and
Gaussian noise (refused otherwise).

Real images (shipped settings ``configs/method/snips.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 27.03, sr_4x
19.50, inpaint_70 16.58, inpaint_box 22.13, deblur 25.77, colorize 20.91. It does not beat the best
trivial estimate on: sr_4x 19.50 vs pinv 23.66; deblur 25.77 vs measurement 25.80; colorize 20.91 vs
grey 25.30. Why: as Score-ALD: a 30-evaluation budget is too small for SR, deblurring (25.77 vs
25.80) and colorization.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``snips`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 22.44 vs pinv 26.65, deblur 28.55 vs
y 28.27, colorize 14.89 vs grey 15.57; faces_ddpm sr_4x 20.45 vs pinv 20.39; natural_rf sr_4x 21.61
vs pinv 26.65, deblur 26.97 vs y 28.27, colorize 15.48 vs grey 15.57; faces_rf sr_4x 20.27 vs pinv
20.39.
"""
from __future__ import annotations

import math

import torch

from .score_ald import AnnealedLangevin


class SNIPS(AnnealedLangevin):
    """SNIPS (Kawar et al. 2021): spectral-domain annealed Langevin with per-coordinate steps.

    Args:
        num_steps: noise levels (paper: all the levels of its NCSNv2 prior).
        langevin_steps: Langevin steps per level.
        delta: ``alpha / sigma^2`` (< 2 for stability).
    """

    requires = ("svd",)
    gaussian_noise = True

    def update(self, u, x0, sigma, p, rng):
        sp = p.spectrum()
        sy2, s2 = p.sigma ** 2, sp.s ** 2
        sig2 = sigma ** 2
        var_lik = (sy2 / s2.clamp_min(1e-300) - sig2).abs()                  # |sigma_y^2/s^2 - sigma^2|
        lam = torch.where(sp.measured, (var_lik / sig2).clamp(max=1), torch.ones_like(s2))
        # alpha Lambda grad = delta sigma^2 Lambda (ybar - u_bar) / var_lik = delta min(sigma^2, var_lik)/var_lik (ybar - u_bar)
        ub = sp.vt(u)
        pull = torch.where(sp.measured, torch.minimum(var_lik, sig2.expand_as(var_lik)) / var_lik.clamp_min(1e-300),
                           torch.zeros_like(s2))
        drift = self.delta * lam * sp.vt(x0 - u) + self.delta * pull * (sp.ybar - ub)
        noise = torch.sqrt(2 * self.delta * lam) * sigma * rng.randn(ub.shape).to(ub)
        return u + sp.v(drift + noise)
