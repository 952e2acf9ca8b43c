"""Loop IR with GPU bindings → NVPTX LLVM IR text.

NVPTX is LLVM IR with address spaces, kernel entry points and NVVM intrinsics, so this
module reuses the LLVM backend's emitter (backends/llvm/codegen.py) for everything a CPU
kernel has — GEPs, arithmetic, casts, serial, unrolled and vectorized loops — and adds
only what a GPU kernel has on top (docs/backends.md, "GPU kernels"):

  * a kernel is `define void @k(ptr addrspace(1) ...)` named a kernel in `!nvvm.annotations`,
    with its block size (`reqntid`); each argument is cast
    to a generic pointer once, and LLVM's infer-address-spaces turns the generic loads and
    stores back into `ld.global`/`st.global` (as clang's CUDA path does);
  * a loop bound to `threadIdx.x`/`blockIdx.y`/... is no loop: its induction variable IS
    that hardware id (`llvm.nvvm.read.ptx.sreg.tid.x`), and its extent is the launch
    dimension (`launch_of`);
  * `memref.alloca` in memory space 3 is a block's shared memory: an addrspace(3) global;
  * `gpu.barrier` is `llvm.nvvm.barrier0` (bar.sync 0);
  * math functions (exp, tanh, erf, ...) call libdevice's `__nv_*`, linked in by ptx.py;
  * a kernel-level `memref.alloc` (a stage's intermediate) is a device global of the module.
"""

from __future__ import annotations

import io
import math as pymath
import re
from collections.abc import Callable
from dataclasses import dataclass

from xdsl.dialects import arith, func, gpu, math, memref, scf
from xdsl.dialects.builtin import IntegerAttr, MemRefType, ModuleOp
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.printer import Printer

from lathe.backends.llvm.codegen import FunctionEmitter, ModuleEmitter
from lathe.backends.llvm.ops import BIN_INTRINSIC, LIBM, UN_INTRINSIC, llvm_type
from lathe.dialects.functions import is_kernel
from lathe.dialects.loop import PrefetchOp, annotation_of
from lathe.errors import LatheError

TRIPLE = "nvptx64-nvidia-cuda"
SHARED_SPACE = 3  # MLIR's NVVM numbering: a block's shared memory
# a bound axis → the PTX special register holding it
SREG = {f"{hw}.{d}": f"{reg}.{d}" for hw, reg in (("threadIdx", "tid"), ("blockIdx", "ctaid")) for d in "xyz"}
MAX_THREADS_PER_BLOCK = 1024  # every architecture from sm_30 on
MAX_GRID = {"x": 2**31 - 1, "y": 65535, "z": 65535}

# math ops with no NVPTX instruction: libdevice's function of the same name (`__nv_expf` for f32,
# `__nv_exp` for f64). sqrt, fabs, floor, ceil, trunc, roundeven and fma select to PTX directly.
LIBDEVICE = {
    math.ExpOp: "exp",
    math.LogOp: "log",
    math.TanhOp: "tanh",
    math.SinOp: "sin",
    math.CosOp: "cos",
    math.Log2Op: "log2",
    math.Exp2Op: "exp2",
    math.Log10Op: "log10",
    math.RoundOp: "round",
    math.PowFOp: "pow",
    math.ErfOp: "erf",
}
assert all(op in UN_INTRINSIC or op in LIBM or op in BIN_INTRINSIC for op in LIBDEVICE)


@dataclass(frozen=True)
class Launch:
    """One grid of a kernel: its PTX entry point, blocks and threads per block along x, y, z,
    and the kernel's top-level ops it runs."""

    entry: str
    grid: tuple[int, int, int] = (1, 1, 1)
    block: tuple[int, int, int] = (1, 1, 1)
    ops: tuple[Operation, ...] = ()

    @property
    def threads(self) -> int:
        return pymath.prod(self.block)

    def as_json(self) -> dict:
        return {"entry": self.entry, "grid": list(self.grid), "block": list(self.block)}


@dataclass(frozen=True)
class KernelPlan:
    """A kernel as the GPU runs it: its launches in order, each taking all `arity` buffers."""

    name: str
    arity: int
    launches: tuple[Launch, ...]


def _constant(v) -> int | None:
    owner = v.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def bound_axis(op: Operation) -> str | None:
    """The hardware id an `scf.for` is bound to (threadIdx.x, blockIdx.y, ...), if any."""
    if not isinstance(op, scf.ForOp):
        return None
    ann = annotation_of(op)
    if ann is None or ann.kind.data != "bind":
        return None
    return ann.thread_axis.data


