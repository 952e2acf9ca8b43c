"""Elementwise arithmetic, comparisons and logic, casts, clip and where."""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.frontends.onnx.converters.common import input_dtype
from lathe.frontends.onnx.importer import (
    Node,
    lathe_dtype,
    plain,
    value_dtype,
    value_shape,
)
from lathe.frontends.onnx.registry import converts

_BINARY: dict[str, type[graph.GraphOp]] = {
    "Add": graph.AddOp,
    "Sub": graph.SubtractOp,
    "Mul": graph.MultiplyOp,
    "Div": graph.DivideOp,
    "Equal": graph.EqualOp,
    "Less": graph.LessOp,
    "LessOrEqual": graph.LessEqualOp,
    "Greater": graph.GreaterOp,
    "GreaterOrEqual": graph.GreaterEqualOp,
    "And": graph.LogicalAndOp,
    "Or": graph.LogicalOrOp,
    "Xor": graph.NotEqualOp,
}


def _binary(op: type[graph.GraphOp]):
    def convert(n: Node):
        return n.emit(op, n.x(0), n.x(1))

    convert.__doc__ = f"ONNX broadcasting is numpy's, as is {op.relay_name()}'s."
    return convert


for _onnx_op, _graph_op in _BINARY.items():
    converts(_onnx_op, makes=_graph_op)(_binary(_graph_op))


@converts("Pow", makes=graph.PowerOp)
def _pow(n: Node):
    """The exponent may have another dtype than the base (opset 12+); Lathe's power wants one."""
    x, y = n.x(0), n.x(1)
    if value_dtype(y) != value_dtype(x):
        y = n.emit("cast", y, dtype=value_dtype(x))
    return n.emit(graph.PowerOp, x, y)


def _variadic(op: type[graph.GraphOp], mean: bool = False):
    def convert(n: Node):
        xs = [n.x(i) for i in range(len(n.inputs)) if n.has(i)]
        y = xs[0]
        for x in xs[1:]:
            y = n.emit(op, y, x)
        if mean:
            y = n.emit("divide", y, n.scalar(len(xs), y))
        return y

    return convert


converts("Sum", makes=graph.AddOp)(_variadic(graph.AddOp))
converts("Mean")(_variadic(graph.AddOp, mean=True))
converts("Max", makes=graph.MaximumOp)(_variadic(graph.MaximumOp))
converts("Min", makes=graph.MinimumOp)(_variadic(graph.MinimumOp))

_UNARY: dict[str, type[graph.GraphOp]] = {
    "Neg": graph.NegativeOp,
    "Abs": graph.AbsOp,
    "Exp": graph.ExpOp,
    "Log": graph.LogOp,
    "Sqrt": graph.SqrtOp,
    "Tanh": graph.TanhOp,
    "Sigmoid": graph.SigmoidOp,
    "Erf": graph.ErfOp,
    "Floor": graph.FloorOp,
    "Ceil": graph.CeilOp,
    "Round": graph.RoundOp,
    "Relu": graph.ReluOp,
    "Not": graph.LogicalNotOp,
}


def _unary(op: type[graph.GraphOp]):
    def convert(n: Node):
        return n.emit(op, n.x(0))

    return convert


for _onnx_op, _graph_op in _UNARY.items():
    converts(_onnx_op, makes=_graph_op)(_unary(_graph_op))


@converts("Reciprocal")
def _reciprocal(n: Node):
    x = n.x(0)
    return n.emit("divide", n.scalar(1.0, x), x)


def _limits(dtype: str) -> tuple[float | int, float | int]:
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    return plain(info.min), plain(info.max)


def _clip(n: Node, x: SSAValue, lo, hi) -> SSAValue:
    """clip with attribute bounds (a missing one is the dtype's limit)."""
    dmin, dmax = _limits(value_dtype(x))
    lo = dmin if lo is None else lo
    hi = dmax if hi is None else hi
    if value_dtype(x).startswith("float"):
        lo, hi = float(lo), float(hi)
    else:
        lo, hi = int(lo), int(hi)
    return n.emit(graph.ClipOp, x, a_min=lo, a_max=hi)


@converts("Clip", makes=graph.ClipOp)
def _clip_v1(n: Node):
    return _clip(n, n.x(0), n.attr("min"), n.attr("max"))


