import math

import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.shape.langevin import langevin
from latentmed.shape.models import (
    LSDEBM,
    LEBMConfig,
    LSDEBMConfig,
    ShapeLEBM,
    ShapeVAE,
    VAEConfig,
    bernoulli_nll,
    load_shape_model,
)
from latentmed.shape.objectives import ShapeObjectiveConfig, gaussian_kl, shape_objective
from latentmed.nn.layers import timestep_embedding

TINY = dict(image_size=16, latent_dim=6, base_channels=4, max_channels=8)


def _masks(b=3, s=16):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(b, 1, s, s, s, generator=g) > 0.7).float()


def _lsd(**kw):
    return LSDEBM(LSDEBMConfig(**TINY, energy_hidden=16, energy_layers=2, time_dim=8, num_steps=4,
                               langevin_steps=3, **kw))


def test_likelihood_and_kl_match_torch_distributions():
    logits = torch.randn(2, 1, 3, 3, 3)
    x = (torch.rand_like(logits) > 0.5).float()
    ref = -torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(logits, x), ref, atol=1e-5)
    mean, logvar = torch.randn(4, 5), torch.randn(4, 5)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4, 5), torch.ones(4, 5))
    assert torch.allclose(gaussian_kl(mean, logvar), torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)


def test_sinusoidal_embedding_formula():
    """The energy's time embedding (shared with the UNet) on integer chain steps (scale 1)."""
    e = timestep_embedding(torch.tensor([0, 3]), 8, scale=1.0)
    freqs = [math.exp(-math.log(10000.0) * i / 4) for i in range(4)]
    assert torch.allclose(e[1], torch.tensor([math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]))
    assert torch.allclose(e[0, :4], torch.ones(4))


def test_langevin_is_batched_and_samples_the_target():
    m = torch.tensor([1.0, -2.0])
    quad = lambda z: 0.5 * (z - m).pow(2).sum(1)  # noqa: E731  N(m, I)
    z0 = torch.randn(5, 2)
    # gradient descent on a batch equals per-sample runs (no cross-talk between samples)
    batch = langevin(quad, z0, 7, 0.3, noise=False)
    single = torch.cat([langevin(quad, z0[i:i + 1], 7, 0.3, noise=False) for i in range(5)])
    assert torch.allclose(batch, single, atol=1e-6)
    # with noise: many chains reach N(m, I) (discretisation: var = 1 / (1 - lambda/4))
    g = torch.Generator().manual_seed(0)
    z = langevin(quad, torch.zeros(20000, 2), 120, 0.1, generator=g)
    assert torch.allclose(z.mean(0), m, atol=0.05)
    assert torch.allclose(z.var(0), torch.full((2,), 1 / (1 - 0.1 / 4)), atol=0.06)
    # per-sample step sizes broadcast ([B, 1])
    steps = torch.tensor([[0.1], [0.5]])
    out = langevin(quad, torch.zeros(2, 2), 1, steps, noise=False)
    assert torch.allclose(out, 0.5 * steps * m)


def test_encoder_has_separate_mean_and_logvar_heads():
    vae = ShapeVAE(VAEConfig(**TINY))
    enc = vae.encoder
    assert enc.mean_head.weight.data_ptr() != enc.logvar_head.weight.data_ptr()
    mean, logvar = vae.encode(_masks())
    assert mean.shape == logvar.shape == (3, 6) and not torch.allclose(mean, logvar)


@pytest.mark.parametrize("kind,cls,cfg", [
    ("vae", ShapeVAE, VAEConfig(**TINY)),
    ("lebm", ShapeLEBM, LEBMConfig(**TINY, energy_hidden=16, energy_layers=2, prior_steps=3, posterior_steps=2)),
    ("lsd-ebm", LSDEBM, LSDEBMConfig(**TINY, energy_hidden=16, energy_layers=2, time_dim=8, num_steps=3,
                                     langevin_steps=2)),
])
def test_per_sample_loss_and_gradients(kind, cls, cfg):
    model = cls(cfg)
    loss, logs = shape_objective(kind)(model, {"x": _masks()}, 0)
    assert loss.shape == (3,) and torch.isfinite(loss).all() and "bce" in logs
    loss.mean().backward()
    assert model.decoder.fc.weight.grad.abs().sum() > 0
    if hasattr(model, "energy"):
        assert model.energy.inp.parametrizations.weight.original.grad.abs().sum() > 0
    model.eval()
    g = torch.Generator().manual_seed(1)
    out = model.refine(_masks(2), generator=g)
    assert out.shape == (2, 1, 16, 16, 16) and ((out >= 0) & (out <= 1)).all()
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 16, 16, 16)
    with pytest.raises(LatentmedError, match="expected masks of shape"):
        model(torch.zeros(1, 1, 8, 8, 8))


