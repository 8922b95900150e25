"""How far a generator's images move from their own source, and whether they keep its labels.

DiNO-Diffusion's mechanism (Sec. 2.2-2.3) is that the global tokens are a bottleneck which
"introduces semantic variability" while keeping the label. Measured here per synthetic image
``i`` made from real image ``s(i)`` (a reconstruction's source; an interpolation's closer source):

- ``d_source = ||f(x_i) - f(x_s(i))||``, its distance to its own source, in a feature space ``f``;
- ``d_nearest_real = min_{j != s(i)} ||f(x_s(i)) - f(x_j)||``, how far the source is from the
  nearest other real image of the same set (the scale at which "another image" begins);
- ``variation = d_source / d_nearest_real``: 0 for a copy, about 1 when the synthetic image is as
  far from its source as the nearest other real image is;
- ``agreement``: the fraction of the source's labels that a classifier trained on real images
  (the gate, :func:`latentmed.ldm.augment.label_readback`) reads back from the synthetic image.

Two feature spaces: ``pixels`` (RMS difference of the pixels) and the gate classifier's penultimate
features (:func:`classifier_features`), the same for every conditioner so that they compare.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from latentmed.errors import expect


def pixel_rms(x: torch.Tensor) -> torch.Tensor:
    """Pixels as features scaled so that Euclidean distance is the RMS pixel difference."""
    f = x.double().flatten(1)
    return f / f.shape[1] ** 0.5


def classifier_features(model: nn.Module, batch_size: int = 256) -> Callable[[torch.Tensor], torch.Tensor]:
    """Images -> the input of the classifier's last ``nn.Linear`` (its penultimate features), in eval mode."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    expect(len(last) > 0, f"{type(model).__name__} has no nn.Linear head to take penultimate features from.")

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        seen = []
        hook = last[-1].register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().flatten(1)))
        try:
            model.eval()
            for chunk in x.split(batch_size):
                model(chunk.float())
        finally:
            hook.remove()
        return torch.cat(seen).double()

    return features


def source_variation(synthetic: torch.Tensor, sources: np.ndarray, real: torch.Tensor,
                     features: Callable[[torch.Tensor], torch.Tensor] = pixel_rms) -> dict[str, np.ndarray]:
    """``{"d_source", "d_nearest_real", "variation"}`` per synthetic image (module docstring); ``sources[i]``
    indexes ``real`` (at least 2 images)."""
    sources = np.asarray(sources, dtype=np.int64)
    expect(len(synthetic) == len(sources) > 0, f"{len(synthetic)} synthetic images but {len(sources)} sources; "
                                               "give one source index per synthetic image.")
    expect(len(real) >= 2 and sources.min() >= 0 and sources.max() < len(real),
           f"sources must index the {len(real)} real images (>= 2 needed), got range "
           f"[{sources.min()}, {sources.max()}].")
    fs, fr = features(synthetic), features(real)
    d_real = torch.cdist(fr, fr)
    d_real.fill_diagonal_(float("inf"))
    nearest = d_real.min(1).values.numpy()[sources]
    d_src = (fs - fr[torch.as_tensor(sources)]).norm(dim=1).numpy()
    return {"d_source": d_src, "d_nearest_real": nearest, "variation": d_src / np.maximum(nearest, 1e-12)}


def label_agreement(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image, the fraction of ``labels [N, L]`` that ``probabilities [N, L]`` read back at 0.5."""
    return ((np.asarray(probabilities) > 0.5) == np.asarray(labels).astype(bool)).mean(1)


@dataclass
class VariationResult:
    """Per-image variation in pixels and in the gate's features, and label agreement, for one generator."""

    name: str
    pixels: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    agreement: np.ndarray

    def summary(self) -> dict[str, float]:
        """Medians of the variations and distances, and the mean agreement."""
        out = {f"{space}_{k}_median": float(np.median(v)) for space, d in (("pixel", self.pixels),
                                                                          ("feature", self.features))
               for k, v in d.items()}
        return {**out, "agreement_mean": float(self.agreement.mean()), "n": int(len(self.agreement))}

    def to_dict(self) -> dict:
        """JSON-able: the summary and the per-image arrays as lists (:meth:`from_dict` reads it back)."""
        return {"name": self.name, "summary": self.summary(), "agreement": self.agreement.tolist(),
                **{space: {k: v.tolist() for k, v in getattr(self, space).items()} for space in ("pixels", "features")}}

    @classmethod
    def from_dict(cls, d: dict) -> "VariationResult":
        arrays = {space: {k: np.asarray(v) for k, v in d[space].items()} for space in ("pixels", "features")}
        return cls(d["name"], arrays["pixels"], arrays["features"], np.asarray(d["agreement"]))


def measure_variation(name: str, synthetic: torch.Tensor, y_syn: np.ndarray, sources: np.ndarray,
                      real: torch.Tensor, gate: nn.Module) -> VariationResult:
    """:class:`VariationResult` of ``synthetic`` images (labels ``y_syn``, made from ``real[sources]``), with the
    gate classifier ``gate`` (trained on real images) as feature space and label reader."""
    from latentmed.train.classifier import predict_logits

    return VariationResult(name, source_variation(synthetic, sources, real),
                           source_variation(synthetic, sources, real, classifier_features(gate)),
                           label_agreement(torch.sigmoid(predict_logits(gate, synthetic)).numpy(), y_syn))


def ldm_variation(ldm, x: torch.Tensor, y: np.ndarray, gate: nn.Module, strategy: str = "reconstruction",
                  n: int | None = None, steps: int = 20, seed: int = 0) -> VariationResult:
    """:func:`measure_variation` of ``n`` (default ``len(x)``) images a DiNO-Diffusion run makes from ``x``
    (:func:`~latentmed.ldm.synthesis.synthesize`; an interpolation's source is its closer parent)."""
    from latentmed.ldm.synthesis import synthesize

    syn, y_syn, parents = synthesize(ldm, x, y, strategy, n or len(x), steps=steps, seed=seed)
    return measure_variation(strategy, syn, y_syn, np.array([p[0] for p in parents]), x, gate)


def save_variation_plot(results: Mapping[str, VariationResult], path: str | os.PathLike, space: str = "features",
                        bins: int = 6) -> Path:
    """Label agreement against variation (``space``: ``features`` or ``pixels``), one colour per generator:
    the images as faint points and the mean agreement per variation quantile bin as a line."""
    from latentmed.viz.figure import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(5.5, 3.8), dpi=120)
    for name, r in results.items():
        v = getattr(r, space)["variation"]
        pts = ax.scatter(v, r.agreement + np.random.default_rng(0).uniform(-0.02, 0.02, len(v)), s=4, alpha=0.25)
        edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
        which = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
        mids = [(v[which == b].mean(), r.agreement[which == b].mean()) for b in range(len(edges) - 1)
                if (which == b).any()]
        ax.plot(*zip(*mids), marker="o", color=pts.get_facecolor()[0][:3],
                label=f"{name} (median {np.median(v):.2f})")
    ax.axvline(1.0, ls="--", lw=1, color="grey")
    ax.set_xlabel(f"variation: distance to own source / source's nearest other real ({space})", fontsize=8)
    ax.set_ylabel("labels read back by the gate")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["VariationResult", "classifier_features", "label_agreement", "ldm_variation", "measure_variation",
           "pixel_rms", "save_variation_plot", "source_variation"]
