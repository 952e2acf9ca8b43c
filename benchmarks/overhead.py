"""Per-run overhead on models of tiny kernels: Lathe's `run()` next to ONNX Runtime's `run()`.

    python benchmarks/overhead.py [--threads 2] [--repeat 200] [--ops 20]

The models: a chain of --ops small elementwise ops on a 1x64 tensor (one ONNX
node each), and the bundled two-layer perceptron (examples/mlp.lathe, 1x784 ->
128 -> 10), both exported with onnx.helper so that both runtimes run the same
model. The chain is compiled at -O0 (a kernel per op: the dispatch cost is what
is measured) and at -O3 (fused to one kernel: what a user gets). Rows:

  native entry   `run()` as it is: one native call runs every kernel
  per kernel     the same module through the executor's per-kernel path (one
                 ctypes call per kernel), the fallback for backends without an entry
  ORT            InferenceSession.run with default session options (as shipped),
                 and with its spinning turned off beside it

Every time is the user-facing call, inputs passed in and outputs returned,
medians of interleaved blocks after a wall-clock warm-up; the ratio is against
ONNX Runtime's default session.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]

UNARY = ["Relu", "Tanh", "Sigmoid", "Neg", "Abs"]


def chain_model(ops: int):
    from onnx import TensorProto, helper

    nodes, prev = [], "x"
    for k in range(ops):
        nodes.append(helper.make_node(UNARY[k % len(UNARY)], [prev], [f"t{k}"]))
        prev = f"t{k}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes,
        f"chain{ops}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def mlp_model():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    with np.load(REPO / "examples" / "mlp.params.npz") as z:
        p = {k: z[k] for k in z.files}
    inits = [numpy_helper.from_array(p[k].astype(np.float32), k) for k in ("w1", "b1", "w2", "b2")]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def per_kernel_executor(cm):
    """The compiled module's kernels through the executor's per-kernel path."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel, param_names
    from lathe.runtime.graph_executor import GraphExecutor

    main = next(f for f in cm.loop_module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    addresses = {f.sym_name.data: cm.kernels.address(f.sym_name.data) for f in cm.loop_module.ops if is_kernel(f)}
    threads = cm.num_threads
    return GraphExecutor(
        cm.loop_module,
        addresses,
        "main",
        {},
        param_names(main),
        before_run=lambda: cm.kernels.set_num_threads(threads),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--ops", type=int, default=20)
    args = ap.parse_args()
    import numpy as np
    from common import fmt, interleaved_medians, ort_sessions

    import lathe

    rng = np.random.default_rng(0)
    models = [
        (f"chain of {args.ops} elementwise, -O0", chain_model(args.ops), 0),
        (f"chain of {args.ops} elementwise, -O3", chain_model(args.ops), 3),
        ("mlp 784-128-10, -O3", mlp_model(), 3),
    ]
    print(
        f"{'model':34s} {'kernels':>7s} {'native entry':>13s} {'per kernel':>11s} {'ORT':>11s} "
        f"{'ORT no spin':>11s} {'entry/ORT':>9s}"
    )
    for title, model, level in models:
        module, params = lathe.from_onnx(model)
        cm = lathe.compile(module, params=params, num_threads=args.threads, opt_level=level)
        slow = per_kernel_executor(cm)
        ort_default, ort_quiet = ort_sessions(model, args.threads)
        shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
        x = rng.standard_normal(shape).astype(np.float32)
        ref = ort_default.run(None, {"x": x})[0]
        for got in (cm.run(x), slow.run(x)):
            err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
            assert err < 1e-4, (title, err)
        med = interleaved_medians(
            {
                "entry": lambda cm=cm, x=x: cm.run(x),
                "kernel": lambda slow=slow, x=x: slow.run(x),
                "ort": lambda s=ort_default, x=x: s.run(None, {"x": x}),
                "quiet": lambda s=ort_quiet, x=x: s.run(None, {"x": x}),
            },
            repeat=args.repeat,
        )
        kernels = len(cm.executor.steps)
        assert cm.executor.uses_native_entry
        print(
            f"{title:34s} {kernels:7d} {fmt(med['entry']):>13s} {fmt(med['kernel']):>11s} {fmt(med['ort']):>11s} "
            f"{fmt(med['quiet']):>11s} {med['entry'] / med['ort']:8.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
    sys.exit(main())
