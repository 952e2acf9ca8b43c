"""The graph dialect: Relay-level operators on builtin tensor types.

Each op is a small declarative xDSL class. What makes it a *graph* op:
  * `PATTERN`    — its fusion category, TVM's OpPattern, read by fusion passes;
  * `DEFAULTS`   — its Relay attributes and their default values;
  * `infer_type` — shape and dtype inference from operand types and attributes,
    used by the verifier (so a hand-edited .mlir file is checked) and by the
    Relay text parser (so results never need to be annotated).
The Relay spelling of an op is its name without the `graph.` prefix
(`graph.nn.dense` is `nn.dense`). Attributes are xDSL properties named as in
Relay; `attrs()` reads them as Python values with the defaults filled in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import IntEnum
from typing import ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NoneAttr,
    StringAttr,
    TensorType,
    TupleType,
    f32,
    f64,
    i1,
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
from xdsl.traits import HasCanonicalizationPatternsTrait, Pure
from xdsl.utils.exceptions import VerifyException

from lathe.dialects import dtypes


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
    """Operand shapes, dtypes or attributes that an operator cannot accept."""


# The dtype vocabulary is dialects/dtypes.py's; the graph dialect re-exports what its users read.
DTYPES, DTYPE_NAMES, dtype_name, is_float = dtypes.DTYPES, dtypes.DTYPE_NAMES, dtypes.dtype_name, dtypes.is_float


def tensor(shape: Sequence[int], dtype: Attribute = f32) -> TensorType:
    return TensorType(dtype, list(shape))


def shape_of(t: Attribute) -> list[int]:
    assert isinstance(t, TensorType)
    return list(t.get_shape())


def type_str(t: Attribute) -> str:
    """Relay spelling of a type, for messages: Tensor[(1, 784), float32]."""
    if isinstance(t, TensorType):
        dims = "(" + ", ".join(map(str, t.get_shape())) + ")"
        return f"Tensor[{dims}, {dtype_name(t.element_type)}]"
    if isinstance(t, TupleType):
        fields = [type_str(x) for x in t.types.data]
        return "(" + ", ".join(fields) + ("," if len(fields) == 1 else "") + ")"  # (T) would be T itself
    return str(t)


def tuple_type(types: Sequence[Attribute]) -> TupleType:
    return TupleType(ArrayAttr(tuple(types)))


# ---------------------------------------------------------------------------
# Attributes: Python values <-> xDSL attributes


def py(a: Attribute):
    """xDSL attribute → Python value (ints, floats, bools, strings, lists, None)."""
    if isinstance(a, IntegerAttr):
        if isinstance(a.type, IntegerType) and a.type.width.data == 1:
            return bool(a.value.data)
        return a.value.data
    if isinstance(a, FloatAttr):
        return float(a.value.data)
    if isinstance(a, StringAttr):
        return a.data
    if isinstance(a, BytesAttr):  # xDSL prints a non-ASCII StringAttr as bytes and reads it back as BytesAttr
        try:
            return a.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ShapeError(f"attribute {a} is not UTF-8 text") from None
    if isinstance(a, ArrayAttr):
        return [py(x) for x in a.data]
    if isinstance(a, NoneAttr):
        return None
    raise ShapeError(f"unsupported attribute value {a}")


def to_attr(v) -> Attribute:
    """Python value → xDSL attribute (ints i64, floats f64, bools i1)."""
    if isinstance(v, bool):
        return IntegerAttr(int(v), i1)
    if isinstance(v, int):
        return IntegerAttr(v, i64)
    if isinstance(v, float):
        return FloatAttr(v, f64)
    if isinstance(v, str):
        return StringAttr(v)
    if isinstance(v, list | tuple):
        return ArrayAttr([to_attr(x) for x in v])
    if v is None:
        return NoneAttr()
    raise ShapeError(f"unsupported attribute value {v!r}")


def _attr():
    """A Relay attribute: an optional property of any attribute kind (defaults live in DEFAULTS)."""
    return opt_prop_def(Attribute)


# ---------------------------------------------------------------------------
# checks used by type inference


# An attribute whose default is a bool, a float or a string must be one too; the kind is
# checked here once, since most type inference reads flags by truth value and would take
# keepdims="no" as True.
_KINDS = (
    (bool, lambda v: isinstance(v, bool), "True or False"),
    (float, lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    (str, lambda v: isinstance(v, str), "a string"),
)


def _check_kind(op: str, name: str, value, default) -> None:
    for kind, accepts, what in _KINDS:
        if type(default) is kind and not accepts(value):
            raise ShapeError(f"{op}: attribute '{name}' must be {what}, got {value!r}")


def _tensor(op: str, t: Attribute, what: str) -> TensorType:
    if not isinstance(t, TensorType):
        raise ShapeError(f"{op}: {what} must be a tensor, got {type_str(t)}")
    return t


def _float(op: str, t: TensorType, what: str = "data") -> None:
    if not is_float(t.element_type):
        raise ShapeError(f"{op}: {what} must be a float tensor, got {type_str(t)}")


def _not_bool(op: str, t: Attribute) -> None:
    if isinstance(t, TensorType) and t.element_type == i1:
        raise ShapeError(f"{op}: expects a numeric tensor, got {type_str(t)}")


def _int(op: str, a: dict, name: str) -> int:
    v = a[name]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ShapeError(f"{op}: attribute '{name}' must be an integer, got {v!r}")
    return v


def _num(op: str, a: dict, name: str) -> float:
    v = a[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ShapeError(f"{op}: attribute '{name}' must be a number, got {v!r}")
    return float(v)


def _ints(
    op: str, a: dict, name: str, n: int | Sequence[int] | None = None, allow_none: bool = False
) -> list[int] | None:
    v = a[name]
    if v is None and allow_none:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ShapeError(f"{op}: attribute '{name}' must be a list of integers, got {v!r}")
    if n is not None:
        ns = [n] if isinstance(n, int) else list(n)
        if len(v) not in ns:
            raise ShapeError(f"{op}: attribute '{name}' must have {' or '.join(map(str, ns))} values, got {v!r}")
    return v


def _str(op: str, a: dict, name: str, choices: Sequence[str] | None = None) -> str:
    v = a[name]
    if not isinstance(v, str):
        raise ShapeError(f"{op}: attribute '{name}' must be a string, got {v!r}")
    if choices is not None and v not in choices:
        raise ShapeError(f"{op}: attribute '{name}' must be one of {', '.join(map(repr, choices))}, got {v!r}")
    return v


def _dtype(op: str, a: dict, name: str) -> Attribute:
    v = _str(op, a, name)
    if v not in DTYPES:
        raise ShapeError(f"{op}: unknown {name} '{v}', expected one of {', '.join(DTYPES)}")
    return DTYPES[v]


def _out_dtype(op: str, a: dict, dt: Attribute) -> Attribute:
    """The result dtype of an accumulating op (dense, matmul, conv): `out_dtype`, else the
    operands'. A bool accumulator has no agreed meaning (compiled i1 sums are xor)."""
    out = _dtype(op, a, "out_dtype") if a["out_dtype"] else dt
    if out == i1:
        raise ShapeError(
            f"{op}: accumulates numbers, so its result cannot be bool" + (" (out_dtype)" if a["out_dtype"] else "")
        )
    return out