def is_pure(op: Operation) -> bool:
    """A top-level op that belongs to no launch: index and scalar arithmetic, recomputed by
    every launch that uses it."""
    return not op.regions and op.dialect_name() in ("arith", "math")


def _split_launches(f: func.FuncOp) -> list[list[Operation]]:
    """The kernel's top-level work in launches (docs/backends.md, "GPU kernels"): each
    top-level bound loop is one; consecutive other work (unbound loops, stores, copies)
    shares a launch of one thread."""
    groups: list[list[Operation]] = []
    serial: list[Operation] | None = None
    from_work: set = set()  # values computed by work: arithmetic on them is work too
    for op in f.body.block.ops:
        if isinstance(op, memref.AllocOp | memref.DeallocOp | func.ReturnOp):
            continue
        if is_pure(op) and not any(v in from_work for v in op.operands):
            continue
        from_work.update(op.results)
        if bound_axis(op) is not None:
            groups.append([op])
            serial = None
        else:
            if serial is None:
                serial = []
                groups.append(serial)
            serial.append(op)
    return groups


def _dims(name: str, ops: list[Operation]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A launch's grid and block: along each axis the largest extent of the loops bound to it.
    Bound loops sit at the top or inside other bound loops (serial loops between them, as a
    loop over tiles between blockIdx and threadIdx, run in every thread alike)."""
    extents: dict[str, int] = {}

    def visit(op: Operation, enclosing: tuple[str, ...], top: bool) -> None:
        axis = bound_axis(op)
        if axis is not None:
            assert isinstance(op, scf.ForOp)
            if axis not in SREG:
                raise LatheError(f"kernel @{name}: a loop is bound to '{axis}'", note=f"known: {', '.join(SREG)}")
            if not top and not enclosing:
                raise LatheError(
                    f"kernel @{name}: a loop bound to {axis} is inside a top-level loop that is not bound",
                    note="bound loops start a launch: the outermost loop of a bound nest must be bound",
                )
            if axis in enclosing:
                raise LatheError(f"kernel @{name}: a loop bound to {axis} is nested in another bound to it")
            if axis.startswith("blockIdx") and any(a.startswith("threadIdx") for a in enclosing):
                raise LatheError(f"kernel @{name}: a loop bound to {axis} is nested in a threadIdx loop")
            lb, ub, step = _constant(op.lb), _constant(op.ub), _constant(op.step)
            if lb != 0 or step != 1 or ub is None or ub < 1:
                raise LatheError(
                    f"kernel @{name}: the loop bound to {axis} must run from 0 by 1 to a constant extent",
                    note="a bound loop's induction variable is the hardware id itself",
                )
            extents[axis] = max(extents.get(axis, 1), ub)
            enclosing = (*enclosing, axis)
        for region in op.regions:
            for block in region.blocks:
                for inner in block.ops:
                    visit(inner, enclosing, False)

    for op in ops:
        visit(op, (), True)
    grid = tuple(extents.get(f"blockIdx.{d}", 1) for d in "xyz")
    block = tuple(extents.get(f"threadIdx.{d}", 1) for d in "xyz")
    if pymath.prod(block) > MAX_THREADS_PER_BLOCK:
        raise LatheError(
            f"kernel @{name} binds {pymath.prod(block)} threads per block ({' x '.join(map(str, block))})",
            note=f"CUDA allows at most {MAX_THREADS_PER_BLOCK}",
        )
    for d, n in zip("xyz", grid):
        if n > MAX_GRID[d]:
            raise LatheError(f"kernel @{name} launches {n} blocks along {d}", note=f"CUDA allows {MAX_GRID[d]}")
    return grid, block  # type: ignore[return-value]


def plan_kernel(f: func.FuncOp) -> KernelPlan:
    """A kernel's launches: one PTX entry each, named after the kernel (`k`, or `k__0`,
    `k__1`, ... where it has several)."""
    name = f.sym_name.data
    groups = _split_launches(f) or [[]]
    launches = []
    for k, ops in enumerate(groups):
        grid, block = _dims(name, ops)
        entry = name if len(groups) == 1 else f"{name}__{k}"
        launches.append(Launch(entry, grid, block, tuple(ops)))
    return KernelPlan(name, len(f.body.block.args), tuple(launches))


class GPUModuleEmitter(ModuleEmitter):
    """The LLVM emitter's module, plus the module-level globals GPU kernels need (shared
    memory, kernels' scratch buffers). Parallel loops are serial: a GPU kernel's
    parallelism is its bound loops."""

    def __init__(self, vector_bits: int = 128):
        super().__init__(parallel=False, vector_bits=vector_bits)
        self.globals: list[str] = []
        self.annotations: list[str] = []  # metadata nodes of !nvvm.annotations

    def annotate(self, launch: Launch) -> None:
        """`!nvvm.annotations`: the function is a kernel, its exact threads per block (so ptxas
        keeps to registers a block can have) and one block per multiprocessor as enough
        (`.minnctapersm 1`, CUDA's `__launch_bounds__(threads, 1)`): told only the block size,
        ptxas squeezed a conv kernel to 32 registers for occupancy and spilled; with both it
        took 46 and spilled nothing. The form every LLVM with NVPTX reads (LLVM 20+ upgrades
        it to `ptx_kernel` and `"nvvm.reqntid"`), so PTX can be made with an older llvmlite too."""
        block = ((f"reqntid{d}", n) for d, n in zip("xyz", launch.block))
        for key, value in [("kernel", 1), *block, ("minctasm", 1)]:
            self.annotations.append(self.md_node(f'!{{ptr @{launch.entry}, !"{key}", i32 {value}}}'))

    def text(self) -> str:
        body = "\n".join(self.globals) + "\n" + super().text()
        return body + "!nvvm.annotations = !{" + ", ".join(self.annotations) + "}\n"

    def static_buffer(self, symbol: str, t: Attribute, space: int, where: str) -> str:
        """`@symbol`, a static array of memref type `t` in address space `space`."""
        assert isinstance(t, MemRefType)
        if any(d < 0 for d in t.get_shape()):
            raise LatheError(f"kernel @{where}: a buffer of dynamic shape {t}")
        n = max(1, pymath.prod(t.get_shape()))
        elem = llvm_type(t.element_type)
        elem = "i8" if elem == "i1" else elem
        init = "undef" if space == SHARED_SPACE else "zeroinitializer"
        self.globals.append(f"@{symbol} = internal addrspace({space}) global [{n} x {elem}] {init}, align 16")
        return f"@{symbol}"


class GPUFunctionEmitter(FunctionEmitter):
    """One launch of a kernel: the LLVM emitter's body with the GPU's ops found first
    (`GPU_EMIT`), knowing the launch's dimensions (to guard loops bound with a smaller
    extent) and the kernel's scratch buffers (module globals)."""

    mod: GPUModuleEmitter

    def __init__(
        self,
        mod: GPUModuleEmitter,
        kernel: str,
        launch: Launch,
        scratch: dict[SSAValue, str],
        serial_threads: bool = False,
    ):
        super().__init__(mod, launch.entry)
        self.serial_threads = serial_threads
        self.kernel = kernel
        self.dims = {
            f"{hw}.{d}": n
            for hw, ns in (("blockIdx", launch.grid), ("threadIdx", launch.block))
            for d, n in zip("xyz", ns)
        }
        self.scratch = scratch
        self.bound: list[str] = []  # the bound loops the op being emitted is in, outermost first
        self.n_shared = 0

    def op(self, op: Operation) -> None:
        emit = GPU_EMIT.get(type(op))
        if emit is None:
            super().op(op)
        else:
            emit(self, op)

    def in_threads(self) -> bool:
        return any(a.startswith("threadIdx") for a in self.bound)

    def generic(self, symbol: str, space: int, value: SSAValue) -> None:
        """`value` is the global `symbol` of `space`, as a generic pointer (cast once, at entry)."""
        name = f"%global.{len(self.allocas)}"  # (a name no tmp() can produce)
        self.allocas.append(f"  {name} = addrspacecast ptr addrspace({space}) {symbol} to ptr")
        self.names[value] = name


