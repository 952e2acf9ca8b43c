"""specialize-control-flow: fold what is known at compile time out of control flow and `?` shapes.

The graph-level counterpart of TVM's DynamicToStatic plus the constant-branch and known-callee
parts of its FoldConstant and Inline: run before the static pipeline, it turns a module whose
control flow and dynamic shapes depend only on what is known here (a constant condition, a
closure called where it is made, a shape that is static after all) into a static one, which then
compiles to the graph executor; what stays dynamic is left to the VM, smaller. Until nothing
changes:

- a `graph.if` on a constant condition is replaced by the branch it takes;
- a `graph.call_value` of a `graph.fn` made in scope is replaced by a copy of its body;
- a `graph.match` of a value whose constructors are known here (a `graph.construct` in scope)
  is replaced by the clause it takes, the pattern's variables read as the fields they bind;
- `graph.shape_of` of a static tensor is a constant, and a `graph.dyn` whose values are all
  constants is the static op they make (TVM's dyn.* → static);
- a graph op whose operands are all constants and whose result is small is evaluated (the
  shape arithmetic between `shape_of` and a `dyn` op), as fold-constant does;
- an op whose result has `?` dimensions is built again through its type inference, so shapes
  known now become static (only where every use takes a more specific type: graph ops, branch
  and loop-body yields, and the entry's return, whose function type follows);
- then whatever is left unused (fn values, constants, ops) is erased.

Unlike every other pass it takes modules with control flow and `?` dimensions: that is what it
is for (pipelines.DYNAMIC_PASSES).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, i64
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects import graph
from lathe.dialects.reference import constant_value, evaluate
from lathe.errors import LatheError

FOLD_ELEMENTS = 1024
"""Results of all-constant ops are folded up to this many elements (shape arithmetic, not weights)."""


def _constant(v: SSAValue):
    """`v`'s value if it is a constant, or a tuple of constants (as the interpreter holds it)."""
    if isinstance(v.owner, graph.ConstantOp):
        return constant_value(v.owner)
    if isinstance(v.owner, graph.TupleOp):
        fields = [_constant(x) for x in v.owner.operands]
        return None if any(f is None for f in fields) else tuple(fields)
    return None


def _inline_block(block: Block, before: Operation, mapping: dict[SSAValue, SSAValue]) -> list[SSAValue]:
    """Copies of `block`'s ops (its terminator aside) placed before `before`, block arguments
    read as `mapping` says; the values its graph.yield gives."""
    for op in block.ops:
        if isinstance(op, graph.YieldOp):
            return [mapping.get(v, v) for v in op.values]
        new = op.clone(value_mapper=mapping)
        Rewriter.insert_op(new, InsertPoint.before(before))
    raise AssertionError("a region ends with graph.yield")


def _select_branch(op: graph.IfOp) -> bool:
    cond = _constant(op.cond)
    if cond is None:
        return False
    branch = op.then_region if bool(cond) else op.else_region
    (value,) = _inline_block(branch.block, op, {})
    op.result.replace_all_uses_with(value)
    Rewriter.erase_op(op)
    return True


def _inline_call(op: graph.CallValueOp) -> bool:
    fn = op.callee.owner
    if not isinstance(fn, graph.FnOp):
        return False
    block = fn.body.block
    (value,) = _inline_block(block, op, dict(zip(block.args, op.args)))
    op.result.replace_all_uses_with(value)
    Rewriter.erase_op(op)
    return True


def _known_match(pattern, v: SSAValue, bound: list[SSAValue]) -> bool | None:
    """Whether `v` matches `pattern`, as far as the ops that made it say (None: not known here)."""
    if isinstance(pattern, graph.VarPattern):
        bound.append(v)
        return True
    if isinstance(pattern, graph.WildcardPattern):
        return True
    made = v.owner
    if isinstance(pattern, graph.ConstructorPattern) and isinstance(made, graph.ConstructOp):
        if made.ctor != pattern.ctor:
            return False
    elif not (isinstance(pattern, graph.TuplePattern) and isinstance(made, graph.TupleOp)):
        return None
    for p, field in zip(pattern.fields, made.operands):
        known = _known_match(p, field, bound)
        if known is not True:
            return known
    return True


def _select_clause(op: graph.MatchOp) -> bool:
    for pattern, clause in zip(op.patterns, op.clauses):
        bound: list[SSAValue] = []
        known = _known_match(pattern, op.data, bound)
        if known is None:
            return False
        if known:
            block = clause.block
            (value,) = _inline_block(block, op, dict(zip(block.args, bound)))
            op.result.replace_all_uses_with(value)
            Rewriter.erase_op(op)
            return True
    return False  # a match? that no clause matches: the run reports it


def _static_shape(op: graph.ShapeOfOp) -> bool:
    t = op.data.type
    if not isinstance(t, TensorType) or graph.is_dynamic(t):
        return False
    Rewriter.replace_op(op, graph.ConstantOp.from_array(np.asarray(t.get_shape(), np.int64), i64))
    return True


