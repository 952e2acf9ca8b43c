"""Compile time of whole zoo models from a cold kernel cache, then from a warm one.

    python benchmarks/compile_time.py [--models bert_base,resnet50]

Reports the graph-to-loop lowering time, the number of kernels and distinct
kernels, the LLVM time per distinct kernel, and the warm-cache total.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bert_base,resnet50")
    args = ap.parse_args()
    os.environ["LATHE_CACHE_DIR"] = tempfile.mkdtemp(prefix="lathe-cold-cache-")
    import lathe
    from models import ZOO

    print(
        f"{'model':14s} {'import s':>9s} {'kernels':>8s} {'distinct':>9s} {'total cold s':>13s} "
        f"{'LLVM cold s':>12s} {'s/kernel':>9s} {'max s/kernel':>13s} {'total warm s':>13s}"
    )
    for name in args.models.split(","):
        t0 = time.perf_counter()
        module, params = lathe.from_onnx(ZOO[name].build())
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        cold = lathe.compile(module, params=params)
        t_cold = time.perf_counter() - t0
        st = cold.compile_stats
        t0 = time.perf_counter()
        warm = lathe.compile(module, params=params)
        t_warm = time.perf_counter() - t0
        per = st.seconds / max(1, st.distinct - st.from_cache)
        print(
            f"{name:14s} {t_import:9.1f} {st.kernels:8d} {st.distinct:9d} {t_cold:13.1f} {st.seconds:12.1f} "
            f"{per:9.3f} {st.slowest:13.3f} {t_warm:13.1f}",
            flush=True,
        )
        del warm
    return 0


if __name__ == "__main__":
    sys.exit(main())
