"""Image grids written as PNG (atomic). Images are tensors in [-1, 1], shape [N, C, H, W]."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from latentmed.io import atomic_path


def to_uint8(images: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Map ``[N, C, H, W]`` (or ``[C, H, W]``) from ``value_range`` to uint8 ``[N, H, W, C]``."""
    x = torch.as_tensor(images).detach().float().cpu()
    if x.ndim == 3:
        x = x[None]
    lo, hi = value_range
    x = ((x - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2,
               value_range: tuple[float, float] = (-1.0, 1.0), pad_value: int = 255, min_tile: int = 96) -> np.ndarray:
    """Tile ``[N, C, H, W]`` into one uint8 ``[H', W', C]`` array, ``nrow`` images per row.

    Tiles smaller than ``min_tile`` pixels are enlarged by an integer nearest-neighbour factor so
    small images (32 px phantoms) stay readable; pixel values are unchanged.
    """
    arr = to_uint8(images, value_range)
    factor = max(1, min_tile // max(arr.shape[1], arr.shape[2]))
    if factor > 1:
        arr = arr.repeat(factor, axis=1).repeat(factor, axis=2)
    n, h, w, c = arr.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = arr[i]
    return grid


def save_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Atomically save a uint8 ``[H, W]`` / ``[H, W, C]`` array as an image (format from suffix)."""
    from PIL import Image

    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=Path(path).suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG")
    return Path(path)


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None,
                    value_range: tuple[float, float] = (-1.0, 1.0), min_tile: int = 96) -> Path:
    """Tile ``images`` (``[N, C, H, W]`` in ``value_range``) and save as PNG (see :func:`image_grid`)."""
    return save_image(image_grid(images, nrow=nrow, value_range=value_range, min_tile=min_tile), path)
