"""LSD-EBM: latent-space diffusion with an energy-based reverse step (Wang et al., DGM4MICCAI 2024).

Two recipes share this one model (:class:`~latentmed.shape.configs.LSDEBMConfig`): ours, and the authors'
code (``recipe="reference"``; ``Seven-year-promise/LSD_EBM_MRI`` at 0ea769a, ``3D/LSD_EBM/``, ``train`` =
``LSD_EBM_code/train_lsd_ebm_vert.py``). Chain coefficients follow the reference's indexing
(train:272-283): ``a[i]``, i = 0..T, scales the step into index i, ``sigma[i] = sqrt(1 - a[i]^2)``,
``a_cum[t] = prod_{i<=t} a[i]``, ``sigma_cum[t] = sqrt(1 - a_cum[t]^2)``; ours has ``a[0] = 1`` (z_0 is
the encoding itself), the reference a tiny first step ``a[0] = sqrt(1 - beta_0)``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch.nn import functional as F

from latentmed.errors import expect
from latentmed.shape.base import EncoderMixin, ShapeModel, ShapeOutput, check_masks
from latentmed.shape.configs import LSDEBMConfig, sampler_config
from latentmed.shape.langevin import frozen_parametrizations, langevin, randn
from latentmed.shape.nets import EnergyMLP, RawTimeEnergyMLP


def _subsample(num_steps: int) -> torch.Tensor:
    """Gao et al.'s indices ``[0, s, ..., (T-1)s, 999]`` into 1000 DDPM steps, ``s = 1000 // (2(T-1))``."""
    stride = 1000 // (2 * (num_steps - 1)) if num_steps > 1 else 0
    return torch.tensor([i * stride for i in range(num_steps)] + [999])


def lsd_noise_schedule(num_steps: int, kind: str = "linear", alpha_bar_T: float = 0.05) -> torch.Tensor:
    """Per-step forward noise ``s_t^2``, t = 1..T, as float64 ``[T]`` (see :class:`LSDEBMConfig`).

    ``"linear"``: DDPM linear betas (1e-4..0.02, 1000 steps) subsampled as in Gao et al.'s
    ``get_sigma_schedule``; ``"constant"``: ``1 - alpha_bar_T^(1/T)`` at every step;
    ``"reference"``: betas 1e-4..0.01 (train:237-238, :272-279).
    """
    expect(num_steps >= 1, f"num_steps={num_steps}: expected T >= 1.")
    return 1.0 - chain_scales(num_steps, kind, alpha_bar_T)[1:] ** 2


def chain_scales(num_steps: int, kind: str = "linear", alpha_bar_T: float = 0.05) -> torch.Tensor:
    """``a[i]``, i = 0..T (float64 ``[T+1]``): the scale of the forward step into index i (module docstring)."""
    expect(kind in ("linear", "constant", "reference"), f"schedule={kind!r}: expected linear, constant or reference.")
    if kind == "constant":
        s2 = torch.full((num_steps,), 1.0 - alpha_bar_T ** (1.0 / num_steps), dtype=torch.float64)
        return torch.cat([torch.ones(1, dtype=torch.float64), (1 - s2).sqrt()])
    from latentmed.diffusion.schedules import LinearBetaSchedule

    beta_end = 0.01 if kind == "reference" else 0.02
    abar = LinearBetaSchedule(beta_end=beta_end).alphas_cumprod()  # abar[i] = prod_{j<=i} (1 - beta_j)
    idx = _subsample(num_steps)
    a = (abar[idx[1:]] / abar[idx[:-1]]).sqrt()
    first = abar[idx[0]].sqrt() if kind == "reference" else torch.ones((), dtype=torch.float64)
    return torch.cat([first.reshape(1), a])


