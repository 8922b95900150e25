"""DiffSeg end to end on tiny random diffusers models: pipeline, bad input, CLI, sweep outputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.segment.diffseg import DiffSeg, DiffSegConfig, kmeans_intensity_baseline

from test_segment import tiny_unet


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=4, block_out_channels=(4, 8),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=4, sample_size=16).eval()


def test_diffseg_feeds_the_clean_latent_with_the_timestep_embedding():
    """google/diffseg: the clean latent z_0 goes through the UNet, only the time input says t=300."""
    unet, vae = tiny_unet(), tiny_vae()
    ds = DiffSeg.from_vae(unet, vae, config=DiffSegConfig(timestep=300, threshold=0.5, grid=4))
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    cond = torch.randn(1, 3, 6)
    seen = {}
    hook = unet.register_forward_pre_hook(lambda m, args, kwargs: seen.update(z=args[0], t=args[1]), with_kwargs=True)
    results = ds.segment(x, cond)
    z0 = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    torch.testing.assert_close(seen["z"], z0)
    torch.testing.assert_close(seen["t"], torch.full((2,), 300.0))
    assert len(results) == 2 and results[0].labels.shape == (16, 16)
    assert results[0].proposals.shape[-2:] == (8, 8)  # the largest attention resolution of an 8x8 latent
    # the time embedding matters: another timestep gives other maps on the same clean latent
    assert not torch.allclose(ds.attention(x, cond, 300), ds.attention(x, cond, 900))
    # the ablation noises the latent: z_t = alpha(0.3) z0 + sigma(0.3) eps (seeded)
    noised = DiffSeg.from_vae(unet, vae, config=DiffSegConfig(timestep=300, threshold=0.5, grid=4, noised=True))
    noised.segment(x, cond)
    hook.remove()
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    a, s = ds.schedule.alpha(torch.tensor(0.3)), ds.schedule.sigma(torch.tensor(0.3))
    torch.testing.assert_close(seen["z"], a * z0 + s * eps)
    again = ds.segment(x, cond)
    assert torch.equal(again[0].labels, results[0].labels)  # deterministic
    k2 = ds.segment(x, cond, num_segments=2, threshold=0.01)
    assert all(len(torch.unique(r.labels)) <= 2 for r in k2)


def test_null_context_is_an_empty_context():
    """Zero tokens give zero keys and values (bias-free k/v): cross-attention adds nothing but its output
    bias, whatever the token count, so the 'vanilla' row is the empty context the model was trained with."""
    from latentmed.ldm.model import build_unet

    unet = build_unet(4, 8, 6, block_out_channels=(8, 16), norm_num_groups=4, head_channels=8).eval()
    cross = [m for n, m in unet.named_modules() if n.endswith("attn2")]
    assert cross and all(m.to_k.bias is None and m.to_v.bias is None for m in cross)
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        one = unet(z, 300, encoder_hidden_states=torch.zeros(2, 1, 6)).sample
        five = unet(z, 300, encoder_hidden_states=torch.zeros(2, 5, 6)).sample
        some = unet(z, 300, encoder_hidden_states=torch.randn(2, 5, 6)).sample
    torch.testing.assert_close(one, five)
    assert not torch.allclose(one, some)


def test_pixel_space_unet_and_bad_input():
    unet = tiny_unet()
    ds = DiffSeg.from_vae(unet, None, config=DiffSegConfig(grid=4, threshold=0.5))
    x = torch.randn(1, 4, 8, 8)
    assert ds.segment(x, torch.randn(1, 2, 6))[0].labels.shape == (8, 8)
    with pytest.raises(LatentmedError, match="multiples of 2"):
        ds.segment(torch.randn(1, 4, 7, 8), torch.randn(1, 2, 6))
    with pytest.raises(LatentmedError, match="timestep=1000"):
        ds.attention(x, torch.randn(1, 2, 6), timestep=1000)
    with pytest.raises(LatentmedError, match="timestep=-1"):
        DiffSeg(unet, config=DiffSegConfig(timestep=-1))
    with pytest.raises(LatentmedError, match="cross_attention_dim"):
        ds.segment(x, torch.randn(1, 2, 5))
    with pytest.raises(LatentmedError, match="input channels"):
        ds.segment(torch.randn(1, 1, 8, 8), torch.randn(1, 2, 6))
    with pytest.raises(LatentmedError, match="no self-attention"):
        DiffSeg(tiny_unet(attention=False))


def test_kmeans_baseline_separates_intensities():
    img = torch.full((1, 1, 8, 8), -1.0)
    img[..., 4:] = 1.0
    labels = kmeans_intensity_baseline(img, 2)[0].numpy()
    assert len(np.unique(labels)) == 2 and (labels[:, :4] == labels[0, 0]).all() and (labels[:, 4:] != labels[0, 0]).all()


@pytest.fixture(scope="module")
def chest_run(tmp_path_factory):
    """A tiny random DiNO-Diffusion run and 3 chest2d phantoms at 32 px."""
    from latentmed.data.phantoms.chest2d import generate_chest2d
    from latentmed.ldm.conditioner import DinoConditioner
    from latentmed.ldm.model import LatentDiffusion, build_unet, build_vae, ldm_config_from

    root = tmp_path_factory.mktemp("seg")
    torch.manual_seed(0)
    vae = build_vae(1, 4, block_out_channels=(4, 8), norm_num_groups=4, image_size=32)
    cond = DinoConditioner.tiny(image_size=32, hidden_size=16, layers=1)
    unet = build_unet(4, 16, cond.width, block_out_channels=(8, 16), num_heads=2, norm_num_groups=4)
    LatentDiffusion(vae, unet, cond, ldm_config_from(vae, unet, 32)).save(root / "run")
    generate_chest2d(root / "data", 3, 32, 0)
    return root


def _invoke(args):
    from typer.testing import CliRunner

    from latentmed.cli.segment import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_zero_shot_and_sweep(chest_run):
    from PIL import Image

    run, data = chest_run / "run", chest_run / "data"
    res = _invoke(["zero-shot", run, "--data", data, "--out", chest_run / "zs", "--grid", "4", "--threshold", "0.5"])
    assert res.exit_code == 0, res.output
    mask = np.asarray(Image.open(chest_run / "zs" / "masks" / "chest_0000.png"))
    assert mask.shape == (32, 32) and (chest_run / "zs" / "overlays" / "chest_0002.png").is_file()

    out = chest_run / "sweep"
    res = _invoke(["sweep", run, "--data", data, "--truth", data, "--out", out, "--timesteps", "100,300",
                   "--thresholds", "0.05,0.5", "--grid", "4"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "sweep.json").read_text())
    assert result["timesteps"] == [100, 300] and np.array(result["dice_mean"]).shape == (2, 2, 3)
    assert set(result["baselines"]) == {"kmeans_k4", "kmeans_k_as_configured", "kmeans_k_as_best"}
    for name in ("dice_vs_threshold.png", "dice_vs_timestep.png", "table.md", "overlays/chest_0000.png"):
        assert (out / name).is_file()


def test_cli_bad_input(chest_run, tmp_path):
    from PIL import Image

    run, data = chest_run / "run", chest_run / "data"
    res = _invoke(["zero-shot", run, "--data", data, "--out", tmp_path / "a", "--timestep", "1000"])
    # the range is checked by the option itself (one line in `latentmed`; a usage panel here)
    assert res.exit_code == 2 and "--timestep" in res.output and "999" in res.output
    bad = tmp_path / "truth"
    bad.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 1, np.uint8)).save(bad / f"chest_000{i}.png")
    res = _invoke(["sweep", run, "--data", data, "--truth", bad, "--out", tmp_path / "b"])
    assert res.exit_code == 2 and "16x16" in res.output
    for i in range(3):
        Image.fromarray(np.full((32, 32), 7, np.uint8)).save(bad / f"chest_000{i}.png")
    res = _invoke(["sweep", run, "--data", data, "--truth", bad, "--out", tmp_path / "b"])
    assert res.exit_code == 2 and "labels [7]" in res.output
    res = _invoke(["zero-shot", tmp_path, "--data", data, "--out", tmp_path / "c"])
    assert res.exit_code == 2 and "ldm.json" in res.output


def test_diffusers_folder_run(tmp_path, chest_run):
    """A pixel-space diffusers UNet folder (no vae/, no text encoder): the CLI's masks are the library's labels
    on zero tokens, at the UNet's sample size, and the zero context is announced."""
    from diffusers import UNet2DConditionModel
    from PIL import Image

    from latentmed.segment.load import load_segmenter
    from latentmed.segment.run import read_for

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D",) * 2,
                                up_block_types=("CrossAttnUpBlock2D",) * 2, cross_attention_dim=6,
                                attention_head_dim=2, norm_num_groups=4)
    unet.save_pretrained(str(tmp_path / "run" / "unet"))
    res = _invoke(["zero-shot", tmp_path / "run", "--data", chest_run / "data", "--out", tmp_path / "zs",
                   "--grid", "4", "--threshold", "0.001", "--limit", "1"])
    assert res.exit_code == 0, res.output
    assert "zero tokens" in res.output and "image(s) to 16x16" in res.output
    mask = np.asarray(Image.open(tmp_path / "zs" / "masks" / "chest_0000.png"))
    seg = load_segmenter(tmp_path / "run", DiffSegConfig(grid=4, threshold=0.001))
    _, x, _ = read_for(seg, chest_run / "data", limit=1)
    assert seg.context is None and x.shape == (1, 1, 16, 16)
    expected = seg.diffseg.segment(x, torch.zeros(1, 1, 6))[0].labels.numpy()
    assert np.array_equal(mask, expected) and len(np.unique(mask)) >= 2


