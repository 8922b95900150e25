"""DDIM step against diffusers' DDIMScheduler; inversion/decoding share one grid."""

import pytest
import torch

from latentmed.diffusion import Denoiser, ddim_invert, ddim_sample, ddim_step, ddim_timesteps, get_schedule
from latentmed.errors import LatentmedError


class FixedNet(torch.nn.Module):
    """A smooth deterministic 'network' so both implementations see the same outputs."""

    def forward(self, x, t, cond=None):
        return torch.tanh(0.7 * x + t.view(-1, *([1] * (x.ndim - 1))))


@pytest.mark.parametrize("prediction,diffusers_type", [("eps", "epsilon"), ("v", "v_prediction")])
def test_ddim_step_equals_diffusers(prediction, diffusers_type):
    from diffusers import DDIMScheduler

    steps = 10
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                          prediction_type=diffusers_type, clip_sample=False, set_alpha_to_one=True,
                          timestep_spacing="trailing")
    sched.set_timesteps(steps)
    ours = ddim_timesteps(steps)  # t = (i + 1) / T at diffusers' step i, then 0
    assert torch.allclose(ours[:-1] * 1000 - 1, sched.timesteps.double())
    net = FixedNet()
    den = Denoiser(net, get_schedule("linear"), prediction)
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    for i, ts in enumerate(sched.timesteps):
        t = float(ours[i])
        model_out = net(x, torch.full((2,), t))
        ref = sched.step(model_out, ts, x, eta=0.0).prev_sample
        mine, _ = ddim_step(den, x, t, float(ours[i + 1]))
        assert torch.allclose(mine, ref, atol=1e-5), (i, (mine - ref).abs().max())
        x = ref


@pytest.mark.parametrize("schedule,prediction", [("linear", "eps"), ("sc-4", "v"), ("cosine", "x")])
def test_inversion_then_decoding_reconstructs_for_exact_denoiser(schedule, prediction):
    """With a denoiser that knows x0 exactly, DDIM is exact: invert then sample returns the input."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 5, 5, 5, generator=g) * 2 - 1  # 3D works the same
    s = get_schedule(schedule)

    def oracle(x_t, t, cond):
        a, sig = s.alpha(t).view(-1, 1, 1, 1, 1), s.sigma(t).view(-1, 1, 1, 1, 1)
        eps = (x_t - a * x0) / sig.clamp_min(1e-6)
        return {"eps": eps, "x": x0, "v": a * eps - sig * x0}[prediction]

    den = Denoiser(oracle, s, prediction)
    grid = ddim_timesteps(20, t_max=0.98)
    x_T = ddim_invert(den, x0, grid)
    assert not torch.allclose(x_T, x0, atol=0.1)
    back = ddim_sample(den, x_T, grid)
    assert torch.allclose(back, x0, atol=1e-3)


def test_sampler_is_pure_and_reports_progress():
    den = Denoiser(FixedNet(), "sc-4", "v")
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    seen = []
    a = ddim_sample(den, x_T, ddim_timesteps(5), callback=lambda d: seen.append(d["i"]))
    b = ddim_sample(den, x_T, ddim_timesteps(5))
    assert seen == [0, 1, 2, 3, 4] and torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    c = ddim_sample(den, x_T, ddim_timesteps(5), eta=1.0, generator=g1)
    d = ddim_sample(den, x_T, ddim_timesteps(5), eta=1.0, generator=g2)
    assert torch.equal(c, d) and not torch.equal(a, c)


def test_bad_grid_is_clear():
    den = Denoiser(FixedNet(), "linear", "eps")
    with pytest.raises(LatentmedError, match="decreasing"):
        ddim_sample(den, torch.zeros(1, 1, 2, 2), [0.0, 0.5, 1.0])
    with pytest.raises(LatentmedError, match=">= 1"):
        ddim_timesteps(0)


def test_discrete_grid_is_diffusers_trailing_for_every_n():
    """The linear (discrete) schedule's grid sits on integer steps for every N, not only when N divides T."""
    from diffusers import DDIMScheduler

    lin = get_schedule("linear")
    sched = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    for n in (*range(1, 61), 64, 99, 100, 128, 250, 333, 999, 1000):
        sched.set_timesteps(n)
        ours = ddim_timesteps(n, schedule=lin)
        k = ours * 1000
        assert torch.equal(k, k.round()), n  # integer steps
        assert torch.equal((k[:-1] - 1).long(), sched.timesteps.long()), n
        assert ours[-1] == 0 and ours[0] == 1
    # without the discrete schedule the grid stays uniform (continuous schedules): N=7 is off-integer
    assert not torch.equal(ddim_timesteps(7) * 1000, (ddim_timesteps(7) * 1000).round())
    assert torch.equal(ddim_timesteps(7, schedule=get_schedule("sc-4")), ddim_timesteps(7))
    with pytest.raises(LatentmedError, match="at most 1000 steps"):
        ddim_timesteps(1001, schedule=lin)
