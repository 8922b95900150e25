"""experiments/compare_training.py: the training-method comparison's table, winners and one micro run."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICRO = dict(image_size=16, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
             num_heads=1, dropout=0.0, z_dim=8, enc_channel_mult=(1, 2), enc_num_res_blocks=1,
             enc_attention_resolutions=())


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_training", ROOT / "experiments" / "compare_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_comparison_table_and_winners(compare):
    results = {"digits": [
        {"method": m, "train_seconds": 1.0, "rows": [
            {"mode": "stochastic", "steps": 10, "psnr": p, "ssim": s},
            {"mode": "inversion", "steps": 10, "psnr": p + 5, "ssim": s + 0.1}]}
        for m, p, s in (("baseline", 10.0, 0.2), ("two-phase", 12.5, 0.3))]}
    records = compare.comparison_table(results)
    assert records[1]["stochastic@10 psnr"] == 12.5 and records[0]["inversion@10 ssim"] == pytest.approx(0.3)
    assert compare.winners(records)[0] == "digits stochastic@10 psnr: best two-phase (12.5), +2.5 over baseline (10)"


def test_train_and_evaluate_two_phase(compare, tmp_path):
    from latentmed.train import TrainConfig

    x = compare.digits_images(16)[:8]
    assert x.shape == (8, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    res = compare.train_and_evaluate("two-phase", compare.as_dataset(x[:6]), x[6:], tmp_path / "run", preset="tiny",
                                     model_overrides=MICRO,
                                     train_config=TrainConfig(steps=2, batch_size=2, checkpoint_every=2,
                                                              progress=False),
                                     eval_steps=[2])
    assert [r["mode"] for r in res["rows"]] == ["stochastic", "inversion"]
    # the inversion row is the PSNR of the saved model's reconstructions, 10 log10(2^2 / MSE) on [-1, 1]
    import torch

    from latentmed.dae import load_dae

    dae = load_dae(tmp_path / "run")
    assert dae.model_id == res["model_id"]
    rec = dae.reconstruct(x[6:], steps=2, inversion=True)
    psnr = (10 * torch.log10(4.0 / (rec - x[6:]).pow(2).flatten(1).mean(1))).mean()
    assert res["rows"][1]["psnr"] == pytest.approx(float(psnr), abs=1e-3)
