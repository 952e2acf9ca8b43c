"""Ops that select by index or position: Gather, GatherElements, OneHot, Trilu."""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.frontends.onnx.converters.common import iota, numpy_dtype, reshape
from lathe.frontends.onnx.importer import Node, value_dtype, value_shape
from lathe.frontends.onnx.registry import converts


def _normalized_indices(n: Node, i: int, size: int) -> SSAValue:
    """Index input i with negative entries counted from the end of an axis of `size`."""
    if n.known(i):
        idx = n.const(i, "indices")
        if np.any(idx < 0):
            return n.constant(np.where(idx < 0, idx + size, idx).astype(idx.dtype), "indices")
        return n.x(i)
    idx = n.x(i)
    neg = n.emit("less", idx, n.scalar(0, idx))
    return n.emit("where", neg, n.emit("add", idx, n.scalar(size, idx)), idx)


@converts("Gather", makes=graph.TakeOp)
def _gather(n: Node):
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("Gather", n.attr("axis", 0), len(xs))
    return n.emit(graph.TakeOp, x, _normalized_indices(n, 1, xs[axis]), axis=axis, mode="clip")


@converts("GatherElements", makes=graph.GatherOp)
def _gather_elements(n: Node):
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("GatherElements", n.attr("axis", 0), len(xs))
    return n.emit(graph.GatherOp, x, _normalized_indices(n, 1, xs[axis]), axis=axis)


@converts("OneHot", since=9)
def _one_hot(n: Node):
    """where(indices == iota, on, off) along a new axis; negative indices count from depth."""
    idx = n.x(0)
    depth = int(np.asarray(n.const(1, "depth")).reshape(-1)[0])
    if value_dtype(idx) not in ("int32", "int64"):
        idx = n.emit("cast", idx, dtype="int64")
    idx = n.emit("where", n.emit("less", idx, n.scalar(0, idx)), n.emit("add", idx, n.scalar(depth, idx)), idx)
    rank = len(value_shape(idx)) + 1
    axis = graph.normalize_axis("OneHot", n.attr("axis", -1), rank)
    idx = reshape(n, idx, value_shape(idx)[:axis] + [1] + value_shape(idx)[axis:])
    hit = n.emit("equal", idx, iota(n, depth, axis, rank, numpy_dtype(value_dtype(idx))))
    values = n.x(2)
    off = n.emit("reshape", n.emit("strided_slice", values, begin=[0], end=[1]), newshape=[])
    on = n.emit("reshape", n.emit("strided_slice", values, begin=[1], end=[2]), newshape=[])
    return n.emit("where", hit, on, off)


@converts("Trilu", since=14)
def _trilu(n: Node):
    """Keep the upper (or lower) triangle from diagonal k of the last two axes: a constant mask."""
    x = n.x(0)
    rows, cols = value_shape(x)[-2:]
    k = int(n.const(1, "k").reshape(-1)[0]) if n.has(1) else 0
    mask = np.triu(np.ones((rows, cols), bool), k) if n.attr("upper", 1) else np.tril(np.ones((rows, cols), bool), k)
    return n.emit("where", n.constant(mask, "mask"), x, n.scalar(0, x))
