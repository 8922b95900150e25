"""Unit costs of issue 29's DiNO-Diffusion protocol on this machine (one thread), for its run-time estimate.

    OMP_NUM_THREADS=1 python benchmarks/dino_protocol_cost.py

Measures, at the experiment's sizes (32 px images, VAE (16,32,32), UNet (32,64), PCA-64 token):
one UNet training step at batch 32 without and with the paper recipe's augmentation; one synthetic
image at 20 DDIM steps (batch 64); one classifier image-epoch (an image seen once in training) for
the small CNN and for DenseNet-121. Prints JSON (seconds) and the load average.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main() -> dict:
    from latentmed.diffusion import get_schedule
    from latentmed.ldm import PCAConditioner
    from latentmed.ldm.data import augment
    from latentmed.ldm.model import LatentUNet, tiny_ldm
    from latentmed.ldm.training import ldm_loss
    from latentmed.train.classifier import fit_classifier

    torch.manual_seed(0)
    x = torch.rand(64, 1, 32, 32) * 2 - 1
    cond = PCAConditioner.fit(torch.rand(200, 1, 32, 32) * 2 - 1, width=64, image_size=32)
    ldm = tiny_ldm(32, conditioner=cond, vae_channels=(16, 32, 32), unet_channels=(32, 64))
    net = LatentUNet(ldm.unet.train().requires_grad_(True))
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    loss = ldm_loss(ldm.vae, cond, get_schedule("linear"), "eps", ldm.scaling_factor, time_sampling="discrete")

    def step(augmented: bool):
        xb = torch.stack([augment(im, i) for i, im in enumerate(x[:32])]) if augmented else x[:32]
        opt.zero_grad()
        loss(net, {"image": xb}, 0).mean().backward()
        opt.step()

    out = {"unet_step_b32": _time(lambda: step(False), 5), "unet_step_b32_augmented": _time(lambda: step(True), 5)}
    ldm.unet.eval().requires_grad_(False)
    tok = cond(x)
    out["sample_per_image_20_ddim"] = _time(lambda: ldm.sample(tok, steps=20), 2) / len(x)
    y = (np.random.default_rng(0).random((64, 3)) < 0.5).astype(int)
    for arch in ("small", "densenet121"):
        out[f"classifier_image_epoch_{arch}"] = _time(
            lambda: fit_classifier(x, y, arch=arch, epochs=1, batch_size=32, seed=0), 2) / len(x)
    out["load_average_1min"] = os.getloadavg()[0]
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