@converts("Clip", since=11, makes=graph.ClipOp)
def _clip_v11(n: Node):
    """min and max became optional inputs; bounds computed at run time become maximum/minimum."""
    x = n.x(0)
    if all(not n.has(i) or n.known(i) for i in (1, 2)):
        lo = n.opt_const(1)
        hi = n.opt_const(2)
        return _clip(n, x, None if lo is None else plain(lo.reshape(())), None if hi is None else plain(hi.reshape(())))
    y = x
    if n.has(1):
        y = n.emit("maximum", y, n.x(1))
    if n.has(2):
        y = n.emit("minimum", y, n.x(2))
    return y


def _cast_to(n: Node, to: int) -> str:
    return lathe_dtype(to, f"{n.where}: the target type")


@converts("Cast", makes=graph.CastOp)
def _cast(n: Node):
    to = n.attr("to")
    if isinstance(to, str):  # opsets 1-5 name the type
        from onnx import TensorProto

        to = TensorProto.DataType.Value(to.upper())
    if n.known(0):  # shape arithmetic: stay in numpy, any dtype
        from onnx import helper

        return n.const(0, "input").astype(helper.tensor_dtype_to_np_dtype(to))
    dt = _cast_to(n, to)
    x = n.x(0)
    return x if value_dtype(x) == dt else n.emit(graph.CastOp, x, dtype=dt)


@converts("CastLike", since=15, makes=graph.CastOp)
def _cast_like(n: Node):
    x = n.x(0)
    dt = graph.dtype_name(graph.DTYPES[input_dtype(n, 1)])
    return x if value_dtype(x) == dt else n.emit(graph.CastOp, x, dtype=dt)


@converts("Where", makes=graph.WhereOp)
def _where(n: Node):
    return n.emit(graph.WhereOp, n.x(0), n.x(1), n.x(2))


@converts("Mod", since=10)
def _mod(n: Node):
    """fmod=1: the remainder takes the dividend's sign (C's fmod); fmod=0: the divisor's (Python's %).

    a − q·b with q the quotient truncated (fmod=1) or floored (fmod=0); Lathe's integer divide
    truncates, and an integer remainder with the wrong sign moves by b."""
    a, b = n.x(0), n.x(1)
    fmod = bool(n.attr("fmod", 0))
    q = n.emit("divide", a, b)
    if value_dtype(a).startswith("float"):
        q = (
            n.emit("where", n.emit("less", q, n.scalar(0, q)), n.emit("ceil", q), n.emit("floor", q))
            if fmod
            else n.emit("floor", q)
        )
        return n.emit("subtract", a, n.emit("multiply", q, b))
    r = n.emit("subtract", a, n.emit("multiply", q, b))
    if fmod:
        return r
    wrong_sign = n.emit(
        "logical_and",
        n.emit("not_equal", r, n.scalar(0, r)),
        n.emit("not_equal", n.emit("less", r, n.scalar(0, r)), n.emit("less", b, n.scalar(0, b))),
    )
    return n.emit("where", wrong_sign, n.emit("add", r, b), r)


@converts("Sign")
def _sign(n: Node):
    x = n.x(0)
    neg = n.emit("where", n.emit("less", x, n.scalar(0, x)), n.scalar(-1, x), n.scalar(0, x))
    return n.emit("where", n.emit("greater", x, n.scalar(0, x)), n.scalar(1, x), neg)


@converts("IsNaN")
def _is_nan(n: Node):
    x = n.x(0)
    return n.emit("not_equal", x, x)


@converts("IsInf", since=10)
def _is_inf(n: Node):
    """|x| beyond the largest finite value (Relay text has no literal for infinity)."""
    x = n.x(0)
    big = float(np.finfo(value_dtype(x)).max)
    pos = n.emit("greater", x, n.scalar(big, x)) if n.attr("detect_positive", 1) else None
    neg = n.emit("less", x, n.scalar(-big, x)) if n.attr("detect_negative", 1) else None
    if pos is not None and neg is not None:
        return n.emit("logical_or", pos, neg)
    if pos is None and neg is None:
        return n.emit("zeros", shape=value_shape(x), dtype="bool")
    return pos if pos is not None else neg
