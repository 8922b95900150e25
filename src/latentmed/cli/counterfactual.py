"""`latentmed counterfactual`: counterfactual images of chosen grades with a trained DAE and a grader."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, data_options, device_option, friendly_errors, parse_list, print_notice


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

    Example: latentmed counterfactual runs/dae grader/ --data phantoms/ --ids spine2d_00003,spine2d_00007
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
    command = ["latentmed", "counterfactual", str(run), str(grader), "--data", str(data), "--ids", ids,
               "--grades", ",".join(f"{g:g}" for g in targets), *(["--flip"] if flip else []), "--steps", str(steps),
               "--direction", direction, "--out", str(out)]
    html = write_counterfactual_html(result, out / "report.html", RunInfo.collect([shlex.join(command)]))
    console.print(f"report -> {html} (open it in a browser: one grade slider per image)")
