"""The baselines of LSD-EBM's paper: a VAE and a latent EBM prior model (LEBM, Pang et al. 2020)."""

from __future__ import annotations

import torch

from latentmed.errors import expect
from latentmed.shape.base import EncoderMixin, ShapeModel, ShapeOutput, bernoulli_nll, check_masks
from latentmed.shape.configs import LEBMConfig, VAEConfig
from latentmed.shape.langevin import frozen_parametrizations, langevin
from latentmed.shape.nets import EnergyMLP


class ShapeVAE(EncoderMixin, ShapeModel):
    """VAE baseline: Bernoulli decoder (objective: BCE + kl_weight * KL), refinement = decode(mean(x))."""

    config_class = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config, encoder=True)

    def forward(self, x: torch.Tensor) -> ShapeOutput:
        """Posterior moments and the decoder's logits of one reparameterised sample z ~ q(z|x)."""
        check_masks(x, self.config.image_size)
        mean, logvar = self.encode(x)
        return ShapeOutput(self.decoder(self.reparameterize(mean, logvar)), mean, logvar)

    @torch.no_grad()
    def refine(self, x: torch.Tensor, *, generator: torch.Generator | None = None, recipe: str | None = None,
               **_: object) -> torch.Tensor:
        """Decode the posterior mean (``recipe`` None or ``"ours"``: the stronger baseline) or, with
        ``recipe="reference"``, a posterior sample z ~ q(z|x) as the reference's VAE does
        (get_model_vae.py:149-152 decodes ``VAE_new.forward``, model_Unet_vae.py:158-162)."""
        check_masks(x, self.config.image_size)
        expect(recipe in (None, "ours", "reference"), f"recipe={recipe!r}: expected 'ours' or 'reference'.")
        mean, logvar = self.encode(x)
        return self.decode(self.reparameterize(mean, logvar, generator) if recipe == "reference" else mean)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self._prior_noise(n, generator))


class ShapeLEBM(ShapeModel):
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
        check_masks(x, self.config.image_size)
        z_post = self.sample_posterior(x)
        z_prior = self.sample_prior(x.shape[0])
        return ShapeOutput(self.decoder(z_post), energy_pos=self.energy(z_post), energy_neg=self.energy(z_prior))

    def refine(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **_: object) -> torch.Tensor:
        check_masks(x, self.config.image_size)
        z = self.sample_posterior(x, generator)
        with torch.no_grad():
            return self.decode(z)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.sample_prior(n, generator)
        with torch.no_grad():
            return self.decode(z)


__all__ = ["ShapeLEBM", "ShapeVAE"]
