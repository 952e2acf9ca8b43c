"""nn.dense 512x512x512 (fp32): Lathe's default schedule next to numpy/OpenBLAS.

    python benchmarks/dense.py [--size 512] [--threads 2] [--repeat 50] [--matmul [--before]]

Both run in this process with the same thread count; the table prints
medians and the ratio. The weight is bound as a param (packed once at compile
time; numpy gets it pre-transposed). Also checks that the kernel's LLVM IR is
vector code.

--matmul times nn.matmul with both operands at run time instead (issue 12's first row:
its second operand is packed on every run), through run(); --before adds the same
matmul compiled with its packing as a kernel of its own (`fuse-ops{gemm_pack=false}`,
what Lathe did before the packing joined the GEMM kernel), timed in the same blocks.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--matmul", action="store_true", help="nn.matmul, both operands at run time")
    ap.add_argument("--before", action="store_true", help="with --matmul: the packing as its own kernel too")
    args = ap.parse_args()
    # OpenBLAS reads its thread count at import time
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    from common import fmt, interleaved_medians

    import lathe
    from lathe.textual_ir.parser import parse_relay

    n = args.size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    w = rng.standard_normal((n, n)).astype(np.float32)
    if args.matmul:
        op = "nn.matmul"
        module = parse_relay(
            f"def @main(%x: Tensor[({n}, {n}), float32], %w: Tensor[({n}, {n}), float32]) {{ nn.matmul(%x, %w) }}"
        )
        cm = lathe.compile(module, num_threads=args.threads)
        ref = x @ w
        contenders = {"lathe": lambda: cm.run(x=x, w=w), "numpy": lambda: np.matmul(x, w)}
        if args.before:
            from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for

            pipeline = pipeline_for(DEFAULT_OPT_LEVEL).replace(",fuse-ops,", ",fuse-ops{gemm_pack=false},")
            before = lathe.compile(module, num_threads=args.threads, pipeline=pipeline)
            assert np.abs(before.run(x=x, w=w) - ref).max() / np.abs(ref).max() < 1e-4
            contenders["before"] = lambda: before.run(x=x, w=w)
        out = cm.run(x=x, w=w)
    else:
        op = "nn.dense"
        src = f"def @main(%x: Tensor[({n}, {n}), float32], %w: Tensor[({n}, {n}), float32]) {{ nn.dense(%x, %w) }}"
        module = parse_relay(src, "dense.lathe")
        cm = lathe.compile(module, params={"w": w}, num_threads=args.threads)  # a weight: packed at compile time
        out = cm.run(x=x)
        ref = x @ w.T
        wt = np.ascontiguousarray(w.T)
        cm.executor.set_inputs((), {"x": x})
        contenders = {"lathe": cm.executor.execute, "numpy": lambda: np.matmul(x, wt)}
    err = float(np.abs(out - ref).max() / np.abs(ref).max())
    med = interleaved_medians(contenders, repeat=args.repeat)
    flops = 2.0 * n * n * n
    vec = sorted(set(re.findall(r"<\d+ x float>", cm.optimized_ir)))
    print(f"{op} {n}x{n}x{n} fp32, {args.threads} threads, target {cm.target.cpu}; max rel err {err:.1e}")
    print(f"{'system':10s} {'median':>12s} {'GFLOP/s':>9s}")
    for k in med:
        print(f"{k:10s} {fmt(med[k]):>12s} {flops / med[k] / 1e9:9.1f}")
    if "before" in med:
        print(f"ratio lathe/before latency: {med['lathe'] / med['before']:.3f}x")
    print(
        f"ratio lathe/numpy latency: {med['lathe'] / med['numpy']:.2f}x  (throughput {med['numpy'] / med['lathe']:.2f}x numpy)"
    )
    print(f"vector types in the kernel's LLVM IR: {', '.join(vec) if vec else 'NONE'}")
    return 0 if vec else 1


if __name__ == "__main__":
    sys.exit(main())
