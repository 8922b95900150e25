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


@dataclass
class GenerationSettings:
    """How :func:`evaluate_generation` samples and scores.

    ``n``: samples per row (default: half the held-out images; the other half is the reference);
    ``steps`` / ``latent_steps``: DDIM steps of the image decoder and of the latent sampler; ``k``:
    neighbours of the precision/recall manifolds; ``pca_components``: width of the pixel features;
    ``sources``: which rows (a subset of :data:`SOURCES`, in that order); ``batch_size``; ``seed``.
    """

    n: int | None = None
    steps: int = 30
    latent_steps: int = 50
    k: int = 3
    pca_components: int = 64
    sources: Sequence[str] = SOURCES
    batch_size: int = 64
    seed: int = 0


def grade2_fraction(grades: Sequence[float]) -> float:
    """The fraction of labelled images with grade >= 2 (NaN labels left out): the data's ``G2+``."""
    y = np.asarray(grades, dtype=float)
    y = y[~np.isnan(y)]
    return round(float(np.mean(y >= 2)), 4) if len(y) else float("nan")


@torch.no_grad()
def evaluate_generation(dae, latent_ddim, heldout: Any, train: Any, settings: GenerationSettings | None = None, *,
                        grader=None, latents: dict[str, Any] | None = None, progress: bool = True
                        ) -> GenerationResult:
    """Score samples of each source against held-out real images (see the module docstring).

    Args:
        dae, latent_ddim: the run's DAE and latent DDIM (eval mode).
        heldout: real images the DAE was not trained on (tensor ``[M, C, ...]`` or data set); a
            seeded random ``M - n`` of them are the reference, the other ``n`` the ceiling row.
        train: the DAE's training images (PCA fit, N(mean, cov) of their latents, memorisation).
        settings: :class:`GenerationSettings` (defaults if None).
        grader: a fitted :class:`~latentmed.latent.HyperplaneGrader` on this DAE's z_sem, or None.
        latents: extra rows ``{name: z_sem [n, d]}`` decoded and scored like the samples (e.g.
            another latent sampler), after ``settings.sources``.

    Returns the rows (one :class:`MetricRow` per source), the images of each row and the settings
    used; :func:`write_generation` writes them.
    """
    from tqdm.auto import tqdm

    s = settings or GenerationSettings()
    bad = [src for src in s.sources if src not in SOURCES]
    if bad or not (s.sources or latents):
        raise LatentmedError(f"unknown source(s) {bad or list(s.sources)!r}; expected some of {list(SOURCES)}.")
    x_held, x_train = _images_tensor(heldout, None), _images_tensor(train, None)
    dae.check_images(x_held[:1], "held-out images")
    dae.check_images(x_train[:1], "training images")
    gen = torch.Generator().manual_seed(int(s.seed))
    n, x_ref, x_ceil = _split_heldout(x_held, s, gen)
    refs = _References(dae, x_ref, x_train, s)
    c = dae.config
    x_T = torch.randn((n, c.in_channels, *([c.image_size] * c.dims)), generator=gen)
    rows_z = _row_latents(latent_ddim, refs, refs.encode(x_ceil), s, latents, n, gen)
    rows, images = [], {}
    for source in tqdm(rows_z, desc="generation", disable=not progress):
        z = rows_z[source]
        if source == CEILING:
            x = x_ceil
        else:
            x = torch.cat([dae.decode(zb.to(dae.device), xb.to(dae.device), steps=int(s.steps)).clamp(-1, 1).cpu()
                           for zb, xb in zip(z.split(int(s.batch_size)), x_T.split(int(s.batch_size)))])
        images[source] = x
        rows.append(refs.score(source, x, z, z if source == CEILING else refs.encode(x), grader))
    meta = {"n": n, "n_reference": len(x_ref), "n_train": int(x_train.shape[0]), "k": int(s.k),
            "decoder steps": int(s.steps), "latent steps": int(s.latent_steps), "seed": int(s.seed),
            "pixel PCA": f"{refs.pca.pca_.n_components_} components, {refs.pca.explained_variance_ratio:.1%} of the "
                         "training pixel variance"}
    return GenerationResult(rows, images, meta)


def _split_heldout(x_held: torch.Tensor, s: GenerationSettings, gen: torch.Generator):
    """``(n, reference, ceiling)``: a seeded random split of the held-out images."""
    m = x_held.shape[0]
    n = int(s.n) if s.n is not None else m // 2
    if n <= s.k or m - n <= s.k:
        raise LatentmedError(f"{m} held-out images cannot give n={n} ceiling images and {m - n} reference images "
                             f"with more than k={s.k} each; pass more held-out images or a smaller n.")
    perm = torch.randperm(m, generator=gen)
    return n, x_held[perm[: m - n]], x_held[perm[m - n:]]


