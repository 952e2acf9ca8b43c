"""ONNX → graph dialect.

    module, params = from_onnx("model.onnx")
    cm = lathe.compile(module, params=params)
    y = cm.run(x)                       # the graph inputs, positionally, in ONNX order

`@main`'s parameters are the ONNX graph's inputs (in ONNX order), then the
initializers it uses as tensors, then the other constants it needs as tensors
(Relay text has no literal for a non-scalar constant, so those travel in
`params` too). Parameter names are ONNX names made Relay-safe by `sanitize`,
which `unsanitize` undoes; `params` is keyed by the sanitized names, which is
how `lathe run --params` binds them.

The package is the importer (`importer`: shapes and constants are resolved at
import time), the converter registry (`registry`: one converter per ONNX op
and opset range) and the converters, one module per op family
(`converters`). Facts about the ONNX operators follow the ONNX specification
and TVM's relay/frontend/onnx.py.
"""

from lathe.frontends.onnx import converters
from lathe.frontends.onnx.importer import FOLD_LIMIT, Node, from_onnx
from lathe.frontends.onnx.names import sanitize, unsanitize
from lathe.frontends.onnx.registry import (
    Conversion,
    NeedsConstant,
    Unsupported,
    conversions,
    converters_for,
    converts,
    supported_ops,
)

SUPPORTED_OPS: list[str] = supported_ops()

__all__ = [
    "FOLD_LIMIT",
    "SUPPORTED_OPS",
    "Conversion",
    "NeedsConstant",
    "Node",
    "Unsupported",
    "conversions",
    "converters",
    "converters_for",
    "converts",
    "from_onnx",
    "sanitize",
    "supported_ops",
    "unsanitize",
]
