"""Compile LLVM IR text with llvmlite: optimise, JIT, or emit an object file."""

from __future__ import annotations

import llvmlite.binding as llvm

from lathe.backends.llvm.target import LLVMTarget
from lathe.errors import LatheError


def optimize(module: llvm.ModuleRef, tm, level: int = 3) -> None:
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = level >= 2
    pto.slp_vectorization = level >= 2
    pto.loop_unrolling = level >= 2
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(module, pb)


def parse_ir(text: str) -> llvm.ModuleRef:
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as e:  # a backend bug, not a user error, but say where
        raise LatheError(f"LLVM rejected the generated IR: {e}") from None
    return mod


def compile_ir(text: str, target: LLVMTarget, jit: bool = False):
    """Parse, retarget and optimise; returns (target machine, module)."""
    tm = target.machine(jit=jit)
    mod = parse_ir(text)
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    optimize(mod, tm, target.opt_level)
    return tm, mod


def optimized_ir(text: str, target: LLVMTarget) -> str:
    return str(compile_ir(text, target)[1])


def emit_object(text: str, target: LLVMTarget, jit: bool = False) -> bytes:
    """An object file; with `jit`, one for this process's JIT to load (non-PIC, as MCJIT wants)."""
    tm, mod = compile_ir(text, target, jit=jit)
    return tm.emit_object(mod)


def emit_assembly(text: str, target: LLVMTarget) -> str:
    tm, mod = compile_ir(text, target)
    return tm.emit_assembly(mod)
