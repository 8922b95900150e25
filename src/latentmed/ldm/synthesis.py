"""Synthetic data from a DiNO-Diffusion run (DiNO-Diffusion Sec. 2.3 and 3.2).

- ``reconstruction``: variations of a real image sampled from its own tokens (new noise each
  time); they inherit the image's labels. Sources come in rounds (each image once per round, in a
  seeded order), so the first ``r * M`` of them hold exactly ``r`` variations of each of ``M`` images.
- ``interpolation``: tokens lerped between two images that share at least one label (all-negative
  rows share the implicit "no finding" label), ``(1 - r) c_a + r c_b`` with r ~ U(0, 1); the
  synthetic image takes the labels of the closer source (a when r < 0.5); pairs do not repeat
  until every valid pair has been used (:func:`interpolation_pairs`).
- Label-balanced nested subsets: strata are the label combinations; one global order takes the
  strata round-robin (each shuffled), so every prefix is as balanced as the data allow and
  each smaller subset lies inside the larger ones (the paper's n in {10k, 5k, 1k, 500, 100, 50}).
- :func:`build_synthetic_dataset` writes a subset of the real images plus ``ratio`` synthetic
  images per real one as ``images/`` + ``labels.csv`` with a ``synthetic`` 0/1 column and the
  ``parent`` id(s), so real-only, real+synthetic and synthetic-only sets are one filter away.
- :func:`reconstruction_grid` and :func:`interpolation_grid` picture both strategies as PNG grids.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError, expect

STRATEGIES = ("reconstruction", "interpolation")


def balanced_order(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A permutation of the rows of ``labels [N, L]`` whose every prefix is label-combination balanced."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = ["".join(map(str, row)) for row in labels.astype(int)]
    strata = {k: rng.permutation([i for i, kk in enumerate(keys) if kk == k]).tolist() for k in sorted(set(keys))}
    order, names = [], list(strata)
    rng.shuffle(names)
    while any(strata.values()):
        for k in names:
            if strata[k]:
                order.append(strata[k].pop(0))
    return np.array(order, dtype=np.int64)


def nested_subsets(labels: np.ndarray, sizes: Sequence[int], seed: int = 0) -> dict[int, np.ndarray]:
    """``{n: indices}`` for each size, nested (smaller inside larger) and label-balanced."""
    n = len(labels)
    for s in sizes:
        if not 1 <= int(s) <= n:
            raise LatentmedError(f"subset size {s} is larger than the {n} images available (or < 1); choose "
                                 f"sizes between 1 and {n}.")
    order = balanced_order(labels, seed)
    return {int(s): np.sort(order[: int(s)]) for s in sizes}


def interpolation_pairs(labels: np.ndarray, n: int, seed: int = 0) -> list[tuple[int, int, float]]:
    """``n`` triples ``(a, b, r)`` with a != b sharing a label (or both all-negative), r ~ U(0, 1).

    Pairs do not repeat (DiNO-Diffusion Sec. 2.3): they are drawn in a seeded random order of all
    valid unordered pairs; only when ``n`` exceeds their number does a new shuffled round begin (each
    pair then used at most once more than any other, each time with a fresh r).
    """
    labels = np.asarray(labels).astype(bool)
    rng = np.random.default_rng(seed)
    m = len(labels)
    expect(m >= 2, "interpolation needs at least 2 real images.")
    ext = np.concatenate([labels, ~labels.any(1, keepdims=True)], axis=1)  # + "no finding"
    share = np.triu((ext[:, None, :] & ext[None, :, :]).any(-1), k=1)
    valid = np.argwhere(share)
    expect(len(valid) > 0, "no two images share a label: interpolation has no valid pairs; use reconstruction.")
    order = np.concatenate([rng.permutation(len(valid)) for _ in range(-(-int(n) // len(valid)))])[: int(n)]
    out = []
    for a, b in valid[order]:
        if rng.random() < 0.5:
            a, b = b, a
        out.append((int(a), int(b), float(rng.uniform(0, 1))))
    return out


@torch.no_grad()
def synthesize(ldm, images: torch.Tensor, labels: np.ndarray, strategy: str, n: int, *, steps: int = 50,
               guidance: float = 1.0, seed: int = 0, batch_size: int = 64, progress: bool = False):
    """``n`` synthetic images from real ``images [M, C, H, W]`` and their ``labels [M, L]``.

    Returns ``(images [n, C, H, W], labels [n, L], parents)`` where ``parents[i]`` is the list
    of source indices (one for reconstruction, ``[a, b]`` for interpolation, closer one first)
    and, for interpolation, ``r`` per image is appended as the last element.
    """
    expect(strategy in STRATEGIES, f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}.")
    labels = np.asarray(labels)
    expect(len(images) == len(labels) and len(images) > 0,
           f"got {len(images)} images but {len(labels)} label rows; they must match and be non-empty.")
    tokens = torch.cat([ldm.condition(c) for c in images.split(batch_size)]).cpu()
    if strategy == "reconstruction":  # rounds of a shuffled order: the first r * M images have r per source
        rng = np.random.default_rng(seed)
        src = np.concatenate([rng.permutation(len(images)) for _ in range(-(-n // len(images)))])[:n]
        plan = [([int(a)], tokens[a], labels[a]) for a in src]
    else:
        plan = []
        for a, b, r in interpolation_pairs(labels, n, seed):
            near = [a, b] if r < 0.5 else [b, a]
            plan.append((near + [r], (1 - r) * tokens[a] + r * tokens[b], labels[near[0]]))
    g = torch.Generator(device=ldm.device).manual_seed(seed)
    outs = []
    chunks = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"synthesize ({strategy})", unit="batch")
    for i in chunks:
        tok = torch.stack([p[1] for p in plan[i:i + batch_size]])
        outs.append(ldm.sample(tok, steps=steps, guidance=guidance, generator=g).cpu())
    return torch.cat(outs), np.stack([p[2] for p in plan]), [p[0] for p in plan]


def build_synthetic_dataset(ldm, real_dir: str | os.PathLike, out_dir: str | os.PathLike, label_columns: Sequence[str],
                            *, strategy: str = "reconstruction", ratio: float = 5, subset: int | None = None,
                            steps: int = 50, guidance: float = 1.0, seed: int = 0, indices: Sequence[int] | None = None,
                            progress: bool = False) -> Path:
    """Write ``subset`` real images (label-balanced) + ``ratio * subset`` synthetic ones; return the CSV.

    ``indices`` restricts the pool of real images (e.g. a training split) before sub-setting.
    """
    from latentmed.io import write_csv, write_image
    from latentmed.ldm.data import folder_labels, open_ldm_images
    from latentmed.viz import to_uint8

    expect(ratio > 0, f"ratio must be > 0 (synthetic images per real image), got {ratio}.")
    real_dir = Path(real_dir)
    ds = open_ldm_images(real_dir, size=ldm.image_size, channels=ldm.config.image_channels)
    y_all = folder_labels(real_dir, ds.ids, label_columns)
    pool = np.arange(len(ds)) if indices is None else np.asarray(indices, dtype=np.int64)
    y_pool = y_all[pool]
    subset = len(pool) if subset is None else int(subset)
    chosen = pool[nested_subsets(y_pool, [subset], seed)[subset]]
    n_syn = int(round(ratio * subset))
    images = ds.stack(chosen.tolist())
    y = y_all[chosen]
    syn, y_syn, parents = synthesize(ldm, images, y, strategy, n_syn, steps=steps, guidance=guidance, seed=seed,
                                     progress=progress)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    table = []
    for j, i in enumerate(chosen):
        rid = ds.ids[i]
        write_image(to_uint8(images[j])[0], out / "images" / f"{rid}.png")
        table.append({"id": rid, "image": f"images/{rid}.png", **{c: int(v) for c, v in zip(label_columns, y[j])},
                      "synthetic": 0, "parent": "", "r": ""})
    width = len(str(max(n_syn - 1, 0)))
    for k in range(n_syn):
        sid = f"syn_{strategy[:5]}_{k:0{width}d}"
        write_image(to_uint8(syn[k])[0], out / "images" / f"{sid}.png")
        par = parents[k]
        ids = [table[int(p)]["id"] for p in (par[:-1] if strategy == "interpolation" else par)]
        table.append({"id": sid, "image": f"images/{sid}.png", **{c: int(v) for c, v in zip(label_columns, y_syn[k])},
                      "synthetic": 1, "parent": ";".join(ids),
                      "r": f"{par[-1]:.4f}" if strategy == "interpolation" else ""})
    return write_csv(out / "labels.csv", table)


# ---- pictures of a run: variations of an image, interpolations between two -------------------------------------------
@torch.no_grad()
def reconstruction_grid(ldm, images: torch.Tensor, path: str | os.PathLike, variations: int = 4, steps: int = 50,
                        guidance: float = 1.0, seed: int = 0) -> Path:
    """One row per source image: the source, then ``variations`` samples from its own tokens."""
    from latentmed.viz import save_image_grid

    tokens = ldm.condition(images)
    g = torch.Generator(device=ldm.device).manual_seed(seed)
    recs = [ldm.sample(tokens, steps=steps, guidance=guidance, generator=g).cpu() for _ in range(variations)]
    rows = torch.stack([images.cpu().float(), *recs], dim=1)  # [B, 1 + V, C, H, W]
    return save_image_grid(rows.flatten(0, 1), path, nrow=1 + variations)


@torch.no_grad()
def interpolation_grid(ldm, a: torch.Tensor, b: torch.Tensor, path: str | os.PathLike, points: int = 6,
                       steps: int = 50, guidance: float = 1.0, seed: int = 0) -> Path:
    """One row per pair: source a, samples at r = 0..1 from ``(1 - r) c_a + r c_b`` (same noise), source b."""
    from latentmed.viz import save_image_grid

    ta, tb = ldm.condition(a), ldm.condition(b)
    g = torch.Generator(device=ldm.device).manual_seed(seed)
    shape = (a.shape[0], ldm.config.latent_channels, ldm.config.latent_size, ldm.config.latent_size)
    x_T = torch.randn(shape, generator=g, device=ldm.device)
    cols = [a.cpu().float()]
    for r in torch.linspace(0, 1, points).tolist():
        cols.append(ldm.sample((1 - r) * ta + r * tb, steps=steps, guidance=guidance, x_T=x_T).cpu())
    cols.append(b.cpu().float())
    return save_image_grid(torch.stack(cols, dim=1).flatten(0, 1), path, nrow=points + 2)


def write_grids(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *, n: int = 6,
                steps: int = 50, guidance: float = 1.0, seed: int = 0) -> tuple[Path, Path]:
    """``OUT/reconstruction.png`` (the first ``n`` images of ``data`` and variations from their own tokens) and
    ``OUT/interpolation.png`` (``n // 2`` pairs, at least one) of the run ``run`` (what ``latentmed ldm grid`` does)."""
    from latentmed.ldm.data import open_ldm_images
    from latentmed.ldm.model import load_ldm

    ldm = load_ldm(run)
    ds = open_ldm_images(data, size=ldm.image_size, channels=ldm.config.image_channels)
    x = ds.stack(range(min(len(ds), 2 * n)))
    pairs = n // 2 or 1
    out = Path(out)
    return (reconstruction_grid(ldm, x[:n], out / "reconstruction.png", steps=steps, guidance=guidance, seed=seed),
            interpolation_grid(ldm, x[:pairs], x[pairs:2 * pairs], out / "interpolation.png", steps=steps,
                               guidance=guidance, seed=seed))
