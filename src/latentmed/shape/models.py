"""VAE, LEBM and LSD-EBM for 3D binary masks (Wang et al., DGM4MICCAI 2024, and its baselines).

All three share the interface used by training, refinement and evaluation:

- ``model(x) -> ShapeOutput``: what the training objective needs from high-quality masks ``x``
  [B,1,S,S,S] in {0,1} (decoder logits, posterior moments, energies of positive and negative
  latents, drawn by the model's own Langevin chains); the per-sample losses live in
  :mod:`latentmed.shape.objectives`;
- ``model.refine(x_coarse) -> probabilities`` [B,1,S,S,S] (Algorithm 2; threshold at 0.5);
- ``model.sample(n) -> probabilities`` (Algorithm 3 for LSD-EBM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from latentmed.errors import expect
from latentmed.pretrained import PretrainedMixin
from latentmed.shape.langevin import frozen_parametrizations, langevin, randn
from latentmed.shape.nets import EnergyMLP, MaskDecoder3d, MaskEncoder3d


@dataclass
class MaskNetConfig:
    """The 3D conv encoder/decoder every shape model shares (paper: d=100, 128^3)."""

    image_size: int = 64
    latent_dim: int = 100
    base_channels: int = 16
    max_channels: int = 128

    def __post_init__(self) -> None:
        expect(self.latent_dim >= 1, f"latent_dim={self.latent_dim}: expected >= 1.")


@dataclass
class VAEConfig(MaskNetConfig):
    """VAE baseline: the encoder/decoder alone (``kl_weight``: the run's objective section)."""


@dataclass
class LEBMConfig(MaskNetConfig):
    """Latent EBM prior model (Pang et al., NeurIPS 2020): short-run Langevin for prior and posterior.

    Defaults follow Pang et al.'s code (K0=60, s0=0.4, K1=20, s1=0.1).
    """

    energy_hidden: int = 200
    energy_layers: int = 3
    prior_steps: int = 60
    prior_step_size: float = 0.4
    posterior_steps: int = 20
    posterior_step_size: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        expect(self.prior_steps >= 1 and self.posterior_steps >= 1, "prior_steps/posterior_steps: expected >= 1.")
        expect(self.prior_step_size > 0 and self.posterior_step_size > 0, "Langevin step sizes must be > 0.")


@dataclass
class LSDEBMConfig(MaskNetConfig):
    """LSD-EBM (paper: T in {2, 15, 20}, d=100).

    - ``num_steps`` = T. ``schedule``: ``"linear"`` (default; the reference code's and Gao et
      al.'s / Yu et al.'s schedule): DDPM's linear betas 1e-4..0.02 over 1000 steps, subsampled at
      ``idx = [0, s, 2s, ..., (T-1)s, 999]`` with ``s = 1000 // (2(T-1))``, so that
      ``1 - s_t^2 = alpha_bar[idx_t] / alpha_bar[idx_{t-1}]`` (first step ~0.009 at T=20, z_T
      ~ pure noise); ``"constant"``: one noise level ``s_t^2 = 1 - alpha_bar_T^(1/T)`` (our
      earlier choice).
    - ``scaled_reverse``: the reverse step samples ``y = a_{t+1} z_t`` from
      ``exp(-E(y, t) - |z_{t+1} - y|^2 / (2 s_{t+1}^2))`` and returns ``z_t = y / a_{t+1}``
      (Gao et al. 2021, Yu et al. 2022; the forward mean of z_{t+1} is ``a z_t``, not ``z_t``).
      ``False``: the paper's eq. (2) as printed (energy on z_t, shrinks the latent by ``a``
      per step).
    - Reverse steps run ``langevin_steps`` (K) Langevin steps of size
      ``lambda_t = langevin_step_scale * s_{t+1}^2`` with noise ``langevin_noise * N(0, lambda_t)``
      (1: the paper's eq. 4; the reference code uses 0.01 with K up to 300, a near-deterministic
      descent).
    - ``gaussian_reference``: use ``E(z, t) + |z|^2 / 2`` as the energy (the MLP then models the
      departure from N(0, I), as in Pang et al.'s prior ``exp(-E) N(0, I)``); off by default, which
      is the paper's energy as written.
    - ``refine_steps``: how far Algorithm 2 diffuses a coarse input (1..T; default 1; the paper
      refines from T). Measured on the 64^3 spine3d bed (3 seeds, experiments/lsd_ebm.md): t = 0, 1
      and 5 tie, and from t=T the chain forgets the input (Dice 0.16-0.23), so 1 stays the default.
    """

    num_steps: int = 15
    schedule: str = "linear"
    alpha_bar_T: float = 0.05
    scaled_reverse: bool = True
    energy_hidden: int = 200
    energy_layers: int = 3
    time_dim: int = 64
    langevin_steps: int = 20
    langevin_step_scale: float = 0.2
    langevin_noise: float = 1.0
    refine_steps: int | None = None
    gaussian_reference: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        expect(self.num_steps >= 1, f"num_steps={self.num_steps}: expected T >= 1.")
        expect(self.schedule in ("linear", "constant"), f"schedule={self.schedule!r}: expected 'linear' or 'constant'.")
        expect(self.langevin_noise >= 0, f"langevin_noise={self.langevin_noise}: expected >= 0 (0: gradient descent).")
        expect(0.0 < self.alpha_bar_T < 1.0, f"alpha_bar_T={self.alpha_bar_T}: expected a value in (0, 1).")
        expect(self.langevin_steps >= 1, f"langevin_steps={self.langevin_steps}: expected K >= 1.")
        expect(0.0 < self.langevin_step_scale < 2.0,
               f"langevin_step_scale={self.langevin_step_scale}: expected (0, 2) for a stable chain.")
        expect(self.refine_steps is None or 1 <= self.refine_steps <= self.num_steps,
               f"refine_steps={self.refine_steps}: expected 1..num_steps={self.num_steps}.")

    @property
    def default_refine_steps(self) -> int:
        """The refinement step t used when none is given."""
        return self.refine_steps or 1


def lsd_noise_schedule(num_steps: int, kind: str = "linear", alpha_bar_T: float = 0.05) -> torch.Tensor:
    """Per-step forward noise ``s_t^2``, t = 1..T, as float64 ``[T]`` (see :class:`LSDEBMConfig`).

    ``"linear"``: DDPM linear betas (1e-4..0.02, 1000 steps) subsampled as in Gao et al.'s
    ``get_sigma_schedule``; ``"constant"``: ``1 - alpha_bar_T^(1/T)`` at every step.
    """
    expect(num_steps >= 1, f"num_steps={num_steps}: expected T >= 1.")
    if kind == "constant":
        return torch.full((num_steps,), 1.0 - alpha_bar_T ** (1.0 / num_steps), dtype=torch.float64)
    expect(kind == "linear", f"schedule={kind!r}: expected 'linear' or 'constant'.")
    from latentmed.diffusion.schedules import LinearBetaSchedule

    abar = LinearBetaSchedule().alphas_cumprod()
    stride = 1000 // (2 * (num_steps - 1)) if num_steps > 1 else 0
    idx = torch.tensor([i * stride for i in range(num_steps)] + [999])
    return 1.0 - abar[idx[1:]] / abar[idx[:-1]]


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample Bernoulli negative log-likelihood (BCE summed over voxels) ``[B]``."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _check_masks(x: torch.Tensor, size: int, what: str = "x") -> None:
    expect(x.ndim == 5 and x.shape[1] == 1 and tuple(x.shape[2:]) == (size,) * 3,
           f"{what}: expected masks of shape [B, 1, {size}, {size}, {size}], got {tuple(x.shape)}.")


@dataclass
class ShapeOutput:
    """What ``model(x)`` returns for the training objectives (:mod:`latentmed.shape.objectives`).

    ``logits`` [B,1,S,S,S]: the decoder's Bernoulli logits of the training latents; ``mean``,
    ``logvar`` [B,d]: the posterior q(z0|x) (models with an encoder); ``energy_pos``,
    ``energy_neg`` [B]: the energy of the data-side and of the model-side latents (models with an
    energy), whose difference the energy minimises; ``energy_scale`` [B]: sigma_1 / sigma_{t+1} of
    each sample's step t (LSD-EBM; the reference code's weight of the energy term).
    """

    logits: torch.Tensor
    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    energy_pos: torch.Tensor | None = None
    energy_neg: torch.Tensor | None = None
    energy_scale: torch.Tensor | None = None


class _ShapeModel(PretrainedMixin, nn.Module):
    """Shared pieces: decoder, probability decoding, parameter groups, input checks."""

    config: VAEConfig | LEBMConfig | LSDEBMConfig
    decoder: MaskDecoder3d

    def __init__(self, config: MaskNetConfig, *, encoder: bool) -> None:
        """The shared 3D conv encoder (when ``encoder``) and decoder, built in that order."""
        super().__init__()
        self.config = config
        sizes = (config.image_size, config.latent_dim, config.base_channels, config.max_channels)
        if encoder:
            self.encoder = MaskEncoder3d(*sizes)
        self.decoder = MaskDecoder3d(*sizes)

    @classmethod
    def upgrade_config(cls, meta: dict) -> dict:
        """Drop the loss weights that older model folders hold (they now live in the run's ``objective`` section)."""
        return {k: v for k, v in meta.items() if k not in ("kl_weight", "ebm_weight")}

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: autoencoder (encoder + decoder) and, when present, the energy.

        :func:`latentmed.train.train` clips each group's gradient norm on its own, so the energy's
        gradient does not scale down the autoencoder's step (the reference code uses two Adams).
        """
        energy = getattr(self, "energy", None)
        energy_ids = {id(p) for p in energy.parameters()} if energy is not None else set()
        groups = [{"params": [p for p in self.parameters() if id(p) not in energy_ids], "name": "autoencoder"}]
        if energy is not None:
            groups.append({"params": list(energy.parameters()), "name": "energy"})
        return groups

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Voxel probabilities p(x=1|z) ``[B,1,S,S,S]``."""
        return torch.sigmoid(self.decoder(z))

    def _prior_noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        ref = next(self.parameters())
        return randn((n, self.config.latent_dim), generator, ref)


class EncoderMixin:
    """Amortised posterior q(z0|x) = N(mean(x), exp(logvar(x))) with separate heads."""

    encoder: MaskEncoder3d

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mean: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        return mean + (0.5 * logvar).exp() * randn(mean.shape, generator, mean)


class ShapeVAE(EncoderMixin, _ShapeModel):
    """VAE baseline: Bernoulli decoder (objective: BCE + kl_weight * KL), refinement = decode(mean(x))."""

    config_class = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config, encoder=True)

    def forward(self, x: torch.Tensor) -> ShapeOutput:
        """Posterior moments and the decoder's logits of one reparameterised sample z ~ q(z|x)."""
        _check_masks(x, self.config.image_size)
        mean, logvar = self.encode(x)
        return ShapeOutput(self.decoder(self.reparameterize(mean, logvar)), mean, logvar)

    @torch.no_grad()
    def refine(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **_: object) -> torch.Tensor:
        _check_masks(x, self.config.image_size)
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self._prior_noise(n, generator))


