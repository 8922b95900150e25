"""Counterfactual latents and images (Keicher, Atad et al.).

Latent math (pure numpy, any hyperplane with unit normal ``n`` and offset ``b``,
``dist(w) = n.w + b``):

- :func:`reflect`: binary counterfactual ``w_ce = w - 2 dist(w) n`` (same distance, other side);
- :func:`move_to_distance`: ``w + (d* - dist(w)) n`` lands exactly at distance ``d*``;
- :func:`traverse`: ``k`` latents along ``n`` between two distances.

Each also takes a ``direction`` ``u`` to move along instead of ``n``: ``w + s u`` with
``s = (d* - dist(w)) / (n.u)`` lands at the same distance ``d*`` (only the component along ``n``
changes the distance). :func:`move_direction` gives four directions from a fitted grader:

- ``"normal"``: ``n`` itself, the papers' choice and the shortest move;
- ``"normal-std"``: the normal taken in standardised space, mapped back, ``diag(Cov z) n`` (DiffAE's
  ``manipulate`` moves along the classifier normal in z-scored space);
- ``"means"``: the difference of the class means (positive minus negative training latents);
- ``"pattern"``: the probe's activation pattern ``Cov(z) n`` (Haufe et al. 2014, NeuroImage 87, eq. 6).

Why the normal can be invisible: a max-margin normal is a *filter*. It weighs latent coordinates to
cancel what varies within the classes (level, texture, noise), so it can point where z_sem hardly
varies over the data; the decoder never saw latents change along it and draws almost nothing
there. ``Cov(z) n`` is the *pattern* the filter reads: the direction in which the data actually
change as the probe's score changes (for two classes with shared covariance it is parallel to the
class-mean difference). Moving along it changes what the decoder learned to draw
(``experiments/counterfactuals.md``).
:func:`make_counterfactuals` decodes them with a diffusion autoencoder, each image with its own
stochastic code ``x_T`` from DDIM inversion on the same step grid as decoding, so the
"unchanged" latent reproduces the input (its PSNR is reported).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from latentmed.errors import LatentmedError, expect
from latentmed.latent.probe import signed_distance


def _unit(normal) -> np.ndarray:
    n = np.asarray(normal, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(n)
    expect(norm > 0, "the hyperplane normal is zero; the probe did not separate the classes.")
    return n / norm


def _step(normal, direction) -> np.ndarray:
    """The vector that changes the signed distance by exactly 1: ``u / (n.u)`` (``n`` itself by default)."""
    n = _unit(normal)
    if direction is None:
        return n
    u = np.asarray(direction, dtype=np.float64).reshape(-1)
    expect(u.shape == n.shape, f"direction has {u.size} dimensions; the latents have {n.size}.")
    expect(np.linalg.norm(u) > 0, "the move direction is zero (are the class means equal?); use direction='normal'.")
    cos = float(n @ u) / np.linalg.norm(u)
    # the pattern and the means had cosines 0.10-0.24 on the phantom (experiments/counterfactuals.md); below 0.02 a grade
    # step would be over 50 times longer than along the normal
    expect(cos > 0.02, f"the move direction has cosine {cos:.3f} with the hyperplane's normal; it must point to the "
                       "positive side (cosine > 0.02), else reaching a grade takes a huge or backward step; "
                       "use direction='normal'.")
    return u / float(n @ u)


def move_to_distance(z, normal, offset: float, distance, direction=None) -> np.ndarray:
    """Move each row of ``z`` to signed distance ``distance`` (scalar or per row), along the normal or ``direction``."""
    z = np.asarray(z, dtype=np.float64)
    d = signed_distance(z, normal, offset)
    return z + (np.asarray(distance, dtype=np.float64) - d)[..., None] * _step(normal, direction)


def reflect(z, normal, offset: float, direction=None) -> np.ndarray:
    """Binary counterfactual by reflection: ``w_ce = w - 2 dist(w) n / ||n||`` (distance kept, side flipped).

    With ``direction`` ``u``: ``w - 2 dist(w) u / (n.u)``, which lands at ``-dist(w)`` as well.
    """
    z = np.asarray(z, dtype=np.float64)
    return z - 2.0 * signed_distance(z, normal, offset)[..., None] * _step(normal, direction)


def traverse(z, normal, offset: float, start: float, stop: float, k: int, direction=None) -> np.ndarray:
    """``[N, k, d]`` latents at ``k`` evenly spaced signed distances from ``start`` to ``stop``."""
    expect(int(k) >= 2, f"a traversal needs k >= 2 points; got {k}.")
    distances = np.linspace(float(start), float(stop), int(k))
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    return np.stack([move_to_distance(z, normal, offset, d, direction) for d in distances], axis=1)


DIRECTIONS = ("normal", "normal-std", "means", "pattern")
#: The default move direction of the CLI and the demo (chosen by held-out follow slope, experiments/counterfactuals.md).
DEFAULT_DIRECTION = "pattern"
_GRADER_ATTRIBUTE = {"normal-std": "latent_var_", "means": "class_means_", "pattern": "pattern_"}


def move_direction(grader, direction: str = DEFAULT_DIRECTION) -> np.ndarray | None:
    """The move direction ``u`` of a fitted grader (``None`` for its hyperplane normal); see the module docstring."""
    expect(direction in DIRECTIONS, f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}.")
    if direction == "normal":
        return None
    expect(hasattr(grader, _GRADER_ATTRIBUTE[direction]),
           f"this grader has no {_GRADER_ATTRIBUTE[direction]} (saved by an older latentmed) for direction "
           f"{direction!r}; refit it with `latentmed grade fit`, or use direction='normal'.")
    if direction == "means":
        return grader.class_means_[1] - grader.class_means_[0]
    if direction == "normal-std":
        return grader.latent_var_ * grader.normal_
    return grader.pattern_


def grade_latents(grader, z, grades: Sequence[float], direction: str = DEFAULT_DIRECTION) -> tuple[np.ndarray, np.ndarray]:
    """Latents of each row of ``z`` moved to each target grade: ``([N, G, d], distances [G])``."""
    distances = np.atleast_1d(grader.inverse_calibrate(np.asarray(grades, dtype=np.float64)))
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    u = move_direction(grader, direction)
    moved = np.stack([move_to_distance(z, grader.normal_, grader.offset_, d, u) for d in distances], axis=1)
    return moved, distances


@dataclasses.dataclass
class CounterfactualResult:
    """What :func:`make_counterfactuals` produced (images in [-1, 1], numpy ``[N, C, H, W]``)."""

    ids: list[str]
    originals: np.ndarray
    reconstructions: np.ndarray
    counterfactuals: np.ndarray          # [N, G, C, H, W]
    labels: list[str]                    # G column labels ("G-1", ..., or "flipped")
    target_distances: np.ndarray         # [N, G]
    predicted_grade: np.ndarray          # [N] continuous grade of the original latent
    original_distance: np.ndarray        # [N]
    reconstruction_psnr: np.ndarray      # [N] dB
    counterfactual_grade: np.ndarray     # [N, G] grader's continuous grade of each re-encoded counterfactual
    target_grades: list[float] = dataclasses.field(default_factory=list)  # the grade columns' targets
    files: list[str] = dataclasses.field(default_factory=list)
    direction: str = ""                  # the move direction (DIRECTIONS)
    encoder: str = ""                    # the DAE's semantic encoder head (DAEConfig.encoder_head)

    def follow_slope(self) -> np.ndarray:
        """``[N]`` least-squares slope of the re-encoded grade against the target grade, per image.

        1 means the decoded images carry the grade they were asked for; 0 means the decoder ignored
        the move along the normal (the images only look like their reconstruction). NaN without
        at least two target grades.
        """
        t = np.asarray(self.target_grades, dtype=np.float64)
        if len(t) < 2:
            return np.full(len(self.ids), np.nan)
        got = self.counterfactual_grade[:, :len(t)]
        tc = t - t.mean()
        return (got - got.mean(1, keepdims=True)) @ tc / (tc @ tc)

    def centre_change(self, box: float = 0.5) -> np.ndarray:
        """``[N]`` largest ``|counterfactual - reconstruction|`` (channel mean, image units) in the central box.

        The box is the middle ``box`` fraction of each spatial axis (the graded structure of a centred
        crop, e.g. the centre vertebra's endplates). 0 means the strips look like the reconstruction;
        the issue's bar for a visible change is 0.3.
        """
        diff = np.abs(self.counterfactuals - self.reconstructions[:, None]).mean(axis=2)  # [N, G, *spatial]
        crop = tuple(slice(int(round(n * (1 - box) / 2)), int(round(n * (1 + box) / 2))) for n in diff.shape[2:])
        return diff[(slice(None), slice(None)) + crop].reshape(len(diff), -1).max(axis=1)

    def summary(self) -> dict:
        return {"ids": self.ids, "labels": self.labels, "direction": self.direction, "encoder": self.encoder,
                "predicted_grade": self.predicted_grade.round(4).tolist(),
                "original_distance": self.original_distance.round(4).tolist(),
                "target_distances": self.target_distances.round(4).tolist(),
                "counterfactual_grade": self.counterfactual_grade.round(4).tolist(),
                "reconstruction_psnr_db": self.reconstruction_psnr.round(3).tolist(),
                "mean_reconstruction_psnr_db": float(np.mean(self.reconstruction_psnr)),
                "target_grades": list(self.target_grades),
                "follow_slope": [None if np.isnan(v) else round(float(v), 4) for v in self.follow_slope()],
                "centre_change": self.centre_change().round(4).tolist(),
                "files": self.files}


def make_counterfactuals(dae, images, ids: Sequence[str], grader, grades: Sequence[float] | None = None,
                         steps: int = 50, out_dir: str | os.PathLike | None = None, *, flip: bool = False,
                         direction: str = DEFAULT_DIRECTION, batch_size: int = 16, seed: int = 0,
                         progress: bool = False, inversion_steps: int | None = None) -> CounterfactualResult:
    """Counterfactual images of each input at target ``grades`` (and/or flipped across the hyperplane).

    ``images``: ``[N, C, H, W]`` in [-1, 1] (tensor or array). Each image is encoded to ``z_sem``, inverted
    to its own ``x_T`` with ``steps`` DDIM steps, and every latent (the unchanged one, each grade's, the
    reflection) is decoded from that ``x_T`` on the same ``steps`` grid. Returns a
    :class:`CounterfactualResult`; with ``out_dir``, writes ``<id>.png`` strips (original, reconstruction,
    counterfactuals labelled by grade, signed difference maps) and ``counterfactuals.json``.
    ``direction``: one of :data:`DIRECTIONS` (``"normal"`` is the papers'); whichever, each latent lands
    exactly at its target distance. ``inversion_steps`` inverts on its own grid instead (the papers
    invert with 250 steps and decode with 100).
    """
    import torch

    from latentmed.metrics.image import psnr

    expect(grades or flip, "give target grades (e.g. -1,0,1,2,3,4) and/or flip=True for the binary counterfactual.")
    grades = [float(g) for g in (grades or [])]
    u = move_direction(grader, direction)
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images).float()
    expect(x.ndim == 4, f"images must be [N, C, H, W]; got shape {tuple(x.shape)}.")
    ids = [str(i) for i in ids]
    expect(len(ids) == len(x), f"{len(ids)} ids for {len(x)} images.")
    device = next(dae.parameters()).device if hasattr(dae, "parameters") else torch.device("cpu")
    labels = [_grade_label(g) for g in grades] + (["flipped"] if flip else [])
    n_cols = len(labels)
    recon, cfs, z_all, targets = [], [], [], []
    batches = range(0, len(x), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="counterfactuals", unit="batch")
    with torch.no_grad():
        for start in batches:
            xb = x[start:start + batch_size].to(device)
            z = dae.encode(xb)
            grader.check_latents(z.cpu().numpy(), getattr(dae, "model_id", None), source="the DAE's latents")
            x_T = dae.encode_stochastic(xb, z, steps=inversion_steps or steps)
            zn = z.double().cpu().numpy()
            columns, dists = [], []
            if grades:
                moved, d = grade_latents(grader, zn, grades, direction)
                columns += [moved[:, j] for j in range(len(grades))]
                dists += [np.broadcast_to(d[j], (len(zn),)) for j in range(len(grades))]
            if flip:
                columns.append(reflect(zn, grader.normal_, grader.offset_, u))
                dists.append(-grader.signed_distance(zn))
            # one decode call per column: [z, col_1, ..., col_G] all with the same x_T
            lat = np.stack([zn] + columns, axis=0)  # [1+G, B, d]
            decoded = []
            for j in range(lat.shape[0]):
                zj = torch.as_tensor(lat[j], dtype=z.dtype, device=device)
                decoded.append(dae.decode(zj, x_T=x_T, steps=steps).cpu())
            recon.append(decoded[0])
            cfs.append(torch.stack(decoded[1:], dim=1))
            z_all.append(zn)
            targets.append(np.stack(dists, axis=1))
        # grade of each counterfactual as the grader sees it after re-encoding (does the decoder follow?)
        cf = torch.cat(cfs).float()
        flat = cf.reshape(-1, *cf.shape[2:])
        z_cf = torch.cat([dae.encode(flat[i:i + batch_size].to(device)).cpu() for i in range(0, len(flat), batch_size)])
    z_all = np.concatenate(z_all)
    originals = x.cpu().numpy()
    reconstructions = torch.cat(recon).float().numpy()
    result = CounterfactualResult(
        ids=ids, originals=originals, reconstructions=reconstructions, counterfactuals=cf.numpy(), labels=labels,
        target_distances=np.concatenate(targets), predicted_grade=grader.predict_continuous(z_all),
        original_distance=grader.signed_distance(z_all),
        reconstruction_psnr=psnr(originals.astype(np.float64), reconstructions.astype(np.float64)).numpy(),
        counterfactual_grade=grader.predict_continuous(z_cf.double().numpy()).reshape(len(x), n_cols),
        target_grades=grades, direction=direction,
        encoder=dae.config.encoder_head() if hasattr(getattr(dae, "config", None), "encoder_head") else "")
    if out_dir is not None:
        from latentmed.io import write_json
        from latentmed.viz.counterfactual import save_counterfactual_strip

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, image_id in enumerate(ids):
            path = save_counterfactual_strip(
                out_dir / f"{_safe(image_id)}.png", result.originals[i], result.reconstructions[i],
                result.counterfactuals[i], labels, title=f"{image_id}: predicted grade "
                f"{result.predicted_grade[i]:.2f}, reconstruction PSNR {result.reconstruction_psnr[i]:.1f} dB")
            result.files.append(str(path))
        write_json(out_dir / "counterfactuals.json", result.summary())
    return result


def _grade_label(g: float) -> str:
    return f"G{int(g)}" if float(g).is_integer() else f"G{g:g}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def load_images_by_id(data_dir: str | os.PathLike, ids: Sequence[str], channels: int = 1,
                size: int | None = None, read: dict | None = None) -> np.ndarray:
    """Images of ``ids`` from ``DIR/images`` (or ``DIR``) as ``[N, C, H, W]`` float32 in [-1, 1].

    Read with :func:`latentmed.data.open_images` (``read``: its further keyword arguments, e.g.
    ``axis``, ``window``, ``report``); ids match exactly or by file name.
    """
    from latentmed.data import open_images
    from latentmed.data.labels import match_ids

    data_dir = Path(data_dir)
    root = data_dir / "images" if (data_dir / "images").is_dir() else data_dir
    ds = open_images(root, size=size, channels=channels, **(read or {}))
    index = {k: i for i, k in enumerate(ds.ids)}
    match = match_ids([str(i) for i in ids], list(index))
    missing = [i for i in ids if str(i) not in match]
    if missing:
        raise LatentmedError(f"{len(missing)} id(s) have no image in {root}, e.g. {missing[:5]}; "
                             f"image ids there look like {ds.ids[:3]}.")
    return np.stack([ds[index[match[str(i)]]]["image"].numpy() for i in ids]).astype(np.float32)
