"""Run logs: ``log.csv`` (one row per logged step) and TensorBoard scalars."""

from __future__ import annotations

import csv
from pathlib import Path

LOG_NAME = "log.csv"  # every run folder's training log


class RunLogger:
    """Append-only CSV + TensorBoard logger. On resume the CSV is cut back to the resumed step."""

    def __init__(self, run_dir: Path, resume_step: int = 0, tensorboard: bool = True, filename: str = LOG_NAME):
        self.path = Path(run_dir) / filename
        self._fields: list[str] | None = None
        if self.path.exists():
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            self._fields = list(rows[0].keys()) if rows else None
            self._rewrite(rows)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1 if resume_step else None)
            except Exception:  # tensorboard missing or broken: CSV still works
                self._tb = None

    def _rewrite(self, rows: list[dict]) -> None:
        with self.path.open("w", newline="") as f:
            if self._fields:
                w = csv.DictWriter(f, fieldnames=self._fields)
                w.writeheader()
                w.writerows(rows)

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        if self._fields is None or set(row) - set(self._fields):
            old = self.read() if self._fields else []
            self._fields = list(dict.fromkeys([*(self._fields or []), *row]))
            self._rewrite(old)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields).writerow(row)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), step)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
