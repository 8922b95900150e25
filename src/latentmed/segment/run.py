"""Folder-level zero-shot segmentation, the timestep x threshold sweep and the fixed-K table, as result objects.

The segmenter comes from :func:`latentmed.segment.load.load_segmenter` (a DiNO-Diffusion run or a
diffusers / Stable Diffusion folder). Images are read with :func:`latentmed.data.open_images` at
the model's size and channel count unless ``size`` is given (resizing and grey -> RGB are
announced as data notices); truth masks are PNG label maps named after the image ids
(``DIR/masks/<id>.png`` or ``DIR/<id>.png``), resized like the images.

Scores (:mod:`.match`): ours (best union of segments per structure; one-to-one Dice at a fixed K)
beside the papers' (DiNO-Diffusion: best single candidate per structure; DiffSeg: Hungarian pixel
accuracy and mIoU). :func:`sweep` and :func:`score_fixed_k` return :class:`SweepResult` and
:class:`FixedKResult`; :mod:`.report` writes their tables and figures.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.segment.diffseg import check_timestep, kmeans_intensity_baseline, segment_with
from latentmed.segment.load import Segmenter
from latentmed.segment.match import (HungarianScores, best_candidate, check_truth_labels, match_one_to_one,
                                     match_structures)

CHEST2D_STRUCTURES = {1: "left_lung", 2: "right_lung", 3: "heart"}


# ---------------------------------------------------------------------------- data
def load_images(data: str | os.PathLike, size: int | None = None, limit: int | None = None, channels: int = 1
                ) -> tuple[list[str], torch.Tensor]:
    """Ids and images ``[N, channels, H, W]`` in [-1, 1] from a folder (native size unless ``size``)."""
    from latentmed.data import open_images

    ds = open_images(data, size=size, channels=channels, value_range="image")  # as the latent diffusion reads them
    n = len(ds) if limit is None else min(limit, len(ds))
    return ds.ids[:n], ds.stack(range(n))


def read_for(segmenter: Segmenter, data, size: int | None = None, limit: int | None = None
             ) -> tuple[list[str], torch.Tensor, int | None]:
    """Ids, images at the model's input (``size`` or the model's size; its channels) and the size used."""
    size = size or segmenter.image_size
    keys, images = load_images(data, size, limit, channels=segmenter.image_channels)
    return keys, images, size


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
    """Segment every image of ``data``; write ``masks/<id>.png`` (uint8 segment ids), ``overlays/<id>.png``.

    ``progress(advance, total)`` is called after each batch (the CLI draws a bar with it).
    """
    from latentmed.io import write_json
    from latentmed.viz.grid import save_image
    from latentmed.viz.segment import save_overlay_panel

    out = Path(out)
    keys, images, _ = read_for(segmenter, data, size, limit)
    cfg = segmenter.diffseg.config
    counts = []
    for sl in _batches(len(keys), cfg.batch_size):
        x = images[sl]
        results = segmenter.diffseg.segment(x, segmenter.condition(x))
        for key, img, res in zip(keys[sl], x, results):
            labels = res.labels.numpy()
            if labels.max() > 255:
                raise LatentmedError(f"{len(res.proposals)} segments do not fit a uint8 mask; raise --threshold.")
            save_image(labels.astype(np.uint8), out / "masks" / f"{key}.png")
            save_overlay_panel(img, [labels], out / "overlays" / f"{key}.png")
            counts.append(int(len(np.unique(labels))))
        if progress is not None:
            progress(len(x), len(keys))
    summary = {"source": segmenter.source, "config": asdict(cfg), "images": len(keys),
               "image_shape": list(images.shape[1:]), "segments_mean": float(np.mean(counts)),
               "segments": dict(zip(keys, counts))}
    write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------- scoring one setting
@dataclass
class Scores:
    """Scores of label maps against truth: ours and the papers' (see :mod:`.match`)."""

    union_dice: np.ndarray  # [N, S] best union of segments per structure (ours, rewards many segments)
    one_to_one_dice: np.ndarray  # [N, S] one segment per structure, one structure per segment (ours, fixed K)
    candidate_dice: np.ndarray  # [N, S] DiNO-Diffusion: best single candidate per structure
    hungarian: HungarianScores  # DiffSeg: pixel accuracy and mIoU over background + structures
    segments: np.ndarray  # [N] segments per image

    def summary(self, names: Sequence[str]) -> dict:
        """Means over images per structure (NaN-aware) and the DiffSeg scores."""
        def per(d):
            return dict(zip(names, np.nanmean(d, 0).tolist()))

        return {"union_dice": per(self.union_dice), "one_to_one_dice": per(self.one_to_one_dice),
                "candidate_dice": per(self.candidate_dice), **self.hungarian.to_dict(),
                "segments_mean": float(self.segments.mean())}


