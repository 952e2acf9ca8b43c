"""In-register tile transposes: the fast form of a transposing copy.

A transpose's default schedule (lowering/schedules.py, `schedule_transpose`) leaves, per tile,

    scf.for %si = 0 to Vs {loop.annotation<unroll>} {          // along the input's contiguous axis
      scf.for %ci = 0 to Vc {loop.annotation<vectorize>} {     // along the output's contiguous axis
        %x = memref.load %in[...]     // address: base + si + b * ci
        memref.store %x, %out[...]    // address: base' + a * si + ci

As a vector loop, each of the Vs output vectors is Vc strided loads (a gather, or scalar code
after LLVM's loop vectorizer). Here the tile is Vc contiguous `<Vs x T>` loads along the
input's rows, a transpose in registers (`network`: interleaves within 128-bit groups, then
swaps of 128-bit blocks, log2 Vs stages of Vs two-input shuffles: the unpcklps, unpcklpd,
shuff32x4 sequence LLVM selects), and Vs contiguous `<Vc x T>` stores. Vc may be a multiple of Vs (a tile
of 8 input columns and 16 output channels): rows j, j+Vs, ... are concatenated first and
the Vs-network runs on each Vs-wide segment.

The addresses are proved linear over the tile with symbolic index algebra (`Linear`), not
per index: a fused axis (h*W + w, lowered as `f // W`, `f % W`) is linear in its flat
address though neither index is, since `x % d = x - d * (x // d)` cancels the quotient.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith, memref, scf
from xdsl.dialects.builtin import IndexType, IntegerType, MemRefType
from xdsl.ir import Operation, SSAValue

from lathe.backends.llvm.ops import bits, llvm_type
from lathe.dialects.loop import annotation_of, constant_int, row_major_strides
from lathe.passes.index_arith import Linear

TILE_SIDES = (4, 8, 16)  # Vs: the network works on whole 128-bit groups of 32-bit lanes


# -- index algebra ------------------------------------------------------------------------


def _key(x: Linear):
    """A hashable form of `x`, for a quotient atom ("div", key of the dividend, divisor)."""
    return (frozenset(x.terms.items()), x.const)


class IndexAlgebra:
    """Linear forms (index_arith's, whose atoms here are also quotients ("div", _key(x), d)
    of a form by a constant) of the index values of a tile whose induction variables are
    `ivs`, each in [0, bound). Only identities of the integers are used, so a form is exact for every
    value of the ivs."""

    def __init__(self, ivs: dict[SSAValue, int]):
        self.ivs = ivs
        self.forms: dict[SSAValue, Linear] = {}
        self.varying: set[SSAValue] = set()  # opaque results that depend on an iv

    def form(self, v: SSAValue) -> Linear:
        if v in self.forms:
            return self.forms[v]
        c = constant_int(v)
        return Linear({}, c) if c is not None else Linear({v: 1})

    def varies(self, atom) -> bool:
        if isinstance(atom, tuple):
            return any(self.varies(a) for a, _ in atom[1][0])
        return atom in self.ivs or atom in self.varying

    def div(self, x: Linear, d: int) -> Linear:
        """x // d for x >= 0: x = d * whole + rest gives whole + rest // d; a rest of ivs alone
        that stays in [0, d) is 0; a quotient of a quotient is one quotient."""
        whole = Linear({a: c // d for a, c in x.terms.items() if c % d == 0}, x.const // d)
        rest = Linear({a: c for a, c in x.terms.items() if c % d}, x.const % d)
        if not rest.terms:
            return whole
        if all(a in self.ivs and c > 0 for a, c in rest.terms.items()) and (
            rest.const + sum(c * (self.ivs[a] - 1) for a, c in rest.terms.items()) < d
        ):
            return whole
        if len(rest.terms) == 1 and rest.const == 0:
            ((a, c),) = rest.terms.items()
            if c == 1 and isinstance(a, tuple):  # (y // d1) // d = y // (d1 * d)
                return whole.plus(Linear({(a[0], a[1], a[2] * d): 1}))
        return whole.plus(Linear({("div", _key(rest), d): 1}))

    def op(self, op: Operation) -> bool:
        """Record the form of an index op's result; False for an op that is not index arithmetic."""
        if len(op.results) != 1 or not _is_index_like(op.results[0]):
            return False
        r = op.results[0]
        ins = [self.form(v) for v in op.operands]
        d = constant_int(op.operands[1]) if len(op.operands) == 2 else None
        if isinstance(op, arith.ConstantOp):
            c = constant_int(r)
            if c is None:
                return False
            self.forms[r] = Linear({}, c)
        elif isinstance(op, arith.AddiOp):
            self.forms[r] = ins[0].plus(ins[1])
        elif isinstance(op, arith.SubiOp):
            self.forms[r] = ins[0].plus(ins[1].scaled(-1))
        elif isinstance(op, arith.MuliOp) and (not ins[0].terms or not ins[1].terms):
            k, x = (ins[0].const, ins[1]) if not ins[0].terms else (ins[1].const, ins[0])
            self.forms[r] = x.scaled(k)
        elif isinstance(op, arith.IndexCastOp):
            self.forms[r] = ins[0]
        elif isinstance(op, arith.DivUIOp | arith.FloorDivSIOp) and d is not None and d > 0:
            self.forms[r] = self.div(ins[0], d)
        elif isinstance(op, arith.RemUIOp) and d is not None and d > 0:
            self.forms[r] = ins[0].plus(self.div(ins[0], d).scaled(-d))
        else:  # opaque (a clamp, a product of two indices, a truncating signed division, whose
            # quotient is not the floor the identities above use): fine while it does not vary
            self.forms[r] = Linear({r: 1})
            if any(self.varies(a) for x in ins for a in x.terms):
                self.varying.add(r)
        return True

    def address(self, ref: SSAValue, indices) -> Linear | None:
        t = ref.type
        if not isinstance(t, MemRefType) or any(s < 0 for s in t.get_shape()):
            return None
        flat = Linear()
        for i, st in zip(indices, row_major_strides(list(t.get_shape()))):
            flat = flat.plus(self.form(i).scaled(st))
        return flat

    def strides(self, x: Linear, si: SSAValue, ci: SSAValue) -> tuple[int, int] | None:
        """(a, b) with x = base + a * si + b * ci over the tile, base not varying; else None."""
        if any(self.varies(a) for a in x.terms if a is not si and a is not ci):
            return None
        return x.terms.get(si, 0), x.terms.get(ci, 0)