class LSDEBM(EncoderMixin, ShapeModel):
    """Latent-space diffusion EBM (Wang et al. 2024, eqs. 1-4, Algorithms 1-3); options in :class:`LSDEBMConfig`.

    - Encoder q(z0|x) = N(mean, exp(logvar)): separate heads, or the reference's shared layer.
    - Forward chain (eq. 1): ``z_{t+1} = a[t+1] z_t + forward_noise * sigma[t+1] eps``; ``q(z_t|z0)`` in
      one draw with ``a_cum``, ``sigma_cum`` (train:127-137, :179-191).
    - Reverse step (eq. 2): ``p(z_t|z_{t+1}) ∝ exp(-E(y, t) - |z_{t+1} - y|^2 / (2 sigma[t+1]^2))`` on
      ``y = a[t+1] z_t`` (``scaled_reverse``), sampled by K Langevin steps (eq. 4; train:93-125), then
      ``z_t = y / a[t+1]`` (``/ 1`` at the step from T when ``rescale_last`` is off, train:282-283).
    - Training (Algorithm 1; :class:`~latentmed.shape.objectives.ShapeObjective`): z0 ~ q(z0|x) decoded;
      t ~ U{0..T-1}; the energy of ``a[t+1] z_t`` (positive) against the reverse Langevin sample from
      z_{t+1} (negative), train:484-519.
    - Refinement (Algorithm 2): z0 = the posterior mean or a sample, ``z_t ~ q(z_t|z0)``, reverse chain
      to 0, decode (get_model_lsd_ebm.py:362-373). Sampling (Algorithm 3): z_T ~ N(0, I), reverse chain.
    """

    config_class = LSDEBMConfig

    def __init__(self, config: LSDEBMConfig) -> None:
        super().__init__(config, encoder=True)
        c = config
        if c.energy_net == "mlp-raw-t":
            self.energy = RawTimeEnergyMLP(c.latent_dim, c.energy_hidden, c.energy_layers)
        else:
            self.energy = EnergyMLP(c.latent_dim, c.energy_hidden, c.energy_layers, time_dim=c.time_dim)
        for name, value in self._coefficients(c.num_steps).items():
            self.register_buffer(name, value, persistent=False)
        self.energy_enabled = True  # the `energy off` control sets it to False (latentmed.shape.controls)

    def _coefficients(self, num_steps: int) -> dict[str, torch.Tensor]:
        """``a``, ``sigma``, ``a_cum``, ``sigma_cum`` [num_steps + 1] of this model's schedule kind."""
        c = self.config
        a = chain_scales(num_steps, c.schedule, c.alpha_bar_T)
        a_cum = torch.cumprod(a, 0)
        return {"a": a.float(), "sigma": (1 - a ** 2).sqrt().float(), "a_cum": a_cum.float(),
                "sigma_cum": (1 - a_cum ** 2).clamp_min(0).sqrt().float()}

    @contextlib.contextmanager
    def _inference_schedule(self, c: LSDEBMConfig) -> Iterator[None]:
        """Inside: the chain coefficients of ``c.inference_T`` steps (the reference's evaluation computes its
        schedule with ``diff_timesteps=30`` whatever T the model was trained with, get_model_lsd_ebm.py:239,
        :253-265, imported by reconstruction_metrics.py:17-18); unset: the trained schedule."""
        if c.inference_T is None or c.inference_T == c.num_steps:
            yield
            return
        trained = {k: getattr(self, k) for k in ("a", "sigma", "a_cum", "sigma_cum")}
        device = trained["a"].device
        for k, v in self._coefficients(c.inference_T).items():
            setattr(self, k, v.to(device))
        try:
            yield
        finally:
            for k, v in trained.items():
                setattr(self, k, v)

    @property
    def sigma2(self) -> torch.Tensor:
        """``s_{t+1}^2`` for t = 0..T-1 (the noise of the step t -> t+1, before ``forward_noise``)."""
        return self.sigma[1:] ** 2

    @property
    def alpha_bar(self) -> torch.Tensor:
        """``a_cum[t]^2``, t = 0..T."""
        return self.a_cum ** 2

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar); ``posterior="shared"``: logvar = 1e-6 + softplus(mean) (model_Unet_lsdebm.py:381-382)."""
        mean, logvar = self.encoder(x)
        if self.config.posterior == "shared":
            logvar = 1e-6 + F.softplus(mean)
        return mean, logvar

    # --- the chain -----------------------------------------------------------------------
    def energy_total(self, z: torch.Tensor, t: torch.Tensor | None = None,
                     temb: torch.Tensor | None = None) -> torch.Tensor:
        """E(z, t) [B], plus |z|^2/2 when ``config.gaussian_reference``; 0 while ``energy_enabled`` is off."""
        if not self.energy_enabled:
            return z.sum(1) * 0.0
        e = self.energy(z, t, temb)
        return e + 0.5 * z.pow(2).sum(1) if self.config.gaussian_reference else e

    def _steps(self, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t
        return torch.full((like.shape[0],), t, device=like.device, dtype=torch.long)

    def diffuse(self, z0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample q(z_t|z0) = a_cum[t] z0 + forward_noise * sigma_cum[t] eps for per-sample steps ``t`` [B]."""
        noise = self.config.forward_noise * self.sigma_cum[t][:, None]
        return self.a_cum[t][:, None] * z0 + noise * randn(z0.shape, generator, z0)

    def forward_step(self, z_t: torch.Tensor, t: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """One step of eq. (1): z_{t+1} = a[t+1] z_t + forward_noise * sigma[t+1] eps."""
        noise = self.config.forward_noise * self.sigma[t + 1][:, None]
        return self.a[t + 1][:, None] * z_t + noise * randn(z_t.shape, generator, z_t)

    def _scale(self, t: torch.Tensor, c: LSDEBMConfig | None = None) -> torch.Tensor:
        """``a[t+1]`` [B, 1] with ``scaled_reverse`` (1 at t+1 = T without ``rescale_last``), else 1."""
        c = c or self.config
        a = self.a[t + 1][:, None]
        if not c.scaled_reverse:
            return torch.ones_like(a)
        if not c.rescale_last:  # a_s_prev[-1] = 1: the last index of the schedule in use
            a = torch.where((t + 1 == len(self.a) - 1)[:, None], torch.ones_like(a), a)
        return a

    def reverse_sample(self, z_next: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None,
                       c: LSDEBMConfig | None = None) -> torch.Tensor:
        """Langevin sample of the energy's variable y given z_{t+1} (``c``: the sampler settings).

        K steps on ``E(y, t) + |z_{t+1} - y|^2 / (2 sigma[t+1]^2)`` (train:108-109) of size
        ``langevin_step_size`` or ``langevin_step_scale * sigma[t+1]^2``, from z_{t+1} or N(0, I).
        """
        c = c or self.config
        s2 = self.sigma[t + 1][:, None] ** 2
        anchor = z_next.detach()
        with torch.no_grad():
            temb = self.energy.time_embedding(t)

        def conditional_energy(y: torch.Tensor) -> torch.Tensor:
            return self.energy_total(y, temb=temb) + (anchor - y).pow(2).sum(1) / (2 * s2[:, 0])

        step = c.langevin_step_size if c.langevin_step_size is not None else c.langevin_step_scale * s2
        start = randn(anchor.shape, generator, anchor) if c.langevin_init == "noise" else anchor
        with frozen_parametrizations(self.energy):
            return langevin(conditional_energy, start, c.langevin_steps, step, noise_scale=c.langevin_noise,
                            generator=generator)

    def reverse_step(self, z_next: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None,
                     c: LSDEBMConfig | None = None) -> torch.Tensor:
        """Sample p(z_t|z_{t+1}) (eq. 2); ``t`` [B] per sample: ``z_t = y / a`` (see :meth:`_scale`)."""
        return self.reverse_sample(z_next, t, generator, c) / self._scale(t, c)

    def reverse_chain(self, z_t: torch.Tensor, t: int, generator: torch.Generator | None = None,
                      callback: Callable[[int, torch.Tensor], None] | None = None,
                      c: LSDEBMConfig | None = None) -> torch.Tensor:
        """Run the reverse chain from step ``t`` down to 0; ``callback(step, z)`` sees z_t ... z_0."""
        expect(0 <= t <= self.config.num_steps, f"steps={t}: expected 0..T={self.config.num_steps}.")
        z = z_t.detach()
        if callback is not None:
            callback(t, z)
        for step in range(t - 1, -1, -1):
            z = self.reverse_step(z, self._steps(step, z), generator, c)
            if callback is not None:
                callback(step, z)
        return z

    # --- training (Algorithm 1) -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> ShapeOutput:
        """Algorithm 1's quantities: z0 ~ q(z0|x) and its logits; t ~ U{0..T-1}; the energy of the
        forward chain's ``a z_t`` (positive) and of the reverse Langevin sample y~ from z_{t+1} (negative)."""
        check_masks(x, self.config.image_size)
        mean, logvar = self.encode(x)
        z0 = self.reparameterize(mean, logvar)
        logits = self.decoder(z0)
        t = torch.randint(0, self.config.num_steps, (x.shape[0],), device=x.device)
        z_pos = self.diffuse(z0.detach(), t)
        z_next = self.forward_step(z_pos, t)
        y_neg = self.reverse_sample(z_next, t)
        return ShapeOutput(logits, mean, logvar, energy_pos=self.energy_total(self._scale(t) * z_pos, t),
                           energy_neg=self.energy_total(y_neg, t),
                           energy_scale=self.sigma[1] / self.sigma[t + 1], latent=z0)

    # --- inference (Algorithms 2 and 3) -----------------------------------------------------
    def start_latent(self, x: torch.Tensor, generator: torch.Generator | None = None,
                     recipe: str | None = None) -> torch.Tensor:
        """z0 of a mask: the posterior mean, or a sample with ``refine_posterior="sample"`` (of ``recipe``)."""
        c = sampler_config(self.config, recipe)
        with torch.no_grad():
            mean, logvar = self.encode(x)
            return self.reparameterize(mean, logvar, generator) if c.refine_posterior == "sample" else mean

    def refine_latent(self, x: torch.Tensor, steps: int | None = None, generator: torch.Generator | None = None,
                      callback: Callable[[int, torch.Tensor], None] | None = None, *,
                      recipe: str | None = None) -> torch.Tensor:
        """Algorithm 2 in latent space: z0 (:meth:`start_latent`), z_t ~ q(z_t|z0), reverse chain to z_0.

        ``recipe`` (``"ours"`` | ``"reference"``; unset: the model's) picks the inference settings and
        the default t (1 or T); the schedule and networks stay the trained model's.
        """
        check_masks(x, self.config.image_size)
        c = sampler_config(self.config, recipe)
        t = c.default_refine_steps if steps is None else steps
        expect(isinstance(t, int) and 0 <= t <= c.num_steps,
               f"steps={t}: expected a refinement step t in 0..T={c.num_steps} for this model "
               "(0: the autoencoder alone, no chain).")
        z0 = self.start_latent(x, generator, recipe)
        with self._inference_schedule(c):
            with torch.no_grad():
                z_t = self.diffuse(z0, self._steps(t, z0), generator)
            return self.reverse_chain(z_t, t, generator, callback, c)

    def refine(self, x: torch.Tensor, *, steps: int | None = None, generator: torch.Generator | None = None,
               callback: Callable[[int, torch.Tensor], None] | None = None, recipe: str | None = None
               ) -> torch.Tensor:
        """Algorithm 2: voxel probabilities of the refined mask (threshold at 0.5)."""
        z = self.refine_latent(x, steps, generator, callback, recipe=recipe)
        with torch.no_grad():
            return self.decode(z)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Algorithm 3: z_T ~ N(0, I), reverse chain, decode."""
        z = self.reverse_chain(self._prior_noise(n, generator), self.config.num_steps, generator, callback)
        with torch.no_grad():
            return self.decode(z)


__all__ = ["LSDEBM", "chain_scales", "lsd_noise_schedule"]
