"""`latentmed demo --quick` end to end: every artefact of the report is written."""

import json

import numpy as np
from typer.testing import CliRunner

from latentmed.cli.main import app


def test_demo_quick_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as the default `latentmed-demo`: the report's links must hold
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--steps", "30", "--out", "demo"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for name in ("reconstructions.png", "interpolation.png", "samples.png", "samples.md", "heldout/labels.csv",
                 "grading/table.md",
                 "grading/tsne_level.png", "grading/tsne_fracture.png",
                 "grader/config.json" if (out / "grader/config.json").exists() else "grader"):
        assert (out / name).exists(), name
    assert "| DDIM inversion |" in report and "CNN (small" in report and "counterfactuals/" in report
    assert "## Samples" in report and "| held-out real (ceiling) |" in report
    assert "raw pixels" in report and "random encoder" in report and "95% CI" in report
    assert report.index("papers' protocol") < report.index("all grades G0-G3")
    facts = json.loads((out / "report.json").read_text())["facts"]
    assert facts["psnr_inversion_db"] > facts["psnr_random_xT_db"]
    assert facts["settings"]["dae_steps"] == 30
    assert len(list((out / "counterfactuals").glob("*.png"))) >= 1
    assert "Follow slope" in report and all(np.isfinite(facts["counterfactual_follow_slope"]))
    # the headline: one line per figure, the independent judge (the height oracle) first, with the run's numbers
    bullets = [line for line in report.split("## What was done")[0].splitlines() if line.startswith("- ")]
    assert bullets[0].startswith("- Counterfactual validity by the height oracle")
    assert f"{facts['oracle_validity_within_one']:.2f} of " in bullets[0] and "CNN" in bullets[1]
    assert f"perfect generator, the phantom re-rendered at the asked grade: {facts['oracle_ceiling']['within_one']:.2f}" \
        in bullets[0] and f"the unedited inputs: {facts['oracle_floor']['within_one']:.2f}" in bullets[0]
    assert "AUC" in bullets[2] and "Follow slope" in bullets[3] and bullets[-1].startswith("- Wall time")
    _check_html(out, report, facts)
    # a second run resumes every stage instead of starting over
    again = CliRunner().invoke(app, ["demo", "--quick", "--steps", "30", "--out", "demo"])
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    # phantom, DAE run, latents, samples
    assert text.count("already done in an earlier run") == 4 and text.count("Report written") == 1, text
    assert json.loads((out / "report.json").read_text())["facts"]["timings_s"]["train DAE"] < \
        facts["timings_s"]["train DAE"]
    _check_links_and_reproduce(out, monkeypatch)


def _check_html(out, report: str, facts: dict):
    """report.html is linked from report.md, self-contained, small, with one slider per counterfactual image."""
    from test_report_html import check_report

    assert "](report.html)" in report and (out / "report.html").stat().st_size < 3_000_000
    page = check_report(out / "report.html")
    sliders = [a for t, a, *_ in page.tags if t == "input" and a.get("type") == "range"]
    assert len(sliders) == len(facts["counterfactual_regraded"]) >= 1
    assert all(a["data-labels"] == '["G-1", "G0", "G1", "G2", "G3", "G4"]' for a in sliders)
    text = " ".join(page.text)
    assert "raw pixels" in text and "What was run" in text and "latentmed grade fit" in text
    assert text.index("Counterfactual validity by the height oracle") < text.index("Follow slope")
    oracle = facts["counterfactual_oracle_grade"]  # one measured grade per frame, under each frame
    assert [len(v) for v in oracle.values()] == [6] * len(sliders)
    assert text.count("height oracle measures") == 6 * len(sliders)
    # the grading tables' raw-pixel, untrained-encoder and CNN rows (both protocols) are marked as references
    assert sum(t == "tr" and a.get("class") == "reference" for t, a, *_ in page.tags) >= 6


def _links(report: str) -> list[str]:
    import re

    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


def _check_links_and_reproduce(out, monkeypatch):
    """Every image the report shows exists (relative to the report), and its CLI commands redo the tables."""
    import shlex

    report = (out / "report.md").read_text()
    links = _links(report)
    assert any(x.startswith("counterfactuals/") for x in links) and "grading/calibration.png" in links
    assert any(x.startswith("grading/confusion_") for x in links)
    for link in links:
        assert (out / link).is_file(), link
    assert not any(x.startswith(out.name + "/") for x in links)
    heads = [line for line in report.splitlines() if line.startswith("#")]
    assert heads[heads.index("## Grading") + 1].startswith("### ")  # tables sit under ## Grading
    block = report.split("## Reproduce with the CLI")[1].split("```bash")[1].split("```")[0]
    commands = [shlex.split(line) for line in block.strip().splitlines()]
    assert all(c[0] == "latentmed" for c in commands) and len(commands) == 8
    again = out.parent / "again"
    again.mkdir()
    monkeypatch.chdir(again)
    for c in commands:
        res = CliRunner().invoke(app, c[1:])
        assert res.exit_code == 0, (c, res.output)
    first = json.loads((out / "grading" / "table.json").read_text())
    redo = json.loads((again / "grading" / "table.json").read_text())
    for key in ("rows", "rows_all"):
        assert [r["method"] for r in redo[key]] == [r["method"] for r in first[key]]
        for a, b in zip(redo[key], first[key]):
            assert a["confusion"] == b["confusion"], a["method"]
            np.testing.assert_allclose([a["detection_auc"], a["macro_f1"]], [b["detection_auc"], b["macro_f1"]])
    cf_first = json.loads((out / "counterfactuals" / "counterfactuals.json").read_text())
    cf_redo = json.loads((again / "counterfactuals" / "counterfactuals.json").read_text())
    np.testing.assert_allclose(cf_redo["counterfactual_grade"], cf_first["counterfactual_grade"], atol=1e-6)
    m_first = json.loads((out / "counterfactuals" / "metrics.json").read_text())
    m_redo = json.loads((again / "counterfactuals" / "metrics.json").read_text())
    assert m_redo["ids"] == m_first["ids"] and m_redo["oracle_grade"] == m_first["oracle_grade"]
    assert m_redo["validity"] == m_first["validity"] and m_redo["cnn_validity"] == m_first["cnn_validity"]


def test_grading_comment_reads_the_reference_rows():
    from latentmed.demo import _grading_comment

    rows = [{"method": "latent svm + means:0,3", "detection_auc": 0.6, "detection_auc_ci": [0.5, 0.7]},
            {"method": "raw pixels: svm + means:0,3", "detection_auc": 0.85},
            {"method": "CNN (small, supervised)", "detection_auc": 0.9}]
    text = _grading_comment(rows)[0]
    assert "AUC 0.600 (95% CI 0.500-0.700)" in text and "raw pixels 0.850" in text and "does not yet beat" in text
    rows[0]["detection_auc"] = 0.95
    text = _grading_comment(rows)[0]
    assert "does not yet beat" not in text and "trails" not in text


def test_demo_rejects_bad_steps(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--steps", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--steps" in result.output and "Traceback" not in result.output


def test_counterfactual_comment_by_follow_slope():
    from types import SimpleNamespace

    from latentmed.demo import _counterfactual_comment

    def comment(*slopes):
        return " ".join(_counterfactual_comment(SimpleNamespace(follow_slope=lambda: np.array(slopes))))

    assert "Follow slope 0.02" in comment(0.01, 0.03) and "barely draws" in comment(0.01, 0.03)
    assert "only partly" in comment(0.2, 0.36) and "barely" not in comment(0.2, 0.36)
    assert "partly" not in comment(0.8, 1.0) and "barely" not in comment(0.8, 1.0)
