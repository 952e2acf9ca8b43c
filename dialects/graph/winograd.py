"""Winograd convolution: the transforms a 3x3 stride-1 convolution becomes (passes/winograd.py).

F(m x m, 3 x 3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015)
computes an m x m tile of outputs from an (m + 2) x (m + 2) tile of inputs d as
Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A: the elementwise product over all input channels is a batch of
(m + 2)² matrix products [tiles, C] x [C, K], (m + 2)² / (m² · 9) the multiplies of the direct
convolution (F(2, 3): 1 / 2.25, F(4, 3): 1 / 4). The weight's transform G g Gᵀ is an op too,
which fold-constant evaluates for a constant weight.

The matrices are Toom-Cook's for the points 0, ±1, ∞ (F(2, 3), the paper's) and 0, ±1, 1/2,
-2, ∞ (F(4, 3), see below), one table per tile size m, read by the shape inference, the numpy
reference and the te computes.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def

from lathe.dialects.graph.core import INT, INTS, GraphOp, OpPattern, ShapeError, graph_traits, shape_of, type_str
from lathe.dialects.graph.shapes import expect_float, expect_tensor, pad4, pair

# m -> (Bᵀ, G, Aᵀ): Bᵀ is (m+2) x (m+2), G is (m+2) x 3, Aᵀ is m x (m+2)
WINOGRAD_MATRICES: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    2: (
        np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
    ),
    # F(4, 3) on the points 0, ±1, 1/2, -2, ∞ (Barabasz et al., "Error analysis and improving
    # the accuracy of Winograd convolution for deep neural networks", 2020), not the paper's
    # 0, ±1, ±2: float32 error 2.4-3.0e-6 of the largest output where ±2 gave 7.1-7.6e-6 (64
    # channels, normal data, weights ~0.05; 4 more nonzeros in Bᵀ, 26 for 22)
    4: (
        np.array(
            [
                [1, -1.5, -2, 1.5, 1, 0],
                [0, -1, 0.5, 2.5, 1, 0],
                [0, 1, -2.5, 0.5, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 0.5, -1, -0.5, 1, 0],
                [0, 1, -1.5, -2, 1.5, 1],
            ],
            dtype=np.float64,
        ),
        np.array(
            [
                [1, 0, 0],
                [1 / 3, 1 / 3, 1 / 3],
                [-1 / 3, 1 / 3, -1 / 3],
                [-16 / 15, -8 / 15, -4 / 15],
                [1 / 15, -2 / 15, 4 / 15],
                [0, 0, 1],
            ],
            dtype=np.float64,
        ),
        np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 0.5, -2, 0], [0, 1, 1, 0.25, 4, 0], [0, 1, -1, 0.125, -8, 1]],
            dtype=np.float64,
        ),
    ),
}
WINOGRAD_KERNEL = 3  # the filter size these matrices are for


def winograd_matrices(op: str, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if m not in WINOGRAD_MATRICES:
        raise ShapeError(f"{op}: tile_size must be one of {sorted(WINOGRAD_MATRICES)}, got {m}")
    return WINOGRAD_MATRICES[m]


def winograd_tiles(out_h: int, out_w: int, m: int) -> tuple[int, int]:
    """Tiles of m x m outputs along each axis (the last ones cropped where m does not divide)."""
    return -(-out_h // m), -(-out_w // m)


@irdl_op_definition
class WinogradWeightTransformOp(GraphOp):
    """U[ξ(m+2) + ν, c, k] = (G w[:, :, c, k] Gᵀ)[ξ, ν] for an HWIO 3x3 weight (TVM's
    nn.contrib_conv2d_winograd_weight_transform, in the layout the products read): one op, so
    that fold-constant evaluates a constant weight's transform in one step."""

    name = "graph.nn.contrib_winograd_weight_transform"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    weight = operand_def(TensorType)
    tile_size = INT.prop(4)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        w = expect_tensor(op, types[0], "weight")
        expect_float(op, w, "weight")
        m = a["tile_size"]
        winograd_matrices(op, m)
        ws = shape_of(w)
        if len(ws) != 4 or ws[:2] != [WINOGRAD_KERNEL, WINOGRAD_KERNEL]:
            raise ShapeError(f"{op}: expects a 3x3 HWIO weight [3, 3, C, K], got {type_str(w)}")
        return TensorType(w.element_type, [(m + 2) ** 2, ws[2], ws[3]])


