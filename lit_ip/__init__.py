"""lit_ip: imaging inverse problems with diffusion and flow-matching priors.

The one-call helpers for notebooks and scripts (``lit_ip/api.py``) are exported here;
the building blocks live in ``lit_ip.priors``, ``lit_ip.operators``, ``lit_ip.methods``.
"""
from .api import bind, posterior_sample, prior_sample, pseudo_inverse, psnr_ssim, simulate_measurement

__all__ = ["posterior_sample", "prior_sample", "simulate_measurement", "pseudo_inverse", "psnr_ssim", "bind"]
