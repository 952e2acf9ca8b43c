"""Whole zoo models: Lathe (-O3) next to ONNX Runtime on the same .onnx, side by side.

python benchmarks/models.py [--models resnet18,resnet50,mobilenet_v2,bert_base] [--threads 2]
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
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    import onnxruntime as ort
    from common import fmt, interleaved_medians

    import lathe
    from models import ZOO
    from models.builder import random_inputs

    print(f"{'model':14s} {'lathe':>11s} {'ORT':>11s} {'ratio':>7s} {'max rel err':>12s}")
    for name in args.models.split(","):
        model = ZOO[name].build()
        inputs = random_inputs(model, 0)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ref = sess.run(None, inputs)
        module, params = lathe.from_onnx(model)
        cm = lathe.compile(module, params=params, num_threads=args.threads)
        order = [i.name for i in model.graph.input if i.name in inputs]
        got = cm.run(*[inputs[k] for k in order])
        got = got if isinstance(got, tuple) else (got,)
        err = max(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-30)) for g, r in zip(got, ref))
        args_ = [inputs[k] for k in order]
        med = interleaved_medians(
            {
                "lathe": lambda cm=cm, args_=args_: cm.run(*args_),  # the user-facing call, inputs to outputs
                "ort": lambda sess=sess, inputs=inputs: sess.run(None, inputs),
            },
            repeat=args.repeat,
        )
        print(
            f"{name:14s} {fmt(med['lathe']):>11s} {fmt(med['ort']):>11s} {med['lathe'] / med['ort']:6.2f}x {err:12.1e}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
