"""Compile-time conv weight blocking (block-conv-weights), A/B in one process: each model or
layer compiled at the default level with and without the pass, `run()` alternating in blocks.

    python benchmarks/weight_blocking.py [--models resnet18,resnet50,vgg16] [--layers SUBSTRING]
                                         [--threads 1] [--rounds 20] [--block 5] [--config KNOBS]

Prints per contender the median and the minimum over all timed calls and the ratios
blocked / unblocked (below 1: the pass is a gain); `--config` (conv2d_nhwc knobs) adds a third
contender, the blocked build with every conv kernel replayed with those knobs (tile_h=2).
Layers are benchmarks/conv_shapes.py's rows (ONNX Conv + bias [+ Relu]), models the zoo's.
The machine is shared: read the ratios, with the load average printed at the top.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def contenders(model, threads: int, config: str | None):
    """The blocked build (the default pipeline), the unblocked one, and optionally the blocked
    one replayed with `config`; plus the inputs' names in order."""
    import lathe
    from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for

    module, params = lathe.from_onnx(model)
    default = pipeline_for(DEFAULT_OPT_LEVEL)
    out = {
        "blocked": lathe.compile(module, params=params, num_threads=threads),
        "unblocked": lathe.compile(
            module, params=params, num_threads=threads, pipeline=default.replace("block-conv-weights,", "")
        ),
    }
    if config:
        from lathe.backends.interface import host_cache_bytes

        caches = host_cache_bytes()
        l2 = f" l2_bytes={caches[1]}" if len(caches) > 1 else ""
        replay = f'lower-graph-to-te,apply-schedule{{config="conv2d_nhwc:{config}"{l2}}},'
        out[config] = lathe.compile(
            module,
            params=params,
            num_threads=threads,
            pipeline=default.replace("lower-graph-to-te,apply-default-schedule,", replay),
        )
    return out


def alternate(fns: dict, rounds: int, block: int, warmup: float = 1.0) -> dict[str, list[float]]:
    """Seconds per call of each fn, the contenders taking turns in blocks of `block` calls."""
    from common import warm

    for fn in fns.values():
        warm(fn, warmup)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def report(name: str, times: dict[str, list[float]]) -> None:
    import numpy as np
    from common import fmt

    med = {k: float(np.median(v)) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    cells = "  ".join(f"{k} {fmt(med[k]).strip()} (min {fmt(low[k]).strip()})" for k in times)
    ratios = "  ".join(
        f"{k}/unblocked {med[k] / med['unblocked']:.3f} (min {low[k] / low['unblocked']:.3f})"
        for k in times
        if k != "unblocked"
    )
    print(f"{name:32s} {cells}  |  {ratios}  [load {os.getloadavg()[0]:.1f}]", flush=True)


def kernel_minima(cms: dict, xs: list, rounds: int, top: int = 8) -> None:
    """Every kernel timed alone by the profiler, the builds taking turns; per kernel the
    minimum over the rounds of its median, the sum of those per build, and the kernels whose
    time moved most (a model's run() is too noisy on a shared machine to show a few percent)."""
    low: dict[str, dict[str, float]] = {k: {} for k in cms}
    where: dict[str, str] = {}
    for _ in range(rounds):
        for name, cm in cms.items():
            for row in cm.profile(*xs, repeat=10, warmup_seconds=0.2).rows:
                low[name][row.kernel] = min(low[name].get(row.kernel, float("inf")), row.seconds)
                where[row.kernel] = row.sources[0] if row.sources else ""
    base = low["unblocked"]
    for name, rows in low.items():
        if name != "unblocked":
            total, ref = sum(rows.values()) * 1e3, sum(base.values()) * 1e3
            print(f"  kernels, sum of minima: {name} {total:.2f} ms, unblocked {ref:.2f} ms ({total / ref:.3f})")
    moved = sorted((k for k in base if k in low["blocked"]), key=lambda k: -abs(low["blocked"][k] - base[k]))
    for k in moved[:top]:
        b, u = low["blocked"][k], base[k]
        print(
            f"    {k:44s} {where[k][:28]:28s} blocked {b * 1e6:8.0f} us  unblocked {u * 1e6:8.0f} us  {b / u:.3f}",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="")
    ap.add_argument("--layers", default=None, help="conv_shapes.py rows whose name contains this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--block", type=int, default=5)
    ap.add_argument("--kernels", type=int, default=0, help="also this many rounds of per-kernel profiles")
    ap.add_argument("--config", default=None, help="conv2d_nhwc knobs: a third contender, the blocked build replayed")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    rng = np.random.default_rng(0)
    if args.layers is not None:
        from conv_shapes import SHAPES, ConvShape, onnx_model

        for shape in SHAPES:
            if not isinstance(shape, ConvShape) or args.layers not in shape.name:
                continue
            model, x = onnx_model(shape, rng)
            cms = contenders(model, args.threads, args.config)
            outs = [cm.run(x) for cm in cms.values()]
            assert all(np.allclose(o, outs[0], rtol=1e-4, atol=1e-5) for o in outs), shape.name
            report(
                shape.name,
                alternate({k: (lambda cm=cm, x=x: cm.run(x)) for k, cm in cms.items()}, args.rounds, args.block),
            )
            if args.kernels:
                kernel_minima(cms, [x], args.kernels, top=1)
    if args.models:
        from models import ZOO
        from models.builder import random_inputs

        for name in args.models.split(","):
            model = ZOO[name].build()
            inputs = random_inputs(model, 0)
            order = [i.name for i in model.graph.input if i.name in inputs]
            xs = [inputs[k] for k in order]
            cms = contenders(model, args.threads, args.config)
            outs = [cm.run(*xs) for cm in cms.values()]
            first = outs[0] if isinstance(outs[0], tuple) else (outs[0],)
            for o in outs[1:]:
                o = o if isinstance(o, tuple) else (o,)
                assert all(np.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(o, first)), name
            report(
                name,
                alternate({k: (lambda cm=cm, xs=xs: cm.run(*xs)) for k, cm in cms.items()}, args.rounds, args.block),
            )
            if args.kernels:
                kernel_minima(cms, xs, args.kernels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
