"""`latentmed dae` commands."""

import typer

app = typer.Typer(help="dae commands.", no_args_is_help=True)
