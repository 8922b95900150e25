"""LSD-EBM's reference recipe against an independent port of the authors' code, and the chain's controls.

The port below re-writes ``Seven-year-promise/LSD_EBM_MRI`` (commit 0ea769a, ``3D/LSD_EBM/``;
``train`` = ``LSD_EBM_code/train_lsd_ebm_vert.py``) in numpy/torch in this file, sharing no code
with ``src/``. Each test fails if one departure from the reference returns.
"""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from latentmed.shape.configs import REFERENCE_LSDEBM, LSDEBMConfig, sampler_config
from latentmed.shape.controls import chain_direction, energy_off, sweep_steps
from latentmed.shape.evaluate import evaluate, refine_cubes, score_cases
from latentmed.shape.models import LSDEBM, ShapeVAE, VAEConfig, bernoulli_nll
from latentmed.shape.objectives import ShapeObjectiveConfig, shape_objective

TINY = dict(image_size=16, latent_dim=6, base_channels=4, max_channels=8)


def _ref(**kw):
    cfg = {**REFERENCE_LSDEBM, "energy_hidden": 16, "langevin_steps": 7, "num_steps": 4, **TINY, **kw}
    return LSDEBM(LSDEBMConfig(**cfg)).eval()


def _masks(b=3, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, s, s, s, generator=g) > 0.7).float()


