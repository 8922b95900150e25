"""Image grids written as PNG (atomic). Images are tensors in [-1, 1], shape [N, C, H, W]."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from latentmed.io import write_image


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
    """Atomically save a uint8 ``[H, W]`` / ``[H, W, C]`` array as an image (:func:`latentmed.io.write_image`)."""
    return write_image(array, path)


def label_rows(grid: np.ndarray, labels, pad: int = 2) -> np.ndarray:
    """Prepend a white margin with one text label per row of tiles (rows of equal height, ``pad`` apart)."""
    from PIL import Image, ImageDraw

    labels = [str(v) for v in labels]
    if not labels:
        return grid
    font_w, font_h = 6, 11  # PIL's default bitmap font
    margin = 8 + font_w * max(len(v) for v in labels)
    rgb = grid if grid.shape[-1] == 3 else np.repeat(grid[..., :1], 3, axis=-1)
    canvas = Image.new("RGB", (rgb.shape[1] + margin, rgb.shape[0]), "white")
    canvas.paste(Image.fromarray(rgb), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row_h = (grid.shape[0] - pad) / len(labels)
    for r, text in enumerate(labels):
        draw.text((4, int(pad + r * row_h + row_h / 2 - font_h / 2)), text, fill="black")
    out = np.asarray(canvas)
    return out if grid.shape[-1] == 3 else out[..., :1]


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None,
                    value_range: tuple[float, float] = (-1.0, 1.0), min_tile: int = 96,
                    row_labels=None) -> Path:
    """Tile ``images`` (``[N, C, H, W]`` in ``value_range``) and save as PNG (see :func:`image_grid`).

    ``row_labels``: one label per row of tiles, written in a left margin.
    """
    grid = image_grid(images, nrow=nrow, value_range=value_range, min_tile=min_tile)
    if row_labels is not None:
        rows = int(math.ceil(len(images) / (nrow or max(1, int(math.ceil(math.sqrt(len(images))))))))
        if len(row_labels) != rows:
            from latentmed.errors import LatentmedError

            raise LatentmedError(f"row_labels: {len(row_labels)} labels for {rows} rows of tiles.")
        grid = label_rows(grid, row_labels)
    return save_image(grid, path)
