"""Tuples of values: building one and reading a field."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import (
    TupleType,
)
from xdsl.irdl import irdl_op_definition, operand_def, result_def, var_operand_def

from lathe.dialects.graph.core import (
    INT,
    GraphOp,
    OpPattern,
    ShapeError,
    graph_traits,
    tuple_type,
    type_str,
)


@irdl_op_definition
class TupleOp(GraphOp):
    name = "graph.tuple"
    PATTERN: ClassVar[OpPattern] = OpPattern.TUPLE
    fields = var_operand_def()
    result = result_def(TupleType)
    traits = graph_traits()
    assembly_format = "$fields attr-dict `:` functional-type($fields, results)"

    @classmethod
    def infer(cls, op, types, a):
        return tuple_type(types)


@irdl_op_definition
class TupleGetItemOp(GraphOp):
    name = "graph.tuple_get_item"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    tuple = operand_def(TupleType)
    index = INT.required()
    result = result_def()
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        t = types[0]
        if not isinstance(t, TupleType):
            raise ShapeError(f"tuple_get_item: expects a tuple, got {type_str(t)}")
        i = a["index"]
        if not 0 <= i < len(t.types.data):
            raise ShapeError(f"tuple_get_item: index {i} out of range for {type_str(t)}")
        return t.types.data[i]
