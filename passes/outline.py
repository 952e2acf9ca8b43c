"""inline-calls and outline-kernels: shape the graph into kernels and glue.

After these passes @main holds only glue (calls to kernel functions, tuples,
large constants) and every kernel function — marked `lathe.kernel` — holds the
ops of one fused group, which lowers to exactly one loop-level function. The
fusion pass (fuse-ops) builds multi-op groups with the same `outline_group`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    FileLineColLoc,
    FusedLoc,
    LocationAttr,
    ModuleOp,
    NameLoc,
    NoneAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    UnknownLoc,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects import graph
from lathe.dialects.functions import KERNEL_ATTR, glue_functions, is_compute, is_kernel, recursive_function
from lathe.errors import LatheError


def is_scalar_constant(v: SSAValue) -> bool:
    return isinstance(v.owner, graph.ConstantOp) and isinstance(v.type, TensorType) and v.type.get_shape() == ()


@dataclass(frozen=True)
class InlineCalls(ModulePass):
    """Inline every call to a non-kernel function; drop functions left unused."""

    name = "inline-calls"
    entry: str = "main"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if (name := recursive_function(op)) is not None:  # inlining it would never end
            raise LatheError(
                f"inline-calls: @{name} calls itself, and a recursive function cannot be inlined",
                note="lathe.compile runs recursion on the VM (docs/vm.md)",
            )
        funcs = {f.sym_name.data: f for f in op.ops if isinstance(f, func.FuncOp)}
        changed = True
        depth = 0
        while changed:
            changed = False
            depth += 1
            if depth > 64:
                raise LatheError("inline-calls: recursion is not supported (call depth > 64)")
            for call in [c for c in op.walk() if isinstance(c, func.CallOp)]:
                callee = funcs.get(call.callee.root_reference.data)
                if callee is None or is_kernel(callee) or callee.is_declaration:  # nothing to inline
                    continue
                _inline(call, callee)
                changed = True
        used = {c.callee.root_reference.data for c in op.walk() if isinstance(c, func.CallOp)}
        for name, f in funcs.items():
            if name != self.entry and name not in used and not is_kernel(f) and self.entry in funcs:
                Rewriter.erase_op(f)


def _inline(call: func.CallOp, callee: func.FuncOp) -> None:
    mapping: dict[SSAValue, SSAValue] = dict(zip(callee.body.block.args, call.arguments))
    results: list[SSAValue] = []
    for op in callee.body.block.ops:
        if isinstance(op, func.ReturnOp):
            results = [mapping[v] for v in op.operands]
            break
        new = op.clone(value_mapper=mapping)
        Rewriter.insert_op(new, InsertPoint.before(call))
    for old, new in zip(call.results, results):
        old.replace_all_uses_with(new)
    Rewriter.erase_op(call)


def outline_group(fn: func.FuncOp, ops: Sequence[Operation], name: str) -> func.FuncOp | None:
    """Move `ops` (in program order) into a new kernel function called from `fn`."""
    group = set(ops)
    inputs: list[SSAValue] = []
    input_set: set[SSAValue] = set()  # a concatenate of thousands of values must not scan a list per value

    def cloned_into_kernel(v: SSAValue) -> bool:
        # scalar constants are cloned; a tuple feeding concatenate/stack is rebuilt inside
        return is_scalar_constant(v) or (isinstance(v.owner, graph.TupleOp) and v.owner not in group)

    for o in ops:
        for v in o.operands:
            srcs = list(v.owner.operands) if isinstance(v.owner, graph.TupleOp) and v.owner not in group else [v]
            for s in srcs:
                if s.owner not in group and s not in input_set and not is_scalar_constant(s):
                    inputs.append(s)
                    input_set.add(s)
    outputs = [r for o in ops for r in o.results if any(u.operation not in group for u in r.uses)]
    if not outputs:  # a dead group: nothing to compute
        for o in reversed(ops):
            Rewriter.erase_op(o)
        return None
    block = Block(arg_types=[v.type for v in inputs])
    mapping: dict[SSAValue, SSAValue] = dict(zip(inputs, block.args))
    for o in ops:
        for v in o.operands:
            if v not in mapping and cloned_into_kernel(v):
                for s in v.owner.operands:
                    if s not in mapping and is_scalar_constant(s):
                        c0 = s.owner.clone()
                        block.add_op(c0)
                        mapping[s] = c0.results[0]
                c = v.owner.clone(value_mapper=mapping)
                block.add_op(c)
                mapping[v] = c.results[0]
        new = o.clone(value_mapper=mapping)
        block.add_op(new)
    block.add_op(func.ReturnOp(*[mapping[v] for v in outputs]))
    kernel = func.FuncOp(
        name, ([v.type for v in inputs], [v.type for v in outputs]), Region(block), visibility="private"
    )
    kernel.attributes[KERNEL_ATTR] = UnitAttr()
    kernel.location = source_location(ops)
    call = func.CallOp(name, inputs, [v.type for v in outputs])
    Rewriter.insert_op(call, InsertPoint.before(ops[-1]))
    for old, new in zip(outputs, call.results):
        old.replace_all_uses_with(new)
    for o in reversed(ops):
        Rewriter.erase_op(o)
    module = fn.parent_op()
    assert isinstance(module, ModuleOp)
    module.body.block.add_op(kernel)
    return kernel


def carry_location(old: Operation, new_ops: Sequence[Operation]) -> Sequence[Operation]:
    """`new_ops`, each made to replace `old`, at old's location where a rewrite gave it none
    (as MLIR's rewriters do): what the profiler names a kernel's source lines by."""
    for o in new_ops:
        if isinstance(o.location, UnknownLoc):
            o.location = old.location
    return new_ops


def source_location(ops: Sequence[Operation]) -> LocationAttr:
    """A kernel's location: each graph op fused into it, named by its Relay name, at the op's
    own location (a line of Relay text, an ONNX node's name). A location, not an attribute:
    printing leaves it out, so kernels that differ only in where they came from still print,
    hash and tune as one."""
    return FusedLoc(
        [NameLoc(StringAttr(o.relay_name()), o.location) for o in ops if isinstance(o, graph.GraphOp)], NoneAttr()
    )


def kernel_sources(kernel: Operation) -> list[str]:
    """The graph ops a kernel was made from, as `file:line op` or `onnx-node op` (`? op`
    where a pass rewrote the op without carrying its location)."""

    def where(loc: Attribute) -> str:
        if isinstance(loc, FileLineColLoc):
            return f"{loc.filename.data}:{loc.line.data}"
        if isinstance(loc, FusedLoc):  # an op that stands for several (combine-parallel-dense)
            return "+".join(where(x) for x in loc.locations.data)
        if isinstance(loc, NameLoc):
            inner = where(loc.location)
            return loc.desc.data if inner == "?" else f"{inner} {loc.desc.data}"
        return "?"

    loc = kernel.location
    entries = loc.locations.data if isinstance(loc, FusedLoc) else ()
    return [f"{where(e.location)} {e.desc.data}" for e in entries if isinstance(e, NameLoc)]


class KernelNamer:
    """Unique kernel names: the anchor op's name (the op of highest pattern) then the
    others', numbered. The taken names are read from the module once, so naming n
    kernels costs O(n), not a scan of the module per kernel."""

    def __init__(self, module: ModuleOp):
        self.taken = {f.sym_name.data for f in module.ops if isinstance(f, func.FuncOp)}
        self.next: dict[str, int] = {}

    def __call__(self, ops: Sequence[Operation]) -> str:
        anchor = max(ops, key=lambda o: o.PATTERN if isinstance(o, graph.GraphOp) else 0)
        parts = [anchor.relay_name().replace(".", "_")] + [
            o.relay_name().replace(".", "_") for o in ops if o is not anchor and isinstance(o, graph.GraphOp)
        ]
        base = ("fused_" if len(ops) > 1 else "") + "_".join(parts)
        n = self.next.get(base, 0)
        while f"{base}_{n}" in self.taken:
            n += 1
        self.next[base] = n + 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"


@dataclass(frozen=True)
class OutlineKernels(ModulePass):
    """Every compute op of a glue function becomes its own kernel (no fusion)."""

    name = "outline-kernels"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        namer = KernelNamer(op)
        for fn in glue_functions(op):
            for o in list(fn.body.block.ops):
                if is_compute(o):
                    outline_group(fn, [o], namer([o]))
            # constants and tuples used only by kernels are now dead in the glue
            for o in reversed(list(fn.body.block.ops)):
                if isinstance(o, graph.ConstantOp | graph.TupleOp) and not o.results[0].uses:
                    Rewriter.erase_op(o)
