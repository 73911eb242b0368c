"""Schedules (lit_ip/sampling/schedules.py): valid on every path, their paper's formulas, the one
place where VP times are rounded, RePaint's resampling walk, and the guided loop's re-noising."""
import math

import pytest
import torch

from lit_ip.methods import DDNM, Unconditional
from lit_ip.evaluation.exact import gaussian_problem
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.paths import RectifiedFlowPath, VEPath, VPPath
from lit_ip.rng import SampleRNG, sample_seed
from lit_ip.sampling.schedules import (KarrasSigma, LogSNRUniform, PowerTime, Resampling, UniformTime,
                                       level, time_at_level)

PATHS = {"vp": VPPath().scaled(0.5), "vp-cosine": VPPath(schedule="cosine"), "rf": RectifiedFlowPath(),
         "ve": VEPath()}
SCHEDULES = {"uniform": UniformTime(), "leading": UniformTime(endpoint=False), "quad": PowerTime(2, 0.8),
             "diffpir-quad": PowerTime(0.5, reverse=True), "karras": KarrasSigma(), "logsnr": LogSNRUniform()}


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_schedule_is_a_descending_evaluable_grid_on_every_path(schedule, path):
    p, s = PATHS[path], SCHEDULES[schedule]
    ts = torch.stack(s.times(p, 20))
    assert (ts[1:] < ts[:-1]).all(), "times must strictly descend"
    assert float(ts.min()) >= p.t_min - 1e-12 and float(ts.max()) <= p.t_max + 1e-12
    assert torch.equal(ts, torch.stack([torch.as_tensor(p.snap(t), dtype=torch.float64) for t in ts]))
    if isinstance(p, VPPath):
        assert torch.equal(ts, ts.round()), "VP times are training steps"
    pairs = s.pairs(p, 20)
    assert pairs[-1][1] is None and len(pairs) == len(ts)


def test_the_papers_grids():
    vp = VPPath()
    # the DDRM code's 0, 50, ..., 950 of 1000 steps, on the continuous range [0, 999]: i * 999 / 20
    assert [int(t) for t in UniformTime(endpoint=False).times(vp, 20)] == [round(i * 999 / 20) for i in range(19, -1, -1)]
    assert [int(t) for t in UniformTime().times(vp, 3)] == [999, 500, 0]
    ddim_quad = [int(t) for t in PowerTime(2, 0.8).times(vp, 5)]
    assert ddim_quad == [int(round((u * math.sqrt(0.8 * 999)) ** 2)) for u in (1, 0.75, 0.5, 0.25, 0)]
    diffpir = [int(t) for t in PowerTime(0.5, reverse=True).times(vp, 5)]
    assert diffpir == [int(round(999 * (1 - math.sqrt(w)))) for w in (0, 0.25, 0.5, 0.75, 1)]
    ve = VEPath(0.002, 80.0)
    ks = [float(t) for t in KarrasSigma(7, 80.0, 0.002).times(ve, 4)]
    ref = [(80 ** (1 / 7) + i / 3 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(4)]
    assert all(abs(a - b) < 1e-6 * b for a, b in zip(ks, ref))


def test_levels_and_times_invert_each_other():
    for p in (VPPath().scaled(0.5), RectifiedFlowPath()):
        for sigma in (0.01, 0.3, 5.0):
            assert abs(level(p, time_at_level(p, sigma)) - sigma) < 1e-6 * sigma
    assert math.isinf(level(RectifiedFlowPath(), 1.0))
    # a flow's top (a = 0) is the first time of a level grid with sigma_max=None
    assert float(KarrasSigma().times(RectifiedFlowPath(), 5)[0]) == 1.0


def test_resampling_walks_down_with_jumps_back():
    base = UniformTime()
    pairs = Resampling(base, jump=2, repeats=3).pairs(VPPath(), 7)
    ts = base.times(VPPath(), 7)
    down = [(a, b) for a, b in pairs if b is None or b < a]
    up = [(a, b) for a, b in pairs if b is not None and b > a]
    assert len(up) == 3 * 2 * 2       # jumps at indices 2, 4 and 6 of 7, each 2 steps up, twice each
    assert len(down) == len(ts) + len(up)
    assert pairs[-1][1] is None and pairs[0][0] == ts[0]
    assert Resampling(base, jump=2, repeats=1).pairs(VPPath(), 7) == base.pairs(VPPath(), 7)


def test_the_loop_renoises_and_counts_only_denoising_steps():
    pr = gaussian_problem("vp", operator="inpainting")
    rng = SampleRNG.for_indices(range(4), dtype=torch.float64)
    method = DDNM(8, schedule=Resampling(UniformTime(), jump=2, repeats=2))
    pr.prior.evaluations.reset()
    x = method.sample(pr.prior, pr.operator, pr.batch(4), rng, GaussianNoise(0.0))
    y = pr.batch(4)
    assert torch.allclose(pr.operator(x), pr.operator(pr.operator.pinv(y)), atol=1e-9)   # still a projection
    assert pr.prior.evaluations.per_sample(4)["nfe"] == method.expected_nfe(pr.prior)["nfe"] > 8
    plain = Unconditional(8).expected_nfe(pr.prior)["nfe"]
    assert plain == 8


def test_seeds_do_not_collide_across_run_index_and_stream():
    seen = {}
    for seed in range(6):
        for index in range(0, 9000, 7):
            for stream in ("sampler", "measurement", "operator", "repeat"):
                s = sample_seed(seed, index, stream)
                assert s not in seen, (seed, index, stream, seen.get(s))
                seen[s] = (seed, index, stream)
    assert sample_seed(1, 0, "sampler") != sample_seed(0, 7919, "sampler")
    with pytest.raises(ValueError, match="unknown random stream"):
        sample_seed(0, 0, "smapler")
