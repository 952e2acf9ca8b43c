"""Ops that move data without arithmetic: reshape, transpose, squeeze, concatenate, split,
slicing, gather, tile, broadcast, pad, flatten and resize."""

from __future__ import annotations

import math
from typing import ClassVar

from xdsl.dialects.builtin import (
    TensorType,
    TupleType,
)
from xdsl.ir import Attribute
from xdsl.irdl import irdl_op_definition, operand_def, result_def

from lathe.dialects.graph.core import (
    INT,
    INT_LISTS,
    INT_OR_INTS,
    INTS,
    NUMBER,
    NUMBERS,
    STRING,
    GraphOp,
    OpPattern,
    ShapeError,
    graph_traits,
    shape_of,
    tuple_type,
    type_str,
)
from lathe.dialects.graph.shapes import (
    broadcast_shapes,
    expect_float,
    expect_int_tensor,
    expect_tensor,
    int_values,
    normalize_axis,
    nothing_to_select,
    pair,
    required,
    same_dtype,
    string_choice,
)


class InjectiveOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    traits = graph_traits()


def reshape_target(op: str, xs: list[int], newshape: list[int], allowzero: bool = False) -> list[int]:
    """Relay's newshape: 0 copies the input dimension (a literal 0 with `allowzero`, as
    ONNX allows), -1 is inferred."""
    out = []
    for k, d in enumerate(newshape):
        if d == 0 and not allowzero:
            if k >= len(xs):
                raise ShapeError(f"{op}: newshape {newshape} copies dimension {k} that the input does not have")
            out.append(xs[k])
        elif d >= -1:
            out.append(d)
        else:
            raise ShapeError(f"{op}: unsupported newshape value {d} (expected -1, 0 or a positive size)")
    total = math.prod(xs)
    if out.count(-1) > 1:
        raise ShapeError(f"{op}: newshape {newshape} has more than one -1")
    if -1 in out:
        rest = math.prod(d for d in out if d != -1)
        if rest == 0 or total % rest:
            raise ShapeError(f"{op}: cannot reshape {xs} to {newshape}")
        out[out.index(-1)] = total // rest
    if math.prod(out) != total:
        raise ShapeError(f"{op}: cannot reshape {xs} ({total} elements) to {out} ({math.prod(out)} elements)")
    return out


@irdl_op_definition
class ReshapeOp(InjectiveOp):
    name = "graph.reshape"
    data = operand_def(TensorType)
    newshape = INTS.prop()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        ns = int_values(op, a, "newshape")
        return TensorType(x.element_type, reshape_target(op, shape_of(x), ns or []))


@irdl_op_definition
class TransposeOp(InjectiveOp):
    name = "graph.transpose"
    data = operand_def(TensorType)
    axes = INTS.prop()
    result = result_def(TensorType)

    @staticmethod
    def perm(op: str, rank: int, a: dict) -> list[int]:
        axes = int_values(op, a, "axes", allow_none=True)
        if axes is None:
            return list(range(rank))[::-1]
        perm = [normalize_axis(op, x, rank) for x in axes]
        if sorted(perm) != list(range(rank)):
            raise ShapeError(f"{op}: axes {axes} is not a permutation of {rank} axes")
        return perm

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        return TensorType(x.element_type, [xs[p] for p in cls.perm(op, len(xs), a)])


@irdl_op_definition
class SqueezeOp(InjectiveOp):
    name = "graph.squeeze"
    data = operand_def(TensorType)
    axis = INT_OR_INTS.prop()
    result = result_def(TensorType)

    @staticmethod
    def axes(op: str, xs: list[int], a: dict) -> list[int]:
        ax = int_values(op, a, "axis", allow_none=True)
        if ax is None:
            return [d for d, s in enumerate(xs) if s == 1]
        axes = sorted({normalize_axis(op, d, len(xs)) for d in ax})
        for d in axes:
            if xs[d] != 1:
                raise ShapeError(f"{op}: cannot squeeze axis {d} of size {xs[d]}")
        return axes

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        axes = cls.axes(op, xs, a)
        return TensorType(x.element_type, [s for d, s in enumerate(xs) if d not in axes])


@irdl_op_definition
class ExpandDimsOp(InjectiveOp):
    name = "graph.expand_dims"
    data = operand_def(TensorType)
    axis = INT.prop()
    num_newaxis = INT.prop(1)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        required(op, a, "axis")
        n = a["num_newaxis"]
        axis = a["axis"]
        if not -len(xs) - 1 <= axis <= len(xs) or n < 0:
            raise ShapeError(f"{op}: axis {axis} is out of range for rank {len(xs)}")
        axis = axis + len(xs) + 1 if axis < 0 else axis
        return TensorType(x.element_type, xs[:axis] + [1] * n + xs[axis:])


def _tuple_fields(op: str, t: Attribute) -> list[TensorType]:
    if not isinstance(t, TupleType):
        raise ShapeError(f"{op}: expects a tuple of tensors, got {type_str(t)}")
    fields = [expect_tensor(op, f, "each field") for f in t.types.data]
    if not fields:
        raise ShapeError(f"{op}: expects at least one tensor")
    same_dtype(op, *fields)
    return fields


