"""Our LDM loss and DDIM sampler equal diffusers' DDPMScheduler / DDIMScheduler on the same UNet, noise and steps.

The reference is diffusers itself (0.42: ``schedulers/scheduling_ddpm.py`` ``add_noise``/``get_velocity``,
``schedulers/scheduling_ddim.py`` ``step`` with ``timestep_spacing="trailing"``, ``set_alpha_to_one=True``),
so a UNet trained here samples the same in a diffusers pipeline, and the other way round.
"""

from __future__ import annotations

import pytest
import torch

from latentmed.diffusion import diffusion_loss, get_schedule
from latentmed.ldm.model import LatentUNet, tiny_ldm

BETAS = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
DIFFUSERS_PRED = {"eps": "epsilon", "v": "v_prediction"}


@pytest.fixture(scope="module")
def ldm():
    return tiny_ldm(image_size=16, seed=3)


def _inputs(ldm, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = ldm.config
    z0 = torch.randn(batch, c.latent_channels, c.latent_size, c.latent_size, generator=g)
    noise = torch.randn(z0.shape, generator=g)
    tokens = torch.randn(batch, ldm.conditioner.num_tokens, ldm.conditioner.width, generator=g)
    return z0, noise, tokens


def _diffusers_loss(unet, z0, noise, tokens, k, prediction):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(**BETAS, prediction_type=DIFFUSERS_PRED[prediction])
    x_t = sched.add_noise(z0, noise, k)
    target = noise if prediction == "eps" else sched.get_velocity(z0, noise, k)
    with torch.no_grad():
        out = unet(x_t, k, encoder_hidden_states=tokens).sample
    return (out - target).pow(2).flatten(1).mean(1)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_loss_equals_diffusers_ddpm(ldm, prediction):
    z0, noise, tokens = _inputs(ldm)
    k = torch.tensor([0, 1, 499, 999])  # diffusers' timestep index; ours is t = (k + 1) / 1000
    with torch.no_grad():
        ours = diffusion_loss(LatentUNet(ldm.unet), z0, (k + 1) / 1000, get_schedule("linear"), prediction,
                              cond=tokens, noise=noise)
    ref = _diffusers_loss(ldm.unet, z0, noise, tokens, k, prediction)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the convention of runs written before the offset is NOT diffusers' (a real difference)
        old = diffusion_loss(LatentUNet(ldm.unet, timestep_offset=0.0), z0, (k + 1) / 1000, get_schedule("linear"),
                             prediction, cond=tokens, noise=noise)
    assert (old - ref).abs().max() > 1e-5


def test_ldm_training_objective_with_discrete_times_equals_diffusers(ldm):
    """``ldm_loss`` end to end (VAE encoding, conditioner, t and noise drawn from the global RNG)."""
    from latentmed.ldm.training import ldm_loss

    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss = ldm_loss(ldm.vae, ldm.conditioner, ldm.schedule, "eps", ldm.scaling_factor, cond_dropout=0.0,
                    sample_posterior=False, time_sampling="discrete")
    torch.manual_seed(7)
    with torch.no_grad():
        ours = loss(LatentUNet(ldm.unet), {"image": x}, 0)
    torch.manual_seed(7)  # the same draws, in the objective's order: t, then the noise
    k = torch.randint(1, 1001, (4,)) - 1
    z0 = ldm.encode_images(x)
    noise = torch.randn_like(z0)
    ref = _diffusers_loss(ldm.unet, z0, noise, ldm.condition(x), k, "eps")
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prediction,steps", [("eps", 10), ("eps", 25), ("v", 10)])
def test_ddim_sampler_equals_diffusers_ddim(ldm, prediction, steps):
    """For step counts dividing 1000. Otherwise diffusers' ``step`` goes from k to ``k - 1000 // N``, not to the
    next point of its own trailing grid (N = 7: 999 -> 857 while the grid's next step is 856, diffusers#12633);
    ours walks the grid."""
    from diffusers import DDIMScheduler

    _, x_T, tokens = _inputs(ldm, seed=1)
    ldm.prediction = prediction
    try:
        ours = ldm.sample(tokens, steps=steps, x_T=x_T, decode=False)
    finally:
        ldm.prediction = "eps"
    sched = DDIMScheduler(**BETAS, prediction_type=DIFFUSERS_PRED[prediction], timestep_spacing="trailing",
                          set_alpha_to_one=True, clip_sample=False)
    sched.set_timesteps(steps)
    x = x_T.clone()
    with torch.no_grad():
        for k in sched.timesteps:
            x = sched.step(ldm.unet(x, k, encoder_hidden_states=tokens).sample, k, x).prev_sample
    # an untrained UNet's eps is far from the noise, so the latents reach |x| ~ 1 / alpha(1) ~ 100s:
    # the difference is float32 round-off, compared with the latents' scale
    assert (ours - x).abs().max() <= 1e-5 * x.abs().max()
    assert (ours - x).abs().max() < 1e-3


def test_runs_without_an_offset_load_as_trained(tmp_path, ldm):
    """An ``ldm.json`` written before ``timestep_offset`` existed keeps the convention it was trained with (0)."""
    from latentmed.io import read_json, write_json
    from latentmed.ldm import load_ldm

    ldm.save(tmp_path / "run")
    assert load_ldm(tmp_path / "run").net().timestep_offset == 1.0
    meta = read_json(tmp_path / "run" / "ldm.json")
    del meta["timestep_offset"]
    write_json(tmp_path / "run" / "ldm.json", meta)
    assert load_ldm(tmp_path / "run").net().timestep_offset == 0.0
