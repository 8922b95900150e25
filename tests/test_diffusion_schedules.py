"""Schedules and parametrizations against the values checked in docs/design.md ("Formulas and checked values")."""

import math

import pytest
import torch

from latentmed.diffusion import PREDICTIONS, get_schedule, target, to_x0_eps
from latentmed.errors import LatentmedError


def test_linear_beta_matches_ddpm_alpha_bar():
    s = get_schedule("linear")
    ab = s.alphas_cumprod()
    assert ab[0].item() == pytest.approx(0.999900, abs=1e-6)
    assert ab[499].item() == pytest.approx(0.078587, abs=1e-6)
    assert ab[999].item() == pytest.approx(4.036e-5, rel=1e-3)
    # continuous schedule is exact at t_i = (i + 1) / T
    idx = torch.tensor([0, 499, 999])
    t = (idx + 1).double() / 1000
    assert torch.allclose(s.alpha(t) ** 2, ab[idx], rtol=1e-9)
    assert s.alpha(torch.tensor(0.0)).item() == pytest.approx(1.0)


def test_linear_beta_equals_diffusers_alphas_cumprod():
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02).alphas_cumprod.double()
    assert torch.allclose(get_schedule("linear").alphas_cumprod(), ref, rtol=1e-5)


@pytest.mark.parametrize("t,alpha", [(0.1, 0.999217), (0.25, 0.994681), (0.5, 0.970143), (0.75, 0.856148),
                                     (0.9, 0.535175), (1.0, 0.0)])
def test_shifted_cosine_sc4(t, alpha):
    assert get_schedule("sc-4").alpha(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(alpha, abs=1e-6)


def test_sc1_is_cosine_and_log_snr_formula():
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    assert torch.allclose(get_schedule("sc-1").alpha(t), torch.cos(math.pi * t / 2))
    assert torch.allclose(get_schedule("cosine").alpha(t), torch.cos(math.pi * t / 2))
    lam = get_schedule("sc-4").log_snr(t)
    assert torch.allclose(lam, -2 * torch.log(torch.tan(math.pi * t / 2)) + 2 * math.log(4))


def test_inverted_schedule():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    expected = torch.sqrt((2 / math.pi) * torch.arccos(torch.sqrt(t)))
    assert torch.allclose(get_schedule("inverted").alpha(t), expected)


@pytest.mark.parametrize("name", ["linear", "cosine", "sc-4", "sc-0.5", "inverted"])
def test_variance_preserving_and_monotone(name):
    s = get_schedule(name)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    a, sig = s.alpha(t), s.sigma(t)
    assert torch.allclose(a**2 + sig**2, torch.ones_like(t), atol=1e-9)
    assert bool((a[1:] <= a[:-1] + 1e-12).all())


def test_unknown_schedule_is_clear():
    with pytest.raises(LatentmedError, match="sc-<S>"):
        get_schedule("quadratic")
    with pytest.raises(LatentmedError, match="unknown prediction"):
        target(torch.zeros(1, 1), torch.zeros(1, 1), 1.0, 0.0, "score")


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_parametrizations_roundtrip(prediction):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0.1, 0.3, 0.6, 0.9])
    s = get_schedule("sc-4")
    a, sig = s.alpha(t), s.sigma(t)
    x_t = a.view(-1, 1, 1, 1) * x0 + sig.view(-1, 1, 1, 1) * eps
    out = target(x0, eps, a, sig, prediction)
    x0_hat, eps_hat = to_x0_eps(out, x_t, a, sig, prediction)
    assert torch.allclose(x0_hat, x0, atol=1e-4) and torch.allclose(eps_hat, eps, atol=1e-4)


def test_v_at_t1_is_minus_x0():
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    s = get_schedule("sc-4")
    one = torch.ones(2)
    assert torch.allclose(target(x0, eps, s.alpha(one), s.sigma(one), "v"), -x0)


# ---- Stable Diffusion's schedule and diffusers' integer timesteps -----------------------------------------------
def test_scaled_linear_and_diffusers_indexing_match_ddpm_scheduler(tmp_path):
    """alphas_cumprod to 1e-6; diffusers' timestep k <-> t = (k+1)/T; add_noise and a trailing grid to the integer."""
    from diffusers import DDIMScheduler, DDPMScheduler

    from latentmed.diffusion import TabulatedSchedule, ddim_timesteps

    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    ours = get_schedule("scaled_linear")
    assert ours.name == "scaled_linear" and ours.discrete_steps == 1000
    torch.testing.assert_close(ours.alphas_cumprod(), ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    k = torch.arange(1000)
    t = ours.time_of_step(k)
    torch.testing.assert_close(ours.alpha(t) ** 2, ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    assert torch.equal(ours.step_of_time(t), k)
    z0, eps = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    steps = torch.tensor([0, 300, 999])
    noised = ours.alpha(t[steps].float()).view(-1, 1, 1, 1) * z0 + ours.sigma(t[steps].float()).view(-1, 1, 1, 1) * eps
    torch.testing.assert_close(noised, ref.add_noise(z0, eps, steps), atol=1e-5, rtol=1e-5)
    for n in (10, 50, 1000):  # our DDIM grid on this schedule = diffusers' trailing timesteps, integer for integer
        ddim = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                             timestep_spacing="trailing")
        ddim.set_timesteps(n)
        assert torch.equal(ours.step_of_time(ddim_timesteps(n, schedule=ours)[:-1]), ddim.timesteps.long())
    # a diffusers scheduler folder loads into the tabulated schedule
    ref.save_pretrained(tmp_path / "scheduler")
    loaded = TabulatedSchedule.from_diffusers(tmp_path / "scheduler")
    assert loaded.name == "diffusers-scaled_linear"
    torch.testing.assert_close(loaded.alphas_cumprod(), ours.alphas_cumprod(), atol=1e-6, rtol=0)
    with pytest.raises(LatentmedError, match="scheduler_config.json"):
        TabulatedSchedule.from_diffusers(tmp_path)
    with pytest.raises(LatentmedError, match="non-increasing"):
        TabulatedSchedule([0.5, 0.9])
    with pytest.raises(LatentmedError, match=r"integers in \[0, 1000\)"):
        ours.time_of_step(1000)
