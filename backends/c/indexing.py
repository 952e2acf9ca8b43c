"""What is known of index values: a range and a divisor, for simpler division and remainder.

te writes a tiled index as `floordiv(base + j, 32)` and `rem(base + j, 32)`
with base a multiple of 32 and j a loop variable in [0, 32). A C compiler
cannot see that these are `base / 32` and `j` (it does not know base's
divisors), so it gathers instead of loading a vector, and a dense kernel runs
30 times slower. The LLVM backend's vectorizer (vectorize.py) reasons about
lanes for the same reason; here the facts are read once from the IR: ranges
from loop bounds and constants, divisors from constants, multiplications and
loop steps.
"""

from __future__ import annotations

import math as pymath

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IndexType
from xdsl.ir import Block, Operation, SSAValue

from lathe.dialects.loop import constant_int

ANY = 1 << 62  # the divisor of 0: every number divides it
Range = tuple[int, int]


def _divrem_range(a: Range | None, c: int | None, rem: bool) -> Range | None:
    if a is None or c is None or c <= 0 or a[0] < 0:
        return None
    if rem:
        return a if a[1] < c else (0, c - 1)
    return a[0] // c, a[1] // c


class IndexFacts:
    """Ranges and divisors of index values, computed on demand and remembered."""

    def __init__(self) -> None:
        self._ranges: dict[SSAValue, Range | None] = {}
        self._divisors: dict[SSAValue, int] = {}

    # -- ranges
    def range(self, v: SSAValue) -> Range | None:
        if v not in self._ranges:
            self._ranges[v] = None  # (a cycle through a loop-carried value stays unknown)
            self._ranges[v] = self._compute_range(v)
        return self._ranges[v]

    def _compute_range(self, v: SSAValue) -> Range | None:
        c = constant_int(v)
        if c is not None:
            return c, c
        owner = v.owner
        if isinstance(owner, Block):
            loop = owner.parent_op()
            if isinstance(loop, scf.ForOp) and v is owner.args[0] and (constant_int(loop.step) or 0) > 0:
                lb, ub = self.range(loop.lb), self.range(loop.ub)
                if lb is not None and ub is not None and ub[1] - 1 >= lb[0]:
                    return lb[0], ub[1] - 1
            return None
        rule = _RANGE_RULES.get(type(owner))
        return rule(self, owner) if rule is not None else None

    # -- divisors
    def divisor(self, v: SSAValue) -> int:
        """A positive number known to divide `v` (1 when nothing is known)."""
        if v not in self._divisors:
            self._divisors[v] = 1
            self._divisors[v] = self._compute_divisor(v)
        return self._divisors[v]

    def _compute_divisor(self, v: SSAValue) -> int:
        c = constant_int(v)
        if c is not None:
            return abs(c) or ANY
        owner = v.owner
        if isinstance(owner, Block):
            loop = owner.parent_op()
            if isinstance(loop, scf.ForOp) and v is owner.args[0]:
                step = constant_int(loop.step)
                return pymath.gcd(self.divisor(loop.lb), abs(step) if step else self.divisor(loop.step))
            return 1
        if isinstance(owner, arith.AddiOp | arith.SubiOp):
            return pymath.gcd(*(self.divisor(x) for x in owner.operands))
        if isinstance(owner, arith.MuliOp):
            return min(ANY, self.divisor(owner.lhs) * self.divisor(owner.rhs))
        if isinstance(owner, arith.IndexCastOp):
            return self.divisor(owner.input)
        return 1

    # -- the simplification
    def divrem(self, kind: str, x: SSAValue, c: int) -> tuple[str, SSAValue | None] | None:
        """`kind` (divsi, divui, floordivsi, remsi, remui) of x by the constant c > 0, when the
        facts make it simple: ("div", p) meaning p / c exactly, ("rem", q) meaning q,
        ("zero", None); None when nothing simpler is known."""
        is_div = kind in ("divsi", "divui", "floordivsi")
        if kind not in ("divsi", "divui", "floordivsi", "remsi", "remui"):
            return None
        r = self.range(x)
        if r is not None and r[0] >= 0 and r[1] < c:
            return ("zero", None) if is_div else ("rem", x)
        if self.divisor(x) % c == 0:
            return ("div", x) if is_div else ("zero", None)
        owner = x.owner
        nonnegative = r is not None and r[0] >= 0
        if isinstance(owner, arith.AddiOp) and (nonnegative or kind == "floordivsi"):
            for p, q in ((owner.lhs, owner.rhs), (owner.rhs, owner.lhs)):
                qr = self.range(q)
                if self.divisor(p) % c == 0 and qr is not None and qr[0] >= 0 and qr[1] < c:
                    return ("div", p) if is_div else ("rem", q)
        return None


def _binary(f):
    def rule(facts: IndexFacts, op: Operation) -> Range | None:
        a, b = (facts.range(x) for x in op.operands)
        return f(a, b) if a is not None and b is not None else None

    return rule


def _mul(a: Range, b: Range) -> Range:
    corners = [x * y for x in a for y in b]
    return min(corners), max(corners)


def _by_constant(rem: bool, floor: bool = False):
    def rule(facts: IndexFacts, op: Operation) -> Range | None:
        a, c = facts.range(op.operands[0]), constant_int(op.operands[1])
        if floor and a is not None and c is not None and c > 0 and not rem:
            return a[0] // c, a[1] // c  # floor division is monotone for any sign
        return _divrem_range(a, c, rem)

    return rule


def _select(facts: IndexFacts, op: Operation) -> Range | None:
    a, b = facts.range(op.operands[1]), facts.range(op.operands[2])
    return (min(a[0], b[0]), max(a[1], b[1])) if a is not None and b is not None else None


_RANGE_RULES = {
    arith.AddiOp: _binary(lambda a, b: (a[0] + b[0], a[1] + b[1])),
    arith.SubiOp: _binary(lambda a, b: (a[0] - b[1], a[1] - b[0])),
    arith.MuliOp: _binary(_mul),
    arith.MaxSIOp: _binary(lambda a, b: (max(a[0], b[0]), max(a[1], b[1]))),
    arith.MinSIOp: _binary(lambda a, b: (min(a[0], b[0]), min(a[1], b[1]))),
    arith.DivUIOp: _by_constant(False),
    arith.DivSIOp: _by_constant(False),
    arith.FloorDivSIOp: _by_constant(False, floor=True),
    arith.RemUIOp: _by_constant(True),
    arith.RemSIOp: _by_constant(True),
    arith.SelectOp: _select,
    arith.IndexCastOp: lambda facts, op: (
        facts.range(op.operands[0]) if isinstance(op.operands[0].type, IndexType) else None
    ),
}