def normalize_axis(op: str, axis: int, rank: int) -> int:
    """A scalar has no axis: axis 0 of rank 0 verified, then crashed every stage that indexed it."""
    if not -rank <= axis < rank:
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def broadcast_shapes(op: str, *ts: TensorType) -> list[int]:
    """numpy broadcasting of several shapes, with a message naming them."""
    shapes = [list(t.get_shape()) for t in ts]
    out: list[int] = []
    for i in range(1, max(len(s) for s in shapes) + 1):
        dims = {s[-i] for s in shapes if i <= len(s)} - {1}
        if len(dims) > 1:
            raise ShapeError(
                f"{op}: shapes {' and '.join(type_str(t) for t in ts)} cannot be broadcast "
                f"(dimension {' vs '.join(str(s[-i]) for s in shapes if i <= len(s))})"
            )
        out.append(dims.pop() if dims else 1)
    return out[::-1]


def same_dtype(op: str, *ts: TensorType) -> Attribute:
    dt = ts[0].element_type
    for t in ts[1:]:
        if t.element_type != dt:
            raise ShapeError(f"{op}: operand dtypes differ: " + " vs ".join(type_str(x) for x in ts))
    return dt


def pad4(op: str, a: dict, name: str = "padding") -> list[int]:
    """Relay 2-D padding: 1, 2 or 4 values → (top, left, bottom, right)."""
    p = _ints(op, a, name, (1, 2, 4))
    assert p is not None
    if len(p) == 1:
        return p * 4
    if len(p) == 2:
        return [p[0], p[1], p[0], p[1]]
    return p


def pair(op: str, a: dict, name: str) -> list[int]:
    v = _ints(op, a, name, (1, 2))
    assert v is not None
    return v * 2 if len(v) == 1 else v


def reduce_axes(op: str, a: dict, rank: int) -> list[int]:
    """Relay's axis/exclude: the sorted axes a reduction runs over."""
    axis = a["axis"]
    if axis is None:
        axes = list(range(rank))
    else:
        axes = _ints(op, a, "axis") or []
        axes = sorted({normalize_axis(op, x, rank) for x in axes})
    if a.get("exclude"):
        axes = [d for d in range(rank) if d not in axes]
    return axes


def pool_out(op: str, size: int, k: int, s: int, d: int, pad_a: int, pad_b: int, ceil_mode: bool) -> int:
    span = size + pad_a + pad_b - d * (k - 1) - 1
    if span < 0:
        raise ShapeError(f"{op}: window {k} (dilation {d}) is larger than the padded input {size + pad_a + pad_b}")
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + pad_a:  # the last window must start inside the input
            out -= 1
        return out
    return span // s + 1


# ---------------------------------------------------------------------------


# Canonicalization patterns by op class. They are transformations, so they live with the
# passes (passes/canonicalize.py registers them when imported, as the pass registry does
# before xDSL's canonicalize runs); the dialect only hands them over.
CANONICALIZATION_PATTERNS: dict[type, tuple] = {}


class GraphCanonicalization(HasCanonicalizationPatternsTrait):
    """Gives xDSL's `canonicalize` the patterns registered for an op's class."""

    def get_patterns(self, op: type) -> tuple:
        return CANONICALIZATION_PATTERNS.get(op, ())

    @classmethod
    def get_canonicalization_patterns(cls) -> tuple:
        return ()


def graph_traits():
    return traits_def(Pure(), GraphCanonicalization())


class GraphOp(IRDLOperation):
    """Base of every graph op: verified by re-running its type inference."""

    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    DEFAULTS: ClassVar[dict[str, object]] = {}
    # Arithmetic whose meaning on bool is ambiguous (True + True: numpy's `or`, LLVM's i1 `xor`):
    # the interpreter and compiled code disagreed, so such ops take no bool operands.
    NO_BOOL: ClassVar[bool] = False
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    @classmethod
    def relay_name(cls) -> str:
        return cls.name.removeprefix("graph.")

    @classmethod
    def attrs_of(cls, props: dict[str, Attribute]) -> dict:
        a = dict(cls.DEFAULTS)
        a.update({k: py(v) for k, v in props.items()})
        for k in props:
            _check_kind(cls.relay_name(), k, a[k], cls.DEFAULTS.get(k))
        return a

    def attrs(self) -> dict:
        """This op's Relay attributes as Python values, defaults filled in."""
        return self.attrs_of(dict(self.properties))

    @classmethod
    def infer_type(cls, operand_types: Sequence[Attribute], props: dict[str, Attribute]) -> Attribute:
        if cls.NO_BOOL:
            for t in operand_types:
                _not_bool(cls.relay_name(), t)
        result = cls.infer(cls.relay_name(), list(operand_types), cls.attrs_of(props))
        for t in result.types.data if isinstance(result, TupleType) else (result,):
            if isinstance(t, TensorType) and any(d < 0 for d in t.get_shape()):
                raise ShapeError(
                    f"{cls.relay_name()}: the result would have a negative dimension, "
                    f"{type_str(t)}; every dimension must be known and non-negative"
                )
        return result

    @classmethod
    def infer(cls, op: str, types: list[Attribute], a: dict) -> Attribute:
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


# -- elementwise -------------------------------------------------------------------


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
        t = _tensor(op, types[0], "data")
        if cls.FLOAT_ONLY:
            _float(op, t)
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
    DEFAULTS: ClassVar[dict[str, object]] = {"alpha": 0.01}
    alpha = _attr()

    @classmethod
    def infer(cls, op, types, a):
        _num(op, a, "alpha")
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
class LogicalNotOp(UnaryOp):
    name = "graph.logical_not"

    @classmethod
    def infer(cls, op, types, a):
        t = _tensor(op, types[0], "data")
        if t.element_type != i1:
            raise ShapeError(f"{op}: expects a bool tensor, got {type_str(t)}")
        return t


