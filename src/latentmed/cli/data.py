"""`latentmed data` commands."""

from __future__ import annotations

from pathlib import Path

import typer

from latentmed.cli._common import console, friendly_errors, progress_bar

app = typer.Typer(help="Data utilities (shards).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Data utilities (keeps `shard` a sub-command even while it is the only one)."""


@app.command("shard")
@friendly_errors
def shard(
    src: Path = typer.Argument(..., help="Image folder (a labels.csv with an 'image' column, or image files)."),
    out: Path = typer.Option(..., "--out", help="Output folder for shard-000000.tar, ..."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Samples per shard.", min=1),
) -> None:
    """Pack images (+ their labels row as JSON) into WebDataset-style tar shards; they read back with the same ids.

    Example: latentmed data shard data/chest --out data/chest-shards --shard-size 5000
    """
    from latentmed.data import write_shards

    with progress_bar("shards") as advance:
        paths = write_shards(src, out, shard_size, progress=advance)
    console.print(f"wrote {len(paths)} shard(s) to {out}")
