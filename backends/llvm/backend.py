"""The LLVM CPU backend on the Backend interface: x86, ARM, any triple LLVM knows."""

from __future__ import annotations

import llvmlite.binding as llvm
from xdsl.dialects.builtin import ModuleOp

from lathe.backends.interface import (
    Backend,
    Capabilities,
    Emulator,
    KernelLibrary,
    RunProgram,
    Target,
    host_cache_bytes,
)
from lathe.backends.llvm.target import LLVMTarget, parse_target

# every te schedule primitive but bind (a GPU thread binding has no CPU meaning)
CPU_PRIMITIVES = frozenset(
    {
        "split",
        "tile",
        "fuse",
        "reorder",
        "vectorize",
        "parallel",
        "unroll",
        "pragma",
        "compute_inline",
        "compute_at",
        "compute_root",
        "cache_write",
        "cache_read",
        "rfactor",
        "storage_align",
        "prefetch",
    }
)


def llvm_target(target: Target) -> LLVMTarget:
    return LLVMTarget(target.triple, target.cpu, target.features, target.opt_level)


class LLVMBackend(Backend):
    name = "llvm"
    target_kinds = ("llvm",)
    description = "CPUs through LLVM (llvmlite): JIT on this machine, object files for any triple"
    source_suffix = ".ll"
    binary_suffix = ".o"
    deploys = True

    @property
    def version(self) -> str:  # type: ignore[override]
        return "LLVM " + ".".join(map(str, llvm.llvm_version_info))

    def parse_target(self, kind: str, options: dict[str, str]) -> Target:
        t = parse_target(" ".join([kind] + [f"{k}={v}" for k, v in options.items()]))
        return Target(
            "llvm",
            triple=t.triple,
            cpu=t.cpu,
            features=t.features,
            vector_bits=t.vector_bits,
            opt_level=t.opt_level,
            cache_bytes=host_cache_bytes() if t.is_host else (),
        )

    def graph_pass_options(self, target: Target) -> dict[str, dict[str, object]]:
        """The base options, and the L2 the CPU templates block for where the target's caches
        are known (the host's; a cross target keeps the templates' fallback)."""
        options = super().graph_pass_options(target)
        if len(target.cache_bytes) > 1:  # L1d, L2, ...
            options["apply-default-schedule"]["l2_bytes"] = target.cache_bytes[1]
        return options

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities(schedule_primitives=CPU_PRIMITIVES, runs_here=llvm_target(target).is_host)

    def status(self) -> str:
        return f"ready (host {llvm.get_process_triple()}, cpu {llvm.get_host_cpu_name()})"

    def render(self, module: ModuleOp, target: Target) -> str:
        from lathe.backends.llvm.codegen import module_to_llvm_ir

        return module_to_llvm_ir(module, vector_bits=target.vector_bits, runtime_for=target.triple)

    def optimized_source(self, source: str, target: Target) -> str:
        from lathe.backends.llvm.jit import optimized_ir

        return optimized_ir(source, llvm_target(target))

    def assembly(self, source: str, target: Target) -> str:
        from lathe.backends.llvm.jit import emit_assembly

        return emit_assembly(source, llvm_target(target))

    def compile_source(self, source: str, target: Target) -> bytes:
        from lathe.backends.llvm.jit import emit_object

        return emit_object(source, llvm_target(target))

    def load(self, module: ModuleOp, target: Target) -> KernelLibrary:
        from lathe.backends.llvm.kernel_cache import CompiledKernels

        return CompiledKernels(module, llvm_target(target))

    def library(self, module: ModuleOp, target: Target, program: RunProgram) -> dict[str, bytes]:
        from lathe.backends.llvm.artifact import build

        return build(module, program, llvm_target(target), target.vector_bits)

    def emulator(self, target: Target) -> Emulator:
        from lathe.backends.llvm.emulation import QemuEmulator

        return QemuEmulator(target.triple)
