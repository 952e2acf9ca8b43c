"""Helpers that converters of several families share."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import SSAValue

from lathe.frontends.onnx.importer import Node, dtype_of_array, value_dtype, value_shape


def reshape(n: Node, x: SSAValue, shape: Sequence[int]) -> SSAValue:
    """`x` reshaped to `shape`, where one dimension may be DYNAMIC_INDEX (a `?` carried over from
    the input, which the reshape infers as -1); two are more than a reshape can say."""
    if 0 in shape:  # Relay's newshape reads 0 as "copy this dimension"
        raise n.unsupported(f"reshaping to the empty shape {list(shape)}")
    if value_shape(x) == list(shape):
        return x
    unknown = list(shape).count(DYNAMIC_INDEX)
    if unknown > 1 and -1 not in shape:
        return _reshape_head(n, x, list(shape))
    if unknown > 1 or unknown and -1 in shape:
        shown = ", ".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape)
        raise n.unsupported(f"reshaping to ({shown}), with more than one dimension known only at run time,")
    return n.emit("reshape", x, newshape=[-1 if d == DYNAMIC_INDEX else d for d in shape])


def _reshape_head(n: Node, x: SSAValue, shape: list[int]) -> SSAValue:
    """A reshape of the static leading dimensions only, the trailing ones (every `?` among
    them) kept: Relay's newshape copies a dimension (0) at the same index, so the rank is first
    matched with expand_dims, or the extra leading axes made 1 and squeezed after."""
    xs = value_shape(x)
    tail = 0
    while tail < min(len(xs), len(shape)) and xs[-1 - tail] == shape[-1 - tail]:
        tail += 1
    head_x, head = xs[: len(xs) - tail], shape[: len(shape) - tail]
    if DYNAMIC_INDEX in head_x + head or math.prod(head_x) != math.prod(head):
        shown = ", ".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape)
        raise n.unsupported(f"reshaping to ({shown}), with more than one dimension known only at run time,")
    keep = [0] * tail
    if len(head) >= len(head_x):
        if len(head) > len(head_x):
            x = n.emit("expand_dims", x, axis=0, num_newaxis=len(head) - len(head_x))
        return n.emit("reshape", x, newshape=head + keep)
    extra = len(head_x) - len(head)
    y = n.emit("reshape", x, newshape=head + [1] * extra + keep)
    return n.emit("squeeze", y, axis=list(range(len(head), len(head) + extra)))


def dynamic_prod(dims: Sequence[int]) -> int:
    """The product of `dims`, DYNAMIC_INDEX when one of them is."""
    return DYNAMIC_INDEX if DYNAMIC_INDEX in dims else math.prod(dims)


def to_2d_spatial(n: Node, x: SSAValue) -> SSAValue:
    """(N, C, L) → (N, C, 1, L), so that 1-D convolutions and pools run as 2-D ones."""
    s = value_shape(x)
    return reshape(n, x, s[:2] + [1] + s[2:])


def input_dtype(n: Node, i: int) -> str:
    if n.known(i):
        return dtype_of_array(n.const(i, "input"), f"{n.where}: input {i}")
    return value_dtype(n.x(i))


def iota(n: Node, size: int, axis: int, rank: int, dtype) -> SSAValue:
    """0, 1, ..., size − 1 along `axis` of a rank-`rank` constant (1 elsewhere)."""
    shape = [1] * rank
    shape[axis] = size
    return n.constant(np.arange(size, dtype=dtype).reshape(shape), "iota")


def numpy_dtype(lathe_dtype: str) -> np.dtype:
    return np.dtype("bool" if lathe_dtype == "bool" else lathe_dtype)