def score_maps(maps: Sequence[np.ndarray], masks: np.ndarray, structures: Mapping[int, str]) -> Scores:
    """All scores of label maps ``[H, W]`` against truth maps ``masks [N, H, W]``."""
    names = list(structures.values())

    def dice_of(fn):
        return np.array([[fn(m, masks[i], structures)[n].dice for n in names] for i, m in enumerate(maps)])

    classes = {0: "background", **structures}
    return Scores(dice_of(match_structures), dice_of(match_one_to_one), dice_of(best_candidate),
                  HungarianScores.of(maps, masks, classes), np.array([len(np.unique(m)) for m in maps], float))


# ---------------------------------------------------------------------------- sweep
@dataclass
class SweepSettings:
    """What :func:`sweep` tries: ``timesteps x thresholds`` (the configured ones are added), scored structures,
    the KMeans baseline's ``k``, input ``size`` / ``limit``, and how many images get overlays."""

    timesteps: Sequence[int] = (50, 100, 200, 300, 400, 500, 700, 900)
    thresholds: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    structures: Mapping[int, str] = field(default_factory=lambda: dict(CHEST2D_STRUCTURES))
    baseline_k: int = 4
    size: int | None = None
    limit: int | None = None
    overlays: int = 4


@dataclass
class SweepResult:
    """Scores over the ``timesteps x thresholds`` grid (``scores[ti][hi]``), KMeans baselines, overlay maps."""

    source: str
    config: dict
    keys: list[str]
    structures: list[str]
    timesteps: list[int]
    thresholds: list[float]
    scores: list[list[Scores]]
    configured: tuple[int, int]
    baselines: dict[str, Scores]
    images: torch.Tensor  # the first `overlays` images
    masks: np.ndarray  # their truth maps
    kept: dict[tuple[int, int, int], np.ndarray]  # (ti, hi, image) -> label map, first `overlays` images
    kmeans_maps: list[np.ndarray]

    def mean_union(self) -> np.ndarray:
        """``[T, tau, S]`` mean best-union Dice (our selection criterion for 'best')."""
        return np.array([[np.nanmean(sc.union_dice, 0) for sc in row] for row in self.scores])

    @property
    def best(self) -> tuple[int, int]:
        overall = self.mean_union().mean(-1)
        return tuple(int(i) for i in np.unravel_index(int(np.nanargmax(overall)), overall.shape))

    def to_dict(self) -> dict:
        names, (ti0, hi0), (bt, bh) = self.structures, self.configured, self.best

        def setting(ti, hi):
            return {"timestep": self.timesteps[ti], "threshold": self.thresholds[hi],
                    **self.scores[ti][hi].summary(names)}

        return {"source": self.source, "config": self.config, "images": len(self.keys), "structures": names,
                "timesteps": self.timesteps, "thresholds": self.thresholds,
                "dice_mean": self.mean_union().tolist(),  # [timestep][threshold][structure], best union
                "segments_mean": [[float(sc.segments.mean()) for sc in row] for row in self.scores],
                "configured": setting(ti0, hi0), "best": setting(bt, bh),
                "baselines": {k: v.summary(names) for k, v in self.baselines.items()}}


