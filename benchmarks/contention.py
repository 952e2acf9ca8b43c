"""Latency on a busy machine: Lathe next to ONNX Runtime, idle and under a competitor.

    python benchmarks/contention.py [--seconds 3]

For three models (the MLP of tiny kernels, a BERT self-attention block at
seq 128, a ResNet 3x3 conv layer), each built once as ONNX and imported into
Lathe so both run the same graph, `run()` is timed in three conditions:
2 threads on an idle machine, 1 thread on an idle machine, and 2 threads while
one busy-looping competitor process runs. ONNX Runtime uses its default
session options with the same thread count. Contenders alternate in blocks.
A third contender is Lathe with the pool's workers spinning through each run
(`spin_in_runs`, backends/llvm/parallel_runtime.py, off by default), so the two
pool policies are compared in the same conditions.

What a parallel runtime owes a user (issue 8): under one competitor the
2-thread median stays within 2x of the idle 1-thread median and the 90th
percentile within 4x. The last columns check exactly that.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _busy_loop() -> None:  # the competitor: one core's worth of pure spinning
    while True:
        pass


def mlp_model(rng):
    from onnx import TensorProto, helper, numpy_helper

    w1, b1 = rng.standard_normal((784, 128)).astype(np.float32) * 0.05, rng.standard_normal(128).astype(np.float32)
    w2, b2 = rng.standard_normal((128, 10)).astype(np.float32) * 0.1, rng.standard_normal(10).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    g = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), {"x": (1, 784)}


def attention_model(rng, seq: int = 128, hidden: int = 768, heads: int = 12):
    from onnx import TensorProto, helper, numpy_helper

    d = hidden // heads
    inits = []

    def weight(name, *shape, scale=0.03):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * scale, name))
        return name

    inits.append(numpy_helper.from_array(np.array([seq, heads, d], np.int64), "split_heads"))
    inits.append(numpy_helper.from_array(np.array([seq, hidden], np.int64), "merge_heads"))
    inits.append(numpy_helper.from_array(np.float32(1 / np.sqrt(d)), "scale"))
    nodes = []
    for p in ("q", "k", "v"):
        nodes += [
            helper.make_node("MatMul", ["x", weight(f"w{p}", hidden, hidden)], [f"{p}0"]),
            helper.make_node("Add", [f"{p}0", weight(f"b{p}", hidden)], [f"{p}1"]),
            helper.make_node("Reshape", [f"{p}1", "split_heads"], [f"{p}2"]),
            helper.make_node("Transpose", [f"{p}2"], [f"{p}h"], perm=[1, 2, 0] if p == "k" else [1, 0, 2]),
        ]
    nodes += [
        helper.make_node("MatMul", ["qh", "kh"], ["s0"]),
        helper.make_node("Mul", ["s0", "scale"], ["s1"]),
        helper.make_node("Softmax", ["s1"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "vh"], ["c0"]),
        helper.make_node("Transpose", ["c0"], ["c1"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["c1", "merge_heads"], ["c2"]),
        helper.make_node("MatMul", ["c2", weight("wo", hidden, hidden)], ["o0"]),
        helper.make_node("Add", ["o0", weight("bo", hidden)], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [seq, hidden])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), {"x": (seq, hidden)}


def conv_model(rng):
    from onnx import TensorProto, helper, numpy_helper

    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32) * 0.05
    b = rng.standard_normal(64).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), {"x": (1, 64, 56, 56)}


MODELS = {
    "mlp (tiny kernels)": mlp_model,
    "bert attention, seq 128": attention_model,
    "resnet conv 3x3 64ch 56x56": conv_model,
}


def contenders(model, shapes, threads: int, rng):
    from common import ort_session

    import lathe
    from lathe.backends.llvm.parallel_runtime import parallel_runtime

    sess = ort_session(model, threads)
    mod, params = lathe.from_onnx(model)
    cm = lathe.compile(mod, params=params, num_threads=threads)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    ref = sess.run(None, feeds)[0]
    got = cm.run(*feeds.values())
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    pool = parallel_runtime()

    def lathe_run(spin_in_runs: bool):
        pool.spin_in_runs = spin_in_runs
        cm.run(*feeds.values())

    return {
        "lathe": lambda: lathe_run(False),
        SPINNING: lambda: lathe_run(True),
        "ORT": lambda: sess.run(None, feeds),
    }, err


SPINNING = "lathe, run spin"


def sample(fns, seconds: float, block: float = 0.25) -> dict[str, np.ndarray]:
    """Per-call latencies, contenders alternating in blocks of `block` seconds of calls,
    after a one-second wall-clock warm-up of each."""
    from common import warm

    for fn in fns.values():
        warm(fn, 1.0)
    times: dict[str, list[float]] = {k: [] for k in fns}
    end = time.perf_counter() + seconds * len(fns)
    while time.perf_counter() < end:
        for name, fn in fns.items():
            stop = time.perf_counter() + block
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: np.asarray(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of timed calls per contender and condition")
    args = ap.parse_args()
    from common import fmt

    rng = np.random.default_rng(0)
    who_all = ("lathe", SPINNING, "ORT")
    print(f"{'model':28s} {'condition':16s} " + " ".join(f"{w + ' p50':>22s} {'p90':>9s}" for w in who_all))
    verdicts = []
    for name, build in MODELS.items():
        model, shapes = build(rng)
        fns = {t: contenders(model, shapes, t, rng) for t in (1, 2)}
        results = {}
        for cond, threads, busy in (
            ("idle, 2 threads", 2, False),
            ("idle, 1 thread", 1, False),
            ("busy, 2 threads", 2, True),
        ):
            competitor = mp.Process(target=_busy_loop, daemon=True) if busy else None
            if competitor:
                competitor.start()
                time.sleep(0.5)
            try:
                results[cond] = sample(fns[threads][0], args.seconds)
            finally:
                if competitor:
                    competitor.terminate()
                    competitor.join()
            r = results[cond]
            cells = " ".join(f"{fmt(np.median(r[w])):>22s} {fmt(np.percentile(r[w], 90)):>9s}" for w in who_all)
            print(f"{name:28s} {cond:16s} {cells}", flush=True)
        for who in who_all:
            base = np.median(results["idle, 1 thread"][who])
            busy = results["busy, 2 threads"][who]
            m, p = np.median(busy) / base, np.percentile(busy, 90) / base
            idle2 = np.median(results["idle, 2 threads"][who]) / base
            ok = m <= 2 and p <= 4
            verdicts.append(
                f"{name:28s} {who:18s} busy/idle-1t: median {m:5.2f}x, p90 {p:5.2f}x "
                f"({'ok' if ok else 'MISSED'}: <= 2x, <= 4x); idle 2t/1t {idle2:4.2f}x; "
                f"max rel err vs ORT {fns[2][1]:.1e}"
            )
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
