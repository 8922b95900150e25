"""One training per run folder: an advisory lock (``RUN/.lock``) and the stop signals of a cluster.

:func:`run_lock` holds ``fcntl.flock`` on ``RUN/.lock`` while a run trains. The kernel drops the lock
when the process ends, however it ends (``kill -9``, a node crash of a local disk), so a crashed
run never leaves the folder stuck; the file only records who holds it (pid, host, start time) for
the message. A second training into the folder, from another process, is refused.

:class:`StopSignals` turns SIGTERM (what SLURM and Kubernetes send before a kill) and SIGUSR1
(SLURM ``--signal=USR1@120``) into a flag that the training loop checks after each step: it writes
a checkpoint and ends with :class:`TrainingStopped`, which the CLI prints on one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from latentmed.errors import LatentmedError

LOCK_NAME = ".lock"
_held: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, depth): re-entrant within a process
_guard = threading.Lock()


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    """Refuse a run folder that is a file (or lies under one) or that another process is training into.

    Called before any work (reading data, building the model); :func:`run_lock` then holds the lock.
    """
    run_dir = check_run_dir_type(Path(run_dir))
    if (run_dir / LOCK_NAME).is_file():
        with run_lock(run_dir):  # free: it was left by a run that ended
            pass
    return run_dir


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of ``run_dir`` (created if needed); re-entrant within one process."""
    import fcntl

    run_dir = check_run_dir_type(Path(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    key = str(path.resolve())
    with _guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise LatentmedError(f"{run_dir} is being trained by {holder} ({path}); wait for it to end or stop "
                                     "it, or train into another --out folder.") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
            _held[key] = (fd, 1)
    try:
        yield run_dir
    finally:
        with _guard:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
            else:
                del _held[key]
                os.close(fd)  # releases the flock; the file stays (removing it would race a waiting run)


def check_run_dir_type(run_dir: Path) -> Path:
    """``run_dir`` unless it (or a parent) is a file: then a one-line error."""
    for parent in (run_dir, *run_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                raise LatentmedError(f"--out {run_dir}: {parent} is a file, not a folder; give a folder for the run "
                                     "(new or an earlier run to resume).")
            break
    return run_dir


class TrainingStopped(LatentmedError):
    """Training ended by a stop signal after writing a checkpoint; the CLI exits with ``128 + signal``."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


class StopSignals:
    """Context manager: while active, SIGTERM / SIGUSR1 set :attr:`received` instead of ending the process.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self):
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


__all__ = ["LOCK_NAME", "StopSignals", "TrainingStopped", "check_run_dir", "run_lock"]
