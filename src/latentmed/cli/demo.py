"""`latentmed demo`: the end-to-end job on built-in phantom data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import friendly_errors
from latentmed.errors import LatentmedError


@friendly_errors
def demo(out: Path = typer.Option(Path("latentmed-demo"), "--out", help="Output folder."),
         quick: bool = typer.Option(False, "--quick", help="About a minute: fewer images and steps (smoke run)."),
         steps: Optional[int] = typer.Option(None, help="DAE training steps (default 1200; 40 with --quick). "
                                             "More steps give a z_sem that grades better."),
         seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Phantom -> two-phase tiny DAE -> latents -> grader -> report, on a CPU.

    Example: latentmed demo --out latentmed-demo
    """
    import dataclasses

    from latentmed.demo import FULL, QUICK, run_demo

    settings = QUICK if quick else FULL
    if steps is not None:
        if steps < 1:
            raise LatentmedError(f"--steps must be >= 1, got {steps}.")
        settings = dataclasses.replace(settings, dae_steps=steps)
    report = run_demo(out, seed=seed, settings=settings)
    typer.echo(f"Done. Report: {report}")
