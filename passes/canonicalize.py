"""Algebraic identities on graph ops, run by xDSL's own `canonicalize` pass.

Graph ops carry the `GraphCanonicalization` trait (dialects/graph/core.py), which
hands `canonicalize` the patterns registered here for the op's class — the
MLIR way: one canonicalizer, patterns keyed by op. The dialect knows no
transformation, so importing this module is what registers them (the pass
registry does before it hands out xDSL's canonicalize). Each pattern's
docstring is the identity it applies.
"""

from __future__ import annotations

import numpy as np
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.dialects.reference import constant_value
from lathe.passes.outline import carry_location


def constant_of(v: SSAValue) -> np.ndarray | None:
    if isinstance(v.owner, graph.ConstantOp):
        return constant_value(v.owner)
    return None


def _is_all(v: SSAValue, value: float) -> bool:
    c = constant_of(v)
    return c is not None and bool(np.all(c == value))


def _replace_with(rewriter: PatternRewriter, op: Operation, v: SSAValue) -> bool:
    """Replace op by v when the types agree (an identity must not change the type)."""
    if v.type != op.results[0].type:
        return False
    rewriter.replace(op, [], [v])
    return True


class MultiplyByOne(RewritePattern):
    """x * 1 = 1 * x = x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.MultiplyOp, rewriter: PatternRewriter) -> None:
        for keep, one in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            if _is_all(one, 1) and _replace_with(rewriter, op, keep):
                return


class AddZero(RewritePattern):
    """x + 0 = 0 + x = x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.AddOp, rewriter: PatternRewriter) -> None:
        for keep, zero in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            if _is_all(zero, 0) and _replace_with(rewriter, op, keep):
                return


class SubtractZero(RewritePattern):
    """x - 0 = x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.SubtractOp, rewriter: PatternRewriter) -> None:
        if _is_all(op.rhs, 0):
            _replace_with(rewriter, op, op.lhs)


class DivideByOne(RewritePattern):
    """x / 1 = x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.DivideOp, rewriter: PatternRewriter) -> None:
        if _is_all(op.rhs, 1):
            _replace_with(rewriter, op, op.lhs)


class DoubleNegation(RewritePattern):
    """-(-x) = x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.NegativeOp, rewriter: PatternRewriter) -> None:
        if isinstance(op.data.owner, graph.NegativeOp):
            _replace_with(rewriter, op, op.data.owner.data)


class ComposeTransposes(RewritePattern):
    """transpose(transpose(x, p), q) = transpose(x, p∘q); the identity permutation is x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.TransposeOp, rewriter: PatternRewriter) -> None:
        rank = len(shape_of(op.data.type))
        q = graph.TransposeOp.perm("", rank, op.attrs())
        inner = op.data.owner
        if isinstance(inner, graph.TransposeOp):
            p = graph.TransposeOp.perm("", rank, inner.attrs())
            perm = [p[k] for k in q]
            if perm == list(range(rank)):
                _replace_with(rewriter, op, inner.data)
            else:
                rewriter.replace(op, carry_location(op, [make_op("transpose", [inner.data], axes=perm)]))
        elif q == list(range(rank)):
            _replace_with(rewriter, op, op.data)


_RESHAPES = (graph.ReshapeOp, graph.SqueezeOp, graph.ExpandDimsOp, graph.BatchFlattenOp)


class ComposeReshapes(RewritePattern):
    """reshape(reshape(x)) = reshape(x) (also through squeeze, expand_dims, batch_flatten);
    a reshape to the shape it already has is x"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, _RESHAPES):
            return
        src = op.operands[0]
        if src.type == op.results[0].type:
            _replace_with(rewriter, op, src)
            return
        if isinstance(src.owner, _RESHAPES) and isinstance(
            op, graph.ReshapeOp | graph.BatchFlattenOp | graph.SqueezeOp | graph.ExpandDimsOp
        ):
            rewriter.replace(
                op,
                carry_location(
                    op, [make_op("reshape", [src.owner.operands[0]], newshape=shape_of(op.results[0].type))]
                ),
            )


class CastToSameType(RewritePattern):
    """cast(x: T, T) = x"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.CastOp, rewriter: PatternRewriter) -> None:
        _replace_with(rewriter, op, op.data)


class TrivialShapeOps(RewritePattern):
    """broadcast_to(x, shape(x)) = x; strided_slice covering all of x = x; concatenate((x,)) = x"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.BroadcastToOp | graph.StridedSliceOp | graph.TileOp):
            if isinstance(op, graph.StridedSliceOp):
                bounds = graph.slice_bounds("", shape_of(op.data.type), op.attrs())
                if any((b, s) != (0, 1) for b, s, _ in bounds):
                    return
            _replace_with(rewriter, op, op.operands[0])
        elif (
            isinstance(op, graph.ConcatenateOp)
            and isinstance(op.data.owner, graph.TupleOp)
            and len(op.data.owner.operands) == 1
        ):
            _replace_with(rewriter, op, op.data.owner.operands[0])


PATTERNS: dict[type[Operation], tuple[RewritePattern, ...]] = {
    graph.MultiplyOp: (MultiplyByOne(),),
    graph.AddOp: (AddZero(),),
    graph.SubtractOp: (SubtractZero(),),
    graph.DivideOp: (DivideByOne(),),
    graph.NegativeOp: (DoubleNegation(),),
    graph.TransposeOp: (ComposeTransposes(),),
    graph.ReshapeOp: (ComposeReshapes(),),
    graph.SqueezeOp: (ComposeReshapes(),),
    graph.ExpandDimsOp: (ComposeReshapes(),),
    graph.BatchFlattenOp: (ComposeReshapes(),),
    graph.CastOp: (CastToSameType(),),
    graph.BroadcastToOp: (TrivialShapeOps(),),
    graph.StridedSliceOp: (TrivialShapeOps(),),
    graph.TileOp: (TrivialShapeOps(),),
    graph.ConcatenateOp: (TrivialShapeOps(),),
}
graph.CANONICALIZATION_PATTERNS.update(PATTERNS)