def test_objectives_equal_algorithm_1_written_out():
    """Same seed, same draws: the objectives' per-sample losses equal the losses built from the models' pieces
    (LSD-EBM: the forward chain's ``a z_t`` against the reverse Langevin sample; VAE: the ELBO per voxel)."""
    import copy

    x, voxels = _masks(), 16 ** 3
    model = _lsd()
    twin = copy.deepcopy(model)  # spectral norm's power iteration moves on every training-mode call
    torch.manual_seed(5)
    loss, logs = shape_objective("lsd-ebm", ShapeObjectiveConfig(kl_weight=0.3, ebm_weight=0.5))(twin, {"x": x}, 7)
    torch.manual_seed(5)
    mean, logvar = model.encode(x)
    z0 = model.reparameterize(mean, logvar)
    nll = bernoulli_nll(model.decoder(z0), x)
    t = torch.randint(0, 4, (3,))
    z_pos = model.diffuse(z0.detach(), t)
    y_neg = model.reverse_sample(model.forward_step(z_pos, t), t)
    gap = model.energy((1 - model.sigma2[t][:, None]).sqrt() * z_pos, t) - model.energy(y_neg, t)
    assert torch.equal(loss, (nll + 0.3 * gaussian_kl(mean, logvar)) / voxels + 0.5 * gap)
    assert logs == pytest.approx({"bce": nll.mean().item() / voxels, "kl": gaussian_kl(mean, logvar).mean().item(),
                                  "energy_gap": gap.mean().item()})
    vae = ShapeVAE(VAEConfig(**TINY))
    torch.manual_seed(5)
    loss = shape_objective("vae")(vae, {"x": x}, 0)[0]  # kl_weight 1: the ELBO
    torch.manual_seed(5)
    mean, logvar = vae.encode(x)
    elbo = bernoulli_nll(vae.decoder(vae.reparameterize(mean, logvar)), x) + gaussian_kl(mean, logvar)
    assert torch.equal(loss, elbo / voxels)
    with pytest.raises(LatentmedError, match="no encoder and no KL"):
        shape_objective("lebm", ShapeObjectiveConfig(kl_weight=0.1))


def test_run_config_resolves_the_loss_weights_per_model(tmp_path):
    from latentmed.config import merge_config
    from latentmed.shape.training import ShapeRunConfig, train_shape_model

    resolved = {k: ShapeObjectiveConfig().resolved(k) for k in ("vae", "lebm", "lsd-ebm")}
    assert [(c.kl_weight, c.ebm_weight) for c in resolved.values()] == [(1.0, None), (None, 1.0), (0.0, 1.0)]
    with pytest.raises(LatentmedError, match="no energy"):
        ShapeObjectiveConfig(ebm_weight=2.0).resolved("vae")
    with pytest.raises(LatentmedError, match="differs from the model to train"):
        train_shape_model("vae", tmp_path, tmp_path / "run", ShapeRunConfig(kind="lebm"))
    with pytest.raises(LatentmedError, match="write objective.kl_weight instead"):
        merge_config(ShapeRunConfig, None, ["kind=vae", "model.kl_weight=0.5"]).model_config()


def test_folders_saved_with_loss_weights_in_the_model_config_still_load(tmp_path):
    """Before issue 12 config.json held kl_weight / ebm_weight; they are the run's objective section now."""
    from latentmed.io import read_json, write_json

    model = _lsd().eval()
    model.save_pretrained(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "config.json")
    write_json(tmp_path / "m" / "config.json", {**meta, "kl_weight": 0.0, "ebm_weight": 1.0})
    loaded = load_shape_model(tmp_path / "m")
    assert loaded.config == model.config


def test_energy_term_does_not_train_the_encoder():
    model = _lsd()
    torch.manual_seed(0)
    mean, logvar = model.encode(_masks())
    z0 = model.reparameterize(mean, logvar)
    t = torch.zeros(3, dtype=torch.long)
    z_pos = model.diffuse(z0.detach(), t)
    gap = model.energy(z_pos, t) - model.energy(model.reverse_step(model.forward_step(z_pos, t), t), t)
    gap.sum().backward()
    assert model.encoder.mean_head.weight.grad is None
    assert model.energy.out.weight.grad is not None


