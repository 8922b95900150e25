"""Encoding images with a DAE run into a latents file (what ``latentmed dae encode`` does)."""

from __future__ import annotations

import os
from typing import Callable

from latentmed.latent.io import Latents, save_latents


def encode_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                   stochastic_steps: int = 0, batch_size: int = 64, read: dict | None = None, device: str = "cpu",
                   report: Callable[[str], None] | None = None) -> Latents:
    """Encode every image of ``data`` with the DAE of ``run`` to z_sem (and x_T by DDIM inversion with
    ``stochastic_steps > 0``, DiffAE eq. 8) and write the latents ``.npz`` ``out``, keyed by image id
    and the DAE's ``model_id`` (:mod:`latentmed.latent.io`). Returns what was written."""
    from latentmed.dae import encode_dataset, load_dae
    from latentmed.dae.workflow import open_run_images

    dae = load_dae(run, device)
    dataset = open_run_images(data, dae.config.image_size, dae.config.in_channels, read, report)
    enc = encode_dataset(dae, dataset, batch_size, stochastic_steps)
    x_T = enc["x_T"].numpy() if enc["x_T"] is not None else None
    save_latents(out, enc["ids"], enc["z_sem"].numpy(), x_T, dae.model_id)
    return Latents(enc["ids"], enc["z_sem"].numpy(), x_T, dae.model_id)


__all__ = ["encode_to_file"]
