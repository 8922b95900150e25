"""DINO conditioners: token layouts, local loading, preprocessing, bad input."""

from __future__ import annotations

import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.ldm.conditioner import DinoConditioner, load_conditioner


def test_token_selection_layouts():
    x = torch.rand(2, 1, 40, 48) * 2 - 1  # grayscale, any size: resized to the ViT's 32
    reg = DinoConditioner.tiny("dinov2_with_registers", image_size=32, patch_size=8)
    assert reg(x).shape == (2, 5, 32) == (2, reg.num_tokens, reg.width)  # CLS + 4 registers
    reg_all = DinoConditioner.tiny("dinov2_with_registers", tokens="all", image_size=32, patch_size=8)
    full = reg_all(x)
    assert full.shape == (2, 5 + 16, 32) == (2, reg_all.num_tokens, 32)
    torch.testing.assert_close(full[:, :5], reg(x))  # global = the first tokens of the sequence
    vit = DinoConditioner.tiny("vit", image_size=32, patch_size=8)
    assert vit(x).shape == (2, 1, 32)
    with pytest.raises(LatentmedError, match="tokens must be one of"):
        DinoConditioner.tiny(tokens="patch")


def test_preprocess_matches_manual_normalisation():
    c = DinoConditioner.tiny(image_size=16, patch_size=8)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    p = c.preprocess(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(p, ((x + 1) / 2).expand(-1, 3, -1, -1).sub(mean).div(std))
    with pytest.raises(LatentmedError, match=r"\[B, 1 or 3, H, W\]"):
        c(torch.zeros(1, 2, 16, 16))


def test_from_pretrained_local_transformers_dir(tmp_path):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)
    vit = transformers.ViTModel(cfg)  # with a pooler: a "global" token set gets CLS + pooler
    vit.save_pretrained(tmp_path / "vit")
    loaded = DinoConditioner.from_pretrained(tmp_path / "vit")
    assert loaded.use_pooler and loaded.num_tokens == 2
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = vit.eval()(pixel_values=loaded.preprocess(x))
    toks = loaded(x)
    torch.testing.assert_close(toks[:, 0], ref.last_hidden_state[:, 0])
    torch.testing.assert_close(toks[:, 1], ref.pooler_output)
    # a checkpoint without pooler weights (like facebook/dino-vitb16) gives CLS only
    transformers.ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path / "nopool")
    assert DinoConditioner.from_pretrained(tmp_path / "nopool").num_tokens == 1
    # our save_pretrained round-trips tokens and the selection
    reg = DinoConditioner.tiny(tokens="all", image_size=32)
    reg.save_pretrained(tmp_path / "reg")
    again = load_conditioner(tmp_path / "reg")
    assert again.tokens == "all" and again.conditioner_id == reg.conditioner_id
    torch.testing.assert_close(again(x), reg(x))
    assert all(not p.requires_grad for p in again.parameters())


def test_missing_weights_error_says_where(tmp_path):
    with pytest.raises(LatentmedError, match="no ViT weights at .*nothing_here.*huggingface-cli download"):
        load_conditioner(tmp_path / "nothing_here")


