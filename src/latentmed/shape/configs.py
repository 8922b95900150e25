"""Configs of the shape models (VAE, LEBM, LSD-EBM) and the LSD-EBM reference recipe.

The reference recipe (:data:`REFERENCE_LSDEBM`) is what the authors' code runs
(``Seven-year-promise/LSD_EBM_MRI``, folder ``3D/LSD_EBM/``, read at commit 0ea769a; ``train`` below is
``LSD_EBM_code/train_lsd_ebm_vert.py``); each key cites the lines it follows.

Where we believe the reference is wrong, the recipe keeps it (it produced the paper's numbers):
the posterior's log-variance is softplus of the mean from the same layer (variance >= 1, tied to the
mean; model_Unet_lsdebm.py:381-382); its posterior term ``logvar + ((z - mu) / var)^2 / 2`` is neither
the entropy nor the KL (train:526; :func:`~latentmed.shape.objectives.reference_entropy`); the energy
loss ``[B,1,1,1] * [B]`` broadcasts, so each sample is weighted by the batch mean of sigma_1/sigma_{t+1}
(train:516-518); the training pairs use 0.1 x sigma while the reverse step's quadratic uses sigma
(train:189 vs :109), so Langevin samples a conditional 100x broader in variance than the forward kernel;
and the evaluation builds a 30-step schedule whatever T the model was trained with
(get_model_lsd_ebm.py:239; ``inference_T``).
"""

from __future__ import annotations

from dataclasses import dataclass

from latentmed.errors import expect


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


RECIPES = ("ours", "reference")
CHOICES = {"schedule": ("linear", "constant", "reference"), "posterior": ("separate", "shared"),
           "energy_net": ("sn-mlp", "mlp-raw-t"), "langevin_init": ("previous", "noise"),
           "refine_posterior": ("mean", "sample"), "recipe": RECIPES}


@dataclass
class LSDEBMConfig(MaskNetConfig):
    """LSD-EBM (paper: T in {2, 15, 20}, d=100). ``recipe``: ``"ours"`` (the defaults below) or
    ``"reference"`` (the authors' code, :data:`REFERENCE_LSDEBM`; ``ShapeRunConfig.recipe_layer`` fills the
    keys the run leaves unset).

    - ``num_steps`` = T. ``schedule``: ``"linear"``: DDPM's linear betas 1e-4..0.02 over 1000 steps
      subsampled at ``idx = [0, s, ..., (T-1)s, 999]``, ``s = 1000 // (2(T-1))`` (Gao et al.);
      ``"reference"``: the same with betas ending at 0.01 and the extra first step ``a_0 =
      sqrt(1 - beta_0)`` into z_0 (train:272-281); ``"constant"``: ``s_t^2 = 1 - alpha_bar_T^(1/T)``.
    - ``forward_noise``: multiplies the forward chain's noise (1: eq. 1; reference 0.1, train:135, :189),
      while the reverse step's quadratic keeps the unscaled sigma (train:94, :109).
    - ``posterior``: ``"separate"`` mean and log-variance heads, or ``"shared"``: logvar =
      1e-6 + softplus(mean) from the one layer, posterior variance >= 1 (model_Unet_lsdebm.py:381-382).
    - ``energy_net``: ``"sn-mlp"`` (spectral norm, sinusoidal time embedding, Yu et al.) or
      ``"mlp-raw-t"``: a plain GELU MLP on [z, t] with raw t (model_Unet_lsdebm.py:567-596;
      ``energy_layers`` hidden layers of ``energy_hidden``).
    - Reverse step: K = ``langevin_steps`` Langevin steps on ``E(y, t) + |y - z_{t+1}|^2 / 2 s_{t+1}^2``,
      started at z_{t+1} (``langevin_init="previous"``) or at N(0, I) (``"noise"``, train:101), of size
      ``langevin_step_size`` (fixed; reference 0.01, train:234) or ``langevin_step_scale * s_{t+1}^2``,
      with noise ``langevin_noise * N(0, lambda)`` (reference 0.01, train:93, :115-116).
      ``scaled_reverse``: the energy's variable is ``y = a_{t+1} z_t`` and ``z_t = y / a_{t+1}``
      (Gao et al.; train:124); ``rescale_last=False`` divides by 1 at the step from T (train:282-283).
    - ``gaussian_reference``: energy ``E + |z|^2 / 2`` (our option).
    - Refinement (Algorithm 2): ``refine_posterior`` ``"mean"`` or ``"sample"`` (the reference samples,
      get_model_lsd_ebm.py:363-364), from step ``refine_steps`` (unset: 1 for ours, T for the reference,
      whose reconstruction_metrics.py:211 passes step = T). ``inference_T``: the number of steps of the
      schedule refinement uses (unset: T; the reference's evaluation builds a 30-step schedule for every
      model, get_model_lsd_ebm.py:239, :253-265, so its t = T is step T of 30, with a milder noise).
    """

    recipe: str = "ours"
    num_steps: int = 15
    schedule: str = "linear"
    alpha_bar_T: float = 0.05
    forward_noise: float = 1.0
    posterior: str = "separate"
    scaled_reverse: bool = True
    rescale_last: bool = True
    energy_net: str = "sn-mlp"
    energy_hidden: int = 200
    energy_layers: int = 3
    time_dim: int = 64
    langevin_init: str = "previous"
    langevin_steps: int = 20
    langevin_step_scale: float = 0.2
    langevin_step_size: float | None = None
    langevin_noise: float = 1.0
    refine_posterior: str = "mean"
    refine_steps: int | None = None
    inference_T: int | None = None
    gaussian_reference: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            expect(value in allowed, f"{key}={value!r}: expected one of {', '.join(map(repr, allowed))}.")
        expect(self.num_steps >= 1, f"num_steps={self.num_steps}: expected T >= 1.")
        expect(self.langevin_noise >= 0, f"langevin_noise={self.langevin_noise}: expected >= 0 (0: gradient descent).")
        expect(0.0 < self.alpha_bar_T < 1.0, f"alpha_bar_T={self.alpha_bar_T}: expected a value in (0, 1).")
        expect(self.forward_noise > 0, f"forward_noise={self.forward_noise}: expected > 0 (reference: 0.1).")
        expect(self.langevin_steps >= 1, f"langevin_steps={self.langevin_steps}: expected K >= 1.")
        expect(0.0 < self.langevin_step_scale < 2.0,
               f"langevin_step_scale={self.langevin_step_scale}: expected (0, 2) for a stable chain.")
        expect(self.langevin_step_size is None or self.langevin_step_size > 0,
               f"langevin_step_size={self.langevin_step_size}: expected > 0 or unset.")
        expect(self.inference_T is None or self.inference_T >= self.num_steps,
               f"inference_T={self.inference_T}: expected unset or >= num_steps={self.num_steps}.")
        expect(self.refine_steps is None or 0 <= self.refine_steps <= self.num_steps,
               f"refine_steps={self.refine_steps}: expected 0..num_steps={self.num_steps}.")

    @property
    def default_refine_steps(self) -> int:
        """The refinement step t used when none is given (1 for ours, T for the reference recipe)."""
        if self.refine_steps is not None:
            return self.refine_steps
        return self.num_steps if self.recipe == "reference" else 1


