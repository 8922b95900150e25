"""The self-contained ``report.html``: its structure (no browser) and its slider in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from latentmed.latent.counterfactual import CounterfactualResult
from latentmed.latent.report import counterfactual_viewers, write_counterfactual_html
from latentmed.viz.html import RunInfo, Section, Table, write_html_report

CHROMIUM = Path("/usr/bin/chromium")


class _Page(HTMLParser):
    """Every tag with its attributes, in document order, plus which viewer and frame it sits in."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict, str | None, str | None]] = []
        self.text: list[str] = []
        self._stack: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        viewer = next((d["id"] for _, d in reversed(self._stack) if "viewer" in d.get("class", "").split()), None)
        frame = next((d["data-frame"] for _, d in reversed(self._stack) if "data-frame" in d), None)
        self.tags.append((tag, a, viewer, frame))
        if tag not in ("img", "input", "meta", "br"):
            self._stack.append((tag, a))

    def handle_endtag(self, tag):
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        self.text.append(data)


def check_report(path: Path) -> _Page:
    """Structural checks of a report.html; returns the parsed page for further checks.

    Every image is an embedded PNG that decodes; nothing is fetched (no src/href/url() to a file or
    the network, no external script or style); one range slider per viewer with ``min 0``,
    ``max = frames - 1``, a value in range, one label per frame, and exactly that frame shown.
    """
    from PIL import Image

    html = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    assert "http://" not in html and "https://" not in html and "url(" not in html
    assert not [t for t, a, *_ in page.tags if t in ("link", "iframe", "object", "embed")]
    assert all("src" not in a for t, a, *_ in page.tags if t == "script")
    assert not [a for t, a, *_ in page.tags if "href" in a and not a["href"].startswith("#")]
    images = [a["src"] for t, a, *_ in page.tags if t == "img"]
    assert images, "the report shows no image"
    for src in images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    viewers = [a["id"] for t, a, *_ in page.tags if "viewer" in a.get("class", "").split()]
    sliders = {v: a for t, a, v, _ in page.tags if t == "input" and a.get("type") == "range"}
    assert sorted(sliders) == sorted(viewers)
    for v, a in sliders.items():
        labels = json.loads(a["data-labels"])
        frames = [(f, a2) for t, a2, v2, f in page.tags if v2 == v and t == "div" and "data-frame" in a2]
        assert int(a["min"]) == 0 and int(a["max"]) == len(labels) - 1 == len(frames) - 1
        assert 0 <= int(a["value"]) <= int(a["max"]) and a["aria-valuetext"] == labels[int(a["value"])]
        assert [a2["data-frame"] for _, a2 in frames] == [str(k) for k in range(len(labels))]
        assert [a2["data-frame"] for _, a2 in frames if "hidden" not in a2] == [a["value"]]
    return page


