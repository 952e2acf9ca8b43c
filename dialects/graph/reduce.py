"""Reductions over axes: sum, mean, max, min, prod, argmax, argmin and variance."""

from __future__ import annotations

import math
from typing import ClassVar

from xdsl.dialects.builtin import (
    TensorType,
    i32,
)
from xdsl.ir import Attribute
from xdsl.irdl import irdl_op_definition, operand_def, result_def

from lathe.dialects.graph.core import (
    BOOL,
    INT_OR_INTS,
    GraphOp,
    OpPattern,
    graph_traits,
    shape_of,
)
from lathe.dialects.graph.shapes import (
    expect_float,
    expect_tensor,
    nothing_to_select,
    reduce_axes,
)


class ReduceOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.COMM_REDUCE
    RESULT_DTYPE: ClassVar[Attribute | None] = None
    data = operand_def(TensorType)
    axis = INT_OR_INTS.prop()
    keepdims = BOOL.prop(False)
    exclude = BOOL.prop(False)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        xs = shape_of(x)
        axes = reduce_axes(op, a, len(xs))
        if a["keepdims"]:
            shape = [1 if d in axes else s for d, s in enumerate(xs)]
        else:
            shape = [s for d, s in enumerate(xs) if d not in axes]
        return TensorType(cls.RESULT_DTYPE or x.element_type, shape)


@irdl_op_definition
class SumOp(ReduceOp):
    name = "graph.sum"
    NO_BOOL: ClassVar[bool] = True


@irdl_op_definition
class MeanOp(ReduceOp):
    name = "graph.mean"
    NO_BOOL: ClassVar[bool] = True


@irdl_op_definition
class MaxOp(ReduceOp):
    name = "graph.max"


@irdl_op_definition
class MinOp(ReduceOp):
    name = "graph.min"


@irdl_op_definition
class ProdOp(ReduceOp):
    name = "graph.prod"


class ArgReduceOp(ReduceOp):
    @classmethod
    def infer(cls, op, types, a):
        t = super().infer(op, types, a)
        xs = shape_of(types[0])
        extent = math.prod(xs[d] for d in reduce_axes(op, a, len(xs)))
        nothing_to_select(op, extent, math.prod(shape_of(t)), "find an index over")
        return t


@irdl_op_definition
class ArgmaxOp(ArgReduceOp):
    """Index of the first maximum (the last with select_last_index); int32 like Relay."""

    name = "graph.argmax"
    RESULT_DTYPE: ClassVar[Attribute | None] = i32
    select_last_index = BOOL.prop(False)


@irdl_op_definition
class ArgminOp(ArgReduceOp):
    name = "graph.argmin"
    RESULT_DTYPE: ClassVar[Attribute | None] = i32
    select_last_index = BOOL.prop(False)


@irdl_op_definition
class VarianceOp(ReduceOp):
    """Mean squared deviation from the mean over `axis` (divided by n - 1 with unbiased)."""

    name = "graph.variance"
    unbiased = BOOL.prop(False)

    @classmethod
    def infer(cls, op, types, a):
        expect_float(op, expect_tensor(op, types[0], "data"))
        return super().infer(op, types, a)