def _static_dyn(op: graph.DynOp) -> bool:
    k = op.data_count
    values = [_constant(v) for v in op.args[k:]]
    if any(v is None for v in values):
        return False
    data = list(op.args[:k])
    try:
        props = op.static_props([v.type for v in data], values)  # type: ignore[arg-type]
        static = op.target.create_inferred(data, props)
    except graph.ShapeError as e:  # constant values the op cannot take: known wrong now, said now
        if any(graph.is_dynamic(v.type) for v in data):  # or not known until the data's shapes are
            return False
        given = ", ".join(f"{b.data}={np.asarray(v).tolist()}" for b, v in zip(op.bind, values))
        raise LatheError(f"graph.dyn {op.op.data} with {given}: {e}") from None
    Rewriter.replace_op(op, static)
    return True


def _fold(op: graph.GraphOp) -> bool:
    if isinstance(op, graph.ConstantOp | graph.TupleOp | graph.TupleGetItemOp):
        return False
    t = op.results[0].type
    if not isinstance(t, TensorType) or graph.is_dynamic(t) or int(np.prod(t.get_shape())) > FOLD_ELEMENTS:
        return False
    args = [_constant(v) for v in op.operands]
    if any(a is None for a in args):
        return False
    try:
        result = np.asarray(evaluate(op, *args))
    except (ValueError, LatheError):  # left for the run to report where it happens
        return False
    Rewriter.replace_op(op, graph.ConstantOp.from_array(result, t.element_type))
    return True


def _takes_refined(use_op: Operation, called: set[str]) -> bool:
    """Whether `use_op` accepts an operand of a more specific type than it was built for."""
    if isinstance(use_op, graph.GraphOp | graph.ShapeOfOp | graph.DynOp):
        return True
    if isinstance(use_op, graph.YieldOp):
        return isinstance(use_op.parent_op(), graph.IfOp | graph.WhileOp | graph.MatchOp)
    if isinstance(use_op, func.ReturnOp):
        f = use_op.parent_op()
        return isinstance(f, func.FuncOp) and f.sym_name.data not in called
    return False


def _refine(op: graph.GraphOp, called: set[str]) -> bool:
    """Build `op` again through its type inference where that makes a `?` static."""
    t = op.results[0].type
    if not graph.is_dynamic(t):
        return False
    try:
        new_t = type(op).infer_type([v.type for v in op.operands], dict(op.properties))
    except graph.ShapeError:  # operands now static that the op cannot take: the run reports it
        return False
    if new_t == t or not graph.refines(new_t, t):
        return False
    if not all(_takes_refined(u.operation, called) for r in op.results for u in r.uses):
        return False
    Rewriter.replace_op(op, type(op).create_inferred(list(op.operands), dict(op.properties)))
    return True


def _erase_unused(module: ModuleOp) -> None:
    pure = (graph.GraphOp, graph.FnOp, graph.ShapeOfOp, graph.DynOp, graph.IfOp, graph.ConstructOp, graph.MatchOp)
    changed = True
    while changed:
        changed = False
        for op in reversed(list(module.walk())):
            if isinstance(op, pure) and not any(r.uses for r in op.results):
                Rewriter.erase_op(op)
                changed = True


def _retype_entries(module: ModuleOp, called: set[str]) -> None:
    for f in module.ops:
        if not isinstance(f, func.FuncOp) or f.is_declaration or f.sym_name.data in called:
            continue
        ret = f.body.block.last_op
        if isinstance(ret, func.ReturnOp):
            outs = [v.type for v in ret.operands]
            f.function_type = func.FunctionType.from_lists(list(f.function_type.inputs.data), outs)


def specialize(module: ModuleOp) -> bool:
    """Fold everything known at compile time (see the module's docstring); whether anything changed."""
    called = {op.callee.root_reference.data for op in module.walk() if isinstance(op, func.CallOp)}
    rules = (
        (graph.IfOp, _select_branch),
        (graph.CallValueOp, _inline_call),
        (graph.MatchOp, _select_clause),
        (graph.ShapeOfOp, _static_shape),
        (graph.DynOp, _static_dyn),
        (graph.GraphOp, _fold),
    )
    any_change = False
    changed = True
    while changed:
        changed = False
        for op in list(module.walk()):
            if op.parent is None:  # erased or moved by an earlier rewrite of this sweep
                continue
            for kind, rule in rules:
                if isinstance(op, kind) and rule(op):  # type: ignore[arg-type]
                    changed = True
                    break
            else:
                if isinstance(op, graph.GraphOp) and _refine(op, called):
                    changed = True
        any_change |= changed
    _erase_unused(module)
    _retype_entries(module, called)
    return any_change


@dataclass(frozen=True)
class SpecializeControlFlow(ModulePass):
    """Constant conditions select their branch, known callees inline, static shapes fold in."""

    name = "specialize-control-flow"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        specialize(op)
