"""The C backend next to the LLVM backend: the zoo's small models and the kernel table.

    python benchmarks/backends.py [--threads 2] [--repeat 20] [--models resnet18,...]

Both backends compile the same graph; `run()` of each is timed in this one process,
alternating in blocks after a wall-clock warm-up (benchmarks/common.py). The ratio
is C's median latency over LLVM's: above 1, the C compiler's code is slower.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKENDS = ("llvm", "c")


def _row(name: str, fns: dict, check: str, repeat: int) -> None:
    from common import fmt, interleaved_medians

    med = interleaved_medians(fns, repeat=repeat)
    print(
        f"{name:44s} {fmt(med['llvm']):>11s} {fmt(med['c']):>11s} {med['c'] / med['llvm']:6.2f}x  {check}", flush=True
    )


def kernel_rows(threads: int, repeat: int) -> None:
    import numpy as np
    from kernels import build_cases

    built = {t: build_cases(np.random.default_rng(0), threads, target=t) for t in BACKENDS}
    for name in built["llvm"]:
        errs = {t: built[t][name][4]() for t in BACKENDS}
        _row(
            name,
            {t: built[t][name][0] for t in BACKENDS},
            f"max rel err llvm {errs['llvm']:.1e}, c {errs['c']:.1e}",
            repeat,
        )


def model_rows(names: list[str], threads: int, repeat: int) -> None:
    import numpy as np

    import lathe
    from models import ZOO
    from models.builder import random_inputs

    for name in names:
        model = ZOO[name].build(small=True)
        inputs = random_inputs(model, 0)
        module, params = lathe.from_onnx(model)
        order = [i.name for i in model.graph.input if i.name in inputs]
        args = [inputs[k] for k in order]
        compiled = {t: lathe.compile(module, target=t, params=params, num_threads=threads) for t in BACKENDS}
        outs = {t: compiled[t].run(*args) for t in BACKENDS}
        ref = outs["llvm"] if isinstance(outs["llvm"], tuple) else (outs["llvm"],)
        got = outs["c"] if isinstance(outs["c"], tuple) else (outs["c"],)
        err = max(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-30)) for g, r in zip(got, ref))
        _row(
            f"{name} (small)",
            {t: (lambda cm=compiled[t], args=args: cm.run(*args)) for t in BACKENDS},
            f"max rel diff c vs llvm {err:.1e}",
            repeat,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--models", default=None, help="zoo models (small variants); default: all of the zoo")
    ap.add_argument("--no-kernels", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    from models import ZOO

    print(f"{'workload':44s} {'llvm':>11s} {'c':>11s} {'c/llvm':>7s}")
    if not args.no_kernels:
        kernel_rows(args.threads, args.repeat)
    model_rows(args.models.split(",") if args.models else list(ZOO), args.threads, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