def test_truth_masks_follow_a_resize(chest_run, tmp_path):
    """With --size the truth masks are centre-cropped and resized (nearest) like the images."""
    from PIL import Image

    from latentmed.segment.run import CHEST2D_STRUCTURES, load_truth

    mask = np.asarray(Image.open(chest_run / "data" / "masks" / "chest_0000.png"))
    Image.fromarray(np.kron(mask, np.ones((2, 2), np.uint8))).save(tmp_path / "chest_0000.png")
    out = load_truth(tmp_path, ["chest_0000"], (32, 32), CHEST2D_STRUCTURES, resize=True)
    assert np.array_equal(out[0], mask)
    with pytest.raises(LatentmedError, match="64x64"):
        load_truth(tmp_path, ["chest_0000"], (32, 32), CHEST2D_STRUCTURES)


def test_score_fixed_k_rows(chest_run, tmp_path):
    from latentmed.segment.load import load_segmenter
    from latentmed.segment.report import write_fixed_k
    from latentmed.segment.run import score_fixed_k

    seg = load_segmenter(chest_run / "run", DiffSegConfig(grid=4, threshold=0.05))
    assert seg.null_tokens == seg.condition(torch.zeros(1, 1, 32, 32)).shape[1]
    # a run trained on UNet input 1000 t - 1 noises timestep k at alphas_cumprod[k]; older runs (no offset) at k / T
    assert seg.diffseg.indexing == "diffusers" and seg.diffseg.noise_time(300) == pytest.approx(0.301)
    old = tmp_path / "old_run"
    shutil.copytree(chest_run / "run", old)
    meta = json.loads((old / "ldm.json").read_text())
    meta.pop("timestep_offset", None)
    (old / "ldm.json").write_text(json.dumps(meta))
    assert load_segmenter(old).diffseg.noise_time(300) == pytest.approx(0.3)
    res = score_fixed_k(seg, chest_run / "data", chest_run / "data", k=4)
    rows = res.to_dict()["rows"]
    assert list(rows)[:4] == ["DiffSeg (own tokens)", "DiffSeg (empty context, vanilla)", "DiffSeg (untrained UNet)",
                              "DiffSeg (own tokens, merge's own K)"]
    assert {"KMeans intensity", "KMeans intensity + x,y", "grid 2x2 (image-blind)"} <= set(rows)
    for label, r in rows.items():
        assert 0 <= r["mean"] <= 1 and len(r["per_image"]) == 3 and 0 < r["pixel_accuracy"] <= 1
        assert r["segments_mean"] <= 4 or label.endswith("own K)")
    write_fixed_k(res, tmp_path)
    assert (tmp_path / "table.md").is_file() and json.loads((tmp_path / "fixed_k.json").read_text())["k"] == 4
    # the untrained reference is a different UNet of the same architecture
    other = seg.untrained(0).diffseg.unet
    assert other.config == seg.diffseg.unet.config
    assert not torch.equal(next(other.parameters()), next(seg.diffseg.unet.parameters()))
