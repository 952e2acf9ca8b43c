"""combine-parallel-dense / combine-parallel-batch-matmul (Relay's CombineParallel*).

Several dense ops reading the same input — BERT's Q, K and V projections —
become one dense over the concatenated weights, and each original result a
slice of it: one larger, better-shaped GEMM instead of three. The same for
batch_matmul ops sharing their first operand. Weights that are constants fold
into one constant afterwards (fold-constant).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import FusedLoc, ModuleOp, NoneAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects import graph
from lathe.dialects.functions import glue_functions
from lathe.dialects.graph import make_op, shape_of


def _defined_before(v: SSAValue, op: Operation, order: dict[Operation, int]) -> bool:
    """`order` numbers the block's ops once, before any rewrite: renumbering per query made
    the pass quadratic. An op made by a rewrite since is not in it and counts as late."""
    owner = v.owner
    if not isinstance(owner, Operation):
        return True  # a block argument
    return order.get(owner, 1 << 60) < order[op]


def _combine(fn: func.FuncOp, cls, key, weight_axis: int, out_axis, min_branches: int) -> int:
    block = fn.body.block
    groups: dict[tuple, list[Operation]] = {}
    for op in block.ops:
        if isinstance(op, cls):
            groups.setdefault(key(op), []).append(op)
    combined = 0
    order = {o: k for k, o in enumerate(block.ops)}
    for ops in groups.values():
        if len(ops) < min_branches:
            continue
        first = ops[0]
        ops = [o for o in ops if _defined_before(o.operands[1], first, order) or o is first]
        if len(ops) < min_branches:
            continue
        weights = [o.operands[1] for o in ops]
        new: list[Operation] = [make_op("tuple", weights)]
        new.append(make_op("concatenate", [new[0].results[0]], axis=weight_axis))
        big = first.create_inferred([first.operands[0], new[1].results[0]], dict(first.properties))
        big.location = FusedLoc([o.location for o in ops], NoneAttr())  # one dense stands for them all
        new.append(big)
        axis = out_axis(big)
        start = 0
        slices = []
        for o in ops:
            n = shape_of(o.results[0].type)[axis]
            s = make_op("strided_slice", [big.results[0]], begin=[start], end=[start + n], axes=[axis])
            s.location = o.location
            slices.append(s)
            start += n
        for o in new + slices:
            Rewriter.insert_op(o, InsertPoint.before(first))
        for o, s in zip(ops, slices):
            o.results[0].replace_all_uses_with(s.results[0])
            Rewriter.erase_op(o)
        combined += 1
    return combined


@dataclass(frozen=True)
class CombineParallelDense(ModulePass):
    """dense(x, W1), dense(x, W2), ... → slices of dense(x, concat(W1, W2, ...))."""

    name = "combine-parallel-dense"
    min_num_branches: int = 3

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in glue_functions(op):
            _combine(
                fn,
                graph.DenseOp,
                lambda o: (o.data, o.attrs()["out_dtype"], o.weight.type.element_type),
                0,
                lambda big: len(shape_of(big.results[0].type)) - 1,
                self.min_num_branches,
            )


@dataclass(frozen=True)
class CombineParallelBatchMatmul(ModulePass):
    """batch_matmul(x, Y1), batch_matmul(x, Y2), ... → slices of batch_matmul(x, concat(Y1, Y2, ...))."""

    name = "combine-parallel-batch-matmul"
    min_num_branches: int = 3

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in glue_functions(op):
            for tb in (True, False):

                def key(o, tb=tb):
                    a = o.attrs()
                    if a["transpose_b"] != tb:
                        return (None, id(o))  # a different flavour: its own group
                    return (o.tensor_a, a["transpose_a"], a["out_dtype"], shape_of(o.tensor_b.type)[0])

                _combine(fn, graph.BatchMatmulOp, key, 1 if tb else 2, lambda big: 2, self.min_num_branches)
