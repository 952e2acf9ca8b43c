"""nn.dense N×N×N (fp32) tuned with `lathe.tune`, next to its default schedule, numpy
(OpenBLAS) and ONNX Runtime (default session options), in one process.

    python benchmarks/tune_matmul.py [--size 1024] [--trials 64] [--threads 2] [--db PATH] [--search xgb] [--matmul]

--matmul tunes nn.matmul with both operands at run time instead (issue 12's first row: the
kernel packs the second operand's panels itself), against numpy only.

The tuning database is kept (--db, default a file in the temp directory, started afresh
unless --resume), so the same records can be replayed with `lathe run --db`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--search", default="xgb", choices=["xgb", "random"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "lathe-tune-matmul.jsonl"))
    ap.add_argument("--resume", action="store_true", help="keep the database's records")
    ap.add_argument("--matmul", action="store_true", help="nn.matmul, both operands at run time")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))  # read at numpy's import
    os.environ.setdefault("LATHE_NUM_THREADS", str(args.threads))  # the tuner's workers run with it
    import numpy as np
    from common import fmt, interleaved_medians

    import lathe
    from lathe.textual_ir.parser import parse_relay
    from lathe.tuner.tune import format_table

    n = args.size
    op = "nn.matmul" if args.matmul else "nn.dense"
    src = f"def @main(%x: Tensor[({n}, {n}), float32], %w: Tensor[({n}, {n}), float32]) {{ {op}(%x, %w) }}"
    module = parse_relay(src, "dense.lathe")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    w = rng.standard_normal((n, n)).astype(np.float32)
    params = {} if args.matmul else {"w": w}  # a dense's weight is bound (packed at compile time)
    inputs = {"x": x, "w": w} if args.matmul else {"x": x}
    if not args.resume and os.path.exists(args.db):
        os.remove(args.db)
    t0 = time.perf_counter()
    results = lathe.tune(module, params=params, trials=args.trials, db=args.db, search=args.search, seed=args.seed)
    tune_s = time.perf_counter() - t0
    print(format_table(results))
    print(f"tuning: {args.trials} trials in {tune_s:.0f} s ({args.search} search), records in {args.db}")

    default = lathe.compile(module, params=params, num_threads=args.threads)
    tuned = lathe.compile(module, params=params, num_threads=args.threads, tuning_db=args.db)
    ref = x @ w if args.matmul else x @ w.T
    for name, cm in (("default", default), ("tuned", tuned)):
        err = float(np.abs(cm.run(**inputs) - ref).max() / np.abs(ref).max())
        assert err < 1e-4, f"{name}: max relative error {err:.1e}"
    wt = w if args.matmul else np.ascontiguousarray(w.T)
    contenders = {
        "lathe tuned": lambda: tuned.run(**inputs),
        "lathe default": lambda: default.run(**inputs),
        "numpy": lambda: np.matmul(x, wt),
    }
    ort = None if args.matmul else _onnxruntime_matmul(n, wt, args.threads)
    if ort is not None:
        contenders["onnxruntime"] = lambda: ort.run(None, {"x": x})
    med = interleaved_medians(contenders, repeat=args.repeat)
    flops = 2.0 * n**3
    print(f"{op} {n}x{n}x{n} fp32, {args.threads} threads, target {tuned.target.cpu}; medians of {args.repeat}")
    print(f"{'system':14s} {'median':>12s} {'GFLOP/s':>9s} {'throughput / numpy':>19s}")
    for k, s in med.items():
        print(f"{k:14s} {fmt(s):>12s} {flops / s / 1e9:9.1f} {med['numpy'] / s:18.2f}x")
    return 0


def _onnxruntime_matmul(n: int, wt, threads: int):
    try:
        import onnxruntime  # noqa: F401
        from common import ort_session
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        print("(onnxruntime not installed: left out)", file=sys.stderr)
        return None
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(wt, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort_session(model, threads)


if __name__ == "__main__":
    sys.exit(main())
