"""Cost of DiffSeg's parts on CPU: UNet pass with and without attention capture, aggregation, merging.

    OMP_NUM_THREADS=2 python benchmarks/segment_diffseg.py --latent 32 --channels 64,128,256
    python benchmarks/segment_diffseg.py --latent 64 --channels 320,640,1280,1280   # SD-1.5-shaped (slow on CPU)

Prints seconds per stage and the peak resident memory, for a randomly initialised
``UNet2DConditionModel`` (timings do not depend on the weights).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--channels", default="64,128,256")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--fp16-maps", action="store_true")
    args = p.parse_args(argv)

    from diffusers import UNet2DConditionModel

    from latentmed.segment.aggregate import aggregate_attention
    from latentmed.segment.capture import capture_self_attention
    from latentmed.segment.merge import segment_attention

    ch = tuple(int(c) for c in args.channels.split(","))
    n = len(ch)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=args.latent, block_out_channels=ch, layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
                                cross_attention_dim=64, attention_head_dim=args.heads, norm_num_groups=32).eval()
    z = torch.randn(args.batch, 4, args.latent, args.latent)
    cond = torch.randn(args.batch, 5, 64)
    with torch.no_grad():
        unet(z, 300, encoder_hidden_states=cond)  # warm-up
        t0 = time.perf_counter()
        unet(z, 300, encoder_hidden_states=cond)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        with capture_self_attention(unet, dtype=torch.float16 if args.fp16_maps else torch.float32) as store:
            unet(z, 300, encoder_hidden_states=cond)
        t_capture = time.perf_counter() - t0
    t0 = time.perf_counter()
    attn = aggregate_attention(store.maps(), (args.latent, args.latent))
    t_agg = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = segment_attention(attn[0], (8 * args.latent, 8 * args.latent), 0.05, grid=args.grid)
    t_merge = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"UNet {ch} at {args.latent}x{args.latent}, batch {args.batch}, {len(store.block_names)} self-attention blocks")
    print(f"forward {t_plain:.2f}s | with capture {t_capture:.2f}s | aggregate {t_agg:.2f}s | "
          f"merge+argmax {t_merge:.2f}s ({len(res.proposals)} proposals) | peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
