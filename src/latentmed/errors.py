"""User-facing errors.

Every error raised on bad user input is a :class:`LatentmedError` (or a subclass) whose
message says what was passed, what was expected and how to fix it. The CLI prints the
message on one line (``--debug`` shows the traceback); Python callers can catch it.
Subclassing ``ValueError`` keeps ``except ValueError`` and scikit-learn's checks working.
"""

from __future__ import annotations


class LatentmedError(ValueError):
    """Bad input or state that the user can fix; the message says how."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`LatentmedError` with ``message`` unless ``condition`` holds.

    Used instead of ``assert`` for user input (asserts vanish under ``python -O``).
    """
    if not condition:
        raise LatentmedError(message)
