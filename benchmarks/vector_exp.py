"""The vectorized exp (backends/llvm/vmath.py) against an earlier revision of it, in one process.

    python benchmarks/vector_exp.py [--baseline REV] [--repeat 60]

Each workload is compiled twice at one thread: once with the working tree's vmath, once with
vmath.py as it was at git revision REV (read with `git show`, its exp generator swapped in
while compiling), and the two `run()`s alternate in blocks. The kernel cache is off in this
process: both variants share the code generator's fingerprint, and an object built with the
baseline must not be stored under the working tree's key. Workloads: softmax over 12x128x128
with and without a quarter of each row at -10000 (a padding or causal mask; the masked lanes
once formed subnormals), sigmoid and SiLU of a 112x112x96 map.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["LATHE_CACHE"] = "0"

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "0996468"  # the Cephes exp (clamp, floor, 2^n by fmul), before the Cody-Waite form


def baseline_vmath(rev: str) -> types.ModuleType:
    text = subprocess.run(
        ["git", "show", f"{rev}:backends/llvm/vmath.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    mod = types.ModuleType(f"vmath_{rev}")
    exec(compile(text, f"vmath.py@{rev}", "exec"), mod.__dict__)
    return mod


def compile_with(src: str, exp_generator, threads: int):
    from xdsl.dialects import math

    import lathe
    from lathe.backends.llvm import vmath
    from lathe.textual_ir.parser import parse_relay

    saved = vmath.POLYNOMIALS[math.ExpOp]
    vmath.POLYNOMIALS[math.ExpOp] = exp_generator
    try:
        cm = lathe.compile(parse_relay(src), num_threads=threads)
        # llvm_ir renders the loops again, with the generator in place now: check it here
        assert "@lathe_vexp" in cm.llvm_ir, "the vectorized loop did not use the polynomial exp"
    finally:
        vmath.POLYNOMIALS[math.ExpOp] = saved
    return cm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--repeat", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import numpy as np
    from common import fmt, interleaved_medians

    from lathe.backends.llvm import vmath

    rng = np.random.default_rng(0)
    old_exp = baseline_vmath(args.baseline).vexp
    softmax = "def @main(%x: Tensor[(12, 128, 128), float32]) { nn.softmax(%x, axis=-1) }"
    sx = (rng.standard_normal((12, 128, 128)) * 3).astype(np.float32)
    masked = sx.copy()
    masked[..., 96:] = -10000.0
    fmap = "Tensor[(1, 112, 112, 96), float32]"
    ax = (rng.standard_normal((1, 112, 112, 96)) * 2).astype(np.float32)
    cases = {
        "softmax 12x128x128": (softmax, sx),
        "softmax 12x128x128, 1/4 masked -1e4": (softmax, masked),
        "sigmoid 112x112x96": (f"def @main(%x: {fmap}) {{ sigmoid(%x) }}", ax),
        "silu 112x112x96": (f"def @main(%x: {fmap}) {{ multiply(%x, sigmoid(%x)) }}", ax),
    }
    print(f"baseline {args.baseline}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}")
    print(f"{'workload':40s} {'baseline':>11s} {'new':>11s} {'new/base':>9s}  max |new-base|")
    compiled: dict[str, object] = {}
    for name, (src, x) in cases.items():
        for tag, gen in (("base", old_exp), ("new", vmath.vexp)):
            compiled.setdefault(f"{tag}|{src}", compile_with(src, gen, args.threads))
        base, new = compiled[f"base|{src}"], compiled[f"new|{src}"]
        diff = float(np.max(np.abs(new.run(x=x) - base.run(x=x))))
        t = interleaved_medians(
            {"base": lambda b=base, x=x: b.run(x=x), "new": lambda n=new, x=x: n.run(x=x)}, args.repeat
        )
        print(f"{name:40s} {fmt(t['base'])} {fmt(t['new'])} {t['new'] / t['base']:9.3f}  {diff:.2e}")
    print(f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
