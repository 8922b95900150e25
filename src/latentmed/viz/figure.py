"""The one matplotlib set-up and save tail of :mod:`latentmed.viz`: Agg backend, atomic write, close."""

from __future__ import annotations

import os
from pathlib import Path

from latentmed.io import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dpi: float | str = "figure", tight: bool = False) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix, PNG when it names none) and close it.

    ``tight`` crops the canvas to the drawn content (``bbox_inches="tight"``).
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in fig.canvas.get_supported_filetypes():
        fmt = "png"
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight" if tight else None)
    finally:
        pyplot().close(fig)
    return path
