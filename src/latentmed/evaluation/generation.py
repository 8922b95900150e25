"""Do a DAE's samples look like the data? Precision/recall, FID, grade mix and memorisation, with reference rows.

Samples are ``z_sem`` drawn from the run's latent DDIM and decoded with random ``x_T`` (DiffAE
Sec. 4). They are compared with held-out real images, split in two at random: a *reference*
half that every row is scored against, and a *ceiling* half scored as if it were samples. Rows:

* ``held-out real (ceiling)``: real images the model never saw: the best any generator can do
  at this sample size;
* ``held-out z_sem, random x_T``: the ceiling images' own z_sem decoded with random x_T: what
  the decoder makes of in-distribution codes (the best a latent sampler can reach here);
* ``latent DDIM``: the model's own samples;
* ``Gaussian z_sem``: ``z_sem ~ N(mean, cov)`` of the training latents (a simple latent
  sampler the latent DDIM should beat);
* ``random z_sem (floor)``: ``z_sem ~ N(0, I)``, ignoring where the encoder puts the data.

Every decoded row uses the same ``x_T``, so rows differ only by ``z_sem``. Feature spaces (no
download needed): ``z`` (the sampled ``z_sem`` itself against the reference images' latents:
the latent DDIM alone), ``enc`` (the samples re-encoded by the run's semantic encoder: sampler +
decoder), ``pix`` (:class:`~latentmed.metrics.generation.PixelPCA` of the training images).
Precision/recall follow Kynkaenniemi et al. 2019 with ``k = 3``; ``G2+`` is the fraction the
grader reads as grade 2 or more; ``nn_ratio``/``copy``/``far`` compare the samples' pixel
distance to the nearest training image with that of held-out images (see
:func:`~latentmed.metrics.generation.memorisation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.evaluation.reconstruction import MetricRow, _images_tensor
from latentmed.metrics.generation import PixelPCA, frechet_feature_distance, memorisation, precision_recall

CEILING, DECODER, MODEL = "held-out real (ceiling)", "held-out z_sem, random x_T", "latent DDIM"
GAUSSIAN, FLOOR = "Gaussian z_sem", "random z_sem (floor)"
SOURCES = (CEILING, DECODER, MODEL, GAUSSIAN, FLOOR)
COLUMNS = ("source", "P_z", "R_z", "fid_z", "P_enc", "R_enc", "fid_enc", "P_pix", "R_pix", "fid_pix", "G2+",
           "grades", "nn_ratio", "copy", "far")
NOTES = [
    "P/R: precision/recall (Kynkaenniemi et al. 2019, k-NN manifolds). _z: sampled z_sem against the reference "
    "images' z_sem (the latent sampler alone; the ceiling row uses the real images' z_sem); _enc: decoded samples "
    "re-encoded by the run's encoder; _pix: pixels projected on the training images' top principal components.",
    "G2+: fraction read as grade >= 2 by the grader (from re-encoded samples); grades: fraction per grade.",
    "nn_ratio: median pixel distance of a sample to its nearest training image over that of held-out images "
    "(< 1: closer than new real images, copying); copy: fraction closer than the held-out 5% quantile (about "
    "0.05 without copying); far: fraction farther than the held-out 95% quantile (about 0.05; more: broken "
    "or off-data samples).",
]


@dataclass
class GenerationResult:
    """Rows of :func:`evaluate_generation`, the images of each row and the settings used."""

    rows: list[MetricRow]
    images: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rows]

    def row(self, source: str) -> dict[str, Any]:
        return next(r.as_dict() for r in self.rows if r.setting["source"] == source)


def gaussian_latents(z_train: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws from N(mean, cov) of ``z_train`` (covariance square root by eigendecomposition, PSD-safe)."""
    z = z_train.double()
    mu = z.mean(0)
    cov = torch.cov(z.T)
    lam, vec = torch.linalg.eigh(cov)
    root = vec * lam.clamp_min(0).sqrt()
    eps = torch.randn(int(n), z.shape[1], generator=generator, dtype=torch.float64)
    return (mu + eps @ root.T).float()


def _grade_mix(grades: np.ndarray, scale: Sequence[int]) -> tuple[float, str]:
    fractions = [float(np.mean(grades == g)) for g in scale]
    return float(np.mean(grades >= 2)), " ".join(f"G{g}:{f:.2f}" for g, f in zip(scale, fractions))


