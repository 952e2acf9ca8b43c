"""Guards of a vectorized loop that do not depend on it, moved outside it (loop unswitching).

A split that does not divide its extent guards its iterations (`root < extent`), and
lower-te-to-loop puts that test around the innermost body. When the split axis is an outer
one — the pixels of a convolution's register tile, a row of a tiled copy — the test is the
same in every lane of the vectorized loop inside it, yet the `scf.if` in its body makes the
backend's vector emitter refuse the loop (nested control flow) and leave it to LLVM's loop
vectorizer, which sometimes unswitches it and sometimes emits scalar code. Outside the loop,
the test is one branch per vector loop, and the loop is plain vector code again.
"""

from __future__ import annotations

from xdsl.dialects import scf
from xdsl.ir import Block, Operation, Region, SSAValue

from lathe.dialects.loop import annotation_of


def _is_vectorized(op: Operation) -> bool:
    a = annotation_of(op)
    return isinstance(op, scf.ForOp) and a is not None and a.kind.data == "vectorize"


def _pure(op: Operation) -> bool:
    """Index and comparison arithmetic a guard is made of: no side effects, no trap (the
    divisions lower-te-to-loop emits for fused axes divide by a positive constant extent)."""
    return op.dialect_name() == "arith" and not op.regions


def _guard_of(loop: scf.ForOp) -> tuple[list[Operation], scf.IfOp] | None:
    """The loop's ops before a final `scf.if` (no else) that computes nothing, when every op
    the condition depends on is pure and loop-invariant; else None."""
    ops = list(loop.body.block.ops)
    if loop.results or len(ops) < 2 or not isinstance(ops[-2], scf.IfOp):
        return None
    guard = ops[-2]
    if guard.results or guard.false_region.blocks:
        return None
    inside = set(ops)
    invariant: set[SSAValue] = set()
    for op in ops[:-2]:
        if not _pure(op):
            return None
        if (
            all(v.owner not in inside or v in invariant for v in op.operands)
            and loop.body.block.args[0] not in op.operands
        ):
            invariant.update(op.results)
    cond = guard.cond
    if cond.owner in inside and cond not in invariant:
        return None
    return [op for op in ops[:-2] if set(op.results) <= invariant], guard


def unswitch_vector_guards(root: Operation) -> None:
    """`for v (vectorized) { pre; if c { body } }` with c invariant in v becomes
    `pre_c; if c { for v { pre_rest; body } }`, innermost loops first."""
    for loop in [op for op in root.walk() if _is_vectorized(op)][::-1]:
        assert isinstance(loop, scf.ForOp)
        found = _guard_of(loop)
        if found is None:
            continue
        hoisted, guard = found
        block = loop.parent_block()
        assert block is not None
        for op in hoisted:
            op.detach()
            block.insert_op_before(op, loop)
        cond = guard.cond
        then = guard.true_region.block
        for op in list(then.ops)[:-1]:  # (all but its yield)
            op.detach()
            loop.body.block.insert_op_before(op, guard)
        guard.detach()
        guard.erase()
        outer = Block()
        block.insert_op_before(scf.IfOp(cond, [], Region(outer)), loop)
        loop.detach()
        outer.add_ops([loop, scf.YieldOp()])
