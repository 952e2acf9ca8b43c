"""The graph dialect: Relay-level operators on builtin tensor types.

Each op is a small declarative xDSL class. What makes it a *graph* op:
  * `pattern`   — its fusion category, TVM's OpPattern, read by fusion passes;
  * `infer_type` — shape and dtype inference from operand types and properties,
    used by the verifier (so a hand-edited .mlir file is checked) and by the
    Relay text parser (so results never need to be annotated).
The Relay spelling of an op is its name without the `graph.` prefix
(`graph.nn.dense` is `nn.dense`). Attributes are xDSL properties whose names
are Relay's attribute names.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    TupleType,
    f16,
    f32,
    f64,
    i1,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException


class OpPattern(IntEnum):
    """TVM's operator pattern kinds, ordered from most to least fusable."""

    ELEMWISE = 0
    BROADCAST = 1
    INJECTIVE = 2
    COMM_REDUCE = 3
    OUT_ELEMWISE_FUSABLE = 4
    TUPLE = 7
    OPAQUE = 8


class ShapeError(VerifyException):
    """Operand shapes or dtypes that an operator cannot accept."""


DTYPES: dict[str, Attribute] = {
    "float32": f32,
    "float16": f16,
    "float64": f64,
    "int8": i8,
    "int32": i32,
    "int64": i64,
    "bool": i1,
}
DTYPE_NAMES: dict[Attribute, str] = {v: k for k, v in DTYPES.items()}


def dtype_name(t: Attribute) -> str:
    return DTYPE_NAMES.get(t, str(t))


def is_float(t: Attribute) -> bool:
    return isinstance(t, Float16Type | Float32Type | Float64Type)


def tensor(shape: Sequence[int], dtype: Attribute = f32) -> TensorType:
    return TensorType(dtype, list(shape))


def type_str(t: Attribute) -> str:
    """Relay spelling of a type, for messages: Tensor[(1, 784), float32]."""
    if isinstance(t, TensorType):
        shape = tuple(t.get_shape())
        dims = "(" + ", ".join(map(str, shape)) + ")"
        return f"Tensor[{dims}, {dtype_name(t.element_type)}]"
    if isinstance(t, TupleType):
        return "(" + ", ".join(type_str(x) for x in t.types.data) + ")"
    return str(t)


# ---------------------------------------------------------------------------
# property helpers: Relay attributes read as Python values


def prop_int(props: dict[str, Attribute], name: str, default: int | None = None) -> int | None:
    a = props.get(name)
    if a is None:
        return default
    assert isinstance(a, IntegerAttr)
    return a.value.data


def prop_bool(props: dict[str, Attribute], name: str, default: bool = False) -> bool:
    v = prop_int(props, name, None)
    return default if v is None else bool(v)


def prop_str(props: dict[str, Attribute], name: str, default: str | None = None) -> str | None:
    a = props.get(name)
    return default if a is None else a.data  # type: ignore[union-attr]


def _tensor_operand(op_name: str, t: Attribute, what: str) -> TensorType:
    if not isinstance(t, TensorType):
        raise ShapeError(f"{op_name}: {what} must be a tensor, got {type_str(t)}")
    return t


def broadcast_shapes(op_name: str, a: TensorType, b: TensorType) -> list[int]:
    """numpy broadcasting of two shapes, with a message naming both."""
    sa, sb = list(a.get_shape()), list(b.get_shape())
    out: list[int] = []
    for i in range(1, max(len(sa), len(sb)) + 1):
        da = sa[-i] if i <= len(sa) else 1
        db = sb[-i] if i <= len(sb) else 1
        if da != db and 1 not in (da, db):
            raise ShapeError(
                f"{op_name}: shapes {type_str(a)} and {type_str(b)} cannot be broadcast "
                f"(dimension {da} vs {db})"
            )
        out.append(max(da, db))
    return out[::-1]


def same_dtype(op_name: str, *ts: TensorType) -> Attribute:
    dt = ts[0].element_type
    for t in ts[1:]:
        if t.element_type != dt:
            raise ShapeError(
                f"{op_name}: operand dtypes differ: "
                + " vs ".join(type_str(x) for x in ts)
            )
    return dt


# ---------------------------------------------------------------------------


class GraphOp(IRDLOperation):
    """Base of every graph op: verified by re-running its type inference."""

    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE

    @classmethod
    def relay_name(cls) -> str:
        return cls.name.removeprefix("graph.")

    @classmethod
    def infer_type(cls, operand_types: Sequence[Attribute], props: dict[str, Attribute]) -> Attribute:
        raise NotImplementedError

    @classmethod
    def create_inferred(cls, operands: Sequence, props: dict[str, Attribute] | None = None):
        """Build the op with its result type computed by `infer_type`."""
        props = dict(props or {})
        rt = cls.infer_type([o.type for o in operands], props)
        return cls.create(operands=list(operands), result_types=[rt], properties=props)

    def verify_(self) -> None:
        inferred = self.infer_type([o.type for o in self.operands], dict(self.properties))
        actual = self.results[0].type
        if inferred != actual:
            raise ShapeError(
                f"{self.relay_name()}: result type {type_str(actual)} does not match "
                f"the inferred type {type_str(inferred)}"
            )


