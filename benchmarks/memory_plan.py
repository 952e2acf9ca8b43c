"""Per zoo model: the planned peak activation memory against a buffer per intermediate.

    python benchmarks/memory_plan.py [--models bert_base,resnet50,...] [--small]

Each model is compiled as `lathe.compile` does (-O3, weights bound), and the
executor's `memory_report()` gives, in MiB: the sum of all intermediates (what
a buffer each would take), the arena the plan places them in (the peak
activation memory of a run), the live peak (the most bytes live at one kernel
call: no plan can use less), and the weights. Full-size models by default;
compiling all of them takes minutes (the kernel cache makes a second run quick).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1 << 20


def main() -> int:
    from models import ZOO

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--small", action="store_true", help="the zoo's small test variants")
    args = ap.parse_args()
    import lathe

    print(
        f"{'model':14s} {'kernels':>7s} {'buffers':>7s} {'sum MiB':>9s} {'arena MiB':>9s} {'live MiB':>9s} "
        f"{'saving':>7s} {'arena/live':>10s} {'weights MiB':>11s}"
    )
    for name in args.models.split(","):
        model = ZOO[name].build(small=args.small)
        module, params = lathe.from_onnx(model)
        cm = lathe.compile(module, params=params)
        r = cm.memory_report()
        print(
            f"{name:14s} {len(cm.executor.steps):7d} {r.intermediates:7d} {r.intermediate_bytes / MIB:9.2f} "
            f"{r.arena_bytes / MIB:9.2f} {r.live_peak_bytes / MIB:9.2f} {r.saving:6.1f}x "
            f"{r.arena_bytes / max(1, r.live_peak_bytes):9.2f}x {r.constant_bytes / MIB:11.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
