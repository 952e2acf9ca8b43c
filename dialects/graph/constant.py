"""Ops that make tensors of given values: constants, fills and ranges."""

from __future__ import annotations

import math
from typing import ClassVar

from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    TensorType,
    f32,
    i1,
)
from xdsl.ir import Attribute
from xdsl.irdl import irdl_op_definition, operand_def, prop_def, result_def

from lathe.dialects import dtypes
from lathe.dialects.graph.core import (
    INTS,
    NUMBER,
    STRING,
    GraphOp,
    OpPattern,
    ShapeError,
    graph_traits,
    shape_of,
    type_str,
)
from lathe.dialects.graph.shapes import (
    dtype_attr,
    expect_tensor,
    int_values,
)


@irdl_op_definition
class ConstantOp(GraphOp):
    """A tensor literal (scalar constants such as `1f`, or folded weights)."""

    name = "graph.constant"
    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)
    traits = graph_traits()
    assembly_format = "attr-dict `:` type($result)"

    @classmethod
    def infer_type(cls, operand_types, props):
        return props["value"].type  # type: ignore[union-attr]

    @staticmethod
    def from_array(arr, dtype: Attribute) -> ConstantOp:
        """A constant holding a numpy array's bytes (fast for large weights)."""
        import numpy as np

        t = TensorType(dtype, list(arr.shape))
        if dtype == i1:  # xDSL packs true as 0xFF
            data = np.where(np.asarray(arr), -1, 0).astype(np.int8)
        else:
            data = np.ascontiguousarray(arr, dtype=dtypes.BY_MLIR[dtype].storage)
        attr = DenseIntOrFPElementsAttr(t, BytesAttr(data.tobytes()))
        return ConstantOp.create(result_types=[t], properties={"value": attr})

    @staticmethod
    def scalar(value: float | int, dtype: Attribute = f32) -> ConstantOp:
        t = TensorType(dtype, [])
        attr = DenseIntOrFPElementsAttr.from_list(t, [value])
        return ConstantOp.create(result_types=[t], properties={"value": attr})


class FillOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.ELEMWISE
    shape = INTS.prop()
    dtype = STRING.prop("float32")
    result = result_def(TensorType)
    traits = graph_traits()
    assembly_format = "attr-dict `:` type($result)"

    @classmethod
    def infer(cls, op, types, a):
        shape = int_values(op, a, "shape") or []
        if any(d < 0 for d in shape):
            raise ShapeError(f"{op}: shape {shape} has negative dimensions")
        return TensorType(dtype_attr(op, a, "dtype"), shape)


@irdl_op_definition
class ZerosOp(FillOp):
    name = "graph.zeros"


@irdl_op_definition
class OnesOp(FillOp):
    name = "graph.ones"


@irdl_op_definition
class FullOp(FillOp):
    """A tensor of `shape` filled with the rank-0 operand."""

    name = "graph.full"
    fill_value = operand_def(TensorType)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    @classmethod
    def infer(cls, op, types, a):
        v = expect_tensor(op, types[0], "fill_value")
        if shape_of(v):
            raise ShapeError(f"{op}: fill_value must be a scalar (rank 0), got {type_str(v)}")
        return super().infer(op, types, a)


@irdl_op_definition
class FullLikeOp(GraphOp):
    name = "graph.full_like"
    PATTERN: ClassVar[OpPattern] = OpPattern.ELEMWISE
    data = operand_def(TensorType)
    fill_value = operand_def(TensorType)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        v = expect_tensor(op, types[1], "fill_value")
        if shape_of(v):
            raise ShapeError(f"{op}: fill_value must be a scalar (rank 0), got {type_str(v)}")
        return x


@irdl_op_definition
class ArangeOp(GraphOp):
    """start, start + step, ... up to stop (excluded), TVM's `arange`: ceil((stop - start) / step)
    values, none when that is negative. The bounds are numbers known here; ONNX's Range on
    run-time bounds is a `graph.dyn` of it, so its length is known when the values are."""

    name = "graph.arange"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    start = NUMBER.prop(0.0)
    stop = NUMBER.prop()
    step = NUMBER.prop(1.0)
    dtype = STRING.prop("float32")
    result = result_def(TensorType)
    traits = graph_traits()
    assembly_format = "attr-dict `:` type($result)"

    @classmethod
    def infer(cls, op, types, a):
        dt = dtype_attr(op, a, "dtype")
        if a["stop"] is None:
            raise ShapeError(f"{op}: attribute 'stop' is required")
        return TensorType(dt, [arange_length(op, a["start"], a["stop"], a["step"])])


def arange_length(op: str, start: float, stop: float, step: float) -> int:
    """numpy's (and ONNX Range's) count: max(ceil((stop - start) / step), 0)."""
    if step == 0:
        raise ShapeError(f"{op}: step must not be 0")
    if not all(map(math.isfinite, (start, stop, step))):
        raise ShapeError(f"{op}: start, stop and step must be finite, got {start}, {stop}, {step}")
    if all(float(v).is_integer() for v in (start, stop, step)):  # exact for integer ranges
        s, e, d = int(start), int(stop), int(step)
        return max(-((s - e) // d), 0)
    return max(math.ceil((stop - start) / step), 0)
