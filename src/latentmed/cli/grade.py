"""`latentmed grade`: fit, apply and evaluate latent-space graders (hyperplane distance -> ordinal grade)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from latentmed.cli._common import console, data_options, friendly_errors, parse_list, print_notice
from latentmed.errors import LatentmedError

app = typer.Typer(help="Grade from DAE latents: linear probe + calibrated hyperplane distance (Keicher, Atad et al.).",
                  no_args_is_help=True)


@app.command("fit")
@friendly_errors
def fit(
    latents: Path = typer.Option(..., "--latents", help="Latents .npz from `latentmed dae encode`."),
    labels: Path = typer.Option(..., "--labels", help="CSV with an id column and label columns."),
    column: List[str] = typer.Option(..., "--column", help="Label column(s) to grade; repeat for several (-> OUT/<column>)."),
    negative: Optional[str] = typer.Option(None, help="Negative grades, e.g. 0 (default: the lowest grade)."),
    positive: Optional[str] = typer.Option(None, help="Positive grades, e.g. 2,3 (default: all above the lowest)."),
    classifier: str = typer.Option("svm", help="svm | logreg | linear (torch linear layer, cross-entropy)."),
    calibration: str = typer.Option("means", help="means[:GA,GB] (e.g. means:0,3) or poly:DEG[:GRADES] (e.g. poly:3:0,2,3)."),
    holdout: float = typer.Option(0.0, min=0,
                                  help="Fraction of labelled ids held out (stratified) for `grade evaluate`."),
    healthy_below: Optional[int] = typer.Option(None, help="Predict grades below this as healthy (papers: 2)."),
    C: float = typer.Option(1.0, "--C", help="Inverse regularisation strength of the probe."),
    class_weight: Optional[str] = typer.Option(None, help="'balanced': weigh negatives and positives by inverse "
                                                          "frequency (as the CNN baseline). Default: unweighted."),
    no_standardize: bool = typer.Option(False, "--no-standardize", help="Fit the probe on raw latents."),
    id_column: str = typer.Option("id", help="Id column of the labels CSV."),
    seed: int = typer.Option(0, help="Random seed (split, probe).", min=0),
    out: Path = typer.Option(..., "--out", help="Output grader folder."),
) -> None:
    """Fit a grader.

    Example: latentmed grade fit --latents latents.npz --labels labels.csv --column genant
    --negative 0 --positive 2,3 --classifier svm --calibration means:0,3 --holdout 0.3 --out grader/
    """
    from latentmed.latent.grader import calibration_name
    from latentmed.latent.workflow import fit_grader

    if not C > 0:
        raise LatentmedError(f"--C must be > 0 (inverse regularisation strength), got {C}.")
    kwargs = dict(negative=parse_list(negative, int, "--negative") or None,
                  positive=parse_list(positive, int, "--positive") or None, classifier=classifier,
                  calibration=calibration, holdout=holdout, seed=seed, healthy_below=healthy_below,
                  standardize=not no_standardize, C=C, class_weight=class_weight, id_column=id_column)
    for col in column:
        target = out if len(column) == 1 else out / col
        g = fit_grader(latents, labels, col, out=target, **kwargs)
        meta = g.metadata_
        if meta["n_labelled"] < meta["n_latents"]:
            console.print(f"[yellow]Note:[/] {meta['n_labelled']} of {meta['n_latents']} latents have a {col!r} "
                          f"label; the grader is fitted on {meta['n_train']} of them "
                          f"({len(meta['holdout_ids'])} held out). Check --labels and --id-column if that is "
                          "fewer than expected.")
        console.print(f"[green]{col}[/]: {g.classifier} probe on {g.metadata_['n_train']} samples "
                      f"(negative {list(g.negative_)}, positive {list(g.positive_)}), calibration "
                      f"{calibration_name(g)}, {len(g.metadata_['holdout_ids'])} held out -> {target}")


@app.command("predict")
@friendly_errors
def predict(
    grader: Path = typer.Argument(..., help="Grader folder from `latentmed grade fit`."),
    latents: Path = typer.Option(..., "--latents", help="Latents .npz (same DAE as the grader)."),
    out: Path = typer.Option(..., "--out", help="Output CSV: id, distance, grade_continuous, grade."),
) -> None:
    """Grade latents.

    Example: latentmed grade predict grader/ --latents latents.npz --out grades.csv
    """
    from latentmed.latent.workflow import predict_grades

    df = predict_grades(grader, latents, out)
    counts = df["grade"].value_counts().sort_index().to_dict()
    console.print(f"{len(df)} graded -> {out}; grades: {counts}")


@app.command("evaluate")
@friendly_errors
@data_options
def evaluate(
    grader: Path = typer.Argument(..., help="Grader folder from `latentmed grade fit`."),
    latents: Path = typer.Option(..., "--latents", help="Latents .npz."),
    labels: Path = typer.Option(..., "--labels", help="Labels CSV."),
    column: Optional[str] = typer.Option(None, help="Label column (default: the one the grader was fitted on)."),
    calibrations: Optional[str] = typer.Option(
        None, help="Extra calibrations to compare, ';'-separated, e.g. 'means:0,3;poly:1:0,2,3;poly:3:0,2,3'."),
    protocol: str = typer.Option("papers", help="papers: AUC G0 vs G2+G3, macro-F1 over G0,G2,G3 with predictions "
                                                "below G2 counted healthy (G1 left out); all: G0-G3 as predicted. "
                                                "Both tables are written; this one comes first."),
    f1_grades: Optional[str] = typer.Option(None, help="Grades averaged by macro-F1 (default: the protocol's)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Image folder (DIR/images/<id>.png): adds the probe on raw "
                                                             "pixels and a supervised CNN."),
    run: Optional[Path] = typer.Option(None, "--run", help="DAE run folder (with --data): adds the probe on a randomly "
                                                           "initialised encoder of the same architecture."),
    baseline_arch: str = typer.Option("small", help="CNN baseline: small | densenet121 (MONAI)."),
    baseline_epochs: int = typer.Option(30, help="CNN baseline epochs.", min=1),
    tsne_column: Optional[str] = typer.Option(None, help="Colour the t-SNE by these columns, e.g. level,fracture "
                                                                "(default: --column)."),
    no_tsne: bool = typer.Option(False, "--no-tsne", help="Skip the t-SNE picture."),
    seed: int = typer.Option(0, help="Seed for t-SNE and the baseline.", min=0),
    out: Path = typer.Option(..., "--out", help="Report folder: table.md, table.json, table.html, plots."),
    read: Optional[dict] = None,
) -> None:
    """Grading tables on held-out ids (AUC with bootstrap 95% CI, macro-F1, MAE, confusion), t-SNE.

    Example: latentmed grade evaluate grader/ --latents latents.npz --labels labels.csv
    --calibrations 'poly:1:0,2,3;poly:3:0,2,3' --data phantoms/ --out report/
    """
    from latentmed.latent.report import write_grading
    from latentmed.latent.workflow import Baselines, evaluate_grader

    cal = [c.strip() for c in calibrations.split(";") if c.strip()] if calibrations else None
    if run is not None and data is None:
        raise LatentmedError(f"--run {run} adds the untrained-encoder reference row, which needs the images: "
                             "pass --data DIR too (DIR/images/<id>.png).")
    baselines = None if data is None else Baselines(data, run, baseline_arch, baseline_epochs, progress=True,
                                                    read={**(read or {}), "report": print_notice})
    result = evaluate_grader(grader, latents, labels, column, calibrations=cal, protocol=protocol,
                             f1_grades=parse_list(f1_grades, int, "--f1-grades") or None, baselines=baselines,
                             tsne=False if no_tsne else (tsne_column or True), seed=seed)
    write_grading(result, out)
    console.print(f"protocol {result.protocol}:")
    for r in result.rows:
        lo, hi = r["detection_auc_ci"]
        console.print(f"{r['method']}: AUC {r['detection_auc']:.3f} ({lo:.3f}-{hi:.3f})  macro-F1 {r['macro_f1']:.3f}  "
                      f"MAE {r['mae']:.3f}  (n={r['n']})")
    console.print(f"report -> {out}/table.md, {out}/table.html")
