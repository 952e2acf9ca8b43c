"""Issue 12's kernel table: Lathe's default schedules next to numpy/OpenBLAS and ONNX Runtime.

    python benchmarks/kernels.py [--threads 2] [--repeat 30] [--only NAME] [--per-core]

Every row times the user-facing `run()` in this one process, interleaved with its reference
(median of --repeat runs after a wall-clock warm-up); compare the ratios,
not the absolute times. Weights are bound as params (what `lathe.compile`
does for a model), activations are inputs. The bars are issue 12's, as time ratios: matmul
>= 0.9x numpy's throughput, add >= 0.8x, the BERT and ResNet operator rows <= 1.0x ONNX Runtime.

--per-core adds, for the rows against ONNX Runtime, the ratio of both compiled for one thread
and timed by the caller's CPU time: what a core's worth of work costs each, which other
processes sharing the cores do not skew as they skew the 2-thread wall times (there each
runtime's way of sharing a busy core decides much of the ratio).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--only", default=None)
    ap.add_argument("--per-core", action="store_true", help="also one thread each, by CPU time (ORT rows)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    from common import fmt, interleaved_medians

    cases = build_cases(np.random.default_rng(0), args.threads)
    per_core = build_cases(np.random.default_rng(0), 1) if args.per_core else {}
    print(
        f"{'workload':44s} {'lathe':>11s} {'reference':>11s} {'ref':>6s} {'ratio':>7s}  bar"
        "  [ratio to ORT with spinning off]"
    )
    for name, (lathe_fn, ref_fn, ref_name, bar, check, *quiet) in cases.items():
        if args.only and args.only not in name:
            continue
        err = check()
        fns = {"lathe": lathe_fn, "ref": ref_fn} | ({"quiet": quiet[0]} if quiet else {})
        med = interleaved_medians(fns, repeat=args.repeat)
        ratio = med["lathe"] / med["ref"]
        ok = "ok" if ratio <= bar else "MISSED"
        beside = f"  [{med['lathe'] / med['quiet']:.2f}x]" if quiet else ""
        if name in per_core and per_core[name][2] == "ORT":  # ORT at one thread runs on the caller
            one = interleaved_medians(
                {"lathe": per_core[name][0], "ref": per_core[name][1]}, repeat=args.repeat, clock=time.thread_time
            )
            beside += f"  [1 thread, CPU time: {one['lathe'] / one['ref']:.2f}x]"
        print(
            f"{name:44s} {fmt(med['lathe']):>11s} {fmt(med['ref']):>11s} {ref_name:>6s} {ratio:6.2f}x  "
            f"<= {bar:.2f}x {ok}  (max rel err {err:.1e}){beside}",
            flush=True,
        )
    print(dispatch_overhead(), flush=True)
    return 0


def _ort(graph, threads):
    """The default ONNX Runtime session on a one-graph model, and its spinning-off twin."""
    from common import ort_sessions
    from onnx import helper

    return ort_sessions(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), threads)


def _rel(a, b) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


def build_cases(rng, threads, target: str = "llvm"):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import lathe
    from lathe.textual_ir.parser import parse_relay

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def compiled(src, params, inputs):
        cm = lathe.compile(parse_relay(src), params=params, num_threads=threads, target=target)
        cm.executor.set_inputs((), inputs)
        return cm

    cases = {}

    # matmul 1024^3 vs numpy (B is an input: its packing runs every call)
    n = 1024
    a, b = f32(n, n), f32(n, n)
    cm = compiled(
        f"def @main(%a: Tensor[({n}, {n}), float32], %b: Tensor[({n}, {n}), float32]) {{ nn.matmul(%a, %b) }}",
        {},
        {"a": a, "b": b},
    )
    out = np.empty((n, n), np.float32)
    cases["matmul 1024x1024x1024"] = (
        lambda: cm.run(a=a, b=b),
        lambda: np.matmul(a, b, out=out),
        "numpy",
        1 / 0.9,
        lambda: _rel(cm.run(a=a, b=b), a.astype(np.float64) @ b),
    )

    # BERT FFN: dense 128x768 . 768x3072 + bias + gelu (erf form) vs ONNX Runtime
    x, w, bias = f32(128, 768), f32(3072, 768) * 0.03, f32(3072)
    src = (
        "def @main(%x: Tensor[(128, 768), float32], %w: Tensor[(3072, 768), float32], %b: Tensor[(3072), float32]) {"
        " %0 = nn.bias_add(nn.dense(%x, %w), %b); multiply(multiply(%0, 0.5f), add(erf(multiply(%0, 0.70710677f)), 1f)) }"
    )
    cm2 = compiled(src, {"w": w, "b": bias}, {"x": x})
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "wt"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["h"]),
            helper.make_node("Mul", ["h", "isq2"], ["hs"]),
            helper.make_node("Erf", ["hs"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["e1"]),
            helper.make_node("Mul", ["h", "e1"], ["he"]),
            helper.make_node("Mul", ["he", "half"], ["y"]),
        ],
        "ffn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [128, 768])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [128, 3072])],
        [
            numpy_helper.from_array(np.ascontiguousarray(w.T), "wt"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.float32(0.70710677), "isq2"),
            numpy_helper.from_array(np.float32(1), "one"),
            numpy_helper.from_array(np.float32(0.5), "half"),
        ],
    )
    s2, s2q = _ort(g, threads)
    ref_ffn = s2.run(None, {"x": x})[0]
    cases["dense 128x768.768x3072 + bias + gelu"] = (
        lambda: cm2.run(x=x),
        lambda: s2.run(None, {"x": x}),
        "ORT",
        1.0,
        lambda: _rel(cm2.run(x=x), ref_ffn),
        lambda: s2q.run(None, {"x": x}),
    )

    # BERT attention: batch_matmul 12x128x64 . 12x64x128 + softmax vs ONNX Runtime
    q, k = f32(12, 128, 64), f32(12, 128, 64)
    src = (
        "def @main(%q: Tensor[(12, 128, 64), float32], %k: Tensor[(12, 128, 64), float32]) {"
        " nn.softmax(nn.batch_matmul(%q, %k), axis=-1) }"
    )
    cm3 = compiled(src, {}, {"q": q, "k": k})
    g = helper.make_graph(
        [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["q", "kt"], ["s"]),
            helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        ],
        "attn",
        [
            helper.make_tensor_value_info("q", TensorProto.FLOAT, [12, 128, 64]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, [12, 128, 64]),
        ],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [12, 128, 128])],
    )
    s3, s3q = _ort(g, threads)
    ref_att = s3.run(None, {"q": q, "k": k})[0]
    cases["batch_matmul 12x128x64.12x64x128 + softmax"] = (
        lambda: cm3.run(q=q, k=k),
        lambda: s3.run(None, {"q": q, "k": k}),
        "ORT",
        1.0,
        lambda: _rel(cm3.run(q=q, k=k), ref_att),
        lambda: s3q.run(None, {"q": q, "k": k}),
    )

    # ResNet-18 layer: conv2d 1x64x56x56, 64 filters 3x3, pad 1 + bias + relu vs ONNX Runtime
    xc, wc, bc = f32(1, 64, 56, 56), f32(64, 64, 3, 3) * 0.05, f32(64)
    src = (
        "def @main(%x: Tensor[(1, 64, 56, 56), float32], %w: Tensor[(64, 64, 3, 3), float32], %b: Tensor[(64), float32]) {"
        " nn.relu(nn.bias_add(nn.conv2d(%x, %w, padding=[1, 1]), %b)) }"
    )
    cm4 = compiled(src, {"w": wc, "b": bc}, {"x": xc})
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56])],
        [numpy_helper.from_array(wc, "w"), numpy_helper.from_array(bc, "b")],
    )
    s4, s4q = _ort(g, threads)
    ref_conv = s4.run(None, {"x": xc})[0]
    cases["conv2d 1x64x56x56 3x3 pad 1 + bias + relu"] = (
        lambda: cm4.run(x=xc),
        lambda: s4.run(None, {"x": xc}),
        "ORT",
        1.0,
        lambda: _rel(cm4.run(x=xc), ref_conv),
        lambda: s4q.run(None, {"x": xc}),
    )

    # elementwise add of two 2^22-element arrays vs numpy
    n = 1 << 22
    ea, eb = f32(n), f32(n)
    cm5 = compiled(
        f"def @main(%a: Tensor[({n}), float32], %b: Tensor[({n}), float32]) {{ add(%a, %b) }}", {}, {"a": ea, "b": eb}
    )
    eout = np.empty(n, np.float32)
    cases["add 2^22 elements"] = (
        lambda: cm5.run(a=ea, b=eb),
        lambda: np.add(ea, eb, out=eout),
        "numpy",
        1 / 0.8,
        lambda: _rel(cm5.run(a=ea, b=eb), ea.astype(np.float64) + eb),
    )
    del onnx
    return cases


def dispatch_overhead() -> str:
    """µs per parallel region: a tiny kernel with one parallel loop, 1 and 2 threads,
    against the same kernel with its loop serial."""
    import numpy as np

    import lathe
    from lathe.api import parse_source
    from lathe.dialects import te
    from lathe.lowering.schedules import Schedule

    def kernel(parallel: bool, threads: int):
        src = """
        func.func @main(%a: tensor<64xf32>) -> tensor<64xf32> {
          %0 = func.call @k(%a) : (tensor<64xf32>) -> tensor<64xf32>
          func.return %0 : tensor<64xf32>
        }
        func.func private @k(%a: tensor<64xf32>) -> tensor<64xf32> attributes {lathe.kernel} {
          %0 = te.compute {stage = "neg", axes = ["i"]} : tensor<64xf32> {
          ^bb0(%i: index):
            %x = te.read %a[%i] : tensor<64xf32> -> f32
            %y = arith.negf %x : f32
            te.yield %y : f32
          }
          func.return %0 : tensor<64xf32>
        }"""
        m = parse_source(src, "k.mlir")
        stage = next(op for op in m.walk() if isinstance(op, te.ComputeOp))
        s = Schedule(stage)
        io, ii = s.split("i", nparts=threads if parallel else 1)
        if parallel:
            s.parallel(io)
        cm = lathe.compile(m, num_threads=threads)
        cm.executor.set_inputs((), {"a": np.ones(64, np.float32)})
        return cm

    rows = []
    for threads in (1, 2):
        par, ser = kernel(True, threads), kernel(False, threads)
        times = {}
        for name, cm in (("par", par), ("ser", ser)):
            cm.executor.before_run()  # the module's thread count
            fn = cm.executor.steps[0][0]
            ptrs = cm.executor.steps[0][1]
            for _ in range(2000):
                fn(ptrs)
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                for _ in range(1000):
                    fn(ptrs)
                ts.append((time.perf_counter() - t0) / 1000)
            times[name] = float(np.median(ts))
        rows.append(f"{threads} thread(s): {(times['par'] - times['ser']) * 1e6:.2f} us")
    return "parallel-region dispatch overhead (lathe_parallel_for, median): " + ", ".join(rows)


if __name__ == "__main__":
    sys.exit(main())
