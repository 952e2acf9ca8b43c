"""Compile each distinct kernel once, and keep its object code on disk.

A kernel's key is a hash of its loop-level IR (value names normalised, so the
twelve identical layers of a BERT share one key), the target and the code
generator's settings. Object files live in `~/.cache/lathe` (or
`$LATHE_CACHE_DIR`; `LATHE_CACHE=0` turns the cache off) and are loaded into
one MCJIT engine, so a model compiled before starts in the time it takes to
read its objects.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.printer import Printer

from lathe.backends.interface import KernelLibrary
from lathe.backends.llvm.codegen import module_to_llvm_ir
from lathe.backends.llvm.jit import emit_object
from lathe.backends.llvm.parallel_runtime import parallel_runtime
from lathe.backends.llvm.target import LLVMTarget
from lathe.dialects.functions import is_kernel


def _codegen_fingerprint() -> str:
    """The code generator's own source: a changed backend never reuses stale objects. Every
    module of the package counts, so one added later (as ops.py was) cannot be forgotten, and
    the backend interface too (the argument alignment the code assumes is defined there)."""
    h = hashlib.sha256(llvm.llvm_version_info.__repr__().encode())
    here = Path(__file__).parent
    for path in [*sorted(here.glob("*.py")), here.parent / "interface.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


CODEGEN_VERSION = _codegen_fingerprint()
_NAME = re.compile(r"%[A-Za-z_$.][\w$.-]*")


def cache_dir() -> Path | None:
    if os.environ.get("LATHE_CACHE", "1") == "0":
        return None
    d = os.environ.get("LATHE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lathe")
    return Path(d)


def kernel_key(f: func.FuncOp, target: LLVMTarget) -> str:
    import io

    buf = io.StringIO()
    Printer(stream=buf, print_generic_format=True).print_op(f)
    text = buf.getvalue().replace(f'sym_name = "{f.sym_name.data}"', 'sym_name = "kernel"', 1)
    names: dict[str, str] = {}
    text = _NAME.sub(lambda m: names.setdefault(m.group(0), f"%v{len(names)}"), text)
    ident = (
        f"{CODEGEN_VERSION}|{target.triple}|{target.cpu}|{target.features}|{target.opt_level}|"
        f"{target.vector_bits}|{text}"
    )
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


@dataclass
class CompileStats:
    kernels: int = 0
    distinct: int = 0
    from_cache: int = 0
    seconds: float = 0.0
    slowest: float = 0.0  # seconds of the slowest kernel to compile

    def __str__(self) -> str:
        return (
            f"{self.kernels} kernels, {self.distinct} distinct, {self.from_cache} from the cache, {self.seconds:.2f} s"
        )


class CompiledKernels(KernelLibrary):
    """The kernels of a loop-level module, JIT-loaded; `address(name)` of each packed entry."""

    def __init__(self, module: ModuleOp, target: LLVMTarget):
        if not target.is_host:
            from lathe.errors import LatheError

            raise LatheError(
                f"cannot JIT for {target}: it is not this machine's triple",
                note=f"lathe.compile(..., emulate=True) and lathe run --target '{target}' run it under emulation "
                "(qemu-user); lathe compile -o DIR builds an artifact for a machine of that triple",
            )
        target = target.runnable_here()
        t0 = time.perf_counter()
        self.pool = parallel_runtime()  # kernels call lathe_parallel_for: its symbol must exist before they load
        self.target = target
        self.tm = target.machine(jit=True)
        kernels = [f for f in module.ops if is_kernel(f)]
        self.keys = {f.sym_name.data: kernel_key(f, target) for f in kernels}  # type: ignore[union-attr]
        self.stats = CompileStats(kernels=len(kernels), distinct=len(set(self.keys.values())))
        empty = llvm.parse_assembly("")
        empty.triple = target.triple
        self.engine = llvm.create_mcjit_compiler(empty, self.tm)
        done: set[str] = set()
        directory = cache_dir()
        for f in kernels:
            key = self.keys[f.sym_name.data]  # type: ignore[union-attr]
            if key in done:
                continue
            done.add(key)
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(self._object(f, key, directory)))
        self.engine.finalize_object()
        self._entries = 0  # native entries made so far (each a function of its own name)
        self.stats.seconds = time.perf_counter() - t0

    def _object(self, f: func.FuncOp, key: str, directory: Path | None) -> bytes:
        path = directory / f"{key}.o" if directory else None
        if path is not None and path.exists():
            self.stats.from_cache += 1
            return path.read_bytes()
        t0 = time.perf_counter()
        renamed = f.clone()
        renamed.sym_name = StringAttr(f"lathe_{key}")
        ir = module_to_llvm_ir(ModuleOp([renamed]), vector_bits=self.target.vector_bits)
        data = emit_object(ir, self.target, jit=True)
        self.stats.slowest = max(self.stats.slowest, time.perf_counter() - t0)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".o.tmp")
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only or full cache directory only costs the next compile
        return data

    def address(self, name: str) -> int:
        addr = self.engine.get_function_address(f"lathe_{self.keys[name]}__packed")
        if not addr:
            from lathe.errors import LatheError

            raise LatheError(f"JIT: kernel @{name} is missing from the compiled objects")
        return addr

    def set_num_threads(self, n: int) -> None:
        self.pool.set_num_threads(n)

    def mark_run(self, active: bool) -> None:
        (self.pool.run_begin if active else self.pool.run_end)()

    def entry(self, calls, num_slots: int) -> int:
        """A run as one function, JIT-compiled into the kernels' engine (see `entry_ir`)."""
        return self._jit_entry(calls, timed=False)

    def timed_entry(self, calls, num_slots: int) -> int:
        return self._jit_entry(calls, timed=True)

    def _jit_entry(self, calls, timed: bool) -> int:
        self._entries += 1
        name = f"lathe_entry_{self._entries}"
        ir = entry_ir(name, [(f"lathe_{self.keys[k]}__packed", args) for k, args in calls], timed=timed)
        mod = llvm.parse_assembly(ir)
        mod.triple = self.target.triple
        mod.data_layout = str(self.tm.target_data)
        mod.verify()
        self.engine.add_module(mod)
        self.engine.finalize_object()
        return self.engine.get_function_address(name)


