"""Atomic, resumable training checkpoints.

``RUN/checkpoint/`` holds ``model.safetensors``, ``ema.safetensors`` and ``trainer_state.pt``
(optimizer, LR scheduler, step, EMA count; loaded with ``weights_only=True``).

A new checkpoint is written to a temporary folder ``RUN/.checkpoint.XXXX`` and swapped in by
two renames: ``checkpoint -> checkpoint.prev``, then ``.checkpoint.XXXX -> checkpoint``; the
previous one is deleted last. A kill at any instant leaves a complete checkpoint to resume
from: the old or the new ``checkpoint/``, or (between the renames) ``checkpoint.prev/``, which
:func:`load_checkpoint` falls back to. :func:`recover_checkpoint`, run when training resumes,
puts ``checkpoint.prev`` back if needed and deletes temporaries left by interrupted writes.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import torch

from latentmed.errors import LatentmedError
from latentmed.io import load_safetensors, save_safetensors

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file-size limit

CHECKPOINT_DIR = "checkpoint"
PREVIOUS_DIR = "checkpoint.prev"  # the last complete checkpoint while a new one is swapped in
TEMP_PREFIX = ".checkpoint."  # folders being written; left behind only by a killed write
FILES = ("model.safetensors", "ema.safetensors", "trainer_state.pt")


def _complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in FILES)


def save_checkpoint(run_dir: Path, model_state: dict, ema_state: dict, trainer_state: dict) -> Path:
    """Write ``run_dir/checkpoint`` so that a complete checkpoint exists at every instant."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, prev = run_dir / CHECKPOINT_DIR, run_dir / PREVIOUS_DIR
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=run_dir))
    try:
        save_safetensors(tmp / "model.safetensors", model_state)
        save_safetensors(tmp / "ema.safetensors", ema_state)
        torch.save(trainer_state, tmp / "trainer_state.pt")
        if _complete(final):
            if prev.exists():  # a backup left by an earlier kill; checkpoint/ is newer and complete
                shutil.rmtree(prev)
            os.replace(final, prev)
        elif final.exists():  # an incomplete checkpoint/ (not written by this code): never the only copy
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists() and _complete(prev):
            os.replace(prev, final)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            kept = (f"the previous checkpoint {final} (step {_step_of(final)}) is intact" if _complete(final)
                    else "no earlier checkpoint was kept")
            raise LatentmedError(f"{run_dir}: cannot write a checkpoint, {os.strerror(exc.errno).lower()}; {kept}. "
                                 "Free space (or move the run) and run the same command to resume.") from exc
        raise
    shutil.rmtree(prev, ignore_errors=True)
    return final


def _step_of(folder: Path) -> str:
    try:
        return str(int(torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)["step"]))
    except Exception:
        return "?"


def recover_checkpoint(run_dir: Path) -> list[str]:
    """Repair what a killed :func:`save_checkpoint` left in ``run_dir``; return what was done (one line each).

    Puts ``checkpoint.prev`` back when ``checkpoint/`` is missing, deletes it when
    ``checkpoint/`` is complete, and deletes ``.checkpoint.*`` temporaries. Call it only where
    no other process is writing a checkpoint into ``run_dir`` (the main process, on resume).
    """
    run_dir = Path(run_dir)
    final, prev = run_dir / CHECKPOINT_DIR, run_dir / PREVIOUS_DIR
    done = []
    if not run_dir.is_dir():
        return done
    if _complete(prev) and not _complete(final):
        if final.exists():
            shutil.rmtree(final)
        os.replace(prev, final)
        done.append(f"restored {final} from {PREVIOUS_DIR} (a checkpoint write was interrupted)")
    elif prev.exists() and _complete(final):
        shutil.rmtree(prev, ignore_errors=True)
        done.append(f"removed the stale {prev}")
    stale = [p for p in run_dir.glob(TEMP_PREFIX + "*") if p.is_dir()]
    if stale:
        size = sum(f.stat().st_size for p in stale for f in p.rglob("*") if f.is_file())
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed {len(stale)} temporary checkpoint folder(s) of interrupted writes "
                    f"({size / 2**20:.1f} MiB) from {run_dir}")
    return done


def load_checkpoint(run_dir: Path) -> tuple[dict, dict, dict] | None:
    """Return ``(model_state, ema_state, trainer_state)`` or ``None`` when the run has no checkpoint.

    Reads ``checkpoint/``, or ``checkpoint.prev/`` when a kill came between the two renames of
    :func:`save_checkpoint`. A damaged file (truncated, corrupt) is a one-line error naming it and
    saying what to do: fall back to ``checkpoint.prev`` where one is complete, else restore or start over.
    """
    run_dir = Path(run_dir)
    folder = next((run_dir / name for name in (CHECKPOINT_DIR, PREVIOUS_DIR) if _complete(run_dir / name)), None)
    if folder is None:
        final = run_dir / CHECKPOINT_DIR
        if final.is_dir():
            missing = [name for name in FILES if not (final / name).is_file()]
            raise LatentmedError(f"{final}: incomplete checkpoint (no {', '.join(missing)}). Delete the folder to "
                                 "start over.")
        return None
    prev = run_dir / PREVIOUS_DIR
    hint = (f"move {prev} to {folder} to resume from the previous checkpoint" if folder != prev and _complete(prev)
            else f"restore {folder} from a backup, or delete it to train from the start")
    try:
        trainer_state = torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)
        step = int(trainer_state["step"])
    except Exception as exc:  # truncated zip, corrupt pickle stream, missing keys
        detail = " ".join(str(exc).split())[:160]
        raise LatentmedError(f"{folder / 'trainer_state.pt'}: damaged checkpoint file ({type(exc).__name__}: "
                             f"{detail}); {hint}.") from exc
    if step < 0:
        raise LatentmedError(f"{folder / 'trainer_state.pt'}: damaged checkpoint file (step {step}); {hint}.")
    return (load_safetensors(folder / "model.safetensors", hint=hint),
            load_safetensors(folder / "ema.safetensors", hint=hint), trainer_state)
