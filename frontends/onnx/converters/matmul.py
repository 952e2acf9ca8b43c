"""Matrix products: Gemm and numpy-style MatMul."""

from __future__ import annotations

import math

import numpy as np
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError
from lathe.frontends.onnx.converters.common import dynamic_prod, reshape
from lathe.frontends.onnx.importer import Node, value_shape
from lathe.frontends.onnx.registry import converts


@converts("Gemm", makes=(graph.DenseOp, graph.MatmulOp))
def _gemm(n: Node):
    """alpha · op(A) · op(B) + beta · C: nn.dense for A · Bᵀ (PyTorch's Linear), nn.matmul otherwise."""
    a, b = n.x(0), n.x(1)
    trans_a, trans_b = bool(n.attr("transA", 0)), bool(n.attr("transB", 0))
    if trans_b and not trans_a:
        y = n.emit(graph.DenseOp, a, b)
    else:
        y = n.emit(graph.MatmulOp, a, b, transpose_a=trans_a, transpose_b=trans_b)
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    if alpha != 1.0:
        y = n.emit("multiply", y, n.scalar(alpha, y))
    if n.has(2) and beta != 0.0:
        c = n.x(2)
        if beta != 1.0:
            c = n.emit("multiply", c, n.scalar(beta, c))
        y = n.emit("add", y, c)
    return y


@converts("MatMul", makes=(graph.MatmulOp, graph.BatchMatmulOp))
def _matmul(n: Node):
    """numpy matmul: 1-D operands are promoted and the added axis removed again; batch axes broadcast."""
    a, b = n.x(0), n.x(1)
    sa, sb = value_shape(a), value_shape(b)
    if not sa or not sb:
        raise LatheError(f"{n.where}: MatMul operands must have rank >= 1, got {sa} and {sb}")
    if len(sa) == 1:
        a = reshape(n, a, [1, sa[0]])
    if len(sb) == 1:
        b = reshape(n, b, [sb[0], 1])
    y = _batched_matmul(n, a, b)
    out = value_shape(y)
    if len(sa) == 1:
        out = out[:-2] + out[-1:]
    if len(sb) == 1:
        out = out[:-1]
    return reshape(n, y, out)


def _batched_matmul(n: Node, a: SSAValue, b: SSAValue) -> SSAValue:
    sa, sb = value_shape(a), value_shape(b)
    (m, k), (k2, cols) = sa[-2:], sb[-2:]
    if k != k2:
        raise LatheError(f"{n.where}: shape mismatch: MatMul of {sa} and {sb} (inner dimensions {k} and {k2})")
    if len(sa) == 2 and len(sb) == 2:
        return n.emit(graph.MatmulOp, a, b)
    if len(sb) == 2:  # (..., m, k) · (k, n): one matrix product over all the rows
        rows = dynamic_prod(sa[:-1])
        y = n.emit(graph.MatmulOp, reshape(n, a, [rows, k]), b)
        return reshape(n, y, sa[:-1] + [cols])
    try:
        batch = list(np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2])))
    except ValueError:
        raise LatheError(
            f"{n.where}: shape mismatch: MatMul batch dimensions {sa[:-2]} and {sb[:-2]} do not broadcast"
        ) from None
    nb = math.prod(batch)

    def flat(x, s, rows_cols):
        lead = math.prod(s[:-2])
        if lead != 1 and s[:-2] != batch:
            x = n.emit("broadcast_to", x, shape=batch + rows_cols)
            lead = nb
        return reshape(n, x, [lead, *rows_cols])

    y = n.emit(graph.BatchMatmulOp, flat(a, sa, [m, k]), flat(b, sb, [k, cols]), transpose_b=False)
    return reshape(n, y, batch + [m, cols])
