"""Whole zoo models: Lathe (-O3) next to ONNX Runtime on the same .onnx, side by side.

The ratio is against ONNX Runtime's default session options; the ratio against the same
session with spinning off is printed beside it.

python benchmarks/models.py [--models resnet18,resnet50,mobilenet_v2,bert_base] [--threads 2] [--breakdown] [--db P]

--db compiles Lathe with a tuning database (`lathe tune`, issue 11: a tuned model against ONNX
Runtime); kernels without a record keep their default schedule, and the compile says which.

--breakdown adds, per model, the share of run()'s time in convolutions, GEMMs (dense, matmul,
batch_matmul), reductions (pooling, softmax, norms, means), elementwise kernels, layout
transforms (transpose, pad, slice, concat, reshape) and the runtime (run() minus the sum of
the kernels, each timed on its own by the profiler, runtime/profiler.py), so the next gap
is visible.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,bert_base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--breakdown", action="store_true", help="per model, where run()'s time goes by kernel kind")
    ap.add_argument("--db", help="compile with this tuning database (records from `lathe tune`)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    from common import breakdown, fmt, geomean, interleaved_medians, ort_sessions

    import lathe
    from models import ZOO
    from models.builder import random_inputs

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    print(
        f"{'model':14s} {'lathe':>11s} {'ORT':>11s} {'ratio':>7s} {'ORT no spin':>12s} {'ratio':>7s} {'max rel err':>12s}"
    )
    ratios, quiet_ratios = [], []
    for name in args.models.split(","):
        model = ZOO[name].build()
        inputs = random_inputs(model, 0)
        sess, quiet = ort_sessions(model, args.threads)
        ref = sess.run(None, inputs)
        module, params = lathe.from_onnx(model)
        cm = lathe.compile(module, params=params, num_threads=args.threads, tuning_db=args.db)
        order = [i.name for i in model.graph.input if i.name in inputs]
        got = cm.run(*[inputs[k] for k in order])
        got = got if isinstance(got, tuple) else (got,)
        err = max(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-30)) for g, r in zip(got, ref))
        args_ = [inputs[k] for k in order]
        med = interleaved_medians(
            {
                "lathe": lambda cm=cm, args_=args_: cm.run(*args_),  # the user-facing call, inputs to outputs
                "ort": lambda sess=sess, inputs=inputs: sess.run(None, inputs),
                "quiet": lambda sess=quiet, inputs=inputs: sess.run(None, inputs),
            },
            repeat=args.repeat,
        )
        ratios.append(med["lathe"] / med["ort"])
        quiet_ratios.append(med["lathe"] / med["quiet"])
        print(
            f"{name:14s} {fmt(med['lathe']):>11s} {fmt(med['ort']):>11s} {ratios[-1]:6.2f}x "
            f"{fmt(med['quiet']):>12s} {quiet_ratios[-1]:6.2f}x {err:12.1e}",
            flush=True,
        )
        if args.breakdown:
            shares = breakdown(cm.profile(*args_, repeat=args.repeat), med["lathe"])
            print("    " + "  ".join(f"{kind} {100 * share:4.1f}%" for kind, share in shares.items()), flush=True)
    if ratios:
        print(
            f"geometric mean ratio {geomean(ratios):.2f}x against ORT's default session "
            f"({geomean(quiet_ratios):.2f}x with its spinning off), {len(ratios)} models"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
