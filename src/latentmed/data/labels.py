"""Labels from a CSV: an ``id`` column plus label columns (binary, ordinal grade, or empty = missing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from latentmed.data.formats import file_stem
from latentmed.errors import LatentmedError


def read_labels(csv_path: str | os.PathLike, ids: Sequence[str] | None = None, columns: Sequence[str] | None = None,
                *, id_column: str = "id", strict: bool = True):
    """Read a labels CSV (or take a DataFrame) into a pandas DataFrame indexed by image id (as strings).

    The one labels reader of the project. Label columns that are numeric become floats (empty
    cells are NaN: unlabelled images are fine); other columns stay strings. A DataFrame is taken
    with its ``id_column`` (or, without one, its index) as ids. With ``ids`` (the image ids), ids
    written with a file suffix (``a.png``) match the image ``a``; with ``strict`` every CSV row must
    match an image, otherwise the error says how many do not and shows a few.
    """
    import pandas as pd

    if isinstance(csv_path, pd.DataFrame):
        path, df = "labels", csv_path.copy()
        if id_column not in df.columns:
            df = df.rename_axis(id_column).reset_index()
        df[id_column] = df[id_column].astype(str)
    else:
        path = Path(csv_path)
        if not path.is_file():
            raise LatentmedError(f"labels file {path} not found (expected a CSV with an '{id_column}' column).")
        try:
            df = pd.read_csv(path, dtype={id_column: str}, keep_default_na=True)
        except Exception as exc:
            raise LatentmedError(f"{path}: cannot read CSV ({exc}).") from exc
    if id_column not in df.columns:
        guess = next((c for c in df.columns if str(c).strip().lower() in ("id", "ids", "image", "image_id", "name")),
                     df.columns[0] if len(df.columns) else id_column)
        raise LatentmedError(f"{path}: no '{id_column}' column; columns are {list(df.columns)}. Say which column "
                             f"holds the image ids: --id-column {guess} on the command line (Python: "
                             f"id_column={str(guess)!r}), or rename that column to '{id_column}'.")
    df[id_column] = df[id_column].astype(str).str.strip()
    dup = df[id_column][df[id_column].duplicated()].unique().tolist()
    if dup:
        raise LatentmedError(f"{path}: {len(dup)} duplicate id(s), e.g. {dup[:5]}; each image needs one row.")
    df = df.set_index(id_column)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise LatentmedError(f"{path}: no column(s) {', '.join(map(repr, missing))}; the CSV has "
                                 f"{', '.join(map(str, df.columns))}. Ask for columns of this file.")
        df = df[list(columns)]
    for c in df.columns:
        converted = pd.to_numeric(df[c], errors="coerce")
        if converted.notna().sum() == df[c].notna().sum():  # fully numeric apart from missing cells
            df[c] = converted.astype(float)
    if ids is not None:
        id_set = set(map(str, ids))
        rename = {k: file_stem(k) for k in df.index if k not in id_set and file_stem(k) in id_set}
        if rename:
            df = df.rename(index=rename)
        unmatched = [k for k in df.index if k not in id_set]
        if unmatched and (strict or len(unmatched) == len(df)):
            examples = sorted(id_set)[:3]
            raise LatentmedError(
                f"{path}: {len(unmatched)} of {len(df)} label ids do not match any image, e.g. {unmatched[:5]}; "
                f"image ids look like {examples}. Fix the '{id_column}' column"
                + (", or ignore the rows without an image (--allow-unmatched on the command line; Python: "
                   "strict=False)." if strict else "."))
        df = df.loc[[k for k in df.index if k in id_set]]
    df.index.name = "id"
    return df


def align_labels(labels, ids: Sequence[str]):
    """Reindex a labels DataFrame to ``ids`` (rows for images without labels are NaN)."""
    import pandas as pd

    if not isinstance(labels, pd.DataFrame):
        raise LatentmedError(f"labels must be a CSV path or a pandas DataFrame; got {type(labels).__name__}.")
    labels = labels.copy()
    labels.index = labels.index.astype(str)
    if not set(labels.index) & set(ids):
        raise LatentmedError(f"none of the {len(labels)} label ids match the {len(ids)} image ids "
                             f"(labels: {list(labels.index[:3])}, images: {list(ids[:3])}).")
    return labels.reindex(list(ids))


def match_ids(wanted: Sequence[str], available: Sequence[str]) -> dict[str, str]:
    """Map each id of ``wanted`` to one of ``available``: the same id, else the same file name.

    ``images/a`` and ``a`` match (latents encoded from a parent folder vs labels written for the
    image folder); ids without a match are left out of the result, so ``len(result)`` tells how many
    matched. The first of several ``available`` ids with one file name wins.
    """
    avail = set(available)
    by_name: dict[str, str] = {}
    for a in available:
        by_name.setdefault(Path(a).name, a)
    out = {}
    for w in wanted:
        if w in avail:
            out[w] = w
        elif Path(w).name in by_name:
            out[w] = by_name[Path(w).name]
    return out


def label_matrix(labels, columns: Sequence[str], where: str = "labels"):
    """``[N, L]`` int64 array of the binary (0/1) label ``columns`` of a labels DataFrame (one row per image).

    Errors name the column and the first value that is not 0 or 1 (a missing label included).
    """
    import numpy as np

    missing = [c for c in columns if c not in labels.columns]
    if missing:
        raise LatentmedError(f"{where}: no column(s) {', '.join(map(repr, missing))}; it has "
                             f"{', '.join(map(str, labels.columns))}. Ask for columns of this file.")
    out = np.zeros((len(labels), len(columns)), dtype=np.int64)
    for j, c in enumerate(columns):
        values = labels[c].to_numpy()
        ok = np.array([v in (0, 1) if isinstance(v, (int, float, np.number)) else False for v in values], bool)
        if not ok.all():
            k = int(np.argmin(ok))
            raise LatentmedError(f"{where}: column {c!r} must hold 0/1 labels, got {values[k]!r} "
                                 f"(row id {labels.index[k]}).")
        out[:, j] = values.astype(np.int64)
    return out


__all__ = ["read_labels", "align_labels", "match_ids", "label_matrix"]
