"""Validate the height oracle on rendered spine2d phantoms of known grade (issue 25).

    OMP_NUM_THREADS=1 python experiments/height_oracle_validation.py --size 32 --n 400 --out runs/oracle/32.json
    OMP_NUM_THREADS=1 python experiments/height_oracle_validation.py --size 96 --n 200 --out runs/oracle/96.json

Prints the Markdown table of experiments/counterfactuals.md (per true grade: exact agreement, within
one grade, unreadable, mean |measured - true height loss|) and the confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from latentmed.evaluation.height_oracle import validate_height_oracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=12345, help="phantom seed (the demo uses 0-2 and 1000-1002)")
    ap.add_argument("--out", type=Path, default=None, help="JSON with the per-image grades")
    args = ap.parse_args()
    t = time.perf_counter()
    r = validate_height_oracle(n=args.n, size=args.size, seed=args.seed)
    r["seconds"] = round(time.perf_counter() - t, 1)
    print(f"size {args.size}, {args.n} images, seed {args.seed}, levels {r['levels'][0]}..{r['levels'][-1]}, "
          f"{r['seconds']} s")
    print("| true grade | n | exact | within one | unreadable | height-loss MAE |\n|---|---|---|---|---|---|")
    for row in r["rows"]:
        print(f"| {row['grade']} | {row['n']} | {row['exact']:.3f} | {row['within_one']:.3f} | {row['unreadable']:.3f} "
              f"| {row['loss_mae']:.3f} |")
    print("confusion (rows true G0..G3; columns measured G0..G3, unreadable):", r["confusion"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(r))


if __name__ == "__main__":
    main()
