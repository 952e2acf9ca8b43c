"""The reference interpreter: runs graph-dialect IR with numpy.

It is the oracle every numeric test compares the compiler against. What each op computes
is the op's own numpy reference (dialects/reference.py); the interpreter walks functions,
calls and bindings.
"""

from __future__ import annotations

import sys
from collections import ChainMap
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import FileLineColLoc, MemRefType, ModuleOp, TensorType
from xdsl.ir import Attribute, Block, Operation, SSAValue

from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import param_names
from lathe.dialects.reference import REFERENCE, check_value, evaluate
from lathe.errors import LatheError

_GLUE_OPS = (func.FuncOp, func.CallOp, func.ReturnOp, graph.GraphOp, graph.ControlOp)
# Calls (of functions and of function values) nested deeper than this are a recursion with no
# base case, or one too deep to run: stopped with a LatheError. Each call is a few Python
# frames, so a run raises Python's recursion limit to fit (`run`).
MAX_CALL_DEPTH = 1000
_FRAMES_PER_CALL = 8


@dataclass(frozen=True, eq=False)
class Closure:
    """A function value: its `graph.fn` and the values in scope where it was made."""

    fn: graph.FnOp
    env: Mapping[SSAValue, object]


@dataclass(frozen=True, eq=False)
class ADTValue:
    """A value of an ADT: the constructor that made it and its fields (Relay's ADT object)."""

    ctor: str
    fields: tuple

    def __repr__(self) -> str:
        return self.ctor + (f"({', '.join(map(repr, self.fields))})" if self.fields else "")


def match_pattern(pattern: Attribute, value, bound: list) -> bool:
    """Whether `value` matches `pattern`; the values its variables bind are appended to `bound`."""
    if isinstance(pattern, graph.VarPattern):
        bound.append(value)
        return True
    if isinstance(pattern, graph.TuplePattern):
        return all(match_pattern(p, v, bound) for p, v in zip(pattern.fields, value))
    if isinstance(pattern, graph.ConstructorPattern):
        if value.ctor != pattern.ctor.data:
            return False
        return all(match_pattern(p, v, bound) for p, v in zip(pattern.fields, value.fields))
    return True  # the wildcard


def no_clause_matches(op: graph.MatchOp, value) -> LatheError:
    """A `match?` that covers no clause for `value`: the op, where it was written, and the value's constructor."""
    made = f"a value made by {value.ctor}" if isinstance(value, ADTValue) else "the value"
    return LatheError(f"graph.match{_where(op)}: no clause matches {made}", note="match? need not cover every value")


def _where(op: Operation) -> str:
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return f" at {loc.filename.data}:{loc.line.data}:{loc.column.data}"
    return ""