@irdl_op_definition
class ClipOp(UnaryOp):
    name = "graph.clip"
    DEFAULTS: ClassVar[dict[str, object]] = {"a_min": None, "a_max": None}
    a_min = _attr()
    a_max = _attr()

    @classmethod
    def infer(cls, op, types, a):
        for k in ("a_min", "a_max"):
            if a[k] is None:
                raise ShapeError(f"{op}: attribute '{k}' is required")
            _num(op, a, k)
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
    DEFAULTS: ClassVar[dict[str, object]] = {"dtype": None}
    dtype = _attr()

    @classmethod
    def infer(cls, op, types, a):
        t = _tensor(op, types[0], "data")
        if a["dtype"] is None:
            raise ShapeError(f"{op}: attribute 'dtype' is required")
        return TensorType(_dtype(op, a, "dtype"), t.get_shape())


@irdl_op_definition
class DropoutOp(GraphOp):
    """Relay's nn.dropout: (output, mask); at inference the output is the input and the
    mask all ones (simplify-inference removes it)."""

    name = "graph.nn.dropout"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    DEFAULTS: ClassVar[dict[str, object]] = {"rate": 0.5}
    data = operand_def(TensorType)
    rate = _attr()
    result = result_def(TupleType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        _num(op, a, "rate")
        return tuple_type([x, x])


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
        x = _tensor(op, types[0], "lhs")
        y = _tensor(op, types[1], "rhs")
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
        c, x, y = (_tensor(op, t, w) for t, w in zip(types, ("condition", "x", "y")))
        if c.element_type != i1:
            raise ShapeError(f"{op}: condition must be a bool tensor, got {type_str(c)}")
        return TensorType(same_dtype(op, x, y), broadcast_shapes(op, c, x, y))


# -- contractions ---------------------------------------------------------------------


@irdl_op_definition
class DenseOp(GraphOp):
    """y = x · wᵀ (Relay's nn.dense: weight is [units, in_features])."""

    name = "graph.nn.dense"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"units": None, "out_dtype": ""}
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    units = _attr()
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        w = _tensor(op, types[1], "weight")
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) < 1 or len(ws) != 2:
            raise ShapeError(
                f"{op}: expects data of rank >= 1 and a rank-2 weight, got {type_str(x)} and {type_str(w)}"
            )
        if xs[-1] != ws[1]:
            raise ShapeError(
                f"{op}: data {type_str(x)} has {xs[-1]} input features but weight {type_str(w)} expects {ws[1]}"
            )
        if a["units"] is not None and _int(op, a, "units") != ws[0]:
            raise ShapeError(f"{op}: units={a['units']} but weight {type_str(w)} has {ws[0]} rows")
        return TensorType(_out_dtype(op, a, same_dtype(op, x, w)), xs[:-1] + [ws[0]])


@irdl_op_definition
class DensePackOp(GraphOp):
    """nn.dense with the weight packed as [units / bn, in_features, bn] (TVM's
    nn.contrib_dense_pack): each block of bn output columns is contiguous along
    k, so the micro-kernel reads it as whole vectors."""

    name = "graph.nn.contrib_dense_pack"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"units": None, "out_dtype": "", "weight_layout": ""}
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    units = _attr()
    out_dtype = _attr()
    weight_layout = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        w = _tensor(op, types[1], "weight")
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) < 1 or len(ws) != 3:
            raise ShapeError(
                f"{op}: expects data of rank >= 1 and a rank-3 packed weight, got {type_str(x)} and {type_str(w)}"
            )
        if xs[-1] != ws[1]:
            raise ShapeError(
                f"{op}: data {type_str(x)} has {xs[-1]} input features but weight {type_str(w)} expects {ws[1]}"
            )
        dt = same_dtype(op, x, w)
        return TensorType(_out_dtype(op, a, dt), xs[:-1] + [ws[0] * ws[2]])


@irdl_op_definition
class BatchMatmulPackOp(GraphOp):
    """batch_matmul(a, b) with b packed as [batch, n / bn, k, bn] (a not transposed)."""

    name = "graph.nn.contrib_batch_matmul_pack"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"out_dtype": ""}
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "tensor_a")
        y = _tensor(op, types[1], "tensor_b")
        sa, sb = shape_of(x), shape_of(y)
        if len(sa) != 3 or len(sb) != 4:
            raise ShapeError(
                f"{op}: expects a rank-3 tensor_a and a rank-4 packed tensor_b, got {type_str(x)} and {type_str(y)}"
            )
        if sa[0] != sb[0] and 1 not in (sa[0], sb[0]):
            raise ShapeError(f"{op}: batch sizes {sa[0]} and {sb[0]} differ")
        if sa[2] != sb[2]:
            raise ShapeError(
                f"{op}: reduction dimensions differ: {type_str(x)} gives {sa[2]}, {type_str(y)} gives {sb[2]}"
            )
        dt = same_dtype(op, x, y)
        return TensorType(_out_dtype(op, a, dt), [max(sa[0], sb[0]), sa[1], sb[1] * sb[3]])


@irdl_op_definition
class MatmulOp(GraphOp):
    """Relay's nn.matmul: op(a) · op(b) with optional transposes (rank 2)."""

    name = "graph.nn.matmul"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"units": None, "out_dtype": "", "transpose_a": False, "transpose_b": False}
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    units = _attr()
    transpose_a = _attr()
    transpose_b = _attr()
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "tensor_a")
        y = _tensor(op, types[1], "tensor_b")
        sa, sb = shape_of(x), shape_of(y)
        if len(sa) != 2 or len(sb) != 2:
            raise ShapeError(f"{op}: expects rank-2 operands, got {type_str(x)} and {type_str(y)}")
        m, ka = (sa[1], sa[0]) if a["transpose_a"] else (sa[0], sa[1])
        kb, n = (sb[1], sb[0]) if a["transpose_b"] else (sb[0], sb[1])
        if ka != kb:
            raise ShapeError(f"{op}: reduction dimensions differ: {type_str(x)} gives {ka}, {type_str(y)} gives {kb}")
        if a["units"] is not None and _int(op, a, "units") != n:
            raise ShapeError(f"{op}: units={a['units']} but the result has {n} columns")
        dt = same_dtype(op, x, y)
        return TensorType(_out_dtype(op, a, dt), [m, n])


@irdl_op_definition
class BatchMatmulOp(GraphOp):
    """Relay's nn.batch_matmul: [b, m, k] · [b, n, k]ᵀ by default (transpose_b=True)."""

    name = "graph.nn.batch_matmul"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"out_dtype": "", "transpose_a": False, "transpose_b": True}
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    transpose_a = _attr()
    transpose_b = _attr()
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "tensor_a")
        y = _tensor(op, types[1], "tensor_b")
        sa, sb = shape_of(x), shape_of(y)
        if len(sa) != 3 or len(sb) != 3:
            raise ShapeError(f"{op}: expects rank-3 operands, got {type_str(x)} and {type_str(y)}")
        if sa[0] != sb[0] and 1 not in (sa[0], sb[0]):
            raise ShapeError(f"{op}: batch sizes {sa[0]} and {sb[0]} differ ({type_str(x)}, {type_str(y)})")
        m, ka = (sa[2], sa[1]) if a["transpose_a"] else (sa[1], sa[2])
        kb, n = (sb[2], sb[1]) if a["transpose_b"] else (sb[1], sb[2])
        if ka != kb:
            raise ShapeError(f"{op}: reduction dimensions differ: {type_str(x)} gives {ka}, {type_str(y)} gives {kb}")
        dt = same_dtype(op, x, y)
        return TensorType(_out_dtype(op, a, dt), [max(sa[0], sb[0]), m, n])


