"""Prediction types and the denoiser wrapper (the samplers' only view of a network).

With ``x_t = alpha x0 + sigma eps`` and ``v = alpha eps - sigma x0`` (Salimans & Ho 2022):

- ``eps``: x0 = (x_t - sigma eps) / alpha
- ``x``:   eps = (x_t - alpha x0) / sigma
- ``v``:   x0 = alpha x_t - sigma v,  eps = sigma x_t + alpha v

At t = 1 (alpha = 0), v = -x0, which is why phase 1 of two-phase training is a plain
autoencoder regressing -x0 (Khungurn et al.).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from latentmed.diffusion.schedules import Schedule, get_schedule
from latentmed.errors import LatentmedError

PREDICTIONS = ("eps", "x", "v")
_MIN_SCALE = 1e-6


def check_prediction(prediction: str) -> str:
    """Validate a prediction-type name."""
    if prediction not in PREDICTIONS:
        raise LatentmedError(f"unknown prediction type {prediction!r}. Expected one of: {', '.join(PREDICTIONS)}.")
    return prediction


def _bcast(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(s, device=x.device, dtype=x.dtype)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    return s.reshape(-1, *([1] * (x.ndim - 1)))


def to_x0_eps(output: torch.Tensor, x_t: torch.Tensor, alpha, sigma, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a network ``output`` of type ``prediction`` into ``(x0_hat, eps_hat)``."""
    a, s = _bcast(alpha, x_t), _bcast(sigma, x_t)
    if prediction == "eps":
        eps = output
        x0 = (x_t - s * eps) / a.clamp_min(_MIN_SCALE)
    elif prediction == "x":
        x0 = output
        eps = (x_t - a * x0) / s.clamp_min(_MIN_SCALE)
    elif prediction == "v":
        x0 = a * x_t - s * output
        eps = s * x_t + a * output
    else:
        check_prediction(prediction)
        raise AssertionError  # unreachable
    return x0, eps


def target(x0: torch.Tensor, eps: torch.Tensor, alpha, sigma, prediction: str) -> torch.Tensor:
    """The regression target of ``prediction`` for clean ``x0`` and noise ``eps``."""
    a, s = _bcast(alpha, x0), _bcast(sigma, x0)
    if prediction == "eps":
        return eps
    if prediction == "x":
        return x0
    if prediction == "v":
        return a * eps - s * x0
    check_prediction(prediction)
    raise AssertionError  # unreachable


class Denoiser:
    """Wraps ``net(x_t, t, cond) -> output`` into ``(x_t, t, cond) -> (x0_hat, eps_hat)``.

    ``t`` is continuous in [0, 1], a scalar or one value per sample. ``clip_x0`` clamps x0_hat
    to a range (e.g. (-1, 1) for images) and recomputes eps_hat from it, as DDIM's
    ``clip_sample`` does.
    """

    def __init__(self, net: Callable[..., torch.Tensor], schedule: Schedule | str, prediction: str,
                 clip_x0: tuple[float, float] | None = None):
        self.net = net
        self.schedule = get_schedule(schedule)
        self.prediction = check_prediction(prediction)
        self.clip_x0 = clip_x0

    def __call__(self, x_t: torch.Tensor, t, cond: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float32, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)
        out = self.net(x_t, t, cond)
        x0, eps = to_x0_eps(out.to(x_t.dtype), x_t, alpha, sigma, self.prediction)
        if self.clip_x0 is not None:
            x0 = x0.clamp(*self.clip_x0)
            a, s = _bcast(alpha, x_t), _bcast(sigma, x_t)
            eps = torch.where(s > _MIN_SCALE, (x_t - a * x0) / s.clamp_min(_MIN_SCALE), eps)
        return x0, eps
