"""Features of a candidate's loop program, for the cost model.

Read from the loop-level IR after lowering, not from knob values, so that what the model
learns (deep unrolled vector loops over contiguous accesses run fast; a parallel loop of 2
iterations does not) speaks of programs, not of one template's knobs. Every feature is a
number in a fixed-length vector (log2 of sizes, so that they compare across workloads):

- per loop: extent, annotation, depth (the nest's loops by depth, outermost first);
- per buffer access: bytes touched, stride to the innermost loop (contiguous, strided,
  invariant), vector width;
- arithmetic intensity: floating-point operations per byte touched.
"""

from __future__ import annotations

import math

from xdsl.dialects import arith, memref, scf
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.ir import Operation, SSAValue

from lathe.dialects.functions import is_kernel
from lathe.dialects.loop import annotation_of

VERSION = 1  # of the vector's layout and meaning: records carry it, and transfer trains only on this one
DEPTHS = 8  # loops described one by one, outermost first along the deepest nest
ANNOTATIONS = ("none", "parallel", "vectorize", "unroll")
FLOAT_OPS = (arith.AddfOp, arith.MulfOp, arith.SubfOp, arith.DivfOp, arith.MaximumfOp, arith.MinimumfOp)


def _lg(x: float) -> float:
    return math.log2(1.0 + max(x, 0.0))


def _const(v: SSAValue) -> int | None:
    op = v.owner
    if isinstance(op, arith.ConstantOp) and hasattr(op.value, "value"):
        return op.value.value.data  # type: ignore[union-attr]
    return None


def _extent(loop: scf.ForOp) -> int:
    lb, ub, step = _const(loop.lb), _const(loop.ub), _const(loop.step)
    if lb is None or ub is None or not step:
        return 1
    return max(0, (ub - lb + step - 1) // step)


def _ivs_of(v: SSAValue, memo: dict) -> frozenset:
    """The loop induction variables an index value depends on."""
    if v in memo:
        return memo[v]
    owner = v.owner
    if isinstance(owner, Operation):
        deps = frozenset().union(*(_ivs_of(o, memo) for o in owner.operands)) if owner.operands else frozenset()
    else:  # a block argument: a loop's induction variable, or a function argument
        parent = owner.parent_op()
        deps = frozenset([v]) if isinstance(parent, scf.ForOp) and v is owner.args[0] else frozenset()
    memo[v] = deps
    return deps


def loop_features(module: ModuleOp) -> list[float]:
    loops: list[tuple[int, int, str, int]] = []  # depth, extent, annotation, vector factor
    stats = dict.fromkeys(
        ("contig", "strided", "invariant", "bytes", "flops", "local_bytes", "par_extent", "vec_width", "unroll_prod"),
        0.0,
    )
    memo: dict = {}
    deepest: list[scf.ForOp] = []

    def walk(op: Operation, nest: list[scf.ForOp]) -> None:
        nonlocal deepest
        for region in op.regions:
            for block in region.blocks:
                for inner in block.ops:
                    visit(inner, nest)

    def trips(nest: list[scf.ForOp]) -> float:
        return float(math.prod(_extent(l) for l in nest)) if nest else 1.0

    def visit(op: Operation, nest: list[scf.ForOp]) -> None:
        nonlocal deepest
        if isinstance(op, scf.ForOp):
            ann = annotation_of(op)
            kind = ann.kind.data if ann is not None else "none"
            ext = _extent(op)
            loops.append((len(nest), ext, kind, ann.factor.data if ann is not None else 0))
            if kind == "parallel":
                stats["par_extent"] = max(stats["par_extent"], ext)
            if kind == "vectorize":
                stats["vec_width"] = max(stats["vec_width"], ext)
            if kind == "unroll":
                stats["unroll_prod"] = max(stats["unroll_prod"], ext)
            inner = [*nest, op]
            if len(inner) > len(deepest):
                deepest = inner
            walk(op, inner)
            return
        if isinstance(op, memref.LoadOp | memref.StoreOp):
            mt = op.memref.type
            elem = 4 if not isinstance(mt, MemRefType) else max(1, (mt.element_type.bitwidth or 32) // 8)  # type: ignore[union-attr]
            idx = list(op.indices)
            deps = [_ivs_of(i, memo) for i in idx]
            n = trips(nest)
            innermost = nest[-1].body.block.args[0] if nest else None
            if innermost is None or not any(innermost in d for d in deps):
                stats["invariant"] += n
            elif innermost in deps[-1] and not any(innermost in d for d in deps[:-1]):
                stats["contig"] += n
            else:
                stats["strided"] += n
            used = frozenset().union(*deps) if deps else frozenset()
            stats["bytes"] += elem * float(
                math.prod(_extent(l) for l in nest if l.body.block.args[0] in used) if nest else 1
            )
        elif isinstance(op, memref.AllocaOp):
            mt = op.memref.type
            stats["local_bytes"] += 4.0 * math.prod(mt.get_shape())  # type: ignore[union-attr]
        elif isinstance(op, FLOAT_OPS):
            stats["flops"] += trips(nest)
        walk(op, nest)

    for f in module.ops:
        if is_kernel(f):
            walk(f, [])
    per_depth = []
    for d in range(DEPTHS):
        if d < len(deepest):
            l = deepest[d]
            ann = annotation_of(l)
            kind = ann.kind.data if ann is not None else "none"
            per_depth += [_lg(_extent(l)), float(ANNOTATIONS.index(kind) if kind in ANNOTATIONS else 0)]
        else:
            per_depth += [0.0, -1.0]
    return [
        float(len(loops)),
        float(max((d for d, *_ in loops), default=-1) + 1),
        _lg(stats["par_extent"]),
        _lg(stats["vec_width"]),
        _lg(stats["unroll_prod"]),
        float(sum(1 for *_, k, _ in loops if k == "unroll")),
        _lg(stats["contig"]),
        _lg(stats["strided"]),
        _lg(stats["invariant"]),
        _lg(stats["bytes"]),
        _lg(stats["local_bytes"]),
        _lg(stats["flops"]),
        _lg(stats["flops"] / max(stats["bytes"], 1.0)),
        *per_depth,
    ]
