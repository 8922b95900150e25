"""Labels from a CSV: an ``id`` column plus label columns (binary, ordinal grade, or empty = missing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from latentmed.errors import LatentmedError


def _strip_suffix(name: str) -> str:
    from latentmed.data.dataset import IMAGE_SUFFIXES

    low = name.lower()
    for suffix in IMAGE_SUFFIXES + (".nii.gz", ".nii", ".dcm", ".npy"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_labels(csv_path: str | os.PathLike, ids: Sequence[str] | None = None, columns: Sequence[str] | None = None,
                *, id_column: str = "id", strict: bool = True):
    """Read a labels CSV into a pandas DataFrame indexed by image id (as strings).

    Label columns that are numeric become floats (empty cells are NaN: unlabelled images are
    fine); other columns stay strings. With ``ids`` (the image ids), ids written with a file
    suffix (``a.png``) match the image ``a``; with ``strict`` every CSV row must match an image,
    otherwise the error says how many do not and shows a few. Images without a row get NaN.
    """
    import pandas as pd

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
            raise LatentmedError(f"{path}: label column(s) {missing} not found; available: {list(df.columns)}.")
        df = df[list(columns)]
    for c in df.columns:
        converted = pd.to_numeric(df[c], errors="coerce")
        if converted.notna().sum() == df[c].notna().sum():  # fully numeric apart from missing cells
            df[c] = converted.astype(float)
    if ids is not None:
        id_set = set(map(str, ids))
        rename = {k: _strip_suffix(k) for k in df.index if k not in id_set and _strip_suffix(k) in id_set}
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


__all__ = ["read_labels", "align_labels"]
