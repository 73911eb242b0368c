"""Schedules (time grids) and the unconditional steps methods reuse."""
from .schedules import KarrasSigma, LogSNRUniform, PowerTime, Resampling, Schedule, UniformTime
from .steps import bridge_std, ddim_mean, ddim_step, deterministic_solve

__all__ = ["Schedule", "UniformTime", "PowerTime", "KarrasSigma", "LogSNRUniform", "Resampling",
           "ddim_step", "ddim_mean", "bridge_std", "deterministic_solve"]