_GRAPH_FORMAT = "operands attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class ConstantOp(GraphOp):
    """A tensor literal (scalar constants such as `1f`, or folded weights)."""

    name = "graph.constant"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict `:` type($result)"

    @classmethod
    def infer_type(cls, operand_types, props):
        return props["value"].type  # type: ignore[union-attr]

    @staticmethod
    def scalar(value: float | int, dtype: Attribute = f32) -> "ConstantOp":
        t = TensorType(dtype, [])
        attr = DenseIntOrFPElementsAttr.from_list(t, [value])
        return ConstantOp.create(result_types=[t], properties={"value": attr})


class UnaryOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.ELEMWISE
    data = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _GRAPH_FORMAT

    @classmethod
    def infer_type(cls, operand_types, props):
        return _tensor_operand(cls.relay_name(), operand_types[0], "data")


class FloatUnaryOp(UnaryOp):
    @classmethod
    def infer_type(cls, operand_types, props):
        t = _tensor_operand(cls.relay_name(), operand_types[0], "data")
        if not is_float(t.element_type):
            raise ShapeError(f"{cls.relay_name()}: expects a float tensor, got {type_str(t)}")
        return t


@irdl_op_definition
class ReluOp(UnaryOp):
    name = "graph.nn.relu"


@irdl_op_definition
class NegativeOp(UnaryOp):
    name = "graph.negative"


@irdl_op_definition
class ExpOp(FloatUnaryOp):
    name = "graph.exp"


@irdl_op_definition
class TanhOp(FloatUnaryOp):
    name = "graph.tanh"


@irdl_op_definition
class SigmoidOp(FloatUnaryOp):
    name = "graph.sigmoid"


@irdl_op_definition
class SqrtOp(FloatUnaryOp):
    name = "graph.sqrt"


class BroadcastBinaryOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _GRAPH_FORMAT

    @classmethod
    def infer_type(cls, operand_types, props):
        n = cls.relay_name()
        a = _tensor_operand(n, operand_types[0], "lhs")
        b = _tensor_operand(n, operand_types[1], "rhs")
        return TensorType(same_dtype(n, a, b), broadcast_shapes(n, a, b))


@irdl_op_definition
class AddOp(BroadcastBinaryOp):
    name = "graph.add"


@irdl_op_definition
class SubtractOp(BroadcastBinaryOp):
    name = "graph.subtract"


@irdl_op_definition
class MultiplyOp(BroadcastBinaryOp):
    name = "graph.multiply"


@irdl_op_definition
class DivideOp(BroadcastBinaryOp):
    name = "graph.divide"


@irdl_op_definition
class MaximumOp(BroadcastBinaryOp):
    name = "graph.maximum"


@irdl_op_definition
class MinimumOp(BroadcastBinaryOp):
    name = "graph.minimum"


