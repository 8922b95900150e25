"""Encoding a data set with a trained DAE: z_sem for every image (and x_T by DDIM inversion)."""

from __future__ import annotations

from typing import Any

import torch

from latentmed.dae.model import DiffusionAutoencoder
from latentmed.train.objective import batch_images


@torch.no_grad()
def encode_dataset(dae: DiffusionAutoencoder, dataset, batch_size: int = 64, stochastic_steps: int = 0,
                   progress: bool = True) -> dict[str, Any]:
    """z_sem (and x_T when ``stochastic_steps > 0``, DiffAE eq. 8) for every item, in order.

    Returns ``{"ids", "z_sem", "x_T"}``; ids are the items' ``"id"`` (else their positions).
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    ids, zs, xts = [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="encode", disable=not progress):
        x = batch_images(batch)
        z = dae.encode(x)
        zs.append(z.cpu())
        if stochastic_steps:
            xts.append(dae.encode_stochastic(x, z, stochastic_steps).cpu())
        ids.extend(batch["id"] if isinstance(batch, dict) and "id" in batch else
                   [str(len(ids) + i) for i in range(len(x))])
    return {"ids": ids, "z_sem": torch.cat(zs), "x_T": torch.cat(xts) if xts else None}


__all__ = ["encode_dataset"]