@irdl_op_definition
class ConcatenateOp(InjectiveOp):
    name = "graph.concatenate"
    data = operand_def(TupleType)
    axis = INT.prop(0)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        fields = _tuple_fields(op, types[0])
        shapes = [shape_of(f) for f in fields]
        axis = normalize_axis(op, a["axis"], len(shapes[0]))
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(x != y for d, (x, y) in enumerate(zip(s, shapes[0])) if d != axis):
                raise ShapeError(f"{op}: shapes {' and '.join(type_str(f) for f in fields)} differ outside axis {axis}")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return TensorType(fields[0].element_type, out)


@irdl_op_definition
class StackOp(InjectiveOp):
    name = "graph.stack"
    data = operand_def(TupleType)
    axis = INT.prop(0)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        fields = _tuple_fields(op, types[0])
        shapes = [shape_of(f) for f in fields]
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"{op}: all shapes must be equal, got {', '.join(type_str(f) for f in fields)}")
        axis = a["axis"]
        rank = len(shapes[0]) + 1
        axis = normalize_axis(op, axis, rank)
        return TensorType(fields[0].element_type, shapes[0][:axis] + [len(fields)] + shapes[0][axis:])


@irdl_op_definition
class SplitOp(InjectiveOp):
    """Relay's split: sections (an int) or split indices (a list); a tuple result."""

    name = "graph.split"
    data = operand_def(TensorType)
    indices_or_sections = INT_OR_INTS.prop()
    axis = INT.prop(0)
    result = result_def(TupleType)

    @staticmethod
    def bounds(op: str, xs: list[int], a: dict) -> tuple[int, list[tuple[int, int]]]:
        axis = normalize_axis(op, a["axis"], len(xs))
        ios = a["indices_or_sections"]
        n = xs[axis]
        required(op, a, "indices_or_sections")
        if isinstance(ios, int):
            if ios < 1 or n % ios:
                raise ShapeError(f"{op}: {n} elements on axis {axis} cannot be split into {ios} equal sections")
            step = n // ios
            cuts = [k * step for k in range(1, ios)]
        else:
            cuts = ios
            if any(b < a_ for a_, b in zip(cuts, cuts[1:])) or any(c < 0 or c > n for c in cuts):
                raise ShapeError(f"{op}: split indices {ios} must be increasing and within 0..{n}")
        edges = [0, *cuts, n]
        return axis, list(zip(edges[:-1], edges[1:]))

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        axis, parts = cls.bounds(op, xs, a)
        return tuple_type([TensorType(x.element_type, xs[:axis] + [e - b] + xs[axis + 1 :]) for b, e in parts])


def slice_bounds(op: str, xs: list[int], a: dict) -> list[tuple[int, int, int]]:
    """Relay strided_slice → (begin, stride, length) per axis, numpy semantics."""
    rank = len(xs)
    begin = int_values(op, a, "begin") or []
    end = int_values(op, a, "end") or []
    strides = int_values(op, a, "strides", allow_none=True) or [1]
    axes = int_values(op, a, "axes", allow_none=True)
    mode = string_choice(op, a, "slice_mode", ("end", "size"))
    if axes is None:
        axes = list(range(len(begin)))
    axes = [normalize_axis(op, d, rank) for d in axes]
    if len(begin) != len(axes) or len(end) != len(axes):
        raise ShapeError(f"{op}: begin {begin} and end {end} must give one value per sliced axis {axes}")
    if len(strides) == 1:
        strides = strides * len(axes)
    if len(strides) != len(axes):
        raise ShapeError(f"{op}: strides {strides} must give one value per sliced axis")
    out = [(0, 1, d) for d in xs]
    for d, b, e, s in zip(axes, begin, end, strides):
        if s == 0:
            raise ShapeError(f"{op}: stride 0 on axis {d}")
        if mode == "size":
            e = xs[d] if e < 0 else b + e
            s = 1
        start, stop, step = slice(b, e, s).indices(xs[d])
        length = len(range(start, stop, step))
        out[d] = (start, step, length)
    return out


@irdl_op_definition
class StridedSliceOp(InjectiveOp):
    name = "graph.strided_slice"
    data = operand_def(TensorType)
    begin = INTS.prop()
    end = INTS.prop()
    strides = INTS.prop()
    axes = INTS.prop()
    slice_mode = STRING.prop("end")
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        required(op, a, "begin", "end")
        return TensorType(x.element_type, [n for _, _, n in slice_bounds(op, shape_of(x), a)])


@irdl_op_definition
class TakeOp(InjectiveOp):
    """numpy.take; mode clip (default), wrap or fast (indices assumed in range)."""

    name = "graph.take"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    axis = INT.prop()
    batch_dims = INT.prop(0)
    mode = STRING.prop("clip")
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        idx = expect_tensor(op, types[1], "indices")
        expect_int_tensor(op, idx, "indices")
        string_choice(op, a, "mode", ("clip", "wrap", "fast"))
        if a["batch_dims"] != 0:
            raise ShapeError(f"{op}: batch_dims other than 0 is not supported")
        xs, ids = shape_of(x), shape_of(idx)
        axis = None if a["axis"] is None else normalize_axis(op, a["axis"], len(xs))
        nothing_to_select(op, math.prod(xs) if axis is None else xs[axis], math.prod(ids), "take from")
        if axis is None:
            return TensorType(x.element_type, ids)
        return TensorType(x.element_type, xs[:axis] + ids + xs[axis + 1 :])


