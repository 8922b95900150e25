"""Training objectives of the shape models: per-sample losses ``(model, batch, step) -> (loss[B], logs)``.

The models compute their outputs (:class:`~latentmed.shape.models.ShapeOutput`, Langevin chains
included); the objectives turn them into Algorithm 1's losses. Reconstruction and KL are divided
by the number of voxels (the ELBO in nats per voxel) so that gradient clipping treats the models
alike; the energy term ``E(pos) - E(neg)`` is added with weight ``ebm_weight``. Each objective is
ONE training stage: its autoencoder and energy terms touch disjoint parameters (the models'
``parameter_groups``), so one optimiser step updates both, as Algorithm 1 does in each iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentmed.errors import expect
from latentmed.shape.models import MODELS, bernoulli_nll


def reference_entropy(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The LSD-EBM reference code's posterior term per sample ``[B]``:
    ``sum(logvar + ((z - mean) / exp(logvar))^2 / 2)``
    (train_lsd_ebm_vert.py:526). It is not log q(z|x) (that would be ``-logvar/2 - (z - mean)^2 / (2 exp(logvar))``):
    it divides by the variance instead of the standard deviation and its sign pushes the variance down;
    kept as written in the reference recipe."""
    return (logvar + 0.5 * ((z - mean) / logvar.exp()).pow(2)).sum(1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample ``[B]`` (Kingma & Welling, appendix B)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


# The VAE's ELBO has weight 1; LSD-EBM's reference code puts no KL on the encoder (Yu et al.: 0.1).
DEFAULT_KL_WEIGHT = {"vae": 1.0, "lsd-ebm": 0.0}
HAS_ENCODER, HAS_ENERGY = ("vae", "lsd-ebm"), ("lebm", "lsd-ebm")


@dataclass
class ShapeObjectiveConfig:
    """The ``objective`` section of a shape run: loss weights (unset: the model's default).

    ``kl_weight``: weight of KL(q(z0|x) || N(0, I)) for models with an encoder (default 1 for the
    VAE, its ELBO; 0 for LSD-EBM as in the reference code); ``ebm_weight``: weight of the energy
    term for models with an energy (LEBM, LSD-EBM; default 1); ``energy_weighting``: ``"uniform"``
    (default; every step t alike, Algorithm 1) or ``"sigma_ratio"`` (LSD-EBM only: each sample's
    energy term times sigma_1 / sigma_{t+1}, as the reference code means to; ``"sigma_ratio_batch"``: the
    batch mean of sigma_1 / sigma_{t+1} times each sample's term, as the reference code computes it:
    ``loss_e`` [B,1,1,1] times ``loss_scale`` [B] broadcasts to [B,1,1,B], train_lsd_ebm_vert.py:516-518).

    ``recipe``: ``"ours"`` or ``"reference"`` (LSD-EBM; training then fills the model's unset keys from
    :data:`~latentmed.shape.configs.REFERENCE_LSDEBM` and the train section's defaults with the reference's);
    the reference's objective is ``posterior_term="reference_entropy"`` (:func:`reference_entropy`, no KL)
    and ``energy_weighting="sigma_ratio_batch"``.
    """

    kl_weight: float | None = None
    ebm_weight: float | None = None
    energy_weighting: str = "uniform"
    posterior_term: str = "kl"
    recipe: str = "ours"

    def __post_init__(self) -> None:
        for name in ("kl_weight", "ebm_weight"):
            value = getattr(self, name)
            expect(value is None or value >= 0, f"objective.{name}={value}: expected >= 0.")
        expect(self.energy_weighting in ("uniform", "sigma_ratio", "sigma_ratio_batch"),
               f"objective.energy_weighting={self.energy_weighting!r}: expected 'uniform', 'sigma_ratio' or "
               "'sigma_ratio_batch'.")
        expect(self.posterior_term in ("kl", "reference_entropy"),
               f"objective.posterior_term={self.posterior_term!r}: expected 'kl' or 'reference_entropy'.")
        expect(self.recipe in ("ours", "reference"),
               f"objective.recipe={self.recipe!r}: expected 'ours' or 'reference'.")

    def resolved(self, kind: str) -> ShapeObjectiveConfig:
        """The weights ``kind`` (``"vae" | "lebm" | "lsd-ebm"``) trains with: defaults filled in, ``None``
        where the model has no such term; a weight set for a term the model lacks is an error."""
        expect(kind in MODELS, f"model {kind!r}: expected one of {', '.join(MODELS)}.")
        expect(self.kl_weight is None or kind in HAS_ENCODER,
               f"objective.kl_weight={self.kl_weight}: the {kind} model has no encoder and no KL term; leave it unset.")
        expect(self.ebm_weight is None or kind in HAS_ENERGY,
               f"objective.ebm_weight={self.ebm_weight}: the {kind} model has no energy; leave it unset.")
        expect(self.energy_weighting == "uniform" or kind == "lsd-ebm",
               f"objective.energy_weighting={self.energy_weighting!r}: only LSD-EBM has diffusion steps to weight; "
               f"the {kind} model takes 'uniform'.")
        expect(self.recipe == "ours" or kind == "lsd-ebm",
               f"objective.recipe={self.recipe!r}: the reference recipe is LSD-EBM's; the {kind} model takes 'ours'.")
        expect(self.posterior_term == "kl" or kind == "lsd-ebm",
               f"objective.posterior_term={self.posterior_term!r}: only LSD-EBM has the reference's posterior term.")
        kl = DEFAULT_KL_WEIGHT[kind] if self.kl_weight is None and kind in HAS_ENCODER else self.kl_weight
        ebm = 1.0 if self.ebm_weight is None and kind in HAS_ENERGY else self.ebm_weight
        weighting, term = self.energy_weighting, self.posterior_term
        if self.recipe == "reference":  # the reference's objective unless the run asks otherwise
            weighting = "sigma_ratio_batch" if weighting == "uniform" else weighting
            term = "reference_entropy"
        return ShapeObjectiveConfig(kl_weight=kl, ebm_weight=ebm, energy_weighting=weighting, posterior_term=term,
                                    recipe=self.recipe)


@dataclass
class ShapeObjective:
    """Algorithm 1's per-sample loss from the model's :class:`~latentmed.shape.models.ShapeOutput`:

    ``(BCE(x|z) + kl_weight KL(q(z0|x) || N(0, I))) / voxels + ebm_weight (E(pos) - E(neg))``, the KL
    term for models with an encoder (VAE, LSD-EBM), the energy term for models with an energy
    (LEBM: ``E(z_post) - E(z_prior)``, Pang et al. 2020; LSD-EBM: ``E(a z_t^+, t) - E(y~, t)``,
    Wang et al. 2024), times sigma_1 / sigma_{t+1} with ``energy_weighting="sigma_ratio"``. The batch is ``{"x": masks [B,1,S,S,S]}`` or the masks.
    """

    kl_weight: float = 0.0
    ebm_weight: float = 1.0
    energy_weighting: str = "uniform"
    posterior_term: str = "kl"

    def __call__(self, model, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["x"] if isinstance(batch, dict) else batch
        out, voxels = model(x), x[0].numel()
        nll = bernoulli_nll(out.logits, x)
        logs = {"bce": nll.mean().item() / voxels}
        elbo = nll
        if out.mean is not None and self.posterior_term == "reference_entropy":
            term = reference_entropy(out.latent, out.mean, out.logvar)
            elbo = nll + term
            logs["posterior_term"] = term.mean().item()
        elif out.mean is not None:
            kl = gaussian_kl(out.mean, out.logvar)
            elbo = nll + self.kl_weight * kl
            logs["kl"] = kl.mean().item()
        loss = elbo / voxels
        if out.energy_pos is not None:
            gap = out.energy_pos - out.energy_neg
            if self.energy_weighting == "sigma_ratio":
                gap = gap * out.energy_scale
            elif self.energy_weighting == "sigma_ratio_batch":
                gap = gap * out.energy_scale.mean()
            loss = loss + self.ebm_weight * gap
            logs["energy_gap"] = gap.mean().item()
        return loss, logs


def shape_objective(kind: str, config: ShapeObjectiveConfig | None = None) -> ShapeObjective:
    """The objective of ``kind`` (``"vae" | "lebm" | "lsd-ebm"``) with the weights of ``config``."""
    weights = (config or ShapeObjectiveConfig()).resolved(kind)
    return ShapeObjective(kl_weight=weights.kl_weight or 0.0, ebm_weight=weights.ebm_weight or 0.0,
                          energy_weighting=weights.energy_weighting, posterior_term=weights.posterior_term)


__all__ = ["ShapeObjective", "ShapeObjectiveConfig", "gaussian_kl", "reference_entropy", "shape_objective"]
