"""fold-scale-axis: fold per-channel scales into conv2d/dense weights (Relay's FoldScaleAxis).

Backward: `conv2d(x, W) [+ bias] * s`, with s constant and varying only along
the output-channel axis, becomes `conv2d(x, W * s) [+ bias * s]`; the same for
dense along its units. Forward: `conv2d(x * s, W)` with s along the input
channels becomes `conv2d(x, W * s)` (zero padding stays zero; groups = 1),
and `dense(x * s, W)` becomes `dense(x, W * s)`. A per-channel constant added
after conv2d/dense becomes a bias_add. The new weight expressions are constant
subgraphs that fold-constant then evaluates. After simplify-inference this
removes batch norm entirely: conv2d + bias_add + relu.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.passes.canonicalize import constant_of
from lathe.passes.outline import carry_location


def channel_vector(v: SSAValue, rank: int, axis: int) -> np.ndarray | None:
    """The constant's values if it varies only along `axis` of a rank-`rank` result."""
    c = constant_of(v)
    if c is None or c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for k, d in enumerate(full.shape) if k != axis):
        return None
    return full.reshape(-1)


def _single_use(v: SSAValue) -> bool:
    return v.has_one_use()


def _out_axis(op: Operation) -> int | None:
    if isinstance(op, graph.Conv2dOp):
        a = op.attrs()
        if a["kernel_layout"] not in ("", "OIHW") or a["data_layout"] != "NCHW":
            return None
        return 1
    if isinstance(op, graph.DenseOp):
        return len(shape_of(op.result.type)) - 1
    return None


def _scaled_weight(ops: list, w: SSAValue, s: np.ndarray, weight_axis: int, dtype) -> SSAValue:
    shape = [1] * len(shape_of(w.type))
    shape[weight_axis] = s.size
    c = graph.ConstantOp.from_array(s.reshape(shape).astype(np.float64), dtype)
    m = make_op("multiply", [w, c.result])
    ops += [c, m]
    return m.results[0]


class FoldScaleBackward(RewritePattern):
    """(conv2d|dense)(x, W) [bias_add b] * s  →  (conv2d|dense)(x, W·s) [bias_add b·s]"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.MultiplyOp):
            return
        for prod, scale in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            if not _single_use(prod) or prod.type != op.result.type:
                continue
            bias = None
            anchor = prod.owner
            if isinstance(anchor, graph.BiasAddOp) and _single_use(anchor.data):
                bias, anchor = anchor, anchor.data.owner
            axis = _out_axis(anchor) if isinstance(anchor, Operation) else None
            if axis is None:
                continue
            rank = len(shape_of(op.result.type))
            if bias is not None and graph.normalize_axis("", bias.attrs()["axis"], rank) != axis:
                continue
            s = channel_vector(scale, rank, axis)
            if s is None or s.size != shape_of(op.result.type)[axis]:
                continue
            dt = op.result.type.element_type
            new: list[Operation] = []
            w = _scaled_weight(new, anchor.operands[1], s, 0, dt)  # O of OIHW, units of dense
            conv = anchor.create_inferred([anchor.operands[0], w], dict(anchor.properties))
            carry_location(anchor, [conv])
            new.append(conv)
            out = conv.results[0]
            if bias is not None:
                b = _scaled_weight(new, bias.bias, s, 0, dt)
                ba = make_op("nn.bias_add", [out, b], axis=axis)
                carry_location(bias, [ba])
                new.append(ba)
                out = ba.results[0]
            rewriter.replace(op, new, [out])
            return


class FoldScaleForward(RewritePattern):
    """(conv2d|dense)(x * s, W)  →  (conv2d|dense)(x, W·s) for s along the input channels"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.Conv2dOp | graph.DenseOp) or _out_axis(op) is None:
            return
        if isinstance(op, graph.Conv2dOp) and op.attrs()["groups"] != 1:
            return
        mul = op.operands[0].owner
        if not isinstance(mul, graph.MultiplyOp) or not _single_use(mul.result):
            return
        rank = len(shape_of(mul.result.type))
        in_axis = 1 if isinstance(op, graph.Conv2dOp) else rank - 1
        for x, scale in ((mul.lhs, mul.rhs), (mul.rhs, mul.lhs)):
            if x.type != mul.result.type:
                continue
            s = channel_vector(scale, rank, in_axis)
            if s is None or s.size != shape_of(x.type)[in_axis]:
                continue
            new: list[Operation] = []
            w = _scaled_weight(new, op.operands[1], s, 1, op.results[0].type.element_type)  # I of OIHW / in features
            conv = op.create_inferred([x, w], dict(op.properties))
            new.append(conv)
            rewriter.replace(op, carry_location(op, new), [conv.results[0]])
            return


class ChannelAddToBiasAdd(RewritePattern):
    """(conv2d|dense)(x, W) + t, t constant along the output channels  →  bias_add(…, t)"""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.AddOp):
            return
        for prod, shift in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            anchor = prod.owner
            axis = _out_axis(anchor) if isinstance(anchor, Operation) else None
            if axis is None or prod.type != op.result.type:
                continue
            rank = len(shape_of(op.result.type))
            t = channel_vector(shift, rank, axis)
            if t is None or t.size != shape_of(op.result.type)[axis]:
                continue
            c = graph.ConstantOp.from_array(t, op.result.type.element_type)
            ba = make_op("nn.bias_add", [prod, c.result], axis=axis)
            rewriter.replace(op, carry_location(op, [c, ba]))
            return


@dataclass(frozen=True)
class FoldScaleAxis(ModulePass):
    """Fold per-channel multiplies next to conv2d/dense into their weights and bias."""

    name = "fold-scale-axis"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier([FoldScaleBackward(), FoldScaleForward(), ChannelAddToBiasAdd()])
        ).rewrite_module(op)