@irdl_op_definition
class GatherOp(InjectiveOp):
    """out[..i..] = data[..indices[..i..] on axis..] (ONNX GatherElements)."""

    name = "graph.gather"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    axis = INT.prop(0)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        idx = expect_tensor(op, types[1], "indices")
        expect_int_tensor(op, idx, "indices")
        xs, ids = shape_of(x), shape_of(idx)
        axis = normalize_axis(op, a["axis"], len(xs))
        if len(ids) != len(xs) or any(i > d for k, (i, d) in enumerate(zip(ids, xs)) if k != axis):
            raise ShapeError(
                f"{op}: indices {type_str(idx)} must have the rank of data {type_str(x)} "
                f"and no larger dimensions outside axis {axis}"
            )
        nothing_to_select(op, xs[axis], math.prod(ids), "gather from")
        return TensorType(x.element_type, ids)


@irdl_op_definition
class TileOp(InjectiveOp):
    name = "graph.tile"
    data = operand_def(TensorType)
    reps = INTS.prop()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        reps = int_values(op, a, "reps") or []
        xs = shape_of(x)
        if any(r < 1 for r in reps):
            raise ShapeError(f"{op}: reps must be >= 1, got {reps}")
        rank = max(len(xs), len(reps))
        xs = [1] * (rank - len(xs)) + xs
        reps = [1] * (rank - len(reps)) + reps
        return TensorType(x.element_type, [d * r for d, r in zip(xs, reps)])


@irdl_op_definition
class BroadcastToOp(InjectiveOp):
    name = "graph.broadcast_to"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    data = operand_def(TensorType)
    shape = INTS.prop()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        shape = int_values(op, a, "shape") or []
        out = broadcast_shapes(op, x, TensorType(x.element_type, shape))
        if out != shape:
            raise ShapeError(f"{op}: {type_str(x)} cannot be broadcast to {shape}")
        return TensorType(x.element_type, shape)


@irdl_op_definition
class PadOp(GraphOp):
    name = "graph.nn.pad"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    data = operand_def(TensorType)
    pad_width = INT_LISTS.prop()
    pad_value = NUMBER.prop(0.0)
    pad_mode = STRING.prop("constant")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        pw = a["pad_width"]
        if pw is None or len(pw) != len(xs) or any(len(p) != 2 or min(p) < 0 for p in pw):
            raise ShapeError(f"{op}: pad_width must be {len(xs)} pairs of non-negative integers, got {pw!r}")
        mode = string_choice(op, a, "pad_mode", ("constant", "edge", "reflect"))
        if mode == "reflect" and any(p[0] >= d or p[1] >= d for p, d in zip(pw, xs)):
            raise ShapeError(f"{op}: reflect padding must be smaller than the dimension it pads")
        return TensorType(x.element_type, [d + p[0] + p[1] for d, p in zip(xs, pw)])


@irdl_op_definition
class BatchFlattenOp(GraphOp):
    name = "graph.nn.batch_flatten"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    data = operand_def(TensorType)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        if not xs:
            raise ShapeError(f"{op}: expects rank >= 1, got {type_str(x)}")
        return TensorType(x.element_type, [xs[0], math.prod(xs[1:])])


RESIZE_METHODS = ("nearest_neighbor", "linear")
RESIZE_COORDS = ("half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel", "tf_half_pixel_for_nn")
RESIZE_ROUNDING = ("", "round", "floor", "ceil", "round_prefer_floor", "round_prefer_ceil")


@irdl_op_definition
class Resize2dOp(GraphOp):
    name = "graph.image.resize2d"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    data = operand_def(TensorType)
    size = INTS.prop()
    roi = NUMBERS.prop([0.0, 0.0, 0.0, 0.0])
    layout = STRING.prop("NCHW")
    method = STRING.prop("linear")
    coordinate_transformation_mode = STRING.prop("half_pixel")
    rounding_method = STRING.prop("")
    cubic_alpha = NUMBER.prop(-0.5)
    cubic_exclude = INT.prop(0)
    extrapolation_value = NUMBER.prop(0.0)
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        expect_float(op, x)
        layout = string_choice(op, a, "layout", ("NCHW", "NHWC"))
        string_choice(op, a, "method", RESIZE_METHODS)
        string_choice(op, a, "coordinate_transformation_mode", RESIZE_COORDS)
        string_choice(op, a, "rounding_method", RESIZE_ROUNDING)
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        required(op, a, "size")
        oh, ow = pair(op, a, "size")
        if min(oh, ow) < 1:
            raise ShapeError(f"{op}: size must be >= 1, got {[oh, ow]}")
        shape = [xs[0], xs[1], oh, ow] if layout == "NCHW" else [xs[0], oh, ow, xs[3]]
        return TensorType(x.element_type, shape)
