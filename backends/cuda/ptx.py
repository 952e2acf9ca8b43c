"""NVPTX LLVM IR → PTX through llvmlite's `nvptx64-nvidia-cuda` target.

Math functions are libdevice's (`__nv_expf`, ...): NVIDIA's bitcode library, linked into
the module when a kernel calls one, its functions made internal so that LLVM's O3
inlines what is called and drops the rest; NVPTX's own pipeline resolves libdevice's
`__nvvm_reflect` queries (no flush-to-zero: denormals as numpy has them).
"""

from __future__ import annotations

import functools
import os

import llvmlite.binding as llvm

from lathe.backends.cuda.codegen import TRIPLE
from lathe.backends.cuda.ptxas import INSTALL_NOTE, toolkit_dirs
from lathe.errors import LatheError

# The architectures Lathe generates PTX for and LLVM's NVPTX target knows; sm_80 PTX runs on
# every later GPU (the driver compiles it for the device).
ARCHES = ("sm_70", "sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_100", "sm_120")
DEFAULT_ARCH = "sm_80"


@functools.cache
def _init() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@functools.cache
def find_libdevice() -> str | None:
    for root in toolkit_dirs():
        path = os.path.join(root, "nvvm", "libdevice", "libdevice.10.bc")
        if os.path.isfile(path):
            return path
    return None


@functools.cache
def _libdevice_bitcode(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def machine(arch: str, opt_level: int = 3):
    _init()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(cpu=arch, opt=opt_level)


def _link_libdevice(module: llvm.ModuleRef) -> None:
    path = find_libdevice()
    if path is None:
        calls = sorted(f.name for f in module.functions if f.is_declaration and f.name.startswith("__nv_"))
        raise LatheError(
            f"the kernels call libdevice ({', '.join(calls)}), which was not found",
            note=INSTALL_NOTE,
        )
    lib = llvm.parse_bitcode(_libdevice_bitcode(path))
    lib.triple = module.triple
    lib.data_layout = module.data_layout
    module.link_in(lib)


def nvptx_module(ir: str, arch: str, opt_level: int = 3) -> llvm.ModuleRef:
    """Parse, link libdevice where needed, keep only the kernels visible, and optimise."""
    tm = machine(arch, opt_level)
    try:
        module = llvm.parse_assembly(ir)
        module.verify()
    except RuntimeError as e:  # a backend bug, not a user error, but say where
        raise LatheError(f"LLVM rejected the generated NVPTX IR: {e}") from None
    module.triple = TRIPLE
    module.data_layout = str(tm.target_data)
    # before libdevice comes in, what the codegen defined with external linkage is the kernels
    kernels = {f.name for f in module.functions if not f.is_declaration and f.linkage != llvm.Linkage.internal}
    if any(f.is_declaration and f.name.startswith("__nv_") for f in module.functions):
        _link_libdevice(module)
    for f in module.functions:
        if not f.is_declaration and f.name not in kernels:
            f.linkage = llvm.Linkage.internal
    for g in module.global_variables:
        if not g.is_declaration:
            g.linkage = llvm.Linkage.internal
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    pto.loop_vectorization = False  # NVPTX has no vector registers: explicit vectors are for wide loads
    pto.slp_vectorization = opt_level >= 2  # it pairs adjacent loads into ld.v2 / ld.v4
    pto.loop_unrolling = opt_level >= 2
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)
    return module


def optimized_ir(ir: str, arch: str, opt_level: int = 3) -> str:
    return str(nvptx_module(ir, arch, opt_level))


def to_ptx(ir: str, arch: str, opt_level: int = 3) -> str:
    """PTX text for `arch` from the codegen's NVPTX LLVM IR."""
    tm = machine(arch, opt_level)
    return tm.emit_assembly(nvptx_module(ir, arch, opt_level))
