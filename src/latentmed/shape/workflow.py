"""The ``latentmed shape`` commands as library functions, one per command, on folders of NIfTI masks.

- :func:`refine_folder`: Algorithm 2 on every coarse mask of a folder;
- :func:`sample_folder`: unconditional samples (Algorithm 3 for LSD-EBM);
- :func:`evaluate_folders`: the paper's Table 1 for the input and each run, latent variance, figures;
- :func:`degrade_folder`: thick-slice simulation of high-quality masks.

Training is :func:`latentmed.shape.training.train_shape_model`. Progress goes through a
``progress(n, total)`` callback (``n`` cases done since the last call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from latentmed.data.formats import is_nifti, write_nifti
from latentmed.errors import expect
from latentmed.shape.volumes import list_masks, load_cube, load_mask, simulate_thick_slices

Progress = Callable[[int, int], None]


def refine_folder(run: str | Path, input_dir: str | Path, out_dir: str | Path, *, steps: int | None = None,
                  seed: int = 0, threshold: float | None = None, batch_size: int = 8, recipe: str | None = None,
                  progress: Progress | None = None) -> dict:
    """Refine every mask of ``input_dir`` with the model of ``run``; write ``out_dir/<same name>``.
    ``recipe``: ``"ours"`` | ``"reference"`` inference (unset: the model's own; see
    :func:`~latentmed.shape.configs.sampler_config`).

    Outputs are cubes of the model's size centred on each input's centre of mass. Returns
    ``{"n": cases, "seconds_per_sample": model time per case}``.
    """
    from latentmed.shape.evaluate import refine_cubes
    from latentmed.shape.models import load_shape_model

    model = load_shape_model(run)
    files = list_masks(input_dir)
    cubes = np.stack([load_cube(f, model.config.image_size, threshold=threshold) for f in files])
    advance = None if progress is None else (lambda k: progress(k, len(files)))
    refined, seconds = refine_cubes(model, cubes, steps=steps, batch_size=batch_size, seed=seed, recipe=recipe,
                                    progress=advance)
    for f, volume in zip(files, refined):
        write_nifti(volume, Path(out_dir) / f.name, dtype=np.uint8)
    return {"n": len(files), "seconds_per_sample": seconds}


def sample_folder(run: str | Path, n: int, out_dir: str | Path, *, seed: int = 0) -> list[Path]:
    """``n`` unconditional samples of the model of ``run`` as ``out_dir/sample_XXXX.nii.gz`` (threshold 0.5)."""
    import torch

    from latentmed.shape.models import load_shape_model

    expect(n >= 1, f"n={n}: expected at least one sample.")
    model = load_shape_model(run)
    probs = model.sample(n, generator=torch.Generator().manual_seed(seed))
    return [write_nifti(p > 0.5, Path(out_dir) / f"sample_{i:04d}.nii.gz", dtype=np.uint8)
            for i, p in enumerate(probs[:, 0].cpu().numpy())]


def evaluate_folders(input_dir: str | Path, truth_dir: str | Path, runs: Mapping[str, str | Path],
                     out_dir: str | Path, *, size: int | None = None, steps: int | None = None, seed: int = 0,
                     figures: int = 3, recipe: str | None = None, controls: bool = False,
                     sweep_points: int | None = None):
    """Table 1 for the coarse input and each run of ``runs`` (``{name: run folder}``) against ``truth_dir``.

    Writes ``table.md``, ``per_case.csv``, ``summary.json``, ``latent_variance.png`` (LSD-EBM runs)
    and mid-slice pictures of the first ``figures`` cases into ``out_dir``; when the truths have part
    maps (``truth_dir/parts/``, as spine3d writes them) the table adds the posterior elements and the
    pictures colour each part; returns the
    :class:`~latentmed.shape.evaluate.EvaluationResult`. ``size`` defaults to the runs' cube size
    (64 without runs). ``recipe``: the inference of every run (unset: each run's own); ``controls``: the
    control rows and direction table of :func:`~latentmed.shape.evaluate.evaluate`.
    """
    from latentmed.data.phantoms.spine3d import PARTS
    from latentmed.shape.evaluate import evaluate, latent_variance_trace, load_pairs, load_part_cubes
    from latentmed.shape.models import LSDEBM, load_shape_model
    from latentmed.viz.shape import save_latent_variance_plot, save_refinement_figure

    models = {"input": None, **{name: load_shape_model(directory) for name, directory in runs.items()}}
    sizes = {m.config.image_size for m in models.values() if m is not None}
    expect(len(sizes) <= 1, f"the runs use different cube sizes {sorted(sizes)}; evaluate them separately.")
    size = size or (sizes.pop() if sizes else 64)
    names, coarse, truth = load_pairs(input_dir, truth_dir, size)
    parts = load_part_cubes(truth_dir, names, size)  # spine3d's parts/ maps: posterior table, part colours
    result, outputs = evaluate(models, coarse, truth, names, steps=steps, seed=seed, keep_outputs=True, parts=parts,
                               recipe=recipe, controls=controls, sweep_points=sweep_points)
    out_dir = Path(out_dir)
    result.save(out_dir)
    traces = {name: latent_variance_trace(m, coarse, steps=steps or m.config.num_steps, seed=seed)
              for name, m in models.items() if isinstance(m, LSDEBM)}
    if traces:
        save_latent_variance_plot(traces, out_dir / "latent_variance.png")
    for i in range(min(figures, len(names))):
        shown = {k: v[i] for k, v in outputs.items() if k in models}  # not the control rows
        save_refinement_figure(truth[i], shown, out_dir / f"case_{i:03d}.png",
                               title=names[i], parts=None if parts is None else parts[i], part_names=PARTS)
    return result


def degrade_folder(source: str | Path, out: str | Path, *, thickness: int = 6, axis: int = 2,
                   partial_volume: float = 0.75, mode: str = "nearest", noise: float = 0.0, blobs: int = 0,
                   seed: int = 0, threshold: float | None = None) -> list[Path]:
    """Simulate thick-slice acquisition (:func:`~latentmed.shape.volumes.simulate_thick_slices`) of a NIfTI
    mask or a folder of them. A file goes to ``out`` (a NIfTI path) or ``out/<name>``; a folder to
    ``out/<name>`` per mask; mask ``i`` uses seed ``seed + i``. Returns the written paths."""
    source, out = Path(source), Path(out)
    files = list_masks(source) if source.is_dir() else [source]
    written = []
    for i, f in enumerate(files):
        mask, _ = load_mask(f, threshold=threshold)
        coarse = simulate_thick_slices(mask, thickness, axis, threshold=partial_volume, mode=mode,
                                       boundary_noise=noise, blobs=blobs, seed=seed + i)
        target = out / f.name if source.is_dir() or not is_nifti(out) else out
        written.append(write_nifti(coarse, target, dtype=np.uint8))
    return written


__all__ = ["degrade_folder", "evaluate_folders", "refine_folder", "sample_folder"]
