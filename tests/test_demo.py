"""`latentmed demo --quick` end to end: every artefact of the report is written."""

import json

import numpy as np
from typer.testing import CliRunner

from latentmed.cli.main import app


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--steps", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for name in ("reconstructions.png", "interpolation.png", "samples.png", "grading/table.md",
                 "grading/tsne_level.png", "grading/tsne_fracture.png",
                 "grader/config.json" if (out / "grader/config.json").exists() else "grader"):
        assert (out / name).exists(), name
    assert "| DDIM inversion |" in report and "CNN baseline" in report and "counterfactuals/" in report
    facts = json.loads((out / "report.json").read_text())["facts"]
    assert facts["psnr_inversion_db"] > facts["psnr_random_xT_db"]
    assert facts["settings"]["dae_steps"] == 30
    assert len(list((out / "counterfactuals").glob("*.png"))) >= 1
    assert "Follow slope" in report and all(np.isfinite(facts["counterfactual_follow_slope"]))
    # a second run resumes every stage instead of starting over
    again = CliRunner().invoke(app, ["demo", "--quick", "--steps", "30", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "report.json").read_text())["facts"]["timings_s"]["train DAE"] < \
        facts["timings_s"]["train DAE"]


def test_grading_comment_only_when_latent_trails_cnn():
    from latentmed.demo import _grading_comment

    rows = [{"method": "latent svm + means:0,3", "detection_auc": 0.6}, {"method": "CNN baseline", "detection_auc": 0.9}]
    assert "trails the supervised CNN (0.900)" in _grading_comment({"rows": rows})[0]
    rows[0]["detection_auc"] = 0.88
    assert _grading_comment({"rows": rows}) == []


def test_demo_rejects_bad_steps(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--steps", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--steps must be >= 1" in result.output


def test_counterfactual_comment_by_follow_slope():
    from types import SimpleNamespace

    from latentmed.demo import _counterfactual_comment

    def comment(*slopes):
        return " ".join(_counterfactual_comment(SimpleNamespace(follow_slope=lambda: np.array(slopes))))

    assert "Follow slope 0.02" in comment(0.01, 0.03) and "barely draws" in comment(0.01, 0.03)
    assert "only partly" in comment(0.2, 0.36) and "barely" not in comment(0.2, 0.36)
    assert "partly" not in comment(0.8, 1.0) and "barely" not in comment(0.8, 1.0)
