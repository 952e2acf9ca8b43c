"""Range-aware simplification of index division and remainder, for cleanup-loops.

An inlined reshape reads its source through a flattened index that it splits again by
`floordivsi`/`remsi` (`((b*4 + jo)*32 + ji)*64 + k`, then `rem 64`, `div 64`, `rem 128`, ...).
Every loop bound is a constant, so the ranges of these indices are known, and with them the
divisions cancel: `(q*c + r) div c = q` and `rem c = r` when `0 <= r < c`. Without that the
vector emitter cannot see that a lane's address is affine in the lane, and LLVM computes the
divisions lane by lane. This is what MLIR's affine simplification and TVM's arith analyzer
(RewriteSimplifier over ConstIntBound) do for the same reason.

Two analyses, each a table of small rules keyed by op class: `RANGE_RULES` bounds an index
value (closed interval, from loop bounds and constants through the arithmetic), and
`LINEAR_RULES` reads it as `sum(coef * atom) + const` through add/sub/mul-by-constant. The
rewrites (`DIVISION_REWRITES`, tried in order on a division or remainder by a positive
constant whose dividend is non-negative) then only reason about those two views. Results are
built with unsigned ops: every dividend they divide is known non-negative, where unsigned and
floor division agree and LLVM's code for them is shorter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IndexType
from xdsl.ir import Block, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.rewriter import InsertPoint

from lathe.dialects.loop import constant_int

Range = tuple[int, int]  # closed: lo <= v <= hi
_LIMIT = 1 << 62  # beyond this, index arithmetic might wrap; the analysis gives up


def _checked(lo: int, hi: int) -> Range | None:
    return (lo, hi) if -_LIMIT < lo <= hi < _LIMIT else None


@dataclass
class Ranges:
    """The range of each index value, memoised for one rewrite (every rewrite keeps values'
    meaning, so a range stays true while the IR changes around it)."""

    memo: dict[SSAValue, Range | None] = field(default_factory=dict)

    def __call__(self, v: SSAValue) -> Range | None:
        if v not in self.memo:
            self.memo[v] = None  # cycles (loop-carried values) stay unknown
            self.memo[v] = self._compute(v)
        return self.memo[v]

    def _compute(self, v: SSAValue) -> Range | None:
        c = constant_int(v)
        if c is not None:
            return (c, c)
        owner = v.owner
        if isinstance(owner, Block):
            return _induction_range(owner, v, self)
        rule = RANGE_RULES.get(type(owner))
        return rule(owner, self) if rule is not None else None


def _induction_range(block: Block, v: SSAValue, ranges: Ranges) -> Range | None:
    loop = block.parent_op()
    if not isinstance(loop, scf.ForOp) or v is not block.args[0]:
        return None
    lb, ub, step = ranges(loop.lb), ranges(loop.ub), constant_int(loop.step)
    if lb is None or ub is None or step is None or step <= 0:
        return None
    return _checked(lb[0], max(lb[0], ub[1] - 1))  # an empty loop's body never runs


def _binary(combine: Callable[[Range, Range], Range | None]):
    def rule(op: Operation, ranges: Ranges) -> Range | None:
        a, b = ranges(op.operands[0]), ranges(op.operands[1])
        return None if a is None or b is None else combine(a, b)

    return rule


def _add(a: Range, b: Range) -> Range | None:
    return _checked(a[0] + b[0], a[1] + b[1])


def _sub(a: Range, b: Range) -> Range | None:
    return _checked(a[0] - b[1], a[1] - b[0])


def _mul(a: Range, b: Range) -> Range | None:
    corners = [x * y for x in a for y in b]
    return _checked(min(corners), max(corners))


def _positive_divisor(combine: Callable[[Range, int], Range | None]):
    def rule(a: Range, b: Range) -> Range | None:
        return combine(a, b[0]) if b[0] == b[1] and b[0] > 0 and a[0] >= 0 else None

    return rule


def _min(a: Range, b: Range) -> Range | None:
    return (min(a[0], b[0]), min(a[1], b[1]))


def _max(a: Range, b: Range) -> Range | None:
    return (max(a[0], b[0]), max(a[1], b[1]))


def _non_negative(combine: Callable[[Range, Range], Range | None]):
    """Unsigned min/max order non-negative ranges as signed ones do."""
    return lambda a, b: combine(a, b) if a[0] >= 0 and b[0] >= 0 else None


def _select(op: Operation, ranges: Ranges) -> Range | None:
    a, b = ranges(op.operands[1]), ranges(op.operands[2])
    return None if a is None or b is None else (min(a[0], b[0]), max(a[1], b[1]))


_div = _positive_divisor(lambda a, c: (a[0] // c, a[1] // c))
_rem = _positive_divisor(lambda a, c: (a[0], a[1]) if a[1] < c else (0, c - 1))

RANGE_RULES: dict[type[Operation], Callable[[Operation, Ranges], Range | None]] = {
    arith.AddiOp: _binary(_add),
    arith.SubiOp: _binary(_sub),
    arith.MuliOp: _binary(_mul),
    arith.DivUIOp: _binary(_div),
    arith.DivSIOp: _binary(_div),
    arith.FloorDivSIOp: _binary(_div),
    arith.RemUIOp: _binary(_rem),
    arith.RemSIOp: _binary(_rem),
    arith.MinSIOp: _binary(_min),
    arith.MaxSIOp: _binary(_max),
    arith.MinUIOp: _binary(_non_negative(_min)),
    arith.MaxUIOp: _binary(_non_negative(_max)),
    arith.SelectOp: _select,
}


@dataclass
class Linear:
    """sum(coef * atom) + const; atoms in the order they were met, so rebuilt code reads
    like the original."""

    terms: dict[SSAValue, int] = field(default_factory=dict)
    const: int = 0

    def scaled(self, k: int) -> Linear:
        return Linear({a: c * k for a, c in self.terms.items() if c * k}, self.const * k)

    def plus(self, other: Linear) -> Linear:
        terms = dict(self.terms)
        for a, c in other.terms.items():
            terms[a] = terms.get(a, 0) + c
        return Linear({a: c for a, c in terms.items() if c}, self.const + other.const)

    def range(self, ranges: Ranges) -> Range | None:
        lo = hi = self.const
        for atom, coef in self.terms.items():
            r = ranges(atom)
            if r is None:
                return None
            lo, hi = lo + min(coef * r[0], coef * r[1]), hi + max(coef * r[0], coef * r[1])
        return _checked(lo, hi)


def _linear_mul(op: Operation) -> Linear | None:
    a, b = op.operands
    if (k := constant_int(b)) is not None:
        return linear(a).scaled(k)
    if (k := constant_int(a)) is not None:
        return linear(b).scaled(k)
    return None


LINEAR_RULES: dict[type[Operation], Callable[[Operation], Linear | None]] = {
    arith.AddiOp: lambda op: linear(op.operands[0]).plus(linear(op.operands[1])),
    arith.SubiOp: lambda op: linear(op.operands[0]).plus(linear(op.operands[1]).scaled(-1)),
    arith.MuliOp: _linear_mul,
}


def linear(v: SSAValue) -> Linear:
    c = constant_int(v)
    if c is not None:
        return Linear({}, c)
    rule = LINEAR_RULES.get(type(v.owner))
    form = rule(v.owner) if rule is not None else None
    return form if form is not None else Linear({v: 1})


@dataclass
class Builder:
    """Writes new index ops before the op being rewritten."""

    rewriter: PatternRewriter
    at: Operation

    def add(self, op: Operation) -> SSAValue:
        self.rewriter.insert(op, InsertPoint.before(self.at))
        return op.results[0]

    def const(self, k: int) -> SSAValue:
        return self.add(arith.ConstantOp.from_int_and_width(k, IndexType()))

    def linear(self, form: Linear) -> SSAValue:
        total: SSAValue | None = None
        for atom, coef in form.terms.items():
            term = atom if coef == 1 else self.add(arith.MuliOp(atom, self.const(coef)))
            total = term if total is None else self.add(arith.AddiOp(total, term))
        if total is None:
            return self.const(form.const)
        return total if form.const == 0 else self.add(arith.AddiOp(total, self.const(form.const)))

    def div(self, form: Linear, c: int) -> SSAValue:
        return self.add(arith.DivUIOp(self.linear(form), self.const(c)))

    def rem(self, form: Linear, c: int) -> SSAValue:
        return self.add(arith.RemUIOp(self.linear(form), self.const(c)))


@dataclass
class Division:
    """A division or remainder by the constant c > 0 of a dividend known to be >= 0."""

    op: Operation
    is_rem: bool
    dividend: SSAValue
    c: int
    ranges: Ranges


Rewrite = Callable[[Division, Builder], SSAValue | None]


def _fits(d: Division, b: Builder) -> SSAValue | None:
    """0 <= x < c: x div c = 0, x rem c = x."""
    r = d.ranges(d.dividend)
    assert r is not None
    if r[1] >= d.c:
        return None
    return d.dividend if d.is_rem else b.const(0)


def _split(d: Division, b: Builder) -> SSAValue | None:
    """x = c*q + g*big + small with g | c and 0 <= small < g:
    x div c = q + big div (c/g), x rem c = (big rem (c/g))*g + small.
    (g = 1 when the terms that are not multiples of c already lie in [0, c): no division left
    beyond q.) Floor division obeys these for any big; big >= 0 keeps the rebuilt ops unsigned."""
    x = linear(d.dividend)
    c = d.c
    quotient = Linear({a: k // c for a, k in x.terms.items() if k % c == 0}, x.const // c)
    rest = Linear({a: k for a, k in x.terms.items() if k % c}, x.const % c)
    rest_range = rest.range(d.ranges)
    if rest_range is None or rest_range[0] < 0:
        return None
    if rest_range[1] < c:
        if not quotient.terms and quotient.const == 0:
            return None  # nothing to take out: _fits's case
        return b.linear(rest) if d.is_rem else b.linear(quotient)
    for g in sorted({math.gcd(c, k) for k in rest.terms.values()} - {1, c}, reverse=True):
        big = Linear({a: k // g for a, k in rest.terms.items() if k % g == 0}, rest.const // g)
        small = Linear({a: k for a, k in rest.terms.items() if k % g}, rest.const % g)
        small_range, big_range = small.range(d.ranges), big.range(d.ranges)
        if small_range is None or big_range is None or small_range[0] < 0 or small_range[1] >= g:
            continue
        if big_range[0] < 0:
            continue
        if d.is_rem:
            scaled = b.add(arith.MuliOp(b.rem(big, c // g), b.const(g)))
            return scaled if not small.terms and small.const == 0 else b.add(arith.AddiOp(scaled, b.linear(small)))
        inner = b.div(big, c // g)
        if not quotient.terms and quotient.const == 0:
            return inner
        return b.add(arith.AddiOp(b.linear(quotient), inner))
    if quotient.terms or quotient.const:  # at least the multiples of c come out
        if d.is_rem:
            return b.rem(rest, c)
        return b.add(arith.AddiOp(b.linear(quotient), b.div(rest, c)))
    return None


_DIVS = (arith.DivUIOp, arith.DivSIOp, arith.FloorDivSIOp)


def _nested_div(d: Division, b: Builder) -> SSAValue | None:
    """(y div a) div c = y div (a*c) for y >= 0."""
    inner = d.dividend.owner
    if d.is_rem or not isinstance(inner, _DIVS):
        return None
    a = constant_int(inner.operands[1])
    y = d.ranges(inner.operands[0])
    if a is None or a <= 0 or y is None or y[0] < 0:
        return None
    return b.add(arith.DivUIOp(inner.operands[0], b.const(a * d.c)))


def _unsigned(d: Division, b: Builder) -> SSAValue | None:
    """A signed division of a non-negative dividend is the unsigned one (shorter x86 code)."""
    if isinstance(d.op, arith.DivUIOp | arith.RemUIOp):
        return None
    cls = arith.RemUIOp if d.is_rem else arith.DivUIOp
    return b.add(cls(d.dividend, d.op.operands[1]))


DIVISION_OPS: dict[type[Operation], bool] = {  # op class -> is a remainder
    arith.DivUIOp: False,
    arith.DivSIOp: False,
    arith.FloorDivSIOp: False,
    arith.RemUIOp: True,
    arith.RemSIOp: True,
}

DIVISION_REWRITES: tuple[Rewrite, ...] = (_fits, _split, _nested_div, _unsigned)


class SimplifyIndexDivision(RewritePattern):
    """The first of DIVISION_REWRITES that applies replaces an index division or remainder."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter, /) -> None:
        is_rem = DIVISION_OPS.get(type(op))
        if is_rem is None or not isinstance(op.results[0].type, IndexType):
            return
        c = constant_int(op.operands[1])
        ranges = Ranges()
        r = ranges(op.operands[0])
        if c is None or c <= 0 or r is None or r[0] < 0:
            return
        d = Division(op, is_rem, op.operands[0], c, ranges)
        builder = Builder(rewriter, op)
        for rewrite in DIVISION_REWRITES:
            value = rewrite(d, builder)
            if value is not None:
                rewriter.replace(op, [], [value])
                return
