"""The VM's instruction set, and the compiler from the graph dialect to it.

A program is one `VMFunction` per function of the module and per `graph.fn`, each a flat list
of instructions over numbered registers, in the manner of Relay's VM: control flow is jumps
(`JumpIfNot`, `Goto`), calls push a frame (`Call`, `CallClosure`, `Ret`), a closure is a
function and the values it captures (`MakeClosure`), and a primitive region (a run of graph ops
with no control flow between them) runs as Relay's `invoke_packed` does: `SpecializeRegion`
gives the region's kernel for its inputs' shapes and the shapes of its outputs (the shape
function: the region specialised, its types inferred), `AllocStorage` takes memory for each
output from the pool, `AllocTensor` views it with the run-time shape, and `InvokeRegion` runs
the kernel into those tensors. A register's last use is known from the instruction list (a
liveness analysis over its jumps), and a `Kill` after it gives the register's memory back to
the pool. Instructions are small frozen classes; the VM dispatches on their type through a
table (runtime/vm.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType, TensorType, TupleType
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue

from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.errors import LatheError

# -- primitive regions -----------------------------------------------------------------


@dataclass(eq=False)
class PrimitiveRegion:
    """A run of control-flow-free graph ops of one block: what it reads from outside (constants
    aside: they are copied in), what it gives to the rest of the program, and its compiled
    module for each signature it has run with."""

    ops: list[Operation]
    inputs: list[SSAValue]
    outputs: list[SSAValue]
    compiled: dict[tuple, object] = field(default_factory=dict)


def _is_primitive(op: Operation) -> bool:
    """A graph op a compiled region can run: not a constant (a step of its own), and not a tuple
    that holds an ADT value (only the VM carries those)."""
    if not isinstance(op, graph.GraphOp) or isinstance(op, graph.ConstantOp):
        return False
    return not any(graph.is_adt(v.type) for v in (*op.operands, *op.results))


def _computes(op: Operation) -> bool:
    return not isinstance(op, graph.TupleOp | graph.TupleGetItemOp)


def plan_block(block: Block) -> list[Operation | PrimitiveRegion]:
    """The block's ops in order, each maximal run of primitive ops made one PrimitiveRegion.
    Constants stay single steps (the VM's branches and calls may read them too) and do not end
    a run; a run that only packs or unpacks tuples is left to the VM, having nothing to compile."""
    steps: list[Operation | PrimitiveRegion] = []
    run: list[Operation] = []

    def close() -> None:
        if any(map(_computes, run)):
            steps.append(_region(run))
        else:
            steps.extend(run)
        run.clear()

    for op in block.ops:
        if _is_primitive(op):
            run.append(op)
        elif isinstance(op, graph.ConstantOp):
            steps.append(op)
        else:
            close()
            steps.append(op)
    close()
    return steps


def _region(ops: list[Operation]) -> PrimitiveRegion:
    inside = set(ops)
    inputs: list[SSAValue] = []
    for op in ops:
        for v in op.operands:
            if v.owner not in inside and not isinstance(v.owner, graph.ConstantOp) and v not in inputs:
                inputs.append(v)
    outputs = [r for op in ops for r in op.results if any(u.operation not in inside for u in r.uses)]
    return PrimitiveRegion(list(ops), inputs, outputs)


# -- the instructions ------------------------------------------------------------------
# Each names the fields it reads and writes (registers, or tuples of them), which is all the
# liveness analysis needs to know of it.


class Instruction:
    READS: tuple[str, ...] = ()
    WRITES: tuple[str, ...] = ()

    def registers(self, names: tuple[str, ...]) -> tuple[int, ...]:
        out: list[int] = []
        for n in names:
            r = getattr(self, n)
            out.extend(r if isinstance(r, tuple) else (r,))
        return tuple(out)

    def __str__(self) -> str:
        parts = []
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, PrimitiveRegion):
                v = f"region({len(v.ops)} ops)"
            elif isinstance(v, Operation):
                v = v.name
            elif isinstance(v, Attribute):
                v = graph.type_str(v)
            elif isinstance(v, tuple) and any(isinstance(x, Attribute) for x in v):
                v = "(" + ", ".join("-" if x is None else graph.type_str(x) for x in v) + ")"
            elif f.name in self.READS + self.WRITES:
                v = " ".join(f"r{x}" for x in v) if isinstance(v, tuple) else f"r{v}"
            parts.append(f"{f.name}={v}")
        return f"{type(self).__name__} {', '.join(parts)}"


@dataclass(frozen=True, eq=False)
class LoadConst(Instruction):
    """A `graph.constant`'s value (decoded once per VM)."""

    dst: int
    op: graph.ConstantOp
    WRITES = ("dst",)


@dataclass(frozen=True, eq=False)
class Move(Instruction):
    dst: int
    src: int
    READS, WRITES = ("src",), ("dst",)


@dataclass(frozen=True, eq=False)
class MakeTuple(Instruction):
    dst: int
    srcs: tuple[int, ...]
    READS, WRITES = ("srcs",), ("dst",)


@dataclass(frozen=True, eq=False)
class GetItem(Instruction):
    dst: int
    src: int
    index: int
    READS, WRITES = ("src",), ("dst",)


@dataclass(frozen=True, eq=False)
class ShapeOf(Instruction):
    """`graph.shape_of`: the tensor's shape as an int64 vector, read on the host."""

    dst: int
    src: int
    READS, WRITES = ("src",), ("dst",)


@dataclass(frozen=True, eq=False)
class SpecializeRegion(Instruction):
    """The region's kernel for its inputs' dtypes and shapes (compiled on first sight, then
    cached) into `kernel`, and the shape of each leaf of its outputs into `shapes`. `bound`
    names the inputs that are parameters bound from the params file: given to the compiler as
    constants, not passed when the kernel runs."""

    kernel: int
    region: PrimitiveRegion
    args: tuple[int, ...]
    shapes: tuple[int, ...]
    bound: tuple[str | None, ...]
    given: tuple[int, ...]  # the args less the bound ones (fixed for the VM's life): the signature's
    READS, WRITES = ("args",), ("kernel", "shapes")


@dataclass(frozen=True, eq=False)
class AllocStorage(Instruction):
    """Memory for a tensor of the shape in `shape`, from the pool (64-byte aligned)."""

    dst: int
    shape: int
    dtype: np.dtype
    READS, WRITES = ("shape",), ("dst",)


@dataclass(frozen=True, eq=False)
class AllocTensor(Instruction):
    """A tensor of the run-time shape in `shape` over the storage in `storage`."""

    dst: int
    storage: int
    shape: int
    dtype: np.dtype
    READS, WRITES = ("storage", "shape"), ("dst",)


@dataclass(frozen=True, eq=False)
class InvokeRegion(Instruction):
    """Runs the kernel on `args` (the region's inputs less the bound ones), writing the
    tensors `outs` (one per leaf of its outputs); `dsts` get the outputs, leaves packed again
    into the tuples the region gives (`layout`: per output, None for a tensor, else its type)."""

    kernel: int
    args: tuple[int, ...]
    outs: tuple[int, ...]
    dsts: tuple[int, ...]
    layout: tuple[Attribute | None, ...]
    READS, WRITES = ("kernel", "args", "outs"), ("dsts",)


@dataclass(frozen=True, eq=False)
class InvokeDyn(Instruction):
    """A `graph.dyn`: the static op its values make, compiled per shapes and values (cached),
    run into a tensor from the pool."""

    dst: int
    op: graph.DynOp
    args: tuple[int, ...]
    READS, WRITES = ("args",), ("dst",)


@dataclass(frozen=True, eq=False)
class MakeClosure(Instruction):
    """A function value: the `graph.fn`'s function and the captured values (its free
    variables), which are its callee frame's first registers."""

    dst: int
    fn: graph.FnOp
    captures: tuple[int, ...]
    READS, WRITES = ("captures",), ("dst",)


@dataclass(frozen=True, eq=False)
class Call(Instruction):
    """`@callee(args)` in a new frame; its value to `dsts` (a tuple unpacked over several)."""

    callee: str
    args: tuple[int, ...]
    dsts: tuple[int, ...]
    READS, WRITES = ("args",), ("dsts",)


@dataclass(frozen=True, eq=False)
class CallClosure(Instruction):
    dst: int
    closure: int
    args: tuple[int, ...]
    READS, WRITES = ("closure", "args"), ("dst",)


@dataclass(frozen=True, eq=False)
class Ret(Instruction):
    """Returns `srcs` (a tuple of them if several) to the caller's frame."""

    srcs: tuple[int, ...]
    READS = ("srcs",)


@dataclass(frozen=True, eq=False)
class JumpIfNot(Instruction):
    cond: int
    target: int
    READS = ("cond",)


@dataclass(frozen=True, eq=False)
class Goto(Instruction):
    target: int


@dataclass(frozen=True, eq=False)
class NewList(Instruction):
    """An empty list, for the values a loop scans."""

    dst: int
    WRITES = ("dst",)


@dataclass(frozen=True, eq=False)
class ScanAppend(Instruction):
    list: int
    src: int
    READS = ("list", "src")


@dataclass(frozen=True, eq=False)
class ScanStack(Instruction):
    """The scanned values stacked on a new first axis (`type`: the loop result's, for an
    empty stack's shape)."""

    dst: int
    list: int
    type: Attribute
    READS, WRITES = ("list",), ("dst",)


@dataclass(frozen=True, eq=False)
class MakeADT(Instruction):
    """`graph.construct`: a value of an ADT, made by `ctor` from the fields (Relay's AllocADT)."""

    dst: int
    ctor: str
    fields: tuple[int, ...]
    READS, WRITES = ("fields",), ("dst",)


@dataclass(frozen=True, eq=False)
class GetField(Instruction):
    """A field of an ADT value (a pattern's sub-value)."""

    dst: int
    src: int
    index: int
    READS, WRITES = ("src",), ("dst",)


@dataclass(frozen=True, eq=False)
class JumpIfNotCtor(Instruction):
    """A pattern's test: jump unless the ADT value was made by `ctor` (Relay's GetTag and If in one)."""

    src: int
    ctor: str
    target: int
    READS = ("src",)


@dataclass(frozen=True, eq=False)
class MatchFail(Instruction):
    """No clause of a `match?` matched the value: a LatheError naming the op."""

    src: int
    op: graph.MatchOp
    READS = ("src",)


@dataclass(frozen=True, eq=False)
class Kill(Instruction):
    """The registers are dead: their memory goes back to the pool (unless still read through
    another register, a tuple or a closure)."""

    regs: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Loop(Instruction):
    """A whole `graph.while` whose condition is integer scalars, computed on the host, and whose
    body is one primitive region: the VM's fast path for loops over time (an RNN's steps). The
    carried values go from one step's kernel outputs straight to the next step's inputs, never
    through registers, the pool or a condition kernel; the region's signature is looked up
    until the carried values' shapes stop changing, then not again.

    Values are numbered as the handler lists them: the carried values (`inits` give them first),
    then `outside` (registers read from outside the loop), then the condition's constants
    (`consts`), then each condition op's result. `cond` is the condition's ops with their
    operands' numbers, `cond_value` the number it yields; `feeds` numbers the body region's
    inputs, `nexts` what the body yields for each carried value and each scan (a number, or
    ~j for the region's output j); `dsts` take the final carried values, then the stacked scans."""

    dsts: tuple[int, ...]
    inits: tuple[int, ...]
    outside: tuple[int, ...]
    consts: tuple[graph.ConstantOp, ...]
    cond: tuple[tuple[Operation, tuple[int, ...]], ...]
    cond_value: int
    region: PrimitiveRegion
    bound: tuple[str | None, ...]  # per region input, as SpecializeRegion's
    feeds: tuple[int, ...]
    nexts: tuple[int, ...]
    scan_types: tuple[Attribute, ...]
    READS, WRITES = ("inits", "outside"), ("dsts",)

    def __str__(self) -> str:
        cond = "; ".join(f"{op.name}({', '.join(f'v{s}' for s in srcs)})" for op, srcs in self.cond) or "-"
        return (
            f"Loop dsts={' '.join(f'r{r}' for r in self.dsts)}, inits={' '.join(f'r{r}' for r in self.inits)}, "
            f"outside={' '.join(f'r{r}' for r in self.outside)}, cond=[{cond}] -> v{self.cond_value}, "
            f"body=region({len(self.region.ops)} ops)"
        )


BRANCHES = (JumpIfNot, JumpIfNotCtor, Goto)  # each has a `target`
ENDS = (Ret, MatchFail)  # no instruction follows these


@dataclass(eq=False)
class VMFunction:
    """A function's code: `params` registers take the arguments (a closure's captured values
    first), `num_regs` registers in all."""

    name: str
    code: list[Instruction]
    params: int
    num_regs: int
    tracked: tuple[int, ...]  # the registers that may hold pool memory

    def __str__(self) -> str:
        lines = [f"{self.name} (params {self.params}, registers {self.num_regs}):"]
        lines += [f"  {k:3d}  {ins}" for k, ins in enumerate(self.code)]
        return "\n".join(lines)


@dataclass(eq=False)
class VMProgram:
    """Every function of the module and every `graph.fn` (keyed by the op), compiled."""

    functions: dict[str, VMFunction]
    closures: dict[graph.FnOp, VMFunction]
    plans: dict[Block, list[Operation | PrimitiveRegion]]  # each block's steps, its regions among them

    def __str__(self) -> str:
        return "\n".join(str(f) for f in [*self.functions.values(), *self.closures.values()])


# -- the compiler ------------------------------------------------------------------------


def leaf_types(t: Attribute) -> list[Attribute]:
    if isinstance(t, TupleType):
        return [x for s in t.types.data for x in leaf_types(s)]
    return [t]


def free_values(region: Region) -> list[SSAValue]:
    """The values that ops in `region` (at any depth) read from outside it, in order of use."""
    seen: list[SSAValue] = []
    for op in region.walk():
        for v in op.operands:
            if v not in seen and not _defined_in(v, region):
                seen.append(v)
    return seen


def _defined_in(v: SSAValue, region: Region) -> bool:
    block = v.block if isinstance(v, BlockArgument) else v.owner.parent_block()  # type: ignore[union-attr]
    while block is not None:
        if block.parent is region:
            return True
        op = block.parent_op()
        block = op.parent_block() if op is not None else None
    return False


class _FunctionCompiler:
    """One function's (or fn's) blocks, nested branches and loops flattened into jumps."""

    def __init__(self, program: _ProgramCompiler, name: str, params: list[SSAValue]):
        self.program, self.name = program, name
        self.regs: dict[SSAValue, int] = {}
        self.code: list[Instruction] = []
        self.count = 0
        for v in params:
            self.regs[v] = self.new()
        self.params = len(params)

    def new(self) -> int:
        self.count += 1
        return self.count - 1

    def reg(self, v: SSAValue) -> int:
        r = self.regs.get(v)
        if r is None:
            raise LatheError(f"the VM: a value is read before it is defined (in {self.name})")
        return r

    def define(self, v: SSAValue) -> int:
        r = self.regs[v] = self.new()
        return r

    def emit(self, ins: Instruction) -> int:
        self.code.append(ins)
        return len(self.code) - 1

    def block(self, block: Block) -> tuple[int, ...]:
        """Code for the block's ops; the registers its return or yield gives."""
        for step in self.program.plan(block):
            if isinstance(step, PrimitiveRegion):
                self.region(step)
            elif isinstance(step, func.ReturnOp | graph.YieldOp):
                return tuple(self.reg(v) for v in step.operands)
            else:
                OP_COMPILERS.get(type(step), _cannot)(self, step)
        raise LatheError(f"the VM: a block of {self.name} has no return")

    def value_of(self, regs: tuple[int, ...]) -> int:
        """One register for a block's value: a tuple of several."""
        if len(regs) == 1:
            return regs[0]
        dst = self.new()
        self.emit(MakeTuple(dst, regs))
        return dst

    def region(self, region: PrimitiveRegion) -> None:
        bound = self.program.bound
        args = tuple(self.reg(v) for v in region.inputs)
        given = tuple(r for v, r in zip(region.inputs, args) if v not in bound)
        leaves = [t for v in region.outputs for t in leaf_types(v.type)]
        kernel, shapes = self.new(), tuple(self.new() for _ in leaves)
        names = tuple(bound.get(v) for v in region.inputs)
        self.emit(SpecializeRegion(kernel, region, args, shapes, names, given))
        outs = []
        for shape, t in zip(shapes, leaves):
            storage, tensor = self.new(), self.new()
            dtype = np_dtype(t.element_type)  # type: ignore[attr-defined]
            self.emit(AllocStorage(storage, shape, dtype))
            self.emit(AllocTensor(tensor, storage, shape, dtype))
            outs.append(tensor)
        dsts = tuple(self.define(v) for v in region.outputs)
        layout = tuple(v.type if isinstance(v.type, TupleType) else None for v in region.outputs)
        self.emit(InvokeRegion(kernel, given, tuple(outs), dsts, layout))


def _cannot(fc: _FunctionCompiler, op: Operation) -> None:
    raise LatheError(f"the VM cannot run '{op.name}'")


def _constant(fc: _FunctionCompiler, op: graph.ConstantOp) -> None:
    if any(u.operation not in fc.program.in_regions for u in op.result.uses):  # else copied into each
        fc.emit(LoadConst(fc.define(op.result), op))


def _tuple(fc: _FunctionCompiler, op: graph.TupleOp) -> None:
    fc.emit(MakeTuple(fc.define(op.results[0]), tuple(fc.reg(v) for v in op.operands)))


def _get_item(fc: _FunctionCompiler, op: graph.TupleGetItemOp) -> None:
    fc.emit(GetItem(fc.define(op.result), fc.reg(op.tuple), op.attrs()["index"]))


def _shape_of(fc: _FunctionCompiler, op: graph.ShapeOfOp) -> None:
    fc.emit(ShapeOf(fc.define(op.result), fc.reg(op.data)))


def _dyn(fc: _FunctionCompiler, op: graph.DynOp) -> None:
    fc.emit(InvokeDyn(fc.define(op.result), op, tuple(fc.reg(v) for v in op.args)))


def _call(fc: _FunctionCompiler, op: func.CallOp) -> None:
    args = tuple(fc.reg(v) for v in op.arguments)
    fc.emit(Call(op.callee.root_reference.data, args, tuple(fc.define(r) for r in op.results)))


def _fn(fc: _FunctionCompiler, op: graph.FnOp) -> None:
    captured = free_values(op.body)
    fc.program.closure(op, captured)
    fc.emit(MakeClosure(fc.define(op.result), op, tuple(fc.reg(v) for v in captured)))


def _call_value(fc: _FunctionCompiler, op: graph.CallValueOp) -> None:
    args = tuple(fc.reg(v) for v in op.args)
    fc.emit(CallClosure(fc.define(op.result), fc.reg(op.callee), args))


def _if(fc: _FunctionCompiler, op: graph.IfOp) -> None:
    result = fc.new()
    jump = fc.emit(JumpIfNot(fc.reg(op.cond), -1))
    fc.emit(Move(result, fc.value_of(fc.block(op.then_region.block))))
    goto = fc.emit(Goto(-1))
    fc.code[jump] = JumpIfNot(fc.reg(op.cond), len(fc.code))
    fc.emit(Move(result, fc.value_of(fc.block(op.else_region.block))))
    fc.code[goto] = Goto(len(fc.code))
    fc.regs[op.result] = result


def _host_scalar(t: Attribute) -> bool:
    """An integer or bool tensor of at most one element: what the host computes as well as a kernel, exactly."""
    if not isinstance(t, TensorType) or not isinstance(t.element_type, IntegerType):
        return False
    shape = t.get_shape()
    return all(d >= 0 for d in shape) and int(np.prod(shape)) <= 1


def _made_in(v: SSAValue, block: Block) -> bool:
    """Whether an op of `block` gives `v` (not an argument, not a value from outside)."""
    return isinstance(v.owner, Operation) and v.owner.parent is block


def _fast_loop(fc: _FunctionCompiler, op: graph.WhileOp) -> Loop | None:
    """`op` as one `Loop` instruction, where its condition computes on integer scalars only and
    its body is one primitive region (and the constants copied into it); else None."""
    n, cond, body = op.carried, op.cond.block, op.body.block
    if not all(isinstance(v.type, TensorType) for v in op.outs):
        return None
    steps = fc.program.plan(body)
    regions = [s for s in steps if isinstance(s, PrimitiveRegion)]
    if len(regions) != 1 or not isinstance(steps[-1], graph.YieldOp):
        return None
    (region,) = regions
    inside = set(region.ops)
    for s in steps[:-1]:
        if s is not region and not (
            isinstance(s, graph.ConstantOp) and all(u.operation in inside for u in s.result.uses)
        ):
            return None
    numbers: dict[SSAValue, int] = {}
    for k, (a, b) in enumerate(zip(cond.args, body.args)):
        numbers[a] = numbers[b] = k
    outside: list[int] = []

    def number(v: SSAValue) -> int:
        if v not in numbers:
            numbers[v] = n + len(outside)
            outside.append(fc.reg(v))
        return numbers[v]

    cond_steps = fc.program.plan(cond)
    ops: list[Operation] = []
    consts: list[graph.ConstantOp] = []
    for s in cond_steps[:-1]:
        if isinstance(s, graph.ConstantOp):
            continue
        if not isinstance(s, PrimitiveRegion):
            return None
        for o in s.ops:
            if len(o.results) != 1 or not all(_host_scalar(v.type) for v in (*o.operands, *o.results)):
                return None
            ops.append(o)
    region_outputs = {v: j for j, v in enumerate(region.outputs)}
    yields = steps[-1].operands
    if any(_made_in(v, body) and v not in region_outputs for v in yields):  # a constant of the body yielded
        return None
    feeds = tuple(number(v) for v in region.inputs)
    nexts = tuple(~region_outputs[v] if v in region_outputs else number(v) for v in yields)
    (go,) = cond_steps[-1].operands
    for v in [*(v for o in ops for v in o.operands), go]:  # outside values first: constants and results number after
        if not _made_in(v, cond) and not isinstance(v.owner, graph.ConstantOp):
            number(v)
    count = n + len(outside)

    def cond_number(v: SSAValue) -> int:
        nonlocal count
        if v not in numbers:  # a constant, read where the condition needs it
            numbers[v] = count
            consts.append(v.owner)  # type: ignore[arg-type]
            count += 1
        return numbers[v]

    for o in ops:
        for v in o.operands:
            if isinstance(v.owner, graph.ConstantOp):
                cond_number(v)
    if isinstance(go.owner, graph.ConstantOp):
        cond_number(go)
    cond_code = []
    for o in ops:
        cond_code.append((o, tuple(numbers[v] for v in o.operands)))
        numbers[o.results[0]] = count
        count += 1
    dsts = tuple(fc.define(v) for v in op.outs)
    return Loop(
        dsts,
        tuple(fc.reg(v) for v in op.inits),
        tuple(outside),
        tuple(consts),
        tuple(cond_code),
        numbers[go],
        region,
        tuple(fc.program.bound.get(v) for v in region.inputs),
        feeds,
        nexts,
        tuple(v.type for v in op.outs[n:]),
    )


def _while(fc: _FunctionCompiler, op: graph.WhileOp) -> None:
    """The carried values live in registers that the cond and body blocks' arguments name;
    the body's yield moves the next values into them (through temporaries: a parallel move).
    A loop over integer scalars with a one-region body is one `Loop` instead (the fast path)."""
    fast = _fast_loop(fc, op)
    if fast is not None:
        fc.emit(fast)
        return
    n, cond, body = op.carried, op.cond.block, op.body.block
    carried = [fc.new() for _ in range(n)]
    for r, v in zip(carried, op.inits):
        fc.emit(Move(r, fc.reg(v)))
    for r, a, b in zip(carried, cond.args, body.args):
        fc.regs[a] = fc.regs[b] = r
    scans = [fc.new() for _ in op.outs[n:]]
    for r in scans:
        fc.emit(NewList(r))
    top = len(fc.code)
    (go,) = fc.block(cond)
    exit_jump = fc.emit(JumpIfNot(go, -1))
    out = fc.block(body)
    temps = [fc.new() for _ in range(n)]
    for t, r in zip(temps, out[:n]):
        fc.emit(Move(t, r))
    for s, r in zip(scans, out[n:]):
        fc.emit(ScanAppend(s, r))
    for c, t in zip(carried, temps):
        fc.emit(Move(c, t))
    fc.emit(Goto(top))
    fc.code[exit_jump] = JumpIfNot(go, len(fc.code))
    for v, r in zip(op.outs[:n], carried):
        fc.emit(Move(fc.define(v), r))
    for v, s in zip(op.outs[n:], scans):
        fc.emit(ScanStack(fc.define(v), s, v.type))


def _construct(fc: _FunctionCompiler, op: graph.ConstructOp) -> None:
    fc.emit(MakeADT(fc.define(op.result), op.ctor.data, tuple(fc.reg(v) for v in op.fields)))


def _match(fc: _FunctionCompiler, op: graph.MatchOp) -> None:
    """Each clause in turn: its pattern's tests (a jump to the next clause on failure) and the
    reads of the sub-values its variables bind, then its body, then a jump to the end; after
    the last clause, a `MatchFail` for a `match?`. The last clause of a complete `match` is not
    tested: the verifier has proved that every value the others miss matches it."""
    result, data = fc.new(), fc.reg(op.data)
    ends = []
    for k, (pattern, clause) in enumerate(zip(op.patterns, op.clauses)):
        fails: list[int] = []
        bound: list[int] = []
        _pattern(fc, pattern, data, fails, bound, test=not (op.is_complete and k == len(op.clauses) - 1))
        for arg, r in zip(clause.block.args, bound):
            fc.regs[arg] = r
        fc.emit(Move(result, fc.value_of(fc.block(clause.block))))
        ends.append(fc.emit(Goto(-1)))
        for k in fails:
            fc.code[k] = replace(fc.code[k], target=len(fc.code))  # type: ignore[type-var]
    if not op.is_complete:
        fc.emit(MatchFail(data, op))
    for k in ends:
        fc.code[k] = Goto(len(fc.code))
    fc.regs[op.result] = result


def _pattern(
    fc: _FunctionCompiler, pattern: Attribute, src: int, fails: list[int], bound: list[int], test: bool
) -> None:
    if isinstance(pattern, graph.VarPattern):
        bound.append(src)
        return
    if isinstance(pattern, graph.WildcardPattern):
        return
    if isinstance(pattern, graph.ConstructorPattern):
        if test:
            fails.append(fc.emit(JumpIfNotCtor(src, pattern.ctor.data, -1)))
        read = GetField
    else:
        read = GetItem
    for k, sub in enumerate(pattern.fields):  # type: ignore[attr-defined]
        if not isinstance(sub, graph.WildcardPattern):
            field = fc.new()
            fc.emit(read(field, src, k))
            _pattern(fc, sub, field, fails, bound, test)


OP_COMPILERS = {
    graph.ConstantOp: _constant,
    graph.TupleOp: _tuple,
    graph.TupleGetItemOp: _get_item,
    graph.ShapeOfOp: _shape_of,
    graph.DynOp: _dyn,
    func.CallOp: _call,
    graph.FnOp: _fn,
    graph.CallValueOp: _call_value,
    graph.IfOp: _if,
    graph.WhileOp: _while,
    graph.ConstructOp: _construct,
    graph.MatchOp: _match,
}


class _ProgramCompiler:
    def __init__(self, bound: dict[SSAValue, str]):
        self.bound = bound
        self.closures: dict[graph.FnOp, VMFunction] = {}
        self.plans: dict[Block, list[Operation | PrimitiveRegion]] = {}
        self.in_regions: set[Operation] = set()  # the ops that run inside some primitive region

    def plan(self, block: Block) -> list[Operation | PrimitiveRegion]:
        plan = self.plans.get(block)
        if plan is None:
            plan = self.plans[block] = plan_block(block)
            self.in_regions.update(op for step in plan if isinstance(step, PrimitiveRegion) for op in step.ops)
        return plan

    def plan_all(self, region: Region) -> None:
        """Every block in `region` planned, so that a constant knows whether only regions read it."""
        for block in region.blocks:
            self.plan(block)
        for op in region.walk():
            for r in op.regions:
                for block in r.blocks:
                    self.plan(block)

    def function(self, name: str, block: Block, params: list[SSAValue]) -> VMFunction:
        fc = _FunctionCompiler(self, name, params)
        fc.emit(Ret(fc.block(block)))
        # registers that never hold pool memory need no Kill: constants, kernels, shapes, weights
        untracked = {
            r
            for ins in fc.code
            if isinstance(ins, LoadConst | SpecializeRegion | ShapeOf)
            for r in ins.registers(ins.WRITES)
        }
        untracked |= {r for v, r in fc.regs.items() if v in self.bound}
        code = with_kills(fc.code, untracked)
        return VMFunction(name, code, fc.params, fc.count, tuple(r for r in range(fc.count) if r not in untracked))

    def closure(self, op: graph.FnOp, captured: list[SSAValue]) -> None:
        if op not in self.closures:
            block = op.body.block
            self.closures[op] = self.function("a fn", block, [*captured, *block.args])


def compile_program(functions: dict[str, func.FuncOp], bound: dict[SSAValue, str]) -> VMProgram:
    """The module's functions as VM code. `bound`: entry parameters bound from the params file,
    by name (the regions that read them get them as compile-time constants)."""
    pc = _ProgramCompiler(bound)
    for f in functions.values():
        pc.plan_all(f.body)
    compiled = {
        name: pc.function(f"@{name}", f.body.block, list(f.body.block.args))
        for name, f in functions.items()
        if not f.is_declaration
    }
    return VMProgram(compiled, pc.closures, pc.plans)


# -- liveness ------------------------------------------------------------------------------


def _successors(code: list[Instruction], k: int) -> list[int]:
    ins = code[k]
    if isinstance(ins, ENDS):
        return []
    if isinstance(ins, Goto):
        return [ins.target]
    if isinstance(ins, BRANCHES):
        return [k + 1, ins.target]
    return [k + 1]


def liveness(code: list[Instruction]) -> tuple[list[set[int]], list[set[int]]]:
    """Per instruction, the registers live before it and after it (read later on some path
    before being written again): the backward dataflow fixpoint over the jumps."""
    n = len(code)
    succ = [_successors(code, k) for k in range(n)]
    reads = [set(ins.registers(ins.READS)) for ins in code]
    writes = [set(ins.registers(ins.WRITES)) for ins in code]
    live_in: list[set[int]] = [set() for _ in range(n)]
    live_out: list[set[int]] = [set() for _ in range(n)]
    changed = True
    while changed:
        changed = False
        for k in reversed(range(n)):
            out = set().union(*(live_in[s] for s in succ[k])) if succ[k] else set()
            new_in = reads[k] | (out - writes[k])
            if out != live_out[k] or new_in != live_in[k]:
                live_out[k], live_in[k], changed = out, new_in, True
    return live_in, live_out


def with_kills(code: list[Instruction], untracked: set[int] = frozenset()) -> list[Instruction]:  # type: ignore[assignment]
    """`code` with a `Kill` wherever registers die: after an instruction, those it reads or
    writes that are not live after it; where a branch lands (or is not taken), those live on
    some edge into it but not live in it. Jump targets are moved to the new positions (a jump
    lands on the kills of its target). Registers in `untracked` are left to the frame's end."""
    live_in, live_out = liveness(code)
    n = len(code)
    preds: list[list[int]] = [[] for _ in range(n)]
    for k in range(n):
        for s in _successors(code, k):
            preds[s].append(k)
    out: list[Instruction] = []
    start = [0] * n
    for k, ins in enumerate(code):
        start[k] = len(out)
        if any(isinstance(code[p], BRANCHES) or p != k - 1 for p in preds[k]):
            # (what a branch reads dies on the edge; a straight predecessor's kills follow it)
            entering: set[int] = set()
            for p in preds[k]:
                entering |= live_out[p]
                if isinstance(code[p], BRANCHES):
                    entering |= set(code[p].registers(code[p].READS))
            dead = entering - live_in[k] - untracked
            if dead:
                out.append(Kill(tuple(sorted(dead))))
        out.append(ins)
        if not isinstance(ins, (*ENDS, *BRANCHES)):
            dead = (set(ins.registers(ins.READS)) | set(ins.registers(ins.WRITES))) - live_out[k] - untracked
            if dead:
                out.append(Kill(tuple(sorted(dead))))
    for k, ins in enumerate(out):
        if isinstance(ins, BRANCHES):
            out[k] = replace(ins, target=start[ins.target])  # type: ignore[type-var]
    return out
