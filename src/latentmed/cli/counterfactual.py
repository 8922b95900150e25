"""`latentmed counterfactual make|evaluate`: counterfactual images of chosen grades with a trained DAE and a
grader, and their measures (validity by the height oracle and a CNN, proximity, realism, composition,
reversibility)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, data_options, device_option, friendly_errors, parse_list, print_notice

app = typer.Typer(help="Counterfactual images (make) and their measures (evaluate).", no_args_is_help=True)


@friendly_errors
@data_options
def counterfactual(
    run: Path = typer.Argument(..., help="DAE run folder (RUN/model) from `latentmed dae train`."),
    grader: Path = typer.Argument(..., help="Grader folder from `latentmed grade fit` (fitted on this DAE's latents)."),
    data: Path = typer.Option(..., "--data", help="Image folder: DIR/images/<id>.png or DIR/<id>.png."),
    ids: str = typer.Option(..., "--ids", help="Comma-separated image ids."),
    grades: Optional[str] = typer.Option("-1,0,1,2,3,4", help="Target grades (outside the scale extrapolates)."),
    traverse: Optional[str] = typer.Option(None, help="Traversal START:STOP:K, e.g. -1:4:8 (K evenly spaced grades; "
                                                      "replaces --grades)."),
    flip: bool = typer.Option(False, "--flip", help="Add the binary counterfactual (reflection across the hyperplane)."),
    steps: int = typer.Option(50, help="DDIM steps for inversion and decoding (one grid for both).", min=1),
    direction: str = typer.Option("pattern", help="Move z_sem along: 'pattern' (the probe's activation pattern "
                                                  "Cov(z) n, Haufe et al. 2014; drawn most clearly), 'means' (class-mean "
                                                  "difference), 'normal-std' (the normal in standardised space, "
                                                  "DiffAE's way) or 'normal' (the hyperplane normal, the papers'). "
                                                  "Each lands exactly at the target grade's distance."),
    device: str = device_option(),
    out: Path = typer.Option(..., "--out", help="Output folder: <id>.png strips, counterfactuals.json and "
                                                "report.html (a grade slider per image)."),
    read: Optional[dict] = None,
) -> None:
    """Counterfactual strips: original, reconstruction, images at target grades, signed difference maps.

    Example: latentmed counterfactual make runs/dae grader/ --data phantoms/ --ids spine2d_00003,spine2d_00007
    --grades -1,0,1,2,3,4 --flip --out cf/   (or --traverse -1:4:8 for 8 evenly spaced grades)
    """
    import shlex

    import numpy as np

    from latentmed.errors import LatentmedError
    from latentmed.latent.report import write_counterfactual_html
    from latentmed.latent.workflow import counterfactuals_from_run
    from latentmed.viz.html import RunInfo

    targets = parse_list(grades, float, "--grades")
    if traverse:
        parts = traverse.split(":")
        try:
            start, stop, k = float(parts[0]), float(parts[1]), int(parts[2])
        except (ValueError, IndexError) as exc:
            raise LatentmedError(f"--traverse {traverse!r}: expected START:STOP:K, e.g. -1:4:8.") from exc
        if k < 2:
            raise LatentmedError(f"--traverse {traverse!r}: K must be at least 2.")
        targets = [round(float(g), 4) for g in np.linspace(start, stop, k)]
    result = counterfactuals_from_run(run, grader, data, parse_list(ids, str, "--ids"),
                                      grades=targets, flip=flip, steps=steps, out_dir=out,
                                      direction=direction, device=device, progress=True,
                                      read={**(read or {}), "report": print_notice})
    slopes = result.follow_slope()
    for i, image_id in enumerate(result.ids):
        follow = "" if np.isnan(slopes[i]) else f", follow slope {slopes[i]:.2f}"
        console.print(f"{image_id}: grade {result.predicted_grade[i]:.2f}, reconstruction PSNR "
                      f"{result.reconstruction_psnr[i]:.1f} dB{follow} -> {result.files[i]}")
    command = ["latentmed", "counterfactual", "make", str(run), str(grader), "--data", str(data), "--ids", ids,
               "--grades", ",".join(f"{g:g}" for g in targets), *(["--flip"] if flip else []), "--steps", str(steps),
               "--direction", direction, "--out", str(out)]
    html = write_counterfactual_html(result, out / "report.html", RunInfo.collect([shlex.join(command)]))
    console.print(f"report -> {html} (open it in a browser: one grade slider per image)")


@friendly_errors
def evaluate(
    run: Path = typer.Argument(..., help="DAE run folder (RUN/model) from `latentmed dae train`."),
    grader: Path = typer.Argument(..., help="Grader folder from `latentmed grade fit` (fitted on this DAE's latents)."),
    data: Path = typer.Option(..., "--data", help="Image folder: DIR/images/<id>.png or DIR/<id>.png."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels CSV (true grades of the inputs; the CNN "
                                                                 "judge trains on the grader's training ids)."),
    column: str = typer.Option("genant", help="Grade column of --labels."),
    ids: Optional[str] = typer.Option(None, "--ids", help="Comma-separated image ids (default: --n of the grader's "
                                                          "held-out ids, half lowest and half highest grade)."),
    n: int = typer.Option(16, "--n", help="Inputs picked when --ids is not given.", min=1),
    grades: str = typer.Option("0,1,2,3", help="Asked grades (validity counts G0..G3)."),
    steps: int = typer.Option(30, help="DDIM steps for inversion and decoding.", min=1),
    direction: str = typer.Option("pattern", help="Move z_sem along: pattern | means | normal-std | normal "
                                                  "(see `latentmed counterfactual make --help`; the demo uses means)."),
    heldout: Optional[Path] = typer.Option(None, "--heldout", help="Real images the DAE never saw (realism: "
                                                                   "precision/recall and FID of the counterfactuals)."),
    cnn_epochs: int = typer.Option(30, help="Epochs of the CNN judge (0: no CNN judge).", min=0),
    seed: int = typer.Option(0, help="Seed of the CNN judge.", min=0),
    device: str = device_option(),
    out: Path = typer.Option(..., "--out", help="Output folder: metrics.md and metrics.json."),
) -> None:
    """Measure counterfactuals: validity (height oracle, CNN), proximity, realism, composition, reversibility.

    Example: latentmed counterfactual evaluate run grader --data phantom --labels phantom/labels.csv
    --heldout heldout --out cf-metrics
    """
    from latentmed.evaluation.counterfactual import evaluate_counterfactuals_from_run

    _, m = evaluate_counterfactuals_from_run(
        run, grader, data, parse_list(ids, str, "--ids") if ids else None, labels=labels, column=column, n=n,
        targets=parse_list(grades, float, "--grades"), steps=steps, direction=direction, heldout_dir=heldout,
        cnn_epochs=cnn_epochs if labels is not None else 0, seed=seed, device=device, out_dir=out)
    console.print(f"validity (height oracle) {m.validity:.3f} exact, {m.validity_within_one:.3f} within one grade; "
                  f"CNN {m.cnn_validity:.3f}; L1 to reconstruction {m.proximity['l1_to_reconstruction']:.3f} "
                  f"-> {out / 'metrics.md'}")


app.command("make")(counterfactual)
app.command("evaluate")(evaluate)