def _result(n: int = 2, grades=(-1.0, 0.0, 1.0, 2.0, 3.0), size: int = 16) -> CounterfactualResult:
    """A counterfactual result whose image at grade g is the input darkened in a band that grows with g."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (n, 1, size, size)).astype(np.float32)
    cfs = np.repeat(x[:, None], len(grades), axis=1)
    for k in range(len(grades)):
        cfs[:, k, :, : 2 + 2 * k] -= 0.5
    g = np.asarray(grades)
    return CounterfactualResult(
        ids=[f"case{i}" for i in range(n)], originals=x, reconstructions=x + 0.01, counterfactuals=cfs,
        labels=[f"G{int(v)}" for v in grades], target_distances=np.tile(g - 1.0, (n, 1)),
        predicted_grade=np.array([0.2, 2.7])[:n], original_distance=np.array([-0.8, 1.7])[:n],
        reconstruction_psnr=np.full(n, 31.0), counterfactual_grade=np.tile(0.5 * g, (n, 1)),
        target_grades=list(g), direction="pattern")


def test_counterfactual_report_structure(tmp_path):
    cf = _result()
    oracle = np.array([[0, 0, 1, 2, 3], [0, -1, 1, np.nan, 3]], dtype=float)
    path = write_counterfactual_html(cf, tmp_path / "report.html", RunInfo.collect(["latentmed counterfactual x"], 3),
                                     truth=[0, 3], oracle=oracle)
    page = check_report(path)
    text = " ".join(page.text)
    sliders = [a for t, a, *_ in page.tags if t == "input"]
    # starts at the grade nearest the grader's reading of the input (0.2 -> G0, 2.7 -> G3)
    assert [int(a["value"]) for a in sliders] == [1, 4] and len(sliders) == 2
    assert "height oracle measures G2" in text and text.count("height oracle measures no reading") == 2
    assert "True grade: G3" in text and "latentmed counterfactual x" in text and "seed" in text
    # frame k shows the k-th counterfactual (pixels as written), not another grade's
    from PIL import Image

    from latentmed.viz.grid import to_uint8

    shown = [(v, f, a["src"]) for t, a, v, f in page.tags if t == "img" and "counterfactual" in a.get("class", "")]
    assert len(shown) == 2 * len(cf.labels)
    for v, f, src in shown:
        i, k = int(v.removeprefix("viewer")), int(f)
        png = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
        np.testing.assert_array_equal(png, to_uint8(cf.counterfactuals[i, k])[0, ..., 0])
    plain = write_counterfactual_html(cf, tmp_path / "plain.html")
    assert "height oracle" not in plain.read_text() and "What was run" not in plain.read_text()


def test_report_checks_can_fail(tmp_path):
    """The structural checks catch an image that is not embedded and a slider out of range."""
    path = write_html_report(tmp_path / "r.html", "t", [Section("s", viewers=counterfactual_viewers(_result(1)))])
    html = path.read_text()
    bad = tmp_path / "bad.html"
    bad.write_text(html.replace('src="data:image/png;base64,', 'src="strip.png#', 1))
    with pytest.raises(AssertionError):
        check_report(bad)
    bad.write_text(html.replace('max="4"', 'max="7"', 1))
    with pytest.raises(AssertionError):
        check_report(bad)


def test_table_reference_rows_and_escaping(tmp_path):
    table = Table("AUC <table>", ["method", "AUC"], [["latent", "0.9"], ["raw pixels <b>", "0.8"]], reference={1})
    html = write_html_report(tmp_path / "t.html", "T & co", [Section("Grading", ["a < b"], tables=[table])]).read_text()
    assert '<tr class="reference"><td>raw pixels &lt;b&gt;</td>' in html and "<tr><td>latent</td>" in html
    assert "T &amp; co" in html and "a &lt; b" in html


def test_grading_writes_html_from_result(tmp_path):
    """`write_grading` renders the same rows as table.json, the reference rows marked, with the plots embedded."""
    import pandas as pd
    from test_latent_estimators import synthetic

    from latentmed.latent import evaluate_grader, fit_grader, save_latents, write_grading

    z, y, _ = synthetic(n_per_grade=20, seed=3)
    ids = np.array([f"c{i:03d}" for i in range(len(y))])
    save_latents(tmp_path / "lat.npz", ids, z.astype(np.float32), model_id="m")
    pd.DataFrame({"id": ids, "genant": y}).to_csv(tmp_path / "labels.csv", index=False)
    g = fit_grader(tmp_path / "lat.npz", tmp_path / "labels.csv", "genant", negative=[0], positive=[2, 3],
                   holdout=0.3)
    result = evaluate_grader(g, tmp_path / "lat.npz", tmp_path / "labels.csv", calibrations=["poly:1:0,2,3"])
    files = write_grading(result, tmp_path / "grading")
    assert {Path(f).name for f in files} >= {"calibration.png", "confusion_0.png", "table.md", "table.html"}
    page = check_report(tmp_path / "grading" / "table.html")
    cells = [d.strip() for d in page.text if d.strip()]
    first = result.rows[0]
    lo, hi = first["detection_auc_ci"]
    assert f"{first['detection_auc']:.3f} ({lo:.3f}-{hi:.3f})" in cells
    saved = json.loads((tmp_path / "grading" / "table.json").read_text())
    assert [r["method"] for r in saved["rows"]] == [r["method"] for r in result.rows]
    assert len([t for t, *_ in page.tags if t == "table"]) == 2  # one per protocol


def test_slider_moves_with_the_keyboard_in_chromium(tmp_path):
    """Headless Chromium: Tab to the first slider, ArrowRight, and the shown counterfactual changes."""
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("Chromium is not installed at /usr/bin/chromium (Debian: apt-get install -y chromium; .ci/run "
                    "installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is missing: "
                                                                  "pip install -e '.[dev]'")
    path = write_counterfactual_html(_result(), tmp_path / "report.html", RunInfo.collect(["latentmed demo"], 0),
                                     truth=[0, 3])
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    shown = "#viewer0 .frame:not([hidden]) img.counterfactual"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                       headless=True, args=args,
                                                       viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            fetched = []
            page.on("request", lambda r: fetched.append(r.url) if not r.url.startswith(("data:", "file:")) else None)
            page.goto(path.as_uri())
            before, label = page.locator(shown).get_attribute("src"), page.locator("#viewer0-out").inner_text()
            page.keyboard.press("Tab")  # the first focusable element is the first slider
            assert page.evaluate("document.activeElement.id") == "viewer0-grade"
            page.keyboard.press("ArrowRight")
            after = page.locator(shown).get_attribute("src")
            assert page.locator("#viewer0-grade").input_value() == "2" and label == "G0"
            assert page.locator("#viewer0-out").inner_text() == "G1" and after != before
            assert page.locator("#viewer0 .frame:not([hidden])").count() == 1
            page.keyboard.press("ArrowLeft")
            assert page.locator(shown).get_attribute("src") == before and fetched == []
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