@irdl_op_definition
class WinogradInputTransformOp(GraphOp):
    """V[ξ(m+2) + ν, p, c] = (Bᵀ d B)[ξ, ν] for the input tile d of tile p (n, row, column of
    tiles, in that order) of NHWC data: (m + 2)² pixels starting at (row·m - top, col·m - left),
    zero outside the data (the convolution's padding, applied as the tile is read)."""

    name = "graph.nn.contrib_winograd_input_transform"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE  # reads each pixel (m+2)²/m² times: fusing a producer recomputes it
    data = operand_def(TensorType)
    tile_size = INT.prop(4)
    padding = INTS.prop([0, 0, 0, 0])
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, a: dict) -> dict:
        m = a["tile_size"]
        winograd_matrices(op, m)
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects NHWC data of rank 4, got {type_str(x)}")
        n, h, w, c = xs
        pt, pl, pb, pr = pad4(op, a)
        if min(pt, pl, pb, pr) < 0:
            raise ShapeError(f"{op}: padding must be >= 0, got {[pt, pl, pb, pr]}")
        oh, ow = h + pt + pb - WINOGRAD_KERNEL + 1, w + pl + pr - WINOGRAD_KERNEL + 1
        if oh < 1 or ow < 1:
            raise ShapeError(f"{op}: data {type_str(x)} padded by {[pt, pl, pb, pr]} is smaller than a 3x3 kernel")
        th, tw = winograd_tiles(oh, ow, m)
        return dict(m=m, n=n, h=h, w=w, c=c, pt=pt, pl=pl, oh=oh, ow=ow, th=th, tw=tw)

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        expect_float(op, x)
        g = cls.geometry(op, x, a)
        return TensorType(x.element_type, [(g["m"] + 2) ** 2, g["n"] * g["th"] * g["tw"], g["c"]])


@irdl_op_definition
class WinogradOutputTransformOp(GraphOp):
    """y[n, row·m + i, col·m + j, k] = (Aᵀ M[:, p, k] A)[i, j] for tile p = (n, row, col) of the
    products M [(m + 2)², tiles, K], cropped to `output_size` (NHWC). Its epilogue (bias, an
    activation, a residual add) fuses into it as into a convolution."""

    name = "graph.nn.contrib_winograd_output_transform"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    tile_size = INT.prop(4)
    output_size = INTS.prop()
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, a: dict) -> dict:
        m = a["tile_size"]
        winograd_matrices(op, m)
        if a["output_size"] is None:
            raise ShapeError(f"{op}: needs output_size = [height, width]")
        oh, ow = pair(op, a, "output_size")
        xs = shape_of(x)
        th, tw = winograd_tiles(oh, ow, m) if min(oh, ow) > 0 else (0, 0)
        if len(xs) != 3 or xs[0] != (m + 2) ** 2 or min(oh, ow) < 1 or xs[1] % (th * tw):
            raise ShapeError(
                f"{op}: expects [{(m + 2) ** 2}, batch x tiles, channels] products for tile_size {m} and "
                f"output_size {[oh, ow]} ({th}x{tw} tiles an image), got {type_str(x)}"
            )
        return dict(m=m, n=xs[1] // (th * tw), oh=oh, ow=ow, th=th, tw=tw, k=xs[2])

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        expect_float(op, x)
        g = cls.geometry(op, x, a)
        return TensorType(x.element_type, [g["n"], g["oh"], g["ow"], g["k"]])


__all__ = [
    "WINOGRAD_KERNEL",
    "WINOGRAD_MATRICES",
    "WinogradInputTransformOp",
    "WinogradOutputTransformOp",
    "WinogradWeightTransformOp",
    "winograd_matrices",
    "winograd_tiles",
]
