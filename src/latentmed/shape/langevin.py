"""Batched Langevin dynamics on a latent energy (pure function; no python loop over samples).

Update (LSD-EBM paper, eq. 4; Pang et al. 2020): ``z <- z - (lambda/2) grad U(z) + N(0, lambda I)``,
where ``lambda`` may differ per sample (``[B, 1]``). Gradients of ``U(z).sum()`` with
``torch.autograd.grad`` give every sample's gradient in one backward pass, since samples
do not interact; model parameters collect no gradient.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn


def randn(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise on ``like``'s device/dtype, drawn from ``generator`` (which may live on the CPU)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(tuple(shape), generator=generator, device=device).to(like.device, like.dtype)


def langevin(energy: Callable[[torch.Tensor], torch.Tensor], z_init: torch.Tensor, n_steps: int,
             step_size: float | torch.Tensor, *, noise: bool = True, noise_scale: float = 1.0,
             generator: torch.Generator | None = None,
             callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Run ``n_steps`` of Langevin dynamics on ``energy`` (per-sample values ``[B]``) from ``z_init``.

    Args:
        energy: ``U(z) -> [B]``; the stationary density is proportional to ``exp(-U)``.
        z_init: starting points ``[B, d]`` (detached).
        step_size: ``lambda``: a float or a tensor broadcastable to ``z`` (e.g. ``[B, 1]``).
        noise: add ``N(0, lambda)`` (``False`` gives gradient descent, for tests and MAP).
        noise_scale: multiplies the noise's standard deviation (1: eq. 4; the LSD-EBM reference
            code uses 0.01, a near-deterministic descent).
        generator: torch generator for the noise (reproducible chains).
        callback: ``callback(k, z)`` after each step.
    Returns:
        the final ``z`` (detached).
    """
    z = z_init.detach().clone()
    step = torch.as_tensor(step_size, dtype=z.dtype, device=z.device)
    scale = step.sqrt() * noise_scale
    noise = noise and noise_scale > 0
    for k in range(n_steps):
        with torch.enable_grad():
            z.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(z).sum(), z)
        with torch.no_grad():
            z = z - 0.5 * step * grad
            if noise:
                z = z + scale * randn(z.shape, generator, z)
        if callback is not None:
            callback(k, z)
    return z.detach()


@contextlib.contextmanager
def frozen_parametrizations(module: nn.Module) -> Iterator[None]:
    """Compute parametrized weights (e.g. spectral norm) once, without autograd history, for a whole chain.

    Inside the context each ``weight`` is a cached constant: Langevin steps skip the power
    iteration and collect no parameter gradients (a speed-up of several times on CPU).
    """
    from torch.nn.utils import parametrize

    with parametrize.cached():
        with torch.no_grad():
            for m in module.modules():
                if parametrize.is_parametrized(m):
                    for name in m.parametrizations:
                        getattr(m, name)
        yield
