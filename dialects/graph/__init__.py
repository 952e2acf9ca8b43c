"""The graph dialect: Relay's operators on builtin tensor types, one module per op family.

`core.py` says what a graph op is (GraphOp, OpPattern, typed attribute kinds), `shapes.py` the
shape semantics the families share; every op is defined in its family module and registered
there by being defined: GRAPH_OPS collects each family's op classes in definition order.
Everything that callers read as `graph.X` is re-exported here.
"""
# ruff: noqa: F401  (this module re-exports the package's names)

from collections.abc import Sequence

from xdsl.ir import Dialect

from lathe.dialects.graph import algorithm, constant, elementwise, nn, reduce, transform, tuple, winograd
from lathe.dialects.graph.adt import (
    ADT_ATTRS,
    ADT_OPS,
    ADTDefOp,
    ADTType,
    ConstructOp,
    ConstructorAttr,
    ConstructorPattern,
    Declarations,
    MatchOp,
    TuplePattern,
    TypeVarType,
    VarPattern,
    WildcardPattern,
    is_adt,
)
from lathe.dialects.graph.algorithm import *  # noqa: F403
from lathe.dialects.graph.constant import *  # noqa: F403
from lathe.dialects.graph.control import (
    CONTROL_OPS,
    CallValueOp,
    ControlOp,
    DynOp,
    FnOp,
    IfOp,
    ShapeOfOp,
    WhileOp,
    YieldOp,
    join_types,
    refines,
)
from lathe.dialects.graph.core import (
    ATTR_KINDS,
    BOOL,
    CANONICALIZATION_PATTERNS,
    DTYPE_NAMES,
    DTYPES,
    INT,
    INT_LISTS,
    INT_OR_INTS,
    INTS,
    NUMBER,
    NUMBERS,
    STRING,
    AttrKind,
    GraphCanonicalization,
    GraphOp,
    OpPattern,
    ShapeError,
    dtype_name,
    graph_traits,
    is_dynamic,
    is_float,
    py,
    shape_of,
    tensor,
    to_attr,
    tuple_type,
    type_str,
)
from lathe.dialects.graph.elementwise import *  # noqa: F403
from lathe.dialects.graph.nn import *  # noqa: F403
from lathe.dialects.graph.reduce import *  # noqa: F403
from lathe.dialects.graph.shapes import (
    broadcast_shapes,
    normalize_axis,
    pad4,
    pair,
    pool_out,
    reduce_axes,
    same_dtype,
)
from lathe.dialects.graph.transform import *  # noqa: F403
from lathe.dialects.graph.tuple import *  # noqa: F403
from lathe.dialects.graph.winograd import *  # noqa: F403

FAMILIES = (constant, elementwise, nn, reduce, transform, algorithm, tuple, winograd)


def _ops_of(module) -> list[type[GraphOp]]:
    """The op classes a family module defines (a class with its own `name`), in order."""
    return [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, GraphOp) and v.__module__ == module.__name__ and "name" in vars(v)
    ]


GRAPH_OPS: list[type[GraphOp]] = [op for family in FAMILIES for op in _ops_of(family)]

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
            props[k] = cls.coerce(k, v)
    return cls.create_inferred(operands, props)


Graph = Dialect("graph", [*GRAPH_OPS, *CONTROL_OPS, *ADT_OPS], ADT_ATTRS)