def _is_index_like(v: SSAValue) -> bool:
    return isinstance(v.type, IndexType) or (isinstance(v.type, IntegerType) and v.type.width.data == 64)


# -- recognising a tile -----------------------------------------------------------------------


@dataclass
class TilePlan:
    si: SSAValue  # the unrolled loop's iv: along the input's rows
    ci: SSAValue  # the vector loop's iv: along the output's rows
    si_lb: int
    ci_lb: int
    vs: int
    vc: int
    index_ops: list[Operation]  # of both loop bodies, in order: emitted per row / column
    load: memref.LoadOp
    store: memref.StoreOp
    row_stride: int  # elements between the load's rows (one per ci)
    column_stride: int  # elements between the store's rows (one per si)
    guard: Guard | None = None  # rows past a side's end skipped (a side no tile divides)


@dataclass
class Guard:
    """A guarded tile: the unrolled loop's body is `if (form < bound) { vector loop }`, the
    form increasing in the row iv and otherwise fixed over the tile, so a tile whose last row
    passes the test is whole, and in a short one the rows that pass are the first few."""

    ops: list[Operation]  # the unrolled body's ops that compute the test, the test last
    test: SSAValue
    step: int = 1  # how much the tested form grows from one row to the next


def _bounds(fe, loop: scf.ForOp) -> tuple[int, int] | None:
    try:
        lb, ub, step = (int(fe.v(x)) for x in (loop.lb, loop.ub, loop.step))
    except ValueError:
        return None
    return (lb, ub - lb) if step == 1 and not loop.iter_args else None


