"""Perceptual path length (PPL) of interpolations through a generator's latent space (two-phase paper, supplement).

PPL (Karras et al., StyleGAN, Sec. 3; the two-phase DAE paper's supplement) sums the perceptual
distance between images decoded at consecutive points of a slerp path, scaled by the number of
segments: smooth latent spaces give short paths. It needs a generator (a decoder), so it lives
with the generation evaluation rather than in :mod:`latentmed.metrics`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from latentmed.diffusion.interpolation import slerp
from latentmed.errors import LatentmedError
from latentmed.evaluation.reconstruction import MetricRow, _images_tensor
from latentmed.metrics._base import as_tensor

__all__ = ["perceptual_path_length", "evaluate_interpolation_ppl"]


def perceptual_path_length(generator_fn: Callable[..., torch.Tensor], z_a: Any, z_b: Any, *,
                           n: int = 100, distance: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mse",
                           batch_size: int = 32) -> torch.Tensor:
    """Perceptual path length of the interpolation from ``z_a`` to ``z_b`` (two-phase paper, supplement).

    ``PPL = N * sum_{i=0}^{N-1} d(G(slerp(z_a, z_b, i/N)), G(slerp(z_a, z_b, (i+1)/N)))``.

    Args:
        generator_fn: maps codes ``[M, ...]`` to images ``[M, C, ...]``; must be deterministic.
        z_a, z_b: one pair of codes ``[d]``, a batch of pairs ``[B, ...]``, or tuples of batched
            codes slerped separately and passed to ``generator_fn`` as a tuple, e.g.
            ``(z_sem, x_T)`` of a DAE with ``generator_fn = lambda c: dae.decode(c[0], c[1])``.
        n: number of segments N (the paper uses 100).
        distance: callable ``d(x, y) -> [M]`` (e.g. an :class:`LPIPS` module, as in the paper)
            or ``"mse"`` / ``"l1"`` (mean over pixels).
        batch_size: images decoded per ``generator_fn`` call.

    Returns:
        0-d tensor for one pair ``[d]``, ``[B]`` for a batch of pairs.
    """

    is_tuple = isinstance(z_a, (tuple, list))
    parts_a = [as_tensor(v, "z_a") for v in (z_a if is_tuple else [z_a])]
    parts_b = [as_tensor(v, "z_b") for v in (z_b if is_tuple else [z_b])]
    if len(parts_a) != len(parts_b) or any(a.shape != b.shape for a, b in zip(parts_a, parts_b)):
        raise LatentmedError(f"z_a and z_b must have the same shapes, got {[tuple(a.shape) for a in parts_a]} and "
                             f"{[tuple(b.shape) for b in parts_b]}.")
    if int(n) < 1:
        raise LatentmedError(f"n={n}: expected at least 1 segment.")
    single = not is_tuple and parts_a[0].ndim == 1
    if single:
        parts_a, parts_b = [parts_a[0][None]], [parts_b[0][None]]
    if len({a.shape[0] for a in parts_a}) != 1:
        raise LatentmedError("the codes in z_a must all have the same batch size (one row per pair).")
    if isinstance(distance, str):
        if distance not in ("mse", "l1"):
            raise LatentmedError(f"distance={distance!r}: expected 'mse', 'l1' or a callable (e.g. LPIPS).")
        power = 2 if distance == "mse" else 1
        dist = lambda x, y: (x - y).abs().pow(power).flatten(1).mean(1)  # noqa: E731
    elif callable(distance):
        dist = distance
    else:
        raise LatentmedError(f"distance: expected a string or callable, got {type(distance).__name__}.")
    ws = torch.linspace(0, 1, int(n) + 1, dtype=torch.float64).tolist()
    results = []
    with torch.no_grad():
        for i in range(parts_a[0].shape[0]):
            codes = [torch.cat([slerp(a[i:i + 1].double(), b[i:i + 1].double(), w) for w in ws]).to(a.dtype)
                     for a, b in zip(parts_a, parts_b)]
            chunks = zip(*[c.split(batch_size) for c in codes])
            images = torch.cat([generator_fn(tuple(ch) if is_tuple else ch[0]) for ch in chunks])
            d = torch.cat([dist(x, y).reshape(-1) for x, y in zip(images[:-1].split(batch_size),
                                                                 images[1:].split(batch_size))])
            results.append(int(n) * d.double().sum())
    out = torch.stack(results)
    return out[0] if single else out


@torch.no_grad()
def evaluate_interpolation_ppl(dae, images: Any, *, pairs: int = 4, segments: int = 100, steps: int = 20,
                               distance: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mse",
                               batch_size: int = 32, progress: bool = True) -> MetricRow:
    """Perceptual path length of DAE interpolations between image pairs (two-phase paper, supplement).

    Images ``2k`` and ``2k+1`` form pair ``k``; each is encoded to ``(z_sem, x_T)`` (x_T by DDIM
    inversion with ``steps`` steps), both codes are slerped over ``segments`` segments and
    decoded with ``steps`` steps; ``distance`` is LPIPS in the paper (pass an
    :class:`~latentmed.metrics.LPIPS` module) or ``"mse"``/``"l1"``.
    """
    from tqdm.auto import tqdm

    x = _images_tensor(images, 2 * int(pairs))
    if int(pairs) < 1 or x.shape[0] < 2 * int(pairs):
        raise LatentmedError(f"PPL over {pairs} pair(s) needs {2 * int(pairs)} images, got {x.shape[0]}.")
    x = dae.check_images(x)
    z = dae.encode(x)
    x_T = dae.encode_stochastic(x, z, steps=int(steps))
    values = []
    start = time.perf_counter()
    for k in tqdm(range(int(pairs)), desc="ppl", disable=not progress):
        a, b = 2 * k, 2 * k + 1
        values.append(perceptual_path_length(lambda c: dae.decode(c[0], c[1], steps=int(steps)).clamp(-1, 1),
                                             (z[a:a + 1], x_T[a:a + 1]), (z[b:b + 1], x_T[b:b + 1]),
                                             n=int(segments), distance=distance, batch_size=int(batch_size)))
    ppl = torch.cat(values)
    return MetricRow({"steps": int(steps), "segments": int(segments)},
                     {"ppl": float(ppl.mean()), "ppl_std": float(ppl.std()) if len(ppl) > 1 else 0.0},
                     {"pairs": int(pairs), "per_pair": ppl.tolist(), "seconds": round(time.perf_counter() - start, 3)})
