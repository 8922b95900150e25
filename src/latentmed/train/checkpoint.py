"""Atomic, resumable training checkpoints.

``RUN/checkpoint/`` holds ``model.safetensors``, ``ema.safetensors`` and ``trainer_state.pt``
(optimizer, LR scheduler, step, EMA count; loaded with ``weights_only=True``). A new
checkpoint is written to a temporary folder and swapped in by renames, so a crash while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from latentmed.errors import LatentmedError
from latentmed.io import load_safetensors, save_safetensors

CHECKPOINT_DIR = "checkpoint"


def save_checkpoint(run_dir: Path, model_state: dict, ema_state: dict, trainer_state: dict) -> Path:
    """Write the checkpoint folder atomically (write a temp folder, then swap it in)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / CHECKPOINT_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=run_dir))
    try:
        save_safetensors(tmp / "model.safetensors", model_state)
        save_safetensors(tmp / "ema.safetensors", ema_state)
        torch.save(trainer_state, tmp / "trainer_state.pt")
        old = None
        if final.exists():
            old = run_dir / f".checkpoint.old.{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_checkpoint(run_dir: Path) -> tuple[dict, dict, dict] | None:
    """Return ``(model_state, ema_state, trainer_state)`` or ``None`` when the run has no checkpoint."""
    final = Path(run_dir) / CHECKPOINT_DIR
    if not final.is_dir():
        return None
    try:
        trainer_state = torch.load(final / "trainer_state.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise LatentmedError(f"{final}: incomplete checkpoint (no trainer_state.pt). Delete the folder to start "
                             "over.") from exc
    return load_safetensors(final / "model.safetensors"), load_safetensors(final / "ema.safetensors"), trainer_state
