"""The converters, one module per family of ONNX ops; importing this package registers them all."""

from lathe.frontends.onnx.converters import (
    activations,
    constants,
    control,
    conv,
    elementwise,
    indexing,
    matmul,
    normalization,
    reduce,
    resize,
    rnn,
    shape,
)

__all__ = [
    "activations",
    "constants",
    "control",
    "conv",
    "elementwise",
    "indexing",
    "matmul",
    "normalization",
    "reduce",
    "resize",
    "rnn",
    "shape",
]
