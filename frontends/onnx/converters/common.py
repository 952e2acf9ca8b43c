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
    if unknown > 1 or unknown and -1 in shape:
        shown = ", ".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape)
        raise n.unsupported(f"reshaping to ({shown}), with more than one dimension known only at run time,")
    return n.emit("reshape", x, newshape=[-1 if d == DYNAMIC_INDEX else d for d in shape])


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
