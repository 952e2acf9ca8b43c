"""Ops that select by index or position: Gather, GatherElements, OneHot, Trilu, TopK."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError
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
    """where(indices == iota, on, off) along a new axis; negative indices count from depth. A
    depth known only at run time makes the iota an arange of it (a `graph.dyn`), and the new
    axis `?`."""
    idx = n.x(0)
    if value_dtype(idx) not in ("int32", "int64"):
        idx = n.emit("cast", idx, dtype="int64")
    rank = len(value_shape(idx)) + 1
    axis = graph.normalize_axis("OneHot", n.attr("axis", -1), rank)
    if n.known(1):
        depth_value = int(np.asarray(n.const(1, "depth")).reshape(-1)[0])
        depth = n.scalar(depth_value, idx)
        positions = iota(n, depth_value, axis, rank, numpy_dtype(value_dtype(idx)))
    else:
        if n.length(1, "depth") != 1:
            raise LatheError(f"{n.where}: depth must have one value")
        depth = n.emit("cast", n.emit("reshape", n.x(1), newshape=[]), dtype=value_dtype(idx))
        line = n.dyn(
            "arange",
            [],
            [("stop", "number", depth)],
            graph.tensor([DYNAMIC_INDEX], idx.type.element_type),
            dtype=value_dtype(idx),
        )
        positions = n.emit("reshape", line, newshape=[-1 if d == axis else 1 for d in range(rank)])
    idx = n.emit("where", n.emit("less", idx, n.scalar(0, idx)), n.emit("add", idx, depth), idx)
    idx = reshape(n, idx, value_shape(idx)[:axis] + [1] + value_shape(idx)[axis:])
    hit = n.emit("equal", idx, positions)
    values = n.x(2)
    off = n.emit("reshape", n.emit("strided_slice", values, begin=[0], end=[1]), newshape=[])
    on = n.emit("reshape", n.emit("strided_slice", values, begin=[1], end=[2]), newshape=[])
    return n.emit("where", hit, on, off)


@converts("Trilu", since=14)
def _trilu(n: Node):
    """Keep the upper (or lower) triangle from diagonal k of the last two axes. A k known here
    makes a constant mask; one known only at run time compares it with the constant column −
    row offsets (j − i ≥ k keeps the upper triangle, ≤ k the lower), so shapes stay static."""
    x = n.x(0)
    rows, cols = value_shape(x)[-2:]
    upper = bool(n.attr("upper", 1))
    if not n.has(1) or n.known(1):
        k = int(n.const(1, "k").reshape(-1)[0]) if n.has(1) else 0
        mask = np.triu(np.ones((rows, cols), bool), k) if upper else np.tril(np.ones((rows, cols), bool), k)
        return n.emit("where", n.constant(mask, "mask"), x, n.scalar(0, x))
    if n.length(1, "k") != 1:
        raise LatheError(f"{n.where}: k must have one value")
    k = n.emit("reshape", n.x(1), newshape=[])
    if value_dtype(k) != "int64":
        k = n.emit("cast", k, dtype="int64")
    offsets = n.constant(np.arange(cols, dtype=np.int64)[None, :] - np.arange(rows, dtype=np.int64)[:, None], "offsets")
    mask = n.emit("greater_equal" if upper else "less_equal", offsets, k)
    return n.emit("where", mask, x, n.scalar(0, x))


def _topk(n: Node, largest: bool):
    """The indices of TVM's topk (sorted, ties by index, as ONNX's TopK), and the values gathered
    by them: lowering has no kernel that returns both. A k known only at run time is a
    `graph.dyn` of it, the selected axis `?`."""
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("TopK", n.attr("axis", -1), len(xs))
    attrs = {"axis": axis, "ret_type": "indices", "is_ascend": not largest, "dtype": "int64"}
    if n.opset < 10:
        k = n.attr("k")
    elif n.known(1):
        k = int(np.asarray(n.const(1, "k")).reshape(-1)[0])
    else:
        k = None
    if k is None:
        if n.length(1, "k") != 1:
            raise LatheError(f"{n.where}: k must have one value")
        out = [DYNAMIC_INDEX if d == axis else s for d, s in enumerate(xs)]
        idx = n.dyn("topk", [x], [("k", "scalar", 1)], graph.tensor(out, graph.DTYPES["int64"]), **attrs)
    else:
        if k < 1:
            raise LatheError(f"{n.where}: k must be positive, got {k}")
        idx = n.emit(graph.TopkOp, x, k=k, **attrs)
    return [n.emit(graph.GatherOp, x, idx, axis=axis), idx]


@converts("TopK", makes=graph.TopkOp)
def _topk_v1(n: Node):
    return _topk(n, largest=True)


@converts("TopK", since=11, makes=graph.TopkOp)
def _topk_v11(n: Node):
    """`largest` and `sorted` (the result is always sorted, which sorted=0 allows)."""
    return _topk(n, largest=bool(n.attr("largest", 1)))
