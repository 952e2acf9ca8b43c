"""Issue 13's single layers: the conv and dense shapes real exported CNNs have, Lathe's default
schedules next to ONNX Runtime, one layer per row.

    python benchmarks/conv_shapes.py [--threads 2] [--repeat 20] [--only SUBSTRING] [--config KNOBS ...]

Each row is a one-node ONNX model (weights as initializers, so alter-op-layout and
fold-constant see them as a real export's), imported with `lathe.from_onnx`, compiled at the
default level and timed through the user-facing `run()` beside ONNX Runtime's default session
in this one process, contenders alternating in blocks. Compare the ratios (and GFLOP/s), never
the absolute times: the machine is shared. A row also names the template that scheduled the
layer's kernel, so a cliff is traceable to the schedule that fell off; %pk is Lathe's GFLOP/s
as a share of the threads' peak (the profiler's: lanes x 2 FMA units x 2 x clock). Each
`--config` (conv2d_nhwc knobs, e.g. `order=yxf,tile_w=7`) adds a contender: the same layer
with that configuration replayed, timed in the same blocks, its ratio to ORT printed after;
`--unblocked` adds the layer compiled without block-conv-weights (its weight HWIO, packed per
run where the template's order packs it): the same-process A/B of compile-time weight blocking.
`--kernel` adds the heaviest kernel alone (the profiler's median, its operands warm in cache);
`--cold` times it instead with every core's L2 evicted before each call (a 16 MB add on the
same threads), as the model's other kernels leave it in a model run, where kernel_floor.py
profiles it: a small layer's weight then comes from L3 or memory, which the warm kernel hides
(DenseNet-121's 3x3 128 -> 32 at 7x7: 24 us warm, 39 us cold at one thread).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass(frozen=True)
class ConvShape:
    """Conv (or ConvTranspose) on a [1, cin, size, size] input."""

    name: str
    cin: int
    cout: int
    size: int
    kernel: int | tuple[int, int] = 3  # (kh, kw) for Inception's 1x7 / 7x1
    stride: int = 1
    pad: int | tuple[int, int] = 1  # (along h, along w)
    groups: int = 1
    transpose: bool = False
    relu: bool = False  # Conv + bias + Relu, as a batch-normalized layer exports after folding

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return self.kernel if isinstance(self.kernel, tuple) else (self.kernel, self.kernel)

    @property
    def pad_hw(self) -> tuple[int, int]:
        return self.pad if isinstance(self.pad, tuple) else (self.pad, self.pad)

    def out_hw(self) -> tuple[int, int]:
        (kh, kw), (ph, pw) = self.kernel_hw, self.pad_hw
        if self.transpose:
            return ((self.size - 1) * self.stride - 2 * ph + kh, (self.size - 1) * self.stride - 2 * pw + kw)
        return ((self.size + 2 * ph - kh) // self.stride + 1, (self.size + 2 * pw - kw) // self.stride + 1)

    def flops(self) -> float:
        kh, kw = self.kernel_hw
        if self.transpose:
            return 2.0 * self.cin * self.size * self.size * self.cout * kh * kw / self.groups
        oh, ow = self.out_hw()
        return 2.0 * self.cout * oh * ow * (self.cin // self.groups) * kh * kw


@dataclass(frozen=True)
class DenseShape:
    """MatMul of an [m, k] activation by a constant [k, n] weight (what Gemm/Linear export)."""

    name: str
    m: int
    k: int
    n: int

    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n


SHAPES = (
    ConvShape("conv3x3 96->24 @160", 96, 24, 160),
    ConvShape("conv3x3 24->96 @160", 24, 96, 160),
    ConvShape("conv3x3 64->64 @56 (friendly)", 64, 64, 56),
    ConvShape("depthwise3x3 120 @80", 120, 120, 80, groups=120),
    ConvShape("depthwise3x3 240 @40", 240, 240, 40, groups=240),
    ConvShape("depthwise3x3 s2 72 @80", 72, 72, 80, stride=2, groups=72),
    ConvShape("grouped3x3 128 g32 @28", 128, 128, 28, groups=32),
    ConvShape("grouped3x3 96 g4 @40", 96, 96, 40, groups=4),
    ConvShape("first conv3x3 s2 3->16 @320", 3, 16, 320, stride=2),
    ConvShape("conv1x1 40->120 @80", 40, 120, 80, kernel=1, pad=0),
    ConvShape("conv1x1 120->40 @80", 120, 40, 80, kernel=1, pad=0),
    # EfficientNet-B0's pointwise convolutions at 14x14 and 7x7 (few pixels: the threads' work
    # must come from the output channels) and the 3-channel first layers at 224
    ConvShape("conv1x1 112->672 @14", 112, 672, 14, kernel=1, pad=0),
    ConvShape("conv1x1 672->112 @14", 672, 112, 14, kernel=1, pad=0),
    ConvShape("conv1x1 192->1152 @7", 192, 1152, 7, kernel=1, pad=0),
    ConvShape("conv1x1 1152->192 @7", 1152, 192, 7, kernel=1, pad=0),
    ConvShape("conv1x1 1152->320 @7", 1152, 320, 7, kernel=1, pad=0),
    ConvShape("conv1x1 320->1280 @7", 320, 1280, 7, kernel=1, pad=0),
    ConvShape("first conv3x3 s2 3->32 @224", 3, 32, 224, stride=2),
    ConvShape("first conv3x3 s2 3->16 @224", 3, 16, 224, stride=2),
    # ResNet-18's distinct convolutions (batch norm folded into the bias, then Relu; the
    # downsample 1x1s have none): 98.5% of its time, 1.16-1.25x ORT in the zoo
    ConvShape("resnet18 7x7 s2 3->64 @224", 3, 64, 224, kernel=7, stride=2, pad=3, relu=True),
    ConvShape("resnet18 3x3 64 @56", 64, 64, 56, relu=True),
    ConvShape("resnet18 3x3 s2 64->128 @56", 64, 128, 56, stride=2, relu=True),
    ConvShape("resnet18 3x3 128 @28", 128, 128, 28, relu=True),
    ConvShape("resnet18 3x3 s2 128->256 @28", 128, 256, 28, stride=2, relu=True),
    ConvShape("resnet18 3x3 256 @14", 256, 256, 14, relu=True),
    ConvShape("resnet18 3x3 s2 256->512 @14", 256, 512, 14, stride=2, relu=True),
    ConvShape("resnet18 3x3 512 @7", 512, 512, 7, relu=True),
    ConvShape("resnet18 1x1 s2 64->128 @56", 64, 128, 56, kernel=1, stride=2, pad=0),
    ConvShape("resnet18 1x1 s2 128->256 @28", 128, 256, 28, kernel=1, stride=2, pad=0),
    ConvShape("resnet18 1x1 s2 256->512 @14", 256, 512, 14, kernel=1, stride=2, pad=0),
    # Inception-v3's distinct 17x17 and 8x8 convolutions (Conv + folded batch norm + Relu):
    # 289 and 64 output pixels, so the threads' work and the register tiles come from the
    # output channels; the factorised 1x7 / 7x1 windows run along one axis only
    ConvShape("incep 3x3 s2 288->384 @35", 288, 384, 35, stride=2, pad=0, relu=True),
    ConvShape("incep 3x3 s2 96->96 @35", 96, 96, 35, stride=2, pad=0, relu=True),
    ConvShape("incep 1x1 768->192 @17", 768, 192, 17, kernel=1, pad=0, relu=True),
    ConvShape("incep 1x1 768->128 @17", 768, 128, 17, kernel=1, pad=0, relu=True),
    ConvShape("incep 1x1 768->160 @17", 768, 160, 17, kernel=1, pad=0, relu=True),
    ConvShape("incep 1x7 128->128 @17", 128, 128, 17, kernel=(1, 7), pad=(0, 3), relu=True),
    ConvShape("incep 7x1 128->128 @17", 128, 128, 17, kernel=(7, 1), pad=(3, 0), relu=True),
    ConvShape("incep 7x1 128->192 @17", 128, 192, 17, kernel=(7, 1), pad=(3, 0), relu=True),
    ConvShape("incep 1x7 128->192 @17", 128, 192, 17, kernel=(1, 7), pad=(0, 3), relu=True),
    ConvShape("incep 1x7 160->160 @17", 160, 160, 17, kernel=(1, 7), pad=(0, 3), relu=True),
    ConvShape("incep 7x1 160->160 @17", 160, 160, 17, kernel=(7, 1), pad=(3, 0), relu=True),
    ConvShape("incep 1x7 192->192 @17", 192, 192, 17, kernel=(1, 7), pad=(0, 3), relu=True),
    ConvShape("incep 7x1 192->192 @17", 192, 192, 17, kernel=(7, 1), pad=(3, 0), relu=True),
    ConvShape("incep 3x3 s2 192->320 @17", 192, 320, 17, stride=2, pad=0, relu=True),
    ConvShape("incep 3x3 s2 192->192 @17", 192, 192, 17, stride=2, pad=0, relu=True),
    ConvShape("incep 1x1 1280->320 @8", 1280, 320, 8, kernel=1, pad=0, relu=True),
    ConvShape("incep 1x1 2048->384 @8", 2048, 384, 8, kernel=1, pad=0, relu=True),
    ConvShape("incep 1x1 2048->448 @8", 2048, 448, 8, kernel=1, pad=0, relu=True),
    ConvShape("incep 3x3 448->384 @8", 448, 384, 8, relu=True),
    ConvShape("incep 1x3 384->384 @8", 384, 384, 8, kernel=(1, 3), pad=(0, 1), relu=True),
    ConvShape("incep 3x1 384->384 @8", 384, 384, 8, kernel=(3, 1), pad=(1, 0), relu=True),
    ConvShape("convT2x2 s2 96->24 @40", 96, 24, 40, kernel=2, stride=2, pad=0, transpose=True),
    DenseShape("dense 64x512 . 512x1000", 64, 512, 1000),
    DenseShape("dense 64x256 . 256x30", 64, 256, 30),
    DenseShape("dense 77x512 . 512x77", 77, 512, 77),
    DenseShape("gemv 1x1280 . 1280x1000", 1, 1280, 1000),
    DenseShape("gemv 1x512 . 512x77", 1, 512, 77),
    # issue 13's per-kernel floor offenders: DenseNet-121's block-4 3x3 (49 output pixels, 32
    # filters), squeeze-excitation fc1s (1x1 on a 1x1 input: GEMVs that stream their weight;
    # MobileNet-v3's 480/672/960 and a tiny 72 -> 24) and the zoo transformer's projections
    # (32 tokens: the weight streams for few rows)
    ConvShape("densenet 3x3 128->32 @7", 128, 32, 7),
    ConvShape("se fc1 1x1 480->120 @1", 480, 120, 1, kernel=1, pad=0, relu=True),
    ConvShape("se fc1 1x1 672->168 @1", 672, 168, 1, kernel=1, pad=0, relu=True),
    ConvShape("se fc1 1x1 960->240 @1", 960, 240, 1, kernel=1, pad=0, relu=True),
    ConvShape("se fc1 1x1 72->24 @1", 72, 24, 1, kernel=1, pad=0, relu=True),
    DenseShape("transformer dense 32x256 . 256x256", 32, 256, 256),
)


def onnx_model(shape, rng):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def f32(*s, scale=1.0):
        return (rng.standard_normal(s) * scale).astype(np.float32)

    if isinstance(shape, DenseShape):
        w = f32(shape.k, shape.n, scale=shape.k**-0.5)
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
        inputs, outputs = [("x", [shape.m, shape.k])], [("y", [shape.m, shape.n])]
        inits = [numpy_helper.from_array(w, "w")]
    else:
        s = shape
        (kh, kw), (ph, pw) = s.kernel_hw, s.pad_hw
        if s.transpose:
            w = f32(s.cin, s.cout // s.groups, kh, kw, scale=(s.cin * kh * kw) ** -0.5)
            op = "ConvTranspose"
        else:
            w = f32(s.cout, s.cin // s.groups, kh, kw, scale=(s.cin // s.groups * kh * kw) ** -0.5)
            op = "Conv"
        node = helper.make_node(
            op,
            ["x", "w", "b"],
            ["z" if s.relu else "y"],
            kernel_shape=[kh, kw],
            strides=[s.stride, s.stride],
            pads=[ph, pw, ph, pw],
            group=s.groups,
        )
        nodes = [node] + ([helper.make_node("Relu", ["z"], ["y"])] if s.relu else [])
        inputs, outputs = [("x", [1, s.cin, s.size, s.size])], [("y", [1, s.cout, *s.out_hw()])]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(f32(s.cout, scale=0.1), "b")]
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in outputs],
        inits,
    )
    x = rng.standard_normal(inputs[0][1]).astype(np.float32)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), x


def templates_of(module, params) -> str:
    """The schedule templates the default pipeline plans for the layer's kernels (the one that
    holds the convolution or contraction is the one a cliff is in)."""
    from lathe.dialects import make_context
    from lathe.dialects.functions import defined_functions, is_kernel
    from lathe.lowering.schedules import plan_kernel
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, build_pipeline

    m = bind_params(module.clone(), params)
    build_pipeline(GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + ",lower-graph-to-te").apply(make_context(), m)
    plans = [plan_kernel(f, 16) for f in defined_functions(m) if is_kernel(f)]
    return ",".join(sorted({p.template_name for p in plans if p.template or len(plans) == 1})) or "per_stage"


def with_config(module, params, knobs: str, threads: int):
    """The layer compiled at the default level with its conv2d_nhwc kernel replayed from
    `knobs` (the knobs left out take the defaults for this host's L2, as compile's do)."""
    import lathe
    from lathe.backends.interface import host_cache_bytes
    from lathe.dialects import make_context
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, build_pipeline

    m = bind_params(module.clone(), params)
    caches = host_cache_bytes()
    l2 = f" l2_bytes={caches[1]}" if len(caches) > 1 else ""
    build_pipeline(GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + ",lower-graph-to-te").apply(make_context(), m)
    build_pipeline(f'apply-schedule{{config="conv2d_nhwc:{knobs}"{l2}}}').apply(make_context(), m)
    return lathe.compile(m, num_threads=threads)


UNBLOCKED = "unblocked"


def without_weight_blocking(module, params, threads: int):
    """The layer compiled at the default level without block-conv-weights."""
    import lathe
    from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for

    pipeline = pipeline_for(DEFAULT_OPT_LEVEL).replace("block-conv-weights,", "")
    return lathe.compile(module, params=params, num_threads=threads, pipeline=pipeline)


def kernel_share(cm, x, peak: float, evict=None) -> str:
    """The layer's heaviest kernel timed alone by the profiler (no layout transposes, no
    runtime): its median and share of the threads' peak, the number a schedule change moves;
    with `evict`, called before each call of it (cold_kernel_seconds)."""
    row = max(cm.profile(x, repeat=30, warmup_seconds=0.3).rows, key=lambda r: r.seconds)
    seconds = row.seconds if evict is None else cold_kernel_seconds(cm, row.kernel, evict)
    share = f" {100 * row.flops / seconds / peak:.0f}%" if row.flops else ""
    return f"{seconds * 1e6:.0f} us{share}{' cold' if evict is not None else ''}"


EVICT_BYTES = 16 << 20  # read and written by evict_caches: 8x a core's L2 on this machine


def evict_caches(threads: int):
    """A function that evicts every thread's L2: a compiled add over EVICT_BYTES on `threads`
    threads, as a model's other kernels evict a kernel's operands between two runs of it."""
    import numpy as np

    import lathe
    from lathe.textual_ir.parser import parse_relay

    n = EVICT_BYTES // 4
    cm = lathe.compile(parse_relay(f"def @main(%a: Tensor[({n},), float32]) {{ add(%a, %a) }}"), num_threads=threads)
    cm.executor.set_inputs((), {"a": np.ones(n, np.float32)})
    return cm.executor.execute


def cold_kernel_seconds(cm, kernel: str, evict, calls: int = 30) -> float:
    """The median of `calls` calls of one of cm's kernels (on the operands its last run left),
    each after `evict`, inside one marked run as the profiler's are."""
    import time

    ex = cm.executor
    fn, ptrs, _ = next(s for s in ex.steps if s[2] == kernel)
    times = []
    with ex._marked_run():
        for _ in range(calls):
            evict()
            t0 = time.perf_counter()
            fn(ptrs)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--only", default=None)
    ap.add_argument("--config", action="append", default=[], help="conv2d_nhwc knobs: one more contender each")
    ap.add_argument("--kernel", action="store_true", help="also the heaviest kernel alone (profiler), %% of peak")
    ap.add_argument("--unblocked", action="store_true", help="also the layer without compile-time weight blocking")
    ap.add_argument("--cold", action="store_true", help="with --kernel: every L2 evicted before each call")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    from common import fmt, geomean, interleaved_medians, ort_sessions

    import lathe
    from lathe.runtime.profiler import machine

    rng = np.random.default_rng(0)
    peak = machine(args.threads, 16).peak_flops
    evict = evict_caches(args.threads) if args.cold else None
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    print(
        f"{'layer':32s} {'lathe':>11s} {'ORT':>11s} {'ratio':>7s} {'GFLOP/s':>8s} {'ORT':>6s} {'%pk':>4s} {'err':>8s}  template"
    )
    ratios = []
    for shape in SHAPES:
        if args.only and args.only not in shape.name:
            continue
        model, x = onnx_model(shape, rng)
        sess, quiet = ort_sessions(model, args.threads)
        ref = sess.run(None, {"x": x})[0]
        module, params = lathe.from_onnx(model)
        cm = lathe.compile(module, params=params, num_threads=args.threads)
        got = cm.run(x)
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
        configured = {c: with_config(module, params, c, args.threads) for c in args.config}
        if args.unblocked:
            configured[UNBLOCKED] = without_weight_blocking(module, params, args.threads)
        for ccm in configured.values():
            err = max(err, float(np.abs(ccm.run(x) - ref).max() / max(np.abs(ref).max(), 1e-30)))
        med = interleaved_medians(
            {
                "lathe": lambda cm=cm, x=x: cm.run(x),
                "ort": lambda sess=sess, x=x: sess.run(None, {"x": x}),
                "quiet": lambda sess=quiet, x=x: sess.run(None, {"x": x}),
            }
            | {c: lambda cm=ccm, x=x: cm.run(x) for c, ccm in configured.items()},
            repeat=args.repeat,
        )
        ratio = med["lathe"] / med["ort"]
        ratios.append(ratio)
        print(
            f"{shape.name:32s} {fmt(med['lathe']):>11s} {fmt(med['ort']):>11s} {ratio:6.2f}x "
            f"{shape.flops() / med['lathe'] / 1e9:8.1f} {shape.flops() / med['ort'] / 1e9:6.1f} "
            f"{100 * shape.flops() / med['lathe'] / peak:3.0f}% {err:8.1e}  {templates_of(module, params)}"
            f"  [{med['lathe'] / med['quiet']:.2f}x no spin]"
            + "".join(f"  [{c}: {med[c] / med['ort']:.2f}x]" for c in configured)
            + (f"  [kernel {kernel_share(cm, x, peak, evict)}]" if args.kernel else "")
            + "".join(
                f"  [{c} kernel {kernel_share(ccm, x, peak, evict)}]" for c, ccm in configured.items() if args.kernel
            ),
            flush=True,
        )
    if ratios:
        print(f"geometric mean ratio {geomean(ratios):.2f}x over {len(ratios)} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
