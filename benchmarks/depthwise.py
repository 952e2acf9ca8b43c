"""Depthwise convolutions alone, as the mobile models have them (NHWC, channels padded to a
multiple of 16 as alter-op-layout pads them, bias and the model's activation fused): the
depthwise_nhwc template next to the general conv2d_nhwc template the same kernel had before,
in one process, the kernels timed on their own (as the profiler times them), contenders
alternating in blocks.

    python benchmarks/depthwise.py [--threads 2] [--repeat 100] [--only SUBSTRING] [--config K=V,...]
                                   [--before K=V,...] [--ort]

A depthwise layer does 2·K² flops per output element and reads each input element about
K²/stride² times from cache, so it runs at memory speed or not at all: each row gives GFLOP/s
and GB/s (input, weights, bias and output, each once) and the bytes' fraction of the
machine's bandwidth (the profiler's "%peak B": one numpy copy of 64 MiB). Only the ratios
are compared across runs; the machine is shared. With --before KNOBS, 'before' is depthwise_nhwc
with those knobs in place of conv2d_nhwc (e.g. `--before tile_w=7 --only 5x5`: the old default
tile against the current one). With --ort, each layer is also run as an ONNX
model (NCHW Conv with group = channels, its bias and activation) in ONNX Runtime's default
session, and its run() and depthwise_nhwc's run() are timed alternating in blocks (the
user-facing calls, so both include their fixed cost per call).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACTIVATIONS = {
    "relu": "nn.relu(%1)",
    "relu6": "clip(%1, a_min=0f, a_max=6f)",
    "silu": "multiply(%1, sigmoid(%1))",
    "hswish": "multiply(%1, divide(clip(add(%1, 3f), a_min=0f, a_max=6f), 6f))",
}


@dataclass(frozen=True)
class Depthwise:
    name: str
    c: int  # channels, as the kernel sees them (padded to a multiple of 16)
    size: int  # input height = width
    kernel: int = 3
    stride: int = 1
    act: str = "relu"

    @property
    def out(self) -> int:
        return (self.size + 2 * (self.kernel // 2) - self.kernel) // self.stride + 1

    def flops(self) -> float:
        return 2.0 * self.c * self.out**2 * self.kernel**2

    def bytes(self) -> int:
        return 4 * (self.c * self.size**2 + self.c * self.out**2 + self.c * self.kernel**2 + self.c)

    def relay(self) -> str:
        c, k, s, p = self.c, self.kernel, self.stride, self.kernel // 2
        return (
            f"def @main(%x: Tensor[(1, {self.size}, {self.size}, {c}), float32], "
            f"%w: Tensor[({k}, {k}, 1, {c}), float32], %b: Tensor[({c}), float32]) {{\n"
            f"  %0 = nn.conv2d(%x, %w, strides=[{s}, {s}], padding=[{p}, {p}, {p}, {p}], groups={c}, channels={c}, "
            f'kernel_size=[{k}, {k}], data_layout="NHWC", kernel_layout="HWIO");\n'
            f"  %1 = nn.bias_add(%0, %b, axis=3);\n  {ACTIVATIONS[self.act]}\n}}"
        )


SHAPES = (
    # EfficientNet-B0 (SiLU)
    Depthwise("effnet 3x3 32 @112", 32, 112, act="silu"),
    Depthwise("effnet 3x3 s2 96 @112", 96, 112, stride=2, act="silu"),
    Depthwise("effnet 3x3 144 @56", 144, 56, act="silu"),
    Depthwise("effnet 5x5 s2 144 @56", 144, 56, 5, 2, act="silu"),
    Depthwise("effnet 5x5 240 @28", 240, 28, 5, act="silu"),
    Depthwise("effnet 3x3 s2 240 @28", 240, 28, stride=2, act="silu"),
    Depthwise("effnet 3x3 480 @14", 480, 14, act="silu"),
    Depthwise("effnet 5x5 480 @14", 480, 14, 5, act="silu"),
    Depthwise("effnet 5x5 672 @14", 672, 14, 5, act="silu"),
    Depthwise("effnet 5x5 s2 672 @14", 672, 14, 5, 2, act="silu"),
    Depthwise("effnet 5x5 1152 @7", 1152, 7, 5, act="silu"),
    Depthwise("effnet 3x3 1152 @7", 1152, 7, act="silu"),
    # MobileNet-v3-Large (relu, hard-swish; 72, 120, 200, 184 channels padded to 80, 128, 208, 192)
    Depthwise("mnv3 3x3 16 @112", 16, 112),
    Depthwise("mnv3 3x3 s2 64 @112", 64, 112, stride=2),
    Depthwise("mnv3 3x3 72(80) @56", 80, 56),
    Depthwise("mnv3 5x5 s2 72(80) @56", 80, 56, 5, 2),
    Depthwise("mnv3 5x5 120(128) @28", 128, 28, 5),
    Depthwise("mnv3 3x3 s2 240 @28", 240, 28, stride=2, act="hswish"),
    Depthwise("mnv3 3x3 200(208) @14", 208, 14, act="hswish"),
    Depthwise("mnv3 5x5 s2 672 @14", 672, 14, 5, 2, act="hswish"),
    Depthwise("mnv3 5x5 960 @7", 960, 7, 5, act="hswish"),
    # MobileNet-v3 with the FPN head at 640x640 (the same blocks at larger maps)
    Depthwise("fpn 5x5 960 @20", 960, 20, 5, act="hswish"),
    # MobileNet-v2 (relu6)
    Depthwise("mnv2 3x3 s2 96 @112", 96, 112, stride=2, act="relu6"),
    Depthwise("mnv2 3x3 144 @56", 144, 56, act="relu6"),
    Depthwise("mnv2 3x3 384 @14", 384, 14, act="relu6"),
    Depthwise("mnv2 3x3 s2 576 @14", 576, 14, stride=2, act="relu6"),
    Depthwise("mnv2 3x3 960 @7", 960, 7, act="relu6"),
)


def compiled(shape: Depthwise, threads: int, config: str | None, general: bool):
    """The layer compiled at the default level; `general`: with the depthwise mark taken off
    its anchor, so the general conv2d_nhwc template schedules it (what it had before), else
    depthwise_nhwc with `config`'s knobs."""
    import lathe
    from lathe.dialects import make_context, te
    from lathe.lowering.anchors import ROLE_DEPTHWISE
    from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, build_pipeline
    from lathe.textual_ir.parser import parse_relay

    m = parse_relay(shape.relay())
    build_pipeline(GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + ",lower-graph-to-te").apply(make_context(), m)
    for op in m.walk():
        if isinstance(op, te.ComputeOp) and op.role is not None and op.role.data == ROLE_DEPTHWISE and general:
            del op.properties["role"]
    if config and not general:
        build_pipeline(f'apply-schedule{{config="{config}"}}').apply(make_context(), m)
    return lathe.compile(m, num_threads=threads)