Emit = Callable[[GPUFunctionEmitter, Operation], None]


def _for(fe: GPUFunctionEmitter, op: scf.ForOp) -> None:
    """A bound loop is its hardware id; the others are the LLVM emitter's loops, serial."""
    axis = bound_axis(op)
    if axis is not None and fe.serial_threads and axis.startswith("threadIdx"):
        fe.bound.append(axis)  # the block's threads one after another (see module_to_nvptx_ir)
        fe.for_loop(op)
        fe.bound.pop()
        return
    if axis is not None:
        reg = SREG[axis]
        fe.mod.declare(f"declare i32 @llvm.nvvm.read.ptx.sreg.{reg}()")
        raw, iv = fe.tmp("hw"), fe.tmp("iv")
        fe.emit(f"{raw} = call i32 @llvm.nvvm.read.ptx.sreg.{reg}()")
        fe.emit(f"{iv} = zext i32 {raw} to i64")
        fe.names[op.body.block.args[0]] = iv
        extent = _constant(op.ub)
        guarded = extent is not None and extent < fe.dims[axis]  # a smaller extent: only ids below it
        if guarded:
            inside, after, c = fe.new_label("bound.in"), fe.new_label("bound.end"), fe.tmp("c")
            fe.emit(f"{c} = icmp ult i64 {iv}, {extent}")
            fe.emit(f"br i1 {c}, label %{inside}, label %{after}")
            fe.start_block(inside)
        fe.bound.append(axis)
        fe.block(op.body.block)
        fe.bound.pop()
        if guarded:
            fe.emit(f"br label %{after}")
            fe.start_block(after)
        return
    ann = annotation_of(op)
    kind = ann.kind.data if ann is not None else None
    if kind == "vectorize" and not any(type(o) in LIBDEVICE for o in op.walk()) and fe.vector_loop(op):
        return
    if kind == "unroll" and fe.unrolled_loop(op, ann.factor.data):  # type: ignore[union-attr]
        return
    fe.for_loop(op)


