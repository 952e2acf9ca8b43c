"""Elementwise and broadcasting ops: one scalar function per element (unary, binary,
comparison, logical, where, clip, cast)."""

from __future__ import annotations

import math
from typing import ClassVar

from xdsl.dialects.builtin import (
    TensorType,
    i1,
)
from xdsl.irdl import irdl_op_definition, operand_def, result_def

from lathe.dialects.graph.core import (
    NUMBER,
    STRING,
    GraphOp,
    OpPattern,
    ShapeError,
    graph_traits,
    is_float,
    type_str,
)
from lathe.dialects.graph.shapes import (
    broadcast_shapes,
    dtype_attr,
    expect_float,
    expect_tensor,
    required,
    same_dtype,
)


class UnaryOp(GraphOp):
    """An elementwise op. One that defines `scalar(m, *xs)` (BinaryOp's too) is written once:
    `m` is a math namespace (exp, log, sqrt, tanh, erf, floor, ceil, round_even, abs,
    maximum, minimum), numpy's for the op's reference (dialects/reference.py) and the te builder's
    for its compute (lowering/graph_to_te.py), so neither table needs an entry."""

    PATTERN: ClassVar[OpPattern] = OpPattern.ELEMWISE
    FLOAT_ONLY: ClassVar[bool] = False
    data = operand_def(TensorType)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        t = expect_tensor(op, types[0], "data")
        if cls.FLOAT_ONLY:
            expect_float(op, t)
        return t


class FloatUnaryOp(UnaryOp):
    FLOAT_ONLY: ClassVar[bool] = True


@irdl_op_definition
class ReluOp(UnaryOp):
    name = "graph.nn.relu"

    @staticmethod
    def scalar(m, x):
        return m.maximum(x, 0)


@irdl_op_definition
class LeakyReluOp(FloatUnaryOp):
    name = "graph.nn.leaky_relu"
    alpha = NUMBER.prop(0.01)

    @classmethod
    def infer(cls, op, types, a):
        return super().infer(op, types, a)


@irdl_op_definition
class NegativeOp(UnaryOp):
    name = "graph.negative"
    NO_BOOL: ClassVar[bool] = True

    @staticmethod
    def scalar(m, x):
        return -x


@irdl_op_definition
class AbsOp(UnaryOp):
    name = "graph.abs"

    @staticmethod
    def scalar(m, x):
        return m.abs(x)


@irdl_op_definition
class ExpOp(FloatUnaryOp):
    name = "graph.exp"

    @staticmethod
    def scalar(m, x):
        return m.exp(x)


@irdl_op_definition
class LogOp(FloatUnaryOp):
    name = "graph.log"

    @staticmethod
    def scalar(m, x):
        return m.log(x)


@irdl_op_definition
class SqrtOp(FloatUnaryOp):
    name = "graph.sqrt"

    @staticmethod
    def scalar(m, x):
        return m.sqrt(x)


@irdl_op_definition
class RsqrtOp(FloatUnaryOp):
    name = "graph.rsqrt"

    @staticmethod
    def scalar(m, x):
        return 1.0 / m.sqrt(x)


@irdl_op_definition
class TanhOp(FloatUnaryOp):
    name = "graph.tanh"

    @staticmethod
    def scalar(m, x):
        return m.tanh(x)


@irdl_op_definition
class SigmoidOp(FloatUnaryOp):
    name = "graph.sigmoid"

    @staticmethod
    def scalar(m, x):
        return 1.0 / (1.0 + m.exp(-x))


@irdl_op_definition
class ErfOp(FloatUnaryOp):
    name = "graph.erf"

    @staticmethod
    def scalar(m, x):
        return m.erf(x)


@irdl_op_definition
class FloorOp(FloatUnaryOp):
    name = "graph.floor"

    @staticmethod
    def scalar(m, x):
        return m.floor(x)


@irdl_op_definition
class CeilOp(FloatUnaryOp):
    name = "graph.ceil"

    @staticmethod
    def scalar(m, x):
        return m.ceil(x)


@irdl_op_definition
class RoundOp(FloatUnaryOp):
    """Rounds half to even, as TVM's round (and numpy) do."""

    @staticmethod
    def scalar(m, x):
        return m.round_even(x)

    name = "graph.round"


@irdl_op_definition
class ZerosLikeOp(UnaryOp):
    name = "graph.zeros_like"


@irdl_op_definition
class OnesLikeOp(UnaryOp):
    name = "graph.ones_like"


@irdl_op_definition
class LogicalNotOp(UnaryOp):
    name = "graph.logical_not"

    @classmethod
    def infer(cls, op, types, a):
        t = expect_tensor(op, types[0], "data")
        if t.element_type != i1:
            raise ShapeError(f"{op}: expects a bool tensor, got {type_str(t)}")
        return t


