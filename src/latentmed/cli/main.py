"""The ``latentmed`` command line: a thin typer app; each command group lives in its own module.

Commands parse arguments and delegate to the library. Known errors (:class:`LatentmedError`)
print one line saying what is wrong and how to fix it; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from latentmed.errors import LatentmedError

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
]
# Top-level commands: (module, function names) registered with ``app.command()``.
COMMANDS = [
    ("info", ["info", "presets"]),
    ("demo", ["demo"]),
    ("counterfactual", ["counterfactual"]),
]

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


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
        app(args=argv, standalone_mode=True)
    except LatentmedError as exc:
        if debug:
            raise
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
