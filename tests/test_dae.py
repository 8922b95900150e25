"""Diffusion autoencoder: conditioning, encode/invert/decode, save/load, objectives, bad input."""

import json

import pytest
import torch

from latentmed.dae import (DAEObjective, DiffusionAutoencoder, LatentDDIM, LatentDDIMConfig, ObjectiveConfig,
                           preset_config, slerp)
from latentmed.errors import LatentmedError
from latentmed.nn.layers import ResBlock
from latentmed.train import TrainConfig, train

MICRO = dict(image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
             z_dim=16, encoder=dict(channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=()), dropout=0.0)


def micro(encoder=None, **kw):
    """A micro DAE; ``encoder`` updates MICRO's encoder section."""
    encoder = {**MICRO["encoder"], **(encoder or {})}
    return DiffusionAutoencoder(preset_config("tiny", **{**MICRO, **kw, "encoder": encoder}))


def blobs(n=32, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    c = torch.rand(n, 2, generator=g) - 0.5
    r = torch.rand(n, generator=g) * 0.3 + 0.25
    inside = ((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2) < r[:, None, None] ** 2
    return inside.float()[:, None] * 1.6 - 0.8


def test_resblock_conditioning_formula():
    """GN -> h(1+t_scale)+t_shift -> h(1+z_scale) -> SiLU -> dropout -> zero conv (docs/design.md, "DiffAE")."""
    torch.manual_seed(0)
    block = ResBlock(8, 8, dims=2, emb_channels=12, z_channels=5).eval()
    torch.nn.init.normal_(block.out_rest[-1].weight)  # un-zero the output conv to see the path
    x, emb, z = torch.randn(2, 8, 4, 4), torch.randn(2, 12), torch.randn(2, 5)
    h = block.out_norm(block.in_layers(x))
    ts, tsh = block.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)
    h = h * (1 + ts) + tsh
    h = h * (1 + block.z_layers(z)[:, :, None, None])
    expected = x + block.out_rest[-1](torch.nn.functional.silu(h))
    assert torch.allclose(block(x, emb, z), expected, atol=1e-5)
    fresh = ResBlock(8, 8, dims=2, emb_channels=12, z_channels=5)
    assert torch.equal(fresh(x, emb, z), x)  # zero-initialised: starts as identity


def test_presets_and_parameter_counts():
    counts = {name: DiffusionAutoencoder(preset_config(name)).num_parameters()["total"]
              for name in ("tiny", "diffae-64")}
    assert 1e6 < counts["tiny"] < 3e6
    assert counts["diffae-64"] > 50 * counts["tiny"]
    with pytest.raises(LatentmedError, match="Available: diffae-64"):
        preset_config("huge")
    with pytest.raises(LatentmedError, match="divisible"):
        preset_config("tiny", image_size=30)


def test_encoder_pooling_heads_and_old_configs(tmp_path):
    """``avg``: DiffAE's GN-SiLU-avgpool-1x1 conv; ``flatten``: GN-SiLU-flatten-linear over the last map."""
    x = blobs(3)
    for pool in ("avg", "flatten"):
        enc = micro({"pool": pool}).encoder.eval()
        h = enc.head[1](enc.head[0](enc.body(x)))  # GN, SiLU: [3, 32, 8, 8]
        last = enc.head[-1] if pool == "flatten" else enc.head[-2]
        expected = last(h.flatten(1)) if pool == "flatten" else last(h.mean((2, 3), keepdim=True)).flatten(1)
        assert torch.allclose(enc(x), expected, atol=1e-5)
    assert micro({"pool": "flatten"}).encoder.head[-1].in_features == 32 * 8 * 8
    with pytest.raises(LatentmedError, match="encoder.pool.*avg, flatten.*'max'"):
        micro({"pool": "max"})
    avg = micro({"pool": "avg"}).eval()
    avg.save_pretrained(tmp_path / "old")
    # a folder written before the encoder section (flat enc_* keys) and before enc_pool existed still loads
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    enc = cfg.pop("encoder")
    cfg.update({f"enc_{k}": enc[k] for k in ("channel_mult", "num_res_blocks", "attention_resolutions")})
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    old = DiffusionAutoencoder.from_pretrained(tmp_path / "old")
    assert old.config == avg.config and torch.equal(old.encode(x), avg.encode(x))
    assert preset_config("tiny", enc_pool="avg", enc_middle=True).encoder == preset_config(
        "tiny", encoder={"pool": "avg", "middle": True}).encoder  # old run configs' model keys too


def test_encoder_middle_block(tmp_path):
    """encoder.middle: DiffAE's ResBlock, attention, ResBlock at the lowest resolution, before the head."""
    from latentmed.nn.layers import AttentionBlock, ResBlock

    x = blobs(2)
    plain, middle = micro({"pool": "flatten"}), micro({"pool": "flatten", "middle": True})
    assert [type(m) for m in list(middle.encoder.body)[-3:]] == [ResBlock, AttentionBlock, ResBlock]
    assert len(middle.encoder.body) == len(plain.encoder.body) + 3
    assert middle.encode(x).shape == plain.encode(x).shape
    assert "middle block (ResBlock, attention, ResBlock): yes" in middle.config.encoder_head()
    assert "encoder.pool=flatten" in plain.config.encoder_head() and plain.config.encoder_head().endswith("no")
    middle.save_pretrained(tmp_path / "m")
    assert torch.allclose(DiffusionAutoencoder.from_pretrained(tmp_path / "m").encode(x), middle.encode(x))


def test_shapes_2d_and_3d_and_z_matters():
    dae = micro().eval()
    x = blobs(3)
    z = dae.encode(x)
    assert z.shape == (3, 16)
    x_T = dae.encode_stochastic(x, z, steps=4)
    assert x_T.shape == x.shape
    assert dae.decode(z, x_T, steps=4).shape == x.shape
    dae3 = DiffusionAutoencoder(preset_config("tiny", **{**MICRO, "image_size": 8, "dims": 3})).eval()
    v = torch.rand(2, 1, 8, 8, 8) * 2 - 1
    assert dae3.reconstruct(v, steps=3).shape == v.shape


def test_save_load_roundtrip_and_identity(tmp_path):
    dae = micro().eval()
    dae.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["_class"] == "DiffusionAutoencoder" and meta["z_dim"] == 16
    back = DiffusionAutoencoder.from_pretrained(tmp_path / "m").eval()
    x = blobs(2)
    assert torch.equal(dae.encode(x), back.encode(x))
    assert back.model_id == dae.model_id and len(dae.model_id) == 16
    assert micro(z_dim=8).model_id != dae.model_id
    assert not list((tmp_path / "m").glob("*.pt")) and not list((tmp_path / "m").glob("*.pkl"))


def test_checkpoint_of_another_architecture_is_clear(tmp_path):
    micro().save_pretrained(tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg["model_channels"] = 32
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LatentmedError, match="another architecture"):
        DiffusionAutoencoder.from_pretrained(tmp_path / "a")
    LatentDDIM(LatentDDIMConfig(z_dim=4, hidden=8, num_layers=1)).save_pretrained(tmp_path / "b")
    with pytest.raises(LatentmedError, match="holds a LatentDDIM model, expected DiffusionAutoencoder"):
        DiffusionAutoencoder.from_pretrained(tmp_path / "b")


def test_bad_images_are_clear():
    dae = micro()
    with pytest.raises(LatentmedError, match="1 channel.*got 3"):
        dae.encode(torch.zeros(1, 3, 16, 16))
    with pytest.raises(LatentmedError, match="16px.*Resize"):
        dae.encode(torch.zeros(1, 1, 20, 20))
    with pytest.raises(LatentmedError, match="NaN"):
        dae.encode(torch.full((1, 1, 16, 16), float("nan")))
    with pytest.raises(LatentmedError, match=r"x\[None\]"):
        dae.encode(torch.zeros(1, 16, 16))
    with pytest.raises(LatentmedError, match="another DAE"):
        dae.decode(torch.zeros(1, 7), steps=2)
    with pytest.raises(LatentmedError, match="unknown prediction"):
        preset_config("tiny", prediction="score")


def test_two_phase_objective_phase1_is_autoencoder_regressing_minus_x0():
    obj = DAEObjective(ObjectiveConfig(name="two-phase", phase1_fraction=0.25), total_steps=100)
    assert obj.schedule.name == "sc-4" and obj.prediction == "v"
    assert obj.phase(24) == 1 and obj.phase(25) == 2
    seen = {}

    def net(x_t, t, x_start=None):
        seen["t"], seen["x_t"] = t, x_t
        return torch.zeros_like(x_t)

    x0 = blobs(4)
    loss, logs = obj(net, x0, 0)
    assert torch.all(seen["t"] == 1) and logs["phase"] == 1.0
    assert torch.allclose(loss, x0.pow(2).flatten(1).mean(1))  # target is v = -x0
    _, logs = obj(net, x0, 25)
    assert logs["phase"] == 2.0 and not torch.all(seen["t"] == 1)
    base = DAEObjective(ObjectiveConfig(name="baseline"), total_steps=10)
    assert base.phase(0) == 2 and base.prediction == "eps" and base.schedule.name == "linear"
    with pytest.raises(LatentmedError, match="one-phase"):
        ObjectiveConfig(name="baseline", prediction="v")


def test_trained_micro_dae_inversion_beats_random_xT(tmp_path):
    """DDIM inversion + decoding on the same grid reconstructs far better than random x_T."""
    data = blobs(48)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return {"image": data[i], "id": str(i)}

    dae = micro(schedule="sc-4", prediction="v")
    obj = DAEObjective(ObjectiveConfig(name="two-phase"), total_steps=80)
    cfg = TrainConfig(steps=80, batch_size=16, lr=2e-3, log_every=20, checkpoint_every=0, progress=False)
    ema = train(dae, obj, DS(), cfg, tmp_path).ema_model.eval()
    x = data[:6]
    inv = ema.reconstruct(x, steps=10, inversion=True)
    rnd = ema.reconstruct(x, steps=10, inversion=False, generator=torch.Generator().manual_seed(0))
    mse_inv = (inv - x).pow(2).mean().item()
    mse_rnd = (rnd - x).pow(2).mean().item()
    assert mse_inv < 0.25 * mse_rnd, (mse_inv, mse_rnd)
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_slerp_and_interpolate_endpoints():
    a, b = torch.randn(1, 5), torch.randn(1, 5)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert mid.norm() == pytest.approx(((a.norm() + b.norm()) / 2).item(), rel=0.3)
    dae = micro().eval()
    x = blobs(2)
    strip = dae.interpolate(x[:1], x[1:], n=4, steps=3)
    assert strip.shape == (4, 1, 16, 16)
    assert torch.allclose(strip[0], dae.reconstruct(x[:1], steps=3)[0], atol=1e-4)


def test_latent_ddim_normalisation_and_sampling():
    m = LatentDDIM(LatentDDIMConfig(z_dim=6, hidden=16, num_layers=2))
    z = torch.randn(50, 6) * 3 + 2
    m.set_normalisation(z)
    zn = m.normalise(z)
    assert torch.allclose(zn.mean(0), torch.zeros(6), atol=1e-5)
    s = m.sample(5, steps=4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 6) and torch.isfinite(s).all()
    # hidden == z_dim: the skip layers still take [h, z_t] (this shape crashed before)
    wide = LatentDDIM(LatentDDIMConfig(z_dim=16, hidden=16, num_layers=3))
    assert wide(torch.randn(2, 16), torch.rand(2)).shape == (2, 16)


def test_latent_ddim_samples_have_the_data_spread(tmp_path):
    """Issue 18: a briefly trained latent DDIM must not spread its samples wider than the data."""
    from latentmed.dae import DAERunConfig, LatentTrainConfig
    from latentmed.dae.training import train_latent_ddim
    from latentmed.metrics import precision_recall
    from latentmed.train import TrainConfig

    g = torch.Generator().manual_seed(0)
    mix = torch.randn(16, 16, generator=g) / 4
    z = torch.randn(512, 16, generator=g) @ mix * 3 + 5
    cfg = DAERunConfig(train=TrainConfig(progress=False, seed=0),
                       latent=LatentTrainConfig(steps=300, batch_size=128, lr=1e-3, hidden=64, num_layers=2))
    assert cfg.latent.prediction == "v"
    m = train_latent_ddim(None, None, cfg, tmp_path / "latent", z=z[:256]).eval()
    s = m.sample(256, steps=20, generator=torch.Generator().manual_seed(1))
    spread = (m.normalise(s).std(0) / m.normalise(z[256:]).std(0)).mean()
    assert 0.75 < float(spread) < 1.25
    pr = precision_recall(z[256:], s)
    assert pr["precision"] > 0.6 and pr["recall"] > 0.5
