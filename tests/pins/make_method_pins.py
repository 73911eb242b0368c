"""Write ``method_pins.safetensors``: each method's output on fixed seeds, for the regression test
``tests/test_method_pins.py`` (the method layer may change shape, the samples may not).

Run ``python tests/pins/make_method_pins.py`` only when an output changes *on purpose*, and say why
in the commit message. Each case runs with the grid ``UniformTime()`` (the original one; DAPS keeps its
default EDM grid, which it always had) so the pins test the loop, not the methods' default schedules.
"""
from __future__ import annotations

import pathlib

import torch
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).parent
OUT = HERE / "method_pins.safetensors"


def cases():
    """name -> (factory, path kind, operator kind, sigma)."""
    from lit_ip.methods import (DAPS, DDNM, DDRM, DMPS, DPS, DDNMPlus, DiffPIR, DMPlug, DPSw,
                                MomentMatching, PiGDM, REDDiff, TDS, Unconditional)
    c = {}
    for path in ("vp", "rf"):
        eta = 1.0 if path == "vp" else 0.0
        c.update({
            f"Unconditional-{path}": (lambda eta=eta: Unconditional(6, eta=eta), path, "dense", 0.05),
            f"DPS-{path}": (lambda eta=eta: DPS(6, eta=eta, zeta=0.05), path, "dense", 0.05),
            f"PiGDM-{path}": (lambda eta=eta: PiGDM(6, eta=eta), path, "dense", 0.05),
            f"PiGDM-noiseless-{path}": (lambda eta=eta: PiGDM(6, eta=eta), path, "inpainting", 0.0),
            f"DMPS-{path}": (lambda eta=eta: DMPS(6, eta=eta, scale=1.75 if eta == 1.0 else 2.0), path, "dense", 0.05),
            f"DDRM-{path}": (lambda: DDRM(6), path, "dense", 0.05),
            f"DDNM-{path}": (lambda eta=eta: DDNM(6, eta=eta), path, "inpainting", 0.0),
            f"DDNMPlus-{path}": (lambda: DDNMPlus(6), path, "dense", 0.05),
            f"MomentMatching-{path}": (lambda eta=eta: MomentMatching(6, eta=eta, cg_iters=5), path, "dense", 0.05),
            f"DiffPIR-{path}": (lambda: DiffPIR(6, lam=1.0), path, "dense", 0.05),
            f"DPSw-{path}": (lambda eta=eta: DPSw(6, eta=eta), path, "dense", 0.05),
            f"DPSw-exact-{path}": (lambda eta=eta: DPSw(6, eta=eta, mode="exact"), path, "dense", 0.05),
            f"REDDiff-{path}": (lambda: REDDiff(6, lr=0.02), path, "dense", 0.05),
            f"DAPS-{path}": (lambda: DAPS(4, ode_steps=2, langevin_steps=3, lr=1e-3), path, "dense", 0.05),
            f"TDS-{path}": (lambda: TDS(6, num_particles=3, max_shift=None), path, "dense", 0.05),
            f"DMPlug-{path}": (lambda: DMPlug(2, iterations=5, lr=2e-2, window=2, patience=2), path, "dense", 0.05),
        })
    return c


def pin_prior(path: str, operator: str):
    """The prior and operator the pins were written with (frozen: the former exactness module's
    two-Gaussian mixture on (1, 4, 4) images, seed 0; a dense 8x16 matrix of spectral norm 1 or
    an 8-of-16-pixel mask). Kept here verbatim because the pinned outputs depend on every draw."""
    import math
    from types import SimpleNamespace

    from lit_ip.operators.dense import DenseMatrixOperator
    from lit_ip.operators.inpainting import MaskInpainting
    from lit_ip.priors.analytic import GaussianMixturePrior
    from lit_ip.priors.paths import RectifiedFlowPath, VPPath
    shape, d, m = (1, 4, 4), 16, 8
    g = torch.Generator().manual_seed(3)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u = u / u.norm() * 0.25 * math.sqrt(d) / 2
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    std = torch.logspace(math.log10(0.03), math.log10(0.1), d, dtype=torch.float64)
    C = Q @ torch.diag(std ** 2) @ Q.T
    prior = GaussianMixturePrior(torch.ones(2), torch.stack([0.5 + u, 0.5 - u]), torch.stack([C, C]), shape,
                                 VPPath() if path == "vp" else RectifiedFlowPath())
    if operator == "dense":
        M = torch.randn(m, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        op = DenseMatrixOperator(M / torch.linalg.matrix_norm(M, ord=2), shape)
    else:
        mask = torch.zeros(d)
        mask[torch.randperm(d, generator=torch.Generator().manual_seed(4))[:m]] = 1
        op = MaskInpainting(mask.view(1, *shape), shape)
    return SimpleNamespace(prior=prior, operator=op)


def problem(path: str, operator: str, sigma: float):
    p = pin_prior(path, operator)
    g = torch.Generator().manual_seed(7)
    x = p.prior.mean_vector().view(1, *p.prior.image_shape) + 0.2 * torch.randn(
        3, *p.prior.image_shape, generator=g, dtype=torch.float64)
    y = p.operator(x)
    if sigma > 0:
        y = y + sigma * torch.randn(y.shape, generator=g, dtype=torch.float64)
    return p, y


def run(name: str) -> torch.Tensor:
    from lit_ip.operators.noise import GaussianNoise
    from lit_ip.rng import SampleRNG
    factory, path, operator, sigma = cases()[name]
    p, y = problem(path, operator, sigma)
    method = factory()
    if hasattr(method, "schedule") and not name.startswith("DAPS"):   # DAPS keeps its EDM grid
        from lit_ip.sampling.schedules import UniformTime
        method.schedule = UniformTime()
    rng = SampleRNG([1013, 2027, 3041], dtype=torch.float64)      # explicit seeds: independent of seed derivation
    return method.sample(p.prior, p.operator, y, rng, GaussianNoise(sigma)).detach().contiguous()


if __name__ == "__main__":
    save_file({name: run(name) for name in cases()}, str(OUT))
    print(f"wrote {len(cases())} pins to {OUT}")
