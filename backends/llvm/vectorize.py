"""Explicit vector code for `#loop.annotation<vectorize>` loops.

A vectorized loop is emitted once per chunk of W lanes (W = the target's vector
width for the element type) instead of being left to LLVM's loop vectorizer.
Each value of the body is classified:

  * uniform — the same in every lane (defined outside the loop, or computed
    only from uniform values): emitted as scalar code;
  * affine  — an index `lane0 + stride·lane` (the induction variable and
    add/mul/sub of it; rem/div by a multiple of W when lane 0 is a multiple
    of W): emitted as the scalar lane-0 value, its stride known;
  * vector  — anything else: emitted as `<W x T>` operations.

Loads and stores whose last index is affine with stride 1 (and other indices
uniform) become single vector loads/stores, aligned when lane 0 is; uniform
loads stay scalar and are splatted where needed. Anything else (gathers,
scatters, a store of a varying value to one address, nested control flow)
makes `plan` return None and the loop falls back to LLVM's loop vectorizer.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Callable
from dataclasses import dataclass

from xdsl.dialects import arith, math, memref, scf
from xdsl.dialects.builtin import IndexType, IntegerType, MemRefType
from xdsl.ir import Operation, SSAValue

from lathe.backends.interface import ALIGN, ARGUMENT_ALIGN
from lathe.backends.llvm.ops import (
    BIN_INTRINSIC,
    CASTS,
    CMPF,
    CMPI,
    DIVISIONS,
    FAST,
    FBIN,
    FLOAT_TYPES,
    IBIN,
    LIBM,
    MATH_FLAGS,
    UN_INTRINSIC,
    bits,
    checked_division,
    divisor_is_safe,
    float_literal,
    intrinsic_suffix,
    llvm_type,
)
from lathe.dialects.loop import constant_int, row_major_strides

UNIFORM, AFFINE, VECTOR = "uniform", "affine", "vector"
_ALIGN_UNKNOWN = 1


@dataclass
class Kind:
    kind: str
    stride: int = 0  # for AFFINE
    align: int = _ALIGN_UNKNOWN  # a known divisor of lane 0 (for AFFINE)


_INDEX_DIVS = (arith.DivUIOp, arith.DivSIOp, arith.FloorDivSIOp)
_INDEX_REMS = (arith.RemUIOp, arith.RemSIOp)


def _is_index_like(v: SSAValue) -> bool:
    return isinstance(v.type, IndexType) or (isinstance(v.type, IntegerType) and v.type.width.data == 64)


_COMBINES = {
    arith.AddfOp: ("fadd", -0.0),
    arith.MulfOp: ("fmul", 1.0),
    arith.MaximumfOp: ("fmaximum", float("-inf")),
    arith.MinimumfOp: ("fminimum", float("inf")),
    arith.AddiOp: ("add", 0),
    arith.MaxSIOp: ("smax", None),
    arith.MinSIOp: ("smin", None),
}


# Float max/min reductions keep a plain compare-and-select accumulator (one vmaxps/vminps on
# x86; llvm.maximum is six dependent instructions there) and a NaN mask or-ed along: the
# result is NaN if any element was, as numpy's max. Between +0 and -0 a lane keeps the one it
# met first (llvm.maximum orders -0 < +0); numerically they are equal. The compare that picks
# x, by kind:
_NAN_MASKED = {"fmaximum": "ogt", "fminimum": "olt"}


@dataclass
class Reduction:
    """acc = load A[u]; store combine(acc, x) → A[u] with x varying: a vector accumulator."""

    load: memref.LoadOp
    combine: Operation
    store: memref.StoreOp
    x: SSAValue


def _reduction(store: memref.StoreOp, kinds) -> Reduction | None:
    comb = store.value.owner
    if type(comb) not in _COMBINES or not store.value.has_one_use():
        return None
    for acc, x in ((comb.operands[0], comb.operands[1]), (comb.operands[1], comb.operands[0])):
        ld = acc.owner
        if (
            isinstance(ld, memref.LoadOp)
            and ld.memref == store.memref
            and list(ld.indices) == list(store.indices)
            and acc.has_one_use()
            and kinds.get(x, Kind(UNIFORM)).kind == VECTOR
        ):
            return Reduction(ld, comb, store, x)
    return None


@dataclass
class Plan:
    kinds: dict[SSAValue, Kind]
    reductions: list[Reduction]
    invariant: set[SSAValue]  # values the same in every iteration: computed once, before the loop


def plan(loop: scf.ForOp, width: int) -> Plan | None:
    """Classify every value of the loop body and find its reductions; None if it cannot be vectorized."""
    body = loop.body.block
    inside = set(body.ops)
    kinds: dict[SSAValue, Kind] = {body.args[0]: Kind(AFFINE, 1, width)}
    reductions: list[Reduction] = []
    invariant: set[SSAValue] = set()  # values the same in every iteration of the loop

    def is_invariant(v: SSAValue) -> bool:
        owner = v.owner
        return v in invariant or not (isinstance(owner, Operation) and owner in inside) and v is not body.args[0]

    def k(v: SSAValue) -> Kind:
        if v in kinds:
            return kinds[v]
        owner = v.owner
        if isinstance(owner, Operation) and owner in inside:
            raise KeyError(v)
        return Kind(UNIFORM, 0, _outside_align(v))

    for op in body.ops:
        if isinstance(op, scf.YieldOp):
            continue
        if op.regions:
            return None
        if op.results and all(is_invariant(v) for v in op.operands):
            invariant.update(op.results)
        ins = [k(v) for v in op.operands]
        if all(x.kind == UNIFORM for x in ins) and not isinstance(op, memref.StoreOp):
            for r in op.results:
                c = constant_int(r)
                if c is not None:
                    align = abs(c) or 1 << 30
                else:
                    a = _affine(op, ins, width) if _is_index_like(r) else None
                    align = a.align if a is not None else 1
                kinds[r] = Kind(UNIFORM, 0, align)
            continue
        if isinstance(op, memref.LoadOp | memref.StoreOp):
            idx = [k(i) for i in op.indices]
            if _uniform_address(idx):
                if isinstance(op, memref.StoreOp):
                    red = _reduction(op, kinds) if all(is_invariant(i) for i in op.indices) else None
                    if red is None:
                        return None  # a varying value into one address, not as a reduction
                    reductions.append(red)
                    continue
                kinds[op.res] = Kind(UNIFORM)
                continue
            if not _contiguous(idx):
                return None
            if isinstance(op, memref.LoadOp):
                kinds[op.res] = Kind(VECTOR)
            continue
        if _is_index_like(op.results[0]) if op.results else False:
            r = _affine(op, ins, width)
            if r is None:
                kinds[op.results[0]] = Kind(VECTOR)
            else:
                kinds[op.results[0]] = r
            continue
        if not _vectorizable(op):
            return None
        for r in op.results:
            kinds[r] = Kind(VECTOR)
    if any(
        isinstance(o, memref.StoreOp)
        and kinds.get(o.value, Kind(UNIFORM)).kind == VECTOR
        and _uniform_address([k(i) for i in o.indices])
        and not any(r.store is o for r in reductions)
        for o in body.ops
    ):
        return None
    return Plan(kinds, reductions, invariant)


def _outside_align(v: SSAValue, depth: int = 8) -> int:
    """A known divisor of an index defined outside the loop, from the constants it is built
    of: a tile's origin `tile * 32 + base * 32` is a multiple of 32, so a packed read
    `(origin + lane) // 32` in the loop is uniform (1 << 30: zero, a multiple of anything)."""
    c = constant_int(v)
    if c is not None:
        return abs(c) or 1 << 30
    op = v.owner
    if depth == 0 or not isinstance(op, arith.AddiOp | arith.SubiOp | arith.MuliOp):
        return _ALIGN_UNKNOWN
    a, b = (_outside_align(x, depth - 1) for x in op.operands)
    if isinstance(op, arith.MuliOp):
        return min(a * b, 1 << 30)
    return pymath.gcd(a, b)


def _uniform_address(idx: list[Kind]) -> bool:
    return all(x.kind == UNIFORM or (x.kind == AFFINE and x.stride == 0) for x in idx)


def _contiguous(idx: list[Kind]) -> bool:
    """Other indices uniform, the last one advancing by 1 per lane."""
    if not idx:
        return False
    *outer, last = idx
    return _uniform_address(outer) and last.kind == AFFINE and last.stride == 1


def _affine(op: Operation, ins: list[Kind], width: int) -> Kind | None:
    def stride(x: Kind) -> int | None:
        return 0 if x.kind == UNIFORM else (x.stride if x.kind == AFFINE else None)

    s = [stride(x) for x in ins]
    if any(v is None for v in s):
        return None
    if isinstance(op, arith.AddiOp):
        return Kind(AFFINE, s[0] + s[1], pymath.gcd(ins[0].align, ins[1].align))
    if isinstance(op, arith.SubiOp):
        return Kind(AFFINE, s[0] - s[1], pymath.gcd(ins[0].align, ins[1].align))
    if isinstance(op, arith.MuliOp):
        c0, c1 = constant_int(op.operands[0]), constant_int(op.operands[1])
        if c1 is not None:
            return Kind(AFFINE, s[0] * c1, ins[0].align * abs(c1) or 1 << 30)
        if c0 is not None:
            return Kind(AFFINE, s[1] * c0, ins[1].align * abs(c0) or 1 << 30)
        return None
    if isinstance(op, arith.IndexCastOp):
        return Kind(AFFINE, s[0], ins[0].align)
    if isinstance(op, _INDEX_DIVS + _INDEX_REMS):
        d = constant_int(op.operands[1])
        a = ins[0]
        if d is None or d <= 0 or s[1] != 0:
            return None
        if s[0] == 0:
            return Kind(AFFINE, 0, _ALIGN_UNKNOWN)
        if s[0] == 1 and d % width == 0 and a.align % width == 0:
            # lanes never cross a multiple of d: the quotient is uniform, the remainder stride 1
            if isinstance(op, _INDEX_DIVS):
                return Kind(AFFINE, 0, _ALIGN_UNKNOWN)
            return Kind(AFFINE, 1, width)
        return None
    return None


def _vectorizable(op: Operation) -> bool:
    """An op with a <W x T> form (_VECTOR_EMIT); an index cast only as index arithmetic (_affine)."""
    t = type(op)
    if t in LIBM:
        return llvm_type(op.results[0].type) == "float"  # vmath has f32 versions only
    return t in _VECTOR_EMIT and t is not arith.IndexCastOp


class VectorEmitter:
    """Emits one vectorized loop into a FunctionEmitter."""

    def __init__(self, fe, loop: scf.ForOp, width: int, planned: Plan):
        self.fe = fe  # codegen's FunctionEmitter: scalar code, names and the module being written
        self.loop = loop
        self.w = width
        self.kinds = planned.kinds
        self.invariant = planned.invariant
        self.reductions = list(planned.reductions)
        self.skip = {o for r in self.reductions for o in (r.combine, r.store)}
        self.vnames: dict[SSAValue, str] = {}
        self.acc: dict[int, str] = {}  # reduction index -> current vector accumulator
        self.nan: dict[int, str] = {}  # reduction index -> lanes that have seen a NaN (_NAN_MASKED kinds)

    def kind(self, v: SSAValue) -> Kind:
        return self.kinds.get(v, Kind(UNIFORM))

    def vty(self, t) -> str:
        return f"<{self.w} x {llvm_type(t)}>"

    def vec(self, v: SSAValue) -> str:
        """v as a <W x T> value (splatting uniforms, materialising affine indices)."""
        if v in self.vnames:
            return self.vnames[v]
        fe = self.fe
        k = self.kind(v)
        ty = llvm_type(v.type)
        ins = fe.tmp("vi")
        fe.emit(f"{ins} = insertelement <{self.w} x {ty}> poison, {ty} {fe.v(v)}, i64 0")
        splat = fe.tmp("vs")
        fe.emit(
            f"{splat} = shufflevector <{self.w} x {ty}> {ins}, <{self.w} x {ty}> poison, <{self.w} x i32> zeroinitializer"
        )
        if k.kind == AFFINE and k.stride != 0:
            lanes = ", ".join(f"{ty} {k.stride * i}" for i in range(self.w))
            out = fe.tmp("va")
            fe.emit(f"{out} = add <{self.w} x {ty}> {splat}, <{lanes}>")
            splat = out
        self.vnames[v] = splat
        return splat

    def run(self, lb: str, ub: str) -> None:
        fe = self.fe
        op = self.loop
        body_ops = [o for o in op.body.block.ops if not isinstance(o, scf.YieldOp)]
        # uniform values do not depend on the loop: compute them once, before it
        hoisted = [o for o in body_ops if o.results and all(r in self.invariant for r in o.results)]
        for o in hoisted:
            fe.op(o)
        looped = [o for o in body_ops if o not in hoisted]
        inits = {k: self.splat_identity(r) for k, r in enumerate(self.reductions)}
        masked = [k for k, r in enumerate(self.reductions) if _COMBINES[type(r.combine)][0] in _NAN_MASKED]
        no_nan = "zeroinitializer"
        chunks = range(int(lb), int(ub), self.w)
        if len(chunks) <= 4:  # a register tile: constant lane-0 indices let LLVM keep it in registers
            iv = op.body.block.args[0]
            self.acc = dict(inits)
            self.nan = dict.fromkeys(masked, no_nan)
            for base in chunks:
                fe.names[iv] = str(base)
                self.vnames = {}
                for o in looped:
                    self.op(o)
        else:
            head, body, latch, exit_ = (fe.new_label(x) for x in ("vec.head", "vec.body", "vec.latch", "vec.exit"))
            pre = fe.label
            iv, nxt = fe.tmp("iv"), fe.tmp("ivn")
            phis = {k: fe.tmp("vacc") for k in inits}
            nan_phis = {k: fe.tmp("vnan") for k in masked}
            fe.emit(f"br label %{head}")
            fe.start_block(head)
            fe.emit(f"{iv} = phi i64 [ {lb}, %{pre} ], [ {nxt}, %{latch} ]")
            phi_at = len(fe.lines)  # the accumulators' phis go here once their latch values are known
            c = fe.tmp("c")
            fe.emit(f"{c} = icmp slt i64 {iv}, {ub}")
            fe.emit(f"br i1 {c}, label %{body}, label %{exit_}")
            fe.start_block(body)
            fe.names[op.body.block.args[0]] = iv
            self.vnames = {}
            self.acc = dict(phis)
            self.nan = dict(nan_phis)
            for o in looped:
                self.op(o)
            fe.emit(f"br label %{latch}")
            fe.start_block(latch)
            for k, r in enumerate(self.reductions):
                fe.lines.insert(
                    phi_at + k,
                    f"  {phis[k]} = phi {self.vty(r.x.type)} [ {inits[k]}, %{pre} ], [ {self.acc[k]}, %{latch} ]",
                )
            for k in masked:
                fe.lines.insert(
                    phi_at,
                    f"  {nan_phis[k]} = phi <{self.w} x i1> [ {no_nan}, %{pre} ], [ {self.nan[k]}, %{latch} ]",
                )
            fe.emit(f"{nxt} = add nsw i64 {iv}, {self.w}")
            fe.emit(f"br label %{head}")
            fe.start_block(exit_)
            self.acc = dict(phis)
            self.nan = dict(nan_phis)
        for k, r in enumerate(self.reductions):
            self.finish_reduction(k, r)

    def splat_identity(self, r: Reduction) -> str:
        kind, ident = _COMBINES[type(r.combine)]
        t = r.x.type
        if ident is None:
            assert isinstance(t, IntegerType)
            w = t.width.data
            ident = -(2 ** (w - 1)) if kind == "smax" else 2 ** (w - 1) - 1
        lit = float_literal(ident, t) if llvm_type(t) in FLOAT_TYPES else str(int(ident))
        return "<" + ", ".join([f"{llvm_type(t)} {lit}"] * self.w) + ">"

    def finish_reduction(self, k: int, r: Reduction) -> None:
        """Fold the lanes, combine with the accumulator's old value, store it."""
        fe = self.fe
        kind, _ = _COMBINES[type(r.combine)]
        t = llvm_type(r.x.type)
        vt = self.vty(r.x.type)
        suffix = f"v{self.w}{intrinsic_suffix(r.x.type)}"
        old = fe.v(r.load.res)
        out = fe.tmp("red")
        if kind in ("fadd", "fmul"):
            fe.mod.declare(f"declare {t} @llvm.vector.reduce.{kind}.{suffix}({t}, {vt})")
            fe.emit(f"{out} = call {FAST} {t} @llvm.vector.reduce.{kind}.{suffix}({t} {old}, {vt} {self.acc[k]})")
        else:
            # the masked kinds' lanes hold no NaN: fmax/fmin fold them without llvm.maximum's expansion
            fold = {"fmaximum": "fmax", "fminimum": "fmin"}.get(kind, kind)
            fe.mod.declare(f"declare {t} @llvm.vector.reduce.{fold}.{suffix}({vt})")
            lanes = fe.tmp("red")
            nnan = " nnan" if kind in _NAN_MASKED else ""
            fe.emit(f"{lanes} = call{nnan} {t} @llvm.vector.reduce.{fold}.{suffix}({vt} {self.acc[k]})")
            if kind in _NAN_MASKED:  # the accumulator skipped NaNs; the mask says if there were any
                fe.mod.declare(f"declare i1 @llvm.vector.reduce.or.v{self.w}i1(<{self.w} x i1>)")
                any_nan, with_nan = fe.tmp("red"), fe.tmp("red")
                fe.emit(f"{any_nan} = call i1 @llvm.vector.reduce.or.v{self.w}i1(<{self.w} x i1> {self.nan[k]})")
                fe.emit(f"{with_nan} = select i1 {any_nan}, {t} {float_literal(float('nan'), r.x.type)}, {t} {lanes}")
                lanes = with_nan
            scalar = {"fmaximum": "maximum", "fminimum": "minimum", "add": None, "smax": "smax", "smin": "smin"}[kind]
            if scalar is None:
                fe.emit(f"{out} = add {t} {old}, {lanes}")
            else:
                fe.mod.declare(f"declare {t} @llvm.{scalar}.{intrinsic_suffix(r.x.type)}({t}, {t})")
                fe.emit(f"{out} = call {t} @llvm.{scalar}.{intrinsic_suffix(r.x.type)}({t} {old}, {t} {lanes})")
        ptr = fe.gep(r.store.memref, r.store.indices)
        fe.emit(f"store {t} {out}, ptr {ptr}, align {max(1, bits(r.x.type) // 8)}")

    def op(self, op: Operation) -> None:
        fe = self.fe
        if isinstance(op, scf.YieldOp):
            return
        if op in self.skip:
            if op is not (red := next(r for r in self.reductions if op in (r.combine, r.store))).combine:
                return
            k = self.reductions.index(red)
            kind, _ = _COMBINES[type(op)]
            vt = self.vty(red.x.type)
            name = fe.tmp("vacc")
            if kind in ("fadd", "fmul", "add"):
                flags = f" {FAST}" if kind != "add" else ""
                fe.emit(f"{name} = {kind}{flags} {vt} {self.acc[k]}, {self.vec(red.x)}")
            elif kind in _NAN_MASKED:
                x, mask = self.vec(red.x), f"<{self.w} x i1>"
                wins, nan, seen = fe.tmp("vwin"), fe.tmp("vuno"), fe.tmp("vnan")
                fe.emit(f"{wins} = fcmp {_NAN_MASKED[kind]} {vt} {x}, {self.acc[k]}")
                fe.emit(f"{name} = select {mask} {wins}, {vt} {x}, {vt} {self.acc[k]}")
                fe.emit(f"{nan} = fcmp uno {vt} {x}, {x}")
                fe.emit(f"{seen} = or {mask} {self.nan[k]}, {nan}")
                self.nan[k] = seen
            else:
                fe.mod.declare(
                    f"declare {vt} @llvm.{kind[1:] if kind[0] == 'f' else kind}.v{self.w}{intrinsic_suffix(red.x.type)}({vt}, {vt})"
                )
                fe.emit(
                    f"{name} = call {vt} @llvm.{kind[1:] if kind[0] == 'f' else kind}.v{self.w}{intrinsic_suffix(red.x.type)}({vt} {self.acc[k]}, {vt} {self.vec(red.x)})"
                )
            self.acc[k] = name
            return
        if isinstance(op, memref.LoadOp):
            if self.kind(op.res).kind == UNIFORM:
                fe.op(op)  # a uniform load: scalar, splatted where used
                return
            ptr = fe.gep(op.memref, op.indices)
            ty = llvm_type(op.res.type)
            if ty == "i1":
                raw = fe.tmp("vb")
                fe.emit(f"{raw} = load <{self.w} x i8>, ptr {ptr}, align 1")
                out = fe.tmp("v")
                fe.emit(f"{out} = trunc <{self.w} x i8> {raw} to <{self.w} x i1>")
            else:
                out = fe.tmp("v")
                fe.emit(f"{out} = load <{self.w} x {ty}>, ptr {ptr}, align {self.align(op.memref, op.indices)}")
            self.vnames[op.res] = out
            return
        if isinstance(op, memref.StoreOp):
            ptr = fe.gep(op.memref, op.indices)
            ty = llvm_type(op.value.type)
            val = self.vec(op.value)
            if ty == "i1":
                b = fe.tmp("vb")
                fe.emit(f"{b} = zext <{self.w} x i1> {val} to <{self.w} x i8>")
                fe.emit(f"store <{self.w} x i8> {b}, ptr {ptr}, align 1")
            else:
                fe.emit(f"store <{self.w} x {ty}> {val}, ptr {ptr}, align {self.align(op.memref, op.indices)}")
            return
        k = self.kind(op.results[0]) if op.results else Kind(UNIFORM)
        if k.kind in (UNIFORM, AFFINE):
            fe.op(op)  # scalar code computes the uniform value or lane 0
            return
        self.vector_op(op)

    def align(self, ref: SSAValue, indices) -> int:
        """Alignment of a contiguous access: of the buffer's start (ALIGN where the kernel
        allocates it, ARGUMENT_ALIGN for an argument) and of lane 0's offset in it."""
        t = ref.type
        assert isinstance(t, MemRefType)
        elem = max(1, bits(t.element_type) // 8)
        shape = list(t.get_shape())
        g = 0
        for i, s in zip(indices, row_major_strides(shape)):
            k = self.kind(i)
            g = pymath.gcd(g, (k.align if k.kind != VECTOR else 1) * s)
        g = g or 1 << 30
        base = ALIGN if isinstance(ref.owner, memref.AllocOp | memref.AllocaOp) else ARGUMENT_ALIGN
        return max(elem, min(base, elem * (g & -g)))

    def vector_op(self, op: Operation) -> None:
        _VECTOR_EMIT[type(op)](self, op)  # plan() admits only the ops the table has

    def define(self, v: SSAValue, text: str) -> None:
        name = self.fe.tmp("v")
        self.fe.emit(f"{name} = {text}")
        self.vnames[v] = name


# -- vector op emitters -----------------------------------------------------------------
# The <W x T> form of each op plan() admits, by op class (the spellings are ops.py's, as
# the scalar emitter's are).

VectorEmit = Callable[[VectorEmitter, Operation], None]


def _float_binary(ve: VectorEmitter, op: Operation) -> None:
    a, b = (ve.vec(x) for x in op.operands)
    ve.define(op.results[0], f"{FBIN[type(op)]} {FAST} {ve.vty(op.results[0].type)} {a}, {b}")


def _negf(ve: VectorEmitter, op: Operation) -> None:
    ve.define(op.results[0], f"fneg {ve.vty(op.results[0].type)} {ve.vec(op.operands[0])}")


def _int_binary(ve: VectorEmitter, op: Operation) -> None:
    t, r = type(op), op.results[0]
    vt = ve.vty(r.type)
    a, b = (ve.vec(x) for x in op.operands)
    if t in DIVISIONS and not divisor_is_safe(op):
        ve.define(r, checked_division(ve.fe, t, vt, llvm_type(r.type), a, b, ve.w))
    else:
        ve.define(r, f"{IBIN[t]} {vt} {a}, {b}")


def _binary_intrinsic(ve: VectorEmitter, op: Operation) -> None:
    r = op.results[0]
    vt = ve.vty(r.type)
    name = f"llvm.{BIN_INTRINSIC[type(op)]}.v{ve.w}{intrinsic_suffix(r.type)}"
    ve.fe.mod.declare(f"declare {vt} @{name}({vt}, {vt})")
    a, b = (ve.vec(x) for x in op.operands)
    ve.define(r, f"call {vt} @{name}({vt} {a}, {vt} {b})")


def _unary_math(ve: VectorEmitter, op: Operation) -> None:
    """A polynomial (vmath.py) where there is one, else the intrinsic (LLVM scalarizes most)."""
    r = op.results[0]
    vt = ve.vty(r.type)
    fn = ve.fe.mod.vector_math(op, ve.w)
    if fn is None:
        fn = f"llvm.{UN_INTRINSIC[type(op)]}.v{ve.w}{intrinsic_suffix(r.type)}"
        ve.fe.mod.declare(f"declare {vt} @{fn}({vt})")
    ve.define(r, f"call {MATH_FLAGS} {vt} @{fn}({vt} {ve.vec(op.operands[0])})")


def _fma(ve: VectorEmitter, op: Operation) -> None:
    r = op.results[0]
    vt = ve.vty(r.type)
    name = f"llvm.fma.v{ve.w}{intrinsic_suffix(r.type)}"
    ve.fe.mod.declare(f"declare {vt} @{name}({vt}, {vt}, {vt})")
    a, b, c = (ve.vec(x) for x in op.operands)
    ve.define(r, f"call {vt} @{name}({vt} {a}, {vt} {b}, {vt} {c})")


def _cmpi(ve: VectorEmitter, op: arith.CmpiOp) -> None:
    a, b = ve.vec(op.lhs), ve.vec(op.rhs)
    ve.define(op.result, f"icmp {CMPI[op.predicate.value.data]} {ve.vty(op.lhs.type)} {a}, {b}")


def _cmpf(ve: VectorEmitter, op: arith.CmpfOp) -> None:
    a, b = ve.vec(op.lhs), ve.vec(op.rhs)
    ve.define(op.result, f"fcmp {CMPF[op.predicate.value.data]} {ve.vty(op.lhs.type)} {a}, {b}")


def _select(ve: VectorEmitter, op: arith.SelectOp) -> None:
    """A uniform condition stays a scalar i1: it picks whole vectors."""
    c = op.operands[0]
    cond = f"i1 {ve.fe.v(c)}" if ve.kind(c).kind == UNIFORM else f"<{ve.w} x i1> {ve.vec(c)}"
    a, b = ve.vec(op.operands[1]), ve.vec(op.operands[2])
    vt = ve.vty(op.result.type)
    ve.define(op.result, f"select {cond}, {vt} {a}, {vt} {b}")


def _cast(ve: VectorEmitter, op: Operation) -> None:
    src = ve.vty(op.operands[0].type)
    ve.define(op.results[0], f"{CASTS[type(op)]} {src} {ve.vec(op.operands[0])} to {ve.vty(op.results[0].type)}")


def _index_cast(ve: VectorEmitter, op: Operation) -> None:
    ve.vnames[op.results[0]] = ve.vec(op.operands[0])  # index and i64 are the same in LLVM


_VECTOR_EMIT: dict[type[Operation], VectorEmit] = {
    **dict.fromkeys(FBIN, _float_binary),
    arith.NegfOp: _negf,
    **dict.fromkeys(IBIN, _int_binary),
    **dict.fromkeys(BIN_INTRINSIC, _binary_intrinsic),
    **dict.fromkeys(UN_INTRINSIC, _unary_math),
    **dict.fromkeys(LIBM, _unary_math),
    math.FmaOp: _fma,
    arith.CmpiOp: _cmpi,
    arith.CmpfOp: _cmpf,
    arith.SelectOp: _select,
    **dict.fromkeys(CASTS, _cast),
    arith.IndexCastOp: _index_cast,
}


def vector_width(target_vector_bits: int, loop: scf.ForOp) -> int:
    """Lanes for the widest element type the loop touches."""
    widest = 32
    for o in loop.body.block.ops:
        for v in list(o.operands) + list(o.results):
            t = v.type
            if isinstance(t, MemRefType):
                t = t.element_type
            if isinstance(t, IntegerType | IndexType) or llvm_type(t) in FLOAT_TYPES:
                widest = max(widest, 64 if isinstance(t, IndexType) else bits(t))
    return max(1, target_vector_bits // max(32, widest if widest != 64 or not _only_index(loop) else 32))


def _only_index(loop: scf.ForOp) -> bool:
    """Index arithmetic stays scalar (lane 0), so it does not narrow the vector."""
    for o in loop.body.block.ops:
        for v in o.results:
            if isinstance(v.type, IntegerType) and v.type.width.data == 64:
                return False
        if isinstance(o, memref.LoadOp | memref.StoreOp):
            t = o.memref.type
            if isinstance(t, MemRefType) and bits(t.element_type) == 64:  # type: ignore[arg-type]
                return False
    return True