@dataclass
class InterleavePlan:
    """A tile of Vc < 4 output channels: the unrolled loop runs along the output's contiguous
    axis (c), the vector loop along the input's (p), and the tile's Vc x Vs outputs are one
    contiguous run (address base + Vc * p + c): Vc row loads, one interleaving shuffle, one store."""

    c: SSAValue
    p: SSAValue
    c_lb: int
    p_lb: int
    vc: int
    vs: int
    index_ops: list[Operation]
    load: memref.LoadOp
    store: memref.StoreOp
    row_stride: int  # elements between the load's rows (one per c)


INTERLEAVE_CHANNELS = (2, 3)  # Vc of an interleave: a 3-channel image's NCHW -> NHWC


def _copy_nest(fe, outer: scf.ForOp):
    """(outer iv, its lb and trips, inner iv, its lb and trips, index ops, load, store, algebra)
    of an unrolled loop around one vectorized loop whose body copies one 32-bit element; None
    for anything else."""
    ops = [o for o in outer.body.block.ops if not isinstance(o, scf.YieldOp)]
    guard = None
    if ops and isinstance(ops[-1], scf.IfOp):
        guard, ops = _guarded_body(ops)
        if guard is None:
            return None
    if not ops or not isinstance(ops[-1], scf.ForOp):
        return None
    inner = ops[-1]
    ann = annotation_of(inner)
    if ann is None or ann.kind.data != "vectorize":
        return None
    ub, vb = _bounds(fe, outer), _bounds(fe, inner)
    if ub is None or vb is None or min(ub[0], vb[0]) < 0:
        return None
    u, v = outer.body.block.args[0], inner.body.block.args[0]
    algebra = IndexAlgebra({u: ub[0] + ub[1], v: vb[0] + vb[1]})
    index_ops: list[Operation] = []
    load = store = None
    for o in ops[:-1] + [o for o in inner.body.block.ops if not isinstance(o, scf.YieldOp)]:
        if isinstance(o, memref.LoadOp) and load is None:
            load = o
        elif isinstance(o, memref.StoreOp) and store is None:
            store = o
        elif not o.regions and algebra.op(o):
            index_ops.append(o)
        else:
            return None
    if load is None or store is None or store.value is not load.res or not load.res.has_one_use():
        return None
    elem = load.memref.type.element_type  # type: ignore[union-attr]
    if llvm_type(elem) not in ("float", "i32") or store.memref.type.element_type != elem:  # type: ignore[union-attr]
        return None
    src, dst = algebra.address(load.memref, load.indices), algebra.address(store.memref, store.indices)
    if src is None or dst is None:
        return None
    ls, ss = algebra.strides(src, u, v), algebra.strides(dst, u, v)
    if ls is None or ss is None:
        return None
    if guard is not None:
        bound = algebra.form(guard.test.owner.operands[1])  # type: ignore[union-attr]
        tested = algebra.form(guard.test.owner.operands[0])  # type: ignore[union-attr]
        if bound.terms or tested.terms.get(u, 0) <= 0 or any(algebra.varies(a) for a in tested.terms if a is not u):
            return None
        guard.step = tested.terms[u]
    return u, ub, v, vb, index_ops, load, store, ls, ss, guard


_BELOW = (2, 6)  # arith.cmpi's slt and ult


def _guarded_body(ops: list[Operation]) -> tuple[Guard | None, list[Operation]]:
    """A guard `if (x < bound)` (no else, no results) around the unrolled body's vector loop,
    its test computed in that body: the guard, and the body with the test left out and the
    if's own ops in line (the guard's form is checked by the caller's algebra)."""
    g = ops[-1]
    assert isinstance(g, scf.IfOp)
    test = g.cond.owner
    if (
        g.results
        or g.false_region.blocks
        or not isinstance(test, arith.CmpiOp)
        or test not in ops
        or test.predicate.value.data not in _BELOW
        or not test.result.has_one_use()
    ):
        return None, ops
    inside = [o for o in g.true_region.block.ops if not isinstance(o, scf.YieldOp)]
    return Guard(ops[: ops.index(g)], test.result), [o for o in ops[:-1] if o is not test] + inside


