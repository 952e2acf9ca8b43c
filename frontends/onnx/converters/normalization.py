"""Normalizations, softmax and hardmax: ops that rescale values along some axes."""

from __future__ import annotations

import math

import numpy as np
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.frontends.onnx.converters.common import iota, reshape
from lathe.frontends.onnx.importer import Node, value_dtype, value_shape
from lathe.frontends.onnx.registry import converts


def _softmax_2d(op: type[graph.GraphOp]):
    """Before opset 13: flatten to 2-D at `axis` (default 1), normalize each row, restore the shape."""

    def convert(n: Node):
        x = n.x(0)
        xs = value_shape(x)
        axis = graph.normalize_axis(n.op_type, n.attr("axis", 1), len(xs)) if xs else 0
        rows = math.prod(xs[:axis])
        y = n.emit(op, reshape(n, x, [rows, math.prod(xs[axis:])]), axis=-1)
        return reshape(n, y, xs)

    return convert


def _softmax_axis(op: type[graph.GraphOp]):
    """From opset 13: along one axis (default −1)."""

    def convert(n: Node):
        return n.emit(op, n.x(0), axis=n.attr("axis", -1))

    return convert


converts("Softmax", makes=graph.SoftmaxOp)(_softmax_2d(graph.SoftmaxOp))
converts("LogSoftmax", makes=graph.LogSoftmaxOp)(_softmax_2d(graph.LogSoftmaxOp))
converts("Softmax", since=13, makes=graph.SoftmaxOp)(_softmax_axis(graph.SoftmaxOp))
converts("LogSoftmax", since=13, makes=graph.LogSoftmaxOp)(_softmax_axis(graph.LogSoftmaxOp))


@converts("BatchNormalization", makes=graph.BatchNormOp)
def _batch_norm(n: Node):
    if n.attr("training_mode", 0):
        raise n.unsupported("training_mode=1")
    if not n.attr("spatial", 1):
        raise n.unsupported("spatial=0")
    args = [n.x(i) for i in range(5)]
    y = n.emit(graph.BatchNormOp, *args, axis=1, epsilon=float(n.attr("epsilon", 1e-5)))
    return n.emit("tuple_get_item", y, index=0)


def _channel_shaped(n: Node, v: SSAValue, rank: int) -> SSAValue:
    """A (C,) vector as (C, 1, ..., 1) so that it broadcasts along axis 1 of a rank-`rank` tensor."""
    return reshape(n, v, [value_shape(v)[0]] + [1] * (rank - 2))


@converts("InstanceNormalization")
def _instance_norm(n: Node):
    """(x − mean) / √(var + ε) · scale + B, mean and variance per sample and channel over the spatial axes."""
    x, scale, bias = n.x(0), n.x(1), n.x(2)
    rank = len(value_shape(x))
    axes = list(range(2, rank))
    mean = n.emit("mean", x, axis=axes, keepdims=True)
    var = n.emit("variance", x, axis=axes, keepdims=True)
    inv = n.emit("rsqrt", n.emit("add", var, n.scalar(float(n.attr("epsilon", 1e-5)), x)))
    y = n.emit("multiply", n.emit("subtract", x, mean), inv)
    y = n.emit("multiply", y, _channel_shaped(n, scale, rank))
    return n.emit("add", y, _channel_shaped(n, bias, rank))


@converts("LayerNormalization", since=17, makes=graph.LayerNormOp)
def _layer_norm(n: Node):
    """Normalize over axes [axis, rank): nn.layer_norm on the rows of a 2-D view, then scale and bias.

    The optional Mean and InvStdDev outputs are computed separately (keepdims shapes).
    """
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("LayerNormalization", n.attr("axis", -1), len(xs))
    eps = float(n.attr("epsilon", 1e-5))
    inner = xs[axis:]
    size = math.prod(inner)
    scale = _flat_param(n, n.x(1), inner)
    bias = _flat_param(n, n.x(2), inner) if n.has(2) else None
    rows = math.prod(xs[:axis])
    flat = reshape(n, x, [rows, size])
    if bias is None:  # nn.layer_norm always takes a beta operand; center=False ignores it
        y = n.emit(graph.LayerNormOp, flat, scale, scale, axis=-1, epsilon=eps, center=False)
    else:
        y = n.emit(graph.LayerNormOp, flat, scale, bias, axis=-1, epsilon=eps)
    outs = [reshape(n, y, xs)]
    if n.wants(1) or n.wants(2):
        axes = list(range(axis, len(xs)))
        outs.append(n.emit("mean", x, axis=axes, keepdims=True))
        var = n.emit("variance", x, axis=axes, keepdims=True)
        outs.append(n.emit("rsqrt", n.emit("add", var, n.scalar(eps, x))))
    return outs


def _flat_param(n: Node, v: SSAValue, inner: list[int]) -> SSAValue:
    """Scale or bias (broadcastable to the normalized axes) as one flat vector."""
    if value_shape(v) != inner:
        v = n.emit("broadcast_to", v, shape=inner)
    return reshape(n, v, [math.prod(inner)])


@converts("LRN", makes=graph.LRNOp)
def _lrn(n: Node):
    return n.emit(
        graph.LRNOp,
        n.x(0),
        size=n.attr("size"),
        axis=1,
        alpha=float(n.attr("alpha", 1e-4)),
        beta=float(n.attr("beta", 0.75)),
        bias=float(n.attr("bias", 1.0)),
    )


def _hardmax_axis(n: Node, x: SSAValue, axis: int) -> SSAValue:
    """1 at the first maximum along `axis`, 0 elsewhere."""
    xs = value_shape(x)
    axis = graph.normalize_axis("Hardmax", axis, len(xs))
    am = n.emit("argmax", x, axis=[axis], keepdims=True)
    hit = n.emit("equal", am, iota(n, xs[axis], axis, len(xs), np.int32))
    return n.emit("cast", hit, dtype=value_dtype(x))


@converts("Hardmax")
def _hardmax_v1(n: Node):
    """Before opset 13: on the 2-D view flattened at `axis` (default 1)."""
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("Hardmax", n.attr("axis", 1), len(xs))
    y = _hardmax_axis(n, reshape(n, x, [math.prod(xs[:axis]), math.prod(xs[axis:])]), 1)
    return reshape(n, y, xs)


@converts("Hardmax", since=13)
def _hardmax_v13(n: Node):
    return _hardmax_axis(n, n.x(0), n.attr("axis", -1))


@converts("LpNormalization")
def _lp_normalization(n: Node):
    x = n.x(0)
    axis = n.attr("axis", -1)
    p = n.attr("p", 2)
    if p == 1:
        norm = n.emit("sum", n.emit("abs", x), axis=[axis], keepdims=True)
    elif p == 2:
        norm = n.emit("sqrt", n.emit("sum", n.emit("multiply", x, x), axis=[axis], keepdims=True))
    else:
        raise n.unsupported(f"p={p}")
    zero = n.emit("equal", norm, n.scalar(0, norm))  # a zero vector stays zero
    return n.emit("where", zero, n.scalar(0, x), n.emit("divide", x, norm))


@converts("RMSNormalization", since=23)
def _rms_norm(n: Node):
    """x / √(mean(x²) over axes [axis, rank) + ε) · scale."""
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("RMSNormalization", n.attr("axis", -1), len(xs))
    ms = n.emit("mean", n.emit("multiply", x, x), axis=list(range(axis, len(xs))), keepdims=True)
    inv = n.emit("rsqrt", n.emit("add", ms, n.scalar(float(n.attr("epsilon", 1e-5)), x)))
    return n.emit("multiply", n.emit("multiply", x, inv), n.x(1))
