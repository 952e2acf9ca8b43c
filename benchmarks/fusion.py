"""Fusion: the -O3 pipeline with fuse-ops vs the same pipeline with every op its own
kernel (outline-kernels), side by side, and the number of kernels per zoo model
before and after fuse-ops.

    python benchmarks/fusion.py [--threads 2] [--repeat 30] [--no-models]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHAINS = {
    "conv2d + bias + relu (ResNet layer)": (
        "def @main(%x: Tensor[(1, 64, 56, 56), float32], %w: Tensor[(64, 64, 3, 3), float32], %b: Tensor[(64), float32]) {"
        " nn.relu(nn.bias_add(nn.conv2d(%x, %w, padding=[1, 1]), %b)) }",
        ("w", "b"),
    ),
    "dense + bias + gelu (BERT FFN)": (
        "def @main(%x: Tensor[(128, 768), float32], %w: Tensor[(3072, 768), float32], %b: Tensor[(3072), float32]) {"
        " %0 = nn.bias_add(nn.dense(%x, %w), %b); multiply(multiply(%0, 0.5f), add(erf(multiply(%0, 0.70710677f)), 1f)) }",
        ("w", "b"),
    ),
    "layer_norm chain (residual add + layer_norm)": (
        "def @main(%x: Tensor[(128, 768), float32], %r: Tensor[(128, 768), float32], %g: Tensor[(768), float32], %b: Tensor[(768), float32]) {"
        " %0 = add(%x, %r); %1 = mean(%0, axis=[-1], keepdims=True); %2 = subtract(%0, %1);"
        " %3 = mean(multiply(%2, %2), axis=[-1], keepdims=True); %4 = divide(%2, sqrt(add(%3, 1e-05f)));"
        " add(multiply(%4, %g), %b) }",
        ("g", "b"),
    ),
    "softmax(batch_matmul) (BERT attention)": (
        "def @main(%q: Tensor[(12, 128, 64), float32], %k: Tensor[(12, 128, 64), float32]) {"
        " nn.softmax(multiply(nn.batch_matmul(%q, %k), 0.125f), axis=-1) }",
        (),
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--no-models", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np
    from common import fmt, interleaved_medians
    from xdsl.dialects import func

    import lathe
    from lathe.dialects.dtypes import np_dtype
    from lathe.dialects.functions import param_names
    from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, LOWERING
    from lathe.textual_ir.parser import parse_relay

    rng = np.random.default_rng(0)
    print(
        f"{'chain (-O3, fuse-ops vs outline-kernels)':46s} {'unfused':>10s} {'fused':>10s} {'speedup':>8s} {'kernels':>8s}"
    )
    for name, (src, weights) in CHAINS.items():
        m = parse_relay(src)
        fn = next(f for f in m.ops if isinstance(f, func.FuncOp))
        vals = {
            n: (rng.standard_normal(tuple(a.type.get_shape())) * 0.05).astype(np_dtype(a.type.element_type))
            for n, a in zip(param_names(fn), fn.body.block.args)
        }
        params = {k: vals[k] for k in weights}
        inputs = {k: v for k, v in vals.items() if k not in params}
        cms = {}
        fused = GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + "," + LOWERING
        unfused = fused.replace("fuse-ops", "outline-kernels")
        for level, spec in ((0, unfused), (3, fused)):
            cm = lathe.compile(m, params=params, pipeline=spec, num_threads=args.threads)
            cm.executor.set_inputs((), inputs)
            cms[level] = cm
        ref = lathe.interpret(m, **vals)
        for cm in cms.values():
            got = cm.run(**inputs)
            assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max(), name
        med = interleaved_medians({lv: cm.executor.execute for lv, cm in cms.items()}, repeat=args.repeat)
        print(
            f"{name:46s} {fmt(med[0]):>10s} {fmt(med[3]):>10s} {med[0] / med[3]:7.2f}x "
            f"{len(cms[0].executor.steps):>3d} -> {len(cms[3].executor.steps)}",
            flush=True,
        )
    if not args.no_models:
        from models import ZOO

        print(f"\n{'model (full size)':20s} {'graph ops':>10s} {'unfused':>12s} {'fused':>12s}  (kernels, -O3)")
        for name in ("resnet50", "bert_base", "mobilenet_v2"):
            module, params = lathe.from_onnx(ZOO[name].build())
            ops = sum(
                1
                for o in module.walk()
                if o.name.startswith("graph.")
                and o.name not in ("graph.constant", "graph.tuple", "graph.tuple_get_item")
            )
            from lathe.passes.fold_constant import bind_params

            counts = []
            bound = bind_params(module.clone(), params)
            for spec in (GRAPH_PIPELINES[3].replace("fuse-ops", "outline-kernels"), GRAPH_PIPELINES[3]):
                lowered = lathe.lower(bound, pipeline=spec)
                counts.append(sum(1 for f in lowered.ops if "lathe.kernel" in f.attributes))
            print(f"{name:20s} {ops:>10d} {counts[0]:>12d} {counts[1]:>12d}", flush=True)
    del param_names
    return 0


if __name__ == "__main__":
    sys.exit(main())
