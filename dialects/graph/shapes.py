"""Shape semantics shared by the graph op families, and the checks their type inference makes.

Attribute *kinds* are checked by the properties themselves (core.py); what is checked here is
what a kind cannot say: ranks, dtypes, ranges, list lengths and the choices a string has.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import IntegerType, TensorType, i1
from xdsl.ir import Attribute

from lathe.dialects.graph.core import DTYPES, ShapeError, is_float, type_str


def expect_tensor(op: str, t: Attribute, what: str) -> TensorType:
    if not isinstance(t, TensorType):
        raise ShapeError(f"{op}: {what} must be a tensor, got {type_str(t)}")
    return t


def expect_float(op: str, t: TensorType, what: str = "data") -> None:
    if not is_float(t.element_type):
        raise ShapeError(f"{op}: {what} must be a float tensor, got {type_str(t)}")


def expect_int_tensor(op: str, t: TensorType, what: str) -> None:
    if not isinstance(t.element_type, IntegerType) or t.element_type == i1:
        raise ShapeError(f"{op}: {what} must be an integer tensor, got {type_str(t)}")


def required(op: str, a: dict, *names: str) -> None:
    """Attributes without a default that the op cannot do without."""
    for name in names:
        if a[name] is None:
            raise ShapeError(f"{op}: attribute '{name}' is required")


def int_values(
    op: str, a: dict, name: str, n: int | Sequence[int] | None = None, allow_none: bool = False
) -> list[int] | None:
    """An integer-list attribute (a lone integer as a one-element list), `n` values long."""
    v = a[name]
    if v is None:
        if allow_none:
            return None
        required(op, a, name)
    if isinstance(v, int):
        v = [v]
    if n is not None:
        ns = [n] if isinstance(n, int) else list(n)
        if len(v) not in ns:
            raise ShapeError(f"{op}: attribute '{name}' must have {' or '.join(map(str, ns))} values, got {v!r}")
    return v


def string_choice(op: str, a: dict, name: str, choices: Sequence[str]) -> str:
    v = a[name]
    if v not in choices:
        raise ShapeError(f"{op}: attribute '{name}' must be one of {', '.join(map(repr, choices))}, got {v!r}")
    return v


def dtype_attr(op: str, a: dict, name: str) -> Attribute:
    v = a[name]
    if v not in DTYPES:
        raise ShapeError(f"{op}: unknown {name} '{v}', expected one of {', '.join(DTYPES)}")
    return DTYPES[v]


def accumulator_dtype(op: str, a: dict, dt: Attribute) -> Attribute:
    """The result dtype of an accumulating op (dense, matmul, conv): `out_dtype`, else the
    operands'. A bool accumulator has no agreed meaning (compiled i1 sums are xor)."""
    out = dtype_attr(op, a, "out_dtype") if a["out_dtype"] else dt
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
    p = int_values(op, a, name, (1, 2, 4))
    assert p is not None
    if len(p) == 1:
        return p * 4
    if len(p) == 2:
        return [p[0], p[1], p[0], p[1]]
    return p


def pair(op: str, a: dict, name: str) -> list[int]:
    v = int_values(op, a, name, (1, 2))
    assert v is not None
    return v * 2 if len(v) == 1 else v


def reduce_axes(op: str, a: dict, rank: int) -> list[int]:
    """Relay's axis/exclude: the sorted axes a reduction runs over."""
    axis = a["axis"]
    if axis is None:
        axes = list(range(rank))
    else:
        axes = int_values(op, a, "axis") or []
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


def nothing_to_select(op: str, extent: int, wanted: int, what: str) -> None:
    """An element picked from an empty axis (numpy raises; compiled code would read out of bounds)."""
    if extent == 0 and wanted > 0:
        raise ShapeError(f"{op}: cannot {what} an empty axis ({wanted} result elements, no elements to pick)")