# The authors' LSD-EBM (train_lsd_ebm_vert.py defaults, model_Unet_lsdebm.py, get_model_lsd_ebm.py).
REFERENCE_LSDEBM: dict = {
    "recipe": "reference", "num_steps": 20,                      # train:236
    "schedule": "reference", "forward_noise": 0.1,               # train:237-238, :272-283, :135, :189
    "posterior": "shared",                                       # model_Unet_lsdebm.py:381-382
    "energy_net": "mlp-raw-t", "energy_hidden": 1000, "energy_layers": 2,  # train:228-229; model:567-596
    "langevin_init": "noise", "langevin_steps": 300,             # train:101, :232-233
    "langevin_step_size": 0.01, "langevin_noise": 0.01,          # train:234, :93 (noise_sig)
    "scaled_reverse": True, "rescale_last": False,               # train:124, :282-283
    "gaussian_reference": False,
    "refine_posterior": "sample",                                # get_model_lsd_ebm.py:363-364
    "inference_T": 30,                                           # get_model_lsd_ebm.py:239 (see LSDEBMConfig)
}
# The inference keys a refinement recipe switches (the schedule and networks stay the trained model's).
SAMPLER_KEYS = ("langevin_init", "langevin_steps", "langevin_step_size", "langevin_noise", "rescale_last",
                "refine_posterior", "inference_T")
OURS_SAMPLER = {key: LSDEBMConfig.__dataclass_fields__[key].default for key in SAMPLER_KEYS}


def sampler_config(config: LSDEBMConfig, recipe: str | None) -> LSDEBMConfig:
    """``config`` with the inference keys of ``recipe`` (``None``: the model's own) and its default t."""
    from dataclasses import replace

    if recipe is None or recipe == config.recipe:
        return config
    expect(recipe in RECIPES, f"recipe={recipe!r}: expected one of {', '.join(RECIPES)}.")
    keys = {k: REFERENCE_LSDEBM[k] for k in SAMPLER_KEYS} if recipe == "reference" else dict(OURS_SAMPLER)
    return replace(config, recipe=recipe, refine_steps=None, **keys)


# The reference's optimisation (train_lsd_ebm_vert.py:203-207, :328-330, :534-543): Adam 2e-5 for encoder,
# decoder and energy, batch 4, no gradient clipping, no EMA.
REFERENCE_TRAIN = {"lr": 2e-5, "energy_lr": 2e-5, "batch_size": 4, "grad_clip": 0.0, "ema_decay": 0.0}


__all__ = ["LEBMConfig", "LSDEBMConfig", "MaskNetConfig", "OURS_SAMPLER", "RECIPES", "REFERENCE_LSDEBM",
           "REFERENCE_TRAIN",
           "VAEConfig", "sampler_config"]
