"""Image transforms on ``[C, H, W]`` tensors: value scaling, resize + centre crop, channels, augmentation.

The DAE works on images in [-1, 1]. Augmentations for the counterfactual paper's RetinaMNIST
setting (rotation up to 30 degrees, flip, grid distortion, zoom 90-110 %, each with p = 0.5)
come from ``monai.transforms``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from latentmed.errors import LatentmedError


def to_unit_range(array: np.ndarray, value_range: tuple[float, float] | str | None = None) -> np.ndarray:
    """Map raw intensities to float32 in [0, 1]: the one value-range rule of the readers.

    ``value_range=(lo, hi)`` maps ``lo -> 0`` and ``hi -> 1`` and clips. Without it the range
    comes from the dtype: bool -> (0, 1); unsigned/signed integers -> the dtype's range
    (uint8: 0..255, uint16: 0..65535); floats already in [0, 1] or [-1, 1] keep that range;
    other floats are min-max scaled per image. ``value_range="image"`` scales every image by its
    own min-max unless it is 8-bit (uint8 keeps 0..255, bool 0..1): DiNO-Diffusion's rescaling of
    16-bit radiographs (Sec. 3), used by the latent diffusion readers.
    """
    a = np.asarray(array)
    if isinstance(value_range, str):
        if value_range != "image":
            raise LatentmedError(f"value_range {value_range!r}: expected (low, high), None (from the dtype) or "
                                 "'image' (per-image min-max).")
        if a.dtype == np.uint8 or a.dtype == bool:
            value_range = None
        else:
            lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 1.0)
            value_range = (lo, hi if hi > lo else lo + 1.0)
    if value_range is None:
        if a.dtype == bool:
            value_range = (0.0, 1.0)
        elif np.issubdtype(a.dtype, np.integer):
            info = np.iinfo(a.dtype)
            value_range = (0.0, float(info.max)) if info.min == 0 else (float(info.min), float(info.max))
        else:
            lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 1.0)
            if lo >= 0.0 and hi <= 1.0:
                value_range = (0.0, 1.0)
            elif lo >= -1.0 and hi <= 1.0:
                value_range = (-1.0, 1.0)
            else:
                value_range = (lo, hi if hi > lo else lo + 1.0)
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise LatentmedError(f"value_range must be (low, high) with high > low; got {value_range!r}.")
    out = (a.astype(np.float32) - lo) / (hi - lo)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def to_signed(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (the DAE's data range)."""
    return torch.as_tensor(x, dtype=torch.float32) * 2.0 - 1.0


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``[C, H, W]`` to 1 channel (ITU-R 601 luma for RGB) or 3 channels (gray repeated)."""
    c = x.shape[0]
    if channels not in (1, 3):
        raise LatentmedError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels}.")
    if c == 4:  # drop alpha
        x, c = x[:3], 3
    if c == 2:  # gray + alpha
        x, c = x[:1], 1
    if c == channels:
        return x
    if channels == 1 and c == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
        return (x * w).sum(0, keepdim=True)
    if channels == 3 and c == 1:
        return x.repeat(3, 1, 1)
    raise LatentmedError(f"cannot convert an image with {c} channels to {channels}; expected 1, 3 or 4 channels.")


def as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` (an int or ``(H, W)``) as ``(H, W)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = (int(s) for s in size)
    return h, w


def resize_center_crop(x: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[C, H, W]`` so it covers ``size`` (keeping aspect ratio), then centre-crop.

    ``mode="bilinear"`` (antialiased when shrinking) for images, ``"nearest"`` for label maps.
    """
    th, tw = as_hw(size)
    if th < 1 or tw < 1:
        raise LatentmedError(f"size must be positive; got {size!r}.")
    if mode not in ("bilinear", "nearest"):
        raise LatentmedError(f"mode must be 'bilinear' (images) or 'nearest' (label maps); got {mode!r}.")
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):
        return x
    scale = max(th / h, tw / w)
    nh, nw = max(th, int(math.ceil(h * scale - 1e-6))), max(tw, int(math.ceil(w * scale - 1e-6)))
    if (nh, nw) != (h, w):
        x = (F.interpolate(x[None], size=(nh, nw), mode="nearest-exact")[0] if mode == "nearest" else
             F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)[0])
    return center_crop(x, (th, tw))


def center_crop(x: torch.Tensor, size: int | tuple[int, int], fill: float = -1.0) -> torch.Tensor:
    """Centre crop (padding with ``fill`` where the image is smaller) of ``[C, H, W]``."""
    th, tw = as_hw(size)
    h, w = x.shape[-2:]
    return crop_at(x, ((h - 1) / 2, (w - 1) / 2), (th, tw), fill)


def crop_at(x, center: tuple[float, float], size: int | tuple[int, int], fill: float = -1.0):
    """Crop ``size`` pixels of ``[..., H, W]`` (tensor or array) around ``center=(row, col)``; pad with ``fill``."""
    th, tw = as_hw(size)
    h, w = x.shape[-2:]
    top = int(round(center[0] - (th - 1) / 2))
    left = int(round(center[1] - (tw - 1) / 2))
    is_tensor = isinstance(x, torch.Tensor)
    out = (torch.full((*x.shape[:-2], th, tw), fill, dtype=x.dtype) if is_tensor
           else np.full((*x.shape[:-2], th, tw), fill, dtype=x.dtype))
    r0, r1 = max(top, 0), min(top + th, h)
    c0, c1 = max(left, 0), min(left + tw, w)
    if r1 > r0 and c1 > c0:
        out[..., r0 - top:r1 - top, c0 - left:c1 - left] = x[..., r0:r1, c0:c1]
    return out


def retinamnist_augment(prob: float = 0.5, max_rotation_deg: float = 30.0, zoom: tuple[float, float] = (0.9, 1.1),
                        distort_limit: float = 0.1, seed: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The counterfactual paper's RetinaMNIST augmentation as a MONAI ``Compose`` on ``[C, H, W]``.

    Random rotation up to ``max_rotation_deg``, horizontal flip, grid distortion and zoom in
    ``zoom`` (size kept), each applied with probability ``prob``. Returns a plain tensor.
    """
    from monai.transforms import Compose, RandFlip, RandGridDistortion, RandRotate, RandZoom

    if not 0.0 <= prob <= 1.0:
        raise LatentmedError(f"prob must be in [0, 1]; got {prob}.")
    rad = math.radians(max_rotation_deg)
    compose = Compose([
        RandRotate(range_x=rad, prob=prob, keep_size=True, padding_mode="border"),
        RandFlip(prob=prob, spatial_axis=1),
        RandGridDistortion(num_cells=5, prob=prob, distort_limit=distort_limit, padding_mode="border"),
        RandZoom(prob=prob, min_zoom=zoom[0], max_zoom=zoom[1], keep_size=True, padding_mode="edge"),
    ])
    if seed is not None:
        compose.set_random_state(seed=seed)

    def augment(x: torch.Tensor) -> torch.Tensor:
        out = compose(x)
        out = out.as_tensor() if hasattr(out, "as_tensor") else torch.as_tensor(out)
        return out.clamp(-1.0, 1.0).float()

    augment.compose = compose  # type: ignore[attr-defined]
    return augment


__all__ = ["to_unit_range", "to_signed", "to_channels", "resize_center_crop", "center_crop", "crop_at",
           "retinamnist_augment"]
