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
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from latentmed.data import ImageDataset, label_matrix, open_images, read_labels
from latentmed.data.labels import align_labels
from latentmed.errors import LatentmedError


@lru_cache(maxsize=8)
def _augment_compose(shear: float, translate: float, side: int, scale: tuple[float, float], sharpen: float):
    from monai.transforms import Compose, RandAffine, RandGaussianSharpen, RandZoom

    tiny = (0.01, 0.01)  # no first blur: blurred_f = x, so the sharpening is an unsharp mask
    return Compose([
        RandGaussianSharpen(sigma1_x=tiny, sigma1_y=tiny, sigma2_x=(1.0, 1.0), sigma2_y=(1.0, 1.0),
                            alpha=(0.0, float(sharpen)), prob=1.0),
        RandAffine(prob=1.0, shear_range=(shear, shear), translate_range=(translate * side,) * 2,
                   padding_mode="border"),
        RandZoom(prob=1.0, min_zoom=scale[0], max_zoom=scale[1], keep_size=True, padding_mode="edge"),
    ])


def augment(x: torch.Tensor, seed: int, shear: float = 0.05, translate: float = 0.05,
            scale: tuple[float, float] = (0.9, 1.4), sharpen: float = 1.0) -> torch.Tensor:
    """Light augmentation of one image ``[C, H, W]`` in [-1, 1] (DiNO-Diffusion Sec. 3), MONAI transforms
    seeded by ``seed``: random sharpening (``RandGaussianSharpen`` as an unsharp mask
    ``x + a (x - G_1 * x)``, a ~ U(0, ``sharpen``)), ``RandAffine`` with shear U(-s, s) on both axes and
    translation U(-t, t) of the side, and ``RandZoom`` by U(``scale``) (isotropic, size kept; MONAI's
    RandAffine scales each axis independently), borders replicated."""
    from monai.data import get_track_meta, set_track_meta

    t = _augment_compose(float(shear), float(translate), int(x.shape[-1]), tuple(map(float, scale)), float(sharpen))
    t.set_random_state(seed=int(seed))
    track = get_track_meta()
    set_track_meta(False)  # plain tensors: MONAI's metadata tracking doubled the cost per image
    try:
        out = t(x.float())
    finally:
        set_track_meta(track)
    return torch.as_tensor(out).clamp(-1, 1)


def random_augment(x: torch.Tensor) -> torch.Tensor:
    """:func:`augment` seeded from torch's global RNG (so ``torch.manual_seed`` fixes a run)."""
    return augment(x, int(torch.randint(0, 2**31 - 1, ())))


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
