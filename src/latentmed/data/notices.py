"""What the readers tell the user: notices (something changed or skipped) and one-line errors naming the file."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable

from latentmed.errors import LatentmedError

BAD_HINT = "remove or fix the file, or pass skip_bad=True (CLI: --skip-bad) to skip unreadable files"


class DataNotice(UserWarning):
    """Something the readers changed or skipped (resize, channel conversion, skipped file): said once."""


def notify(report: Callable[[str], None] | None, message: str) -> None:
    """Tell the user ``message``: through ``report`` (e.g. the CLI's console) or as a :class:`DataNotice` warning."""
    if report is not None:
        report(message)
    else:
        warnings.warn(message, DataNotice, stacklevel=3)


def one_line(text, limit: int = 300) -> str:
    """``text`` (or an exception's message) on one line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@contextmanager
def reading(where, what: str):
    """Turn any exception raised while reading ``where`` into a one-line :class:`LatentmedError` naming it."""
    try:
        yield
    except LatentmedError as exc:  # ours already name the file; make sure they stay on one line
        if "\n" in str(exc):
            raise LatentmedError(one_line(exc)) from exc
        raise
    except MemoryError as exc:
        raise LatentmedError(f"{where}: cannot read {what}: not enough memory (a corrupted header may claim a "
                             "huge image); check the file.") from exc
    except Exception as exc:  # nibabel/pydicom/numpy raise many types on damaged files
        raise LatentmedError(f"{where}: cannot read {what} ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc


__all__ = ["BAD_HINT", "DataNotice", "notify", "one_line", "reading"]