def test_forward_chain_marginals():
    model = _lsd(alpha_bar_T=0.1, schedule="constant")
    assert math.isclose(float(model.alpha_bar[-1]), 0.1, rel_tol=1e-5)
    assert torch.allclose(model.alpha_bar[1:], torch.cumprod(1 - model.sigma2, 0))
    g = torch.Generator().manual_seed(0)
    z0 = torch.full((40000, 6), 2.0)
    z = z0
    for t in range(2):  # two single steps equal the marginal q(z_2|z_0)
        z = model.forward_step(z, torch.full((len(z),), t, dtype=torch.long), g)
    a = model.alpha_bar[2]
    assert torch.allclose(z.mean(), 2.0 * a.sqrt(), atol=0.02)
    assert torch.allclose(z.var(), 1 - a, atol=0.02)
    zm = model.diffuse(z0, torch.full((len(z0),), 2, dtype=torch.long), g)
    assert torch.allclose(zm.mean(), z.mean(), atol=0.02) and torch.allclose(zm.var(), z.var(), atol=0.02)


@pytest.mark.parametrize("reference,scaled", [(False, False), (True, False), (False, True)])
def test_reverse_step_with_zero_energy_is_the_gaussian_kernel(reference, scaled):
    model = _lsd(langevin_step_scale=0.2, gaussian_reference=reference, scaled_reverse=scaled)
    model.config.langevin_steps = 100
    model.energy.forward = lambda z, t=None, temb=None: z.sum(1) * 0.0
    anchor = torch.tensor([[0.5, -1.0, 0.0, 2.0, 1.0, 0.0]]).repeat(4000, 1)
    t = torch.full((4000,), 1, dtype=torch.long)
    z = model.reverse_step(anchor, t, torch.Generator().manual_seed(0))
    s2 = float(model.sigma2[1])
    if scaled:  # the chain samples y = a z_t, then returns z_t = y / a
        z = z * math.sqrt(1 - s2)
    # exp(-|z_{t+1} - z|^2 / (2 s^2)) [* exp(-|z|^2 / 2)]: a Gaussian; Langevin with step c s^2 on
    # precision P has variance (1/P) / (1 - c s^2 P / 4)
    precision = 1 / s2 + (1.0 if reference else 0.0)
    mean = anchor[0] / (s2 * precision)
    var = (1 / precision) / (1 - 0.2 * s2 * precision / 4)
    assert torch.allclose(z.mean(0), mean, atol=0.03 + 3 * math.sqrt(var / 4000))
    assert torch.allclose(z.var(0).mean(), torch.tensor(var), rtol=0.05)