def sweep(segmenter: Segmenter, data: str | os.PathLike, truth: str | os.PathLike,
          settings: SweepSettings | None = None, progress: ProgressFn | None = None) -> SweepResult:
    """Score DiffSeg over ``timesteps x thresholds`` (DiNO-Diffusion Figs 11-12) and KMeans baselines.

    One UNet pass per image and timestep; every threshold merges the same attention. KMeans on
    intensities runs with ``baseline_k`` clusters and with DiffSeg's per-image segment count at the
    configured and at the best setting (the union matching favours more segments).
    ``progress(advance, total)`` is called after each batch and timestep.
    """
    st = settings or SweepSettings()
    cfg = segmenter.diffseg.config
    tau0 = float(np.atleast_1d(cfg.threshold)[0])  # a per-iteration tuple is swept through its first value
    timesteps = sorted({int(t) for t in st.timesteps} | {cfg.timestep})
    thresholds = sorted({float(t) for t in st.thresholds} | {tau0})
    for t in timesteps:
        check_timestep(t, cfg.num_train_timesteps)
    keys, images, size = read_for(segmenter, data, st.size, st.limit)
    masks = load_truth(truth, keys, tuple(images.shape[-2:]), st.structures, resize=size is not None)
    maps = _sweep_maps(segmenter, images, timesteps, thresholds, progress)
    scores = [[score_maps(maps[ti][hi], masks, st.structures) for hi in range(len(thresholds))]
              for ti in range(len(timesteps))]
    configured = (timesteps.index(cfg.timestep), thresholds.index(tau0))
    result = SweepResult(segmenter.source, asdict(cfg), keys, list(st.structures.values()), timesteps, thresholds,
                         scores, configured, {}, images[:st.overlays], masks[:st.overlays], {}, [])
    result.kept = {(ti, hi, i): maps[ti][hi][i] for ti, hi in {configured, result.best} for i in range(len(keys))
                   if i < st.overlays}
    km = [m.numpy() for m in kmeans_intensity_baseline(images, st.baseline_k, seed=cfg.seed)]
    result.kmeans_maps = km[:st.overlays]
    result.baselines[f"kmeans_k{st.baseline_k}"] = score_maps(km, masks, st.structures)
    for label, (ti, hi) in (("kmeans_k_as_configured", configured), ("kmeans_k_as_best", result.best)):
        ks = scores[ti][hi].segments.astype(int).tolist()
        km = [m.numpy() for m in kmeans_intensity_baseline(images, ks, seed=cfg.seed)]
        result.baselines[label] = score_maps(km, masks, st.structures)
    return result


def _sweep_maps(segmenter: Segmenter, images: torch.Tensor, timesteps: list[int], thresholds: list[float],
                progress: ProgressFn | None) -> list[list[list[np.ndarray]]]:
    """Label maps ``[timestep][threshold][image]``: one UNet pass per batch and timestep, every threshold merged."""
    cfg = segmenter.diffseg.config
    maps = [[[] for _ in thresholds] for _ in timesteps]
    for sl in _batches(len(images), cfg.batch_size):
        x = images[sl]
        cond = segmenter.condition(x)
        for ti, t in enumerate(timesteps):
            for a in segmenter.diffseg.attention(x, cond, t):
                for hi, tau in enumerate(thresholds):
                    maps[ti][hi].append(segment_with(a, tuple(x.shape[-2:]), cfg, threshold=tau).labels.numpy())
            if progress is not None:
                progress(len(x), len(timesteps) * len(images))
    return maps


