"""Lathe's element types: one table that every layer reads.

The Relay parser and printer, the interpreter, fold-constant and the ONNX importer each
need some spelling of a dtype. (Backends map loop-level MLIR types, any width, themselves.) They drifted when each kept its own table
(the grammar lexed `1u8`, which the parser then crashed on), so each column lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import Float16Type, Float32Type, Float64Type, f16, f32, f64, i1, i8, i32, i64
from xdsl.ir import Attribute


@dataclass(frozen=True)
class DType:
    name: str  # Relay's spelling, and the key everywhere else
    mlir: Attribute  # the builtin element type
    numpy: np.dtype  # what the interpreter computes in and what arrays in and out hold
    storage: np.dtype  # the bytes of a dense constant (MLIR stores i1 as one byte per element)
    relay_suffix: str  # how the Relay printer marks a scalar literal of this dtype
    onnx: int  # TensorProto.DataType

    @property
    def is_float(self) -> bool:
        return self.numpy.kind == "f"

    def value_range(self) -> tuple[float, float] | tuple[int, int]:
        """The values one element can hold (bool: 0 or 1, though stored in a byte)."""
        if self.name == "bool":
            return 0, 1
        if self.is_float:
            info = np.finfo(self.numpy)
            return float(info.min), float(info.max)
        iinfo = np.iinfo(self.numpy)
        return int(iinfo.min), int(iinfo.max)


TABLE: tuple[DType, ...] = (
    DType("float32", f32, np.dtype("<f4"), np.dtype("<f4"), "f", 1),
    DType("float16", f16, np.dtype("<f2"), np.dtype("<f2"), "f16", 10),
    DType("float64", f64, np.dtype("<f8"), np.dtype("<f8"), "f64", 11),
    DType("int8", i8, np.dtype("i1"), np.dtype("i1"), "i8", 3),
    DType("int32", i32, np.dtype("<i4"), np.dtype("<i4"), "", 6),
    DType("int64", i64, np.dtype("<i8"), np.dtype("<i8"), "i64", 7),
    DType("bool", i1, np.dtype(np.bool_), np.dtype("i1"), "b", 9),
)

BY_NAME: dict[str, DType] = {d.name: d for d in TABLE}
BY_MLIR: dict[Attribute, DType] = {d.mlir: d for d in TABLE}
BY_NUMPY: dict[np.dtype, DType] = {d.numpy: d for d in TABLE}
BY_ONNX: dict[int, DType] = {d.onnx: d for d in TABLE}

DTYPES: dict[str, Attribute] = {d.name: d.mlir for d in TABLE}
DTYPE_NAMES: dict[Attribute, str] = {d.mlir: d.name for d in TABLE}


def dtype_name(t: Attribute) -> str:
    return DTYPE_NAMES.get(t, str(t))


def np_dtype(t: Attribute) -> np.dtype:
    """The numpy dtype of an element type (a LatheError-free KeyError for a type Lathe lacks,
    which the verifier has already refused)."""
    return BY_MLIR[t].numpy


def is_float(t: Attribute) -> bool:
    return isinstance(t, Float16Type | Float32Type | Float64Type)


def lowest(t: Attribute) -> float | int:
    """The least value of element type t: -inf for floats, False for bool."""
    if is_float(t):
        return float("-inf")
    lo, _ = BY_MLIR[t].value_range()
    return lo


def highest(t: Attribute) -> float | int:
    if is_float(t):
        return float("inf")
    _, hi = BY_MLIR[t].value_range()
    return hi


def reduction_identity(combiner: str, t: Attribute) -> float | int:
    """The value a reduction over nothing gives: what an accumulator starts from."""
    zero, one = (0.0, 1.0) if is_float(t) else (0, 1)
    return {"sum": zero, "prod": one, "max": lowest(t), "min": highest(t)}[combiner]