# --- the port (train:272-283, :93-137, :179-191; get_model_lsd_ebm.py:362-373) ---------------------
def port_schedule(T, beta_start=1e-4, beta_end=0.01):
    betas = np.append(np.linspace(beta_start, beta_end, 1000), 1.0)
    sqrt_alphas = np.sqrt(1.0 - betas)
    idx = np.concatenate([np.arange(T) * (1000 // ((T - 1) * 2)), [999]])
    a_s = np.concatenate([[np.prod(sqrt_alphas[: idx[0] + 1])],
                          [np.prod(sqrt_alphas[idx[i - 1] + 1: idx[i] + 1]) for i in range(1, len(idx))]])
    sigmas = np.sqrt(1 - a_s ** 2)
    a_s_cum = np.cumprod(a_s)
    sigmas_cum = np.sqrt(1 - a_s_cum ** 2)
    a_s_prev = a_s.copy()
    a_s_prev[-1] = 1
    return a_s, sigmas, a_s_cum, sigmas_cum, a_s_prev


def port_energy(model):
    """E_func (model_Unet_lsdebm.py:567-596) with the model's weights: Linear(d+1,h) GELU Linear(h,h) GELU Linear(h,1)."""
    lin = [m for m in model.energy.modules() if isinstance(m, torch.nn.Linear)]
    assert len(lin) == 3 and not any(hasattr(m, "parametrizations") for m in lin)  # plain, no spectral norm

    def energy(z, t):
        h = torch.cat([z, t.view(-1, 1).float()], 1)
        h = F.gelu(F.linear(h, lin[0].weight, lin[0].bias))
        h = F.gelu(F.linear(h, lin[1].weight, lin[1].bias))
        return F.linear(h, lin[2].weight, lin[2].bias).view(-1, 1, 1, 1)
    return energy


def port_langevin(z_tilde, t, energy, sched, steps, step_size, g, noise_sig=0.01):
    a_s, sigmas, _, _, a_s_prev = sched
    sigma = torch.tensor(sigmas, dtype=torch.float32)[t + 1][:, None]
    a = torch.tensor(a_s_prev, dtype=torch.float32)[t + 1][:, None]
    y = torch.randn(z_tilde.shape, generator=g).requires_grad_(True)  # train:101: from N(0, I)
    for _ in range(steps):
        logp = energy(y, t).sum() + ((y - z_tilde) ** 2 / 2 / sigma ** 2).sum()
        (grad,) = torch.autograd.grad(logp, y)
        with torch.no_grad():
            y = y - 0.5 * step_size * grad + math.sqrt(step_size) * noise_sig * torch.randn(y.shape, generator=g)
        y.requires_grad_(True)
    return (y / a).detach()


def port_q_sample(z0, t, sched, g):
    _, _, a_s_cum, sigmas_cum, _ = sched
    eps = torch.randn(z0.shape, generator=g)
    return (torch.tensor(a_s_cum, dtype=torch.float32)[t][:, None] * z0
            + torch.tensor(sigmas_cum, dtype=torch.float32)[t][:, None] * eps * 0.1)


# --- the recipe, item by item ----------------------------------------------------------------------
@pytest.mark.parametrize("T", [2, 15, 20])
def test_schedule_is_the_references_betas_to_0_01_with_its_first_step(T):
    a_s, sigmas, a_s_cum, sigmas_cum, _ = port_schedule(T)
    m = LSDEBM(LSDEBMConfig(**TINY, schedule="reference", num_steps=T, energy_hidden=8, energy_layers=1, time_dim=4))
    for mine, theirs in ((m.a, a_s), (m.sigma, sigmas), (m.a_cum, a_s_cum), (m.sigma_cum, sigmas_cum)):
        assert np.allclose(mine.double().numpy(), theirs, rtol=1e-5, atol=1e-7)
    ours = LSDEBM(LSDEBMConfig(**TINY, schedule="linear", num_steps=T, energy_hidden=8, energy_layers=1, time_dim=4))
    assert not np.allclose(ours.sigma.double().numpy(), sigmas, rtol=1e-3)  # betas to 0.02 and a_0 = 1 differ


def test_forward_noise_is_scaled_by_0_1_in_both_samplers():
    m = _ref()
    sched = port_schedule(4)
    z0, t = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    mine = m.diffuse(z0, t, torch.Generator().manual_seed(1))
    assert torch.allclose(mine, port_q_sample(z0, t, sched, torch.Generator().manual_seed(1)), atol=1e-6)
    eps = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))  # q_sample_pairs, train:188-189
    pair = torch.tensor(sched[0], dtype=torch.float32)[t + 1][:, None] * z0 + \
        torch.tensor(sched[1], dtype=torch.float32)[t + 1][:, None] * eps * 0.1
    assert torch.allclose(m.forward_step(z0, t, torch.Generator().manual_seed(2)), pair, atol=1e-6)


def test_shared_posterior_has_variance_at_least_one():
    m = _ref()
    x = _masks()
    mean, logvar = m.encode(x)
    assert torch.equal(mean, m.encoder.mean_head(m.encoder.features(x)))
    assert torch.allclose(logvar, 1e-6 + F.softplus(mean)) and bool((logvar > 0).all())


def test_reverse_step_is_the_references_langevin_from_noise_without_last_rescale():
    m = _ref(langevin_steps=300)
    sched = port_schedule(4)
    energy = port_energy(m)
    z_next = torch.randn(3, 6)
    for step in (0, 3):  # step 3 -> t+1 = T: a_s_prev[T] = 1, no rescale
        t = torch.full((3,), step, dtype=torch.long)
        mine = m.reverse_step(z_next, t, torch.Generator().manual_seed(4))
        theirs = port_langevin(z_next, t, energy, sched, 300, 0.01, torch.Generator().manual_seed(4))
        assert torch.allclose(mine, theirs, atol=1e-4), step
    # ours starts at z_{t+1} with step 0.2 s^2 and noise 1: a different sample
    ours = m.reverse_step(z_next, t, torch.Generator().manual_seed(4), c=sampler_config(m.config, "ours"))
    assert not torch.allclose(ours, theirs, atol=1e-2)


def port_reconstruction(m, x, T, sched, K, g):
    """LSD_EBM_model.reconstruction(x, step=T) (get_model_lsd_ebm.py:362-373) in latent space."""
    energy = port_energy(m)
    with torch.no_grad():
        mu = m.encoder.mean_head(m.encoder.features(x))
        z = mu + torch.exp(0.5 * (1e-6 + F.softplus(mu))) * torch.randn(mu.shape, generator=g)
        z = port_q_sample(z, torch.full((len(x),), T, dtype=torch.long), sched, g)
    for step in range(T - 1, -1, -1):  # p_sample_progressive with hor = T
        z = port_langevin(z, torch.full((len(x),), step, dtype=torch.long), energy, sched, K, 0.01, g)
    return z


def test_refinement_samples_the_posterior_and_starts_at_T_of_the_30_step_evaluation_schedule():
    m = _ref(langevin_steps=20)
    x = _masks(2)
    seen = []
    mine = m.refine_latent(x, generator=torch.Generator().manual_seed(7), callback=lambda t, _: seen.append(t))
    theirs = port_reconstruction(m, x, 4, port_schedule(30), 20, torch.Generator().manual_seed(7))
    assert seen == [4, 3, 2, 1, 0] and torch.allclose(mine, theirs, atol=1e-4)
    assert torch.allclose(m.a, torch.tensor(port_schedule(4)[0], dtype=torch.float32))  # trained schedule restored
    m.config.inference_T = None  # the consistent reading: the trained 4-step schedule, last step not rescaled
    mine = m.refine_latent(x, generator=torch.Generator().manual_seed(7))
    theirs = port_reconstruction(m, x, 4, port_schedule(4), 20, torch.Generator().manual_seed(7))
    assert torch.allclose(mine, theirs, atol=1e-4)


def test_reference_energy_is_a_plain_mlp_on_raw_t():
    m = LSDEBM(LSDEBMConfig(**{**REFERENCE_LSDEBM, **TINY}))
    d = TINY["latent_dim"]
    assert sum(p.numel() for p in m.energy.parameters()) == (d + 1) * 1000 + 1000 + 1000 * 1000 + 1000 + 1001
    z, t = torch.randn(2, d), torch.tensor([0, 7])
    assert torch.allclose(m.energy(z, t), port_energy(m)(z, t).view(-1), atol=1e-5)


def test_reference_objective_entropy_term_and_batch_broadcast_weighting():
    import copy

    x, voxels = _masks(), 16 ** 3
    model = _ref()
    twin = copy.deepcopy(model)
    torch.manual_seed(5)
    loss, logs = shape_objective("lsd-ebm", ShapeObjectiveConfig(recipe="reference"))(twin, {"x": x}, 0)
    torch.manual_seed(5)
    mean, logvar = model.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    loss_g = bernoulli_nll(model.decoder(z), x) + (logvar + 0.5 * ((z - mean) / torch.exp(logvar)) ** 2).sum(1)  # :526
    t = torch.randint(0, 4, (3,))
    z_pos = model.diffuse(z.detach(), t)
    y_neg = model.reverse_sample(model.forward_step(z_pos, t), t)
    a = model.a[t + 1][:, None].clone()
    a[t + 1 == 4] = 1.0  # a_s_prev
    loss_e = (model.energy(a * z_pos, t) - model.energy(y_neg, t)).view(-1, 1, 1, 1)
    loss_scale = 1.0 / (model.sigma[t + 1] / model.sigma[1])
    scaled = (loss_e * loss_scale).mean()  # train:517-518: [B,1,1,1] * [B] broadcasts to [B,1,1,B]
    assert torch.allclose(loss.mean(), loss_g.mean() / voxels + scaled, atol=1e-5)
    assert "kl" not in logs and "posterior_term" in logs


def test_vae_scored_by_mean_and_by_sample():
    vae = ShapeVAE(VAEConfig(**TINY)).eval()
    x = _masks(2)
    mean, logvar = vae.encode(x)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
    sampled = vae.refine(x, recipe="reference", generator=torch.Generator().manual_seed(3))
    assert torch.allclose(sampled, torch.sigmoid(vae.decoder(mean + torch.exp(0.5 * logvar) * eps)), atol=1e-6)
    assert torch.allclose(vae.refine(x), torch.sigmoid(vae.decoder(mean)), atol=1e-6)


def test_sampler_config_switches_inference_only():
    ours = LSDEBMConfig(**TINY)
    ref = sampler_config(ours, "reference")
    assert (ref.langevin_init, ref.langevin_steps, ref.langevin_step_size, ref.langevin_noise, ref.rescale_last,
            ref.refine_posterior, ref.default_refine_steps, ref.inference_T) == \
        ("noise", 300, 0.01, 0.01, False, "sample", 15, 30)
    assert ref.schedule == ours.schedule and ref.forward_noise == ours.forward_noise  # the trained chain stays
    assert ours.default_refine_steps == 1 and sampler_config(ref, "ours").langevin_init == "previous"


# --- controls --------------------------------------------------------------------------------------
def test_energy_off_leaves_the_latent_where_the_quadratic_puts_it():
    m = LSDEBM(LSDEBMConfig(**TINY, num_steps=3, energy_hidden=8, energy_layers=2, time_dim=4, langevin_noise=0.0,
                            langevin_steps=5)).eval()
    z = torch.randn(4, 6)
    t = torch.full((4,), 1, dtype=torch.long)
    with energy_off(m):
        assert torch.equal(m.reverse_sample(z, t), z)  # started at z_{t+1}: zero gradient, zero noise
    assert m.energy_enabled and not torch.allclose(m.reverse_sample(z, t), z)


def test_round_trip_of_an_identity_chain_is_the_ceiling_and_direction_has_known_answers():
    m = LSDEBM(LSDEBMConfig(**TINY, num_steps=3, energy_hidden=8, energy_layers=2, time_dim=4)).eval()
    m.diffuse = lambda z0, t, generator=None: z0  # an identity chain
    m.reverse_chain = lambda z, t, generator=None, callback=None, c=None: z
    g = torch.Generator().manual_seed(0)
    truth = (torch.rand(4, 16, 16, 16, generator=g) > 0.6).numpy()
    coarse = truth.copy()
    coarse[:, ::3] = False
    vae = ShapeVAE(VAEConfig(**TINY)).eval()
    result, _ = evaluate({"L": m, "V": vae}, coarse, truth, [str(i) for i in range(4)], controls=True, sweep_points=2)
    assert "V sampled" in result.scores and "V energy off" not in result.scores and "V" not in result.directions
    ceiling = score_cases(truth, refine_cubes(m, truth, steps=0)[0])["dice"]
    assert np.array_equal(result.scores["L round trip"]["dice"], ceiling)
    assert {"L energy off", "L t=0", "L t=3"} <= set(result.scores)
    assert np.allclose(result.directions["L"]["move_ratio"], 0.0)  # the identity chain does not move
    with torch.no_grad():
        clean_means = m.encode(torch.from_numpy(truth[:, None].astype(np.float32)))[0]
    m.refine_latent = lambda x, *a, **k: clean_means  # a chain that lands on encode(clean)
    d = chain_direction(m, coarse, truth, batch_size=8)
    assert np.allclose(d["cosine"], 1.0, atol=1e-5) and np.allclose(d["move_ratio"], 1.0, atol=1e-5)
    assert "**controls: direction**" in result.table()


def test_sweep_steps():
    assert sweep_steps(3) == [0, 1, 2, 3] and sweep_steps(20, 5) == [0, 5, 10, 15, 20]
