"""The diffusion core: schedules, parametrizations, pure DDIM samplers, per-sample losses.

Knows no architecture: a network is any callable ``net(x_t, t, cond) -> output``.
"""

from latentmed.diffusion.interpolation import slerp
from latentmed.diffusion.losses import add_noise, diffusion_loss, sample_times
from latentmed.diffusion.parametrization import PREDICTIONS, Denoiser, check_prediction, target, to_x0_eps
from latentmed.diffusion.samplers import ddim_invert, ddim_sample, ddim_step, ddim_timesteps
from latentmed.diffusion.schedules import (InvertedSchedule, LinearBetaSchedule, Schedule, ShiftedCosineSchedule,
                                           TabulatedSchedule, get_schedule, scaled_linear_schedule)

__all__ = [
    "PREDICTIONS", "Denoiser", "InvertedSchedule", "LinearBetaSchedule", "Schedule", "ShiftedCosineSchedule",
    "TabulatedSchedule",
    "add_noise", "check_prediction", "ddim_invert", "ddim_sample", "ddim_step", "ddim_timesteps",
    "diffusion_loss", "get_schedule", "sample_times", "scaled_linear_schedule", "slerp", "target", "to_x0_eps",
]