def test_refinement_is_seeded_and_records_the_chain(tmp_path):
    model = _lsd().eval()
    x = _masks(2)
    seen = []
    a = model.refine(x, steps=2, generator=torch.Generator().manual_seed(3), callback=lambda t, z: seen.append(t))
    b = model.refine(x, steps=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and seen == [2, 1, 0]
    with pytest.raises(LatentmedError, match="steps=9"):
        model.refine(x, steps=9)
    model.save_pretrained(tmp_path / "m")
    loaded = load_shape_model(tmp_path / "m")
    assert isinstance(loaded, LSDEBM)
    c = loaded.refine(x, steps=2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, c, atol=1e-6)
    vae = ShapeVAE(VAEConfig(**TINY)).eval()
    assert torch.allclose(vae.refine(x), vae.decode(vae.encode(x)[0]))


def test_config_validation():
    with pytest.raises(LatentmedError, match="power of two"):
        ShapeVAE(VAEConfig(image_size=24))
    with pytest.raises(LatentmedError, match="refine_steps"):
        LSDEBMConfig(num_steps=2, refine_steps=3)
    with pytest.raises(LatentmedError, match="alpha_bar_T"):
        LSDEBMConfig(alpha_bar_T=1.5)


def test_linear_schedule_matches_ddpm_subsampled():
    from latentmed.shape.models import lsd_noise_schedule

    # T=2 samples DDPM's alpha_bar at idx [0, 500, 999] (DESIGN: alpha_bar[499]=0.078587, [999]=4.036e-5)
    s2 = lsd_noise_schedule(2)
    beta_500 = 1e-4 + 500 * (0.02 - 1e-4) / 999
    assert math.isclose(1 - float(s2[0]), 0.078587 * (1 - beta_500) / (1 - 1e-4), rel_tol=1e-4)
    for T in (2, 15, 20):
        s2 = lsd_noise_schedule(T)
        assert s2.shape == (T,) and (s2[1:] > s2[:-1]).all()
        assert math.isclose(float(torch.prod(1 - s2)), 4.036e-5 / (1 - 1e-4), rel_tol=1e-3)
    assert 0.006 < float(lsd_noise_schedule(20)[0]) < 0.01  # the reference's small first step
    const = lsd_noise_schedule(4, "constant", 0.05)
    assert torch.allclose(const, torch.full((4,), 1 - 0.05 ** 0.25, dtype=torch.float64))
    model = _lsd()
    assert torch.allclose(model.sigma2.double(), lsd_noise_schedule(4), atol=1e-7)
    with pytest.raises(LatentmedError, match="schedule"):
        LSDEBMConfig(schedule="cosine")


def test_langevin_noise_scale_zero_is_descent():
    energy = lambda z: 0.5 * z.pow(2).sum(1)  # noqa: E731
    z0 = torch.ones(2, 3)
    a = langevin(energy, z0, 5, 0.1, noise_scale=0.0, generator=torch.Generator().manual_seed(0))
    b = langevin(energy, z0, 5, 0.1, noise=False)
    assert torch.equal(a, b)
    c = langevin(energy, z0, 5, 0.1, noise_scale=0.01, generator=torch.Generator().manual_seed(0))
    assert 0 < (c - b).abs().max() < 0.05


def test_per_group_clipping_leaves_the_autoencoder_step_unscaled():
    from accelerate import Accelerator

    from latentmed.train.loop import clip_per_group

    model = _lsd()
    groups = model.parameter_groups()
    assert [g["name"] for g in groups] == ["autoencoder", "energy"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    for g, norm in zip(groups, (0.5, 10.0)):  # a small autoencoder gradient, a large energy gradient
        for p in g["params"]:
            p.grad = torch.ones_like(p)
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in g["params"]))
        for p in g["params"]:
            p.grad *= norm / total
    before = [p.grad.clone() for p in groups[0]["params"]]
    clip_per_group(Accelerator(cpu=True), torch.optim.Adam(groups, lr=1e-3), 1.0)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, groups[0]["params"]))  # unscaled
    energy_norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in groups[1]["params"]))
    assert math.isclose(float(energy_norm), 1.0, rel_tol=1e-4)


def test_chain_from_T_forgets_the_input_and_follows_the_seed():
    model = _lsd(langevin_noise=0.01).eval()
    x = _masks(2)
    a, b, T = x[:1], x[1:], model.config.num_steps

    def refine(mask, t, seed=0):
        return model.refine(mask, steps=t, generator=torch.Generator().manual_seed(seed))

    from_T = refine(a, T)
    assert from_T.shape == a.shape and torch.equal(from_T, refine(a, T))  # seeded
    # alpha_bar_T ~ 4e-5: from t = T (Algorithm 2 from T) the output follows the seed, hardly the input
    input_effect = float((from_T - refine(b, T)).abs().mean())
    assert input_effect < 0.01 * float((from_T - refine(a, T, seed=1)).abs().mean())
    # t = 0: the autoencoder alone (the control that shows what the chain adds), which does follow the input
    assert torch.allclose(refine(a, 0), model.decode(model.encode(a)[0]))
    assert float((refine(a, 0) - refine(b, 0)).abs().mean()) > 100 * input_effect


