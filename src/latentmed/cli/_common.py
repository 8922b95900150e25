"""Small helpers shared by the CLI modules: console, progress bars, error wrapping."""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Callable, TypeVar

import typer
from rich.console import Console

from latentmed.errors import LatentmedError

console = Console(stderr=True)
_state: dict = {"debug": False}  # set by the root options (latentmed.cli.main): --debug, the thread policy line
F = TypeVar("F", bound=Callable)


def is_cli_exception(exc: BaseException) -> bool:
    """Whether ``exc`` is the CLI framework's own signal (exit, abort, bad option), which it prints itself.

    Duck-typed on the public names, as typer < 0.20 raises click's classes and later typers raise
    those of their private copy of click (bases ``typer.TyperException``, ``typer.Exit``, ``typer.Abort``).
    """
    return isinstance(exc, (typer.Exit, typer.Abort)) or (
        callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int))


def error_message(exc: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` for an exception that ends a command.

    :class:`LatentmedError`: its message, its ``exit_code`` (default 2). Out of memory, a full disk and
    other ``OSError`` name the file and what to do (exit 1); any other exception is named as
    unexpected with a pointer to ``--debug`` (exit 1).
    """
    import errno

    from latentmed.data.notices import one_line

    if isinstance(exc, LatentmedError):
        return one_line(exc, 2000), int(getattr(exc, "exit_code", 2))
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or "OutOfMemory" in name:
        return (f"out of memory ({name}: {one_line(exc, 200)}); lower --batch-size or the image size, or run on a "
                "device with more memory."), 1
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        what = exc.strerror or one_line(exc, 200)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return f"{where}{what} (disk full or over quota); free space or write to another folder.", 1
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}{what}; choose a folder you may write to, or fix its permissions.", 1
        return f"{where}{what} ({name}); check the path.", 1
    return (f"unexpected {name}: {one_line(exc, 300).rstrip('.')}. Run with --debug for the traceback, and report it if "
            "this message does not say what to fix."), 1


def friendly_errors(fn: F) -> F:
    """End a command on any exception with one line ``Error: ...`` and a non-zero exit (``--debug``: traceback).

    Exit codes: see :func:`error_message`. typer's own runner (and the test runner) bypass
    :func:`latentmed.cli.main.main`, so each command is wrapped here as well.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _state.get("threads_line"):  # the thread policy, once per command run
            console.print(_state.pop("threads_line"), highlight=False, markup=False, soft_wrap=True)
        try:
            with data_notices_to_console():  # notices of library calls made without a report callback
                return fn(*args, **kwargs)
        except Exception as exc:
            if _state.get("debug") or is_cli_exception(exc):
                raise
            message, code = error_message(exc)
            typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=code) from None

    return wrapper  # type: ignore[return-value]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other names are checked by torch."""
    import torch

    device = str(device).strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise typer.BadParameter(f"{device!r} is not a torch device; use auto, cpu, cuda or cuda:N.") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter(f"{device!r}: no CUDA GPU is visible to torch here; use auto or cpu.")
    return device


def device_option() -> typer.models.OptionInfo:
    """The ``--device`` option of every command that runs a model (default ``auto``), resolved on parsing."""
    return typer.Option("auto", "--device", help="auto (cuda when a GPU is visible, else cpu) | cpu | cuda | cuda:N.",
                        callback=resolve_device)


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


# ------------------------------------------------------------------ data selection (every command with --data)
DATA_OPTION_HELP = {
    "axis": "Volumes: slice axis, sagittal | coronal | axial (reoriented views) or 0 | 1 | 2 (array axes). "
            "A single DICOM slice or 2D NIfTI is read as one image whatever the axis.",
    "window": "CT window: a preset (" + ", ".join(["bone", "soft_tissue", "lung", "brain", "spine"])
              + ") or CENTRE,WIDTH in HU, e.g. 400,1800.",
    "slices": "Volumes: slice indices and ranges, e.g. 64 or 10,20,30:40 (30..39).",
    "nan_to": "Volumes: replace NaN/inf voxels by this number or 'min'.",
    "skip_bad": "Skip unreadable images, NIfTI volumes and DICOM files (each skip is announced).",
    "allow_gaps": "DICOM series: read a series with a missing slice position as is (default: an error naming "
                  "the neighbouring files).",
}


def data_options(fn: F) -> F:
    """Add the shared data-selection options (--axis, --window, --slices, --nan-to, --skip-bad, --allow-gaps).

    The command declares a ``read`` parameter; it receives the given options as a dict of
    :func:`latentmed.data.open_images` keyword arguments (options left unset are absent).
    """
    import inspect
    from typing import Optional

    extra = [
        inspect.Parameter("axis", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, "--axis", help=DATA_OPTION_HELP["axis"], show_default="sagittal")),
        inspect.Parameter("window", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, "--window", help=DATA_OPTION_HELP["window"],
                                              show_default="each volume's min..max")),
        inspect.Parameter("slices", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, "--slices", help=DATA_OPTION_HELP["slices"], show_default="all")),
        inspect.Parameter("nan_to", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, "--nan-to", help=DATA_OPTION_HELP["nan_to"],
                                              show_default="NaN is an error")),
        inspect.Parameter("skip_bad", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, "--skip-bad", help=DATA_OPTION_HELP["skip_bad"])),
        inspect.Parameter("allow_gaps", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, "--allow-gaps", help=DATA_OPTION_HELP["allow_gaps"])),
    ]
    names = [p.name for p in extra]
    sig = inspect.signature(fn, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "read"]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        given = {k: kwargs.pop(k, None) for k in names}
        read = {k: v for k, v in given.items() if v not in (None, False)}
        return fn(*args, read=read, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params}, **{p.name: p.annotation for p in extra}}
    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def data_notices_to_console():
    """Show :class:`~latentmed.data.DataNotice` warnings as one ``Note:`` line each (others as usual)."""
    from latentmed.data.notices import DataNotice

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataNotice):
            print_notice(str(message))
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def print_notice(message: str) -> None:
    """Print a data-layer notice (skipped file, resize, conversion) on one line."""
    console.print(f"Note: {message}", highlight=False, markup=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str):
    """A transient bar on the CLI console; yields ``advance(n, total)``, the library's ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    task = None

    def advance(n: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task(description, total=total)
        bar.advance(task, n)

    with bar:
        yield advance


def given_options(ctx: typer.Context, keys: dict[str, str]) -> dict:
    """``{config key: value}`` of the options in ``keys`` (``{parameter name: config key}``) that the user gave.

    An option left at its default is not given, whatever its value, so that the one merge rule of
    :func:`latentmed.config.merge_config` (explicit option > ``--set`` > ``--config`` YAML > defaults)
    lets a YAML value stand. Compared by name: typer may use its own copy of click's ``ParameterSource``.
    """
    out = {}
    for name, key in keys.items():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            out[key] = ctx.params[name]
    return out
