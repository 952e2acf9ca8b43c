"""Lathe: a deep-learning compiler in the MLIR style, on xDSL and LLVM.

import lathe
mod = lathe.load("examples/mlp.lathe")
cm = lathe.compile(mod, target="llvm", params=weights)
y = cm.run(x=x)
ref = lathe.interpret(mod, params=weights, x=x)
mod, params = lathe.from_onnx("model.onnx")     # ONNX import
"""

from lathe.api import CompiledModule, compile, emit_object, interpret, load, load_params, lower, tune
from lathe.errors import LatheError
from lathe.frontends.onnx import from_onnx

__all__ = [
    "CompiledModule",
    "LatheError",
    "compile",
    "emit_object",
    "from_onnx",
    "interpret",
    "load",
    "load_params",
    "lower",
    "tune",
]
