"""Zoo models with the pool's workers sleeping between kernels (the default) and spinning
through each run (`spin_in_runs`, backends/llvm/parallel_runtime.py), in one process.

    python benchmarks/run_spin.py [--models mobilenet_v3,mobilenet_v2,resnet50,densenet121] [--repeat 20]

Per model: run()'s median under both policies and ONNX Runtime's (default session options),
contenders alternating in blocks as benchmarks/models.py times them; how many times a worker
went to sleep on the futex per run (each one a wake-up the next parallel kernel pays); and the
sum of the kernels timed alone by the profiler, whose difference from run() is the breakdown's
"runtime" share.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sleeps_per_run(pool, fn, runs: int = 20) -> float:
    for _ in range(runs):
        fn()
    before = pool.sleeps
    for _ in range(runs):
        fn()
    return (pool.sleeps - before) / runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenet_v3,mobilenet_v2,resnet50,densenet121")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    from common import fmt, interleaved_medians, ort_session

    import lathe
    from lathe.backends.llvm.parallel_runtime import parallel_runtime
    from models import ZOO
    from models.builder import random_inputs

    pool = parallel_runtime()
    print(
        f"{'model':13s} {'sleeping':>11s} {'spinning':>11s} {'ORT':>11s} {'sleeps/run':>13s} {'kernel sums':>23s} load"
    )
    for name in args.models.split(","):
        model = ZOO[name].build()
        inputs = random_inputs(model, 0)
        sess = ort_session(model, args.threads)
        module, params = lathe.from_onnx(model)
        cm = lathe.compile(module, params=params, num_threads=args.threads)
        feeds = [inputs[i.name] for i in model.graph.input if i.name in inputs]

        def run(spin: bool, cm=cm, feeds=feeds):
            pool.spin_in_runs = spin
            cm.run(*feeds)

        load = os.getloadavg()[0]
        med = interleaved_medians(
            {
                "sleep": lambda: run(False),
                "spin": lambda: run(True),
                "ort": lambda s=sess, i=inputs: s.run(None, i),
            },
            repeat=args.repeat,
        )
        sleeps, sums = {}, {}
        for spin in (False, True):
            sleeps[spin] = sleeps_per_run(pool, lambda s=spin: run(s))
            pool.spin_in_runs = spin
            sums[spin] = cm.profile(*feeds, repeat=args.repeat).total_seconds
        pool.spin_in_runs = False
        print(
            f"{name:13s} {fmt(med['sleep']):>11s} {fmt(med['spin']):>11s} {fmt(med['ort']):>11s} "
            f"{sleeps[False]:6.1f} {sleeps[True]:6.1f} {fmt(sums[False]):>11s} {fmt(sums[True]):>11s} "
            f"{load:.2f}->{os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