class ShapeLEBM(_ShapeModel):
    """Latent EBM prior (Pang et al. 2020) with a Bernoulli 3D generator; no encoder.

    Prior ``p_alpha(z) ∝ exp(-E_alpha(z)) N(z; 0, I)``. Training: short-run Langevin from
    N(0, I) gives prior samples (K0 steps on ``E(z) + |z|^2/2``) and posterior samples
    (K1 steps on ``BCE(x|g(z)) + E(z) + |z|^2/2``); the generator minimises the BCE of the
    posterior samples and the energy minimises ``E(z_post) - E(z_prior)``
    (:class:`~latentmed.shape.objectives.ShapeObjective`). Langevin follows
    Pang et al.: ``z <- z - (s^2/2) grad + s N(0, I)``, i.e. lambda = s^2.
    Refinement: posterior Langevin given the coarse mask, then decode.
    """

    config_class = LEBMConfig

    def __init__(self, config: LEBMConfig) -> None:
        super().__init__(config, encoder=False)
        c = config
        self.energy = EnergyMLP(c.latent_dim, c.energy_hidden, c.energy_layers)

    def prior_energy(self, z: torch.Tensor) -> torch.Tensor:
        return self.energy(z) + 0.5 * z.pow(2).sum(1)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        with frozen_parametrizations(self.energy):
            return langevin(self.prior_energy, self._prior_noise(n, generator), c.prior_steps,
                            c.prior_step_size ** 2, generator=generator)

    def sample_posterior(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config

        def posterior_energy(z: torch.Tensor) -> torch.Tensor:
            return bernoulli_nll(self.decoder(z), x) + self.prior_energy(z)

        with frozen_parametrizations(self.energy):
            return langevin(posterior_energy, self._prior_noise(x.shape[0], generator), c.posterior_steps,
                            c.posterior_step_size ** 2, generator=generator)

    def forward(self, x: torch.Tensor) -> ShapeOutput:
        """Posterior and prior Langevin samples: logits of the posterior ones, energies of both."""
        _check_masks(x, self.config.image_size)
        z_post = self.sample_posterior(x)
        z_prior = self.sample_prior(x.shape[0])
        return ShapeOutput(self.decoder(z_post), energy_pos=self.energy(z_post), energy_neg=self.energy(z_prior))

    def refine(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **_: object) -> torch.Tensor:
        _check_masks(x, self.config.image_size)
        z = self.sample_posterior(x, generator)
        with torch.no_grad():
            return self.decode(z)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.sample_prior(n, generator)
        with torch.no_grad():
            return self.decode(z)


class LSDEBM(EncoderMixin, _ShapeModel):
    """Latent-space diffusion EBM (Wang et al. 2024, eqs. 1-4, Algorithms 1-3).

    - Encoder q(z0|x) = N(mean, exp(logvar)) with SEPARATE heads (the reference code shares one).
    - Forward chain (eq. 1): ``q(z_{t+1}|z_t) = N(sqrt(1 - s_{t+1}^2) z_t, s_{t+1}^2 I)``, with
      the paper's noise scale (the reference code multiplies the noise by 0.1).
    - Reverse step (eq. 2): ``p(z_t|z_{t+1}) ∝ exp(-E(z_t, t) - |z_{t+1} - z_t|^2 / (2 s_{t+1}^2))``,
      with ``scaled_reverse`` on ``y = a_{t+1} z_t`` (Gao et al.), sampled by K Langevin steps
      ``y <- y - (lambda/2) grad + langevin_noise * N(0, lambda)`` STARTED AT z_{t+1} (the reference
      code starts from random noise, with noise scale 0.01).
    - E(z, t): spectral-norm MLP with a sinusoidal time embedding (Yu et al. 2022), plus |z|^2/2
      when ``config.gaussian_reference`` (our addition; see :class:`LSDEBMConfig`).
    - Training (Algorithm 1, :class:`~latentmed.shape.objectives.ShapeObjective`), one stage:
      ``BCE(x|z0) + kl_weight KL(q(z0|x) || N(0, I))`` for encoder/decoder, plus
      ``E(a z_t^+, t) - E(y~, t)`` for the energy, where t ~ U{0..T-1}, z_t^+ comes from the
      forward chain of a (detached) posterior sample and y~ from the reverse Langevin chain
      started at z_{t+1} (``a = 1`` without ``scaled_reverse``). Autoencoder
      and energy are two parameter groups (:meth:`parameter_groups`), clipped separately. The
      encoder's prior term (weight ``kl_weight``, default 0 as in the reference code) uses the
      Gaussian reference N(0, I) (the chain's z_T): our simplification of the ELBO with the EBM prior.
    - Refinement (Algorithm 2): encode (mean), diffuse to step t (default ``config.default_refine_steps``),
      reverse chain to 0, decode.
    - Sampling (Algorithm 3): z_T ~ N(0, I), reverse chain from T.
    """

    config_class = LSDEBMConfig

    def __init__(self, config: LSDEBMConfig) -> None:
        super().__init__(config, encoder=True)
        c = config
        self.energy = EnergyMLP(c.latent_dim, c.energy_hidden, c.energy_layers, time_dim=c.time_dim)
        s2 = lsd_noise_schedule(c.num_steps, c.schedule, c.alpha_bar_T)
        # sigma2[t] = s_{t+1}^2 (the noise of the step t -> t+1), alpha_bar[t] = prod_{i<=t} (1 - s_i^2).
        self.register_buffer("sigma2", s2.float(), persistent=False)
        self.register_buffer("alpha_bar", torch.cat([torch.ones(1, dtype=torch.float64),
                                                     torch.cumprod(1 - s2, 0)]).float(), persistent=False)

    # --- the chain -----------------------------------------------------------------------
    def energy_total(self, z: torch.Tensor, t: torch.Tensor | None = None,
                     temb: torch.Tensor | None = None) -> torch.Tensor:
        """E(z, t) [B], plus |z|^2/2 when ``config.gaussian_reference``."""
        e = self.energy(z, t, temb)
        return e + 0.5 * z.pow(2).sum(1) if self.config.gaussian_reference else e

    def diffuse(self, z0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample q(z_t|z0) = N(sqrt(alpha_bar_t) z0, (1 - alpha_bar_t) I) for per-sample steps ``t`` [B]."""
        a = self.alpha_bar[t][:, None]
        return a.sqrt() * z0 + (1 - a).sqrt() * randn(z0.shape, generator, z0)

    def forward_step(self, z_t: torch.Tensor, t: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """One step of eq. (1): z_{t+1} ~ N(sqrt(1 - s_{t+1}^2) z_t, s_{t+1}^2 I)."""
        s2 = self.sigma2[t][:, None]
        return (1 - s2).sqrt() * z_t + s2.sqrt() * randn(z_t.shape, generator, z_t)

    def _scale(self, t: torch.Tensor) -> torch.Tensor:
        """``a_{t+1} = sqrt(1 - s_{t+1}^2)`` [B, 1] with ``scaled_reverse``, else 1."""
        if not self.config.scaled_reverse:
            return torch.ones_like(self.sigma2[t][:, None])
        return (1 - self.sigma2[t][:, None]).sqrt()

    def reverse_sample(self, z_next: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """Langevin sample of the energy's variable given z_{t+1}: ``y = a z_t`` (``scaled_reverse``) or z_t.

        K steps on ``E(y, t) + |z_{t+1} - y|^2 / (2 s_{t+1}^2)`` started at z_{t+1} (eqs. 2 and 4).
        """
        s2 = self.sigma2[t][:, None]
        anchor = z_next.detach()
        with torch.no_grad():
            temb = self.energy.time_embedding(t)

        def conditional_energy(y: torch.Tensor) -> torch.Tensor:
            return self.energy_total(y, temb=temb) + (anchor - y).pow(2).sum(1) / (2 * s2[:, 0])

        c = self.config
        with frozen_parametrizations(self.energy):
            return langevin(conditional_energy, anchor, c.langevin_steps, c.langevin_step_scale * s2,
                            noise_scale=c.langevin_noise, generator=generator)

    def reverse_step(self, z_next: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """Sample p(z_t|z_{t+1}) (eq. 2); ``t`` [B] per sample. With ``scaled_reverse``, z_t = y / a_{t+1}."""
        return self.reverse_sample(z_next, t, generator) / self._scale(t)

    def reverse_chain(self, z_t: torch.Tensor, t: int, generator: torch.Generator | None = None,
                      callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the reverse chain from step ``t`` down to 0; ``callback(step, z)`` sees z_t ... z_0."""
        expect(0 <= t <= self.config.num_steps, f"steps={t}: expected 0..T={self.config.num_steps}.")
        z = z_t.detach()
        if callback is not None:
            callback(t, z)
        for step in range(t - 1, -1, -1):
            z = self.reverse_step(z, torch.full((z.shape[0],), step, device=z.device, dtype=torch.long), generator)
            if callback is not None:
                callback(step, z)
        return z

    # --- training (Algorithm 1) -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> ShapeOutput:
        """Algorithm 1's quantities: z0 ~ q(z0|x) and its logits; t ~ U{0..T-1}; the energy of the
        forward chain's ``a z_t`` (positive) and of the reverse Langevin sample y~ from z_{t+1} (negative)."""
        _check_masks(x, self.config.image_size)
        mean, logvar = self.encode(x)
        z0 = self.reparameterize(mean, logvar)
        logits = self.decoder(z0)
        t = torch.randint(0, self.config.num_steps, (x.shape[0],), device=x.device)
        z_pos = self.diffuse(z0.detach(), t)
        z_next = self.forward_step(z_pos, t)
        y_neg = self.reverse_sample(z_next, t)  # the energy's variable: a z_t (scaled_reverse) or z_t
        return ShapeOutput(logits, mean, logvar, energy_pos=self.energy_total(self._scale(t) * z_pos, t),
                           energy_neg=self.energy_total(y_neg, t),
                           energy_scale=(self.sigma2[0] / self.sigma2[t]).sqrt())

    # --- inference (Algorithms 2 and 3) -----------------------------------------------------
    def refine_latent(self, x: torch.Tensor, steps: int | None = None, generator: torch.Generator | None = None,
                      callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Algorithm 2 in latent space: z0 = mean(x), z_t ~ q(z_t|z0), reverse chain to z_0 (t=0: z0 itself)."""
        _check_masks(x, self.config.image_size)
        t = self.config.default_refine_steps if steps is None else steps
        expect(isinstance(t, int) and 0 <= t <= self.config.num_steps,
               f"steps={t}: expected a refinement step t in 0..T={self.config.num_steps} for this model "
               "(0: the autoencoder alone, no chain).")
        with torch.no_grad():
            z0 = self.encode(x)[0]
            z_t = self.diffuse(z0, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), generator)
        return self.reverse_chain(z_t, t, generator, callback)

    def refine(self, x: torch.Tensor, *, steps: int | None = None, generator: torch.Generator | None = None,
               callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Algorithm 2: voxel probabilities of the refined mask (threshold at 0.5)."""
        z = self.refine_latent(x, steps, generator, callback)
        with torch.no_grad():
            return self.decode(z)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Algorithm 3: z_T ~ N(0, I), reverse chain, decode."""
        z = self.reverse_chain(self._prior_noise(n, generator), self.config.num_steps, generator, callback)
        with torch.no_grad():
            return self.decode(z)


MODELS: dict[str, type[_ShapeModel]] = {"vae": ShapeVAE, "lebm": ShapeLEBM, "lsd-ebm": LSDEBM}


def model_class(name: str) -> type[_ShapeModel]:
    """``"vae" | "lebm" | "lsd-ebm"`` -> model class."""
    expect(name in MODELS, f"model {name!r}: expected one of {', '.join(MODELS)}.")
    return MODELS[name]


def load_shape_model(directory) -> _ShapeModel:
    """Load any of the three models from a ``save_pretrained`` folder (a run's ``model/`` or the run itself)."""
    from pathlib import Path

    from latentmed.io import read_json

    directory = Path(directory)
    if (directory / "model" / "config.json").is_file():
        directory = directory / "model"
    meta = read_json(directory / "config.json")
    by_class = {cls.__name__: cls for cls in MODELS.values()}
    cls = by_class.get(meta.get("_class"))
    expect(cls is not None, f"{directory}: holds a {meta.get('_class')!r} model; expected one of "
                            f"{', '.join(by_class)} (a folder written by `latentmed shape train`).")
    model = cls.from_pretrained(directory)
    model.eval()
    return model


__all__ = ["LEBMConfig", "LSDEBM", "LSDEBMConfig", "MODELS", "MaskNetConfig", "ShapeLEBM", "ShapeOutput", "ShapeVAE",
           "VAEConfig", "bernoulli_nll", "load_shape_model", "lsd_noise_schedule", "model_class"]
