"""Speed of the DiNO-Diffusion pieces: VAE / UNet training steps and DDIM sampling throughput.

    OMP_NUM_THREADS=1 python benchmarks/ldm_speed.py --size 32 --vae-channels 16,32,32 --unet-channels 32,64
    python benchmarks/ldm_speed.py --device cuda --size 256 --vae-channels 128,256,512,512 --unet-channels 320,640,1280
"""

from __future__ import annotations

import argparse
import time

import torch


def _time(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vae-channels", default="16,32,32")
    p.add_argument("--unet-channels", default="32,64")
    p.add_argument("--token-width", type=int, default=768, help="768 = ViT-B token width")
    p.add_argument("--tokens", type=int, default=5, help="5 = CLS + 4 registers")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)

    from latentmed.ldm.model import build_unet, build_vae, vae_downsample_factor
    from latentmed.ldm.training import VAEModule

    dev = a.device
    vc = tuple(int(c) for c in a.vae_channels.split(","))
    uc = tuple(int(c) for c in a.unet_channels.split(","))
    vae = VAEModule(build_vae(1, 4, vc, 1, norm_num_groups=min(32, vc[0]), image_size=a.size)).to(dev)
    f = vae_downsample_factor(vae.vae)
    unet = build_unet(4, a.size // f, a.token_width, uc, 1, 8, norm_num_groups=min(32, uc[0])).to(dev)
    x = torch.randn(a.batch, 1, a.size, a.size, device=dev)
    z = torch.randn(a.batch, 4, a.size // f, a.size // f, device=dev)
    c = torch.randn(a.batch, a.tokens, a.token_width, device=dev)
    ov, ou = torch.optim.Adam(vae.parameters()), torch.optim.Adam(unet.parameters())

    def vae_step():
        r, kl = vae(x)
        loss = (r - x).abs().mean() + 1e-6 * kl.mean()
        ov.zero_grad()
        loss.backward()
        ov.step()

    def unet_step():
        loss = unet(z, torch.rand(a.batch, device=dev) * 1000, encoder_hidden_states=c).sample.pow(2).mean()
        ou.zero_grad()
        loss.backward()
        ou.step()

    @torch.no_grad()
    def sample():
        for _ in range(a.sample_steps):
            unet(z, torch.full((a.batch,), 500.0, device=dev), encoder_hidden_states=c)

    n_v = sum(q.numel() for q in vae.parameters()) / 1e6
    n_u = sum(q.numel() for q in unet.parameters()) / 1e6
    print(f"device {dev}, threads {torch.get_num_threads()}, image {a.size}px, latent {a.size // f}px, batch {a.batch}")
    print(f"VAE  {n_v:.2f} M params: {_time(vae_step, a.repeats, dev):.3f} s / train step")
    print(f"UNet {n_u:.2f} M params: {_time(unet_step, a.repeats, dev):.3f} s / train step")
    s = _time(sample, 1, dev)
    print(f"DDIM {a.sample_steps} steps: {s:.3f} s / batch = {a.batch / s:.1f} images / s (UNet only)")


if __name__ == "__main__":
    main()