def _alloca(fe: GPUFunctionEmitter, op: memref.AllocaOp) -> None:
    """Memory space 3: the block's shared memory; else a thread's own (local) buffer."""
    space = op.memref.type.memory_space  # type: ignore[union-attr]
    if isinstance(space, IntegerAttr) and space.value.data == SHARED_SPACE:
        symbol = fe.mod.static_buffer(f"{fe.name}__shared{fe.n_shared}", op.memref.type, SHARED_SPACE, fe.kernel)
        fe.n_shared += 1
        fe.generic(symbol, SHARED_SPACE, op.memref)
    elif isinstance(space, IntegerAttr) and space.value.data != 0:
        raise LatheError(f"kernel @{fe.name}: memref.alloca in memory space {space.value.data}", note="known: 0, 3")
    else:
        FunctionEmitter.op(fe, op)


def _alloc(fe: GPUFunctionEmitter, op: memref.AllocOp) -> None:
    """Only a kernel's top-level alloc (its scratch, a module global) has a GPU meaning."""
    if op.memref not in fe.scratch:
        raise LatheError(
            f"kernel @{fe.kernel}: memref.alloc inside a loop",
            note="a GPU kernel allocates scratch at its top level, per-thread buffers with memref.alloca, "
            "per-block ones with memref.alloca in memory space 3",
        )


def _dealloc(fe: GPUFunctionEmitter, op: memref.DeallocOp) -> None:
    """Kernel-scope buffers are module globals: nothing to free."""


def _barrier(fe: GPUFunctionEmitter, op: gpu.BarrierOp) -> None:
    if fe.in_threads():
        raise LatheError(
            f"kernel @{fe.kernel}: gpu.barrier inside a loop bound to {fe.bound[-1]}",
            note="a barrier waits for every thread of the block: only at block-uniform positions",
        )
    if fe.serial_threads:
        return  # each thread loop finishes before the code after it: the barrier holds
    fe.mod.declare("declare void @llvm.nvvm.barrier0()")
    fe.emit("call void @llvm.nvvm.barrier0()")


def _libdevice(fe: GPUFunctionEmitter, op: Operation) -> None:
    """libdevice's function for the type: `__nv_expf` (f32), `__nv_exp` (f64); f16 in f32."""
    ty = llvm_type(op.results[0].type)
    base = LIBDEVICE[type(op)]
    args = [fe.v(x) for x in op.operands]
    if ty == "half":
        wide = []
        for a in args:
            w = fe.tmp("ext")
            fe.emit(f"{w} = fpext half {a} to float")
            wide.append(w)
        name = f"__nv_{base}f"
        fe.mod.declare(f"declare float @{name}({', '.join(['float'] * len(args))})")
        r = fe.tmp("nv")
        fe.emit(f"{r} = call float @{name}({', '.join('float ' + w for w in wide)})")
        fe.define(op.results[0], f"fptrunc float {r} to half")
        return
    if ty not in ("float", "double"):
        raise LatheError(f"kernel @{fe.name}: {op.name} on {op.results[0].type}")
    name = f"__nv_{base}" + ("f" if ty == "float" else "")
    fe.mod.declare(f"declare {ty} @{name}({', '.join([ty] * len(args))})")
    fe.define(op.results[0], f"call {ty} @{name}({', '.join(f'{ty} {a}' for a in args)})")


def _prefetch(fe: GPUFunctionEmitter, op: PrefetchOp) -> None:
    """Dropped: a prefetch is a hint for a CPU cache hierarchy, which a GPU kernel's
    hand-written schedule may carry over (NVPTX selects no generic llvm.prefetch)."""


