"""Latent diffusion model: RUN layout round trip, guidance, training through the shared loop, synthesis."""

from __future__ import annotations

import csv

import pytest
import torch

from latentmed.data.phantoms.chest2d import LABELS, generate_chest2d
from latentmed.errors import LatentmedError
from latentmed.ldm import DinoConditioner, load_ldm, tiny_ldm
from latentmed.ldm.model import GuidedNet, LatentDiffusion


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ldm")
    ldm = tiny_ldm(image_size=32)
    ldm.save(d / "run")
    generate_chest2d(d / "data", n=12, size=32, seed=0)
    return d


def test_run_layout_roundtrip(run):
    r = run / "run"
    assert {p.name for p in r.iterdir()} >= {"vae", "unet", "conditioner", "ldm.json"}
    assert (r / "conditioner" / "conditioner.json").is_file()
    ldm = load_ldm(r)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    z = ldm.encode_images(x)
    assert z.shape == (3, 4, 16, 16)
    tok = ldm.condition(x)
    assert tok.shape == (3, ldm.conditioner.num_tokens, ldm.unet.config.cross_attention_dim)
    g = torch.Generator().manual_seed(0)
    a = ldm.sample(tok, steps=2, guidance=2.0, generator=g)
    assert a.shape == (3, 1, 32, 32) and a.abs().max() <= 1
    b = ldm.sample(tok, steps=2, guidance=2.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    with pytest.raises(LatentmedError, match="resize them to 32x32"):
        ldm.encode_images(torch.zeros(1, 1, 24, 24))


def test_guidance_combines_conditional_and_null_outputs():
    calls = []

    def net(z, t, c):
        calls.append(c.abs().sum().item())
        return z * 0 + c.mean((1, 2)).view(-1, 1, 1, 1)  # output = mean token value

    z = torch.zeros(2, 1, 2, 2)
    c = torch.tensor([[[1.0]], [[3.0]]])
    out = GuidedNet(net, guidance=3.0)(z, torch.tensor(0.5), c)
    torch.testing.assert_close(out[:, 0, 0, 0], 0 + 3.0 * (c.flatten() - 0))
    assert torch.equal(GuidedNet(net, 1.0)(z, 0.5, c), net(z, 0.5, c))


def test_token_width_mismatch_is_an_error():
    ldm = tiny_ldm(image_size=32)
    wide = DinoConditioner.tiny(hidden_size=48, image_size=32)
    with pytest.raises(LatentmedError, match="width 48 but the UNet cross-attends to width 32"):
        LatentDiffusion(ldm.vae, ldm.unet, wide, ldm.config)


def test_synthetic_dataset_builder(tmp_path, run):
    from latentmed.ldm.synthesis import build_synthetic_dataset

    ldm = load_ldm(run / "run")
    csv_path = build_synthetic_dataset(ldm, run / "data", tmp_path / "syn", list(LABELS), strategy="interpolation",
                                       ratio=1, subset=8, steps=2)
    rows = list(csv.DictReader(open(csv_path)))
    real = {r["id"]: r for r in rows if r["synthetic"] == "0"}
    syn = [r for r in rows if r["synthetic"] == "1"]
    assert len(real) == 8 and len(syn) == 8
    for r in syn:
        a, b = r["parent"].split(";")
        assert a in real and b in real
        assert all(r[c] == real[a][c] for c in LABELS)  # labels of the closer source (listed first)
        ra, rb = ({c for c in LABELS if real[p][c] == "1"} for p in (a, b))
        assert (ra & rb) or (not ra and not rb)  # the pair shares a label (or both have none)
        assert (tmp_path / "syn" / r["image"]).is_file()
    with pytest.raises(LatentmedError, match="larger than the 12 images"):
        build_synthetic_dataset(ldm, run / "data", tmp_path / "x", list(LABELS), subset=50, steps=1)
    with pytest.raises(LatentmedError, match="no column"):
        build_synthetic_dataset(ldm, run / "data", tmp_path / "x", ["pneumonia"], subset=2, steps=1)


def test_unet_heads_have_32_channels_by_default_and_legacy_head_counts_load():
    """diffusers' ``attention_head_dim`` is a head COUNT; build_unet sizes heads by channels instead."""
    from latentmed.config import from_dict
    from latentmed.ldm.model import attention_heads, build_unet
    from latentmed.ldm.training import LDMRunConfig

    unet = build_unet(4, 8, 16, block_out_channels=(32, 64))
    widths = {n: m.inner_dim // m.heads for n, m in unet.named_modules() if n.endswith("attn1")}
    assert widths and set(widths.values()) == {32}
    assert attention_heads((32, 64, 128), 32) == (1, 2, 4) and attention_heads((16,), 32) == (1,)
    legacy = from_dict(LDMRunConfig, {"model": {"attention_head_dim": 8}})  # an older config still loads, same meaning
    assert legacy.model.attention_head_dim == 8 and LDMRunConfig().model.attention_head_dim is None
    old = build_unet(4, 8, 16, block_out_channels=(32, 64), num_heads=8)
    assert {m.heads for n, m in old.named_modules() if n.endswith("attn1")} == {8}


def test_fid_selection_without_heldout_images_is_a_clear_error(tmp_path):
    """train.eval_every needs eval.heldout (checkpoint selection on a validation split), said before any work."""
    from latentmed.ldm.training import LDMRunConfig, LDMTrainConfig, train_ldm

    cfg = LDMRunConfig(train=LDMTrainConfig(eval_every=2))
    with pytest.raises(LatentmedError, match=r"eval_every=2 .*--heldout DIR \(eval.heldout\)"):
        train_ldm(cfg, tmp_path / "run", vae=tmp_path / "novae", conditioner="tiny")
    assert cfg.train.eval_every == 2 and cfg.train.select_metric == "fid" and not (tmp_path / "run").exists()


def test_paper_recipe_sets_the_papers_optimiser_augmentation_and_time_sampling():
    from latentmed.ldm.training import LDMRunConfig, apply_recipe, ldm_recipe

    base = LDMRunConfig()
    cfg = apply_recipe(base, "paper")
    assert (cfg.train.lr, cfg.train.warmup_steps, cfg.data.augment, cfg.objective.time_sampling) == \
        (1e-4, 1000, True, "discrete")
    assert cfg.train.steps == base.train.steps and base.train.lr == 2e-4 and not base.data.augment  # a copy
    assert ldm_recipe("paper")["train.lr"] == 1e-4
    with pytest.raises(LatentmedError, match="unknown LDM recipe 'fast'"):
        apply_recipe(base, "fast")
    with pytest.raises(LatentmedError, match="time_sampling must be"):
        apply_recipe(base, "paper").objective.__class__(time_sampling="continuous")
