"""Controls for an LSD-EBM result: does its reverse chain do anything?

- ``energy off``: the same chain with E = 0 (:func:`energy_off`): what the quadratic term, the noise and the
  rescaling do without the learnt energy;
- ``round trip``: the CLEAN masks refined by the same chain, scored against themselves (an ideal chain
  gives the autoencoder's ceiling; below it, the chain cannot denoise its own latents);
- ``direction`` (:func:`chain_direction`): per case, the cosine between the chain's move
  ``z_refined - mean(coarse)`` and ``mean(clean) - mean(coarse)``, and the move's length over that distance;
- a sweep of the starting step t over 0..T (:func:`sweep_steps`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from latentmed.errors import expect


@contextlib.contextmanager
def energy_off(model) -> Iterator[None]:
    """Run ``model``'s chains with E = 0 inside the context (LSD-EBM); restored on exit."""
    expect(hasattr(model, "energy_enabled"), f"energy off: {type(model).__name__} has no reverse chain (LSD-EBM only).")
    before = model.energy_enabled
    model.energy_enabled = False
    try:
        yield
    finally:
        model.energy_enabled = before


def sweep_steps(num_steps: int, points: int | None = None) -> list[int]:
    """Starting steps 0..T for the sweep: all of them, or ``points`` spread evenly (0 and T included)."""
    if points is None or points >= num_steps + 1:
        return list(range(num_steps + 1))
    expect(points >= 2, f"sweep points={points}: expected >= 2 (0 and T).")
    return sorted({int(round(v)) for v in np.linspace(0, num_steps, points)})


@torch.no_grad()
def _means(model, cubes: np.ndarray, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    out = [model.encode(torch.from_numpy(cubes[i:i + batch_size, None].astype(np.float32)).to(device))[0].cpu()
           for i in range(0, len(cubes), batch_size)]
    return torch.cat(out)


def chain_direction(model, coarse: np.ndarray, clean: np.ndarray, *, steps: int | None = None,
                    recipe: str | None = None, seed: int = 0, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Per case: ``cosine`` between the move ``z_refined - mean(coarse)`` and ``mean(clean) - mean(coarse)``,
    and ``move_ratio`` = |move| / |mean(clean) - mean(coarse)| (``bool[N,S,S,S]`` coarse and clean cubes)."""
    expect(coarse.shape == clean.shape, f"coarse {coarse.shape} and clean {clean.shape} differ in shape.")
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    start, target = _means(model, coarse, batch_size), _means(model, clean, batch_size)
    refined = torch.cat([model.refine_latent(torch.from_numpy(coarse[i:i + batch_size, None].astype(np.float32))
                                             .to(device), steps, generator, recipe=recipe).cpu()
                         for i in range(0, len(coarse), batch_size)])
    move, wanted = refined - start, target - start
    cosine = torch.nn.functional.cosine_similarity(move, wanted, dim=1, eps=1e-12)
    ratio = move.norm(dim=1) / wanted.norm(dim=1).clamp_min(1e-12)
    return {"cosine": cosine.double().numpy(), "move_ratio": ratio.double().numpy()}


__all__ = ["chain_direction", "energy_off", "sweep_steps"]
