"""The VM: runs what the graph executor cannot, control flow, function values and `?` shapes.

A module is compiled once to VM code (runtime/vm_program.py): per function, a flat list of
instructions over registers, branches and loops as jumps, calls and closures as frames, and
each *primitive region* (a maximal run of graph ops with no control flow between them) as
specialise, allocate, invoke. One loop runs the code over a stack of frames, dispatching on the
instruction's type through a table. A region runs as native kernels compiled by the static
pipeline: shapes are known only when it runs, so it is compiled once per concrete signature of
its inputs (dtypes and shapes) and cached, which gives each shape the static pipeline's code
(TVM's VM compiles kernels for symbolic shapes instead). The tensors kernels write come from a
pool (runtime/vm_pool.py), given back when their register dies and reused across regions and
runs; what a run returns is never pool memory that a later run writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, TensorType, TupleType
from xdsl.ir import Attribute, Block, Region, SSAValue

from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import recursive_function, set_param_names
from lathe.dialects.reference import PRODUCTS_IN_RESULT_DTYPE, REFERENCE, check_value
from lathe.dialects.reference import evaluate as reference
from lathe.errors import LatheError
from lathe.runtime.interpreter import (
    MAX_CALL_DEPTH,
    ADTValue,
    Interpreter,
    dyn_static_op,
    no_clause_matches,
    stack_scans,
)
from lathe.runtime.vm_pool import MemoryPool
from lathe.runtime.vm_program import (
    AllocStorage,
    AllocTensor,
    Call,
    CallClosure,
    GetField,
    GetItem,
    Goto,
    InvokeDyn,
    InvokeRegion,
    JumpIfNot,
    JumpIfNotCtor,
    Kill,
    LoadConst,
    Loop,
    MakeADT,
    MakeClosure,
    MakeTuple,
    MatchFail,
    Move,
    NewList,
    PrimitiveRegion,
    Ret,
    ScanAppend,
    ScanStack,
    ShapeOf,
    SpecializeRegion,
    VMFunction,
    VMProgram,
    compile_program,
    leaf_types,
    plan_block,
)

__all__ = ["PrimitiveRegion", "VMModule", "VirtualMachine", "needs_vm", "plan_block", "specialise"]


def _leaves(value) -> list[np.ndarray]:
    if isinstance(value, tuple):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _concrete_type(value) -> TensorType | TupleType:
    if isinstance(value, tuple):
        return graph.tuple_type([_concrete_type(v) for v in value])
    return TensorType(graph.DTYPES[np.dtype(value.dtype).name], list(value.shape))


def specialise(region: PrimitiveRegion, values: list, names: dict[SSAValue, str] | None = None) -> ModuleOp:
    """The region as `@main` over its inputs' concrete types (tuples passed as their leaves),
    every op rebuilt through its type inference, so shapes are static and checked: a shape the
    op cannot take is a LatheError naming the op and the shapes, raised before any kernel runs.
    An input named in `names` (a bound parameter) keeps that name, for the compiler to bind."""
    leaf_types = [_concrete_type(x) for v in values for x in _leaves(v)]
    block = Block(arg_types=leaf_types)
    args = iter(block.args)
    mapping: dict[SSAValue, SSAValue] = {}

    def rebuild(value) -> SSAValue:
        if not isinstance(value, tuple):
            return next(args)
        op = graph.TupleOp.create_inferred([rebuild(v) for v in value])
        block.add_op(op)
        return op.result

    for v, value in zip(region.inputs, values):
        mapping[v] = rebuild(value)
    for op in region.ops:
        operands = []
        for v in op.operands:
            if v not in mapping:  # a constant of the enclosing block, copied in
                const = v.owner.clone()  # type: ignore[union-attr]
                block.add_op(const)
                mapping[v] = const.results[0]
            operands.append(mapping[v])
        try:
            new = type(op).create_inferred(operands, dict(op.properties))  # type: ignore[attr-defined]
        except graph.ShapeError as e:
            shapes = ", ".join(graph.type_str(o.type) for o in operands)
            raise LatheError(f"{op.name}: at run time its operands are ({shapes}): {e}") from None
        new.location = op.location
        block.add_op(new)
        mapping.update(zip(op.results, new.results))
    outs = [mapping[v] for v in region.outputs]
    if len(outs) == 1:
        result = outs[0]
    else:
        packed = graph.TupleOp.create_inferred(outs)
        block.add_op(packed)
        result = packed.result
    block.add_op(func.ReturnOp(result))
    ftype = FunctionType.from_lists([a.type for a in block.args], [result.type])
    f = func.FuncOp("main", ftype, Region(block))
    leaf_names: list[str | None] = []
    for v, value in zip(region.inputs, values):
        leaf_names += [None] * len(_leaves(value)) if isinstance(value, tuple) else [(names or {}).get(v)]
    set_param_names(f, [n or f"in{i}" for i, n in enumerate(leaf_names)])
    return ModuleOp([f])


@dataclass(frozen=True, eq=False)
class VMClosure:
    """A function value: its `graph.fn` and the values it captured."""

    fn: graph.FnOp
    captured: tuple


@dataclass(frozen=True, eq=False)
class RegionKernel:
    """A primitive region specialised to one signature: its compiled module and the shape of
    each leaf of its outputs (what Relay's shape functions compute before allocating)."""

    compiled: object
    shapes: tuple[tuple[int, ...], ...]


@dataclass(eq=False)
class Frame:
    """A call in progress: its function's registers, the next instruction, and the caller's
    registers that take its value."""

    fn: VMFunction
    regs: list
    pc: int = 0
    ret: tuple[int, ...] = ()


class VirtualMachine(Interpreter):
    """Runs the module's VM program (runtime/vm_program.py) with one loop over a stack of frames;
    every primitive region as native code: `compile_region(module, params)` compiles a
    specialised region (a `CompiledModule`, made by the API layer, which this layer may not
    import), the entry's parameters bound from the params file (`bound`) given to it as
    constants, so weight transforms fold at compile time as in the static pipeline. The kernels'
    outputs are tensors from the pool (runtime/vm_pool.py), reused across regions and runs."""

    def __init__(self, module: ModuleOp, compile_region: Callable[[ModuleOp, dict], object]):
        super().__init__(module)
        self.compile_region = compile_region
        self.dyn_compiled: dict[graph.DynOp, dict[tuple, tuple]] = {}
        self.bound: dict[SSAValue, str] = {}  # entry parameters bound from params, by name
        self.constants: dict[graph.ConstantOp, np.ndarray] = {}
        self.compiles = 0
        self.pool = MemoryPool()
        self._program: VMProgram | None = None
        self._returned = None

    def program_plans(self):
        """The blocks' plans (steps and primitive regions) the program was compiled from."""
        return self.program.plans.values()

    @property
    def program(self) -> VMProgram:
        """The VM code, compiled at the first run (after `bound` is known)."""
        if self._program is None:
            self._program = compile_program(self.functions, self.bound)
        return self._program

    def run(self, name: str, args: list):
        """`@name(args)`: the instruction loop, until the entry's frame returns. Frames are a
        list, not Python's stack, so the depth limit is the VM's own (MAX_CALL_DEPTH)."""
        stack = [self._frame(self._function(name), args, (), hold=False)]  # (the caller's arrays: not the pool's)
        try:
            frame = stack[0]
            code = frame.fn.code
            while True:
                ins = code[frame.pc]
                frame.pc += 1
                if DISPATCH[type(ins)](self, stack, frame, ins):  # frames changed
                    if not stack:
                        value, self._returned = self._returned, None
                        return value
                    frame = stack[-1]
                    code = frame.fn.code
        except BaseException:
            for f in stack:
                self._release(f)
            raise

    def _function(self, name: str) -> VMFunction:
        fn = self.program.functions.get(name)
        if fn is None:
            raise LatheError(f"@{name} is only declared (it has no body): the VM has nothing to run")
        return fn

    def _frame(self, fn: VMFunction, args, ret: tuple[int, ...], hold: bool = True) -> Frame:
        regs = [*args, *[None] * (fn.num_regs - len(args))]
        if hold:
            for value in args:
                self.pool.hold(value)
        return Frame(fn, regs, 0, ret)

    def _call(self, stack: list[Frame], fn: VMFunction, args, ret: tuple[int, ...], what: str) -> bool:
        if len(stack) >= MAX_CALL_DEPTH:
            raise LatheError(
                f"calls nested deeper than {MAX_CALL_DEPTH} (in {what}): a recursion with no base case?",
                note="each recursive call must come nearer to a branch that does not recurse",
            )
        stack.append(self._frame(fn, args, ret))
        return True

    def _release(self, frame: Frame) -> None:
        regs = frame.regs
        for value in (regs[r] for r in frame.fn.tracked):
            if type(value) is list:  # a loop's scanned values, left by an error
                for v in value:
                    self.pool.drop(v)
            else:
                self.pool.drop(value)
        frame.regs.clear()

    def set(self, frame: Frame, r: int, value) -> None:
        self.pool.hold(value)
        old = frame.regs[r]
        frame.regs[r] = value
        self.pool.drop(old)

    def constant(self, op: graph.ConstantOp) -> np.ndarray:
        value = self.constants.get(op)
        if value is None:  # decoded once, not per run
            value = self.constants[op] = self.evaluate(op, [])
        return value

    def region_kernel(self, ins: SpecializeRegion, values: list) -> RegionKernel:
        """The region specialised to these values' types and compiled (bound inputs as constants)."""
        region = ins.region
        bound = {v: n for v, n in zip(region.inputs, ins.bound) if n is not None}
        params = {n: np.asarray(value) for n, value in zip(ins.bound, values) if n is not None}
        module = specialise(region, values, bound)
        (result,) = module.ops.first.function_type.outputs.data  # type: ignore[union-attr]
        shapes = tuple(tuple(t.get_shape()) for t in leaf_types(result))  # type: ignore[attr-defined]
        self.compiles += 1
        return RegionKernel(self.compile_region(module, params), shapes)

    def dyn_kernel(self, op: graph.DynOp, data: list, values: list, key: tuple) -> tuple:
        """The static op a `graph.dyn`'s values make, compiled for these shapes and values: what
        a kernel specialised on the value is; with its result's shape and dtype."""
        static = dyn_static_op(op, data, values)
        region = PrimitiveRegion([static], list(static.operands), [static.results[0]])
        t = static.results[0].type
        self.compiles += 1
        compiled = self.compile_region(specialise(region, data), {})
        leaves = tuple((tuple(x.get_shape()), np_dtype(x.element_type)) for x in leaf_types(t))  # type: ignore[attr-defined]
        return compiled, t, leaves


# -- what each instruction does: (vm, stack, frame, instruction) -> whether frames changed ---


def _load_const(vm: VirtualMachine, stack, frame: Frame, ins: LoadConst) -> None:
    vm.set(frame, ins.dst, vm.constant(ins.op))


def _move(vm: VirtualMachine, stack, frame: Frame, ins: Move) -> None:
    vm.set(frame, ins.dst, frame.regs[ins.src])


def _make_tuple(vm: VirtualMachine, stack, frame: Frame, ins: MakeTuple) -> None:
    vm.set(frame, ins.dst, tuple(frame.regs[r] for r in ins.srcs))


def _get_item(vm: VirtualMachine, stack, frame: Frame, ins: GetItem) -> None:
    vm.set(frame, ins.dst, frame.regs[ins.src][ins.index])


def _shape_of(vm: VirtualMachine, stack, frame: Frame, ins: ShapeOf) -> None:
    vm.set(frame, ins.dst, np.asarray(np.shape(frame.regs[ins.src]), np.int64))


def _signature(values) -> tuple:
    """The dtypes and shapes of values' leaves: what a compiled region is specialised for."""
    return tuple((x.dtype.str, x.shape) for v in values for x in map(np.asarray, _leaves(v)))


def _specialize_region(vm: VirtualMachine, stack, frame: Frame, ins: SpecializeRegion) -> None:
    regs = frame.regs
    key = _signature(regs[r] for r in ins.given)
    kernel = ins.region.compiled.get(key)
    if kernel is None:
        kernel = ins.region.compiled[key] = vm.region_kernel(ins, [regs[r] for r in ins.args])
    frame.regs[ins.kernel] = kernel
    for r, shape in zip(ins.shapes, kernel.shapes):
        frame.regs[r] = shape


def _alloc_storage(vm: VirtualMachine, stack, frame: Frame, ins: AllocStorage) -> None:
    nbytes = math.prod(frame.regs[ins.shape]) * ins.dtype.itemsize
    vm.set(frame, ins.dst, vm.pool.storage(nbytes))


def _alloc_tensor(vm: VirtualMachine, stack, frame: Frame, ins: AllocTensor) -> None:
    vm.set(frame, ins.dst, vm.pool.view(frame.regs[ins.storage], frame.regs[ins.shape], ins.dtype))


def _nest(t: Attribute | None, leaves):
    if t is None or not isinstance(t, TupleType):
        return next(leaves)
    return tuple(_nest(s if isinstance(s, TupleType) else None, leaves) for s in t.types.data)


def _invoke_region(vm: VirtualMachine, stack, frame: Frame, ins: InvokeRegion) -> None:
    regs = frame.regs
    given = [x for r in ins.args for x in _leaves(regs[r])]
    leaves = iter([regs[r] for r in ins.outs])
    outs = [_nest(t, leaves) for t in ins.layout]
    regs[ins.kernel].compiled.run(*given, out=outs[0] if len(outs) == 1 else tuple(outs))
    for r, value in zip(ins.dsts, outs):
        vm.set(frame, r, value)


def _invoke_dyn(vm: VirtualMachine, stack, frame: Frame, ins: InvokeDyn) -> None:
    op = ins.op
    args = [np.asarray(frame.regs[r]) for r in ins.args]
    data, values = args[: op.data_count], args[op.data_count :]
    key = (tuple((x.dtype.str, x.shape) for x in data), tuple(tuple(v.reshape(-1).tolist()) for v in values))
    cache = vm.dyn_compiled.setdefault(op, {})
    kernel = cache.get(key)
    if kernel is None:
        kernel = cache[key] = vm.dyn_kernel(op, data, values, key)
    compiled, t, leaves = kernel
    out = _nest(t, iter([vm.pool.tensor(shape, dtype) for shape, dtype in leaves]))
    compiled.run(*data, out=out)
    vm.set(frame, ins.dst, out)


def _make_closure(vm: VirtualMachine, stack, frame: Frame, ins: MakeClosure) -> None:
    captured = tuple(frame.regs[r] for r in ins.captures)
    vm.pool.give_away(captured)  # a closure lives as long as Python keeps it
    vm.set(frame, ins.dst, VMClosure(ins.fn, captured))


def _call(vm: VirtualMachine, stack, frame: Frame, ins: Call) -> bool:
    args = [frame.regs[r] for r in ins.args]
    return vm._call(stack, vm._function(ins.callee), args, ins.dsts, f"@{ins.callee}")


def _call_closure(vm: VirtualMachine, stack, frame: Frame, ins: CallClosure) -> bool:
    closure = frame.regs[ins.closure]
    args = [*closure.captured, *(frame.regs[r] for r in ins.args)]
    return vm._call(stack, vm.program.closures[closure.fn], args, (ins.dst,), "a fn")


def _ret(vm: VirtualMachine, stack, frame: Frame, ins: Ret) -> bool:
    vals = [frame.regs[r] for r in ins.srcs]
    value = vals[0] if len(vals) == 1 else tuple(vals)
    stack.pop()
    if stack:
        caller = stack[-1]
        if len(frame.ret) == 1:
            vm.set(caller, frame.ret[0], value)
        else:
            for r, v in zip(frame.ret, value if isinstance(value, tuple) else (value,)):
                vm.set(caller, r, v)
    else:  # the run's result: the caller's now, never handed out again
        vm.pool.give_away(value)
        vm._returned = value
    vm._release(frame)
    return True


def _jump_if_not(vm: VirtualMachine, stack, frame: Frame, ins: JumpIfNot) -> None:
    if not bool(frame.regs[ins.cond]):
        frame.pc = ins.target


def _goto(vm: VirtualMachine, stack, frame: Frame, ins: Goto) -> None:
    frame.pc = ins.target


def _host_op(op) -> Callable:
    """`op` on static host scalars: its numpy reference, the result cast to the result's dtype
    and shape as `reference` casts it, both read once (reading them per step cost 4 of the 5 us)."""
    if isinstance(op, PRODUCTS_IN_RESULT_DTYPE) or type(op) not in REFERENCE:
        return lambda *args: reference(op, *args)
    fn, t = REFERENCE[type(op)], op.results[0].type
    dtype, shape = np_dtype(t.element_type), tuple(t.get_shape())
    return lambda *args: np.asarray(fn(op, *args)).astype(dtype, copy=False).reshape(shape)


def _loop(vm: VirtualMachine, stack, frame: Frame, ins: Loop) -> None:
    """A `Loop`: the condition on the host, the body's kernel run on the last step's outputs
    (fresh arrays from the kernel, kept by no register: the pool never sees them). The region
    is looked up by signature until a step leaves every carried value's dtype and shape as it
    found them; from then on each step gives the same signature, so the same kernel runs."""
    regs = frame.regs
    n = len(ins.inits)
    carried = [regs[r] for r in ins.inits]
    outside = [regs[r] for r in ins.outside]
    consts = [vm.constant(c) for c in ins.consts]
    region, feeds, nexts = ins.region, ins.feeds, ins.nexts
    cond = [(_host_op(op), srcs) for op, srcs in ins.cond]
    given = tuple(k for k, name in zip(feeds, ins.bound) if name is None)
    several = len(region.outputs) > 1
    scans: list[list] = [[] for _ in ins.scan_types]
    settled = False
    while True:
        values = carried + outside + consts
        for host_op, srcs in cond:
            values.append(host_op(*[values[k] for k in srcs]))
        if not values[ins.cond_value]:
            break
        if not settled:  # until the carried shapes settle
            before = _signature(carried)
            key = _signature(values[k] for k in given)
            kernel = region.compiled.get(key)
            if kernel is None:
                kernel = region.compiled[key] = vm.region_kernel(ins, [values[k] for k in feeds])
        result = kernel.compiled.run(*[values[k] for k in given])
        outs = result if several else (result,)
        nxt = [outs[~k] if k < 0 else values[k] for k in nexts]
        for acc, v in zip(scans, nxt[n:]):
            acc.append(v)
        carried = nxt[:n]
        if not settled:
            settled = _signature(carried) == before
    for r, v in zip(ins.dsts, carried):
        vm.set(frame, r, v)
    for r, acc, t in zip(ins.dsts[n:], scans, ins.scan_types):
        vm.set(frame, r, stack_scans([np.asarray(v) for v in acc], t))  # type: ignore[arg-type]


def _new_list(vm: VirtualMachine, stack, frame: Frame, ins: NewList) -> None:
    vm.set(frame, ins.dst, [])


def _scan_append(vm: VirtualMachine, stack, frame: Frame, ins: ScanAppend) -> None:
    value = np.asarray(frame.regs[ins.src])
    vm.pool.hold(value)
    frame.regs[ins.list].append(value)


def _scan_stack(vm: VirtualMachine, stack, frame: Frame, ins: ScanStack) -> None:
    values = frame.regs[ins.list]
    stacked = stack_scans(values, ins.type)  # type: ignore[arg-type]
    for v in values:
        vm.pool.drop(v)
    values.clear()
    vm.set(frame, ins.dst, stacked)


def _make_adt(vm: VirtualMachine, stack, frame: Frame, ins: MakeADT) -> None:
    fields = tuple(frame.regs[r] for r in ins.fields)
    vm.pool.give_away(fields)  # a list's cells live as long as Python keeps them, as a closure's captures do
    vm.set(frame, ins.dst, ADTValue(ins.ctor, fields))


def _get_field(vm: VirtualMachine, stack, frame: Frame, ins: GetField) -> None:
    vm.set(frame, ins.dst, frame.regs[ins.src].fields[ins.index])


def _jump_if_not_ctor(vm: VirtualMachine, stack, frame: Frame, ins: JumpIfNotCtor) -> None:
    if frame.regs[ins.src].ctor != ins.ctor:
        frame.pc = ins.target


def _match_fail(vm: VirtualMachine, stack, frame: Frame, ins: MatchFail) -> None:
    raise no_clause_matches(ins.op, frame.regs[ins.src])


def _kill(vm: VirtualMachine, stack, frame: Frame, ins: Kill) -> None:
    regs = frame.regs
    for r in ins.regs:
        old, regs[r] = regs[r], None
        vm.pool.drop(old)


DISPATCH: dict[type, Callable[..., bool | None]] = {
    LoadConst: _load_const,
    Move: _move,
    MakeTuple: _make_tuple,
    GetItem: _get_item,
    ShapeOf: _shape_of,
    SpecializeRegion: _specialize_region,
    AllocStorage: _alloc_storage,
    AllocTensor: _alloc_tensor,
    InvokeRegion: _invoke_region,
    InvokeDyn: _invoke_dyn,
    MakeClosure: _make_closure,
    Call: _call,
    CallClosure: _call_closure,
    Ret: _ret,
    JumpIfNot: _jump_if_not,
    Goto: _goto,
    Loop: _loop,
    NewList: _new_list,
    ScanAppend: _scan_append,
    ScanStack: _scan_stack,
    MakeADT: _make_adt,
    GetField: _get_field,
    JumpIfNotCtor: _jump_if_not_ctor,
    MatchFail: _match_fail,
    Kill: _kill,
}


@dataclass
class VMCompileStats:
    """What the VM has compiled so far, over all its regions' specialisations."""

    modules: int = 0  # regions and dyn ops compiled, once per signature
    kernels: int = 0
    distinct: int = 0
    from_cache: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.modules} specialised regions: {self.kernels} kernels, {self.distinct} distinct, "
            f"{self.from_cache} from the cache, {self.seconds:.2f} s"
        )


