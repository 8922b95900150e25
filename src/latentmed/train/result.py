"""What every trainer returns (``train_dae``, ``train_vae``, ``train_ldm``, ``train_shape_model``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentmed.train.runlog import LOG_NAME


@dataclass
class RunResult:
    """A finished (or resumed-to-the-end) run: its folder, the trained model as saved there, the last step.

    ``model`` is what the run's loader gives back (the EMA DAE, the AutoencoderKL, the
    :class:`~latentmed.ldm.model.LatentDiffusion`, the shape model); ``log`` is the run's CSV log.
    """

    run_dir: Path
    model: Any
    step: int

    @property
    def log(self) -> Path:
        return Path(self.run_dir) / LOG_NAME


__all__ = ["RunResult"]
