"""The graph dialect's core: what every graph op is and how its attributes are typed.

Each op is a small declarative xDSL class (in this package's family modules). What makes it a
*graph* op:
  * `PATTERN`    — its fusion category, TVM's OpPattern, read by fusion passes;
  * properties   — its Relay attributes, each typed by an `AttrKind` (INT, BOOL, NUMBER,
    STRING, INTS, ...) with its default, so xDSL's verifier and MLIR parser check the kind;
  * `infer_type` — shape and dtype inference from operand types and attributes,
    used by the verifier (so a hand-edited .mlir file is checked) and by the
    Relay text parser (so results never need to be annotated).
The Relay spelling of an op is its name without the `graph.` prefix
(`graph.nn.dense` is `nn.dense`). `attrs()` reads the properties as Python values with the
defaults filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    I64,
    ArrayAttr,
    BoolAttr,
    BytesAttr,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    IntegerType,
    NoneAttr,
    StringAttr,
    TensorType,
    TupleType,
    f32,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute
from xdsl.irdl import (
    AttrConstraint,
    IRDLOperation,
    ParsePropInAttrDict,
    base,
    irdl_to_attr_constraint,
    opt_prop_def,
    prop_def,
    traits_def,
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
    """Relay spelling of a type, for messages: Tensor[(?, 784), float32], fn (T) -> R."""
    if isinstance(t, TensorType):
        dims = "(" + ", ".join("?" if d == DYNAMIC_INDEX else str(d) for d in t.get_shape()) + ")"
        return f"Tensor[{dims}, {dtype_name(t.element_type)}]"
    if isinstance(t, TupleType):
        fields = [type_str(x) for x in t.types.data]
        return "(" + ", ".join(fields) + ("," if len(fields) == 1 else "") + ")"  # (T) would be T itself
    if isinstance(t, FunctionType):
        params = ", ".join(type_str(x) for x in t.inputs.data)
        return f"fn ({params}) -> {type_str(t.outputs.data[0])}" if len(t.outputs.data) == 1 else str(t)
    return str(t)


def is_dynamic(t: Attribute) -> bool:
    """Whether a type has a `?` dimension (MLIR's dynamic size) anywhere in it."""
    if isinstance(t, TensorType):
        return DYNAMIC_INDEX in t.get_shape()
    if isinstance(t, TupleType):
        return any(map(is_dynamic, t.types.data))
    if isinstance(t, FunctionType):
        return any(map(is_dynamic, (*t.inputs.data, *t.outputs.data)))
    return False


# Type inference with `?` dimensions runs each op's static inference twice, with every `?` read
# as one of these sizes, and a result dimension that differs between the two is `?` too: it is
# exactly the dimensions that depend on the unknown sizes. Both are highly divisible, so a
# reshape to -1 or a stride of 2 divides them as it would a real size.
DYNAMIC_PROBES = (720720, 1441440)


def _probe(t: Attribute, size: int) -> Attribute:
    if isinstance(t, TensorType):
        return TensorType(t.element_type, [size if d == DYNAMIC_INDEX else d for d in t.get_shape()])
    if isinstance(t, TupleType):
        return tuple_type([_probe(x, size) for x in t.types.data])
    return t


def _merge_probes(a: Attribute, b: Attribute) -> Attribute:
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        return TensorType(
            a.element_type, [x if x == y else DYNAMIC_INDEX for x, y in zip(a.get_shape(), b.get_shape())]
        )
    if isinstance(a, TupleType) and isinstance(b, TupleType):
        return tuple_type([_merge_probes(x, y) for x, y in zip(a.types.data, b.types.data)])
    return a


def tuple_type(types: Sequence[Attribute]) -> TupleType:
    return TupleType(ArrayAttr(tuple(types)))


def expect_not_bool(op: str, t: Attribute) -> None:
    if isinstance(t, TensorType) and t.element_type == i1:
        raise ShapeError(f"{op}: expects a numeric tensor, got {type_str(t)}")


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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_list(v) -> list | None:
    """A list of integers, or a bare integer standing for a one-element list (as Relay's
    `pool_size=2`); None when `v` is neither."""
    if _is_int(v):
        return [v]
    if isinstance(v, list | tuple) and all(map(_is_int, v)):
        return list(v)
    return None


@dataclass(frozen=True, eq=False)
class AttrKind:
    """One kind of Relay attribute value: the xDSL constraint its property declares, how a
    Python value of this kind becomes the attribute (None when it is not of this kind), and
    what an error message calls it. A property's kind is what it *accepts*, so the MLIR parser
    and verifier check it and Python callers (`make_op`, the Relay parser) are told in Relay's
    words when a value is of the wrong kind."""

    what: str
    constraint: AttrConstraint
    make: Callable[[object], Attribute | None]

    def prop(self, default=None):
        """An optional property of this kind: absent means `default` (None: no value)."""
        return opt_prop_def(self.constraint, None if default is None else self.make(default))

    def required(self):
        return prop_def(self.constraint)


# Type inference reads flags by truth value and would take keepdims="no" as True: every
# attribute has one kind, checked before inference runs.
INT = AttrKind(
    "an integer", irdl_to_attr_constraint(IntegerAttr[I64]), lambda v: IntegerAttr(v, i64) if _is_int(v) else None
)
BOOL = AttrKind(
    "True or False",
    irdl_to_attr_constraint(BoolAttr),
    lambda v: IntegerAttr(int(v), i1) if isinstance(v, bool) else None,
)
NUMBER = AttrKind(
    "a number", irdl_to_attr_constraint(FloatAttr), lambda v: FloatAttr(float(v), f64) if _is_number(v) else None
)
# A BytesAttr is a string too: xDSL prints a non-ASCII StringAttr as bytes and parses it back so.
STRING = AttrKind(
    "a string", base(StringAttr) | base(BytesAttr), lambda v: StringAttr(v) if isinstance(v, str) else None
)
INTS = AttrKind(
    "a list of integers",
    irdl_to_attr_constraint(ArrayAttr[IntegerAttr[I64]]),
    lambda v: None if (xs := _int_list(v)) is None else ArrayAttr([IntegerAttr(x, i64) for x in xs]),
)
NUMBERS = AttrKind(
    "a list of numbers",
    irdl_to_attr_constraint(ArrayAttr[FloatAttr]),
    lambda v: (
        ArrayAttr([FloatAttr(float(x), f64) for x in v])
        if isinstance(v, list | tuple) and all(map(_is_number, v))
        else None
    ),
)
INT_LISTS = AttrKind(
    "a list of lists of integers",
    irdl_to_attr_constraint(ArrayAttr[ArrayAttr[IntegerAttr[I64]]]),
    lambda v: (
        ArrayAttr([INTS.make(x) for x in v])
        if isinstance(v, list | tuple) and all(isinstance(x, list | tuple) and _int_list(x) is not None for x in v)
        else None
    ),
)
# Loosely typed on purpose: Relay gives an integer and a list different meanings here (split's
# sections vs indices) or prints them differently (a reduction's `axis=1` vs `axis=[1]`).
INT_OR_INTS = AttrKind(
    "an integer or a list of integers",
    INT.constraint | INTS.constraint,
    lambda v: INT.make(v) if _is_int(v) else INTS.make(v),
)
ATTR_KINDS = (INT, BOOL, NUMBER, STRING, INTS, NUMBERS, INT_LISTS, INT_OR_INTS)


def kind_of(constraint: AttrConstraint) -> AttrKind | None:
    return next((k for k in ATTR_KINDS if k.constraint is constraint), None)


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


# Each op class's attribute defaults as Python values, read once from its property definitions.
_DEFAULTS: dict[type, dict[str, object]] = {}


class GraphOp(IRDLOperation):
    """Base of every graph op: verified by re-running its type inference."""

    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    # Arithmetic whose meaning on bool is ambiguous (True + True: numpy's `or`, LLVM's i1 `xor`):
    # the interpreter and compiled code disagreed, so such ops take no bool operands.
    NO_BOOL: ClassVar[bool] = False
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    @classmethod
    def relay_name(cls) -> str:
        return cls.name.removeprefix("graph.")

    @classmethod
    def defaults(cls) -> dict[str, object]:
        """Each Relay attribute's default as a Python value (None where it has none)."""
        found = _DEFAULTS.get(cls)
        if found is None:
            props = cls.get_irdl_definition().properties
            found = _DEFAULTS[cls] = {
                k: None if d.default_value is None else py(d.default_value)
                for k, d in props.items()
                if kind_of(d.constr) is not None
            }
        return found

    @classmethod
    def coerce(cls, name: str, value) -> Attribute:
        """A Python value as the attribute property `name` takes, or an error naming the kind
        it must be (the Relay parser and `make_op` build attributes through this)."""
        kind = kind_of(cls.get_irdl_definition().properties[name].constr)
        try:
            attr = None if kind is None else kind.make(value)
        except (VerifyException, ValueError, OverflowError) as e:  # an int beyond int64
            raise ShapeError(f"{cls.relay_name()}: attribute '{name}' cannot be {value!r}: {e}") from None
        if attr is None:
            what = kind.what if kind else "an attribute"
            raise ShapeError(f"{cls.relay_name()}: attribute '{name}' must be {what}, got {value!r}")
        return attr

    @classmethod
    def attrs_of(cls, props: dict[str, Attribute]) -> dict:
        """Python values of `props`, defaults filled in. Their kinds are not checked again here:
        `coerce` makes attributes of the right kind, and xDSL's parser and verifier check the
        property constraints of anything else before type inference reads them."""
        a = dict(cls.defaults())
        a.update({k: py(v) for k, v in props.items()})
        return a

    def attrs(self) -> dict:
        """This op's Relay attributes as Python values, defaults filled in."""
        return self.attrs_of(dict(self.properties))

    @classmethod
    def infer_type(cls, operand_types: Sequence[Attribute], props: dict[str, Attribute]) -> Attribute:
        if not any(map(is_dynamic, operand_types)):
            return cls._infer_static(operand_types, props)
        try:
            a, b = (cls._infer_static([_probe(t, size) for t in operand_types], props) for size in DYNAMIC_PROBES)
        except ShapeError as e:  # said in the types as written: the probe sizes are ours
            text = str(e)
            for size in DYNAMIC_PROBES:
                text = text.replace(str(size), "?")
            raise ShapeError(text) from None
        return _merge_probes(a, b)

    @classmethod
    def _infer_static(cls, operand_types: Sequence[Attribute], props: dict[str, Attribute]) -> Attribute:
        if cls.NO_BOOL:
            for t in operand_types:
                expect_not_bool(cls.relay_name(), t)
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
