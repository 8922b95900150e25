"""DDIM sampling and deterministic DDIM inversion as pure functions (Song et al. 2021).

Both take the same descending grid ``timesteps = [t_0 = t_max > t_1 > ... > t_N = 0]``;
sampling walks it forwards, inversion backwards, so encode/decode always share one grid
(never ``t - T // N``: cf. MONAI#8600, diffusers#12633). For a discrete schedule (``linear``,
T = 1000 steps) :func:`ddim_timesteps` snaps the grid to integer steps ``t = k / T`` for every N,
which equals diffusers' ``timestep_spacing="trailing"``; continuous schedules get the uniform grid.

A step from t to s (eta = 0):  x_s = alpha_s x0_hat + sigma_s eps_hat   (DDIM eq. 12).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from latentmed.diffusion.parametrization import Denoiser
from latentmed.errors import LatentmedError

Callback = Callable[[dict], None]


def ddim_timesteps(num_steps: int, t_max: float = 1.0, t_min: float = 0.0, *, schedule=None) -> torch.Tensor:
    """Uniform descending grid of ``num_steps + 1`` times from ``t_max`` to ``t_min`` (float64).

    With a discrete ``schedule`` (``schedule.discrete_steps = T``) every time is rounded to the
    nearest step ``k / T`` (half to even, as numpy), so the network is only evaluated at steps it
    was trained on: for ``t_max = 1, t_min = 0`` the steps are diffusers' ``trailing`` spacing
    ``round(T - j T / N) - 1`` (0-based) followed by the clean ``t = 0``, for every N <= T.
    """
    n = int(num_steps)
    if n < 1:
        raise LatentmedError(f"number of DDIM steps must be >= 1, got {num_steps}.")
    T = getattr(schedule, "discrete_steps", None)
    if not T:
        return torch.linspace(t_max, t_min, n + 1, dtype=torch.float64)
    # step positions t_max T + j (t_min - t_max) T / N, in the float arithmetic of numpy's arange
    # (delta = (start + step) - start) that diffusers rounds, so that ties round the same way
    start = t_max * T
    delta = (start + (t_min - t_max) * T / n) - start
    steps = start + torch.arange(n + 1, dtype=torch.float64) * delta
    grid = torch.round(steps) / T
    if not bool((grid[1:] < grid[:-1]).all()):
        raise LatentmedError(f"{n} DDIM steps over [{t_min:g}, {t_max:g}] do not fit the schedule's {T} discrete "
                             f"steps (two grid points round to the same step); use at most "
                             f"{int(round((t_max - t_min) * T))} steps.")
    return grid


def _check_grid(timesteps) -> torch.Tensor:
    ts = torch.as_tensor(timesteps, dtype=torch.float64).flatten()
    if ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
        raise LatentmedError("timesteps must be a strictly decreasing list of at least two times in [0, 1], "
                             f"got {ts.tolist()[:6]}{'...' if ts.numel() > 6 else ''}.")
    if ts[0] > 1 or ts[-1] < 0:
        raise LatentmedError(f"timesteps must lie in [0, 1], got range [{ts[-1]:.4g}, {ts[0]:.4g}].")
    return ts


def ddim_step(denoiser: Denoiser, x: torch.Tensor, t: float, s: float, *, cond: Any = None, eta: float = 0.0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from time ``t`` to time ``s`` (``s < t`` samples, ``s > t`` inverts).

    Returns ``(x_s, x0_hat)``. ``eta > 0`` adds the stochastic term of DDIM eq. 16 (sampling only).
    """
    sched = denoiser.schedule
    x0, eps = denoiser(x, t, cond)
    a_s = sched.alpha(torch.tensor(s, dtype=torch.float64)).item()
    s_s = sched.sigma(torch.tensor(s, dtype=torch.float64)).item()
    if eta > 0 and s < t:
        a_t = sched.alpha(torch.tensor(t, dtype=torch.float64)).item()
        s_t = sched.sigma(torch.tensor(t, dtype=torch.float64)).item()
        c = eta * (s_s / max(s_t, 1e-12)) * (1 - (a_t / max(a_s, 1e-12)) ** 2) ** 0.5 if a_s > 0 else 0.0
        c = min(c, s_s)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return a_s * x0 + (s_s**2 - c**2) ** 0.5 * eps + c * noise, x0
    return a_s * x0 + s_s * eps, x0


@torch.no_grad()
def ddim_sample(denoiser: Denoiser, x_T: torch.Tensor, timesteps, *, cond: Any = None, eta: float = 0.0,
                callback: Callback | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Integrate from ``x_T`` at ``timesteps[0]`` down to ``timesteps[-1]`` (usually 0).

    ``callback`` receives ``{"i", "t", "s", "x", "x0_hat"}`` after each step.
    """
    ts = _check_grid(timesteps)
    x = x_T
    for i in range(len(ts) - 1):
        t, s = float(ts[i]), float(ts[i + 1])
        x, x0 = ddim_step(denoiser, x, t, s, cond=cond, eta=eta, generator=generator)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "x": x, "x0_hat": x0})
    return x


@torch.no_grad()
def ddim_invert(denoiser: Denoiser, x0: torch.Tensor, timesteps, *, cond: Any = None,
                callback: Callback | None = None) -> torch.Tensor:
    """Deterministic DDIM inversion: walk the same grid backwards, from ``timesteps[-1]`` to ``timesteps[0]``.

    Each step evaluates the denoiser at the current (lower) time and moves to the next higher
    one, the usual first-order inversion (DiffAE's ``encode_stochastic``).
    """
    ts = _check_grid(timesteps).flip(0)
    x = x0
    for i in range(len(ts) - 1):
        t, s = float(ts[i]), float(ts[i + 1])
        x, x0_hat = ddim_step(denoiser, x, t, s, cond=cond)
        if callback is not None:
            callback({"i": i, "t": t, "s": s, "x": x, "x0_hat": x0_hat})
    return x