# ---------------------------------------------------------------------------- fixed-K scoring
def _diffseg_maps(segmenter: Segmenter, images: torch.Tensor, condition: Callable, k: int | None
                  ) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Label maps at ``k`` segments and at the merge's own count (same attention), and the mean normalised
    entropy of the attention rows (entropy / ln(bins): 1 = uniform attention, which carries no layout)."""
    cfg = segmenter.diffseg.config
    at_k, native, ent = [], [], []
    for sl in _batches(len(images), cfg.batch_size):
        x = images[sl]
        for a in segmenter.diffseg.attention(x, condition(x), cfg.timestep, cfg.weighting):
            rows = a.flatten(1).double().clamp_min(1e-30)
            ent.append(float((-(rows * rows.log()).sum(1)).mean() / math.log(rows.shape[1])))
            at_k.append(segment_with(a, tuple(x.shape[-2:]), replace(cfg, num_segments=k)).labels.numpy())
            native.append(segment_with(a, tuple(x.shape[-2:]), replace(cfg, num_segments=None)).labels.numpy())
    return at_k, native, float(np.mean(ent))


@dataclass
class FixedKResult:
    """Rows of :func:`score_fixed_k`: label -> :class:`Scores` (+ attention entropy of the DiffSeg rows)."""

    source: str
    config: dict
    k: int
    structures: list[str]
    rows: dict[str, Scores]
    entropy: dict[str, float]

    def row_summary(self, label: str) -> dict:
        """Our one-to-one Dice per structure and its mean, L/R lung separation, the papers' scores."""
        sc, names = self.rows[label], self.structures
        per_image = np.nanmean(sc.one_to_one_dice, 1)
        row = {"dice": dict(zip(names, np.nanmean(sc.one_to_one_dice, 0).tolist())),
               "mean": float(np.nanmean(per_image)), "per_image": per_image.tolist(), **sc.summary(names)}
        lungs = [names.index(n) for n in names if "lung" in n]
        if len(lungs) == 2:
            row["lr_separated"] = float(np.mean(np.nan_to_num(sc.one_to_one_dice[:, lungs], nan=0).min(1) > 0.5))
        first = np.nanmean(next(iter(self.rows.values())).one_to_one_dice, 1)
        if label != next(iter(self.rows)):
            from scipy.stats import wilcoxon

            row["wilcoxon_p"] = float(wilcoxon(first, per_image).pvalue) if np.any(per_image != first) else 1.0
        if label in self.entropy:
            row["attention_entropy"] = self.entropy[label]
        return row

    def to_dict(self) -> dict:
        return {"source": self.source, "config": self.config, "k": self.k, "structures": self.structures,
                "images": len(next(iter(self.rows.values())).segments),
                "rows": {label: self.row_summary(label) for label in self.rows}}


def score_fixed_k(segmenter: Segmenter, data: str | os.PathLike, truth: str | os.PathLike, *, k: int = 4,
                  structures: Mapping[int, str] = CHEST2D_STRUCTURES, size: int | None = None,
                  limit: int | None = None, untrained_seed: int = 0, xy_weight: float = 1.0) -> FixedKResult:
    """Every row scored on the same images, at exactly ``k`` segments (ours) and by the papers' scores.

    Rows: DiffSeg conditioned on the image's tokens; DiffSeg with the empty (null) context ("vanilla");
    DiffSeg on an untrained UNet of the same architecture (own tokens); DiffSeg with the merge's own
    segment count (no agglomeration to K: what the papers score); KMeans on intensity; KMeans on
    intensity + x, y (``xy_weight``); the image-blind grid. ``untrained_seed`` seeds the untrained UNet.
    """
    from latentmed.segment.baselines import grid_baseline, grid_shape, kmeans_baseline

    keys, images, size = read_for(segmenter, data, size, limit)
    masks = load_truth(truth, keys, tuple(images.shape[-2:]), structures, resize=size is not None)
    cfg = segmenter.diffseg.config
    untrained = segmenter.untrained(untrained_seed)
    entropy: dict[str, float] = {}
    maps: dict[str, list[np.ndarray]] = {}
    native = None
    for label, seg, cond in (("DiffSeg (own tokens)", segmenter, segmenter.condition),
                             ("DiffSeg (empty context, vanilla)", segmenter, segmenter.null_condition),
                             ("DiffSeg (untrained UNet)", untrained, untrained.condition)):
        maps[label], own, entropy[label] = _diffseg_maps(seg, images, cond, k)
        native = own if native is None else native
    maps.update({
        "DiffSeg (own tokens, merge's own K)": native,
        "KMeans intensity": [m.numpy() for m in kmeans_baseline(images, k, seed=cfg.seed)],
        "KMeans intensity + x,y": [m.numpy() for m in kmeans_baseline(images, k, seed=cfg.seed,
                                                                       features="intensity_xy", xy_weight=xy_weight)],
        "grid %dx%d (image-blind)" % grid_shape(k): [grid_baseline(tuple(images.shape[-2:]), k).numpy()] * len(keys),
    })
    rows = {label: score_maps(m, masks, structures) for label, m in maps.items()}
    return FixedKResult(segmenter.source, asdict(cfg), k, list(structures.values()), rows, entropy)
