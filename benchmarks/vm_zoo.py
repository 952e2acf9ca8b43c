"""The zoo on the VM: each model's `run()` on the VM next to the graph executor and ONNX Runtime.

    python benchmarks/vm_zoo.py [--models resnet18,bert_base,...] [--small] [--threads 2] [--repeat 20]

Each zoo model (full size by default, the test variants with --small) is imported once and
compiled twice, `executor="graph"` and `executor="vm"`; a static model is one primitive region
to the VM, compiled by the same static pipeline, so the VM / graph ratio is what the VM adds
per run: its instruction loop, the region's specialisation lookup, the pool's tensors for the
outputs, and `run(out=...)` into them. ONNX Runtime (default session options) runs beside
them, the reference every ratio is quoted against. All three are timed through the
user-facing call on the same inputs, warmed up >= 1 s, alternating in blocks, medians printed.
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
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default: the whole zoo)")
    ap.add_argument("--small", action="store_true", help="the test variants")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    from common import fmt, geomean, interleaved_medians, ort_session

    import lathe
    from lathe.testing.compare import max_relative_error
    from models import ZOO
    from models.builder import random_inputs

    names = args.models.split(",") if args.models else list(ZOO)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    print(
        f"{'model':16s} {'VM':>11s} {'graph':>11s} {'ORT':>11s} {'VM/graph':>9s} {'VM/ORT':>7s} "
        f"{'graph/ORT':>9s} {'VM vs graph err':>16s}"
    )
    ratios = []
    for name in names:
        model = ZOO[name].build(small=args.small)
        inputs = random_inputs(model, 0)
        module, params = lathe.from_onnx(model)
        graph = lathe.compile(module, params=params, num_threads=args.threads, executor="graph")
        vm = lathe.compile(module, params=params, num_threads=args.threads, executor="vm")
        sess = ort_session(model, args.threads)
        err = max_relative_error(vm.run(**inputs), graph.run(**inputs))
        med = interleaved_medians(
            {
                "vm": lambda vm=vm, inputs=inputs: vm.run(**inputs),
                "graph": lambda graph=graph, inputs=inputs: graph.run(**inputs),
                "ort": lambda sess=sess, inputs=inputs: sess.run(None, inputs),
            },
            repeat=args.repeat,
        )
        ratios.append(med["vm"] / med["graph"])
        print(
            f"{name:16s} {fmt(med['vm']):>11s} {fmt(med['graph']):>11s} {fmt(med['ort']):>11s} "
            f"{ratios[-1]:8.3f}x {med['vm'] / med['ort']:6.2f}x {med['graph'] / med['ort']:8.2f}x {err:16.1e}",
            flush=True,
        )
    if ratios:
        print(f"geometric mean VM / graph {geomean(ratios):.3f}x over {len(ratios)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
