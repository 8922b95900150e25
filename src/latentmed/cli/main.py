"""The ``latentmed`` command line: a thin typer app; each command group lives in its own module.

Commands parse arguments and delegate to the library. Every error ends in one line ``Error: ...``
and a non-zero exit (:func:`latentmed.cli._common.error_message`: 2 for known errors and bad
options, 1 for anything unexpected, 128 + N when training stops on signal N, 130 on Ctrl-C);
``--debug`` shows the traceback. The thread policy (:mod:`latentmed.runtime`, ``--threads``) is applied
before any command loads torch and printed once when the command starts.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

import typer

from latentmed.cli._common import _state, error_message, is_cli_exception
from latentmed.errors import LatentmedError
from latentmed.runtime import configure_threads, prepare_environment

prepare_environment()  # passive OpenMP wait, before any command module can load torch

app = typer.Typer(
    name="latentmed",
    help="Diffusion latent spaces of medical images: train, encode, grade, explain, refine, synthesise.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (sub-command name, module under latentmed.cli). Each module defines ``app = typer.Typer(...)``.
GROUPS = [
    ("phantom", "phantom"),
    ("dae", "dae"),
    ("grade", "grade"),
    ("evaluate", "evaluate"),
    ("shape", "shape"),
    ("ldm", "ldm"),
    ("data", "data"),
    ("segment", "segment"),
    ("counterfactual", "counterfactual"),
]
# Top-level commands: (module, function names) registered with ``app.command()``.
COMMANDS = [
    ("info", ["info", "presets"]),
    ("demo", ["demo"]),
]


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
          threads: Optional[str] = typer.Option(None, "--threads", metavar="N",
                                                help="Threads for torch (default: the CPUs this process may use; "
                                                     "also LATENTMED_THREADS).")) -> None:
    _state["debug"] = debug
    try:
        line = configure_threads(threads)
    except LatentmedError as exc:
        raise typer.BadParameter(str(exc)) from None
    _state["threads_line"] = line  # printed once, when the command starts (not for --help)


def _register() -> None:
    for name, module in GROUPS:
        mod = importlib.import_module(f"latentmed.cli.{module}")
        app.add_typer(mod.app, name=name)
    for module, functions in COMMANDS:
        mod = importlib.import_module(f"latentmed.cli.{module}")
        for fn in functions:
            app.command(name=fn.replace("_", "-"))(getattr(mod, fn))


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``latentmed`` script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Aborted.", err=True)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: the help page, as asked
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if is_cli_exception(exc):  # bad or missing option: one line, not a usage page
            message = exc.format_message().rstrip(".") + "."
            if getattr(exc, "ctx", None) is not None:
                message += f" See `{exc.ctx.command_path} --help`."
            code = exc.exit_code
        elif debug:
            raise
        else:
            message, code = error_message(exc)
        typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
        raise SystemExit(code) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
