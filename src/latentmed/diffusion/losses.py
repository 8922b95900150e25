"""Diffusion training losses: per-sample values, no optimizer (EDM ``loss.py`` style)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from latentmed.diffusion.parametrization import _bcast, target
from latentmed.diffusion.schedules import Schedule


def sample_times(batch: int, kind: str = "uniform", *, device=None, num_steps: int = 1000,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Training times: ``uniform`` on (0, 1], ``discrete`` on {1..T}/T (DDPM), ``one`` = all t = 1."""
    if kind == "one":
        return torch.ones(batch, device=device)
    if kind == "discrete":
        return (torch.randint(1, num_steps + 1, (batch,), generator=generator) / num_steps).to(device)
    if kind == "uniform":
        return (1 - torch.rand(batch, generator=generator)).to(device)  # (0, 1]
    raise ValueError(f"unknown time sampling {kind!r}")


def add_noise(x0: torch.Tensor, t: torch.Tensor, schedule: Schedule, noise: torch.Tensor) -> torch.Tensor:
    """x_t = alpha(t) x0 + sigma(t) eps."""
    return _bcast(schedule.alpha(t), x0) * x0 + _bcast(schedule.sigma(t), x0) * noise


def diffusion_loss(net: Callable[..., torch.Tensor], x0: torch.Tensor, t: torch.Tensor, schedule: Schedule,
                   prediction: str, *, cond: Any = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample MSE between ``net(x_t, t, cond)`` and the ``prediction`` target (mean over non-batch dims)."""
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = add_noise(x0, t, schedule, noise)
    out = net(x_t, t, cond)
    tgt = target(x0, noise, schedule.alpha(t), schedule.sigma(t), prediction)
    return (out.float() - tgt.float()).pow(2).flatten(1).mean(1)
