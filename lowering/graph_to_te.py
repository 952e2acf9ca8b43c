"""lower-graph-to-te: each graph op in a kernel becomes a te.compute.

The compute definitions here are Lathe's TOPI: one function per op family,
written with the te_builder DSL. A kernel function (outlined by
outline-kernels or fuse-ops) keeps its signature; only its body changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from lathe.dialects import graph, te
from lathe.errors import LatheError
from lathe.lowering import te_builder as tb
from lathe.lowering.te_builder import Tensor, broadcast_index, compute
from lathe.passes.outline import KERNEL_ATTR


def _elementwise(fn: Callable[[tb.Expr], tb.Expr]):
    def lower(op: Operation) -> te.ComputeOp:
        x = Tensor(op.operands[0])
        out = op.results[0].type
        return compute(op.relay_name().replace(".", "_"), out, lambda *i: fn(x[tuple(i)]))
    return lower


def _broadcast(fn: Callable[[tb.Expr, tb.Expr], tb.Expr]):
    def lower(op: Operation) -> te.ComputeOp:
        a, b = Tensor(op.operands[0]), Tensor(op.operands[1])
        out = op.results[0].type
        oshape = out.get_shape()

        def body(*i):
            return fn(a[tuple(broadcast_index(i, a.shape, oshape))], b[tuple(broadcast_index(i, b.shape, oshape))])
        return compute(op.relay_name(), out, body)
    return lower


def _relu(x: tb.Expr) -> tb.Expr:
    return tb.maximum(x, 0)


def _sigmoid(x: tb.Expr) -> tb.Expr:
    return 1.0 / (1.0 + tb.exp(-x))


def _dense(op: graph.DenseOp) -> te.ComputeOp:
    x, w = Tensor(op.data), Tensor(op.weight)
    k = x.shape[-1]
    out = op.result.type
    rank = len(out.get_shape())

    def body(*idx):
        *batch, j, r = idx
        return x[(*batch, r)] * w[j, r]
    names = [f"i{d}" for d in range(rank - 1)] + ["j", "k"]
    return compute("T_dense", out, body, reduce=[k], axis_names=names)


def _matmul(op: graph.MatmulOp) -> te.ComputeOp:
    a, b = Tensor(op.tensor_a), Tensor(op.tensor_b)
    ta = graph.prop_bool(op.properties, "transpose_a")
    tbt = graph.prop_bool(op.properties, "transpose_b")
    k = a.shape[0] if ta else a.shape[1]

    def body(i, j, r):
        return (a[r, i] if ta else a[i, r]) * (b[j, r] if tbt else b[r, j])
    return compute("T_matmul", op.result.type, body, reduce=[k], axis_names=["i", "j", "k"])


def _bias_add(op: graph.BiasAddOp) -> te.ComputeOp:
    x, b = Tensor(op.data), Tensor(op.bias)
    axis = graph.BiasAddOp.normalized_axis(len(x.shape), op.properties)
    return compute("T_add", op.result.type, lambda *i: x[tuple(i)] + b[i[axis]])


TE_COMPUTE: dict[type[Operation], Callable[[Operation], te.ComputeOp]] = {
    graph.ReluOp: _elementwise(_relu),
    graph.NegativeOp: _elementwise(lambda x: -x),
    graph.ExpOp: _elementwise(tb.exp),
    graph.TanhOp: _elementwise(tb.tanh),
    graph.SigmoidOp: _elementwise(_sigmoid),
    graph.SqrtOp: _elementwise(tb.sqrt),
    graph.AddOp: _broadcast(lambda a, b: a + b),
    graph.SubtractOp: _broadcast(lambda a, b: a - b),
    graph.MultiplyOp: _broadcast(lambda a, b: a * b),
    graph.DivideOp: _broadcast(lambda a, b: a / b),
    graph.MaximumOp: _broadcast(tb.maximum),
    graph.MinimumOp: _broadcast(tb.minimum),
    graph.DenseOp: _dense,
    graph.MatmulOp: _matmul,
    graph.BiasAddOp: _bias_add,
}


def _scalar_constant_compute(op: graph.ConstantOp) -> te.ComputeOp:
    from lathe.runtime.interpreter import constant_value

    value = constant_value(op)
    out = op.result.type
    assert isinstance(out, TensorType)
    if value.size != 1:
        raise LatheError("lower-graph-to-te: only scalar constants may live inside a kernel")
    return compute("T_const", out, lambda *i: tb.const(value.reshape(-1)[0].item(), out.element_type))


class LowerGraphOpToTe(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.GraphOp):
            return
        parent = op.parent_op()
        if not (isinstance(parent, func.FuncOp) and KERNEL_ATTR in parent.attributes):
            return
        if isinstance(op, graph.ConstantOp):
            new = _scalar_constant_compute(op)
        else:
            lower = TE_COMPUTE.get(type(op))
            if lower is None:
                raise LatheError(f"lower-graph-to-te: no te compute definition for '{op.relay_name()}'")
            new = lower(op)
        rewriter.replace(op, new)


@dataclass(frozen=True)
class LowerGraphToTe(ModulePass):
    """Replace every graph op inside a kernel function by its te.compute."""

    name = "lower-graph-to-te"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(LowerGraphOpToTe(), apply_recursively=False).rewrite_module(op)
