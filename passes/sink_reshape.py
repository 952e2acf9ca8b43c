"""sink-leading-reshapes: a reshape that only regroups leading axes moves below the
elementwise ops and the softmax that follow it.

ONNX's MatMul on [batch, seq, hidden] imports as a reshape to 2-D, dense, and a reshape
back; attention's scores are a batch_matmul over batch x heads reshaped to
[batch, heads, q, k] before their scale, mask and softmax, and back to
[batch x heads, q, k] for the next batch_matmul. Each reshape between a contraction and its
elementwise epilogue is injective, so fuse-ops ends the contraction's kernel at it, and the
epilogue becomes a kernel of its own that streams the whole tensor again (BERT's bias and
GELU after the FFN's dense; the scores' scale and mask, then a reshape copy after the
softmax). Sunk below them, the reshape meets the one after (canonicalize composes the two,
here to nothing), and the epilogue fuses into the contraction (and the softmax into attention's
batch_matmul: fuse-ops' attention rule).

    op(reshape(x), y)         -> reshape(op(x, y'))
    softmax(reshape(x), axis) -> reshape(softmax(x, axis'))

when the reshape keeps x's trailing axes (t of them) and only regroups the ones before; an
elementwise op's other operands must be 1 along the regrouped axes (y' is y without them);
the softmax's axis must be one of the kept ones. The reshape must have no other use, and y's
reshape no larger than the result (unless y is a constant, folded): an operand as large as the
result (a residual add) would become a copy kernel.
"""

from __future__ import annotations

import math

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import InsertPoint

from lathe.dialects import graph
from lathe.dialects.graph import OpPattern, make_op, shape_of
from lathe.passes.outline import carry_location


def kept_trailing_axes(src: list[int], dst: list[int]) -> int:
    """How many trailing axes a reshape from `src` to `dst` keeps as they are (0: it
    regroups the last axis too, and nothing sinks past it)."""
    t = 0
    while t < min(len(src), len(dst)) and src[len(src) - 1 - t] == dst[len(dst) - 1 - t]:
        t += 1
    if t and math.prod(src[: len(src) - t]) != math.prod(dst[: len(dst) - t]):
        return 0
    return t


def _leading_reshape(v: SSAValue, user: Operation) -> tuple[SSAValue, int] | None:
    """(x, t) when v is reshape(x) keeping t >= 1 trailing axes and used by `user` alone."""
    r = v.owner
    if not isinstance(r, graph.ReshapeOp) or any(u.operation is not user for u in v.uses):
        return None
    t = kept_trailing_axes(shape_of(r.data.type), shape_of(v.type))
    return (r.data, t) if t else None


def _elementwise(op: Operation) -> bool:
    """Elementwise or numpy-broadcasting ops: no attribute names an axis (bias_add's would move)."""
    return (
        isinstance(op, graph.GraphOp)
        and op.PATTERN in (OpPattern.ELEMWISE, OpPattern.BROADCAST)
        and len(op.results) == 1
        and "axis" not in type(op).get_irdl_definition().properties
    )


class SinkLeadingReshape(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.ReshapeOp):
            self._one_per_use(op, rewriter)
        elif isinstance(op, graph.SoftmaxOp | graph.LogSoftmaxOp):
            self._softmax(op, rewriter)
        elif _elementwise(op):
            self._elementwise(op, rewriter)

    @staticmethod
    def _one_per_use(op: graph.ReshapeOp, rewriter: PatternRewriter) -> None:
        """A reshape read by several elementwise ops (GELU reads its input twice) becomes one
        per use, each free to sink; eliminate-common-subexpr merges those that stay."""
        uses = list(op.result.uses)
        if len(uses) < 2 or not kept_trailing_axes(shape_of(op.data.type), shape_of(op.result.type)):
            return
        if not all(_elementwise(u.operation) or isinstance(u.operation, graph.SoftmaxOp) for u in uses):
            return
        for use in uses[1:]:
            clone = make_op("reshape", [op.data], newshape=shape_of(op.result.type))
            rewriter.insert(carry_location(op, [clone])[0], InsertPoint.before(op))
            rewriter.replace_uses_with_if(op.result, clone.results[0], lambda u, use=use: u == use)

    @staticmethod
    def _softmax(op: Operation, rewriter: PatternRewriter) -> None:
        found = _leading_reshape(op.operands[0], op)
        if found is None:
            return
        x, t = found
        out = shape_of(op.results[0].type)
        from_end = len(out) - graph.normalize_axis("", op.attrs()["axis"], len(out))  # type: ignore[attr-defined]
        if from_end > t:
            return
        inner = make_op(op.relay_name(), [x], axis=len(shape_of(x.type)) - from_end)  # type: ignore[attr-defined]
        rewriter.replace(op, carry_location(op, [inner, make_op("reshape", [inner.results[0]], newshape=out)]))

    @staticmethod
    def _elementwise(op: Operation, rewriter: PatternRewriter) -> None:
        out = shape_of(op.results[0].type)
        found = [  # reshapes to the result's own shape (not of an operand it broadcasts)
            (v, f) for v in op.operands if shape_of(v.type) == out and (f := _leading_reshape(v, op)) is not None
        ]
        if not found:
            return
        x, t = found[0][1]
        sources = {v: f[0] for v, f in found if shape_of(f[0].type) == shape_of(x.type)}
        for v in op.operands:  # checked before any op is built: a built op uses its operands
            s = shape_of(v.type)
            if v in sources:
                continue
            if len(s) > len(out) or any(d != 1 for d in s[: max(0, len(s) - t)]):
                return  # it varies along the regrouped axes (or broadcasts the result wider)
            if len(s) > t and not isinstance(v.owner, graph.ConstantOp) and math.prod(s) >= math.prod(out):
                return  # its reshape would be a copy as large as the result
        operands: list[SSAValue] = []
        pre: list[Operation] = []
        for v in op.operands:
            s = shape_of(v.type)
            if v in sources:  # reshaped the same way (x * x, or two contractions' outputs)
                v = sources[v]
            elif len(s) > t:
                pre.append(make_op("reshape", [v], newshape=s[len(s) - t :]))
                v = pre[-1].results[0]
            operands.append(v)
        inner = make_op(op.relay_name(), operands, **op.attrs())  # type: ignore[attr-defined]
        rewriter.replace(op, carry_location(op, [*pre, inner, make_op("reshape", [inner.results[0]], newshape=out)]))


class SinkLeadingReshapes(ModulePass):
    """Move reshapes of leading axes below elementwise ops and softmax, so contractions fuse with their epilogues."""

    name = "sink-leading-reshapes"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(SinkLeadingReshape(), apply_recursively=True).rewrite_module(op)
