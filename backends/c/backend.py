"""The portable C backend: loop IR → C99 → the system C compiler → a shared library.

For any machine where LLVM's JIT is not wanted, and as the base of new
backends (the analogue of TVM's C codegen). `lathe compile --target c -o DIR`
writes kernels.c and kernels.h next to the library, so the kernels can be built
elsewhere: the source decides by the preprocessor what depends on the compiler.

Target: `c`, `c -mcpu=znver4` / `c -march=armv8.2-a` (passed to the compiler;
without either the code is for this machine, -march=native), `c -opt-level=2`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

import llvmlite.binding as llvm
from xdsl.dialects.builtin import ModuleOp

from lathe.backends.c.compiler import CCompiler, build, compiler_flags, find_compiler
from lathe.backends.c.compiler import load as load_library
from lathe.backends.c.emitter import CSource, emit_module, packed_symbol
from lathe.backends.interface import Backend, Capabilities, KernelLibrary, Target, parse_opt_level
from lathe.errors import LatheError

OPTIONS = {
    "-mcpu": "the CPU to compile for (-march= on x86, -mcpu= elsewhere)",
    "-march": "passed to the compiler as -march=",
    "-opt-level": "0..3, the compiler's -O",
}
_MARCH_ARCHES = ("x86_64", "i386", "i686")  # where compilers name a CPU with -march, not -mcpu


class CKernelLibrary(KernelLibrary):
    """The loaded shared library; each kernel's packed entry by name. Its parallel loops run
    on Lathe's thread pool where there is one (see `_thread_pool`), else on OpenMP."""

    def __init__(self, lib: ctypes.CDLL, kernels: Iterable[str], num_threads: int):
        self._lib = lib
        self._kernels = set(kernels)
        self._set_threads = lib.lathe_c_set_num_threads
        self._set_threads.argtypes = [ctypes.c_int]
        self._set_threads.restype = None
        self._pool = _thread_pool()
        if self._pool is not None:
            lib.lathe_c_set_parallel_for.argtypes = [ctypes.c_void_p]
            lib.lathe_c_set_parallel_for(ctypes.c_void_p(self._pool[1]))
        self.set_num_threads(num_threads)

    def address(self, name: str) -> int:
        if name not in self._kernels:
            raise LatheError(f"C backend: kernel @{name} is not in the compiled library")
        return ctypes.cast(getattr(self._lib, packed_symbol(name)), ctypes.c_void_p).value  # type: ignore[return-value]

    def set_num_threads(self, n: int) -> None:
        self._set_threads(n)
        if self._pool is not None:
            self._pool[0].set_num_threads(n)


def _thread_pool():
    """(the pool, the address of lathe_parallel_for): the LLVM backend's thread pool, which
    claims chunks dynamically and lets the caller work, so a core taken by another process
    does not stall a run as OpenMP's barrier does (a 2-thread conv2d ran 10x slower than on
    one thread under GOMP on a busy machine). None where it would run loops serially (no
    futex: not Linux) or LLVM cannot JIT it here; OpenMP serves then."""
    from lathe.backends.llvm import parallel_runtime as pr

    triple = llvm.get_process_triple()
    if pr.runtime_ir(triple) == pr.runtime_ir("unknown-unknown-none"):  # the serial stand-in
        return None
    try:
        pool = pr.parallel_runtime()
        return pool, llvm.address_of_symbol("lathe_parallel_for")
    except Exception:  # noqa: BLE001 - any JIT failure only means OpenMP runs the loops
        return None


class CBackend(Backend):
    name = "c"
    version = "1"
    target_kinds = ("c",)
    description = "portable C99 built by the system C compiler; standalone builds use OpenMP"
    source_suffix = ".c"
    binary_suffix = ".so"
    target_options = OPTIONS

    # -- targets ---------------------------------------------------------------
    def parse_target(self, kind: str, options: dict[str, str]) -> Target:
        self.check_target(kind, options)
        opt = parse_opt_level(options.get("-opt-level", "3"))
        host = "-mcpu" not in options and "-march" not in options
        features = llvm.get_host_cpu_features().flatten() if host else ""
        extra = tuple((k, options[k]) for k in ("-march",) if k in options)
        return Target(
            "c",
            triple=llvm.get_process_triple(),
            cpu=options.get("-mcpu", ""),
            features=features,
            vector_bits=_vector_bits(features),
            opt_level=opt,
            options=extra,
        )

    def capabilities(self, target: Target) -> Capabilities:
        """Every CPU schedule primitive: they shape the loop IR, which is all this backend reads."""
        from lathe.backends.llvm.backend import CPU_PRIMITIVES

        return Capabilities(schedule_primitives=CPU_PRIMITIVES)

    def status(self) -> str:
        try:
            return find_compiler().describe()
        except LatheError as e:
            return e.message

    # -- compilation -----------------------------------------------------------
    def emit(self, module: ModuleOp, target: Target) -> CSource:
        from lathe.backends.llvm.kernel_cache import kernel_key

        return emit_module(module, lambda f: kernel_key(f, target))  # type: ignore[arg-type]

    def render(self, module: ModuleOp, target: Target) -> str:
        return self.emit(module, target).text

    def flags(self, cc: CCompiler, target: Target) -> list[str]:
        return compiler_flags(cc, target.opt_level, _arch_flags(cc, target))

    def compile_source(self, source: str, target: Target) -> bytes:
        cc = find_compiler()
        return build(source, self.flags(cc, target), cc)

    def load(self, module: ModuleOp, target: Target) -> CKernelLibrary:
        from lathe.backends.interface import default_num_threads

        source = self.emit(self.lower(module, target), target)
        cc = find_compiler()
        lib = load_library(source.text, self.flags(cc, target), cc)
        return CKernelLibrary(lib, source.kernels, target.num_threads or default_num_threads())

    def artifact(self, module: ModuleOp, target: Target) -> dict[str, bytes]:
        """kernels.c and kernels.h (to build elsewhere: see the first line of kernels.c) and kernels.so."""
        source = self.emit(self.lower(module, target), target)
        return {
            "kernels.c": source.text.encode(),
            "kernels.h": source.header().encode(),
            "kernels.so": self.compile_source(source.text, target),
        }


def _vector_bits(features: str) -> int:
    """The widest float vector register the host's features allow (as the LLVM target reads them)."""
    from lathe.backends.llvm.target import LLVMTarget

    return LLVMTarget("", "", features).vector_bits


def _arch_flags(cc: CCompiler, target: Target) -> list[str]:
    march = target.option("-march")
    if march:
        return [f"-march={march}"]
    if target.cpu:
        return [f"-march={target.cpu}" if target.arch in _MARCH_ARCHES else f"-mcpu={target.cpu}"]
    return ["-march=native"] if cc.march_native else []
