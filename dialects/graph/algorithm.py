"""Ops that order values: topk (TVM's `algorithm` family)."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def

from lathe.dialects.graph.core import (
    BOOL,
    INT,
    STRING,
    GraphOp,
    OpPattern,
    ShapeError,
    graph_traits,
    shape_of,
    tuple_type,
    type_str,
)
from lathe.dialects.graph.shapes import dtype_attr, expect_tensor, normalize_axis, string_choice

TOPK_RETURNS = ("both", "values", "indices")


@irdl_op_definition
class TopkOp(GraphOp):
    """The k largest (smallest with is_ascend) values along `axis` and their indices, TVM's
    `topk`: sorted, equal values in the order of their indices (ONNX TopK's rule); k < 1 takes
    the whole axis. ret_type "both" gives (values, indices) as a tuple, which lowering has no
    single kernel for: the ONNX importer takes the indices and gathers the values."""

    name = "graph.topk"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    data = operand_def(TensorType)
    k = INT.prop(1)
    axis = INT.prop(-1)
    ret_type = STRING.prop("both")
    is_ascend = BOOL.prop(False)
    dtype = STRING.prop("int32")
    result = result_def()
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        if not xs:
            raise ShapeError(f"{op}: expects rank >= 1 data, got {type_str(x)}")
        axis = normalize_axis(op, a["axis"], len(xs))
        ret = string_choice(op, a, "ret_type", TOPK_RETURNS)
        k = topk_count(op, a["k"], xs[axis])
        shape = [k if d == axis else s for d, s in enumerate(xs)]
        values = TensorType(x.element_type, shape)
        indices = TensorType(dtype_attr(op, a, "dtype"), shape)
        return {"both": tuple_type([values, indices]), "values": values, "indices": indices}[ret]


def topk_count(op: str, k: int, extent: int) -> int:
    """How many values topk keeps of an axis of `extent`: k, all of them for k < 1."""
    if k > extent:
        raise ShapeError(f"{op}: k = {k} is larger than the axis it selects from ({extent})")
    return extent if k < 1 else k
