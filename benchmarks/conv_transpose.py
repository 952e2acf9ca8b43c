"""ConvTranspose layers (decoders, GAN generators, segmentation heads): the phased conv2d that
alter-op-layout makes of them at -O3, the per-stage conv2d_transpose they run as at -O2 (no
alter-op-layout), and ONNX Runtime, side by side in one process.

    python benchmarks/conv_transpose.py [--threads 2] [--repeat 10]

Each row is a one-node ONNX model with its weight and bias as initializers (conv_shapes.py
builds it), imported with `lathe.from_onnx` and timed through `run()`, contenders alternating
in blocks. The machine is shared: compare the ratios, not the times.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conv_shapes import ConvShape, onnx_model  # noqa: E402

SHAPES = (
    ConvShape("convT2x2 s2 96->24 @40", 96, 24, 40, kernel=2, stride=2, pad=0, transpose=True),
    ConvShape("convT4x4 s2 p1 128->64 @16", 128, 64, 16, kernel=4, stride=2, pad=1, transpose=True),
    ConvShape("convT3x3 s2 p1 64->32 @56", 64, 32, 56, kernel=3, stride=2, pad=1, transpose=True),
    ConvShape("convT3x3 s1 p1 32->32 @56", 32, 32, 56, kernel=3, stride=1, pad=1, transpose=True),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    import numpy as np
    from common import fmt, interleaved_medians, ort_session

    import lathe

    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.threads} threads")
    print(
        f"{'layer':28s} {'-O3 phased':>11s} {'-O2 per-stage':>14s} {'ORT':>10s} {'O3/ORT':>7s} {'O2/ORT':>7s} {'err':>8s}"
    )
    for shape in SHAPES:
        model, x = onnx_model(shape, rng)
        sess = ort_session(model, args.threads)
        ref = sess.run(None, {"x": x})[0]
        module, params = lathe.from_onnx(model)
        phased = lathe.compile(module, params=params, num_threads=args.threads)
        per_stage = lathe.compile(module, params=params, num_threads=args.threads, opt_level=2)
        err = max(float(np.abs(cm.run(x) - ref).max() / np.abs(ref).max()) for cm in (phased, per_stage))
        med = interleaved_medians(
            {
                "phased": lambda cm=phased, x=x: cm.run(x),
                "per_stage": lambda cm=per_stage, x=x: cm.run(x),
                "ort": lambda sess=sess, x=x: sess.run(None, {"x": x}),
            },
            repeat=args.repeat,
        )
        print(
            f"{shape.name:28s} {fmt(med['phased']):>11s} {fmt(med['per_stage']):>14s} {fmt(med['ort']):>10s} "
            f"{med['phased'] / med['ort']:6.2f}x {med['per_stage'] / med['ort']:6.2f}x {err:8.1e}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