@torch.no_grad()
def evaluate_generation(dae, latent_ddim, heldout: Any, train: Any, *, n: int | None = None, steps: int = 30,
                        latent_steps: int = 50, k: int = 3, pca_components: int = 64, grader=None,
                        heldout_grades: Sequence[float] | None = None, sources: Sequence[str] = SOURCES,
                        latents: dict[str, Any] | None = None, batch_size: int = 64, seed: int = 0,
                        progress: bool = True) -> GenerationResult:
    """Score ``n`` samples of each source against held-out real images (see the module docstring).

    Args:
        dae, latent_ddim: the run's DAE and latent DDIM (eval mode).
        heldout: real images the DAE was not trained on (tensor ``[M, C, ...]`` or data set);
            a seeded random ``M - n`` of them are the reference, the other ``n`` the ceiling row.
        train: the DAE's training images (PCA fit, N(mean, cov) of their latents, memorisation).
        n: samples per row (default ``M // 2``).
        steps, latent_steps: DDIM steps of the image decoder and of the latent sampler.
        grader: a fitted :class:`~latentmed.latent.HyperplaneGrader` on this DAE's z_sem, or None.
        heldout_grades: true grades of ``heldout`` (same order), for the data's G2+ fraction.
        sources: which rows to compute (a subset of :data:`SOURCES`, in that order).
        latents: extra rows ``{name: z_sem [n, d]}`` decoded and scored like the samples (e.g.
            another latent sampler), after ``sources``.
    """
    from tqdm.auto import tqdm

    bad = [s for s in sources if s not in SOURCES]
    if bad or not (sources or latents):
        raise LatentmedError(f"unknown source(s) {bad or list(sources)!r}; expected some of {list(SOURCES)}.")
    x_held = _images_tensor(heldout, None)
    x_train = _images_tensor(train, None)
    dae.check_images(x_held[:1], "held-out images")
    dae.check_images(x_train[:1], "training images")
    m = x_held.shape[0]
    n = int(n) if n is not None else m // 2
    if n <= k or m - n <= k:
        raise LatentmedError(f"{m} held-out images cannot give n={n} ceiling images and {m - n} reference images "
                             f"with more than k={k} each; pass more held-out images or a smaller n.")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(m, generator=gen)
    ref_idx, ceil_idx = perm[: m - n], perm[m - n:]
    x_ref, x_ceil = x_held[ref_idx], x_held[ceil_idx]

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([dae.encode(b.to(dae.device)).cpu() for b in x.split(int(batch_size))])

    z_train, z_ref = encode(x_train), encode(x_ref)
    pca = PixelPCA(pca_components, random_state=seed).fit(x_train)
    f_ref = pca(x_ref)
    c = dae.config
    x_T = torch.randn((n, c.in_channels, *([c.image_size] * c.dims)), generator=gen)
    latents_all = {CEILING: encode(x_ceil)}
    latents_all[DECODER] = latents_all[CEILING]
    if MODEL in sources:
        latents_all[MODEL] = latent_ddim.sample(n, steps=int(latent_steps), generator=gen).cpu()
    if GAUSSIAN in sources:
        latents_all[GAUSSIAN] = gaussian_latents(z_train, n, gen)
    if FLOOR in sources:
        latents_all[FLOOR] = torch.randn(n, z_train.shape[1], generator=gen)
    for name, z in (latents or {}).items():
        z = torch.as_tensor(z).float().cpu()
        if name in SOURCES or z.shape != (n, z_train.shape[1]):
            raise LatentmedError(f"latents[{name!r}]: expected a new row name and z_sem of shape "
                                 f"({n}, {z_train.shape[1]}), got shape {tuple(z.shape)}.")
        latents_all[name] = z
    scale = [int(g) for g in grader.classes_] if grader is not None else []

    rows, images = [], {}
    names = [*sources, *(latents or {})]
    bar = tqdm(total=len(names), desc="generation", disable=not progress)
    for source in names:
        z = latents_all[source]
        if source == CEILING:
            x, z_enc = x_ceil, z
        else:
            x = torch.cat([dae.decode(zb.to(dae.device), xb.to(dae.device), steps=int(steps)).clamp(-1, 1).cpu()
                           for zb, xb in zip(z.split(int(batch_size)), x_T.split(int(batch_size)))])
            z_enc = encode(x)
        images[source] = x
        f_x = pca(x)
        pr_z, pr_e, pr_p = (precision_recall(a, b, k) for a, b in ((z_ref, z), (z_ref, z_enc), (f_ref, f_x)))
        metrics = {"P_z": pr_z["precision"], "R_z": pr_z["recall"], "fid_z": frechet_feature_distance(z_ref, z),
                   "P_enc": pr_e["precision"], "R_enc": pr_e["recall"],
                   "fid_enc": frechet_feature_distance(z_ref, z_enc),
                   "P_pix": pr_p["precision"], "R_pix": pr_p["recall"], "fid_pix": frechet_feature_distance(f_ref, f_x)}
        extra: dict[str, Any] = {}
        if grader is not None:
            metrics["G2+"], extra["grades"] = _grade_mix(np.asarray(grader.predict(z_enc.double().numpy())), scale)
        mem = memorisation(x.flatten(1), x_ref.flatten(1), x_train.flatten(1))
        metrics.update({"nn_ratio": mem["nn_ratio"], "copy": mem["copy_fraction"], "far": mem["far_fraction"]})
        rows.append(MetricRow({"source": source}, metrics, extra))
        bar.update(1)
    bar.close()
    meta = {"n": n, "n_reference": m - n, "n_train": int(x_train.shape[0]), "k": int(k), "decoder steps": int(steps),
            "latent steps": int(latent_steps), "seed": int(seed),
            "pixel PCA": f"{pca.pca_.n_components_} components, {pca.explained_variance_ratio:.1%} of the training "
                         "pixel variance"}
    if heldout_grades is not None:
        y = np.asarray(heldout_grades, dtype=float)
        if len(y) != m:
            raise LatentmedError(f"heldout_grades has {len(y)} values for {m} held-out images.")
        y = y[~np.isnan(y)]
        meta["data G2+ (labels)"] = round(float(np.mean(y >= 2)), 4) if len(y) else float("nan")
    return GenerationResult(rows, images, meta)
