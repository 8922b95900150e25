"""Evaluation library and `latentmed evaluate` CLI with tiny untrained models (fast, CPU)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from latentmed.cli import evaluate as ev_cli
from latentmed.dae import DAEConfig, DiffusionAutoencoder, LatentDDIM, LatentDDIMConfig
from latentmed.errors import LatentmedError
from latentmed.evaluation import (evaluate_generation, evaluate_reconstruction, evaluate_segmentation_folders,
                                  markdown_table, write_report)
from latentmed.metrics import psnr, segmentation_scores, ssim
from latentmed.nn import EncoderConfig

runner = CliRunner()
MICRO = dict(image_size=16, in_channels=1, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
             attention_resolutions=(), num_heads=1, dropout=0.0, z_dim=8,
             encoder=EncoderConfig(channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=()))


def micro_dae(seed=0):
    torch.manual_seed(seed)
    dae = DiffusionAutoencoder(DAEConfig(**MICRO)).eval()
    with torch.no_grad():  # zero-initialised output convs would make the decoder ignore its input
        for p in dae.parameters():
            if p.ndim > 1 and not p.abs().sum():
                p.normal_(0.0, 0.05)
    dae.load_state_dict(dae.state_dict())
    return dae


def images(n=5, seed=0):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_reconstruction_rows_match_direct_computation():
    dae, x = micro_dae(), images()
    rows = evaluate_reconstruction(dae, x, steps=[3], modes=["inversion", "stochastic"], batch_size=2,
                                   fid_extractor=dae.encode, progress=False)
    assert [(r.setting["mode"], r.setting["steps"]) for r in rows] == [("inversion", 3), ("stochastic", 3)]
    rec = dae.reconstruct(x, steps=3, inversion=True).clamp(-1, 1)
    np.testing.assert_allclose(rows[0].metrics["psnr"], psnr(x, rec).mean(), rtol=1e-4)
    np.testing.assert_allclose(rows[0].metrics["ssim"], ssim(x, rec, sigma=1.5).mean(), atol=1e-5)
    assert rows[0].extra["n"] == 5
    fr, ff = dae.encode(x).double().numpy(), dae.encode(rec).double().numpy()
    from scipy.linalg import sqrtm

    s1, s2 = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    fid_ref = ((fr.mean(0) - ff.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    np.testing.assert_allclose(rows[0].metrics["fid"], fid_ref, rtol=1e-3, atol=1e-5)
    # stochastic mode is reproducible with the seed and differs with another seed
    again = evaluate_reconstruction(dae, x, steps=[3], modes=["stochastic"], progress=False)
    other = evaluate_reconstruction(dae, x, steps=[3], modes=["stochastic"], seed=1, progress=False)
    assert again[0].metrics["psnr"] == pytest.approx(rows[1].metrics["psnr"], rel=1e-6)
    assert other[0].metrics["psnr"] != again[0].metrics["psnr"]
    with pytest.raises(LatentmedError, match="mode"):
        evaluate_reconstruction(dae, x, steps=[3], modes=["random"], progress=False)
    with pytest.raises(LatentmedError, match="16px"):
        evaluate_reconstruction(dae, torch.zeros(2, 1, 8, 8), steps=[3], progress=False)


def _micro_grader(dae, x, seed=0):
    from latentmed.latent import HyperplaneGrader

    y = np.arange(len(x)) % 4
    return HyperplaneGrader(negative=(0,), positive=(2, 3), random_state=seed).fit(dae.encode(x).double().numpy(), y)


def test_generation_rows(tmp_path):
    import json
    from dataclasses import replace

    from latentmed.evaluation import GenerationSettings, grade2_fraction, write_generation
    from latentmed.evaluation.generation import CEILING, SOURCES, gaussian_latents
    from latentmed.metrics import precision_recall

    dae = micro_dae()
    torch.manual_seed(0)
    latent = LatentDDIM(LatentDDIMConfig(z_dim=8, hidden=16, num_layers=2)).eval()
    held, train = images(12), images(10, seed=1)
    s = GenerationSettings(n=6, steps=2, latent_steps=2, k=2, pca_components=5, batch_size=4)
    res = evaluate_generation(dae, latent, held, train, s, grader=_micro_grader(dae, train), progress=False)
    assert [r["source"] for r in res.records()] == list(SOURCES)
    assert all(x.shape == (6, 1, 16, 16) for x in res.images.values())
    ceiling = res.row(CEILING)
    # the ceiling row is made of real held-out images, scored against the other held-out images
    assert all(any(torch.equal(x, h) for h in held) for x in res.images[CEILING])
    rest = torch.stack([h for h in held if not any(torch.equal(h, x) for x in res.images[CEILING])])
    pr = precision_recall(dae.encode(rest), dae.encode(res.images[CEILING]), k=2)
    assert (ceiling["P_z"], ceiling["R_z"]) == (pr["precision"], pr["recall"]) == (ceiling["P_enc"], ceiling["R_enc"])
    assert res.row(SOURCES[1])["P_z"] == ceiling["P_z"]  # the decoder row decodes the ceiling images' z_sem
    extra = evaluate_generation(dae, latent, held, train, replace(s, sources=[CEILING]),
                                latents={"zeros": torch.zeros(6, 8)}, progress=False)
    assert [r["source"] for r in extra.records()] == [CEILING, "zeros"] and extra.records()[1]["P_z"] == 0.0
    for r in res.records():
        assert all(0 <= r[c] <= 1 for c in ("P_z", "R_z", "P_pix", "R_pix", "G2+", "copy", "far"))
        assert r["fid_pix"] >= 0 and r["nn_ratio"] > 0 and r["grades"].startswith("G0:")
    assert grade2_fraction([0, 1, 2, 3, float("nan")]) == 0.5 and res.meta["n_reference"] == 6
    again = evaluate_generation(dae, latent, held, train, replace(s, sources=[SOURCES[2]]), progress=False)
    assert torch.equal(again.images[SOURCES[2]], res.images[SOURCES[2]])  # same seed, same samples
    with pytest.raises(LatentmedError, match="more held-out images"):
        evaluate_generation(dae, latent, held[:5], train, s, progress=False)
    with pytest.raises(LatentmedError, match="unknown source"):
        evaluate_generation(dae, latent, held, train, replace(s, sources=["DDPM"]), progress=False)
    # the writer writes what the evaluation returned: the JSON rows are the result's, one grid per row
    write_generation(res, tmp_path, meta={"run": "micro"})
    saved = json.loads((tmp_path / "generation.json").read_text())
    assert saved["meta"]["run"] == "micro" and saved["meta"]["n"] == 6
    assert [r["P_z"] for r in saved["rows"]] == pytest.approx([r["P_z"] for r in res.records()])
    assert len(list(tmp_path.glob("samples_*.png"))) == len(SOURCES)
    # N(mean, cov) draws have the training latents' moments
    z = torch.randn(500, 3) @ torch.tensor([[2.0, 0, 0], [1, 1, 0], [0, 0, 0.1]]) + 5
    draws = gaussian_latents(z, 20000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.mean(0), z.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), torch.cov(z.T), atol=0.1, rtol=0.05)


def test_report_writes_markdown_and_json(tmp_path):
    records = [{"data": "digits", "method": m, "stochastic@10 psnr": p, "inversion@10 ssim": s}
               for m, p, s in (("baseline", 10.0, 0.3), ("two-phase", 12.5, 0.4))]
    table = markdown_table(records)
    assert "| digits | two-phase | 12.50 | 0.4000 |" in table
    paths = write_report(tmp_path / "rep", "cmp", "Comparison", records, meta={"seed": 0}, notes=["note"])
    assert "# Comparison" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["rows"][1]["method"] == "two-phase"


def _write_nifti(path, mask, zooms=(1.0, 1.0, 2.0)):
    import nibabel as nib

    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.diag([*zooms, 1.0])), str(path))


def test_segmentation_folders_and_cli(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    truths, preds = [], []
    for case in ("a", "b"):
        t = np.zeros((12, 12, 8), bool)
        t[3:9, 3:9, 2:6] = True
        p = t ^ (rng.random(t.shape) < 0.05)
        _write_nifti(tmp_path / "gt" / f"{case}.nii.gz", t)
        _write_nifti(tmp_path / "pred" / f"{case}.nii", p)
        truths.append(t)
        preds.append(p)
    rows, means = evaluate_segmentation_folders(tmp_path / "gt", tmp_path / "pred", progress=False)
    expected = segmentation_scores(np.stack(truths), np.stack(preds), hausdorff=True,
                                   spacing=(1, 1, 2))
    assert [r["case"] for r in rows] == ["a", "b"]
    np.testing.assert_allclose([r["dice"] for r in rows], expected["dice"])
    np.testing.assert_allclose(means["hausdorff95"], expected["hausdorff95"].mean())
    result = runner.invoke(ev_cli.app, ["segmentation", "--truth", str(tmp_path / "gt"), "--pred",
                                        str(tmp_path / "pred"), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "rep" / "segmentation.json").read_text())
    assert data["rows"][-1]["case"] == "mean (n=2)"
    np.testing.assert_allclose(data["rows"][-1]["dice"], expected["dice"].mean())
    # a truth mask without prediction, and a non-binary mask: one-line errors, exit code 2
    _write_nifti(tmp_path / "gt" / "c.nii.gz", truths[0])
    result = runner.invoke(ev_cli.app, ["segmentation", "--truth", str(tmp_path / "gt"), "--pred",
                                        str(tmp_path / "pred")])
    assert result.exit_code == 2 and "no prediction" in result.output
    _write_nifti(tmp_path / "pred" / "c.nii.gz", truths[0] * 3)
    with pytest.raises(LatentmedError, match="--label"):
        evaluate_segmentation_folders(tmp_path / "gt", tmp_path / "pred", progress=False)
    rows, _ = evaluate_segmentation_folders(tmp_path / "gt", tmp_path / "pred", label=3, hausdorff=False,
                                            strict=False, progress=False)
    assert len(rows) == 3


def test_recon_and_generation_cli(tmp_path):
    dae = micro_dae()
    dae.save_pretrained(tmp_path / "run" / "model")
    torch.manual_seed(0)
    LatentDDIM(LatentDDIMConfig(z_dim=8, hidden=16, num_layers=2)).save_pretrained(tmp_path / "run" / "latent" / "model")
    np.save(tmp_path / "heldout.npy", ((images(4).numpy()[:, 0] + 1) * 127.5).astype(np.uint8))
    result = runner.invoke(ev_cli.app, ["recon", str(tmp_path / "run"), "--data", str(tmp_path / "heldout.npy"),
                                        "--steps", "2", "--out", str(tmp_path / "rep"), "--fid", "encoder"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "rep" / "recon.json").read_text())["rows"]
    assert [(r["mode"], r["steps"]) for r in rows] == [("stochastic", 2), ("inversion", 2)]
    assert "PSNR (dB)" in (tmp_path / "rep" / "recon.md").read_text()
    np.save(tmp_path / "heldout8.npy", ((images(8, seed=2).numpy()[:, 0] + 1) * 127.5).astype(np.uint8))
    result = runner.invoke(ev_cli.app, ["generation", str(tmp_path / "run"), "--n", "4", "--steps", "2",
                                        "--latent-steps", "2", "--data", str(tmp_path / "heldout8.npy"),
                                        "--train-data", str(tmp_path / "heldout.npy"), "--k", "2", "--pca", "3",
                                        "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "samples_latent_DDIM.png").is_file()
    gen_rows = json.loads((tmp_path / "rep" / "generation.json").read_text())["rows"]
    assert [r["source"] for r in gen_rows][0] == "held-out real (ceiling)" and "fid_pix" in gen_rows[1]
    result = runner.invoke(ev_cli.app, ["generation", str(tmp_path / "run"), "--data", str(tmp_path / "heldout8.npy"),
                                        "--out", str(tmp_path / "rep")])
    assert result.exit_code == 2 and "--train-data" in result.output
    # missing LPIPS weights file: a one-line error naming where to get them
    result = runner.invoke(ev_cli.app, ["recon", str(tmp_path / "run"), "--data", str(tmp_path / "heldout.npy"),
                                        "--steps", "2", "--lpips-backbone", str(tmp_path / "none.pth"),
                                        "--lpips-weights", str(tmp_path / "none2.pth")])
    assert result.exit_code == 2 and "download" in result.output
    result = runner.invoke(ev_cli.app, ["generation", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 2 and "--data" in result.output
    result = runner.invoke(ev_cli.app, ["ppl", str(tmp_path / "run"), "--data", str(tmp_path / "heldout.npy"),
                                        "--pairs", "2", "--segments", "3", "--steps", "2", "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    ppl_rows = json.loads((tmp_path / "rep" / "ppl.json").read_text())["rows"]
    assert ppl_rows[0]["ppl"] > 0 and ppl_rows[0]["segments"] == 3
    result = runner.invoke(ev_cli.app, ["ppl", str(tmp_path / "run"), "--data", str(tmp_path / "heldout.npy"),
                                        "--pairs", "3"])
    assert result.exit_code == 2 and "needs 6 images" in result.output