class _References:
    """What every row is scored against: the reference images, their z_sem and pixel features, the training set."""

    def __init__(self, dae, x_ref: torch.Tensor, x_train: torch.Tensor, s: GenerationSettings):
        self.dae, self.x_ref, self.x_train, self.s = dae, x_ref, x_train, s
        self.z_train, self.z_ref = self.encode(x_train), self.encode(x_ref)
        self.pca = PixelPCA(s.pca_components, random_state=s.seed).fit(x_train)
        self.f_ref = self.pca(x_ref)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.dae.encode(b.to(self.dae.device)).cpu() for b in x.split(int(self.s.batch_size))])

    def score(self, source: str, x: torch.Tensor, z: torch.Tensor, z_enc: torch.Tensor, grader) -> MetricRow:
        """One row: precision/recall and FID in the three feature spaces, the grade mix, memorisation."""
        k, f_x = self.s.k, self.pca(x)
        pairs = ((self.z_ref, z), (self.z_ref, z_enc), (self.f_ref, f_x))
        pr_z, pr_e, pr_p = (precision_recall(a, b, k) for a, b in pairs)
        metrics = {"P_z": pr_z["precision"], "R_z": pr_z["recall"], "fid_z": frechet_feature_distance(self.z_ref, z),
                   "P_enc": pr_e["precision"], "R_enc": pr_e["recall"],
                   "fid_enc": frechet_feature_distance(self.z_ref, z_enc),
                   "P_pix": pr_p["precision"], "R_pix": pr_p["recall"],
                   "fid_pix": frechet_feature_distance(self.f_ref, f_x)}
        extra: dict[str, Any] = {}
        if grader is not None:
            scale = [int(g) for g in grader.classes_]
            metrics["G2+"], extra["grades"] = _grade_mix(np.asarray(grader.predict(z_enc.double().numpy())), scale)
        mem = memorisation(x.flatten(1), self.x_ref.flatten(1), self.x_train.flatten(1))
        metrics.update({"nn_ratio": mem["nn_ratio"], "copy": mem["copy_fraction"], "far": mem["far_fraction"]})
        return MetricRow({"source": source}, metrics, extra)


def _row_latents(latent_ddim, refs: _References, z_ceil: torch.Tensor, s: GenerationSettings,
                 latents: dict[str, Any] | None, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The z_sem of each row, in row order (the draws in a fixed order: same seed, same rows)."""
    d = refs.z_train.shape[1]
    made = {CEILING: z_ceil, DECODER: z_ceil}
    if MODEL in s.sources:
        made[MODEL] = latent_ddim.sample(n, steps=int(s.latent_steps), generator=gen).cpu()
    if GAUSSIAN in s.sources:
        made[GAUSSIAN] = gaussian_latents(refs.z_train, n, gen)
    if FLOOR in s.sources:
        made[FLOOR] = torch.randn(n, d, generator=gen)
    out = {src: made[src] for src in s.sources}
    for name, z in (latents or {}).items():
        z = torch.as_tensor(z).float().cpu()
        if name in SOURCES or z.shape != (n, d):
            raise LatentmedError(f"latents[{name!r}]: expected a new row name and z_sem of shape ({n}, {d}), got "
                                 f"shape {tuple(z.shape)}.")
        out[name] = z
    return out


def write_generation(result: GenerationResult, out, *, name: str = "generation",
                     title: str = "DAE generation: samples against held-out images", meta: dict | None = None,
                     grids: bool = True) -> dict:
    """Write ``OUT/<name>.md`` / ``.json`` (the rows, :data:`NOTES`) and, with ``grids``, one
    ``samples_<source>.png`` grid per decoded row; returns the report's paths."""
    from pathlib import Path

    from latentmed.evaluation.report import write_report
    from latentmed.viz import save_image_grid

    out = Path(out)
    if grids:
        for source, images in result.images.items():
            if images.ndim == 4:
                save_image_grid(images[:64], out / f"samples_{source.split(' (')[0].replace(' ', '_')}.png", nrow=8)
    graded = any("G2+" in r.metrics for r in result.rows)
    columns = [c for c in COLUMNS if graded or c not in ("G2+", "grades")]
    return write_report(out, name, title, result.records(), columns=columns, meta={**result.meta, **(meta or {})},
                        notes=NOTES)
