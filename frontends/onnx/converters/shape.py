"""Ops that move data without computing on it: reshapes, transposes, concatenation, splits, slices, padding, tiling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError
from lathe.frontends.onnx.converters.common import dynamic_prod, reshape
from lathe.frontends.onnx.importer import Node, plain, value_dtype, value_shape
from lathe.frontends.onnx.registry import converts


def _reshape_target(n: Node, xs: list[int], shape: Sequence[int], allowzero: bool) -> list[int]:
    """ONNX Reshape's target: the graph dialect's rule, with allowzero, errors located at the node.
    From an input with a `?` dimension the target is Relay's newshape as ONNX gives it (0 copies,
    -1 infers; the same rule), for the reshape's own inference to carry the `?`."""
    if DYNAMIC_INDEX in xs and not allowzero:
        return [int(d) for d in shape]
    try:
        return graph.reshape_target("Reshape", xs, [int(d) for d in shape], allowzero)
    except graph.ShapeError as e:
        raise LatheError(f"{n.where}: shape mismatch: {e}") from None


@converts("Reshape", makes=graph.ReshapeOp)
def _reshape_v1(n: Node):
    return _reshape(n, _reshape_target(n, n.shape(0), n.attr("shape", []), False))


def _reshape(n: Node, target: list[int]):
    if DYNAMIC_INDEX in n.shape(0):
        return n.emit("reshape", n.x(0), newshape=target)
    return reshape(n, n.x(0), target)


@converts("Reshape", since=5, makes=graph.ReshapeOp)
def _reshape_v5(n: Node):
    """The shape became an input: 0 copies the input's dimension (unless allowzero, opset 14), −1 is inferred."""
    if not n.known(1) and not n.attr("allowzero", 0):  # a run-time shape: Relay's newshape rule is ONNX's
        x = n.x(0)
        rank = n.length(1, "shape")
        return n.dyn("reshape", [x], [("newshape", "list", 1)], graph.tensor([DYNAMIC_INDEX] * rank, _dt(x)))
    return _reshape(n, _reshape_target(n, n.shape(0), n.ints(1, "shape"), bool(n.attr("allowzero", 0))))


def _dt(x):
    return x.type.element_type


def _all_dynamic(x, rank: int | None = None):
    """The type of a result of `x`'s dtype whose dimensions run-time values decide."""
    return graph.tensor([DYNAMIC_INDEX] * (len(value_shape(x)) if rank is None else rank), _dt(x))


@converts("Flatten", makes=graph.ReshapeOp)
def _flatten(n: Node):
    xs = n.shape(0)
    axis = n.attr("axis", 1)
    axis = axis + len(xs) if axis < 0 else axis
    return reshape(n, n.x(0), [dynamic_prod(xs[:axis]), dynamic_prod(xs[axis:])])


@converts("Transpose", makes=graph.TransposeOp)
def _transpose(n: Node):
    x = n.x(0)
    perm = n.attr("perm", list(range(len(value_shape(x))))[::-1])
    return x if list(perm) == list(range(len(perm))) else n.emit(graph.TransposeOp, x, axes=list(perm))


def _squeeze(n: Node, axes: list[int] | None):
    x = n.x(0)
    xs = value_shape(x)
    if axes is None:
        axes = [d for d, s in enumerate(xs) if s == 1]
    axes = sorted({graph.normalize_axis("Squeeze", a, len(xs)) for a in axes})
    for a in axes:
        if xs[a] != 1:
            raise LatheError(f"{n.where}: shape mismatch: cannot squeeze axis {a} of size {xs[a]} in {xs}")
    return reshape(n, x, [s for d, s in enumerate(xs) if d not in axes])


def _unsqueeze(n: Node, axes: list[int]):
    x = n.x(0)
    xs = value_shape(x)
    rank = len(xs) + len(axes)
    axes = sorted({graph.normalize_axis("Unsqueeze", a, rank) for a in axes})
    it = iter(xs)
    return reshape(n, x, [1 if d in axes else next(it) for d in range(rank)])


@converts("Squeeze", makes=graph.ReshapeOp)
def _squeeze_v1(n: Node):
    return _squeeze(n, n.attr("axes"))


