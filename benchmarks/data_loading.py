"""Images per second reading a PNG folder lazily vs from the pre-built .npy cache; prints JSON.

    OMP_NUM_THREADS=1 python benchmarks/data_loading.py --n 2000 --size 64

Writes ``n`` grayscale PNGs (smooth random images) into a temporary folder (or ``--dir``), then
times: opening the folder (header scan), one pass of lazy reads, building the cache, and one
pass over the cached dataset; optionally the same through a DataLoader with ``--workers``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_pngs(folder: Path, n: int, size: int, seed: int = 0) -> None:
    from PIL import Image
    from scipy import ndimage

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = ndimage.gaussian_filter(rng.random((size, size)), 1.5)
        a = (a - a.min()) / (np.ptp(a) + 1e-8)
        Image.fromarray((a * 255).astype(np.uint8)).save(folder / f"img_{i:06d}.png")


def _pass(ds) -> float:
    t = time.perf_counter()
    for i in range(len(ds)):
        ds[i]["image"]
    return time.perf_counter() - t


def _loader_pass(ds, workers: int, batch_size: int = 64) -> float:
    from torch.utils.data import DataLoader

    t = time.perf_counter()
    for _ in DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=True):
        pass
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None, help="reuse/keep the PNG folder here")
    parser.add_argument("--workers", type=int, default=0, help="also time a shuffled DataLoader with this many workers")
    args = parser.parse_args()

    from latentmed.data import open_images

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp) / "png"
        if not root.exists() or not any(root.glob("*.png")):
            _write_pngs(root, args.n, args.size)
        t = time.perf_counter()
        lazy = open_images(root)
        t_open = time.perf_counter() - t
        t_lazy = _pass(lazy)
        t = time.perf_counter()
        cached = open_images(root, cache=Path(tmp) / "cache.npy")
        t_build = time.perf_counter() - t
        t_cached = _pass(cached)
        n = len(lazy)
        result = {
            "n_images": n, "image_size": args.size,
            "open_s": round(t_open, 3),
            "lazy_images_per_s": round(n / t_lazy, 1),
            "cache_build_s": round(t_build, 3),
            "cached_images_per_s": round(n / t_cached, 1),
            "speedup": round(t_lazy / t_cached, 2),
        }
        if args.workers:
            result["loader_workers"] = args.workers
            result["lazy_loader_images_per_s"] = round(n / _loader_pass(lazy, args.workers), 1)
            result["cached_loader_images_per_s"] = round(n / _loader_pass(cached, args.workers), 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
