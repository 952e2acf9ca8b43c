"""Lathe: a deep-learning compiler in the MLIR style, on xDSL and LLVM.

    import lathe
    mod = lathe.load("examples/mlp.lathe")
    cm = lathe.compile(mod, target="llvm", params=weights)
    y = cm.run(x=x)
    ref = lathe.interpret(mod, params=weights, x=x)
"""

from lathe.api import CompiledModule, compile, emit_object, interpret, load, load_params, lower
from lathe.errors import LatheError

__all__ = ["CompiledModule", "LatheError", "compile", "emit_object", "interpret", "load", "load_params", "lower"]