CONV_LAYOUTS = {"NCHW": "OIHW", "NHWC": "HWIO"}


@irdl_op_definition
class Conv2dOp(GraphOp):
    name = "graph.nn.conv2d"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {
        "strides": [1, 1],
        "padding": [0, 0, 0, 0],
        "dilation": [1, 1],
        "groups": 1,
        "channels": None,
        "kernel_size": None,
        "data_layout": "NCHW",
        "kernel_layout": "",
        "out_layout": "",
        "out_dtype": "",
    }
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    strides = _attr()
    padding = _attr()
    dilation = _attr()
    groups = _attr()
    channels = _attr()
    kernel_size = _attr()
    data_layout = _attr()
    kernel_layout = _attr()
    out_layout = _attr()
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, w: TensorType, a: dict) -> dict:
        """Layout-independent view: n, c, h, w, o, kh, kw, groups, strides, pads, dilation."""
        layout = _str(op, a, "data_layout", tuple(CONV_LAYOUTS))
        klayout = a["kernel_layout"] or CONV_LAYOUTS[layout]
        if klayout not in ("OIHW", "HWIO", "HWOI"):
            raise ShapeError(f"{op}: kernel_layout must be OIHW, HWIO or HWOI, got {klayout!r}")
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) != 4 or len(ws) != 4:
            raise ShapeError(f"{op}: expects rank-4 data and weight, got {type_str(x)} and {type_str(w)}")
        n, c, h, wd = (xs[0], xs[1], xs[2], xs[3]) if layout == "NCHW" else (xs[0], xs[3], xs[1], xs[2])
        dims = dict(zip(klayout, ws))
        o, i, kh, kw = dims["O"], dims["I"], dims["H"], dims["W"]
        groups = _int(op, a, "groups")
        if groups < 1 or c % groups or o % groups or i * groups != c:
            raise ShapeError(
                f"{op}: data {type_str(x)} has {c} channels but weight {type_str(w)} ({klayout}) expects "
                f"{i} input channels per group with groups={groups}"
            )
        if a["channels"] is not None and _int(op, a, "channels") != o:
            raise ShapeError(f"{op}: channels={a['channels']} but weight {type_str(w)} has {o} output channels")
        if a["kernel_size"] is not None and pair(op, a, "kernel_size") != [kh, kw]:
            raise ShapeError(f"{op}: kernel_size={a['kernel_size']} but weight {type_str(w)} is {kh}x{kw}")
        sh, sw = pair(op, a, "strides")
        dh, dw = pair(op, a, "dilation")
        pt, pl, pb, pr = pad4(op, a)
        if min(sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
            raise ShapeError(f"{op}: strides and dilation must be >= 1 and padding >= 0")
        oh = pool_out(op, h, kh, sh, dh, pt, pb, False)
        ow = pool_out(op, wd, kw, sw, dw, pl, pr, False)
        return dict(
            layout=layout,
            klayout=klayout,
            n=n,
            c=c,
            h=h,
            w=wd,
            o=o,
            i=i,
            kh=kh,
            kw=kw,
            groups=groups,
            sh=sh,
            sw=sw,
            dh=dh,
            dw=dw,
            pt=pt,
            pl=pl,
            pb=pb,
            pr=pr,
            oh=oh,
            ow=ow,
        )

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        w = _tensor(op, types[1], "weight")
        dt = same_dtype(op, x, w)
        g = cls.geometry(op, x, w, a)
        shape = [g["n"], g["o"], g["oh"], g["ow"]] if g["layout"] == "NCHW" else [g["n"], g["oh"], g["ow"], g["o"]]
        return TensorType(_out_dtype(op, a, dt), shape)


@irdl_op_definition
class Conv2dTransposeOp(GraphOp):
    """Transposed convolution, NCHW data and IOHW weight (as ONNX's ConvTranspose)."""

    name = "graph.nn.conv2d_transpose"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {
        "strides": [1, 1],
        "padding": [0, 0, 0, 0],
        "dilation": [1, 1],
        "groups": 1,
        "channels": None,
        "kernel_size": None,
        "data_layout": "NCHW",
        "kernel_layout": "IOHW",
        "output_padding": [0, 0],
        "out_dtype": "",
    }
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    strides = _attr()
    padding = _attr()
    dilation = _attr()
    groups = _attr()
    channels = _attr()
    kernel_size = _attr()
    data_layout = _attr()
    kernel_layout = _attr()
    output_padding = _attr()
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, w: TensorType, a: dict) -> dict:
        _str(op, a, "data_layout", ("NCHW",))
        _str(op, a, "kernel_layout", ("IOHW",))
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) != 4 or len(ws) != 4:
            raise ShapeError(f"{op}: expects rank-4 data and weight, got {type_str(x)} and {type_str(w)}")
        n, c, h, wd = xs
        ci, og, kh, kw = ws
        groups = _int(op, a, "groups")
        if groups < 1 or ci != c or c % groups:
            raise ShapeError(f"{op}: data {type_str(x)} has {c} channels but weight {type_str(w)} (IOHW) has {ci}")
        sh, sw = pair(op, a, "strides")
        dh, dw = pair(op, a, "dilation")
        pt, pl, pb, pr = pad4(op, a)
        oph, opw = pair(op, a, "output_padding")
        if min(sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr, oph, opw) < 0:
            raise ShapeError(f"{op}: strides and dilation must be >= 1, padding and output_padding >= 0")
        oh = (h - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1
        ow = (wd - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1
        if oh < 1 or ow < 1:
            raise ShapeError(f"{op}: the output would be empty ({oh}x{ow})")
        return dict(
            n=n,
            c=c,
            h=h,
            w=wd,
            o=og * groups,
            og=og,
            kh=kh,
            kw=kw,
            groups=groups,
            sh=sh,
            sw=sw,
            dh=dh,
            dw=dw,
            pt=pt,
            pl=pl,
            oh=oh,
            ow=ow,
        )

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        w = _tensor(op, types[1], "weight")
        dt = _out_dtype(op, a, same_dtype(op, x, w))
        g = cls.geometry(op, x, w, a)
        return TensorType(dt, [g["n"], g["o"], g["oh"], g["ow"]])


# -- nn ------------------------------------------------------------------------------


def _per_channel(op: str, types, a: dict, what: str) -> TensorType:
    """data plus a 1-D operand with one value per index of data's `axis` (bias_add, prelu)."""
    x = _tensor(op, types[0], "data")
    v = _tensor(op, types[1], what)
    xs = shape_of(x)
    axis = normalize_axis(op, _int(op, a, "axis"), len(xs))
    if shape_of(v) != [xs[axis]]:
        raise ShapeError(
            f"{op}: {what} {type_str(v)} must have shape ({xs[axis]}) to match axis {axis} of {type_str(x)}"
        )
    same_dtype(op, x, v)
    return x


@irdl_op_definition
class BiasAddOp(GraphOp):
    """Adds a 1-D bias along `axis` (Relay's nn.bias_add)."""

    name = "graph.nn.bias_add"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": 1}
    data = operand_def(TensorType)
    bias = operand_def(TensorType)
    axis = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        return _per_channel(op, types, a, "bias")


@irdl_op_definition
class PReluOp(GraphOp):
    name = "graph.nn.prelu"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": 1}
    data = operand_def(TensorType)
    alpha = operand_def(TensorType)
    axis = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        return _per_channel(op, types, a, "alpha")


class SoftmaxBase(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": -1}
    data = operand_def(TensorType)
    axis = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        _float(op, x)
        normalize_axis(op, _int(op, a, "axis"), len(shape_of(x)))
        return x


@irdl_op_definition
class SoftmaxOp(SoftmaxBase):
    name = "graph.nn.softmax"


@irdl_op_definition
class LogSoftmaxOp(SoftmaxBase):
    name = "graph.nn.log_softmax"


@irdl_op_definition
class LayerNormOp(GraphOp):
    name = "graph.nn.layer_norm"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": -1, "epsilon": 1e-5, "center": True, "scale": True}
    data = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    axis = _attr()
    epsilon = _attr()
    center = _attr()
    scale = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x, g, b = (_tensor(op, t, w) for t, w in zip(types, ("data", "gamma", "beta")))
        _float(op, x)
        xs = shape_of(x)
        axis = normalize_axis(op, _int(op, a, "axis"), len(xs))
        _num(op, a, "epsilon")
        for t, w in ((g, "gamma"), (b, "beta")):
            if shape_of(t) != [xs[axis]]:
                raise ShapeError(
                    f"{op}: {w} {type_str(t)} must have shape ({xs[axis]}) to match axis {axis} of {type_str(x)}"
                )
        same_dtype(op, x, g, b)
        return x


@irdl_op_definition
class BatchNormOp(GraphOp):
    """Inference batch norm; like Relay, the result is (output, moving_mean, moving_var)."""

    name = "graph.nn.batch_norm"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": 1, "epsilon": 1e-5, "center": True, "scale": True}
    data = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    moving_mean = operand_def(TensorType)
    moving_var = operand_def(TensorType)
    axis = _attr()
    epsilon = _attr()
    center = _attr()
    scale = _attr()
    result = result_def(TupleType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        names = ("data", "gamma", "beta", "moving_mean", "moving_var")
        x, *params = (_tensor(op, t, w) for t, w in zip(types, names))
        _float(op, x)
        xs = shape_of(x)
        axis = normalize_axis(op, _int(op, a, "axis"), len(xs))
        _num(op, a, "epsilon")
        for t, w in zip(params, names[1:]):
            if shape_of(t) != [xs[axis]]:
                raise ShapeError(
                    f"{op}: {w} {type_str(t)} must have shape ({xs[axis]}) to match axis {axis} of {type_str(x)}"
                )
        same_dtype(op, x, *params)
        return tuple_type([x, params[2], params[3]])


@irdl_op_definition
class LRNOp(GraphOp):
    name = "graph.nn.lrn"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    DEFAULTS: ClassVar[dict[str, object]] = {"size": 5, "axis": 1, "bias": 2.0, "alpha": 1e-5, "beta": 0.75}
    data = operand_def(TensorType)
    size = _attr()
    axis = _attr()
    bias = _attr()
    alpha = _attr()
    beta = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        _float(op, x)
        normalize_axis(op, _int(op, a, "axis"), len(shape_of(x)))
        if _int(op, a, "size") < 1:
            raise ShapeError(f"{op}: size must be >= 1")
        for k in ("bias", "alpha", "beta"):
            _num(op, a, k)
        return x


class Pool2dBase(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {
        "pool_size": [1, 1],
        "strides": [1, 1],
        "dilation": [1, 1],
        "padding": [0, 0, 0, 0],
        "layout": "NCHW",
        "out_layout": "",
        "ceil_mode": False,
        "count_include_pad": False,
    }
    data = operand_def(TensorType)
    pool_size = _attr()
    strides = _attr()
    dilation = _attr()
    padding = _attr()
    layout = _attr()
    out_layout = _attr()
    ceil_mode = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, a: dict) -> dict:
        layout = _str(op, a, "layout", ("NCHW", "NHWC"))
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        n, c, h, w = (xs[0], xs[1], xs[2], xs[3]) if layout == "NCHW" else (xs[0], xs[3], xs[1], xs[2])
        kh, kw = pair(op, a, "pool_size")
        sh, sw = pair(op, a, "strides")
        dh, dw = pair(op, a, "dilation")
        pt, pl, pb, pr = pad4(op, a)
        if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
            raise ShapeError(f"{op}: pool_size, strides and dilation must be >= 1 and padding >= 0")
        ceil_mode = bool(a["ceil_mode"])
        oh = pool_out(op, h, kh, sh, dh, pt, pb, ceil_mode)
        ow = pool_out(op, w, kw, sw, dw, pl, pr, ceil_mode)
        return dict(
            layout=layout,
            n=n,
            c=c,
            h=h,
            w=w,
            kh=kh,
            kw=kw,
            sh=sh,
            sw=sw,
            dh=dh,
            dw=dw,
            pt=pt,
            pl=pl,
            pb=pb,
            pr=pr,
            oh=oh,
            ow=ow,
        )

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        g = cls.geometry(op, x, a)
        shape = [g["n"], g["c"], g["oh"], g["ow"]] if g["layout"] == "NCHW" else [g["n"], g["oh"], g["ow"], g["c"]]
        return TensorType(x.element_type, shape)


@irdl_op_definition
class MaxPool2dOp(Pool2dBase):
    name = "graph.nn.max_pool2d"


@irdl_op_definition
class AvgPool2dOp(Pool2dBase):
    name = "graph.nn.avg_pool2d"
    NO_BOOL: ClassVar[bool] = True  # an average of bools, as mean
    count_include_pad = _attr()


class GlobalPool2dBase(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"layout": "NCHW", "out_layout": ""}
    data = operand_def(TensorType)
    layout = _attr()
    out_layout = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        layout = _str(op, a, "layout", ("NCHW", "NHWC"))
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        shape = [xs[0], xs[1], 1, 1] if layout == "NCHW" else [xs[0], 1, 1, xs[3]]
        return TensorType(x.element_type, shape)


@irdl_op_definition
class GlobalAvgPool2dOp(GlobalPool2dBase):
    name = "graph.nn.global_avg_pool2d"
    NO_BOOL: ClassVar[bool] = True


@irdl_op_definition
class GlobalMaxPool2dOp(GlobalPool2dBase):
    name = "graph.nn.global_max_pool2d"


@irdl_op_definition
class AdaptiveAvgPool2dOp(GraphOp):
    name = "graph.nn.adaptive_avg_pool2d"
    NO_BOOL: ClassVar[bool] = True
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    DEFAULTS: ClassVar[dict[str, object]] = {"output_size": None, "layout": "NCHW", "out_layout": ""}
    data = operand_def(TensorType)
    output_size = _attr()
    layout = _attr()
    out_layout = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        _str(op, a, "layout", ("NCHW",))
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        size = [1, 1] if a["output_size"] is None else pair(op, a, "output_size")
        if min(size) < 1:
            raise ShapeError(f"{op}: output_size must be >= 1, got {size}")
        return TensorType(x.element_type, [xs[0], xs[1], *size])


@irdl_op_definition
class PadOp(GraphOp):
    name = "graph.nn.pad"
    PATTERN: ClassVar[OpPattern] = OpPattern.INJECTIVE
    DEFAULTS: ClassVar[dict[str, object]] = {"pad_width": None, "pad_value": 0.0, "pad_mode": "constant"}
    data = operand_def(TensorType)
    pad_width = _attr()
    pad_value = _attr()
    pad_mode = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        xs = shape_of(x)
        pw = a["pad_width"]
        if (
            not isinstance(pw, list)
            or len(pw) != len(xs)
            or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p) for p in pw
            )
        ):
            raise ShapeError(f"{op}: pad_width must be {len(xs)} pairs of non-negative integers, got {pw!r}")
        mode = _str(op, a, "pad_mode", ("constant", "edge", "reflect"))
        _num(op, a, "pad_value")
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
        x = _tensor(op, types[0], "data")
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
    DEFAULTS: ClassVar[dict[str, object]] = {
        "size": None,
        "roi": [0.0, 0.0, 0.0, 0.0],
        "layout": "NCHW",
        "method": "linear",
        "coordinate_transformation_mode": "half_pixel",
        "rounding_method": "",
        "cubic_alpha": -0.5,
        "cubic_exclude": 0,
        "extrapolation_value": 0.0,
        "out_dtype": "",
    }
    data = operand_def(TensorType)
    size = _attr()
    roi = _attr()
    layout = _attr()
    method = _attr()
    coordinate_transformation_mode = _attr()
    rounding_method = _attr()
    cubic_alpha = _attr()
    cubic_exclude = _attr()
    extrapolation_value = _attr()
    out_dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        _float(op, x)
        layout = _str(op, a, "layout", ("NCHW", "NHWC"))
        _str(op, a, "method", RESIZE_METHODS)
        _str(op, a, "coordinate_transformation_mode", RESIZE_COORDS)
        _str(op, a, "rounding_method", RESIZE_ROUNDING)
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        if a["size"] is None:
            raise ShapeError(f"{op}: attribute 'size' is required")
        oh, ow = pair(op, a, "size")
        if min(oh, ow) < 1:
            raise ShapeError(f"{op}: size must be >= 1, got {[oh, ow]}")
        shape = [xs[0], xs[1], oh, ow] if layout == "NCHW" else [xs[0], oh, ow, xs[3]]
        return TensorType(x.element_type, shape)


# -- reductions -------------------------------------------------------------------------


class ReduceOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.COMM_REDUCE
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": None, "keepdims": False, "exclude": False}
    RESULT_DTYPE: ClassVar[Attribute | None] = None
    data = operand_def(TensorType)
    axis = _attr()
    keepdims = _attr()
    exclude = _attr()
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
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
        _nothing_to_select(op, extent, math.prod(shape_of(t)), "find an index over")
        return t


def _nothing_to_select(op: str, extent: int, wanted: int, what: str) -> None:
    """An element picked from an empty axis (numpy raises; compiled code would read out of bounds)."""
    if extent == 0 and wanted > 0:
        raise ShapeError(f"{op}: cannot {what} an empty axis ({wanted} result elements, no elements to pick)")


@irdl_op_definition
class ArgmaxOp(ArgReduceOp):
    """Index of the first maximum (the last with select_last_index); int32 like Relay."""

    name = "graph.argmax"
    RESULT_DTYPE: ClassVar[Attribute | None] = i32
    DEFAULTS: ClassVar[dict[str, object]] = {
        "axis": None,
        "keepdims": False,
        "exclude": False,
        "select_last_index": False,
    }
    select_last_index = _attr()


@irdl_op_definition
class ArgminOp(ArgReduceOp):
    name = "graph.argmin"
    RESULT_DTYPE: ClassVar[Attribute | None] = i32
    DEFAULTS: ClassVar[dict[str, object]] = {
        "axis": None,
        "keepdims": False,
        "exclude": False,
        "select_last_index": False,
    }
    select_last_index = _attr()


@irdl_op_definition
class VarianceOp(ReduceOp):
    """Mean squared deviation from the mean over `axis` (divided by n - 1 with unbiased)."""

    name = "graph.variance"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": None, "keepdims": False, "exclude": False, "unbiased": False}
    unbiased = _attr()

    @classmethod
    def infer(cls, op, types, a):
        _float(op, _tensor(op, types[0], "data"))
        return super().infer(op, types, a)


# -- shape and data movement -----------------------------------------------------------------


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
    DEFAULTS: ClassVar[dict[str, object]] = {"newshape": None}
    data = operand_def(TensorType)
    newshape = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        ns = _ints(op, a, "newshape")
        return TensorType(x.element_type, reshape_target(op, shape_of(x), ns or []))


@irdl_op_definition
class TransposeOp(InjectiveOp):
    name = "graph.transpose"
    DEFAULTS: ClassVar[dict[str, object]] = {"axes": None}
    data = operand_def(TensorType)
    axes = _attr()
    result = result_def(TensorType)

    @staticmethod
    def perm(op: str, rank: int, a: dict) -> list[int]:
        axes = _ints(op, a, "axes", allow_none=True)
        if axes is None:
            return list(range(rank))[::-1]
        perm = [normalize_axis(op, x, rank) for x in axes]
        if sorted(perm) != list(range(rank)):
            raise ShapeError(f"{op}: axes {axes} is not a permutation of {rank} axes")
        return perm

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        xs = shape_of(x)
        return TensorType(x.element_type, [xs[p] for p in cls.perm(op, len(xs), a)])


@irdl_op_definition
class SqueezeOp(InjectiveOp):
    name = "graph.squeeze"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": None}
    data = operand_def(TensorType)
    axis = _attr()
    result = result_def(TensorType)

    @staticmethod
    def axes(op: str, xs: list[int], a: dict) -> list[int]:
        ax = _ints(op, a, "axis", allow_none=True)
        if ax is None:
            return [d for d, s in enumerate(xs) if s == 1]
        axes = sorted({normalize_axis(op, d, len(xs)) for d in ax})
        for d in axes:
            if xs[d] != 1:
                raise ShapeError(f"{op}: cannot squeeze axis {d} of size {xs[d]}")
        return axes

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        xs = shape_of(x)
        axes = cls.axes(op, xs, a)
        return TensorType(x.element_type, [s for d, s in enumerate(xs) if d not in axes])


@irdl_op_definition
class ExpandDimsOp(InjectiveOp):
    name = "graph.expand_dims"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": None, "num_newaxis": 1}
    data = operand_def(TensorType)
    axis = _attr()
    num_newaxis = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        xs = shape_of(x)
        if a["axis"] is None:
            raise ShapeError(f"{op}: attribute 'axis' is required")
        n = _int(op, a, "num_newaxis")
        axis = _int(op, a, "axis")
        if not -len(xs) - 1 <= axis <= len(xs) or n < 0:
            raise ShapeError(f"{op}: axis {axis} is out of range for rank {len(xs)}")
        axis = axis + len(xs) + 1 if axis < 0 else axis
        return TensorType(x.element_type, xs[:axis] + [1] * n + xs[axis:])


def _tuple_fields(op: str, t: Attribute) -> list[TensorType]:
    if not isinstance(t, TupleType):
        raise ShapeError(f"{op}: expects a tuple of tensors, got {type_str(t)}")
    fields = [_tensor(op, f, "each field") for f in t.types.data]
    if not fields:
        raise ShapeError(f"{op}: expects at least one tensor")
    same_dtype(op, *fields)
    return fields


@irdl_op_definition
class ConcatenateOp(InjectiveOp):
    name = "graph.concatenate"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": 0}
    data = operand_def(TupleType)
    axis = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        fields = _tuple_fields(op, types[0])
        shapes = [shape_of(f) for f in fields]
        axis = normalize_axis(op, _int(op, a, "axis"), len(shapes[0]))
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(x != y for d, (x, y) in enumerate(zip(s, shapes[0])) if d != axis):
                raise ShapeError(f"{op}: shapes {' and '.join(type_str(f) for f in fields)} differ outside axis {axis}")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return TensorType(fields[0].element_type, out)


@irdl_op_definition
class StackOp(InjectiveOp):
    name = "graph.stack"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": 0}
    data = operand_def(TupleType)
    axis = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        fields = _tuple_fields(op, types[0])
        shapes = [shape_of(f) for f in fields]
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"{op}: all shapes must be equal, got {', '.join(type_str(f) for f in fields)}")
        axis = _int(op, a, "axis")
        rank = len(shapes[0]) + 1
        axis = normalize_axis(op, axis, rank)
        return TensorType(fields[0].element_type, shapes[0][:axis] + [len(fields)] + shapes[0][axis:])


@irdl_op_definition
class SplitOp(InjectiveOp):
    """Relay's split: sections (an int) or split indices (a list); a tuple result."""

    name = "graph.split"
    DEFAULTS: ClassVar[dict[str, object]] = {"indices_or_sections": None, "axis": 0}
    data = operand_def(TensorType)
    indices_or_sections = _attr()
    axis = _attr()
    result = result_def(TupleType)

    @staticmethod
    def bounds(op: str, xs: list[int], a: dict) -> tuple[int, list[tuple[int, int]]]:
        axis = normalize_axis(op, _int(op, a, "axis"), len(xs))
        ios = a["indices_or_sections"]
        n = xs[axis]
        if isinstance(ios, int) and not isinstance(ios, bool):
            if ios < 1 or n % ios:
                raise ShapeError(f"{op}: {n} elements on axis {axis} cannot be split into {ios} equal sections")
            step = n // ios
            cuts = [k * step for k in range(1, ios)]
        elif isinstance(ios, list) and all(isinstance(v, int) for v in ios):
            cuts = ios
            if any(b < a_ for a_, b in zip(cuts, cuts[1:])) or any(c < 0 or c > n for c in cuts):
                raise ShapeError(f"{op}: split indices {ios} must be increasing and within 0..{n}")
        else:
            raise ShapeError(f"{op}: indices_or_sections must be an integer or a list of integers, got {ios!r}")
        edges = [0, *cuts, n]
        return axis, list(zip(edges[:-1], edges[1:]))

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        xs = shape_of(x)
        axis, parts = cls.bounds(op, xs, a)
        return tuple_type([TensorType(x.element_type, xs[:axis] + [e - b] + xs[axis + 1 :]) for b, e in parts])


def slice_bounds(op: str, xs: list[int], a: dict) -> list[tuple[int, int, int]]:
    """Relay strided_slice → (begin, stride, length) per axis, numpy semantics."""
    rank = len(xs)
    begin = _ints(op, a, "begin") or []
    end = _ints(op, a, "end") or []
    strides = _ints(op, a, "strides", allow_none=True) or [1]
    axes = _ints(op, a, "axes", allow_none=True)
    mode = _str(op, a, "slice_mode", ("end", "size"))
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
    DEFAULTS: ClassVar[dict[str, object]] = {
        "begin": None,
        "end": None,
        "strides": None,
        "axes": None,
        "slice_mode": "end",
    }
    data = operand_def(TensorType)
    begin = _attr()
    end = _attr()
    strides = _attr()
    axes = _attr()
    slice_mode = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        if a["begin"] is None or a["end"] is None:
            raise ShapeError(f"{op}: attributes 'begin' and 'end' are required")
        return TensorType(x.element_type, [n for _, _, n in slice_bounds(op, shape_of(x), a)])


def _int_tensor(op: str, t: TensorType, what: str) -> None:
    if not isinstance(t.element_type, IntegerType) or t.element_type == i1:
        raise ShapeError(f"{op}: {what} must be an integer tensor, got {type_str(t)}")


@irdl_op_definition
class TakeOp(InjectiveOp):
    """numpy.take; mode clip (default), wrap or fast (indices assumed in range)."""

    name = "graph.take"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": None, "batch_dims": 0, "mode": "clip"}
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    axis = _attr()
    batch_dims = _attr()
    mode = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        idx = _tensor(op, types[1], "indices")
        _int_tensor(op, idx, "indices")
        _str(op, a, "mode", ("clip", "wrap", "fast"))
        if _int(op, a, "batch_dims") != 0:
            raise ShapeError(f"{op}: batch_dims other than 0 is not supported")
        xs, ids = shape_of(x), shape_of(idx)
        axis = None if a["axis"] is None else normalize_axis(op, _int(op, a, "axis"), len(xs))
        _nothing_to_select(op, math.prod(xs) if axis is None else xs[axis], math.prod(ids), "take from")
        if axis is None:
            return TensorType(x.element_type, ids)
        return TensorType(x.element_type, xs[:axis] + ids + xs[axis + 1 :])


@irdl_op_definition
class GatherOp(InjectiveOp):
    """out[..i..] = data[..indices[..i..] on axis..] (ONNX GatherElements)."""

    name = "graph.gather"
    DEFAULTS: ClassVar[dict[str, object]] = {"axis": 0}
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    axis = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        idx = _tensor(op, types[1], "indices")
        _int_tensor(op, idx, "indices")
        xs, ids = shape_of(x), shape_of(idx)
        axis = normalize_axis(op, _int(op, a, "axis"), len(xs))
        if len(ids) != len(xs) or any(i > d for k, (i, d) in enumerate(zip(ids, xs)) if k != axis):
            raise ShapeError(
                f"{op}: indices {type_str(idx)} must have the rank of data {type_str(x)} "
                f"and no larger dimensions outside axis {axis}"
            )
        _nothing_to_select(op, xs[axis], math.prod(ids), "gather from")
        return TensorType(x.element_type, ids)


@irdl_op_definition
class TileOp(InjectiveOp):
    name = "graph.tile"
    DEFAULTS: ClassVar[dict[str, object]] = {"reps": None}
    data = operand_def(TensorType)
    reps = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        reps = _ints(op, a, "reps") or []
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
    DEFAULTS: ClassVar[dict[str, object]] = {"shape": None}
    data = operand_def(TensorType)
    shape = _attr()
    result = result_def(TensorType)

    @classmethod
    def infer(cls, op, types, a):
        x = _tensor(op, types[0], "data")
        shape = _ints(op, a, "shape") or []
        out = broadcast_shapes(op, x, TensorType(x.element_type, shape))
        if out != shape:
            raise ShapeError(f"{op}: {type_str(x)} cannot be broadcast to {shape}")
        return TensorType(x.element_type, shape)


class FillOp(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.ELEMWISE
    DEFAULTS: ClassVar[dict[str, object]] = {"shape": None, "dtype": "float32"}
    shape = _attr()
    dtype = _attr()
    result = result_def(TensorType)
    traits = graph_traits()
    assembly_format = "attr-dict `:` type($result)"

    @classmethod
    def infer(cls, op, types, a):
        shape = _ints(op, a, "shape") or []
        if any(d < 0 for d in shape):
            raise ShapeError(f"{op}: shape {shape} has negative dimensions")
        return TensorType(_dtype(op, a, "dtype"), shape)


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
        v = _tensor(op, types[0], "fill_value")
        if shape_of(v):
            raise ShapeError(f"{op}: fill_value must be a scalar (rank 0), got {type_str(v)}")
        return super().infer(op, types, a)


@irdl_op_definition
class ZerosLikeOp(UnaryOp):
    name = "graph.zeros_like"


@irdl_op_definition
class OnesLikeOp(UnaryOp):
    name = "graph.ones_like"


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
        x = _tensor(op, types[0], "data")
        v = _tensor(op, types[1], "fill_value")
        if shape_of(v):
            raise ShapeError(f"{op}: fill_value must be a scalar (rank 0), got {type_str(v)}")
        return x


# -- tuples ---------------------------------------------------------------------------


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
    index = prop_def(IntegerAttr)
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


GRAPH_OPS: list[type[GraphOp]] = [
    ConstantOp,
    # elementwise
    ReluOp,
    LeakyReluOp,
    NegativeOp,
    AbsOp,
    ExpOp,
    LogOp,
    SqrtOp,
    RsqrtOp,
    TanhOp,
    SigmoidOp,
    ErfOp,
    FloorOp,
    CeilOp,
    RoundOp,
    LogicalNotOp,
    ClipOp,
    CastOp,
    DropoutOp,
    AddOp,
    SubtractOp,
    MultiplyOp,
    DivideOp,
    PowerOp,
    MaximumOp,
    MinimumOp,
    EqualOp,
    NotEqualOp,
    LessOp,
    LessEqualOp,
    GreaterOp,
    GreaterEqualOp,
    LogicalAndOp,
    LogicalOrOp,
    WhereOp,
    # nn
    DenseOp,
    DensePackOp,
    MatmulOp,
    BatchMatmulOp,
    BatchMatmulPackOp,
    Conv2dOp,
    Conv2dTransposeOp,
    BiasAddOp,
    PReluOp,
    SoftmaxOp,
    LogSoftmaxOp,
    LayerNormOp,
    BatchNormOp,
    LRNOp,
    MaxPool2dOp,
    AvgPool2dOp,
    GlobalAvgPool2dOp,
    GlobalMaxPool2dOp,
    AdaptiveAvgPool2dOp,
    PadOp,
    BatchFlattenOp,
    Resize2dOp,
    # reductions
    SumOp,
    MeanOp,
    MaxOp,
    MinOp,
    ProdOp,
    ArgmaxOp,
    ArgminOp,
    VarianceOp,
    # shape
    ReshapeOp,
    TransposeOp,
    SqueezeOp,
    ExpandDimsOp,
    ConcatenateOp,
    StackOp,
    SplitOp,
    StridedSliceOp,
    TakeOp,
    GatherOp,
    TileOp,
    BroadcastToOp,
    ZerosOp,
    OnesOp,
    FullOp,
    ZerosLikeOp,
    OnesLikeOp,
    FullLikeOp,
    # tuples
    TupleOp,
    TupleGetItemOp,
]

OPS_BY_RELAY_NAME: dict[str, type[GraphOp]] = {op.relay_name(): op for op in GRAPH_OPS}


def make_op(relay_name: str, operands: Sequence, **attrs) -> GraphOp:
    """Build a graph op from its Relay name and Python attribute values (None = default)."""
    cls = OPS_BY_RELAY_NAME.get(relay_name)
    if cls is None:
        raise ShapeError(f"unknown operator '{relay_name}'")
    known = cls.get_irdl_definition().properties
    props = {}
    for k, v in attrs.items():
        if k not in known:
            raise ShapeError(f"{relay_name} has no attribute '{k}' (its attributes: {', '.join(known) or 'none'})")
        if v is not None:
            props[k] = to_attr(v)
    return cls.create_inferred(operands, props)


Graph = Dialect("graph", GRAPH_OPS, [])
