"""alter-op-layout: rewrite contractions into the blocked layouts CPU kernels want.

dense(x, W) and matmul(a, b) become nn.contrib_dense_pack with the weight
packed as [N / bn, K, bn]: reshape + transpose ops that fold-constant
evaluates once when the weight is a constant (a bound param), so the
micro-kernel reads each block of bn output columns as whole vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of


def pack_width(n: int) -> int | None:
    """Columns per packed block: two AVX-512 vectors when they divide N."""
    for bn in (32, 16):
        if n % bn == 0:
            return bn
    return None


class DenseToDensePack(RewritePattern):
    """dense(x, W[N, K]) → contrib_dense_pack(x, transpose(reshape(W, [N/bn, bn, K]), [0, 2, 1]))
    matmul(a, b[K, N]) → contrib_dense_pack(a, transpose(reshape(b, [K, N/bn, bn]), [1, 0, 2]))"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.DenseOp):
            x, w, trans = op.data, op.weight, True
        elif isinstance(op, graph.MatmulOp) and not op.attrs()["transpose_a"]:
            x, w, trans = op.tensor_a, op.tensor_b, op.attrs()["transpose_b"]
        else:
            return
        if not graph.is_float(op.results[0].type.element_type) or op.attrs()["out_dtype"]:
            return
        ws = shape_of(w.type)
        n, k = (ws[0], ws[1]) if trans else (ws[1], ws[0])
        bn = pack_width(n)
        if bn is None or k < 4:
            return
        if trans:
            r = make_op("reshape", [w], newshape=[n // bn, bn, k])
            t = make_op("transpose", [r.results[0]], axes=[0, 2, 1])
        else:
            r = make_op("reshape", [w], newshape=[k, n // bn, bn])
            t = make_op("transpose", [r.results[0]], axes=[1, 0, 2])
        packed = make_op("nn.contrib_dense_pack", [x, t.results[0]], weight_layout=f"NC{bn}n")
        rewriter.replace(op, [r, t, packed])


class BatchMatmulToPack(RewritePattern):
    """batch_matmul(a, b[B, N, K], transpose_b) → contrib_batch_matmul_pack(a, transpose(reshape(b, [B, N/bn, bn, K]), [0, 1, 3, 2]))
    (and the [B, K, N] form without transpose_b)"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.BatchMatmulOp):
            return
        a = op.attrs()
        if a["transpose_a"] or a["out_dtype"] or not graph.is_float(op.result.type.element_type):
            return
        bs = shape_of(op.tensor_b.type)
        bsz, n, k = (bs[0], bs[1], bs[2]) if a["transpose_b"] else (bs[0], bs[2], bs[1])
        bn = pack_width(n)
        if bn is None or k < 4:
            return
        if a["transpose_b"]:
            r = make_op("reshape", [op.tensor_b], newshape=[bsz, n // bn, bn, k])
            t = make_op("transpose", [r.results[0]], axes=[0, 1, 3, 2])
        else:
            r = make_op("reshape", [op.tensor_b], newshape=[bsz, k, n // bn, bn])
            t = make_op("transpose", [r.results[0]], axes=[0, 2, 1, 3])
        packed = make_op("nn.contrib_batch_matmul_pack", [op.tensor_a, t.results[0]])
        rewriter.replace(op, [r, t, packed])


@dataclass(frozen=True)
class AlterOpLayout(ModulePass):
    name = "alter-op-layout"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([DenseToDensePack(), BatchMatmulToPack()])).rewrite_module(op)
