"""Perceptual path length (evaluation/ppl.py): closed form on a great circle, batches, tuples of codes."""

import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.evaluation.ppl import perceptual_path_length


def test_perceptual_path_length():
    # identity "generator": PPL with the mse distance has a closed form on a great circle
    za, zb = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    n = 10
    ppl = perceptual_path_length(lambda z: z, za, zb, n=n, distance="mse")
    chord = 2 * np.sin(np.pi / 4 / n)  # distance between consecutive slerp points
    np.testing.assert_allclose(ppl, n * n * chord**2 / 2, rtol=1e-6)
    # batched pairs, custom distance, and the endpoints are reached
    seen = []
    batch = perceptual_path_length(lambda z: (seen.append(z), z)[1], torch.stack([za, za]),
                                      torch.stack([zb, 2 * zb]), n=4, distance=lambda a, b: (a - b).norm(dim=1))
    assert batch.shape == (2,) and batch[1] > batch[0]
    np.testing.assert_allclose(seen[0][-1], zb, atol=1e-6)
    with pytest.raises(LatentmedError, match="distance"):
        perceptual_path_length(lambda z: z, za, zb, distance="lpips")
    # tuples of codes (e.g. a DAE's (z_sem, x_T)) are slerped separately: with the mse distance the joint
    # PPL is the size-weighted mean of the parts' PPLs
    g = torch.Generator().manual_seed(0)
    z1a, z1b, x1a, x1b = (torch.randn(s, generator=g) for s in ((2, 3), (2, 3), (2, 1, 2, 2), (2, 1, 2, 2)))
    joint = perceptual_path_length(lambda c: torch.cat([c[0], c[1].flatten(1)], 1), (z1a, x1a), (z1b, x1b), n=5)
    p_z = perceptual_path_length(lambda z: z, z1a, z1b, n=5)
    p_x = perceptual_path_length(lambda x: x, x1a, x1b, n=5)
    np.testing.assert_allclose(joint, (3 * p_z + 4 * p_x) / 7, rtol=1e-5)
