"""Lathe: a deep-learning compiler in the MLIR style, on xDSL and LLVM.

import lathe
mod = lathe.load("examples/mlp.lathe")
cm = lathe.compile(mod, target="llvm", params=weights)
y = cm.run(x=x)
ref = lathe.interpret(mod, params=weights, x=x)
mod, params = lathe.from_onnx("model.onnx")     # ONNX import

The API is imported when first used (a module `__getattr__`), not with the package: a
deployed artifact's loader (`lathe.runtime.load`) needs numpy and the standard library
only, and importing it must not import the compiler (xDSL, Lark, llvmlite).
"""

from __future__ import annotations

import importlib
import importlib.util

from lathe.errors import LatheError

# name → the module that defines it
_API = {
    "CompiledModule": "lathe.api",
    "compile": "lathe.api",
    "emit_object": "lathe.api",
    "interpret": "lathe.api",
    "load": "lathe.api",
    "load_params": "lathe.api",
    "lower": "lathe.api",
    "tune": "lathe.api",
    "from_onnx": "lathe.frontends.onnx",
}

__all__ = ["LatheError", *sorted(_API)]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"lathe.{name}") is not None:
        value = importlib.import_module(f"lathe.{name}")  # `lathe.api`, `lathe.dialects`, as before
    else:
        raise AttributeError(f"module 'lathe' has no attribute '{name}'")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
