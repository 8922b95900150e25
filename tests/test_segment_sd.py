"""The Stable Diffusion recipe from the CLI on a tiny randomly initialised SD-layout diffusers folder.

unet/ (UNet2DConditionModel), vae/ (AutoencoderKL, RGB), scheduler/ (scaled_linear DDPMScheduler),
text_encoder/ (CLIPTextModel) and tokenizer/ (a CLIPTokenizer built from a made-up vocabulary)
are saved in the test; grey 32 px phantoms go in.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

MAX_LEN = 8  # the tokenizer's model_max_length (77 for Stable Diffusion)


def _tokenizer(folder):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5, "!": 6}
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_LEN)
    shutil.rmtree(folder)
    tok.save_pretrained(str(folder))
    return tok


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from latentmed.data.phantoms.chest2d import generate_chest2d

    root = tmp_path_factory.mktemp("sd")
    sd = root / "sd"
    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                         down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2,
                         cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4).save_pretrained(sd / "unet")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(4, 8),
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  layers_per_block=1, norm_num_groups=4, sample_size=16).save_pretrained(sd / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(sd / "scheduler")
    CLIPTextModel(CLIPTextConfig(vocab_size=7, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=MAX_LEN, bos_token_id=0,
                                 eos_token_id=1, pad_token_id=1)).save_pretrained(sd / "text_encoder")
    _tokenizer(sd / "tokenizer")
    generate_chest2d(root / "data", 3, 32, 0)  # grey, 32 px: the model takes RGB at 16 px
    return root


def _invoke(args):
    from typer.testing import CliRunner

    from latentmed.cli.segment import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_sd_folder_loads_with_the_empty_prompt_context_and_diffusers_timesteps(sd_folder):
    from diffusers import DDPMScheduler
    from transformers import CLIPTextModel

    from latentmed.segment.diffseg import DiffSegConfig
    from latentmed.segment.load import load_segmenter

    seg = load_segmenter(sd_folder / "sd", DiffSegConfig(timestep=300, noised=True, grid=4))
    assert (seg.image_size, seg.image_channels, seg.diffseg.indexing) == (16, 3, "diffusers")
    # the empty prompt: BOS, EOS, then padding with EOS (google/diffseg's _UNCONDITIONAL_TOKENS)
    ids = torch.tensor([[0] + [1] * (MAX_LEN - 1)])
    with torch.no_grad():
        expected = CLIPTextModel.from_pretrained(str(sd_folder / "sd" / "text_encoder"))(ids)[0]
    assert seg.context.shape == (1, MAX_LEN, 16)
    torch.testing.assert_close(seg.null_condition(torch.zeros(2, 3, 16, 16)), expected.expand(2, -1, -1))
    # the folder's scheduler, diffusers' integer timesteps: UNet input 300, noise alphas_cumprod[300]
    ref = DDPMScheduler.from_pretrained(str(sd_folder / "sd" / "scheduler"))
    torch.testing.assert_close(seg.diffseg.schedule.alphas_cumprod(), ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    seen = {}
    unet = seg.diffseg.unet
    hook = unet.register_forward_pre_hook(lambda m, a, kw: seen.update(z=a[0], t=a[1]), with_kwargs=True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    seg.diffseg.attention(x, seg.null_condition(x))
    hook.remove()
    z0 = seg.diffseg.latents(x)
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(seen["t"], torch.tensor([300.0]))
    torch.testing.assert_close(seen["z"], ref.add_noise(z0, eps, torch.tensor([300])), atol=1e-5, rtol=1e-5)


def test_cli_zero_shot_and_sweep_with_the_reference_recipe(sd_folder, tmp_path):
    from PIL import Image

    sd, data = sd_folder / "sd", sd_folder / "data"
    res = _invoke(["zero-shot", sd, "--data", data, "--out", tmp_path / "zs", "--recipe", "reference", "--grid", "4"])
    assert res.exit_code == 0, res.output
    assert "3x16x16" in res.output and "repeated grayscale to 3 channels" in res.output  # announced
    assert "resized 3 of 3 image(s) to 16x16" in res.output
    summary = json.loads((tmp_path / "zs" / "summary.json").read_text())
    cfg = summary["config"]
    # the reference recipe, with the explicit --grid on top of it
    assert (cfg["timestep"], cfg["threshold"], cfg["iterations"], cfg["refine"], cfg["merge"], cfg["kl_fp16"],
            cfg["grid"]) == (300, 1.1, 3, False, "reference", True, 4)
    assert summary["image_shape"] == [3, 16, 16]
    assert np.asarray(Image.open(tmp_path / "zs" / "masks" / "chest_0000.png")).shape == (16, 16)

    res = _invoke(["sweep", sd, "--data", data, "--truth", data, "--out", tmp_path / "sw", "--recipe", "reference",
                   "--grid", "4", "--timesteps", "300", "--thresholds", "0.5,1.1", "--limit", "2"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert result["thresholds"] == [0.5, 1.1] and result["configured"]["threshold"] == 1.1
    best = result["best"]
    for key in ("union_dice", "candidate_dice", "one_to_one_dice"):
        assert all(0 <= v <= 1 for v in best[key].values())
    # per structure, the single best candidate can never beat the best union of candidates
    assert all(best["candidate_dice"][n] <= best["union_dice"][n] + 1e-9 for n in result["structures"])
    assert 0 <= best["miou"] <= best["pixel_accuracy"] + 1 and 0 < best["pixel_accuracy"] <= 1
    assert "candidate Dice (DiNO-Diffusion)" in (tmp_path / "sw" / "table.md").read_text()


def test_context_file_and_missing_parts_are_one_line_errors(sd_folder, tmp_path):
    from safetensors.torch import save_file

    from latentmed.segment.load import load_segmenter

    ctx = torch.randn(1, 5, 16)
    save_file({"context": ctx}, str(tmp_path / "ctx.safetensors"))
    seg = load_segmenter(sd_folder / "sd", context=tmp_path / "ctx.safetensors")
    torch.testing.assert_close(seg.null_condition(torch.zeros(1, 3, 16, 16)), ctx)

    broken = tmp_path / "novae"
    shutil.copytree(sd_folder / "sd", broken, ignore=shutil.ignore_patterns("vae"))
    res = _invoke(["zero-shot", broken, "--data", sd_folder / "data", "--out", tmp_path / "o"])
    assert res.exit_code == 2 and "no vae/" in res.output and "4-channel latents" in res.output
    assert len(res.output.strip().splitlines()) <= 2  # the settings line is printed only after loading
    shutil.copytree(sd_folder / "sd", tmp_path / "notok", ignore=shutil.ignore_patterns("tokenizer"))
    res = _invoke(["zero-shot", tmp_path / "notok", "--data", sd_folder / "data", "--out", tmp_path / "o"])
    assert res.exit_code == 2 and "tokenizer/ is missing" in res.output
    res = _invoke(["zero-shot", sd_folder / "sd", "--data", sd_folder / "data", "--out", tmp_path / "o",
                   "--context", tmp_path / "missing.safetensors"])
    assert res.exit_code == 2 and "--context" in res.output
    from diffusers import UNet2DConditionModel  # an SDXL-style UNet wants conditioning DiffSeg does not give

    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                         down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2,
                         cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4, addition_embed_type="text_time",
                         addition_time_embed_dim=8, projection_class_embeddings_input_dim=64
                         ).save_pretrained(tmp_path / "xl" / "unet")
    res = _invoke(["zero-shot", tmp_path / "xl", "--data", sd_folder / "data", "--out", tmp_path / "o"])
    assert res.exit_code == 2 and "addition_embed_type='text_time'" in res.output