def plan_tile(fe, outer: scf.ForOp, max_lanes: int) -> TilePlan | InterleavePlan | None:
    """The tile `outer` (an unrolled loop around one vectorized loop) is, or None. A transpose:
    a pure copy of 32-bit elements whose load is contiguous along `outer`'s iv and whose store
    is contiguous along the vector loop's, with Vs in TILE_SIDES and Vc a multiple of Vs that
    fits a vector. An interleave: the load contiguous along the vector loop's iv, the store
    contiguous along `outer`'s (Vc in INTERLEAVE_CHANNELS trips) with the whole tile one run."""
    nest = _copy_nest(fe, outer)
    if nest is None:
        return None
    u, (u_lb, nu), v, (v_lb, nv), index_ops, load, store, ls, ss, guard = nest
    if ls[0] == 1 and ss[1] == 1:
        if nu not in TILE_SIDES or nv % nu or nv > max_lanes or nv & (nv - 1):
            return None
        return TilePlan(u, v, u_lb, v_lb, nu, nv, index_ops, load, store, ls[1], ss[0], guard)
    if guard is not None:
        return None
    if ls[1] == 1 and ss == (1, nu) and nu in INTERLEAVE_CHANNELS and nv in TILE_SIDES and nv <= max_lanes:
        return InterleavePlan(u, v, u_lb, v_lb, nu, nv, index_ops, load, store, ls[0])
    return None


# -- the shuffle network ----------------------------------------------------------------------


def _interleave(w: int, unit: int, hi: bool) -> list[int]:
    """unpck{l,h}{ps,pd}: per 128-bit group of four lanes, the low (high) halves of a and b
    interleaved by `unit` lanes."""
    mask = []
    for g in range(0, w, 4):
        start = g + (2 if hi else 0)
        for u in range(0, 2, unit):
            mask += [start + u + k for k in range(unit)] + [w + start + u + k for k in range(unit)]
    return mask


