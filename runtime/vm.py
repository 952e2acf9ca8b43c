"""The VM: runs what the graph executor cannot, control flow, function values and `?` shapes.

It walks the graph dialect as the reference interpreter does (calls, branches, closures and
the recursion depth limit are the interpreter's), but never computes an op with numpy: each
block is cut into *primitive regions*, maximal runs of graph ops with no control flow between
them, and a primitive region runs as native kernels compiled by the static pipeline. Shapes
are known only when a region runs, so each region is compiled once per concrete signature of
its inputs (dtypes and shapes) and the compiled module is cached: TVM's VM computes output
shapes with shape functions and runs kernels compiled for symbolic shapes; this VM
specialises per shape instead, so a `?` batch served at two sizes compiles each region twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, TensorType, TupleType
from xdsl.ir import Block, Operation, Region, SSAValue

from lathe.dialects import graph
from lathe.dialects.functions import recursive_function, set_param_names
from lathe.dialects.reference import check_value
from lathe.errors import LatheError
from lathe.runtime.interpreter import Interpreter, dyn_static_op


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
    return isinstance(op, graph.GraphOp) and not isinstance(op, graph.ConstantOp)


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


class VirtualMachine(Interpreter):
    """Runs @entry with control flow, closures and calls as the interpreter does, and every
    primitive region as native code: `compile_region(module, params)` compiles a specialised
    region (a `CompiledModule`, made by the API layer, which this layer may not import), the
    entry's parameters bound from the params file (`bound`) given to it as constants, so weight
    transforms fold at compile time as in the static pipeline."""

    def __init__(self, module: ModuleOp, compile_region: Callable[[ModuleOp, dict], object]):
        super().__init__(module)
        self.compile_region = compile_region
        self.plans: dict[Block, list[Operation | PrimitiveRegion]] = {}
        self.dyn_compiled: dict[graph.DynOp, dict[tuple, object]] = {}
        self.bound: dict[SSAValue, str] = {}  # entry parameters bound from params, by name
        self.constants: dict[graph.ConstantOp, np.ndarray] = {}
        self.compiles = 0

    def run_block(self, block, env):
        plan = self.plans.get(block)
        if plan is None:
            plan = self.plans[block] = plan_block(block)
        for step in plan:
            if isinstance(step, PrimitiveRegion):
                self.run_region(step, env)
            elif isinstance(step, func.ReturnOp | graph.YieldOp):
                vals = [env[v] for v in step.operands]
                return vals[0] if len(vals) == 1 else tuple(vals)
            else:
                self.step(step, env)
        raise LatheError("a block has no return")

    def step(self, op: Operation, env) -> None:
        if isinstance(op, graph.ConstantOp):  # decoded once, not per run
            value = self.constants.get(op)
            if value is None:
                value = self.constants[op] = self.evaluate(op, [])
            env[op.result] = value
            return
        super().step(op, env)

    def run_dyn(self, op: graph.DynOp, args: list):
        """A `graph.dyn` as native code: the static op its values make, compiled per shapes and
        values (what a kernel specialised on the value is) and cached."""
        k = op.data_count
        data = [np.asarray(a) for a in args[:k]]
        values = [np.asarray(v) for v in args[k:]]
        key = (tuple((x.dtype.str, x.shape) for x in data), tuple(tuple(v.reshape(-1).tolist()) for v in values))
        cache = self.dyn_compiled.setdefault(op, {})
        compiled = cache.get(key)
        if compiled is None:
            static = dyn_static_op(op, data, values)
            region = PrimitiveRegion([static], list(static.operands), [static.results[0]])
            compiled = cache[key] = self.compile_region(specialise(region, data), {})
            self.compiles += 1
        return compiled.run(*data)  # type: ignore[attr-defined]

    def run_region(self, region: PrimitiveRegion, env) -> None:
        values = [env[v] for v in region.inputs]
        leaves = [np.asarray(x) for v in values for x in _leaves(v)]
        key = tuple((x.dtype.str, x.shape) for x in leaves)
        compiled = region.compiled.get(key)
        bound = {v: self.bound[v] for v in region.inputs if v in self.bound}
        if compiled is None:
            params = {name: np.asarray(env[v]) for v, name in bound.items()}
            compiled = region.compiled[key] = self.compile_region(specialise(region, values, bound), params)
            self.compiles += 1
        given = [x for v, value in zip(region.inputs, values) if v not in bound for x in _leaves(value)]
        out = compiled.run(*given)  # type: ignore[attr-defined]
        if len(region.outputs) == 1:
            env[region.outputs[0]] = out
        else:
            env.update(zip(region.outputs, out))


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
        f = self.vm.functions[entry]
        self.types = types = {n: a.type for n, a in zip(names, f.body.block.args)}
        # checked (and made contiguous) once, not per run; check_value returns them as they are then
        self.checked = {n: check_value(n, v, types[n]) for n, v in self.params.items()}
        args = self.vm.functions[entry].body.block.args
        called = any(isinstance(op, func.CallOp) and op.callee.root_reference.data == entry for op in module.walk())
        if not called:  # (in a recursive entry, a parameter's value changes from call to call)
            self.vm.bound = {a: n for a, n in zip(args, names) if n in self.params}

    @property
    def compiles(self) -> int:
        """How many primitive regions have been compiled (once per region and input signature)."""
        return self.vm.compiles

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
        return self.vm.run(self.entry, args)