GPU_EMIT: dict[type[Operation], Emit] = {
    scf.ForOp: _for,
    PrefetchOp: _prefetch,
    memref.AllocaOp: _alloca,
    memref.AllocOp: _alloc,
    memref.DeallocOp: _dealloc,
    gpu.BarrierOp: _barrier,
    **dict.fromkeys(LIBDEVICE, _libdevice),
}


def emit_kernel(mod: GPUModuleEmitter, f: func.FuncOp, serial_threads: bool = False) -> KernelPlan:
    """Each launch of `f` as `define void @entry(ptr addrspace(1) noalias align 64 %arg.0, ...)`,
    taking all of the kernel's buffers, annotated as a kernel with its threads per block
    (reqntid: ptxas may spend the registers, LLVM knows each thread id's range). The kernel's
    scratch buffers are module globals that its launches share."""
    plan = plan_kernel(f)
    name = plan.name
    for k, arg in enumerate(f.body.block.args):
        if not isinstance(arg.type, MemRefType):
            raise LatheError(f"kernel @{name}: argument {k} is {arg.type}, expected a memref")
    scratch: dict[SSAValue, str] = {}
    for op in f.body.block.ops:
        if isinstance(op, memref.AllocOp):
            scratch[op.memref] = mod.static_buffer(f"{name}__scratch{len(scratch)}", op.memref.type, 1, name)
    for launch in plan.launches:
        e = GPUFunctionEmitter(mod, name, launch, scratch, serial_threads)
        params = []
        for k, arg in enumerate(f.body.block.args):
            params.append(f"ptr addrspace(1) noalias align 64 %arg.{k}")  # (names no tmp() can produce)
            e.allocas.append(f"  %a.{k} = addrspacecast ptr addrspace(1) %arg.{k} to ptr")
            e.names[arg] = f"%a.{k}"
        for value, symbol in scratch.items():
            e.generic(symbol, 1, value)
        mine = set(launch.ops)
        for op in f.body.block.ops:  # the arithmetic its ops may use (LLVM drops what they do not)
            if op in mine or (is_pure(op) and all(v in e.names for v in op.operands)):
                e.op(op)
        e.emit("ret void")
        mod.add_function(f"void @{launch.entry}({', '.join(params)}) #0", e.finished_lines())
        mod.annotate(launch)
    return plan


def kernels_of(module: ModuleOp) -> list[func.FuncOp]:
    return [f for f in module.ops if is_kernel(f)]  # type: ignore[misc]


_SSA_NAME = re.compile(r"%[A-Za-z0-9_.$-]+")


def body_key(f: func.FuncOp) -> str:
    """A kernel's text with its name and SSA names made canonical: equal for kernels that
    differ only in name (BERT's layers, ResNet's repeated blocks)."""
    buf = io.StringIO()
    Printer(stream=buf, print_generic_format=True).print_op(f)
    text = buf.getvalue().replace(f'sym_name = "{f.sym_name.data}"', 'sym_name = "kernel"', 1)
    names: dict[str, str] = {}
    return _SSA_NAME.sub(lambda m: names.setdefault(m.group(0), f"%v{len(names)}"), text)


def module_to_nvptx_ir(
    module: ModuleOp, vector_bits: int = 128, serial_threads: bool = False
) -> tuple[str, list[KernelPlan]]:
    """NVPTX LLVM IR for every kernel of a loop-level module (no triple: ptx.py sets it), and
    each kernel's launches. A kernel identical to one emitted before launches that one's
    entries (their scratch is shared too: kernels run one after another).

    With `serial_threads`, a threadIdx loop stays a loop over its extent and barriers vanish:
    a block's threads run one after another, the form in which a CPU runs a launch (PoCL's
    work-group loops), so that the code generator can be checked numerically without a GPU
    (tests/cuda_serial.py). Code outside the thread loops then runs once per block, which
    the contract allows (it must write the same in every thread)."""
    mod = GPUModuleEmitter(vector_bits)
    plans = []
    emitted: dict[str, KernelPlan] = {}
    for f in kernels_of(module):
        key = body_key(f)
        first = emitted.get(key)
        if first is None:
            plans.append(emitted.setdefault(key, emit_kernel(mod, f, serial_threads)))
        else:
            plans.append(KernelPlan(f.sym_name.data, first.arity, first.launches))
    attrs = 'attributes #0 = { nounwind "frame-pointer"="none" }\nattributes #1 = { nounwind alwaysinline }\n'
    return mod.text() + attrs, plans
