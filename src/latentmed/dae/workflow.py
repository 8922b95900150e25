"""What the ``latentmed dae`` commands do, one function per command: reconstruct, sample, interpolate.

(Training is :func:`latentmed.dae.train_dae`; encoding to a latents file is
:func:`latentmed.latent.encode.encode_to_file`.) Each function takes a run folder and plain
options, writes its outputs atomically and returns what it wrote; data notices go to ``report``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from latentmed.dae.training import load_dae, load_latent_ddim
from latentmed.errors import LatentmedError

Report = Callable[[str], None]


def open_run_images(data: str | os.PathLike, size: int, channels: int, read: dict | None = None,
                    report: Report | None = None):
    """:func:`latentmed.data.open_images` with a run's image size and channels and the data-selection options."""
    from latentmed.data import open_images

    return open_images(data, size=size, channels=channels, report=report, **(read or {}))


@torch.no_grad()
def reconstruct_images(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *, steps: int = 100,
                       inversion: bool = True, limit: int = 16, seed: int = 0, read: dict | None = None,
                       device: str = "cpu", report: Report | None = None, batch_size: int = 16) -> float:
    """Reconstruct the first ``limit`` images of ``data`` (x_T by DDIM inversion on the decoding grid, or
    random from ``seed``); write ``OUT/<id>.png`` and ``OUT/grid.png`` (top: input, bottom: reconstruction)
    and return the mean PSNR in dB (:func:`latentmed.metrics.psnr`, images in [-1, 1])."""
    from tqdm.auto import tqdm

    from latentmed.metrics import psnr
    from latentmed.viz import save_image, save_image_grid, to_uint8

    dae = load_dae(run, device)
    dataset = open_run_images(data, dae.config.image_size, dae.config.in_channels, read, report)
    n = min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    x = torch.stack([it["image"] for it in items])
    gen = torch.Generator().manual_seed(seed)
    rec = torch.cat([dae.reconstruct(x[i:i + batch_size], steps=steps, inversion=inversion, generator=gen).cpu()
                     for i in tqdm(range(0, n, batch_size), desc="reconstruct")])
    for it, r in zip(items, rec):
        save_image(to_uint8(r)[0], Path(out) / f"{it['id']}.png")
    save_image_grid(torch.cat([x, rec]), Path(out) / "grid.png", nrow=n)
    return psnr(x, rec.clamp(-1, 1), data_range=2.0).mean().item()


@torch.no_grad()
def sample_images(run: str | os.PathLike, out: str | os.PathLike, *, n: int = 16, steps: int = 100,
                  latent_steps: int = 100, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """Sample ``n`` images: z_sem from the run's latent DDIM, then decoding with random x_T (DiffAE Sec. 4);
    write ``OUT/sample_XXXX.png`` and ``OUT/grid.png``; return the images ``[n, C, H, W]`` in [-1, 1]."""
    from latentmed.viz import save_image, save_image_grid, to_uint8

    dae, latent = load_dae(run, device), load_latent_ddim(run, device)
    gen = torch.Generator().manual_seed(seed)
    z = latent.sample(n, latent_steps, generator=gen)
    x = dae.decode(z, None, steps, generator=gen).cpu()
    for i, img in enumerate(x):
        save_image(to_uint8(img)[0], Path(out) / f"sample_{i:04d}.png")
    save_image_grid(x, Path(out) / "grid.png")
    return x


@torch.no_grad()
def interpolate_images(run: str | os.PathLike, a: str, b: str, out: str | os.PathLike, *,
                       data: str | os.PathLike | None = None, n: int = 8, steps: int = 100, read: dict | None = None,
                       device: str = "cpu", report: Report | None = None) -> Path:
    """Interpolate between images ``a`` and ``b`` (files, or ids in ``data``) with
    :meth:`DiffusionAutoencoder.interpolate` and write the strip of ``n`` images to ``out``."""
    from latentmed.viz import save_image_grid

    dae = load_dae(run, device)
    size, ch = dae.config.image_size, dae.config.in_channels
    ds = open_run_images(data, size, ch, read, report) if data is not None else None  # opened once: notices once
    pair = [_image(item, ds, data, size, ch, read, report) for item in (a, b)]
    strip = dae.interpolate(pair[0], pair[1], n=n, steps=steps)
    return save_image_grid(strip.cpu(), out, nrow=n)


def _image(item: str, ds, data, size: int, channels: int, read: dict | None, report: Report | None) -> torch.Tensor:
    """Image ``item`` as ``[1, C, H, W]``: an id of ``ds`` when a data set is given, else a file."""
    if ds is not None:
        if item not in ds.ids:
            raise LatentmedError(f"id {item!r} not found in {data} ({len(ds)} images, e.g. {', '.join(ds.ids[:3])}).")
        return ds[ds.ids.index(item)]["image"][None]
    path = Path(item)
    if not path.exists():
        raise LatentmedError(f"{item}: no such file. Give an image file, or an id together with --data DIR.")
    return open_run_images(path, size, channels, read, report)[0]["image"][None]


__all__ = ["interpolate_images", "open_run_images", "reconstruct_images", "sample_images"]