def onnx_layer(shape: Depthwise, w, b):
    """The layer as an exporter writes it: NCHW Conv (group = channels, OIHW weight) and the
    activation as ONNX ops (SiLU as Sigmoid and Mul, hard-swish as HardSwish)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    c, k, p, s = shape.c, shape.kernel, shape.kernel // 2, shape.stride
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y0"], group=c, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    act = {
        "relu": [helper.make_node("Relu", ["y0"], ["y"])],
        "relu6": [helper.make_node("Clip", ["y0", "lo", "hi"], ["y"])],
        "silu": [helper.make_node("Sigmoid", ["y0"], ["sg"]), helper.make_node("Mul", ["y0", "sg"], ["y"])],
        "hswish": [helper.make_node("HardSwish", ["y0"], ["y"])],
    }[shape.act]
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), "w"),
        numpy_helper.from_array(b, "b"),
    ]
    if shape.act == "relu6":
        inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0), ("hi", 6))]
    graph = helper.make_graph(
        [conv, *act],
        "depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, shape.size, shape.size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def aligned(a):
    """A copy of `a` starting on an ALIGN boundary, as the memory planner places a buffer."""
    import numpy as np

    from lathe.backends.interface import ALIGN

    buf = np.empty(a.nbytes + ALIGN, np.uint8)
    start = -buf.ctypes.data % ALIGN
    out = buf[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def kernel_medians(executors: dict, repeat: int, block: int = 10) -> dict[str, float]:
    """Median seconds of each contender's kernel (the layer is one kernel), called on its own
    on the buffers its last run() bound, contenders alternating in blocks after a 1 s warm-up
    each. run() itself costs more than a 7x7 layer's kernel (argument binding, the output)."""
    import numpy as np

    for ex in executors.values():
        ex.time_kernels(1, warmup_seconds=1.0)
    times: dict[str, list[float]] = {k: [] for k in executors}
    for _ in range(max(1, repeat // block)):
        for name, ex in executors.items():
            times[name] += [sum(run) for run in ex.time_kernels(block, warmup_seconds=0.05)]
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--only", default=None)
    ap.add_argument("--config", default=None, help="knobs of depthwise_nhwc (else its defaults)")
    ap.add_argument("--before", default=None, help="'before' is depthwise_nhwc with these knobs, not conv2d_nhwc")
    ap.add_argument("--ort", action="store_true", help="also time run() against ONNX Runtime's run()")
    args = ap.parse_args()
    import numpy as np
    from common import fmt, geomean, interleaved_medians, ort_session

    from lathe.runtime.profiler import memory_bandwidth

    peak = memory_bandwidth()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    before = f"depthwise_nhwc:{args.before}" if args.before is not None else "conv2d_nhwc"
    print(f"bandwidth (%B): {peak / 1e9:.1f} GB/s; 'before' = {before}, 'after' = depthwise_nhwc:{args.config or ''}")
    print(f"{'layer':26s} {'before':>11s} {'after':>11s} {'ratio':>6s} {'GFLOP/s':>15s} {'GB/s':>13s} {'%B':>11s}")
    rng = np.random.default_rng(0)
    ratios, ort_ratios = [], []
    for shape in SHAPES:
        if args.only and args.only not in shape.name:
            continue
        c, k = shape.c, shape.kernel
        x = aligned(rng.standard_normal((1, shape.size, shape.size, c)).astype(np.float32))
        w = aligned((rng.standard_normal((k, k, 1, c)) / k).astype(np.float32))
        b = aligned((rng.standard_normal(c) * 0.1).astype(np.float32))
        out = {v: aligned(np.empty((1, shape.out, shape.out, c), np.float32)) for v in ("before", "after")}
        cms = {
            "before": compiled(shape, args.threads, f"depthwise_nhwc:{args.before}", general=False)
            if args.before is not None
            else compiled(shape, args.threads, None, general=True),
            "after": compiled(shape, args.threads, f"depthwise_nhwc:{args.config or ''}", general=False),
        }
        for v, cm in cms.items():
            cm.run(x=x, w=w, b=b, out=out[v])
        err = float(np.abs(out["after"] - out["before"]).max() / max(np.abs(out["before"]).max(), 1e-30))
        med = kernel_medians({v: cm.executor for v, cm in cms.items()}, args.repeat)
        ratio = med["after"] / med["before"]
        ratios.append(ratio)
        gf = [shape.flops() / med[v] / 1e9 for v in cms]
        gb = [shape.bytes() / med[v] / 1e9 for v in cms]
        print(
            f"{shape.name:26s} {fmt(med['before']):>11s} {fmt(med['after']):>11s} {ratio:5.2f}x "
            f"{gf[0]:7.1f}>{gf[1]:7.1f} {gb[0]:6.1f}>{gb[1]:6.1f} {100 * gb[0] * 1e9 / peak:4.0f}%>"
            f"{100 * gb[1] * 1e9 / peak:4.0f}%  err {err:.1e}",
            flush=True,
        )
        if args.ort:
            sess, xn = ort_session(onnx_layer(shape, w, b), args.threads), np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            ref = sess.run(None, {"x": xn})[0].transpose(0, 2, 3, 1)
            ort_err = float(np.abs(out["after"] - ref).max() / max(np.abs(ref).max(), 1e-30))
            runs = interleaved_medians(
                {
                    "ort": lambda sess=sess, xn=xn: sess.run(None, {"x": xn}),
                    "lathe": lambda cm=cms["after"], x=x, w=w, b=b, y=out["after"]: cm.run(x=x, w=w, b=b, out=y),
                },
                repeat=args.repeat,
                block=10,
            )
            ort_ratios.append(runs["lathe"] / runs["ort"])
            print(
                f"{'':26s} run(): ORT {fmt(runs['ort'])}, depthwise_nhwc {fmt(runs['lathe'])}, "
                f"{ort_ratios[-1]:.2f}x ORT  err vs ORT {ort_err:.1e}",
                flush=True,
            )
    if ort_ratios:
        print(f"geometric mean run() / ORT's run() {geomean(ort_ratios):.2f}x")
    if ratios:
        print(f"geometric mean after/before {geomean(ratios):.2f}x over {len(ratios)} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
