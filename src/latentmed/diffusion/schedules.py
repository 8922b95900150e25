"""Variance-preserving noise schedules in continuous time.

A schedule is a small object: ``alpha(t)``, ``sigma(t)`` with ``alpha^2 + sigma^2 = 1`` and
``log_snr(t) = log(alpha^2 / sigma^2)`` for ``t`` in [0, 1] (``t = 0`` clean, ``t = 1`` noise).
``x_t = alpha(t) x_0 + sigma(t) eps``. Discrete grids are derived from it (see ``samplers``).

- ``linear``: DDPM linear betas 1e-4..0.02 over T=1000 (Ho et al. 2020); exact at the discrete
  steps ``t = (i + 1) / T`` (0-based step ``i``), log-linear in between; ``t = 0`` is clean.
- ``scaled_linear``: Stable Diffusion's betas, ``linspace(sqrt 0.00085, sqrt 0.012, 1000) ** 2``
  (diffusers ``DDPMScheduler(beta_schedule="scaled_linear")``).
- :class:`TabulatedSchedule`: any discrete table ``alphas_cumprod[k]``, ``k = 0..T-1`` (a diffusers
  ``scheduler/`` folder loads into it with :meth:`TabulatedSchedule.from_diffusers`).
  Diffusers' integer timestep ``k`` (noise ``alphas_cumprod[k]``) is ``t = (k + 1) / T`` here
  (:meth:`TabulatedSchedule.time_of_step`; :meth:`~TabulatedSchedule.step_of_time` inverts it).
- ``cosine``: alpha = cos(pi t / 2) (Nichol & Dhariwal 2021 without offset), i.e. ``sc-1``.
- ``sc-<S>``: shifted cosine, alpha^2 = sigmoid(-2 ln tan(pi t / 2) + 2 ln S) (Hoogeboom et al.
  2023; Khungurn et al. two-phase training use ``sc-4``).
- ``inverted``: alpha = sqrt((2/pi) arccos(sqrt t)) (Hudson et al. 2023, as reconstructed by
  Khungurn et al.).
"""

from __future__ import annotations

import math

import torch

from latentmed.errors import LatentmedError

_EPS = 1e-12


class Schedule:
    """Base class: subclasses define ``alpha_squared(t)``; everything else derives from it."""

    name: str = "schedule"
    #: ``T`` when the schedule is defined at integer steps ``t = k / T`` only (a network trained on
    #: them has never seen other times); ``None`` for continuous-time schedules.
    discrete_steps: int | None = None

    def alpha_squared(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _t(self, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64 if not torch.is_tensor(t) else None)
        return t.to(torch.float64)

    def alpha(self, t) -> torch.Tensor:
        """Signal scale alpha(t) (float32 unless ``t`` is float64)."""
        out_dtype = t.dtype if torch.is_tensor(t) and t.is_floating_point() else torch.float32
        return self.alpha_squared(self._t(t)).clamp(0, 1).sqrt().to(out_dtype)

    def sigma(self, t) -> torch.Tensor:
        """Noise scale sigma(t) = sqrt(1 - alpha(t)^2)."""
        out_dtype = t.dtype if torch.is_tensor(t) and t.is_floating_point() else torch.float32
        return (1 - self.alpha_squared(self._t(t))).clamp(0, 1).sqrt().to(out_dtype)

    def log_snr(self, t) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2); +inf at t=0, -inf where alpha=0."""
        out_dtype = t.dtype if torch.is_tensor(t) and t.is_floating_point() else torch.float32
        a2 = self.alpha_squared(self._t(t))
        return (torch.log(a2) - torch.log1p(-a2)).to(out_dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class TabulatedSchedule(Schedule):
    """A discrete schedule given by its table ``alphas_cumprod[k]``, ``k = 0..T-1`` (DDPM eq. 4's alpha_bar).

    Exact at ``t_k = (k + 1) / T``, log-linear in ``alpha_bar`` in between, clean at ``t = 0``
    (k-diffusion likewise takes a discrete schedule as data, ``external.py`` ``DiscreteSchedule``).
    """

    def __init__(self, alphas_cumprod, name: str = "tabulated"):
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
        if abar.numel() < 1 or not bool(((abar > 0) & (abar <= 1)).all()) or bool((abar[1:] > abar[:-1]).any()):
            raise LatentmedError(f"schedule {name!r}: alphas_cumprod must be a non-increasing table of numbers in "
                                 f"(0, 1], got {abar.numel()} values in [{abar.min().item() if abar.numel() else 0:.3g}, "
                                 f"{abar.max().item() if abar.numel() else 0:.3g}]; pass a scheduler's alphas_cumprod.")
        self.name = name
        self.num_steps = self.discrete_steps = int(abar.numel())
        # cumulative log alpha_bar at integer positions 0..T (position 0 = clean, alpha_bar = 1)
        self._log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), abar.log()])

    @classmethod
    def from_betas(cls, betas, name: str = "tabulated") -> "TabulatedSchedule":
        """``alphas_cumprod = prod(1 - betas)``, accumulated in log space (float64)."""
        betas = torch.as_tensor(betas, dtype=torch.float64)
        return cls(torch.cumsum(torch.log1p(-betas), 0).exp(), name=name)

    @classmethod
    def from_diffusers(cls, scheduler) -> "TabulatedSchedule":
        """The table of a diffusers scheduler object, or of a ``scheduler/`` folder (``scheduler_config.json``)."""
        if not hasattr(scheduler, "alphas_cumprod"):
            from pathlib import Path

            from diffusers import DDPMScheduler

            folder = Path(scheduler)
            if not (folder / "scheduler_config.json").is_file():
                raise LatentmedError(f"{folder}: no scheduler_config.json; expected a diffusers scheduler/ folder "
                                     "(e.g. a Stable Diffusion folder's scheduler/).")
            scheduler = DDPMScheduler.from_pretrained(str(folder))
        return cls(scheduler.alphas_cumprod, name=f"diffusers-{scheduler.config.beta_schedule}")

    def alphas_cumprod(self) -> torch.Tensor:
        """The discrete alpha_bar[k], k = 0..T-1, as in DDPM / diffusers."""
        return self._log_abar[1:].exp()

    def time_of_step(self, k) -> torch.Tensor:
        """Diffusers' integer timestep ``k`` (noise level ``alphas_cumprod[k]``) -> ``t = (k + 1) / T`` (float64)."""
        k = torch.as_tensor(k, dtype=torch.float64)
        if bool(((k < 0) | (k >= self.num_steps) | (k != k.round())).any()):
            raise LatentmedError(f"timestep {k.tolist()}: expected integers in [0, {self.num_steps}) "
                                 f"(diffusers' indexing of a {self.num_steps}-step schedule).")
        return (k + 1) / self.num_steps

    def step_of_time(self, t) -> torch.Tensor:
        """``t`` -> diffusers' integer timestep ``round(t T) - 1`` (int64; -1 is the clean ``t = 0``)."""
        return torch.round(torch.as_tensor(t, dtype=torch.float64) * self.num_steps).long() - 1

    def alpha_squared(self, t: torch.Tensor) -> torch.Tensor:
        pos = (t.clamp(0, 1) * self.num_steps)
        lo = pos.floor().clamp(max=self.num_steps - 1).long()
        frac = pos - lo
        table = self._log_abar.to(t.device)
        return torch.exp(table[lo] * (1 - frac) + table[lo + 1] * frac)


class LinearBetaSchedule(TabulatedSchedule):
    """DDPM linear-beta schedule, exact at ``t_i = (i + 1) / T`` and log-linear in between."""

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, num_steps: int = 1000):
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        super().__init__(torch.cumsum(torch.log1p(-betas), 0).exp(), name="linear")