def needs_vm(module: ModuleOp) -> bool:
    """Whether the graph executor cannot run `module`: it has control flow, function values,
    recursion, or a shape known only at run time."""
    if recursive_function(module) is not None:
        return True
    for op in module.walk():
        if isinstance(op, graph.ControlOp):
            return True
        if isinstance(op, func.FuncOp) and graph.is_dynamic(op.function_type):
            return True
        if any(graph.is_dynamic(r.type) for r in op.results):
            return True
    return False


class VMModule:
    """A module compiled for the VM, with CompiledModule's `run`: inputs by position or by
    name (any size a `?` admits), results as numpy arrays, nested as the entry returns them."""

    def __init__(self, module: ModuleOp, compile_region: Callable[[ModuleOp, dict], object], params, entry: str):
        from lathe.dialects.functions import param_names

        self.vm = VirtualMachine(module, compile_region)
        if entry not in self.vm.functions:
            raise LatheError(f"the module has no function @{entry}")
        self.entry, self.params = entry, dict(params or {})
        names = param_names(self.vm.functions[entry])
        unknown = [k for k in self.params if k not in names]
        if unknown:
            raise LatheError(
                f"params file has entries that @{entry} has no parameter for: {', '.join(sorted(unknown))}",
                note="its parameters: " + ", ".join(names),
            )
        self.input_names = [n for n in names if n not in self.params]
        self._last: list | None = None  # the arguments of the last run, for benchmark()
        f = self.vm.functions[entry]
        self.types = types = {n: a.type for n, a in zip(names, f.body.block.args)}
        # checked (and made contiguous) once, not per run; check_value returns them as they are then
        self.checked = {n: check_value(n, v, types[n]) for n, v in self.params.items()}
        args = self.vm.functions[entry].body.block.args
        called = any(isinstance(op, func.CallOp) and op.callee.root_reference.data == entry for op in module.walk())
        if not called:  # (in a recursive entry, a parameter's value changes from call to call)
            self.vm.bound = {a: n for a, n in zip(args, names) if n in self.params}

    @property
    def program(self) -> VMProgram:
        """The VM code (prints one instruction a line)."""
        return self.vm.program

    @property
    def pool_stats(self):
        """What the memory pool has handed out: blocks and bytes fresh and reused (PoolStats)."""
        return self.vm.pool.stats

    @property
    def compiles(self) -> int:
        """How many primitive regions have been compiled (once per region and input signature)."""
        return self.vm.compiles

    def compiled_modules(self) -> list:
        """Every module compiled so far: one per region and signature, one per `graph.dyn` and values."""
        regions = [step for plan in self.vm.program_plans() for step in plan if isinstance(step, PrimitiveRegion)]
        found = [k.compiled for r in regions for k in r.compiled.values()]
        return found + [entry[0] for cache in self.vm.dyn_compiled.values() for entry in cache.values()]

    @property
    def compile_stats(self) -> VMCompileStats:
        stats = VMCompileStats(len(self.compiled_modules()))
        for m in self.compiled_modules():
            for name in ("kernels", "distinct", "from_cache", "seconds"):
                setattr(stats, name, getattr(stats, name) + getattr(m.compile_stats, name, 0))
        return stats

    def _compiled_one(self):
        modules = self.compiled_modules()
        if not modules:
            raise LatheError("the VM compiles its regions when they first run: run the module first")
        return modules[0]

    @property
    def num_threads(self) -> int:
        return self._compiled_one().num_threads

    @property
    def target(self):
        return self._compiled_one().target

    def benchmark(self, repeat: int = 100, warmup_seconds: float = 1.0) -> list[float]:
        """Seconds of each of `repeat` runs on the last run's inputs (as CompiledModule.benchmark
        times the inputs bound now), after a wall-clock warm-up; every run goes through `run()`
        (the VM's loop, the pool, the kernels)."""
        if self._last is None:
            raise LatheError("benchmark() times the inputs of the last run: run the module first")
        args = self._last
        clock = time.perf_counter
        end = clock() + warmup_seconds
        while clock() < end:
            self.vm.run(self.entry, args)
        times = []
        for _ in range(repeat):
            t0 = clock()
            self.vm.run(self.entry, args)
            times.append(clock() - t0)
        return times

    def profile(self, *inputs, **named):
        raise LatheError(
            "profile() is for the graph executor: the VM's kernels are compiled per region and shape",
            note="profile a model whose shapes are static with executor='graph'",
        )

    def run(self, *inputs, out=None, **named):
        from lathe.runtime.interpreter import bind_arguments

        if out is not None:
            raise LatheError(
                "run(out=...) is for the graph executor: the VM's result shapes are known only at run time"
            )
        if len(inputs) > len(self.input_names):
            raise LatheError(f"@{self.entry} takes {len(self.input_names)} inputs, got {len(inputs)}")
        given = dict(zip(self.input_names, inputs))
        twice = set(given) & set(named)
        if twice:
            raise LatheError(f"input {', '.join(sorted(twice))} given by position and by name")
        f = self.vm.functions[self.entry]
        inputs = {**given, **named}
        if set(inputs) <= set(self.input_names) and len(inputs) == len(self.input_names):
            args = [check_value(n, inputs[n], t) if n in inputs else self.checked[n] for n, t in self.types.items()]
        else:  # something missing or unknown: bind_arguments says what
            args, _ = bind_arguments(f, inputs, self.checked)
        self._last = args
        return self.vm.run(self.entry, args)
