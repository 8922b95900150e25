"""Results tables as Markdown + JSON (written atomically), in the layout of the two-phase paper's Table 4."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from latentmed.io import write_json, write_text

#: Display names and number formats of the metric columns (higher/lower is better in the header).
METRIC_FORMATS: dict[str, tuple[str, str]] = {
    "psnr": ("PSNR (dB) ↑", "{:.2f}"),
    "ssim": ("SSIM ↑", "{:.4f}"),
    "lpips": ("LPIPS ↓", "{:.4f}"),
    "fid": ("FID ↓", "{:.2f}"),
    "fid_z": ("FID z_sem ↓", "{:.3f}"),
    "ppl": ("PPL ↓", "{:.4g}"),
    "ppl_std": ("PPL std", "{:.4g}"),
    "dice": ("Dice ↑", "{:.4f}"),
    "volumetric_similarity": ("VS ↑", "{:.4f}"),
    "sensitivity": ("SEN ↑", "{:.4f}"),
    "specificity": ("SPEC ↑", "{:.4f}"),
    "nmi": ("NMI ↑", "{:.4f}"),
    "cohen_kappa": ("kappa ↑", "{:.4f}"),
    "hausdorff95": ("HD95 ↓", "{:.2f}"),
}


def format_value(key: str, value: Any) -> str:
    """A table cell: metrics with their usual precision, ``nan``/``inf`` spelled out, others as str."""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf"
        metric = key if key in METRIC_FORMATS else key.split()[-1]  # "stochastic@20 psnr" -> psnr
        return METRIC_FORMATS.get(metric, ("", "{:.4g}"))[1].format(value)
    return str(value)


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``records`` (dicts); metric columns get their display names."""
    if not records:
        return "_no results_\n"
    if columns is None:
        columns = []
        for rec in records:
            columns += [k for k in rec if k not in columns]
    header = [METRIC_FORMATS.get(c, (c, ""))[0] for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for rec in records:
        lines.append("| " + " | ".join(format_value(c, rec.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | os.PathLike, name: str, title: str, records: Sequence[dict[str, Any]], *,
                 columns: Sequence[str] | None = None, meta: dict[str, Any] | None = None,
                 notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``out_dir/<name>.md`` (title, settings, table, notes) and ``out_dir/<name>.json``.

    Returns ``{"markdown": path, "json": path}``.
    """
    out_dir = Path(out_dir)
    meta = dict(meta or {})
    parts = [f"# {title}\n"]
    if meta:
        parts.append("\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n")
    parts.append(markdown_table(records, columns))
    if notes:
        parts.append("\n".join(notes) + "\n")
    md = write_text(out_dir / f"{name}.md", "\n".join(parts))
    js = write_json(out_dir / f"{name}.json", {"title": title, "meta": meta, "rows": list(records)})
    return {"markdown": md, "json": js}
