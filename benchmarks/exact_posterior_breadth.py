"""Exact-posterior table of the survey-breadth methods (Gaussian and two-component mixture priors).

Problems from ``lit_ip.methods.exactness`` ((1, 4, 4) images, float64): a Gaussian prior with a
random non-isotropic covariance and a mixture whose posterior weights are 0.3 / 0.7 (prior 0.5 /
0.5), each with a fixed inpainting mask (8 of 16 pixels), the identity and a dense (8, 16) matrix;
noisy data (sigma_y = 0.05) and, for the noiseless replacement methods, sigma_y = 1e-3. Columns:
``mean`` and ``cov`` errors (floors for N = 400 exact draws: about 0.05 and 0.16) and, for the
mixture, the fraction of draws in component 0 (exact: 0.30). VP path (the network's [-1, 1] path
is not needed for an analytic prior).

    OMP_NUM_THREADS=1 python benchmarks/exact_posterior_breadth.py > benchmarks/exact_posterior_breadth.md
"""
from __future__ import annotations

from lit_ip.methods import (DDS, DSG, ILVR, MCG, MPGD, OTODE, SNIPS, DDNMTimeTravel, KadkhodaieSimoncelli,
                            RePaint, ScoreALD, ScoreSDE, Unconditional)
from lit_ip.methods.exactness import draws, gaussian_problem, mixture_problem, mode_weights, moment_errors
from lit_ip.priors.paths import RectifiedFlowPath, VPPath

N = 400
METHODS = {
    "Unconditional": lambda: Unconditional(100),
    "ScoreSDE": lambda: ScoreSDE(100),
    "ILVR": lambda: ILVR(100),
    "RePaint (50 steps, jump 5, 3 passes)": lambda: RePaint(50, jump=5, repeats=3),
    "DDNMTimeTravel": lambda: DDNMTimeTravel(100),
    "MCG": lambda: MCG(100),
    "DDS": lambda: DDS(100),
    "MPGD": lambda: MPGD(100),
    "DSG": lambda: DSG(100, w=0.1),
    "ScoreALD (50 levels x 20)": lambda: ScoreALD(50, langevin_steps=20, delta=0.2),
    "SNIPS (50 levels x 20)": lambda: SNIPS(50, langevin_steps=20, delta=0.2),
    "KadkhodaieSimoncelli (beta 0.1)": lambda: KadkhodaieSimoncelli(1000, beta=0.1),
    "OTODE": lambda: OTODE(100),
}


def main():
    print(__doc__.split("\n\n")[0] + "\n")
    for pname, path in (("vp", VPPath()), ("rf", RectifiedFlowPath())):
        for sigma in (0.05, 1e-3):
            print(f"\n### {pname} path, sigma_y = {sigma}\n")
            print("| method | gauss inpainting mean / cov | gauss identity | gauss dense | mixture dense mean / cov / w0 |")
            print("|---|---|---|---|---|")
            probs = [gaussian_problem(path=path, operator=o, sigma=sigma) for o in ("inpainting", "denoising", "dense")]
            mix = mixture_problem(path=path, operator="dense", sigma=sigma)
            for name, make in METHODS.items():
                cells = []
                for pr in probs:
                    e = moment_errors(draws(make(), pr, N), pr.posterior)
                    cells.append(f"{e['mean']:.2f} / {e['cov']:.2f}")
                x = draws(make(), mix, N)
                e = moment_errors(x, mix.posterior)
                w0 = float(mode_weights(x, mix.posterior)[0])
                cells.append(f"{e['mean']:.2f} / {e['cov']:.2f} / {w0:.2f}")
                print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
