"""Reductions over axes, and ArgMax/ArgMin."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import Attribute, SSAValue

from lathe.dialects import graph
from lathe.frontends.onnx.importer import Node, value_shape
from lathe.frontends.onnx.registry import converts


class RunTimeAxes:
    """Axes given by an input known only at run time (how many, from its type where the result's
    rank needs it): the reduction is a graph.dyn whose `axis` is read from it (none: every axis,
    or with noop_with_empty_axes no reduction)."""

    def __init__(self, n: Node) -> None:
        self.node = n
        self.form = "list" if n.attr("noop_with_empty_axes", 0) else "list_or_all"

    @property
    def count(self) -> int:
        """How many axes (needed for the result's rank when the axes are not kept)."""
        return self.node.length(1, "axes")

    def result(self, x: SSAValue, keepdims: bool) -> Attribute:
        """The declared type of a reduction of `x` over them: the rank known, the dimensions not."""
        rank = len(value_shape(x))
        if keepdims:
            return graph.tensor([DYNAMIC_INDEX] * rank, x.type.element_type)  # type: ignore[attr-defined]
        out_rank = rank - self.count if self.count else 0  # none: every axis (noop's none is no reduction)
        return graph.tensor([DYNAMIC_INDEX] * out_rank, x.type.element_type)  # type: ignore[attr-defined]

    def reduce(self, op: str, x: SSAValue, keepdims: bool) -> SSAValue:
        return self.node.dyn(op, [x], [("axis", self.form, 1)], self.result(x, keepdims), keepdims=keepdims)


def _reduce_axes(n: Node, axes_input_since: int) -> list[int] | None | RunTimeAxes:
    """The axes to reduce (None: all), or [] for identity (empty axes with noop_with_empty_axes)."""
    if n.opset >= axes_input_since and n.has(1) and not n.known(1):
        axes = RunTimeAxes(n)
        empty = n.shape(1) == [0]  # known from the type: with noop_with_empty_axes, no reduction
        return [] if empty and axes.form == "list" else axes
    if n.opset >= axes_input_since:
        axes = n.ints(1, "axes") if n.has(1) else []
    else:
        axes = list(n.attr("axes", []))
    if not axes:
        return [] if n.attr("noop_with_empty_axes", 0) else None
    return axes


def _reduce(build: Callable[[Node, SSAValue, list[int] | None, bool], SSAValue], axes_input_since: int = 18):
    def convert(n: Node):
        x = n.x(0)
        axes = _reduce_axes(n, axes_input_since)
        if axes == []:
            return x
        return build(n, x, axes, bool(n.attr("keepdims", 1)))

    return convert


def _reduction(n: Node, op: str, x: SSAValue, axes, keepdims: bool) -> SSAValue:
    if not isinstance(axes, RunTimeAxes):
        return n.emit(op, x, axis=axes, keepdims=keepdims)
    return axes.reduce(op, x, keepdims)


def _simple_reduce(op: type[graph.GraphOp]):
    def build(n, x, axes, keepdims):
        return _reduction(n, op.relay_name(), x, axes, keepdims)

    return build


def _sum_of(n: Node, x: SSAValue, axes, keepdims) -> SSAValue:
    return _reduction(n, "sum", x, axes, keepdims)


def _reduce_l1(n, x, axes, keepdims):
    return _sum_of(n, n.emit("abs", x), axes, keepdims)


def _reduce_sum_square(n, x, axes, keepdims):
    return _sum_of(n, n.emit("multiply", x, x), axes, keepdims)


def _reduce_l2(n, x, axes, keepdims):
    return n.emit("sqrt", _reduce_sum_square(n, x, axes, keepdims))


def _reduce_log_sum(n, x, axes, keepdims):
    return n.emit("log", _sum_of(n, x, axes, keepdims))


def _reduce_log_sum_exp(n, x, axes, keepdims):
    """max + log(sum(exp(x − max))), which does not overflow. Over run-time axes the max (kept
    dimensions, `?`) is broadcast back to x's shape by a graph.dyn broadcast_to for the
    subtraction, and the kept dimensions squeezed by a graph.dyn squeeze of the same axes."""
    if isinstance(axes, RunTimeAxes):
        m = axes.reduce("max", x, keepdims=True)
        shape = graph.ShapeOfOp.build(x)
        shape.location = n.location
        n.imp.add(shape)
        wide = n.dyn("broadcast_to", [m], [("shape", "broadcast", shape.result)], x.type)
        s = n.emit("log", axes.reduce("sum", n.emit("exp", n.emit("subtract", x, wide)), keepdims=True))
        y = n.emit("add", s, m)
        if keepdims:
            return y
        return n.dyn("squeeze", [y], [("axis", axes.form, 1)], axes.result(x, keepdims=False))
    m = n.emit("max", x, axis=axes, keepdims=True)
    s = n.emit("log", n.emit("sum", n.emit("exp", n.emit("subtract", x, m)), axis=axes, keepdims=True))
    y = n.emit("add", s, m)
    return y if keepdims else n.emit("squeeze", y, axis=axes if axes is not None else list(range(len(value_shape(x)))))


converts("ReduceSum", makes=graph.SumOp)(_reduce(_simple_reduce(graph.SumOp), axes_input_since=13))
for _op, _graph_op in {
    "ReduceMean": graph.MeanOp,
    "ReduceMax": graph.MaxOp,
    "ReduceMin": graph.MinOp,
    "ReduceProd": graph.ProdOp,
}.items():
    converts(_op, makes=_graph_op)(_reduce(_simple_reduce(_graph_op)))
for _op, _build in {
    "ReduceL1": _reduce_l1,
    "ReduceL2": _reduce_l2,
    "ReduceSumSquare": _reduce_sum_square,
    "ReduceLogSum": _reduce_log_sum,
    "ReduceLogSumExp": _reduce_log_sum_exp,
}.items():
    converts(_op)(_reduce(_build))


def _arg_reduce(op: type[graph.GraphOp]):
    """Lathe's argmax/argmin give int32 (as Relay's); ONNX wants int64."""

    def convert(n: Node):
        y = n.emit(
            op,
            n.x(0),
            axis=[n.attr("axis", 0)],
            keepdims=bool(n.attr("keepdims", 1)),
            select_last_index=bool(n.attr("select_last_index", 0)),
        )
        return n.emit("cast", y, dtype="int64")

    return convert


converts("ArgMax", makes=graph.ArgmaxOp)(_arg_reduce(graph.ArgmaxOp))
converts("ArgMin", makes=graph.ArgminOp)(_arg_reduce(graph.ArgminOp))