def entry_ir(name: str, calls, timed: bool = False) -> str:
    """`void name(ptr slots)`: for each (packed kernel symbol, slot indices), copy the buffer
    addresses its arguments name from `slots` into one stack array and call the kernel: what
    the executor does per kernel from Python, as one native call. The calls are bracketed by
    the pool's lathe_run_begin/end, so its workers stay awake between the run's kernels.
    `timed`: `void name(ptr slots, ptr stamps, i32 clock_id)`, which stores clock_gettime's
    nanoseconds before the first call and after each (KernelLibrary.timed_entry)."""
    width = max((len(args) for _, args in calls), default=1) or 1
    params = "ptr noalias nocapture readonly %slots" + (", ptr noalias nocapture %stamps, i32 %clock" if timed else "")
    lines = [f"define void @{name}({params}) {{", "entry:"]
    lines.append(f"  %args = alloca [{width} x ptr], align 8")
    lines.append("  call void @lathe_run_begin()")

    def stamp(i: int) -> None:
        if timed:
            lines.append(f"  call void @{name}.stamp(ptr %stamps, i64 {i}, i32 %clock)")

    stamp(0)
    symbols: dict[str, None] = {}
    for c, (symbol, args) in enumerate(calls):
        symbols[symbol] = None
        for k, s in enumerate(args):
            lines += [
                f"  %s{c}.{k} = getelementptr inbounds ptr, ptr %slots, i64 {s}",
                f"  %p{c}.{k} = load ptr, ptr %s{c}.{k}, align 8",
                f"  %a{c}.{k} = getelementptr inbounds [{width} x ptr], ptr %args, i64 0, i64 {k}",
                f"  store ptr %p{c}.{k}, ptr %a{c}.{k}, align 8",
            ]
        lines.append(f"  call void @{symbol}(ptr %args)")
        stamp(c + 1)
    lines += ["  call void @lathe_run_end()", "  ret void", "}"]
    pool = ["declare void @lathe_run_begin()", "declare void @lathe_run_end()"]
    if timed:  # struct timespec is two longs on the 64-bit targets the backend emits for
        pool += [
            "declare i32 @clock_gettime(i32, ptr)",
            f"define private void @{name}.stamp(ptr %stamps, i64 %i, i32 %clock) noinline {{",
            "  %ts = alloca [2 x i64], align 8",
            "  %rc = call i32 @clock_gettime(i32 %clock, ptr %ts)",
            "  %sec = load i64, ptr %ts, align 8",
            "  %nsec.p = getelementptr inbounds [2 x i64], ptr %ts, i64 0, i64 1",
            "  %nsec = load i64, ptr %nsec.p, align 8",
            "  %ns.s = mul i64 %sec, 1000000000",
            "  %ns = add i64 %ns.s, %nsec",
            "  %slot = getelementptr inbounds i64, ptr %stamps, i64 %i",
            "  store i64 %ns, ptr %slot, align 8",
            "  ret void",
            "}",
        ]
    return "\n".join([*(f"declare void @{s}(ptr)" for s in symbols), *pool, *lines, ""])
