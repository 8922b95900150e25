"""`latentmed demo`: the end-to-end job on built-in phantom data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import friendly_errors


@friendly_errors
def demo(out: Path = typer.Option(Path("latentmed-demo"), "--out", help="Output folder."),
         quick: bool = typer.Option(False, "--quick", help="Smoke run, about 30 s on 2 idle cores: 48 images, 40 "
                                               "training steps."),
         steps: Optional[int] = typer.Option(None, help="DAE training steps (default 3600: 19 min 22 s on 2 idle "
                                             "cores with bf16, 11 min 05 s with OMP_WAIT_POLICY=ACTIVE on "
                                             "cores nobody else uses; measured; 40 with --quick). "
                                             "More steps give a z_sem that grades better.", min=1),
         seed: int = typer.Option(0, help="Random seed.", min=0)) -> None:
    """Phantom -> two-phase tiny DAE -> latents -> grader -> report, on a CPU.

    Example: latentmed demo --out latentmed-demo
    """
    import dataclasses

    from latentmed.demo import FULL, QUICK, run_demo

    settings = QUICK if quick else FULL
    if steps is not None:
        settings = dataclasses.replace(settings, dae_steps=steps)
    run_demo(out, quick=quick, seed=seed, settings=settings)  # prints where the report was written