@irdl_op_definition
class ClipOp(UnaryOp):
    name = "graph.clip"
    a_min = NUMBER.prop()
    a_max = NUMBER.prop()

    @classmethod
    def infer(cls, op, types, a):
        required(op, a, "a_min", "a_max")
        return super().infer(op, types, a)

    def bounds(self) -> tuple[float, float] | tuple[int, int]:
        """The bounds in the operand's dtype. TVM truncates them for an integer dtype; a bound
        past the dtype's range (or NaN) clips nothing there, where truncation would wrap."""
        a = self.attrs()
        lo, hi = float(a["a_min"]), float(a["a_max"])
        t = self.data.type.element_type
        if is_float(t):
            return lo, hi
        w = t.width.data
        tmin, tmax = (0, 1) if w == 1 else (-(1 << (w - 1)), (1 << (w - 1)) - 1)
        lo = tmin if math.isnan(lo) else int(min(max(lo, tmin), tmax))
        hi = tmax if math.isnan(hi) else int(min(max(hi, tmin), tmax))
        return lo, hi


@irdl_op_definition
class CastOp(UnaryOp):
    name = "graph.cast"
    dtype = STRING.prop()

    @classmethod
    def infer(cls, op, types, a):
        t = expect_tensor(op, types[0], "data")
        required(op, a, "dtype")
        return TensorType(dtype_attr(op, a, "dtype"), t.get_shape())


class BinaryOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    RESULT_BOOL: ClassVar[bool] = False
    BOOL_ONLY: ClassVar[bool] = False
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "lhs")
        y = expect_tensor(op, types[1], "rhs")
        dt = same_dtype(op, x, y)
        if cls.BOOL_ONLY and dt != i1:
            raise ShapeError(f"{op}: expects bool tensors, got {type_str(x)} and {type_str(y)}")
        return TensorType(i1 if cls.RESULT_BOOL else dt, broadcast_shapes(op, x, y))


class CompareOp(BinaryOp):
    RESULT_BOOL: ClassVar[bool] = True


class LogicalOp(BinaryOp):
    BOOL_ONLY: ClassVar[bool] = True


@irdl_op_definition
class AddOp(BinaryOp):
    name = "graph.add"
    NO_BOOL: ClassVar[bool] = True

    @staticmethod
    def scalar(m, a, b):
        return a + b


@irdl_op_definition
class SubtractOp(BinaryOp):
    name = "graph.subtract"
    NO_BOOL: ClassVar[bool] = True

    @staticmethod
    def scalar(m, a, b):
        return a - b


@irdl_op_definition
class MultiplyOp(BinaryOp):
    name = "graph.multiply"

    @staticmethod
    def scalar(m, a, b):
        return a * b


@irdl_op_definition
class DivideOp(BinaryOp):
    """Float division; integer division rounds toward zero (as in TVM)."""

    name = "graph.divide"
    NO_BOOL: ClassVar[bool] = True


@irdl_op_definition
class PowerOp(BinaryOp):
    name = "graph.power"


@irdl_op_definition
class MaximumOp(BinaryOp):
    name = "graph.maximum"

    @staticmethod
    def scalar(m, a, b):
        return m.maximum(a, b)


@irdl_op_definition
class MinimumOp(BinaryOp):
    name = "graph.minimum"

    @staticmethod
    def scalar(m, a, b):
        return m.minimum(a, b)


@irdl_op_definition
class EqualOp(CompareOp):
    name = "graph.equal"


@irdl_op_definition
class NotEqualOp(CompareOp):
    name = "graph.not_equal"


@irdl_op_definition
class LessOp(CompareOp):
    name = "graph.less"


@irdl_op_definition
class LessEqualOp(CompareOp):
    name = "graph.less_equal"


@irdl_op_definition
class GreaterOp(CompareOp):
    name = "graph.greater"


@irdl_op_definition
class GreaterEqualOp(CompareOp):
    name = "graph.greater_equal"


@irdl_op_definition
class LogicalAndOp(LogicalOp):
    name = "graph.logical_and"


@irdl_op_definition
class LogicalOrOp(LogicalOp):
    name = "graph.logical_or"


@irdl_op_definition
class WhereOp(GraphOp):
    name = "graph.where"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    condition = operand_def(TensorType)
    x = operand_def(TensorType)
    y = operand_def(TensorType)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        c, x, y = (expect_tensor(op, t, w) for t, w in zip(types, ("condition", "x", "y")))
        if c.element_type != i1:
            raise ShapeError(f"{op}: condition must be a bool tensor, got {type_str(c)}")
        return TensorType(same_dtype(op, x, y), broadcast_shapes(op, c, x, y))