def _block_swap(w: int, vs: int, h: int, upper: bool) -> list[int]:
    """Swap bit h of the 128-bit block index (within each vs-lane segment) with the vector pair's:
    the lower vector keeps its blocks with the bit clear and takes the partner's, the upper the
    reverse (shuff32x4 / vperm2f128)."""
    mask = []
    for seg in range(0, w, vs):
        for blk in range(vs // 4):
            if not upper:
                src = seg + 4 * blk if not blk & h else w + seg + 4 * (blk - h)
            else:
                src = seg + 4 * (blk + h) if not blk & h else w + seg + 4 * blk
            mask += list(range(src, src + 4))
    return mask


Step = tuple[int, int, int, list[int]]  # (destination, a, b, mask) over a list of vectors


def network(vs: int, w: int) -> tuple[list[Step], list[int]]:
    """The shuffles that transpose vs vectors of w lanes (each w-lane vector: w // vs rows of
    vs, concatenated) segment by segment, and which vector holds output column s at the end.
    Vectors 0..vs-1 are the inputs; each step appends one."""
    steps: list[Step] = []
    cur = list(range(vs))

    def shuffle(a: int, b: int, mask: list[int]) -> int:
        steps.append((vs + len(steps), a, b, mask))
        return vs + len(steps) - 1

    nxt = list(cur)
    for i in range(0, vs, 2):  # rows interleaved by lanes: pairs of rows, lanes 4g..4g+3
        nxt[i] = shuffle(cur[i], cur[i + 1], _interleave(w, 1, False))
        nxt[i + 1] = shuffle(cur[i], cur[i + 1], _interleave(w, 1, True))
    cur, nxt = nxt, list(nxt)
    for i in range(0, vs, 4):  # by lane pairs: vector 4i+k's 128-bit group g holds column 4g+k
        for k in range(2):
            nxt[i + 2 * k] = shuffle(cur[i + k], cur[i + k + 2], _interleave(w, 2, False))
            nxt[i + 2 * k + 1] = shuffle(cur[i + k], cur[i + k + 2], _interleave(w, 2, True))
    cur = nxt
    h = 1
    while 4 * h < vs:  # the (vs/4)^2 grid of 128-bit blocks transposed, one index bit a stage
        nxt = list(cur)
        for g in range(vs // 4):
            if g & h:
                continue
            for k in range(4):
                a, b = cur[4 * g + k], cur[4 * (g + h) + k]
                nxt[4 * g + k] = shuffle(a, b, _block_swap(w, vs, h, False))
                nxt[4 * (g + h) + k] = shuffle(a, b, _block_swap(w, vs, h, True))
        cur = nxt
        h *= 2
    # vector 4g+k now holds, in block L of each segment, column 4L+k of rows 4g..4g+3 (in
    # block order): output column s = 4L + k sits in vector 4L + k
    return steps, cur


# -- emission ---------------------------------------------------------------------------------


def emit_tile(fe, p: TilePlan | InterleavePlan) -> None:
    if isinstance(p, InterleavePlan):
        _emit_interleave(fe, p)
    elif p.guard is not None:
        _emit_guarded(fe, p, p.guard)
    else:
        _emit_transpose(fe, p)


def _emit_guarded(fe, p: TilePlan, g: Guard) -> None:
    """The guard's test at the tile's last row: where it holds (every row does) the register
    transpose; where it does not (the short tile at a side's end) the same transpose with the
    rows past the end masked off its loads (lanes the test fails, never read) and its stores
    (one branch per row)."""
    whole, short, end = (fe.new_label(x) for x in ("tile.whole", "tile.short", "tile.end"))
    _guard_at(fe, p, g, p.vs - 1)
    fe.emit(f"br i1 {fe.v(g.test)}, label %{whole}, label %{short}")
    fe.start_block(whole)
    _emit_transpose(fe, p)
    fe.emit(f"br label %{end}")
    fe.start_block(short)
    _guard_at(fe, p, g, 0)
    test = g.test.owner
    assert isinstance(test, arith.CmpiOp)
    first, bound = fe.v(test.operands[0]), fe.v(test.operands[1])
    vi = f"<{p.vs} x i64>"
    rows, mask = fe.tmp("tg"), fe.tmp("tm")
    fe.emit(
        f"{rows} = add {vi} {_splat(fe, first, 'i64', p.vs)}, <{', '.join(f'i64 {g.step * k}' for k in range(p.vs))}>"
    )
    pred = "slt" if test.predicate.value.data == _BELOW[0] else "ult"
    fe.emit(f"{mask} = icmp {pred} {vi} {rows}, {_splat(fe, bound, 'i64', p.vs)}")
    _emit_transpose(fe, p, mask)
    fe.emit(f"br label %{end}")
    fe.start_block(end)


def _guard_at(fe, p: TilePlan, g: Guard, row: int) -> None:
    """The guard's ops with the row iv at the tile's `row`-th row."""
    fe.literals.add(p.si)
    fe.names[p.si] = str(p.si_lb + row)
    for o in g.ops:
        fe.op(o)
    fe.literals.discard(p.si)


def _splat(fe, x: str, ty: str, n: int) -> str:
    one, all_ = fe.tmp("ts"), fe.tmp("ts")
    fe.emit(f"{one} = insertelement <{n} x {ty}> poison, {ty} {x}, i64 0")
    fe.emit(f"{all_} = shufflevector <{n} x {ty}> {one}, <{n} x {ty}> poison, <{n} x i32> zeroinitializer")
    return all_


def _emit_interleave(fe, p: InterleavePlan) -> None:
    """Vc loads of Vs lanes, lane k of row c to position Vc * k + c of one vector, one store."""
    ty, align, dst, rows = _load_rows(fe, p, ((p.c, p.c_lb), (p.p, p.p_lb)))
    a = _concat(fe, ty, p.vs, rows[:2])  # rows 0 and 1, then row 2 (if any) widened to match
    b = a
    if p.vc == 3:
        b = fe.tmp("tc")
        fe.emit(
            f"{b} = shufflevector <{p.vs} x {ty}> {rows[2]}, <{p.vs} x {ty}> poison, "
            f"{_mask(list(range(p.vs)) + [p.vs] * p.vs)}"
        )
    mask = [c * p.vs + k for k in range(p.vs) for c in range(p.vc)]  # rows 0, 1 in a; row 2 at b's start
    out = fe.tmp("ti")
    fe.emit(f"{out} = shufflevector <{2 * p.vs} x {ty}> {a}, <{2 * p.vs} x {ty}> {b}, {_mask(mask)}")
    fe.emit(f"store <{p.vc * p.vs} x {ty}> {out}, ptr {dst}, align {align}")


def _emit_transpose(fe, p: TilePlan, rows_mask: str | None = None) -> None:
    """Vc row loads, the network, Vs column stores, each at a constant offset from the tile's
    first load or store (the algebra proved the addresses linear): the index code runs once.
    With `rows_mask` (a <Vs x i1>, lane s: input row s exists) the loads read only those lanes
    and the stores write only those columns."""
    ty, align, dst, rows = _load_rows(fe, p, ((p.si, p.si_lb), (p.ci, p.ci_lb)), rows_mask)
    vecs = [_concat(fe, ty, p.vs, [rows[j + p.vs * k] for k in range(p.vc // p.vs)]) for j in range(p.vs)]
    steps, out = network(p.vs, p.vc)
    vt = f"<{p.vc} x {ty}>"
    for _, a, b, mask in steps:
        r = fe.tmp("tt")
        fe.emit(f"{r} = shufflevector {vt} {vecs[a]}, {vt} {vecs[b]}, {_mask(mask)}")
        vecs.append(r)
    for s in range(p.vs):
        skip = None
        if rows_mask is not None:
            ok, write, skip = fe.tmp("tk"), fe.new_label("tile.col"), fe.new_label("tile.next")
            fe.emit(f"{ok} = extractelement <{p.vs} x i1> {rows_mask}, i64 {s}")
            fe.emit(f"br i1 {ok}, label %{write}, label %{skip}")
            fe.start_block(write)
        fe.emit(f"store {vt} {vecs[out[s]]}, ptr {_offset(fe, ty, dst, s * p.column_stride)}, align {align}")
        if skip is not None:
            fe.emit(f"br label %{skip}")
            fe.start_block(skip)


def _load_rows(fe, p: TilePlan | InterleavePlan, ivs, mask: str | None = None) -> tuple[str, int, str, list[str]]:
    """The tile's first load and store addresses, computed once with its loops' ivs at their
    lower bounds, and its Vc rows of Vs lanes loaded at constant offsets from the first, only
    the lanes `mask` enables where there is one: (element type, alignment, store address, rows)."""
    ty = llvm_type(p.load.res.type)
    align = max(1, bits(p.load.res.type) // 8)
    fe.literals.update(iv for iv, _ in ivs)
    for iv, lb in ivs:
        fe.names[iv] = str(lb)
    for o in p.index_ops:
        fe.op(o)
    src, dst = fe.gep(p.load.memref, p.load.indices), fe.gep(p.store.memref, p.store.indices)
    fe.literals.difference_update(iv for iv, _ in ivs)
    rows = []
    vt = f"<{p.vs} x {ty}>"
    masked = f"llvm.masked.load.v{p.vs}{'f32' if ty == 'float' else ty}.p0"
    if mask is not None:
        fe.mod.declare(f"declare {vt} @{masked}(ptr, i32, <{p.vs} x i1>, {vt})")
    for j in range(p.vc):
        r, at = fe.tmp("tr"), _offset(fe, ty, src, j * p.row_stride)
        if mask is None:
            fe.emit(f"{r} = load {vt}, ptr {at}, align {align}")
        else:
            fe.emit(f"{r} = call {vt} @{masked}(ptr {at}, i32 {align}, <{p.vs} x i1> {mask}, {vt} poison)")
        rows.append(r)
    return ty, align, dst, rows


def _offset(fe, elem: str, ptr: str, k: int) -> str:
    if k == 0:
        return ptr
    r = fe.tmp("tp")
    fe.emit(f"{r} = getelementptr inbounds {elem}, ptr {ptr}, i64 {k}")
    return r


def _mask(mask: list[int]) -> str:
    return f"<{len(mask)} x i32> <" + ", ".join(f"i32 {i}" for i in mask) + ">"


def _concat(fe, ty: str, n: int, parts: list[str]) -> str:
    """One vector of the parts (each n lanes), in order, by pairwise shuffles."""
    while len(parts) > 1:
        joined = []
        for a, b in zip(parts[::2], parts[1::2]):
            r = fe.tmp("tc")
            fe.emit(f"{r} = shufflevector <{n} x {ty}> {a}, <{n} x {ty}> {b}, {_mask(list(range(2 * n)))}")
            joined.append(r)
        parts, n = joined, 2 * n
    return parts[0]
