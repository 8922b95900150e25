"""Folder-level zero-shot segmentation, evaluation against truth masks, and the parameter sweep.

A RUN is either a DiNO-Diffusion run (``RUN/ldm.json`` from ``latentmed ldm train``: the UNet is
conditioned on the image's own DINO tokens) or a plain diffusers folder (``RUN/unet/`` with an
optional ``RUN/vae/`` and ``RUN/scheduler/``; it is conditioned on the null context).

The null ("vanilla", empty) context is all-zero tokens, the condition classifier-free guidance
trained the model on (``cond_dropout``), with the conditioner's token count. The UNet's key/value
projections have no bias (diffusers' default ``attention_bias=False``), so zero tokens give zero
keys and values: cross-attention then adds only its output bias, exactly what an empty context
(nothing to attend to) adds; the token count does not matter (tested).
:func:`score_fixed_k` scores DiffSeg at a fixed number of segments with one-to-one matching
against KMeans (intensity; intensity + x, y), an image-blind grid and DiffSeg on an untrained UNet.

Images are read with :func:`latentmed.data.open_images` and the latent diffusion's per-image
scaling (a manifest ``labels.csv`` with an ``image`` column, a folder of images, shards, ...); truth masks are PNG label maps named after the image ids
(``DIR/masks/<id>.png`` or ``DIR/<id>.png``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.io import write_json, write_text
from latentmed.segment.diffseg import DiffSeg, DiffSegConfig, check_timestep, kmeans_intensity_baseline, segment_with
from latentmed.segment.match import check_truth_labels, match_one_to_one, match_structures

CHEST2D_STRUCTURES = {1: "left_lung", 2: "right_lung", 3: "heart"}


@dataclass
class Segmenter:
    """A :class:`DiffSeg` plus how to condition it on images."""

    diffseg: DiffSeg
    condition: Callable[[torch.Tensor], torch.Tensor] | None = None  # None: the null context
    source: str = ""
    null_tokens: int = 1

    def __post_init__(self):
        if self.condition is None:
            self.condition = self.null_condition

    def null_condition(self, x: torch.Tensor) -> torch.Tensor:
        """The empty ("vanilla") context: ``[B, null_tokens, D]`` zeros (see the module docstring)."""
        return torch.zeros(x.shape[0], self.null_tokens, self.diffseg.unet.config.cross_attention_dim)

    def untrained(self, seed: int = 0) -> "Segmenter":
        """The same pipeline on a freshly initialised UNet of the same architecture (a reference row)."""
        from dataclasses import replace as dc_replace

        torch.manual_seed(seed)
        unet = type(self.diffseg.unet).from_config(self.diffseg.unet.config).eval()
        ds = dc_replace(self.diffseg, unet=unet)
        return Segmenter(ds, self.condition, source=f"untrained(seed={seed}):{self.source}",
                         null_tokens=self.null_tokens)


def load_segmenter(run: str | os.PathLike, config: DiffSegConfig | None = None) -> Segmenter:
    """Load a DiNO-Diffusion run or a diffusers ``unet/`` (+ ``vae/``) folder as a :class:`Segmenter`."""
    run = Path(run)
    config = config or DiffSegConfig()
    if (run / "ldm.json").is_file():
        from latentmed.ldm.model import load_ldm, vae_downsample_factor

        ldm = load_ldm(run)
        ds = DiffSeg(ldm.unet, schedule=ldm.schedule, encode=ldm.encode_images, config=config,
                     latent_factor=vae_downsample_factor(ldm.vae))
        return Segmenter(ds, ldm.condition, source=f"ldm:{run}", null_tokens=ldm.conditioner.num_tokens)
    if (run / "unet" / "config.json").is_file():
        from diffusers import AutoencoderKL, UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(str(run / "unet")).eval()
        vae = AutoencoderKL.from_pretrained(str(run / "vae")).eval() if (run / "vae" / "config.json").is_file() else None
        schedule = _diffusers_schedule(run / "scheduler", config.num_train_timesteps)
        ds = DiffSeg.from_vae(unet, vae, schedule=schedule, config=config)
        return Segmenter(ds, None, source=f"diffusers:{run}")
    raise LatentmedError(f"{run}: expected a DiNO-Diffusion run (ldm.json, from `latentmed ldm train`) or a diffusers "
                         "folder with unet/config.json (and optionally vae/).")


def _diffusers_schedule(folder: Path, num_train_timesteps: int):
    """The noise schedule of a diffusers ``scheduler/`` folder (any beta schedule), or DDPM's linear one."""
    from latentmed.diffusion import LinearBetaSchedule

    cfg_path = folder / "scheduler_config.json"
    if not cfg_path.is_file():
        return LinearBetaSchedule(num_steps=num_train_timesteps)
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_pretrained(str(folder))
    table = LinearBetaSchedule(num_steps=len(sched.alphas_cumprod))
    table.name = f"diffusers-{sched.config.beta_schedule}"
    table._log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), sched.alphas_cumprod.double().log()])
    return table


