"""LSTM, GRU and RNN unrolled or as a loop over time: compile time and run time of each.

    python benchmarks/recurrent_loop.py [--models lstm_lm,gru] [--small] [--threads 2] [--repeat 20] [--cache]

Each model (the zoo's LSTM language model and bidirectional GRU, full size by default) is
imported twice, `from_onnx(..., recurrent="unroll")` (one copy of the cell per time step, a
static graph for the graph executor) and `recurrent="loop"` (a graph.while whose body is one
step, run by the VM, whose regions compile on the first run). "compile" is lathe.compile plus
the first run() — when the VM compiles its regions — with the kernel cache off (`--cache`
keeps it), so both sides compile every kernel. Both are checked against ONNX Runtime on the
same inputs (largest relative error) and timed through run(), ONNX Runtime (default session
options) beside them, warmed up >= 1 s, alternating in blocks; medians and ratios printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lstm_lm,gru", help="comma-separated zoo names")
    ap.add_argument("--small", action="store_true", help="the test variants")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--cache", action="store_true", help="keep Lathe's kernel cache on")
    args = ap.parse_args()
    if not args.cache:
        os.environ["LATHE_CACHE"] = "0"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    from common import fmt, interleaved_medians, ort_session

    import lathe
    from lathe.testing.compare import max_relative_error
    from models import ZOO
    from models.builder import random_inputs

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    print(
        f"{'model':10s} {'mode':7s} {'compile':>9s} {'run':>11s} {'ORT':>11s} {'/ORT':>6s} {'err vs ORT':>11s} "
        f"{'loop/unroll err':>16s}"
    )
    for name in args.models.split(","):
        model = ZOO[name].build(small=args.small)
        inputs = random_inputs(model, 0)
        sess = ort_session(model, args.threads)
        ref = sess.run(None, inputs)
        compiled, seconds, results = {}, {}, {}
        for mode in ("unroll", "loop"):
            t0 = time.perf_counter()
            module, params = lathe.from_onnx(model, recurrent=mode)
            compiled[mode] = lathe.compile(module, params=params, num_threads=args.threads)
            results[mode] = compiled[mode].run(**inputs)
            seconds[mode] = time.perf_counter() - t0
        med = interleaved_medians(
            {
                "unroll": lambda c=compiled["unroll"], x=inputs: c.run(**x),
                "loop": lambda c=compiled["loop"], x=inputs: c.run(**x),
                "ort": lambda s=sess, x=inputs: s.run(None, x),
            },
            repeat=args.repeat,
        )
        agree = max_relative_error(results["loop"], results["unroll"])
        for mode in ("unroll", "loop"):
            print(
                f"{name:10s} {mode:7s} {seconds[mode]:8.1f}s {fmt(med[mode]):>11s} {fmt(med['ort']):>11s} "
                f"{med[mode] / med['ort']:5.2f}x {max_relative_error(results[mode], ref):11.1e} {agree:16.1e}",
                flush=True,
            )
        print(
            f"{name:10s} loop / unroll: compile {seconds['loop'] / seconds['unroll']:.2f}x, "
            f"run {med['loop'] / med['unroll']:.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
