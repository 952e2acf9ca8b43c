"""Compile time against program size: is every stage linear in the number of ops?

    python benchmarks/compile_scaling.py [--sizes 100,1000,10000] [--shapes chain,diamond,ladder]

Three graph shapes of elementwise ops on a small tensor:
  chain    %i = add(%i-1, %x)                      (each value has one user)
  diamond  %a = exp(%p); %b = negative(%p); %p' = add(%a, %b)
  ladder   %i = add(%i-1, %i-2)                    (each value feeds the next two)
Each is compiled at -O3 through to loop level: parse, the -O3 graph passes
(fusion included), lower-graph-to-te, apply-default-schedule, lower-te-to-loop,
cleanup-loops. LLVM code generation is not timed: it works per distinct kernel
and the kernel cache makes it depend on what was compiled before, not on the
size of this program. Printed: seconds per 1,000 ops for each stage and size;
a linear stage prints about the same number at every size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = "Tensor[(16), float32]"


def chain(n: int) -> str:
    body = ["  %0 = add(%x, %x);"] + [f"  %{i} = add(%{i - 1}, %x);" for i in range(1, n)]
    return _program(body, f"%{n - 1}")


def diamond(n: int) -> str:
    body, prev = [], "%x"
    for k in range(n // 3):
        body += [f"  %a{k} = exp({prev});", f"  %b{k} = negative({prev});", f"  %p{k} = add(%a{k}, %b{k});"]
        prev = f"%p{k}"
    return _program(body, prev)


def ladder(n: int) -> str:
    body = ["  %0 = add(%x, %x);", "  %1 = add(%0, %x);"] + [f"  %{i} = add(%{i - 1}, %{i - 2});" for i in range(2, n)]
    return _program(body, f"%{n - 1}")


def _program(body: list[str], result: str) -> str:
    return "\n".join([f"def @main(%x: {SHAPE}) {{", *body, f"  {result}", "}"])


SHAPES = {"chain": chain, "diamond": diamond, "ladder": ladder}


def stages() -> list[tuple[str, str]]:
    from lathe.pipelines import GRAPH_PIPELINES, LOWERING

    return [("graph -O3", GRAPH_PIPELINES[3])] + [(p, p) for p in LOWERING.split(",")]


def time_one(text: str) -> dict[str, float]:
    from lathe.api import parse_source
    from lathe.dialects import make_context
    from lathe.dialects.verifier import verify
    from lathe.pipelines import build_pipeline

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    module = parse_source(text, "scaling.lathe")
    times["parse"] = time.perf_counter() - t0
    ctx = make_context()
    for label, spec in stages():
        t0 = time.perf_counter()
        build_pipeline(spec).apply(ctx, module)
        times[label] = time.perf_counter() - t0
    t0 = time.perf_counter()
    verify(module)  # as lathe.lower and lathe-opt do
    times["verify"] = time.perf_counter() - t0
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    labels = ["parse"] + [label for label, _ in stages()] + ["verify"]
    print(f"{'shape':8s} {'ops':>6s} " + " ".join(f"{lab[:14]:>14s}" for lab in labels) + f" {'total s':>8s}")
    print(f"{'':15s} " + " ".join(f"{'s/1k ops':>14s}" for _ in labels))
    for shape in args.shapes.split(","):
        for n in sizes:
            times = time_one(SHAPES[shape](n))
            per_k = [1000 * times[lab] / n for lab in labels]
            print(
                f"{shape:8s} {n:6d} " + " ".join(f"{t:14.3f}" for t in per_k) + f" {sum(times.values()):8.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