class Interpreter:
    def __init__(self, module: ModuleOp):
        self.functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        _check_graph_level(module)
        self.depth = 0

    def run(self, name: str, args: list):
        """`@name(args)`, the entry of a run: with room on Python's stack for MAX_CALL_DEPTH calls."""
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, MAX_CALL_DEPTH * _FRAMES_PER_CALL + 2000))
        try:
            return self.call(name, args)
        except RecursionError:  # nesting of another kind (a deep chain of branches)
            raise LatheError(f"@{name}: the program nests too deeply to run") from None
        finally:
            sys.setrecursionlimit(limit)

    def call(self, name: str, args: list):
        f = self.functions[name]
        if f.is_declaration:
            raise LatheError(f"@{name} is only declared (it has no body): the interpreter has nothing to run")
        with self.frame(f"@{name}"):
            return self.run_block(f.body.block, dict(zip(f.body.block.args, args)))

    def apply(self, closure: Closure, args: list):
        block = closure.fn.body.block
        with self.frame("a fn"):
            return self.run_block(block, ChainMap(dict(zip(block.args, args)), closure.env))  # type: ignore[arg-type]

    @contextmanager
    def frame(self, what: str):
        if self.depth >= MAX_CALL_DEPTH:
            raise LatheError(
                f"calls nested deeper than {MAX_CALL_DEPTH} (in {what}): a recursion with no base case?",
                note="each recursive call must come nearer to a branch that does not recurse",
            )
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def run_block(self, block, env):
        """The ops of a function body, a branch or a fn body, in order; the block's value."""
        for op in block.ops:
            if isinstance(op, func.ReturnOp | graph.YieldOp):
                vals = [env[v] for v in op.operands]
                return vals[0] if len(vals) == 1 else tuple(vals)
            self.step(op, env)
        raise LatheError("a block has no return")

    def step(self, op: Operation, env) -> None:
        if isinstance(op, func.CallOp):
            out = self.call(op.callee.root_reference.data, [env[a] for a in op.arguments])
            if len(op.results) == 1:
                env[op.results[0]] = out
            else:
                env.update(zip(op.results, out if isinstance(out, tuple) else (out,)))
        elif isinstance(op, graph.IfOp):
            branch = op.then_region if bool(env[op.cond]) else op.else_region
            env[op.result] = self.run_block(branch.block, env)
        elif isinstance(op, graph.WhileOp):
            env.update(zip(op.outs, self.loop(op, [env[v] for v in op.inits], env)))
        elif isinstance(op, graph.ShapeOfOp):
            env[op.result] = np.asarray(np.shape(env[op.data]), np.int64)
        elif isinstance(op, graph.DynOp):
            env[op.result] = self.run_dyn(op, [env[a] for a in op.args])
        elif isinstance(op, graph.FnOp):
            env[op.result] = Closure(op, env)
        elif isinstance(op, graph.ConstructOp):
            env[op.result] = ADTValue(op.ctor.data, tuple(env[v] for v in op.fields))
        elif isinstance(op, graph.MatchOp):
            env[op.result] = self.match(op, env[op.data], env)
        elif isinstance(op, graph.CallValueOp):
            env[op.result] = self.apply(env[op.callee], [env[a] for a in op.args])
        elif isinstance(op, graph.ConstantOp) or type(op) in REFERENCE:
            env[op.results[0]] = self.evaluate(op, [env[a] for a in op.operands])
        else:
            raise LatheError(f"the reference interpreter cannot run '{op.name}'")

    def match(self, op: graph.MatchOp, value, env):
        """The first clause whose pattern `value` matches, run with the pattern's variables bound."""
        for pattern, clause in zip(op.patterns, op.clauses):
            bound: list = []
            if match_pattern(pattern, value, bound):
                block = clause.block
                return self.run_block(block, ChainMap(dict(zip(block.args, bound)), env))  # type: ignore[arg-type]
        raise no_clause_matches(op, value)

    def loop(self, op: graph.WhileOp, carried: list, env) -> list:
        """A `graph.while`: the last carried values, then each scanned value stacked per
        iteration (a copy of what the body gave, in the interpreter as in the VM)."""
        n, cond, body = op.carried, op.cond.block, op.body.block
        scans: list[list] = [[] for _ in op.outs[n:]]
        while True:
            scope = ChainMap(dict(zip(cond.args, carried)), env)
            if not bool(self.run_block(cond, scope)):  # type: ignore[arg-type]
                break
            out = self.run_block(body, ChainMap(dict(zip(body.args, carried)), env))  # type: ignore[arg-type]
            out = list(out) if len(body.last_op.operands) > 1 else [out]  # type: ignore[union-attr]
            carried = out[:n]
            for got, value in zip(scans, out[n:]):
                got.append(np.asarray(value))
        return [*carried, *(stack_scans(got, r.type) for got, r in zip(scans, op.outs[n:]))]

    def run_dyn(self, op: graph.DynOp, args: list):
        """A `graph.dyn`: the static op its values make, evaluated on the data operands."""
        k = op.data_count
        return self.evaluate(dyn_static_op(op, args[:k], args[k:]), args[:k])

    def evaluate(self, op: Operation, args: list):
        if isinstance(op, graph.GraphOp) and any(graph.is_dynamic(r.type) for r in op.results):
            op = _concrete_op(op, args)  # references that read the result type (reshape) need it static
        try:
            return evaluate(op, *args)
        except ValueError as e:  # shapes only known now, that the op cannot take (numpy says why)
            shapes = ", ".join(map(shape_str, args))
            raise LatheError(f"{op.name}: cannot compute it on operands of shapes {shapes}: {e}") from None


def _concrete_op(op: graph.GraphOp, args: list) -> Operation:
    """`op` built again over its operands' run-time types (detached), so its result type is
    static; a shape it cannot take is a LatheError naming the op and the shapes."""
    block = Block(arg_types=[concrete_type(a) for a in args])
    try:
        return type(op).create_inferred(list(block.args), dict(op.properties))
    except graph.ShapeError as e:
        shapes = ", ".join(map(shape_str, args))
        raise LatheError(f"{op.name}: cannot compute it on operands of shapes {shapes}: {e}") from None