@converts("Squeeze", since=13, makes=graph.ReshapeOp)
def _squeeze_v13(n: Node):
    if n.has(1) and not n.known(1):
        x = n.x(0)
        rank = len(value_shape(x)) - n.length(1, "axes")
        return n.dyn("squeeze", [x], [("axis", "list", 1)], _all_dynamic(x, rank))
    return _squeeze(n, n.ints(1, "axes") if n.has(1) else None)


@converts("Unsqueeze", makes=graph.ReshapeOp)
def _unsqueeze_v1(n: Node):
    return _unsqueeze(n, n.attr("axes", []))


@converts("Unsqueeze", since=13, makes=graph.ReshapeOp)
def _unsqueeze_v13(n: Node):
    """Axes known only at run time: the rank is known (one per axis), the dimensions are not."""
    if not n.known(1):
        x = n.x(0)
        rank = len(value_shape(x)) + n.length(1, "axes")
        return n.dyn("reshape", [x], [("newshape", "unsqueeze", 1)], _all_dynamic(x, rank))
    return _unsqueeze(n, n.ints(1, "axes"))


@converts("Concat", makes=graph.ConcatenateOp)
def _concat(n: Node):
    xs = [n.x(i) for i in range(len(n.inputs)) if n.has(i)]
    if len(xs) == 1:
        return xs[0]
    return n.emit(graph.ConcatenateOp, n.emit(graph.TupleOp, *xs), axis=n.attr("axis"))


