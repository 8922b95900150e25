"""Writers of grading and counterfactual results: figures, Markdown, JSON and HTML report sections.

The evaluations return numbers (:class:`~latentmed.latent.evaluation.GradingResult`,
:class:`~latentmed.latent.counterfactual.CounterfactualResult`); these functions turn them into
files. The HTML pieces are plain :mod:`latentmed.viz.html` data (tables, figures, slider viewers), so
a caller can put them into one page (``latentmed demo``) or write them alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from latentmed.latent.evaluation import GradingResult
from latentmed.viz.html import Figure, RunInfo, Section, Table, Viewer, write_html_report


def protocol_titles(result: GradingResult) -> dict[str, str]:
    """``{protocol: what it scores}`` in words, for table titles."""
    names = {"papers": "papers' protocol: AUC G0 vs G2+G3, macro-F1 over G0, G2, G3, predictions below G2 "
                       "counted healthy, G1 left out",
             "all": "all grades G0-G3, predictions as they are"}
    if result.positive != [2, 3] or result.negative != [0]:
        names["papers"] = (f"papers' protocol: AUC {result.negative} vs {result.positive}, macro-F1 over those "
                           f"grades, predictions below {min(result.positive)} counted healthy")
    return names


def grading_markdown(result: GradingResult, title: str, heading: str = "##", confusion: bool = True) -> str:
    """Both tables of a grading result, the chosen protocol first (``confusion``: with matrices)."""
    from latentmed.latent.evaluation import markdown_table

    names = protocol_titles(result)
    first, second = result.protocol, result.other_protocol
    encoder = f"Semantic encoder of the DAE: {result.encoder}.\n\n" if result.encoder else ""
    return (encoder + markdown_table(result.tables[first], f"{title} ({names[first]})", heading, confusion) + "\n"
            + markdown_table(result.tables[second], f"{title} ({names[second]})", heading, confusion))


def save_grading_figures(result: GradingResult, out_dir: str | os.PathLike) -> list[str]:
    """``confusion_<k>.png`` per row of the chosen protocol, ``calibration.png``, ``tsne_<column>.png``."""
    from latentmed.viz.latent import save_calibration, save_confusion, save_scatter

    out_dir = Path(out_dir)
    files = [str(save_confusion(r["confusion"], r["scale"], out_dir / f"confusion_{k}.png", r["method"]))
             for k, r in enumerate(result.rows)]
    curves = {name: (result.curve_distance, g) for name, g in result.curves.items()}
    files.append(str(save_calibration(result.distance, result.grades, curves, out_dir / "calibration.png")))
    for col, colour in result.tsne_colours.items():
        files.append(str(save_scatter(result.tsne, colour, out_dir / f"tsne_{col}.png",
                                      f"t-SNE of z_sem ({len(result.tsne)} samples), coloured by {col}", col)))
    return files


def write_grading(result: GradingResult, out_dir: str | os.PathLike, title: str | None = None) -> list[str]:
    """Figures, ``table.md`` (both tables), ``table.json`` and ``table.html`` into ``out_dir``; their paths.

    ``result.files`` becomes that list (the HTML embeds the figures from it).
    """
    from latentmed.io import write_json, write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or f"Grading of {result.column!r} on {len(result.ids)} held-out samples"
    result.files = save_grading_figures(result, out_dir)
    write_text(out_dir / "table.md", grading_markdown(result, title))
    write_json(out_dir / "table.json", result.to_dict())
    write_html_report(out_dir / "table.html", title, [grading_section(result, "Grading")],
                      intro=[f"Semantic encoder of the DAE: {result.encoder}."] if result.encoder else [])
    result.files += [str(out_dir / name) for name in ("table.md", "table.json", "table.html")]
    return result.files


def grading_tables(result: GradingResult) -> list[Table]:
    """One HTML table per protocol (chosen one first): AUC with its 95% CI, macro-F1, MAE, accuracy, n."""
    names = protocol_titles(result)
    tables = []
    for proto in (result.protocol, result.other_protocol):
        rows = result.tables[proto]
        grades = ",".join(str(g) for g in rows[0]["f1_grades"]) if rows else ""
        cells = [[r["method"], "{:.3f} ({:.3f}-{:.3f})".format(r["detection_auc"], *r["detection_auc_ci"]),
                  f"{r['macro_f1']:.3f}", f"{r['mae']:.3f}", f"{r['accuracy']:.3f}", str(r["n"])] for r in rows]
        tables.append(Table(title=f"{len(result.ids)} held-out samples, {names[proto]}",
                            header=["method", "detection AUC (95% CI)", f"macro-F1 (grades {grades})", "MAE",
                                    "accuracy", "n"], rows=cells,
                            reference={k for k, r in enumerate(rows) if not r["method"].startswith("latent")}))
    tables[0].note = ("Reference rows: the same linear probe on raw pixels and on an untrained encoder, and a "
                      "supervised CNN; the 95% CI is a stratified bootstrap of the AUC.")
    return tables


def grading_section(result: GradingResult, title: str = "Grading", text: Sequence[str] = ()) -> Section:
    """The tables and (once :func:`save_grading_figures` wrote them) the calibration, confusion and t-SNE plots."""
    captions = {"calibration.png": "Signed distance of each held-out sample against its true grade, with the "
                                   "calibration curves.",
                "confusion_0.png": f"Confusion matrix of {result.rows[0]['method'] if result.rows else ''} "
                                   "(rows: true grade, columns: predicted)."}
    figures = [Figure(f, captions.get(Path(f).name, f"t-SNE of z_sem coloured by {Path(f).stem[5:]}."))
               for f in result.files if Path(f).name in captions or Path(f).name.startswith("tsne_")]
    return Section(title, list(text), tables=grading_tables(result), figures=figures)


def _grade(value) -> str:
    """``G2`` for whole grades, ``1.75`` otherwise; NaN or negative (an oracle's "unreadable") is no reading."""
    v = float(value)
    return "no reading" if not np.isfinite(v) or v < 0 else f"G{int(v)}" if v.is_integer() else f"{v:.2f}"


def counterfactual_viewers(cf, truth: Sequence | None = None, oracle: np.ndarray | None = None) -> list[Viewer]:
    """One slider viewer per image of a :class:`~latentmed.latent.counterfactual.CounterfactualResult`.

    Under each frame: the distance asked for and the grade the grader reads back from the decoded image
    (re-encoded); with ``oracle`` (``[N, G]``, e.g. the phantom's height oracle), its measured grade too
    (NaN or negative: no reading). Under the input: its true grade (``truth``, optional), the grader's reading and
    the reconstruction PSNR. The slider starts at the target nearest the grader's reading of the input.
    """
    targets = np.asarray(cf.target_grades, dtype=np.float64)
    viewers = []
    for i, name in enumerate(cf.ids):
        readings = []
        for k, _ in enumerate(cf.labels):
            lines = [f"asked: signed distance {cf.target_distances[i, k]:.2f}",
                     f"grader reads the image as grade {cf.counterfactual_grade[i, k]:.2f}"]
            if oracle is not None:
                lines.append(f"height oracle measures {_grade(oracle[i][k])}")
            readings.append(lines)
        notes = ([f"True grade: {_grade(truth[i])}."] if truth is not None else []) + [
            f"The grader reads the input as grade {cf.predicted_grade[i]:.2f} (signed distance "
            f"{cf.original_distance[i]:.2f}); the reconstruction reproduces it at {cf.reconstruction_psnr[i]:.1f} dB "
            "PSNR."]
        start = int(np.argmin(np.abs(targets - cf.predicted_grade[i]))) if len(targets) else 0
        viewers.append(Viewer(name, cf.originals[i], cf.reconstructions[i], cf.counterfactuals[i], list(cf.labels),
                              readings, notes, start))
    return viewers


def write_counterfactual_html(cf, path: str | os.PathLike, run: RunInfo | None = None, *,
                              truth: Sequence | None = None, oracle: np.ndarray | None = None,
                              text: Sequence[str] = ()) -> Path:
    """``report.html`` of ``latentmed counterfactual``: one slider viewer per image, what was run."""
    slope = np.asarray(cf.follow_slope(), dtype=np.float64)
    intro = [f"Counterfactuals of {len(cf.ids)} image(s): z_sem moved along the {cf.direction or 'normal'} "
             "direction to each target grade's distance and decoded with the image's own x_T."]
    if np.isfinite(slope).any():
        intro.append(f"Follow slope {np.nanmean(slope):.2f}: the grade the grader reads back moves that many grades "
                     "per grade asked for (1: the images carry the target grade; 0: the decoder ignores the move).")
    section = Section("Counterfactuals", list(text), viewers=counterfactual_viewers(cf, truth, oracle))
    return write_html_report(path, "latentmed counterfactuals", [section], run, intro)