@irdl_op_definition
class DenseOp(GraphOp):
    """y = x · wᵀ (Relay's nn.dense: weight is [units, in_features])."""

    name = "graph.nn.dense"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    units = opt_prop_def(IntegerAttr)
    out_dtype = opt_prop_def(StringAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _GRAPH_FORMAT

    @classmethod
    def infer_type(cls, operand_types, props):
        n = cls.relay_name()
        x = _tensor_operand(n, operand_types[0], "data")
        w = _tensor_operand(n, operand_types[1], "weight")
        xs, ws = list(x.get_shape()), list(w.get_shape())
        if len(xs) < 1 or len(ws) != 2:
            raise ShapeError(
                f"{n}: expects data of rank >= 1 and a rank-2 weight, got {type_str(x)} and {type_str(w)}"
            )
        if xs[-1] != ws[1]:
            raise ShapeError(
                f"{n}: data {type_str(x)} has {xs[-1]} input features but weight {type_str(w)} "
                f"expects {ws[1]}"
            )
        units = prop_int(props, "units")
        if units is not None and units != ws[0]:
            raise ShapeError(f"{n}: units={units} but weight {type_str(w)} has {ws[0]} rows")
        dt = same_dtype(n, x, w)
        out = prop_str(props, "out_dtype")
        if out:
            if out not in DTYPES:
                raise ShapeError(f"{n}: unknown out_dtype '{out}', expected one of {', '.join(DTYPES)}")
            dt = DTYPES[out]
        return TensorType(dt, xs[:-1] + [ws[0]])


@irdl_op_definition
class MatmulOp(GraphOp):
    """Relay's nn.matmul: op(a) · op(b) with optional transposes (rank 2)."""

    name = "graph.nn.matmul"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    units = opt_prop_def(IntegerAttr)
    transpose_a = opt_prop_def(IntegerAttr)
    transpose_b = opt_prop_def(IntegerAttr)
    out_dtype = opt_prop_def(StringAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _GRAPH_FORMAT

    @classmethod
    def infer_type(cls, operand_types, props):
        n = cls.relay_name()
        a = _tensor_operand(n, operand_types[0], "tensor_a")
        b = _tensor_operand(n, operand_types[1], "tensor_b")
        sa, sb = list(a.get_shape()), list(b.get_shape())
        if len(sa) != 2 or len(sb) != 2:
            raise ShapeError(f"{n}: expects rank-2 operands, got {type_str(a)} and {type_str(b)}")
        m, ka = (sa[1], sa[0]) if prop_bool(props, "transpose_a") else (sa[0], sa[1])
        kb, nn = (sb[1], sb[0]) if prop_bool(props, "transpose_b") else (sb[0], sb[1])
        if ka != kb:
            raise ShapeError(
                f"{n}: reduction dimensions differ: {type_str(a)} gives {ka}, {type_str(b)} gives {kb}"
            )
        units = prop_int(props, "units")
        if units is not None and units != nn:
            raise ShapeError(f"{n}: units={units} but the result has {nn} columns")
        return TensorType(same_dtype(n, a, b), [m, nn])


@irdl_op_definition
class BiasAddOp(GraphOp):
    """Adds a 1-D bias along `axis` (Relay's nn.bias_add)."""

    name = "graph.nn.bias_add"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    data = operand_def(TensorType)
    bias = operand_def(TensorType)
    axis = opt_prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _GRAPH_FORMAT

    @staticmethod
    def normalized_axis(rank: int, props) -> int:
        axis = prop_int(props, "axis", 1)
        return axis + rank if axis < 0 else axis

    @classmethod
    def infer_type(cls, operand_types, props):
        n = cls.relay_name()
        x = _tensor_operand(n, operand_types[0], "data")
        b = _tensor_operand(n, operand_types[1], "bias")
        xs, bs = list(x.get_shape()), list(b.get_shape())
        axis = cls.normalized_axis(len(xs), props)
        if not 0 <= axis < len(xs):
            raise ShapeError(f"{n}: axis {prop_int(props, 'axis', 1)} is out of range for {type_str(x)}")
        if bs != [xs[axis]]:
            raise ShapeError(
                f"{n}: bias {type_str(b)} must have shape ({xs[axis]},) to match axis {axis} of {type_str(x)}"
            )
        same_dtype(n, x, b)
        return x


@irdl_op_definition
class TupleOp(GraphOp):
    name = "graph.tuple"
    PATTERN: ClassVar[OpPattern] = OpPattern.TUPLE
    fields = var_operand_def()
    result = result_def(TupleType)
    traits = traits_def(Pure())
    assembly_format = "$fields attr-dict `:` functional-type($fields, results)"

    @classmethod
    def infer_type(cls, operand_types, props):
        return TupleType(ArrayAttr(tuple(operand_types)))


@irdl_op_definition
class TupleGetItemOp(GraphOp):
    name = "graph.tuple_get_item"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    tuple = operand_def(TupleType)
    index = prop_def(IntegerAttr)
    result = result_def()
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _GRAPH_FORMAT

    @classmethod
    def infer_type(cls, operand_types, props):
        t = operand_types[0]
        if not isinstance(t, TupleType):
            raise ShapeError(f"tuple_get_item: expects a tuple, got {type_str(t)}")
        i = prop_int(props, "index")
        if not 0 <= i < len(t.types.data):
            raise ShapeError(f"tuple_get_item: index {i} out of range for {type_str(t)}")
        return t.types.data[i]


GRAPH_OPS: list[type[GraphOp]] = [
    ConstantOp,
    ReluOp,
    NegativeOp,
    ExpOp,
    TanhOp,
    SigmoidOp,
    SqrtOp,
    AddOp,
    SubtractOp,
    MultiplyOp,
    DivideOp,
    MaximumOp,
    MinimumOp,
    DenseOp,
    MatmulOp,
    BiasAddOp,
    TupleOp,
    TupleGetItemOp,
]

OPS_BY_RELAY_NAME: dict[str, type[GraphOp]] = {op.relay_name(): op for op in GRAPH_OPS}

Graph = Dialect("graph", GRAPH_OPS, [])

__all__ = [
    "Graph",
    "GraphOp",
    "OpPattern",
    "ShapeError",
    "DTYPES",
    "OPS_BY_RELAY_NAME",
    "ArrayAttr",
    "BoolAttr",
    "IntAttr",
    "IntegerType",
]
