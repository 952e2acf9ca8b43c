"""Index-set splitting: a loop whose iterations fall into ranges on which the index
comparisons its body selects on are decided is split into one loop per range (TVM's
LoopPartition, MLIR's affine loop splitting).

A concatenation is one stage, `c < 64 ? in0[.., c] : c < 96 ? in1[.., c - 64] : ...` (each
read clamped in bounds, since a select evaluates both sides), so every element evaluates the
whole chain and loads from every input. The vector emitter sees clamped, non-affine indices
and gives the loop to LLVM, which gathers: DenseNet's concatenations of up to 32 inputs ran at
a tenth of the memory's bandwidth. Split by the ranges of c, each part has its comparisons
decided, its clamps inside their bounds and its selects resolved: a plain vector copy with its
fused epilogue. The same holds for any select on a comparison of loop indices with constants
(a pad's constant borders).

The default elementwise schedule fuses every axis and splits the fused one by the vector
width, so the channel is `(o rem Q) * W + lane` once the division rewrites of cleanup-loops
have taken the fused index apart (passes/index_arith.py); no loop runs over the channel alone.
Such a loop is first delinearized along Q (`for o < P*Q` becomes `for p < P { for q < Q }`,
o = p*Q + q, p keeping o's annotation), and the new loop over q is split.

Only the splitting points come from a formula; each part is then simplified by the ranges its
own constant bounds give, so a wrong point costs a part, never a result. A comparison a vector
straddles (an input whose channel count the width does not divide) stays undecided in the part
that holds it, which keeps the select chain.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects import arith, func, memref, scf
from xdsl.dialects.builtin import IndexType, IntegerAttr, IntegerType
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.pattern_rewriter import PatternRewriteWalker
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects.loop import annotation_of, constant_int
from lathe.passes.index_arith import Linear, Range, Ranges, SimplifyIndexDivision, linear

MAX_PARTS = 64
"""More parts than this (a concatenation of more inputs, or comparisons with many constants)
and the loop is left whole: each part is a copy of the body."""

Decision = bool | None


def _is_index(v: SSAValue) -> bool:
    return isinstance(v.type, IndexType)


def _selecting_comparisons(root: Operation) -> list[arith.CmpiOp]:
    """Index comparisons that choose a value (a select's condition), not guards of control flow."""
    return [
        op
        for op in root.walk()
        if isinstance(op, arith.CmpiOp)
        and _is_index(op.lhs)
        and any(isinstance(u.operation, arith.SelectOp) and u.index == 0 for u in op.result.uses)
    ]


def _difference(cmp: arith.CmpiOp) -> Linear:
    return linear(cmp.lhs).plus(linear(cmp.rhs).scaled(-1))


def _signed(d: Range, below: Callable[[int], bool], at_or_above: Callable[[int], bool]) -> Decision:
    """A signed comparison of lhs - rhs with 0 that holds for every value in d, or for none."""
    if below(d[1]) and below(d[0]):
        return True
    if at_or_above(d[0]) and at_or_above(d[1]):
        return False
    return None


_PREDICATES: dict[int, Callable[[Range], Decision]] = {  # arith.cmpi's predicate codes
    0: lambda d: True if d == (0, 0) else (False if d[0] > 0 or d[1] < 0 else None),  # eq
    1: lambda d: False if d == (0, 0) else (True if d[0] > 0 or d[1] < 0 else None),  # ne
    2: lambda d: _signed(d, lambda x: x < 0, lambda x: x >= 0),  # slt
    3: lambda d: _signed(d, lambda x: x <= 0, lambda x: x > 0),  # sle
    4: lambda d: _signed(d, lambda x: x > 0, lambda x: x <= 0),  # sgt
    5: lambda d: _signed(d, lambda x: x >= 0, lambda x: x < 0),  # sge
}
_UNSIGNED = {6: 2, 7: 3, 8: 4, 9: 5}  # ult, ule, ugt, uge: signed ones on non-negative operands


def decide(cmp: arith.CmpiOp, ranges: Ranges, difference: Linear | None = None) -> Decision:
    """The comparison's value where the ranges make it the same for every index they allow
    (`difference`: lhs - rhs as a linear form, when the caller has it already)."""
    pred = cmp.predicate.value.data
    if pred in _UNSIGNED:
        a, b = ranges(cmp.lhs), ranges(cmp.rhs)
        if a is None or b is None or a[0] < 0 or b[0] < 0:
            return None
        pred = _UNSIGNED[pred]
    d = (difference or _difference(cmp)).range(ranges)
    rule = _PREDICATES.get(pred)
    return None if d is None or rule is None else rule(d)


def _steps_of(atom: SSAValue, iv: SSAValue) -> int | None:
    """d where the atom is `iv div d` (d = 1: iv itself): it changes only at multiples of d."""
    if atom is iv:
        return 1
    owner = atom.owner
    if isinstance(owner, arith.DivUIOp) and owner.lhs is iv:
        d = constant_int(owner.rhs)
        return d if d is not None and d > 0 else None
    return None


def _breakpoints(d: Linear, iv: SSAValue, ranges: Ranges) -> set[int]:
    """Where `k*atom + rest` (lhs - rhs) may change sign, for rest at either end of its range,
    with the atom iv or `iv div d` (an NCHW channel of a fused index): next to -rest/k."""
    points: set[int] = set()
    for atom, k in d.terms.items():
        step = _steps_of(atom, iv)
        rest = Linear({a: c for a, c in d.terms.items() if a is not atom}, d.const).range(ranges)
        if step is None or rest is None:
            continue
        points |= {p * step for r in rest for f in [(-r) // k] for p in (f, f + 1)}
    return points


def _bounds(loop: scf.ForOp) -> tuple[int, int] | None:
    """Constant bounds of a unit-step loop that runs and carries no value (parts of a loop that
    carries one would have to hand it on)."""
    lb, ub, step = constant_int(loop.lb), constant_int(loop.ub), constant_int(loop.step)
    if loop.results or lb is None or ub is None or step != 1 or lb >= ub:
        return None
    return lb, ub


def _parts(loop: scf.ForOp, conds: list[arith.CmpiOp]) -> list[tuple[int, int]] | None:
    """The loop's range cut where any comparison's decision changes, adjacent ranges with the
    same decisions merged; None unless that gives at least two parts that decide something."""
    bounds = _bounds(loop)
    conds = [c for c in conds if loop.is_ancestor(c)]
    if bounds is None or not conds:
        return None
    lb, ub = bounds
    iv = loop.body.block.args[0]
    points = {lb, ub}
    differences = [_difference(c) for c in conds]
    whole = Ranges()
    for d in differences:
        points |= {p for p in _breakpoints(d, iv, whole) if lb < p < ub}
    if len(points) > 4 * MAX_PARTS:
        return None
    cuts = sorted(points)
    parts: list[tuple[int, int, tuple[Decision, ...]]] = []
    for s, e in zip(cuts, cuts[1:]):
        ranges = Ranges()
        ranges.memo[iv] = (s, e - 1)
        decisions = tuple(decide(c, ranges, d) for c, d in zip(conds, differences))
        if parts and parts[-1][2] == decisions:
            parts[-1] = (parts[-1][0], e, decisions)
        else:
            parts.append((s, e, decisions))
    if len(parts) < 2 or len(parts) > MAX_PARTS or all(d is None for p in parts for d in p[2]):
        return None
    return [(s, e) for s, e, _ in parts]


def _index(k: int) -> arith.ConstantOp:
    return arith.ConstantOp.from_int_and_width(k, IndexType())


def _fold_by_ranges(loop: scf.ForOp) -> None:
    """Comparisons, min/max and selects the loop's bounds decide, replaced by what they are (a
    decided comparison only becomes a constant where something other than a select reads it)."""
    ranges = Ranges()
    decided: dict[SSAValue, bool] = {}
    for op in list(loop.walk()):
        if isinstance(op, arith.CmpiOp) and _is_index(op.lhs):
            d = decide(op, ranges)
            if d is not None:
                decided[op.result] = d
            continue
        value = _folded(op, ranges, decided)
        if value is not None:
            op.results[0].replace_all_uses_with(value)
    for result, d in decided.items():
        if result.uses:
            c = arith.ConstantOp(IntegerAttr(int(d), IntegerType(1)))
            Rewriter.insert_op(c, _before(result.owner))
            result.replace_all_uses_with(c.result)


def _before(op: Operation) -> InsertPoint:
    return InsertPoint.before(op)


def _folded(op: Operation, ranges: Ranges, decided: dict[SSAValue, bool]) -> SSAValue | None:
    if isinstance(op, arith.SelectOp):
        c = decided.get(op.cond, constant_int(op.cond))
        return None if c is None else (op.lhs if c else op.rhs)
    pick = _MIN_MAX.get(type(op))
    if pick is None or not _is_index(op.results[0]):
        return None
    a, b = ranges(op.operands[0]), ranges(op.operands[1])
    if a is None or b is None or (isinstance(op, arith.MinUIOp | arith.MaxUIOp) and min(a[0], b[0]) < 0):
        return None
    first = pick(a, b)
    return None if first is None else op.operands[0 if first else 1]


_MIN_MAX: dict[type[Operation], Callable[[Range, Range], bool | None]] = {  # is operand 0 the result?
    arith.MinSIOp: lambda a, b: True if a[1] <= b[0] else (False if b[1] <= a[0] else None),
    arith.MinUIOp: lambda a, b: True if a[1] <= b[0] else (False if b[1] <= a[0] else None),
    arith.MaxSIOp: lambda a, b: True if a[0] >= b[1] else (False if b[0] >= a[1] else None),
    arith.MaxUIOp: lambda a, b: True if a[0] >= b[1] else (False if b[0] >= a[1] else None),
}


def _split(loop: scf.ForOp, parts: list[tuple[int, int]]) -> list[scf.ForOp]:
    """One copy of the loop per part, each with its part's constant bounds and simplified by
    them (the copies, in order). Halves first, recursively: each half drops the reads its bounds
    rule out before it is copied again, so a concatenation of n inputs copies about log2(n)
    bodies' worth of ops, not n."""
    _bound(loop, parts[0][0], parts[-1][1])
    _fold_by_ranges(loop)
    _erase_unused(loop)
    if len(parts) == 1:
        return [loop]
    mid = len(parts) // 2
    first = loop.clone()
    Rewriter.insert_op(first, _before(loop))
    return _split(first, parts[:mid]) + _split(loop, parts[mid:])


_DIVISIONS = (arith.DivUIOp, arith.DivSIOp, arith.RemUIOp, arith.RemSIOp, arith.FloorDivSIOp, arith.CeilDivSIOp)


def _hoist_invariants(loop: scf.ForOp) -> None:
    """Arithmetic in the loop that reads nothing the loop defines (a pixel's row and column
    under the channel loop), moved before it: computed once, not copied into every part."""
    for op in list(loop.walk()):
        if op is loop or op.dialect_name() != "arith" or op.regions:
            continue
        if isinstance(op, _DIVISIONS) and not (constant_int(op.operands[1]) or 0) > 0:
            continue  # might trap where the loop would not have run it
        if all(not loop.is_ancestor(_definer(v)) for v in op.operands):
            op.detach()
            Rewriter.insert_op(op, _before(loop))


def _definer(v: SSAValue) -> Operation:
    owner = v.owner
    if isinstance(owner, Block):
        parent = owner.parent_op()
        assert parent is not None
        return parent
    return owner


def _bound(loop: scf.ForOp, lb: int, ub: int) -> None:
    if constant_int(loop.lb) == lb and constant_int(loop.ub) == ub:
        return
    lo, hi = _index(lb), _index(ub)
    Rewriter.insert_op([lo, hi], _before(loop))
    loop.operands[0] = lo.result
    loop.operands[1] = hi.result


def _simplify(loop: scf.ForOp) -> None:
    """cleanup-loops' index-division rewrites inside the loop, which take a fused index apart
    (`(16*o + lane) rem 192` is `(o rem 12)*16 + lane`), and the ops they leave unused."""
    PatternRewriteWalker(SimplifyIndexDivision()).rewrite_region(loop.body)
    _erase_unused(loop)


def _erase_unused(loop: scf.ForOp) -> None:
    """Arithmetic and loads nothing uses, in one pass from the last op back (xDSL's region_dce
    iterates to a fixed point over effects, and cost more than the splitting on DenseNet)."""
    for op in reversed(list(loop.walk())):
        if op is loop or op.regions or any(r.uses for r in op.results):
            continue
        if op.dialect_name() in ("arith", "math") or isinstance(op, memref.LoadOp):
            Rewriter.erase_op(op)


def _split_points(o: SSAValue) -> list[int]:
    """The divisors Q of `o rem Q` in o's uses: where the index arithmetic takes o apart."""
    return sorted(
        {
            q
            for u in o.uses
            if isinstance(u.operation, arith.RemUIOp) and u.index == 0
            for q in [constant_int(u.operation.rhs)]
            if q is not None and q > 1
        }
    )


def _delinearized(loop: scf.ForOp, q_extent: int) -> scf.ForOp | None:
    """`for o < P*Q { body(o) }` as `for p < P { for q < Q { body(p*Q + q) } }` where every use
    of o divides it by, or takes its remainder by, a multiple or a divisor of Q; None otherwise.
    The loop is rebuilt, not changed: a clone can be tried and dropped."""
    bounds = _bounds(loop)
    o = loop.body.block.args[0]
    if bounds is None or bounds[0] != 0 or bounds[1] % q_extent or not 1 < q_extent < bounds[1]:
        return None
    for u in o.uses:
        d = constant_int(u.operation.operands[1]) if len(u.operation.operands) == 2 else None
        if not isinstance(u.operation, arith.DivUIOp | arith.RemUIOp) or u.index != 0 or d is None or d <= 0:
            return None
        if d % q_extent and q_extent % d:
            return None
    inner_block = Block(arg_types=[IndexType()])
    outer_block = Block(arg_types=[IndexType()])
    p, q = outer_block.args[0], inner_block.args[0]
    for op in list(loop.body.block.ops):
        op.detach()
        inner_block.add_op(op)
    for u in list(o.uses):
        use = u.operation
        d = constant_int(use.operands[1])
        assert d is not None
        new = _REBUILD[isinstance(use, arith.RemUIOp), d % q_extent == 0](p, q, q_extent, d)
        Rewriter.insert_op(new, _before(use))
        use.results[0].replace_all_uses_with(new[-1].results[0])
        Rewriter.erase_op(use)
    hint = o.name_hint or "i"
    p.name_hint, q.name_hint = f"{hint}_div{q_extent}", f"{hint}_rem{q_extent}"
    zero, one, p_ub, q_ub = _index(0), _index(1), _index(bounds[1] // q_extent), _index(q_extent)
    Rewriter.insert_op([zero, one, p_ub, q_ub], _before(loop))
    outer_block.add_ops([scf.ForOp(zero, q_ub, one, [], Region(inner_block)), scf.YieldOp()])
    outer = scf.ForOp(zero, p_ub, one, [], Region(outer_block))
    outer.attributes.update(loop.attributes)
    return outer


def _rem_within(p: SSAValue, q: SSAValue, big_q: int, d: int) -> list[Operation]:  # d | Q
    c = _index(d)
    return [c, arith.RemUIOp(q, c)]


def _rem_across(p: SSAValue, q: SSAValue, big_q: int, d: int) -> list[Operation]:  # Q | d
    m, qq = _index(d // big_q), _index(big_q)
    r = arith.RemUIOp(p, m)
    scaled = arith.MuliOp(r, qq)
    return [m, qq, r, scaled, arith.AddiOp(scaled, q)]


def _div_within(p: SSAValue, q: SSAValue, big_q: int, d: int) -> list[Operation]:  # d | Q
    m, dd = _index(big_q // d), _index(d)
    scaled = arith.MuliOp(p, m)
    part = arith.DivUIOp(q, dd)
    return [m, dd, scaled, part, arith.AddiOp(scaled, part)]


def _div_across(p: SSAValue, q: SSAValue, big_q: int, d: int) -> list[Operation]:  # Q | d
    m = _index(d // big_q)
    return [m, arith.DivUIOp(p, m)]


_REBUILD: dict[tuple[bool, bool], Callable[[SSAValue, SSAValue, int, int], list[Operation]]] = {
    # (is a remainder, is a multiple of Q) -> o's division in p and q
    (True, False): _rem_within,
    (True, True): _rem_across,
    (False, False): _div_within,
    (False, True): _div_across,
}


def _involves(cmp: arith.CmpiOp, iv: SSAValue) -> bool:
    return any(_steps_of(atom, iv) is not None for atom in _difference(cmp).terms)


def _enclosing_loops(op: Operation) -> list[scf.ForOp]:
    """The loops around the op, innermost first."""
    nest: list[scf.ForOp] = []
    parent = op.parent_op()
    while isinstance(parent, scf.ForOp):
        nest.append(parent)
        parent = parent.parent_op()
    return nest


def _is_parallel(loop: scf.ForOp) -> bool:
    return (a := annotation_of(loop)) is not None and a.kind.data == "parallel"


def _peel(loop: scf.ForOp, vector_loop: scf.ForOp, nest: list[scf.ForOp]) -> bool:
    """Split the outermost serial loop around `loop` that decides some of the comparisons
    `loop` decides, then `loop` in each part, on those comparisons only.

    A depthwise tile's pixel loop decides the column tests, but on its pixels alone every tile
    of a row keeps the tests of its first and last pixels (2 + 2 per 5x5 tap, of 7). The loop
    over tiles decides them too: split there first, the interior tiles test nothing and only
    the first and last tiles' pixel loops are split. Parallel loops are not cut (each part
    would be a pool call of its own), and the comparisons `loop` does not decide (a depthwise
    row's, uniform over the row) are left where they are."""
    depth = nest.index(loop)
    conds = [c for c in _selecting_comparisons(vector_loop) if _involves(c, loop.body.block.args[0])]
    outer = next((o for o in reversed(nest[depth + 1 :]) if not _is_parallel(o) and _parts(o, conds) is not None), None)
    if outer is None:
        return False
    parts = _parts(outer, conds)
    assert parts is not None
    _hoist_invariants(outer)
    for part in _split(outer, parts):
        for inner_vector in [op for op in part.walk() if _is_vector_loop(op)]:
            inner = _enclosing_loops(inner_vector)
            if len(inner) <= depth:
                continue
            pixel = inner[depth]
            left = [c for c in _selecting_comparisons(inner_vector) if _involves(c, pixel.body.block.args[0])]
            pixel_parts = _parts(pixel, left)
            if pixel_parts is not None:
                _hoist_invariants(pixel)
                _split(pixel, pixel_parts)
    return True


def _is_vector_loop(op: Operation) -> bool:
    return isinstance(op, scf.ForOp) and (a := annotation_of(op)) is not None and a.kind.data == "vectorize"


def _try_loop(loop: scf.ForOp, vector_loop: scf.ForOp, nest: list[scf.ForOp]) -> bool:
    """Split the loop (or an outer one first, `_peel`), or its delinearization along one of its
    split points, if that decides comparisons the vector loop selects on."""
    parts = _parts(loop, _selecting_comparisons(vector_loop))
    if parts is not None:
        if _peel(loop, vector_loop, nest):
            return True
        _hoist_invariants(loop)
        _split(loop, parts)
        return True
    for q_extent in _split_points(loop.body.block.args[0]):
        trial = loop.clone()
        block = loop.parent_block()
        assert block is not None
        block.insert_op_before(trial, loop)
        outer = _delinearized(trial, q_extent)
        if outer is None:
            Rewriter.erase_op(trial)
            continue
        Rewriter.replace_op(trial, outer)
        _simplify(outer)
        conds = _selecting_comparisons(outer)
        inner = next(op for op in outer.body.block.ops if isinstance(op, scf.ForOp))
        for candidate in (inner, outer):
            parts = _parts(candidate, conds)
            if parts is not None:
                _hoist_invariants(candidate)
                _split(candidate, parts)
                Rewriter.erase_op(loop)
                return True
        Rewriter.erase_op(outer)
    return False


def split_index_sets(fn: func.FuncOp) -> None:
    """Each vectorized loop whose body selects on index comparisons: the innermost loop around
    it (itself excluded: its parts would cut vectors) whose splitting decides some of them is
    split. Loops bound to GPU ids are left alone (a launch dimension is not cut)."""
    vector_loops = [op for op in fn.walk() if _is_vector_loop(op)]
    for vector_loop in vector_loops:
        if not fn.is_ancestor(vector_loop) or not _selecting_comparisons(vector_loop):
            continue
        nest = _enclosing_loops(vector_loop)
        if not nest or any((a := annotation_of(n)) is not None and a.kind.data == "bind" for n in nest):
            continue
        _simplify(nest[-1])
        for loop in nest:
            if _try_loop(loop, vector_loop, nest):
                break