# ---------------------------------------------------------------------------- data
def load_images(data: str | os.PathLike, size: int | None = None, limit: int | None = None
                ) -> tuple[list[str], torch.Tensor]:
    """Ids and images ``[N, 1, H, W]`` in [-1, 1] from a folder (native size unless ``size``)."""
    from latentmed.data import open_images

    ds = open_images(data, size=size, channels=1, value_range="image")  # as the latent diffusion reads them
    n = len(ds) if limit is None else min(limit, len(ds))
    return ds.ids[:n], ds.stack(range(n))


def load_truth(truth: str | os.PathLike, keys: Sequence[str], shape: tuple[int, int],
               structures: Mapping[int, str], resize: bool = False) -> np.ndarray:
    """Truth label maps ``[N, H, W]`` for ``keys`` from ``DIR/masks/<id>.png`` or ``DIR/<id>.png``.

    ``resize=True`` (images were resized with ``size``) resizes and centre-crops the masks to
    ``shape`` by nearest neighbour, as the images were; otherwise sizes must match.
    """
    from latentmed.data import read_image
    from latentmed.data.transforms import resize_center_crop

    root = Path(truth)
    out = []
    for key in keys:
        candidates = [root / "masks" / f"{key}.png", root / f"{key}.png"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise LatentmedError(f"no truth mask for image {key!r}: looked for {candidates[0]} and {candidates[1]}.")
        mask = read_image(path)
        if mask.ndim != 2:
            raise LatentmedError(f"{path}: truth mask has shape {mask.shape}; expected a one-channel label map.")
        if resize and mask.shape != tuple(shape):
            mask = resize_center_crop(torch.from_numpy(mask[None].astype(np.float32)), shape, mode="nearest")[0]
            mask = mask.numpy().astype(np.int64)
        if mask.shape != tuple(shape):
            raise LatentmedError(f"{path}: truth mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                                 f"{shape[0]}x{shape[1]}; masks must have the image size.")
        check_truth_labels(mask, structures, where=str(path))
        out.append(mask.astype(np.int64))
    return np.stack(out)


def _batches(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


ProgressFn = Callable[[int, int], None]
"""A progress callback ``progress(advance, total)``: ``advance`` more items are done out of ``total``."""


# ---------------------------------------------------------------------------- zero-shot
def zero_shot(segmenter: Segmenter, data: str | os.PathLike, out: str | os.PathLike, *, size: int | None = None,
              limit: int | None = None, progress: ProgressFn | None = None) -> dict:
    """Segment every image of ``data``; write ``masks/<id>.png`` (uint8 proposal ids), ``overlays/<id>.png``.

    ``progress(advance, total)`` is called after each batch (the CLI draws a bar with it).
    """
    from latentmed.viz.grid import save_image
    from latentmed.viz.segment import save_overlay_panel

    out = Path(out)
    keys, images = load_images(data, size, limit)
    cfg = segmenter.diffseg.config
    counts = []
    for sl in _batches(len(keys), cfg.batch_size):
        x = images[sl]
        results = segmenter.diffseg.segment(x, segmenter.condition(x))
        for key, img, res in zip(keys[sl], x, results):
            labels = res.labels.numpy()
            if labels.max() > 255:
                raise LatentmedError(f"{len(res.proposals)} proposals do not fit a uint8 mask; raise --threshold.")
            save_image(labels.astype(np.uint8), out / "masks" / f"{key}.png")
            save_overlay_panel(img, [labels], out / "overlays" / f"{key}.png")
            counts.append(int(len(np.unique(labels))))
        if progress is not None:
            progress(len(x), len(keys))
    summary = {"source": segmenter.source, "config": asdict(cfg), "images": len(keys),
               "segments_mean": float(np.mean(counts)), "segments": dict(zip(keys, counts))}
    write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------- sweep
def sweep(segmenter: Segmenter, data: str | os.PathLike, truth: str | os.PathLike, out: str | os.PathLike, *,
          timesteps: Sequence[int] = (50, 100, 200, 300, 400, 500, 700, 900),
          thresholds: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
          structures: Mapping[int, str] = CHEST2D_STRUCTURES, baseline_k: int = 4, size: int | None = None,
          limit: int | None = None, overlays: int = 4, progress: ProgressFn | None = None) -> dict:
    """Dice per structure over the ``timesteps x thresholds`` grid (DiNO-Diffusion Figs 11-12) + KMeans baseline.

    Writes ``sweep.json`` (all numbers), ``table.csv`` and ``table.md`` (best setting and the
    configured one vs the baselines, the paper's Table 2 layout), ``dice_vs_threshold.png``
    (at the configured timestep), ``dice_vs_timestep.png`` (at the configured threshold) and a few
    overlays ``overlays/<id>.png`` = [image | DiffSeg configured | DiffSeg best | KMeans | truth].
    ``progress(advance, total)`` is called after each batch and timestep.
    """
    from latentmed.viz.segment import plot_dice_curves, save_overlay_panel

    out = Path(out)
    cfg = segmenter.diffseg.config
    tau0 = float(np.atleast_1d(cfg.threshold)[0])  # a per-iteration tuple is swept through its first value
    timesteps = sorted({int(t) for t in timesteps} | {cfg.timestep})
    thresholds = sorted({float(t) for t in thresholds} | {tau0})
    for t in timesteps:
        check_timestep(t, cfg.num_train_timesteps)
    keys, images = load_images(data, size, limit)
    masks = load_truth(truth, keys, tuple(images.shape[-2:]), structures, resize=size is not None)
    names = list(structures.values())
    dice = np.full((len(timesteps), len(thresholds), len(keys), len(names)), np.nan)
    nseg = np.zeros((len(timesteps), len(thresholds), len(keys)))
    kept: dict[tuple[int, int, int], np.ndarray] = {}  # label maps of the first `overlays` images
    for sl in _batches(len(keys), cfg.batch_size):
        x = images[sl]
        cond = segmenter.condition(x)
        for ti, t in enumerate(timesteps):
            attn = segmenter.diffseg.attention(x, cond, t)
            for j, a in enumerate(attn):
                i = sl.start + j
                for hi, tau in enumerate(thresholds):
                    res = segment_with(a, tuple(x.shape[-2:]), cfg, threshold=tau)
                    labels = res.labels.numpy()
                    nseg[ti, hi, i] = len(np.unique(labels))
                    m = match_structures(labels, masks[i], structures)
                    dice[ti, hi, i] = [m[n].dice for n in names]
                    if i < overlays:
                        kept[ti, hi, i] = labels
            if progress is not None:
                progress(len(x), len(timesteps) * len(keys))
    # baselines: KMeans on intensities with k fixed, and with k = DiffSeg's per-image segment count
    # at the configured and at the best setting (the union matching favours more segments)
    ti0, hi0 = timesteps.index(cfg.timestep), thresholds.index(tau0)
    mean = np.nanmean(dice, axis=2)  # [T, tau, structures]
    overall = mean.mean(-1)
    bt, bh = np.unravel_index(int(np.nanargmax(overall)), overall.shape)
    base, base_segments = {}, {}
    km_fixed = kmeans_intensity_baseline(images, baseline_k, seed=cfg.seed)
    for label, ks in ((f"kmeans_k{baseline_k}", [baseline_k] * len(keys)),
                      ("kmeans_k_as_configured", nseg[ti0, hi0].astype(int).tolist()),
                      ("kmeans_k_as_best", nseg[bt, bh].astype(int).tolist())):
        maps = km_fixed if label == f"kmeans_k{baseline_k}" else kmeans_intensity_baseline(images, ks, seed=cfg.seed)
        scores = np.array([[match_structures(m.numpy(), masks[i], structures)[n].dice for n in names]
                           for i, m in enumerate(maps)])
        base[label] = dict(zip(names, np.nanmean(scores, 0).tolist()))
        base_segments[label] = float(np.mean([len(np.unique(m.numpy())) for m in maps]))
    result = {
        "source": segmenter.source, "config": asdict(cfg), "images": len(keys), "structures": names,
        "timesteps": timesteps, "thresholds": thresholds,
        "dice_mean": mean.tolist(),  # [timestep][threshold][structure]
        "dice_std": np.nanstd(dice, axis=2).tolist(),
        "segments_mean": nseg.mean(-1).tolist(),
        "configured": {"timestep": cfg.timestep, "threshold": thresholds[hi0],
                       "dice": dict(zip(names, mean[ti0, hi0].tolist())), "segments_mean": float(nseg[ti0, hi0].mean())},
        "best": {"timestep": timesteps[bt], "threshold": thresholds[bh],
                 "dice": dict(zip(names, mean[bt, bh].tolist())), "segments_mean": float(nseg[bt, bh].mean())},
        "baselines": base, "baseline_segments": base_segments,
    }
    write_json(out / "sweep.json", result)
    _write_tables(out, result)
    plot_dice_curves(thresholds, {n: mean[ti0, :, k] for k, n in enumerate(names)}, out / "dice_vs_threshold.png",
                     xlabel="merge threshold (symmetric KL)", logx=True, title=f"t = {cfg.timestep}",
                     baselines=base[f"kmeans_k{baseline_k}"], segments=nseg[ti0].mean(-1))
    plot_dice_curves(timesteps, {n: mean[:, hi0, k] for k, n in enumerate(names)}, out / "dice_vs_timestep.png",
                     xlabel="timestep t (of 1000)", title=f"threshold = {thresholds[hi0]:g}",
                     baselines=base[f"kmeans_k{baseline_k}"], segments=nseg[:, hi0].mean(-1))
    for i, key in enumerate(keys[:overlays]):
        save_overlay_panel(images[i], [kept[ti0, hi0, i], kept[bt, bh, i], km_fixed[i].numpy(), masks[i]],
                           out / "overlays" / f"{key}.png")
    return result


def _write_tables(out: Path, r: dict) -> None:
    names = r["structures"]
    rows = [("DiffSeg (configured: t=%d, tau=%g)" % (r["configured"]["timestep"], r["configured"]["threshold"]),
             r["configured"]["dice"], r["configured"]["segments_mean"]),
            ("DiffSeg (best: t=%d, tau=%g)" % (r["best"]["timestep"], r["best"]["threshold"]),
             r["best"]["dice"], r["best"]["segments_mean"])]
    rows += [(k, v, r["baseline_segments"][k]) for k, v in r["baselines"].items()]
    csv = ["method," + ",".join(names) + ",mean,segments"]
    md = ["| method | " + " | ".join(names) + " | mean | segments |", "|---" * (len(names) + 3) + "|"]
    for name, d, seg in rows:
        vals = [d[n] for n in names]
        csv.append(f"\"{name}\"," + ",".join(f"{v:.4f}" for v in vals) + f",{np.nanmean(vals):.4f},{seg:.2f}")
        md.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.nanmean(vals):.3f} | "
                  + ("" if math.isnan(seg) else f"{seg:.1f}") + " |")
    write_text(out / "table.csv", "\n".join(csv) + "\n")
    write_text(out / "table.md", "\n".join(md) + "\n")


# ---------------------------------------------------------------------------- fixed-K scoring
def _diffseg_maps(segmenter: Segmenter, images: torch.Tensor, condition: Callable, k: int
                  ) -> tuple[list[np.ndarray], float]:
    """Label maps at ``k`` segments and the mean normalised entropy of the attention rows
    (entropy / ln(bins): 1 = uniform attention, which carries no layout)."""
    from dataclasses import replace as dc_replace

    cfg = dc_replace(segmenter.diffseg.config, num_segments=k)
    out, ent = [], []
    for sl in _batches(len(images), cfg.batch_size):
        x = images[sl]
        for a in segmenter.diffseg.attention(x, condition(x), cfg.timestep, cfg.weighting):
            rows = a.flatten(1).double().clamp_min(1e-30)
            ent.append(float((-(rows * rows.log()).sum(1)).mean() / math.log(rows.shape[1])))
            out.append(segment_with(a, tuple(x.shape[-2:]), cfg).labels.numpy())
    return out, float(np.mean(ent))


def score_fixed_k(segmenter: Segmenter, data: str | os.PathLike, truth: str | os.PathLike, out: str | os.PathLike,
                  *, k: int = 4, structures: Mapping[int, str] = CHEST2D_STRUCTURES, size: int | None = None,
                  limit: int | None = None, untrained_seed: int = 0, xy_weight: float = 1.0) -> dict:
    """Dice per structure at exactly ``k`` segments with one-to-one (Hungarian) matching, all rows on the same images.

    Rows: DiffSeg conditioned on the image's tokens; DiffSeg with the empty (null) context ("vanilla");
    DiffSeg on an untrained UNet of the same architecture (own tokens); KMeans on intensity; KMeans on
    intensity + x, y; the image-blind grid. ``lr_separated`` is the fraction of images where both lungs
    reach Dice > 0.5 (one proposal each), which intensity alone cannot do. ``wilcoxon_p`` compares each
    row's per-image mean Dice with the first row (two-sided, paired); DiffSeg rows also carry the mean
    normalised entropy of their attention maps. Writes ``fixed_k.json`` and ``table.md``.
    """
    from scipy.stats import wilcoxon

    from latentmed.segment.baselines import grid_baseline, grid_shape, kmeans_baseline

    out = Path(out)
    keys, images = load_images(data, size, limit)
    masks = load_truth(truth, keys, tuple(images.shape[-2:]), structures, resize=size is not None)
    names = list(structures.values())
    cfg = segmenter.diffseg.config
    untrained = segmenter.untrained(untrained_seed)
    entropy: dict[str, float] = {}
    rows: dict[str, list[np.ndarray]] = {}
    for label, seg, cond in (("DiffSeg (own tokens)", segmenter, segmenter.condition),
                             ("DiffSeg (empty context, vanilla)", segmenter, segmenter.null_condition),
                             ("DiffSeg (untrained UNet)", untrained, untrained.condition)):
        rows[label], entropy[label] = _diffseg_maps(seg, images, cond, k)
    rows.update({
        "KMeans intensity": [m.numpy() for m in kmeans_baseline(images, k, seed=cfg.seed)],
        "KMeans intensity + x,y": [m.numpy() for m in kmeans_baseline(images, k, seed=cfg.seed,
                                                                       features="intensity_xy", xy_weight=xy_weight)],
        "grid %dx%d (image-blind)" % grid_shape(k): [grid_baseline(tuple(images.shape[-2:]), k).numpy()] * len(keys),
    })
    result = {"source": segmenter.source, "config": asdict(cfg), "k": k, "images": len(keys), "structures": names,
              "rows": {}}
    first = None
    lungs = [n for n in names if "lung" in n]
    for label, maps in rows.items():
        d = np.array([[match_one_to_one(m, masks[i], structures)[n].dice for n in names] for i, m in enumerate(maps)])
        per_image = np.nanmean(d, 1)
        row = {"dice": dict(zip(names, np.nanmean(d, 0).tolist())), "mean": float(np.nanmean(per_image)),
               "segments_mean": float(np.mean([len(np.unique(m)) for m in maps])), "per_image": per_image.tolist()}
        if label in entropy:
            row["attention_entropy"] = entropy[label]
        if len(lungs) == 2:
            lung_dice = np.nan_to_num(d[:, [names.index(n) for n in lungs]], nan=0)
            row["lr_separated"] = float(np.mean(lung_dice.min(1) > 0.5))
        if first is None:
            first = per_image
        else:
            diff = per_image - first
            row["wilcoxon_p"] = float(wilcoxon(first, per_image).pvalue) if np.any(diff != 0) else 1.0
        result["rows"][label] = row
    write_json(out / "fixed_k.json", result)
    md = [f"K = {k} segments, one-to-one (Hungarian) matching, {len(keys)} images, t = {cfg.timestep}", "",
          "| method | " + " | ".join(names) + " | mean | lungs L/R separated | segments | p vs row 1 |",
          "|---" * (len(names) + 5) + "|"]
    for label, r in result["rows"].items():
        md.append(f"| {label} | " + " | ".join(f"{r['dice'][n]:.3f}" for n in names)
                  + f" | {r['mean']:.3f} | {r.get('lr_separated', float('nan')):.2f} | {r['segments_mean']:.1f} | "
                  + (f"{r['wilcoxon_p']:.2g}" if "wilcoxon_p" in r else "") + " |")
    md += ["", "Attention entropy / ln(bins) (1 = uniform): " +
           ", ".join(f"{k_}: {v:.4f}" for k_, v in entropy.items())]
    write_text(out / "table.md", "\n".join(md) + "\n")
    return result
