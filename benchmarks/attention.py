"""SDPA kernel choice in our AttentionBlock: q/k/v strided in the last dim (math kernel) vs contiguous (fused).

Times ``F.scaled_dot_product_attention`` alone and the whole block's forward, both ways,
alternating (order swapped each round), at the attention shapes of ``diffae-64`` (16x16 with 256 channels;
the middle block at 8x8 with 512) and ``tiny`` (8x8, 64 channels), 4 heads. Prints JSON with medians,
ratios and the largest output difference.

    OMP_NUM_THREADS=1 python benchmarks/attention.py --repeats 21
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SHAPES = {"diffae-64 at 16x16 (B=4, C=256)": (4, 256, 16), "diffae-64 middle (B=4, C=512, 8x8)": (4, 512, 8),
          "tiny (B=16, C=64, 8x8)": (16, 64, 8)}


def main() -> None:
    import torch
    import torch.nn.functional as F

    from _common import device_info, emit
    from latentmed.nn.layers import AttentionBlock

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args()
    rows = []
    for name, (b, c, s) in SHAPES.items():
        torch.manual_seed(0)
        block = AttentionBlock(c, 4).eval()
        torch.nn.init.normal_(block.proj.weight, std=0.02)
        x = torch.randn(b, c, s, s)
        h = block.qkv(block.norm(x).reshape(b, c, -1)).detach()
        strided = h.reshape(b, 3, block.num_heads, c // block.num_heads, -1).permute(1, 0, 2, 4, 3)

        def sdpa(contiguous):
            q, k, v = strided.contiguous() if contiguous else strided
            return F.scaled_dot_product_attention(q, k, v)

        def block_forward(contiguous):  # the block as it was (strided) and as it is (contiguous)
            if contiguous:
                return block(x)
            hh = block.qkv(block.norm(x).reshape(b, c, -1))
            q, k, v = hh.reshape(b, 3, block.num_heads, c // block.num_heads, -1).permute(1, 0, 2, 4, 3)
            out = F.scaled_dot_product_attention(q, k, v).permute(0, 1, 3, 2).reshape(b, c, -1)
            return x + block.proj(out).reshape(b, c, s, s)

        row = {"shape": name}
        with torch.no_grad():
            for label, fn in (("sdpa", sdpa), ("block", block_forward)):
                times = {False: [], True: []}
                fn(False), fn(True)
                for r in range(args.repeats):
                    for flag in ((False, True) if r % 2 == 0 else (True, False)):
                        t0 = time.perf_counter()
                        fn(flag)
                        times[flag].append(time.perf_counter() - t0)
                strided_ms, contig_ms = (1000 * statistics.median(times[f]) for f in (False, True))
                row[f"{label}_strided_ms"] = round(strided_ms, 3)
                row[f"{label}_contiguous_ms"] = round(contig_ms, 3)
                row[f"{label}_speedup"] = round(strided_ms / contig_ms, 3)
            row["max_abs_diff"] = float((block_forward(False) - block_forward(True)).abs().max())
        rows.append(row)
    emit({"benchmark": "attention", "results": rows, **device_info()})


if __name__ == "__main__":
    main()
