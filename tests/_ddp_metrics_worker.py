"""Run by tests/test_metrics_ddp.py under `torchrun --nproc_per_node 2` (gloo on CPU).

Both ranks build the same data; rank 0 updates the metrics with the first 5 samples, rank 1 with
the last 3 (uneven shards). Each rank writes, per metric: the value ``compute()`` gave, the value
of the whole data (functional form, or scikit-learn / scipy), and the value of its own shard only.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from latentmed.metrics import (AUC, FID, PSNR, SSIM, Confusion, Dice, MacroF1, SegmentationScores, dice,
                               feature_statistics, frechet_distance, psnr, segmentation_scores, ssim)

N, SPLIT = 8, 5


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mine = slice(0, SPLIT) if rank == 0 else slice(SPLIT, N)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.linspace(0.05, 0.6, N, dtype=torch.float64).view(N, 1, 1, 1)  # later samples noisier
    y = (x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    truth = torch.rand(N, 12, 12, generator=g) < 0.4
    pred = truth ^ (torch.rand(N, 12, 12, generator=g) < torch.linspace(0.05, 0.5, N).view(N, 1, 1))
    labels = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    scores = np.array([0.2, 0.9, 0.4, 0.6, 0.3, 0.1, 0.35, 0.8])
    grades = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    guesses = np.array([0, 2, 2, 2, 1, 1, 0, 1])
    real = torch.randn(40, 4, generator=g, dtype=torch.float64)
    fake = torch.randn(40, 4, generator=g, dtype=torch.float64) * 1.3 + 0.2
    fshard = slice(0, 25) if rank == 0 else slice(25, 40)

    from scipy.linalg import sqrtm
    from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

    def fid_scipy(a: torch.Tensor, b: torch.Tensor) -> float:  # pytorch-fid's formula
        a, b = a.numpy(), b.numpy()
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real))

    result = {}
    for name, metric, args, whole, local in [
        ("psnr", PSNR(), (x[mine], y[mine]), psnr(x, y).mean(), psnr(x[mine], y[mine]).mean()),
        ("ssim", SSIM(sigma=1.0), (x[mine], y[mine]), ssim(x, y, sigma=1.0).mean(),
         ssim(x[mine], y[mine], sigma=1.0).mean()),
        ("dice", Dice(), (truth[mine], pred[mine]), dice(truth, pred).mean(), dice(truth[mine], pred[mine]).mean()),
        ("auc", AUC(), (labels[mine], scores[mine]), roc_auc_score(labels, scores),
         roc_auc_score(labels[mine], scores[mine])),
        ("macro_f1", MacroF1(), (torch.from_numpy(grades[mine]), guesses[mine]),
         f1_score(grades, guesses, average="macro"), f1_score(grades[mine], guesses[mine], average="macro")),
    ]:
        metric.update(*args)
        result[name] = [float(metric.compute()), float(whole), float(local)]

    seg = SegmentationScores()
    seg.update(truth[mine][:2], pred[mine][:2])  # two updates on a rank: a list state of two tensors
    seg.update(truth[mine][2:], pred[mine][2:])
    got, whole, local = seg.compute(), segmentation_scores(truth, pred), segmentation_scores(truth[mine], pred[mine])
    for key in ("sensitivity", "nmi", "cohen_kappa"):
        result[f"scores_{key}"] = [float(got[key]), float(whole[key].mean()), float(local[key].mean())]
    result["scores_values_n"] = [int(seg.values()["dice"].numel()), N, len(range(N)[mine])]

    conf = Confusion(labels=[0, 1, 2])
    conf.update(grades[mine], guesses[mine])
    result["confusion"] = [conf.compute().tolist(), confusion_matrix(grades, guesses, labels=[0, 1, 2]).tolist(),
                           confusion_matrix(grades[mine], guesses[mine], labels=[0, 1, 2]).tolist()]

    fid = FID(lambda t: t)
    fid.update_features(real[fshard], real=True)
    fid.update(fake[fshard], real=False)
    fid_whole = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    result["fid"] = [float(fid.compute()), fid_scipy(real, fake), fid_scipy(real[fshard], fake[fshard])]
    result["fid_own_formula"] = [float(fid.compute()), float(fid_whole), float(fid_whole)]

    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
