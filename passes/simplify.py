"""simplify-inference and expand-split: rewrite tuple-producing ops into plain ones.

Like Relay's SimplifyInference, batch_norm becomes a per-channel multiply and
add with scale and shift computed from its parameters, and dropout (identity
at inference) disappears. expand-split turns `split` into strided slices.
Afterwards every compute op has a single tensor result, so every kernel
bufferizes to plain output buffers; tuples are glue.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.passes.outline import carry_location


class _Emit:
    """Collects new ops in order; `op(...)` returns the result value."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def __call__(self, name: str, *operands: SSAValue, **attrs) -> SSAValue:
        o = make_op(name, operands, **attrs)
        self.ops.append(o)
        return o.results[0]

    def scalar(self, v: float, dtype) -> SSAValue:
        o = graph.ConstantOp.scalar(v, dtype)
        self.ops.append(o)
        return o.result


class BatchNormToScaleShift(RewritePattern):
    """y = x * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.BatchNormOp, rewriter: PatternRewriter) -> None:
        a = op.attrs()
        e = _Emit()
        x = op.data
        rank = len(shape_of(x.type))
        axis = graph.normalize_axis("", a["axis"], rank)
        dt = x.type.element_type  # type: ignore[union-attr]
        scale = e("rsqrt", e("add", op.moving_var, e.scalar(a["epsilon"], dt)))
        if a["scale"]:
            scale = e("multiply", scale, op.gamma)
        shift = e("negative", e("multiply", op.moving_mean, scale))
        if a["center"]:
            shift = e("add", shift, op.beta)
        trailing = rank - axis - 1
        if trailing:
            scale = e("expand_dims", scale, axis=1, num_newaxis=trailing)
            shift = e("expand_dims", shift, axis=1, num_newaxis=trailing)
        out = e("add", e("multiply", x, scale), shift)
        tup = make_op("tuple", [out, op.moving_mean, op.moving_var])
        rewriter.replace(op, carry_location(op, [*e.ops, tup]))


class RemoveDropout(RewritePattern):
    """dropout(x) → (x, ones_like(x)) at inference; its projection .0 then folds to x."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.DropoutOp, rewriter: PatternRewriter) -> None:
        mask = make_op("ones_like", [op.data])
        rewriter.replace(op, [mask, make_op("tuple", [op.data, mask.results[0]])])


class FoldTupleGetItem(RewritePattern):
    """tuple_get_item(tuple(a, b, ...), i) → the i-th field."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.TupleGetItemOp, rewriter: PatternRewriter) -> None:
        t = op.tuple.owner
        if isinstance(t, graph.TupleOp):
            rewriter.replace(op, [], [t.operands[op.index.value.data]])


class SplitToStridedSlices(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.SplitOp, rewriter: PatternRewriter) -> None:
        axis, parts = graph.SplitOp.bounds("", shape_of(op.data.type), op.attrs())
        e = _Emit()
        fields = [e("strided_slice", op.data, begin=[b], end=[end], axes=[axis]) for b, end in parts]
        rewriter.replace(op, carry_location(op, [*e.ops, make_op("tuple", fields)]))


def _run(module: ModuleOp, *patterns: RewritePattern) -> None:
    PatternRewriteWalker(GreedyRewritePatternApplier([*patterns, FoldTupleGetItem()])).rewrite_module(module)


@dataclass(frozen=True)
class SimplifyInference(ModulePass):
    """batch_norm to a multiply and an add with precomputed scale and shift; dropout removed."""

    name = "simplify-inference"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _run(op, BatchNormToScaleShift(), RemoveDropout())


@dataclass(frozen=True)
class ExpandSplit(ModulePass):
    """split to strided slices, so that every compute op has one tensor result."""

    name = "expand-split"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _run(op, SplitToStridedSlices())