def scaled_linear_schedule(beta_start: float = 0.00085, beta_end: float = 0.012,
                           num_steps: int = 1000) -> TabulatedSchedule:
    """Stable Diffusion's ``scaled_linear`` betas: ``linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2``."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_steps, dtype=torch.float64) ** 2
    return TabulatedSchedule.from_betas(betas, name="scaled_linear")


class ShiftedCosineSchedule(Schedule):
    """Shifted cosine SC-S: alpha^2 = S^2 cos^2(pi t/2) / (S^2 cos^2(pi t/2) + sin^2(pi t/2))."""

    def __init__(self, shift: float = 1.0):
        if not shift > 0:
            raise LatentmedError(f"shifted cosine: shift S must be > 0, got {shift}.")
        self.shift = float(shift)
        self.name = "cosine" if shift == 1.0 else f"sc-{shift:g}"

    def alpha_squared(self, t: torch.Tensor) -> torch.Tensor:
        c = torch.cos(math.pi * t / 2) ** 2
        s = torch.sin(math.pi * t / 2) ** 2
        s2c = self.shift**2 * c
        return torch.where(t >= 1, torch.zeros_like(t), s2c / (s2c + s).clamp_min(_EPS))


class InvertedSchedule(Schedule):
    """Hudson et al. (2023) 'inverted' schedule: alpha^2 = (2/pi) arccos(sqrt t)."""

    name = "inverted"

    def alpha_squared(self, t: torch.Tensor) -> torch.Tensor:
        return (2 / math.pi) * torch.arccos(t.clamp(0, 1).sqrt())


SCHEDULE_NAMES = ("linear", "scaled_linear", "cosine", "sc-<S>", "inverted")


def get_schedule(name: str | Schedule) -> Schedule:
    """Schedule by name: ``linear``, ``scaled_linear``, ``cosine``, ``sc-<S>`` (S > 0, e.g. ``sc-4``), ``inverted``."""
    if isinstance(name, Schedule):
        return name
    key = str(name).strip().lower()
    if key == "linear":
        return LinearBetaSchedule()
    if key == "scaled_linear":
        return scaled_linear_schedule()
    if key == "cosine":
        return ShiftedCosineSchedule(1.0)
    if key == "inverted":
        return InvertedSchedule()
    if key.startswith("sc-"):
        try:
            return ShiftedCosineSchedule(float(key[3:]))
        except ValueError:
            pass
    raise LatentmedError(f"unknown noise schedule {name!r}. Expected one of: {', '.join(SCHEDULE_NAMES)} "
                         "(e.g. 'sc-4').")