def test_sigma_ratio_weights_each_samples_energy_term_and_energy_lr_is_its_own(tmp_path):
    """Reference-code options: the energy term times sigma_1 / sigma_{t+1}, and the energy's own learning rate."""
    import copy

    from latentmed.data.phantoms.spine3d import generate_spine3d
    from latentmed.config import merge_config
    from latentmed.shape.training import ShapeRunConfig, train_shape_model
    from latentmed.train.checkpoint import load_checkpoint

    x, model = _masks(), _lsd()
    twin = copy.deepcopy(model)
    torch.manual_seed(3)
    uniform, _ = shape_objective("lsd-ebm")(model, x, 0)
    torch.manual_seed(3)
    out = copy.deepcopy(twin)(x)
    torch.manual_seed(3)
    weighted, _ = shape_objective("lsd-ebm", ShapeObjectiveConfig(energy_weighting="sigma_ratio"))(twin, x, 0)
    gap = out.energy_pos - out.energy_neg
    assert torch.allclose(weighted - uniform, gap * (out.energy_scale - 1), atol=1e-6)
    s = model.sigma2.double().sqrt()
    assert out.energy_scale.min() >= (s[0] / s.max()).item() - 1e-6 and out.energy_scale.max() <= 1 + 1e-6
    with pytest.raises(LatentmedError, match="only LSD-EBM"):
        ShapeObjectiveConfig(energy_weighting="sigma_ratio").resolved("lebm")
    with pytest.raises(LatentmedError, match="'uniform', 'sigma_ratio' or"):
        ShapeObjectiveConfig(energy_weighting="sigma")

    data = generate_spine3d(tmp_path / "masks", 4, 16, seed=0)
    overrides = ["train.steps=2", "train.batch_size=2", "train.lr=1e-3", "train.energy_lr=2e-5",
                 "objective.energy_weighting=sigma_ratio", *[f"model.{k}={v}" for k, v in TINY.items()],
                 "model.energy_hidden=8", "model.energy_layers=2", "model.time_dim=4", "model.num_steps=3",
                 "model.langevin_steps=2"]
    train_shape_model("lsd-ebm", data, tmp_path / "run", merge_config(ShapeRunConfig, None, overrides))
    groups = load_checkpoint(tmp_path / "run")[2]["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == [1e-3, 2e-5]  # autoencoder, energy
    with pytest.raises(LatentmedError, match="has no energy"):
        train_shape_model("vae", data, tmp_path / "vae", merge_config(ShapeRunConfig, None, ["train.energy_lr=1e-5"]))


def test_energy_trains_alone_on_a_frozen_autoencoder(tmp_path):
    """Two-stage LSD-EBM: the energy of another T trained on a fixed autoencoder leaves it bit-identical."""
    from latentmed.data.phantoms.spine3d import generate_spine3d
    from latentmed.config import merge_config
    from latentmed.shape.training import ShapeRunConfig, train_shape_model

    data = generate_spine3d(tmp_path / "masks", 4, 16, seed=0)
    tiny = [*[f"model.{k}={v}" for k, v in TINY.items()], "model.energy_hidden=8", "model.energy_layers=2",
            "model.time_dim=4", "model.langevin_steps=2", "train.batch_size=2", "train.lr=1e-2"]
    train_shape_model("lsd-ebm", data, tmp_path / "joint", merge_config(ShapeRunConfig, None, [*tiny, "model.num_steps=4",
                                                                                  "train.steps=3"]))
    source = load_shape_model(tmp_path / "joint")
    from dataclasses import replace

    from latentmed.runtime import seed_everything

    seed_everything(0)  # the run's train.seed: the two-stage run's energy starts from these weights
    energy_at_start = LSDEBM(replace(source.config, num_steps=2)).energy.state_dict()
    train_shape_model("lsd-ebm", data, tmp_path / "T2", merge_config(ShapeRunConfig, None, [
        *tiny, "model.num_steps=2", "train.steps=3", "train.ema_decay=0", f"train.init_autoencoder={tmp_path / 'joint'}",
        "train.freeze_autoencoder=true"]))
    two_stage = load_shape_model(tmp_path / "T2")
    assert two_stage.config.num_steps == 2
    for part in ("encoder", "decoder"):
        for (k, a), b in zip(getattr(source, part).state_dict().items(), getattr(two_stage, part).state_dict().values()):
            assert torch.equal(a, b), f"{part}.{k} moved"
    moved = [k for k, v in two_stage.energy.state_dict().items() if not torch.equal(v, energy_at_start[k])]
    assert "out.weight" in moved and "out.weight" in energy_at_start  # the energy did train
    with pytest.raises(LatentmedError, match="expected train.init_autoencoder"):
        merge_config(ShapeRunConfig, None, ["train.freeze_autoencoder=true"])
    with pytest.raises(LatentmedError, match="only LSD-EBM's energy"):
        train_shape_model("vae", data, tmp_path / "v", merge_config(ShapeRunConfig, None, [
            *tiny[:4], "train.steps=1", f"train.init_autoencoder={tmp_path / 'joint'}", "train.freeze_autoencoder=true"]))
    with pytest.raises(LatentmedError, match="differs in shape"):
        train_shape_model("vae", data, tmp_path / "v2", merge_config(ShapeRunConfig, None, [
            "model.image_size=16", "model.latent_dim=3", "model.base_channels=4", "model.max_channels=8",
            "train.steps=1", f"train.init_autoencoder={tmp_path / 'joint'}"]))
