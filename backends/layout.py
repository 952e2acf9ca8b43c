"""How a static memref lies in memory, for every backend: row-major (numpy's C order), so a
buffer the runtime allocates with numpy is the one the generated code indexes."""

from __future__ import annotations


def row_major_strides(shape: list[int]) -> list[int]:
    """Elements between neighbours along each dimension: the last dimension is contiguous."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    return strides
