"""Tables, figures and overlays of :class:`~latentmed.segment.run.SweepResult` and
:class:`~latentmed.segment.run.FixedKResult` (computing and reporting are separate, as in scikit-learn).

Each table names its scores: "union Dice" (ours: the best union of segments per structure, which
rewards many segments), "1:1 Dice" (ours: one segment per structure at a fixed K), "candidate
Dice" (DiNO-Diffusion: the best single segment per structure) and "pixel acc." / "mIoU"
(DiffSeg: Hungarian matching over background and structures).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from latentmed.io import write_json, write_text

SWEEP_COLUMNS = "union Dice (ours) | candidate Dice (DiNO-Diffusion) | pixel acc. (DiffSeg) | mIoU (DiffSeg) | segments"


def _fmt(v: float, digits: int = 3) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _score_cells(summary: dict, names: list[str]) -> list[str]:
    union = [summary["union_dice"][n] for n in names]
    cand = [summary["candidate_dice"][n] for n in names]
    return [" / ".join(_fmt(v) for v in union) + f" (mean {_fmt(np.nanmean(union))})",
            " / ".join(_fmt(v) for v in cand) + f" (mean {_fmt(np.nanmean(cand))})",
            _fmt(summary["pixel_accuracy"]), _fmt(summary["miou"]), _fmt(summary["segments_mean"], 1)]


def sweep_table(d: dict) -> str:
    """Markdown: the configured and the best setting beside the KMeans baselines (``d = result.to_dict()``)."""
    names = d["structures"]
    lines = [f"Per-structure scores ({' / '.join(names)}), {d['images']} images.", "",
             f"| method | {SWEEP_COLUMNS} |", "|---" * 6 + "|"]
    for key in ("configured", "best"):
        s = d[key]
        lines.append(f"| DiffSeg ({key}: t={s['timestep']}, tau={s['threshold']:g}) | "
                     + " | ".join(_score_cells(s, names)) + " |")
    for label, s in d["baselines"].items():
        lines.append(f"| {label} | " + " | ".join(_score_cells(s, names)) + " |")
    return "\n".join(lines) + "\n"


def write_sweep(result, out: str | os.PathLike) -> Path:
    """``sweep.json``, ``table.md``, ``dice_vs_threshold.png`` (at the configured timestep),
    ``dice_vs_timestep.png`` (at the configured threshold), ``overlays/<id>.png`` =
    [image | DiffSeg configured | DiffSeg best | KMeans | truth]."""
    from latentmed.viz.segment import plot_dice_curves, save_overlay_panel

    out = Path(out)
    d = result.to_dict()
    write_json(out / "sweep.json", d)
    write_text(out / "table.md", sweep_table(d))
    mean, names = result.mean_union(), result.structures
    (ti0, hi0), (bt, bh) = result.configured, result.best
    base = d["baselines"][next(iter(d["baselines"]))]["union_dice"]
    segments = np.array(d["segments_mean"])
    plot_dice_curves(result.thresholds, {n: mean[ti0, :, k] for k, n in enumerate(names)}, out / "dice_vs_threshold.png",
                     xlabel="merge threshold (symmetric KL)", logx=True, title=f"t = {result.timesteps[ti0]}",
                     baselines=base, segments=segments[ti0])
    plot_dice_curves(result.timesteps, {n: mean[:, hi0, k] for k, n in enumerate(names)}, out / "dice_vs_timestep.png",
                     xlabel="timestep t (of 1000)", title=f"threshold = {result.thresholds[hi0]:g}",
                     baselines=base, segments=segments[:, hi0])
    for i, key in enumerate(result.keys[:len(result.images)]):
        save_overlay_panel(result.images[i], [result.kept[ti0, hi0, i], result.kept[bt, bh, i],
                                              result.kmeans_maps[i], result.masks[i]], out / "overlays" / f"{key}.png")
    return out


def fixed_k_table(d: dict) -> str:
    """Markdown of :meth:`FixedKResult.to_dict`: our 1:1 Dice per structure, then the papers' scores."""
    names = d["structures"]
    lines = [f"K = {d['k']} segments (the 'merge's own K' row: as many as the merge gives), {d['images']} images, "
             f"t = {d['config']['timestep']}. 1:1 Dice is ours; candidate Dice is DiNO-Diffusion's; pixel "
             "accuracy and mIoU (Hungarian) are DiffSeg's.", "",
             "| method | " + " | ".join(f"{n} (1:1)" for n in names)
             + " | mean 1:1 | candidate Dice | pixel acc. | mIoU | lungs L/R separated | segments | p vs row 1 |",
             "|---" * (len(names) + 8) + "|"]
    for label, r in d["rows"].items():
        cand = np.nanmean([r["candidate_dice"][n] for n in names])
        lines.append(f"| {label} | " + " | ".join(_fmt(r["dice"][n]) for n in names)
                     + f" | {_fmt(r['mean'])} | {_fmt(cand)} | {_fmt(r['pixel_accuracy'])} | {_fmt(r['miou'])} | "
                     + f"{_fmt(r.get('lr_separated', float('nan')), 2)} | {_fmt(r['segments_mean'], 1)} | "
                     + (f"{r['wilcoxon_p']:.2g}" if "wilcoxon_p" in r else "") + " |")
    ent = {k: r["attention_entropy"] for k, r in d["rows"].items() if "attention_entropy" in r}
    lines += ["", "Attention entropy / ln(bins) (1 = uniform): " + ", ".join(f"{k}: {v:.4f}" for k, v in ent.items())]
    return "\n".join(lines) + "\n"


def write_fixed_k(result, out: str | os.PathLike) -> Path:
    """``fixed_k.json`` and ``table.md``."""
    out = Path(out)
    d = result.to_dict()
    write_json(out / "fixed_k.json", d)
    write_text(out / "table.md", fixed_k_table(d))
    return out
