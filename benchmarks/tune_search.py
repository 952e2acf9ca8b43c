"""Search efficiency: trials the learned search (xgb) needs against random search to reach
95% of the best configuration either finds (issue 11's bar: xgb needs <= 1/2 of random's).

    python benchmarks/tune_search.py [--scale small|full] [--tasks matmul,ffn,conv] [--trials N] [--seeds S]

For each task (benchmarks/tune_workloads.py) and seed, both searches run `--trials` trials
from an empty database (so no transfer from other records), measured through one table per
task: a configuration is measured once and both searches see the same number for it, so
the comparison is of the searches, not of this machine's noise between two measurements.
The target of a (task, seed) is 95% of the best GFLOP/s either search found; a search that
never reaches it is counted at --trials (so its count is a lower bound). The ratio is the
sum of xgb's counts over the sum of random's.

The issue's protocol, on a quiet machine (about 3 x 5 x 2 x 1,000 trials, fewer measured):

    python benchmarks/tune_search.py --scale full --tasks matmul,ffn,conv --trials 1000 --seeds 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def trials_to_reach(curve: list[float], target: float) -> int:
    """1-based trial at which the best-so-far first reaches `target`; len(curve) if never."""
    return next((i + 1 for i, g in enumerate(curve) if g >= target), len(curve))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["small", "full"], default="small")
    ap.add_argument("--tasks", default="matmul")
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    from tune_workloads import CachedExecutor, heaviest_task, run_search

    from lathe.tuner import records
    from lathe.tuner.executors import LocalExecutor
    from lathe.tuner.plot import best_so_far

    print(f"scale {args.scale}, {args.trials} trials per search, seeds 0..{args.seeds - 1}")
    print(f"{'task':8s} {'seed':>4s} {'best GFLOP/s':>12s} {'xgb trials':>10s} {'random trials':>13s}")
    sums = {"xgb": 0, "random": 0}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalExecutor(60.0) as local:
        for name in args.tasks.split(","):
            task = heaviest_task(name, args.scale)
            table = CachedExecutor(local)
            for seed in range(args.seeds):
                curves = {}
                for search in ("xgb", "random"):
                    db = os.path.join(tmp, f"{name}-{search}-{seed}.jsonl")
                    run_search(task, db, args.trials, search, seed, table)
                    curves[search] = best_so_far(task, records.load(db)[0])
                best = max(max(c) for c in curves.values())
                counts = {s: trials_to_reach(c, 0.95 * best) for s, c in curves.items()}
                for s in sums:
                    sums[s] += counts[s]
                print(f"{name:8s} {seed:4d} {best:12.2f} {counts['xgb']:10d} {counts['random']:13d}")
            print(f"{name}: {table.measured} configurations measured for {2 * args.seeds * args.trials} trials")
    print(f"in {time.perf_counter() - t0:.0f} s")
    print(
        f"trials to 95% of the best: xgb {sums['xgb']}, random {sums['random']}: "
        f"ratio xgb / random = {sums['xgb'] / max(sums['random'], 1):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