def dyn_static_op(op: graph.DynOp, data: list, values: list) -> Operation:
    """The static op a `graph.dyn` is for these operands: its shapes checked, a mismatch a
    LatheError naming the op and the shapes and values it was given."""
    try:
        return op.static_op([concrete_type(v) for v in data], [np.asarray(v) for v in values])
    except graph.ShapeError as e:
        shapes = ", ".join(map(shape_str, data))
        given = ", ".join(f"{b.data}={np.asarray(v).tolist()}" for b, v in zip(op.bind, values))
        raise LatheError(f"graph.dyn {op.op.data}: on operands of shapes {shapes} with {given}: {e}") from None


def shape_str(value) -> str:
    """A run-time value's shape for a message: a tuple's fields each (numpy cannot shape a tuple
    of tensors that differ, which is when a message needs it)."""
    if isinstance(value, tuple):
        return "(" + ", ".join(map(shape_str, value)) + ("," if len(value) == 1 else "") + ")"
    return str(np.shape(value))


def concrete_type(value) -> Attribute:
    """The static type of a run-time value (a tuple's of its fields)."""
    if isinstance(value, tuple):
        return graph.tuple_type([concrete_type(v) for v in value])
    value = np.asarray(value)
    return TensorType(graph.DTYPES[np.dtype(value.dtype).name], list(value.shape))


def stack_scans(values: list[np.ndarray], t: TensorType) -> np.ndarray:
    if not values:  # no iteration ran: an empty stack, its unknown dimensions 0
        return np.zeros([0, *(max(d, 0) for d in t.get_shape()[1:])], np_dtype(t.element_type))
    shapes = {v.shape for v in values}
    if len(shapes) > 1:
        raise LatheError(f"graph.while: the scanned values differ in shape between iterations: {sorted(shapes)}")
    return np.stack(values)


def _check_graph_level(module: ModuleOp) -> None:
    """The interpreter is the graph level's oracle: te or loop IR (after lowering) has no
    numpy reference, and met half-way through a run it would fail on an odd op."""
    for op in module.walk():
        if op is module or isinstance(op, _GLUE_OPS):
            continue
        f = op if isinstance(op, func.FuncOp) else next((p for p in _ancestors(op) if isinstance(p, func.FuncOp)), None)
        where = f" in @{f.sym_name.data}" if f is not None else ""
        raise LatheError(
            f"the reference interpreter runs graph-level IR only, but '{op.name}'{where} is below it",
            note="interpret the module before lowering it, or run the lowered module with lathe.compile",
        )


def _ancestors(op: Operation):
    p = op.parent_op()
    while p is not None:
        yield p
        p = p.parent_op()


def bind_arguments(
    f: func.FuncOp,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray] | None,
    fill_random: bool = False,
    seed: int = 0,
    where: str = "",
) -> tuple[list[np.ndarray], list[str]]:
    """Match a function's parameters by name with inputs and params, checking types.

    Returns the arguments in order and the names of those filled with seeded
    random values (only when `fill_random`).
    """
    params = params or {}
    rng = np.random.default_rng(seed)
    args, filled = [], []
    names = param_names(f)
    for what, given in (("input", inputs), ("params entry", params)):
        unknown = set(given) - set(names)
        if unknown:
            raise LatheError(
                f"{where}@{f.sym_name.data} has no parameter named {', '.join(sorted(unknown))} (given as {what})",
                note="its parameters: " + ", ".join(names),
            )
    for name, arg in zip(names, f.body.block.args):
        t = arg.type
        if name in inputs:
            value = inputs[name]
        elif name in params:
            value = params[name]
        elif fill_random and isinstance(t, TensorType | MemRefType) and not graph.is_dynamic(t):  # (a ? has no size)
            dt = np_dtype(t.element_type)
            shape = tuple(t.get_shape())
            if np.issubdtype(dt, np.floating):
                value = rng.standard_normal(shape).astype(dt)
            else:
                value = rng.integers(0, 10, shape).astype(dt)
            filled.append(name)
        else:
            raise LatheError(
                f"{where}no value for parameter %{name} of @{f.sym_name.data}",
                note=f"expected {graph.type_str(t)} in the inputs or the params file",
            )
        args.append(check_value(name, value, t, where))
    return args, filled


def interpret(module: ModuleOp, params: Mapping[str, np.ndarray] | None = None, entry: str = "main", **inputs):
    """Run `entry` with numpy; parameters are bound from `inputs`, then `params`."""
    it = Interpreter(module)
    if entry not in it.functions:
        raise LatheError(f"the module has no function @{entry}")
    args, _ = bind_arguments(it.functions[entry], inputs, params)
    return it.run(entry, args)