def _split(n: Node, sizes: Sequence[int] | None, num_outputs: int | None = None):
    x = n.x(0)
    xs = value_shape(x)
    axis = graph.normalize_axis("Split", n.attr("axis", 0), len(xs))
    total = xs[axis]
    count = num_outputs or len(n.outputs)
    if sizes is None:
        if num_outputs:  # opset 18: ceil-sized chunks, the last one smaller
            chunk = -(-total // count)
            sizes = [min(chunk, max(0, total - chunk * k)) for k in range(count)]
        else:
            if total % count:
                raise LatheError(
                    f"{n.where}: shape mismatch: {total} elements on axis {axis} cannot be split "
                    f"into {count} equal parts"
                )
            sizes = [total // count] * count
    sizes = [int(s) for s in sizes]
    if sum(sizes) != total:
        raise LatheError(f"{n.where}: shape mismatch: split sizes {sizes} do not add up to {total} (axis {axis})")
    if len(sizes) == 1:
        return [x]
    cuts = list(np.cumsum(sizes)[:-1])
    parts = n.emit(graph.SplitOp, x, indices_or_sections=cuts, axis=axis)
    return [n.emit("tuple_get_item", parts, index=k) for k in range(len(sizes))]


@converts("Split", makes=graph.SplitOp)
def _split_v2(n: Node):
    return _split(n, n.attr("split"))


@converts("Split", since=13, makes=graph.SplitOp)
def _split_v13(n: Node):
    if n.has(1) and not n.known(1):
        return _split_at_run_time(n)
    return _split(n, n.ints(1, "split") if n.has(1) else None)


@converts("Split", since=18, makes=graph.SplitOp)
def _split_v18(n: Node):
    if n.has(1) and not n.known(1):
        return _split_at_run_time(n)
    return _split(n, n.ints(1, "split") if n.has(1) else None, n.attr("num_outputs"))


def _split_at_run_time(n: Node):
    """Sizes known only at run time: the split's cut points are their running sums."""
    x = n.x(0)
    count = len(n.outputs)
    if n.length(1, "split") != count:
        raise LatheError(f"{n.where}: {n.length(1, 'split')} split sizes for {count} outputs")
    axis = graph.normalize_axis("Split", n.attr("axis", 0), len(value_shape(x)))
    part = list(value_shape(x))
    part[axis] = DYNAMIC_INDEX
    parts = graph.tuple_type([graph.tensor(part, _dt(x))] * count)
    tup = n.dyn("split", [x], [("indices_or_sections", "offsets", 1)], parts, axis=axis)
    return [n.emit("tuple_get_item", tup, index=k) for k in range(count)]


def _slice(n: Node, starts, ends, axes, steps):
    """strided_slice with the bounds clamped here, as ONNX (and numpy) clamp them."""
    x = n.x(0)
    xs = value_shape(x)
    rank = len(xs)
    axes = list(range(len(starts))) if axes is None else [graph.normalize_axis("Slice", int(a), rank) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise LatheError(f"{n.where}: starts, ends, axes and steps must have one value per sliced axis")
    begin, end, strides = [], [], []
    for a, b, e, s in zip(axes, starts, ends, steps):
        if s == 0:
            raise LatheError(f"{n.where}: a slice step cannot be 0")
        start, stop, step = slice(int(b), int(e), s).indices(xs[a])
        begin.append(start)
        # a negative step that runs through index 0 stops at -1, which strided_slice would read from the end
        end.append(-xs[a] - 1 if stop < 0 else stop)
        strides.append(step)
    return n.emit(graph.StridedSliceOp, x, begin=begin, end=end, strides=strides, axes=axes)


@converts("Slice", makes=graph.StridedSliceOp)
def _slice_v1(n: Node):
    starts = n.attr("starts")
    return _slice(n, starts, n.attr("ends"), n.attr("axes"), None)


@converts("Slice", since=10, makes=graph.StridedSliceOp)
def _slice_v10(n: Node):
    """starts, ends, axes and steps became inputs; any known only at run time makes a graph.dyn
    strided_slice, which reads them as ONNX does (clamped, negative from the end: numpy's rule)."""
    if any(n.has(i) and not n.known(i) for i in range(1, 5)):
        return _slice_at_run_time(n)
    return _slice(
        n,
        n.ints(1, "starts"),
        n.ints(2, "ends"),
        n.ints(3, "axes") if n.has(3) else None,
        n.ints(4, "steps") if n.has(4) else None,
    )


def _slice_at_run_time(n: Node):
    x = n.x(0)
    rank = len(value_shape(x))
    given, known = [], {}
    for i, attr in ((1, "begin"), (2, "end"), (3, "axes"), (4, "strides")):
        if not n.has(i):
            continue
        if n.known(i):
            known[attr] = n.ints(i, attr)
        else:
            given.append((attr, "list", i))
    sliced = known.get("axes")
    out = list(value_shape(x))
    for d in range(rank):
        if sliced is None or d in {graph.normalize_axis("Slice", a, rank) for a in sliced}:
            out[d] = DYNAMIC_INDEX
    return n.dyn("strided_slice", [x], given, graph.tensor(out, _dt(x)), **known)


@converts("Tile", makes=graph.TileOp)
def _tile(n: Node):
    if not n.known(1):
        x = n.x(0)
        return n.dyn("tile", [x], [("reps", "list", 1)], _all_dynamic(x))
    reps = n.ints(1, "repeats")
    x = n.x(0)
    return x if all(r == 1 for r in reps) else n.emit(graph.TileOp, x, reps=reps)


@converts("Expand", makes=graph.BroadcastToOp)
def _expand(n: Node):
    """ONNX broadcasts both ways: the result has the broadcast of the input shape and `shape`."""
    x = n.x(0)
    if not n.known(1):  # the broadcast of x's shape and the value, computed when it is known
        rank = max(len(value_shape(x)), n.length(1, "shape"))
        return n.dyn("broadcast_to", [x], [("shape", "broadcast", 1)], _all_dynamic(x, rank))
    shape = n.ints(1, "shape")
    try:
        out = list(np.broadcast_shapes(tuple(value_shape(x)), tuple(shape)))
    except ValueError:
        raise LatheError(f"{n.where}: shape mismatch: {value_shape(x)} cannot be expanded to {shape}") from None
    return x if out == value_shape(x) else n.emit(graph.BroadcastToOp, x, shape=out)


def _pad_plan(n: Node, x: SSAValue, pads: Sequence[int], axes: Sequence[int] | None):
    """ONNX's pads as nn.pad's: `x` cropped by strided_slice where a pad is negative (ONNX
    crops), and the non-negative width per axis."""
    xs = value_shape(x)
    rank = len(xs)
    axes = list(range(rank)) if axes is None else [graph.normalize_axis("Pad", a, rank) for a in axes]
    k = len(axes)
    if len(pads) != 2 * k:
        raise LatheError(f"{n.where}: pads has {len(pads)} values, expected {2 * k}")
    width = [[0, 0] for _ in range(rank)]
    for a, b, e in zip(axes, pads[:k], pads[k:]):
        width[a] = [int(b), int(e)]
    if any(b < 0 or e < 0 for b, e in width):
        begin = [max(0, -b) for b, _ in width]
        end = [d - max(0, -e) for d, (_, e) in zip(xs, width)]
        x = n.emit("strided_slice", x, begin=begin, end=end)
        width = [[max(0, b), max(0, e)] for b, e in width]
    return x, width


def _pad_mode(n: Node) -> str:
    mode = n.attr("mode", "constant")
    if mode not in ("constant", "edge", "reflect"):
        raise n.unsupported(f"mode={mode!r}")
    return mode


def _pad(n: Node, pads: Sequence[int], value, axes: Sequence[int] | None = None):
    """nn.pad for the positive amounts, after strided_slice for the negative ones (ONNX crops)."""
    x, width = _pad_plan(n, n.x(0), pads, axes)
    mode = _pad_mode(n)
    if all(b == 0 and e == 0 for b, e in width):
        return x
    value = plain(value)
    value = float(value) if value_dtype(x).startswith("float") else int(value)
    return n.emit(graph.PadOp, x, pad_width=width, pad_value=value, pad_mode=mode)


@converts("Pad", makes=graph.PadOp)
def _pad_v2(n: Node):
    return _pad(n, n.attr("pads", n.attr("paddings", [])), n.attr("value", 0.0))


@converts("Pad", since=11, makes=graph.PadOp)
def _pad_v11(n: Node):
    """pads (and the constant value, and from opset 18 the axes) became inputs."""
    if n.has(3) and not n.known(3):
        return _pad_at_run_time(n, None)
    axes = n.ints(3, "axes") if n.has(3) else None
    if not n.known(1) or n.has(2) and not n.known(2):
        return _pad_at_run_time(n, axes)
    value = n.const(2, "padding value") if n.has(2) else None
    return _pad(n, n.ints(1, "pads"), 0 if value is None else value.reshape(-1)[0], axes)


def _pad_at_run_time(n: Node, axes: list[int] | None):
    """Pads or the value known only at run time: `graph.dyn`s of strided_slice (ONNX crops where
    a pad is negative) and nn.pad (the positive amounts), reading ONNX's pads vector — widened
    to every axis first when `axes` names some — and the value as they are."""
    x = n.x(0)
    xs = value_shape(x)
    rank = len(xs)
    mode = _pad_mode(n)
    attrs: dict = {"pad_mode": mode}
    given: list[tuple[str, str, int | SSAValue]] = []
    if mode == "constant" and n.has(2):
        if n.known(2):
            value = plain(n.const(2, "padding value").reshape(-1)[0])
            attrs["pad_value"] = float(value) if value_dtype(x).startswith("float") else int(value)
        else:
            given.append(("pad_value", "number", 2))
    if n.has(3) and not n.known(3):  # the axes too: every axis may be padded
        return _pad_by_run_time_axes(n, x, attrs, given)
    if n.known(1):  # only the value is known at run time: crop and widths here
        x, width = _pad_plan(n, x, n.ints(1, "pads"), axes)
        if all(b == 0 and e == 0 for b, e in width):
            return x
        out = [d + b + e for d, (b, e) in zip(value_shape(x), width)]
        return n.dyn("nn.pad", [x], given, graph.tensor(out, _dt(x)), pad_width=width, **attrs)
    axes = list(range(rank)) if axes is None else [graph.normalize_axis("Pad", a, rank) for a in axes]
    if n.length(1, "pads") != 2 * len(axes):
        raise LatheError(f"{n.where}: pads has {n.length(1, 'pads')} values, expected {2 * len(axes)}")
    pads = n.x(1)
    if axes != list(range(rank)):  # ONNX's pads for `axes` → pads for every axis (0 elsewhere)
        where = {a: k for k, a in enumerate(axes)}
        pick = [1 + where[d] if d in where else 0 for d in range(rank)]
        pick += [1 + len(axes) + where[d] if d in where else 0 for d in range(rank)]
        zero = n.constant(np.zeros(1, np.int64), "zero")
        if value_dtype(pads) != "int64":
            pads = n.emit("cast", pads, dtype="int64")
        both = n.emit(graph.ConcatenateOp, n.emit(graph.TupleOp, zero, pads), axis=0)
        pads = n.emit(graph.TakeOp, both, n.constant(np.asarray(pick, np.int64), "pick"), axis=0)
    out = graph.tensor([DYNAMIC_INDEX if d in axes else s for d, s in enumerate(xs)], _dt(x))
    return _crop_and_pad(n, x, pads, out, attrs, given)


def _crop_and_pad(n: Node, x: SSAValue, pads: SSAValue, out, attrs: dict, given: list) -> SSAValue:
    """x cropped where the run-time pads for every axis (begins, then ends) are negative, and
    padded where they are positive."""
    cropped = n.dyn("strided_slice", [x], [("begin", "crop_begin", pads), ("end", "crop_end", pads)], out)
    return n.dyn("nn.pad", [cropped], [("pad_width", "pad_width", pads), *given], out, **attrs)


def _pad_by_run_time_axes(n: Node, x: SSAValue, attrs: dict, given: list) -> SSAValue:
    """Pads for run-time `axes` spread over every axis with ordinary ops: begin[d] is the sum
    over k of pads[k] where axes[k] (counted from the end when negative) is d, and so for end."""
    xs = value_shape(x)
    rank = len(xs)
    k = n.length(3, "axes")
    if n.length(1, "pads") != 2 * k:
        raise LatheError(f"{n.where}: pads has {n.length(1, 'pads')} values, expected {2 * k}")
    axes = n.emit("cast", n.x(3), dtype="int64") if value_dtype(n.x(3)) != "int64" else n.x(3)
    axes = n.emit("where", n.emit("less", axes, n.scalar(0, axes)), n.emit("add", axes, n.scalar(rank, axes)), axes)
    hit = n.emit(
        "equal", n.emit("reshape", axes, newshape=[k, 1]), n.constant(np.arange(rank).reshape(1, rank), "axes")
    )
    hit = n.emit("cast", hit, dtype="int64")
    pads = n.emit("cast", n.x(1), dtype="int64") if value_dtype(n.x(1)) != "int64" else n.x(1)
    halves = []
    for half in range(2):
        part = n.emit("strided_slice", pads, begin=[half * k], end=[(half + 1) * k])
        halves.append(n.emit("sum", n.emit("multiply", hit, n.emit("reshape", part, newshape=[k, 1])), axis=[0]))
    full = n.emit(graph.ConcatenateOp, n.emit(graph.TupleOp, *halves), axis=0)
    return _crop_and_pad(n, x, full, _all_dynamic(x), attrs, given)


@converts("DepthToSpace")
def _depth_to_space(n: Node):
    """(N, C, H, W) → (N, C/b², H·b, W·b); DCR (default) takes depth as (b, b, C'), CRD as (C', b, b)."""
    x = n.x(0)
    b = n.attr("blocksize")
    nb, c, h, w = value_shape(x)
    if n.attr("mode", "DCR") == "CRD":
        y = n.emit("transpose", reshape(n, x, [nb, c // (b * b), b, b, h, w]), axes=[0, 1, 4, 2, 5, 3])
    else:
        y = n.emit("transpose", reshape(n, x, [nb, b, b, c // (b * b), h, w]), axes=[0, 3, 4, 1, 5, 2])
    return reshape(n, y, [nb, c // (b * b), h * b, w * b])


@converts("SpaceToDepth")
def _space_to_depth(n: Node):
    """The inverse of DepthToSpace: DCR (default) puts the block offsets before the channel, CRD after."""
    x = n.x(0)
    b = n.attr("blocksize")
    nb, c, h, w = value_shape(x)
    perm = [0, 1, 3, 5, 2, 4] if n.attr("mode", "DCR") == "CRD" else [0, 3, 5, 1, 2, 4]
    y = n.emit("transpose", reshape(n, x, [nb, c, h // b, b, w // b, b]), axes=perm)
    return reshape(n, y, [nb, c * b * b, h // b, w // b])
