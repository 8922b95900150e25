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