# ---- issue 16: pool standardisation, PCA tokens, labels ---------------------------------------------------------
def _pool(n=40, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(-1, 1, size).view(1, 1, 1, size)
    a = torch.rand(n, 1, 1, 1, generator=g)
    return (a * base + 0.3 * torch.randn(n, 1, size, size, generator=g)).clamp(-1, 1)


def test_token_standardisation_uses_the_pool_and_is_stored(tmp_path):
    pool, other = _pool(), _pool(seed=1)
    c = DinoConditioner.tiny("vit", image_size=32, patch_size=8)
    raw = c(pool)
    c.fit_standardisation(pool, batch_size=16)
    assert c.standardised and "pool-standardised" in c.label and "random ViT" in c.label
    z = c(pool)
    torch.testing.assert_close(z.mean(0), torch.zeros_like(z[0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones_like(z[0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, (raw - raw.mean(0)) / raw.std(0), atol=1e-4, rtol=1e-4)
    # stored with the conditioner: a reload applies the same pool statistics to new images
    c.save_pretrained(tmp_path / "c")
    again = load_conditioner(tmp_path / "c")
    assert again.standardised and again.conditioner_id == c.conditioner_id
    torch.testing.assert_close(again(other), c(other))
    assert again.conditioner_id != DinoConditioner.tiny("vit", image_size=32, patch_size=8).conditioner_id


def test_pca_conditioner_whitened_standardised_and_saved(tmp_path):
    from latentmed.ldm.conditioner import PCAConditioner

    pool = _pool(60)
    c = PCAConditioner.fit(pool, width=16, num_tokens=2, n_components=8, image_size=16)
    toks = c(pool)
    assert toks.shape == (60, 2, 16) and (c.num_tokens, c.width) == (2, 16)
    torch.testing.assert_close(toks.mean(0), torch.zeros(2, 16), atol=1e-4, rtol=0)
    assert "PCA" in c.label and not c.random_init
    # 8 scores spread over 32 channels by an orthonormal map: the channels span 8 dimensions
    assert torch.linalg.matrix_rank(toks.flatten(1).double(), tol=1e-4) == 8
    # the first score follows the image's left-right gradient (the pool's main mode of variation)
    a = (pool[:, 0, :, -4:].mean((1, 2)) - pool[:, 0, :, :4].mean((1, 2)))
    pixels = torch.nn.functional.interpolate(pool, size=(16, 16), mode="area").flatten(1)
    scores = ((pixels - c.pixel_mean) / c.pixel_std) @ c.components[0]
    assert abs(torch.corrcoef(torch.stack([a, scores]))[0, 1]) > 0.9
    c.save_pretrained(tmp_path / "pca")
    again = load_conditioner(tmp_path / "pca")
    assert isinstance(again, PCAConditioner) and again.conditioner_id == c.conditioner_id
    torch.testing.assert_close(again(pool[:5]), c(pool[:5]))
    with pytest.raises(LatentmedError, match="n_components"):
        PCAConditioner.fit(pool[:4], width=16, n_components=8, image_size=16)


# ---- issue 28: DINO preprocessing as DINO expects ---------------------------------------------------------------
def _smooth_image(h=48, w=64):
    """An 8-bit RGB gradient [1, 3, h, w] in [0, 1] (PIL's uint8 rounding then costs at most ~1 grey level)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (torch.stack([yy, xx, (yy + xx) / 2])[None] * 255).round() / 255


@pytest.mark.parametrize("kind", ["dinov2", "dinov2_with_registers", "vit"])
def test_from_pretrained_uses_the_folders_image_processor(tmp_path, kind):
    import numpy as np
    import transformers

    common = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=8)
    torch.manual_seed(0)
    if kind == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(image_size=32, **common), add_pooling_layer=False)
        proc = transformers.ViTImageProcessor(size={"height": 32, "width": 32}, resample=2,
                                              image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
        expected = dict(image_size=32, resize=None, resample="bilinear")
    else:
        config = (transformers.Dinov2Config if kind == "dinov2" else transformers.Dinov2WithRegistersConfig)(
            image_size=518, **common)
        model = getattr(transformers, "Dinov2Model" if kind == "dinov2" else "Dinov2WithRegistersModel")(config)
        proc = transformers.BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                              do_center_crop=True, resample=3, image_mean=[0.485, 0.456, 0.406],
                                              image_std=[0.229, 0.224, 0.225], do_convert_rgb=False)
        expected = dict(image_size=32, resize=40, resample="bicubic")
    model.save_pretrained(tmp_path / "m")
    bare = DinoConditioner.from_pretrained(tmp_path / "m")  # no processor: the model's documented defaults
    assert (bare.image_size, bare.resize) == ((32, None) if kind == "vit" else (224, 256))
    proc.save_pretrained(tmp_path / "m")
    cond = DinoConditioner.from_pretrained(tmp_path / "m")
    assert {k: getattr(cond, k) for k in expected} == expected
    torch.testing.assert_close(cond.mean.flatten(), torch.tensor(proc.image_mean))
    img = _smooth_image()  # 48 x 64: the shortest edge is resized, then the centre is cropped
    ref = proc(images=[(img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)],
               return_tensors="pt").pixel_values
    ours = cond.preprocess(img * 2 - 1)
    assert ours.shape == ref.shape == (1, 3, 32, 32)
    assert (ours - ref).abs().max() < 0.03  # within PIL's 8-bit rounding and kernel differences
    with torch.no_grad():
        tokens = model.eval()(pixel_values=ref).last_hidden_state[:, : cond.num_global]
    torch.testing.assert_close(cond(img * 2 - 1), tokens, atol=0.05, rtol=0)
    # saved with a run, the conditioner keeps its preprocessing
    cond.save_pretrained(tmp_path / "saved")
    again = load_conditioner(tmp_path / "saved")
    assert (again.image_size, again.resize, again.resample) == (cond.image_size, cond.resize, cond.resample)
    torch.testing.assert_close(again(img * 2 - 1), cond(img * 2 - 1))


@pytest.mark.parametrize("k", [4, 8, 16, 64])
def test_pca_bottleneck_tokens_carry_exactly_k_dimensions(k):
    """Issue 29's sweep: a PCA conditioner with k components gives a 64-wide token whose pool spread has rank k."""
    from latentmed.ldm import PCAConditioner

    pool = torch.rand(120, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cond = PCAConditioner.fit(pool, width=64, n_components=k, image_size=16)
    tok = cond(pool).flatten(1).double()
    assert tok.shape == (120, 64) and f"pca{k}-" in cond.label
    assert int(torch.linalg.matrix_rank(tok - tok.mean(0), rtol=1e-6)) == k
