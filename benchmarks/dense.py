"""nn.dense 512x512x512 (fp32): Lathe's default schedule next to numpy/OpenBLAS.

    python benchmarks/dense.py [--size 512] [--threads 2] [--repeat 50]

Both run in this process with the same thread count; the table prints
medians and the ratio. The weight is bound as a param (packed once at compile
time; numpy gets it pre-transposed). Also checks that the kernel's LLVM IR is
vector code.
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
    args = ap.parse_args()
    # OpenBLAS reads its thread count at import time
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    from common import fmt, interleaved_medians

    import lathe
    from lathe.textual_ir.parser import parse_relay

    n = args.size
    src = f"def @main(%x: Tensor[({n}, {n}), float32], %w: Tensor[({n}, {n}), float32]) {{ nn.dense(%x, %w) }}"
    module = parse_relay(src, "dense.lathe")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    w = rng.standard_normal((n, n)).astype(np.float32)
    cm = lathe.compile(module, params={"w": w}, num_threads=args.threads)  # a weight: packed at compile time
    out = cm.run(x=x)
    ref = x @ w.T
    err = float(np.abs(out - ref).max() / np.abs(ref).max())
    wt = np.ascontiguousarray(w.T)
    cm.executor.set_inputs((), {"x": x})
    med = interleaved_medians({"lathe": cm.executor.execute, "numpy": lambda: np.matmul(x, wt)}, repeat=args.repeat)
    flops = 2.0 * n * n * n
    vec = sorted(set(re.findall(r"<\d+ x float>", cm.optimized_ir)))
    print(f"nn.dense {n}x{n}x{n} fp32, {args.threads} threads, target {cm.target.cpu}; max rel err {err:.1e}")
    print(f"{'system':10s} {'median':>12s} {'GFLOP/s':>9s}")
    for k in ("lathe", "numpy"):
        print(f"{k:10s} {fmt(med[k]):>12s} {flops / med[k] / 1e9:9.1f}")
    print(
        f"ratio lathe/numpy latency: {med['lathe'] / med['numpy']:.2f}x  (throughput {med['numpy'] / med['lathe']:.2f}x numpy)"
    )
    print(f"vector types in the kernel's LLVM IR: {', '.join(vec) if vec else 'NONE'}")
    return 0 if vec else 1


if __name__ == "__main__":
    sys.exit(main())
