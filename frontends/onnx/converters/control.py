"""Control flow: `If`, `Loop` and `Scan`, their subgraphs imported into the regions of graph.if
and graph.while. An `If` whose condition is known at import time (torch's shape-only `If`s, once
shapes are folded) becomes the branch it takes."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX, TensorType, i1, i64
from xdsl.ir import Attribute, Block, SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError
from lathe.frontends.onnx.importer import Node, value_shape
from lathe.frontends.onnx.registry import converts


def _scalar_value(n: Node, v: SSAValue, what: str) -> SSAValue:
    """A one-element tensor as a scalar (ONNX allows shape (1,) for conditions and trip counts)."""
    shape = value_shape(v)
    if shape == []:
        return v
    if graph.is_dynamic(v.type) or int(np.prod(shape)) != 1:
        raise LatheError(f"{n.where}: the {what} must have one element, got {graph.type_str(v.type)}")
    return n.emit("reshape", v, newshape=[])


def _close(block: Block, values: list[SSAValue]) -> None:
    block.add_op(graph.YieldOp.create(operands=values))


def _pack(block: Block, outs: list[SSAValue]) -> None:
    """A branch gives one value: its outputs, as a tuple when there are several."""
    if len(outs) == 1:
        _close(block, outs)
        return
    tup = graph.TupleOp.create_inferred(outs)
    block.add_op(tup)
    _close(block, [tup.result])


@converts("If")
def _if(n: Node):
    cond = n.opt_const(0)
    if cond is not None:  # known here: the branch it takes, in place
        taken = "then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"
        return n.subgraph(taken, inline=True)[1]
    c = _scalar_value(n, n.x(0), "condition")
    then_block, then_outs = n.subgraph("then_branch")
    else_block, else_outs = n.subgraph("else_branch")
    if len(then_outs) != len(else_outs):
        raise LatheError(f"{n.where}: the branches give {len(then_outs)} and {len(else_outs)} outputs")
    _pack(then_block, then_outs)
    _pack(else_block, else_outs)
    op = graph.IfOp.build(c, then_block, else_block)
    op.location = n.location
    n.imp.add(op)
    if len(then_outs) == 1:
        return op.result
    return [n.emit(graph.TupleGetItemOp, op.result, index=k) for k in range(len(then_outs))]


def _widen(n, what: str, names, types, gave) -> list:
    """A loop's carried types joined with what its body gives them (a dimension that changes
    becomes ?), or a LatheError naming the value whose types cannot join."""
    widened = [graph.join_types(t, u) for t, u in zip(types, gave)]
    if None in widened:
        k = widened.index(None)
        raise LatheError(
            f"{n.where}: {what} '{names[k]}' enters as {graph.type_str(types[k])} "
            f"and the body gives {graph.type_str(gave[k])}"
        )
    return widened


def _discard(block: Block) -> None:
    """A body imported with carried types that turned out too narrow: its ops read values of
    the enclosing graph, so they are erased, not just dropped, to leave no uses behind."""
    for op in reversed(list(block.ops)):
        block.erase_op(op, safe_erase=False)


@converts("Loop")
def _loop(n: Node):
    """ONNX's Loop as graph.while: the carried values are the iteration number, the condition
    and the ONNX loop-carried values; the loop runs while the iteration number is below the
    trip count M (when given) and the condition holds (when given)."""
    body_graph = n.attr("body")
    if body_graph is None:
        raise LatheError(f"{n.where}: attribute 'body' (a graph) is required")
    g = body_graph.g
    count = len(n.inputs) - 2
    if len(g.input) != count + 2 or len(g.output) < count + 1:
        raise LatheError(
            f"{n.where}: the body takes {len(g.input)} inputs and gives {len(g.output)} outputs "
            f"for {count} loop-carried values (it takes 2 + N and gives 1 + N + K)"
        )
    trips = _scalar_value(n, n.x(0), "trip count M") if n.has(0) else None
    first = _scalar_value(n, n.x(1), "condition") if n.has(1) else n.scalar(True, "bool")
    zero = n.scalar(0, "int64")
    inits = [zero, first, *(n.x(2 + k) for k in range(count))]
    names = [i.name for i in g.input]
    types: list[Attribute] = [v.type for v in inits]
    while True:  # widen the carried types until the body keeps them (a dimension that grows is ?)
        body, outs = n.imp.subgraph(g, list(zip(names, types)))
        gave = [types[0], types[1], *(v.type for v in outs[1 : count + 1])]
        widened = _widen(n, "loop-carried value", names, types, gave)
        if widened == types:
            break
        _discard(body)
        types = widened  # type: ignore[assignment]
    i, _ = body.args[0], body.args[1]
    one = graph.ConstantOp.scalar(1, i64)
    body.add_op(one)
    step = graph.make_op("add", [i, one.result])
    body.add_op(step)
    cond_out = outs[0]
    if value_shape(cond_out) != []:
        flat = graph.make_op("reshape", [cond_out], newshape=[])
        body.add_op(flat)
        cond_out = flat.results[0]
    if not (isinstance(cond_out.type, TensorType) and cond_out.type.element_type == i1):
        raise LatheError(f"{n.where}: the body's condition output is {graph.type_str(cond_out.type)}, not bool")
    _close(body, [step.results[0], cond_out, *outs[1:]])

    check = Block(arg_types=types)
    going = check.args[1]
    if trips is not None:
        below = graph.make_op("less", [check.args[0], trips])
        both = graph.make_op("logical_and", [below.results[0], going])
        check.add_op(below)
        check.add_op(both)
        going = both.results[0]
    _close(check, [going])
    op = graph.WhileOp.build(inits, check, body)
    op.location = n.location
    n.imp.add(op)
    return list(op.outs[2:])


@converts("Scan", since=9)
def _scan(n: Node):
    """ONNX's Scan (opset 9 on) as graph.while: the carried values are the iteration number and
    the N state variables; each iteration takes slice t (T - 1 - t for a reversed input) of the
    M scan inputs along their axes, the body gives the next states and K scan outputs, which the
    while stacks on a new first axis and which are then reversed and moved to their axes as the
    attributes say. T is the scan inputs' length on their axes (known only at run time for a
    `?`)."""
    body_graph = n.attr("body")
    if body_graph is None:
        raise LatheError(f"{n.where}: attribute 'body' (a graph) is required")
    g = body_graph.g
    m = n.attr("num_scan_inputs")
    inputs = [n.x(i) for i in range(len(n.inputs))]
    count = len(inputs) - m
    if m is None or m < 1 or count < 0:
        raise LatheError(f"{n.where}: num_scan_inputs must be between 1 and the {len(inputs)} inputs")
    states, scanned = inputs[:count], inputs[count:]
    outputs = len(g.output) - count
    if len(g.input) != len(inputs) or outputs < 0:
        raise LatheError(
            f"{n.where}: the body takes {len(g.input)} inputs and gives {len(g.output)} outputs for "
            f"{count} state variables and {m} scan inputs (it takes N + M and gives N + K)"
        )
    in_axes = [
        graph.normalize_axis("Scan", a, len(value_shape(x)))
        for a, x in zip(n.attr("scan_input_axes", [0] * m), scanned)
    ]
    in_reversed = [bool(d) for d in n.attr("scan_input_directions", [0] * m)]
    trips = _scan_length(n, scanned[0], in_axes[0])
    zero = n.scalar(0, "int64")
    names = [i.name for i in g.input]
    types: list[Attribute] = [zero.type, *(v.type for v in states)]
    while True:  # widen the state types until the body keeps them, as for Loop
        body = Block(arg_types=types)
        step = body.args[0]
        given = dict(zip(names[:count], body.args[1:]))
        for name, x, axis, back in zip(names[count:], scanned, in_axes, in_reversed):
            given[name] = _scan_slice(body, x, step, trips, axis, back)
        body, outs = n.imp.subgraph(g, [], block=body, given=given)
        gave = [types[0], *(v.type for v in outs[:count])]
        widened = _widen(n, "state variable", ["iteration", *names], types, gave)
        if widened == types:
            break
        _discard(body)
        types = widened  # type: ignore[assignment]
    one = graph.ConstantOp.scalar(1, i64)
    body.add_op(one)
    nxt = graph.make_op("add", [body.args[0], one.result])
    body.add_op(nxt)
    _close(body, [nxt.results[0], *outs])
    check = Block(arg_types=types)
    below = graph.make_op("less", [check.args[0], trips])
    check.add_op(below)
    _close(check, [below.results[0]])
    op = graph.WhileOp.build([zero, *states], check, body)
    op.location = n.location
    n.imp.add(op)
    results = list(op.outs[1 : 1 + count])
    out_axes = n.attr("scan_output_axes", [0] * outputs)
    out_reversed = n.attr("scan_output_directions", [0] * outputs)
    for y, axis, back in zip(op.outs[1 + count :], out_axes, out_reversed):
        if back:  # iteration t's value at T - 1 - t
            y = n.emit("strided_slice", y, begin=[-1], end=[-(2**62)], strides=[-1], axes=[0])
        rank = len(value_shape(y))
        axis = graph.normalize_axis("Scan", axis, rank)
        if axis:
            perm = [*range(1, axis + 1), 0, *range(axis + 1, rank)]
            y = n.emit("transpose", y, axes=perm)
        results.append(y)
    return results


def _scan_length(n: Node, x: SSAValue, axis: int) -> SSAValue:
    """The number of iterations: the first scan input's length on its axis, as an int64 scalar."""
    size = value_shape(x)[axis]
    if size != DYNAMIC_INDEX:
        return n.scalar(size, "int64")
    shape = graph.ShapeOfOp.build(x)
    n.imp.add(shape)
    return n.emit("take", shape.result, n.scalar(axis, "int64"), axis=0)


def _scan_slice(block: Block, x: SSAValue, step: SSAValue, trips: SSAValue, axis: int, back: bool) -> SSAValue:
    """Slice `step` (T - 1 - step when `back`) of `x` along `axis`, the axis dropped."""
    at = step
    if back:
        one = graph.ConstantOp.scalar(1, i64)
        last = graph.make_op("subtract", [trips, one.result])
        rev = graph.make_op("subtract", [last.results[0], step])
        for op in (one, last, rev):
            block.add_op(op)
        at = rev.results[0]
    take = graph.make_op("take", [x, at], axis=axis)
    block.add_op(take)
    return take.results[0]
