"""Small helpers shared by the CLI modules: console, progress bars, error wrapping."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import typer
from rich.console import Console

from latentmed.errors import LatentmedError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def friendly_errors(fn: F) -> F:
    """Turn :class:`LatentmedError` into a one-line message and exit code 2 (``--debug``: traceback).

    typer's own runner (and the test runner) bypass :func:`latentmed.cli.main.main`, so each
    command is wrapped here as well.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from latentmed.cli.main import _state

        try:
            return fn(*args, **kwargs)
        except LatentmedError as exc:
            if _state.get("debug"):
                raise
            typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def parse_list(text: str | None, cast: Callable = str, what: str = "list") -> list:
    """``"1,2, 3"`` -> ``[1, 2, 3]`` with a clear error on a bad item."""
    if text is None or str(text).strip() == "":
        return []
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(cast(item))
        except ValueError as exc:
            raise LatentmedError(f"{what}: cannot read {item!r} as {cast.__name__} in {text!r}.") from exc
    return out
