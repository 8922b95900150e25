"""Images for latent diffusion: the shared reader with the DiNO-Diffusion options, and its augmentation.

Preprocessing follows DiNO-Diffusion (Sec. 3): 16-bit images are rescaled per image by their
min-max (``value_range="image"`` of :func:`latentmed.data.open_images`; 8-bit images keep 0..255),
resized and centre-cropped to 1:1; training may add light augmentation (random sharpening; affine
with up to 5% shear, 5% translation and 90-140% scale).

Everything else is the data layer's: folders, manifests (``DIR/labels.csv`` with an ``image``
column, as the phantoms write), tar shards (:func:`latentmed.data.write_shards`), NIfTI and DICOM,
one id rule (ids from the manifest's ``id`` column, else the path relative to the folder without
suffix, ``/``-separated) and one labels reader (:func:`latentmed.data.read_labels`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from latentmed.data import ImageDataset, label_matrix, open_images, read_labels
from latentmed.data.labels import align_labels
from latentmed.errors import LatentmedError


def augment(x: torch.Tensor, generator: torch.Generator | None = None, shear: float = 0.05,
            translate: float = 0.05, scale: tuple[float, float] = (0.9, 1.4), sharpen: float = 1.0) -> torch.Tensor:
    """Light augmentation of one image ``[C, H, W]`` in [-1, 1] (DiNO-Diffusion Sec. 3).

    Random sharpening (unsharp mask of strength U(0, ``sharpen``)) and a random affine
    transform with shear U(-s, s), translation U(-t, t) of the side, zoom U(scale).
    """
    u = lambda a, b: float(a + (b - a) * torch.rand((), generator=generator))  # noqa: E731
    c, h, w = x.shape
    blur = F.avg_pool2d(F.pad(x[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0]
    x = (x + u(0, sharpen) * (x - blur)).clamp(-1, 1)
    z = u(*scale)
    sh = u(-shear, shear)
    theta = torch.tensor([[1 / z, sh / z, u(-translate, translate) * 2],
                          [0.0, 1 / z, u(-translate, translate) * 2]], dtype=x.dtype)
    grid = F.affine_grid(theta[None], [1, c, h, w], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def random_augment(x: torch.Tensor) -> torch.Tensor:
    """:func:`augment` with a generator seeded from torch's global RNG (so ``torch.manual_seed`` fixes a run)."""
    return augment(x, torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()))))


def open_ldm_images(root: str | os.PathLike, size: int | None = 64, channels: int = 1, augment: bool = False,
                    tokens: torch.Tensor | None = None, report=None) -> ImageDataset:
    """:func:`latentmed.data.open_images` with the latent diffusion options: per-image scaling, ``size``,
    :func:`random_augment` when ``augment``, and ``tokens`` (``[N, T, D]``, an embedding cache in the
    data set's order) attached as ``item["tokens"]``. Items: ``{"image": [C, S, S] in [-1, 1], "id", ...}``.
    """
    ds = open_images(root, size=size, channels=channels, value_range="image",
                     transform=random_augment if augment else None, report=report)
    if tokens is not None:
        if len(tokens) != len(ds):
            raise LatentmedError(f"embedding cache has {len(tokens)} rows but the data set {root} has {len(ds)} "
                                 "images: recompute it with `latentmed ldm embed`.")
        ds.attach_arrays(tokens=tokens)
    return ds


def folder_labels(root: str | os.PathLike, ids: Sequence[str], columns: Sequence[str]) -> np.ndarray:
    """``[N, L]`` 0/1 labels ``columns`` of ``ids`` (a data set's order) from ``root/labels.csv``."""
    path = Path(root) / "labels.csv"
    return label_matrix(align_labels(read_labels(path, ids=ids, columns=columns), ids), columns, where=str(path))


__all__ = ["augment", "random_augment", "open_ldm_images", "folder_labels"]
