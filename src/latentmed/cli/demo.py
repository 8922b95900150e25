"""`latentmed demo`: the end-to-end job on built-in phantom data."""

from __future__ import annotations

from pathlib import Path

import typer

from latentmed.cli._common import friendly_errors


@friendly_errors
def demo(out: Path = typer.Option(Path("latentmed-demo"), "--out", help="Output folder."),
         quick: bool = typer.Option(False, "--quick", help="About a minute: fewer images and steps (smoke run)."),
         seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Phantom -> two-phase tiny DAE -> latents -> grader -> report, on a CPU.

    Example: latentmed demo --out latentmed-demo
    """
    from latentmed.demo import run_demo

    report = run_demo(out, quick=quick, seed=seed)
    typer.echo(f"Done. Report: {report}")
