"""How each scalar arith/math op is spelled in LLVM IR, for the scalar and the vector emitter.

codegen.py (one lane) and vectorize.py (W lanes) write the same instructions, intrinsics
and libm calls; the spellings live here once, so the two agree and neither imports the
other's internals.
"""

from __future__ import annotations

import struct

import numpy as np
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
)
from xdsl.ir import Attribute, Operation

from lathe.errors import LatheError

FAST = "reassoc contract"
# Math calls get no `reassoc`: with it LLVM folds exp(log(x)) to x, which is wrong for
# x <= 0 or NaN (numpy gives NaN / 0); reassociation only pays off in sums and products.
MATH_FLAGS = "contract"
FLOAT_TYPES = ("float", "double", "half")
CMPI = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]
CMPF = [
    "false",
    "oeq",
    "ogt",
    "oge",
    "olt",
    "ole",
    "one",
    "ord",
    "ueq",
    "ugt",
    "uge",
    "ult",
    "ule",
    "une",
    "uno",
    "true",
]

FBIN = {arith.AddfOp: "fadd", arith.SubfOp: "fsub", arith.MulfOp: "fmul", arith.DivfOp: "fdiv"}
IBIN = {
    arith.AddiOp: "add",
    arith.SubiOp: "sub",
    arith.MuliOp: "mul",
    arith.DivSIOp: "sdiv",
    arith.DivUIOp: "udiv",
    arith.RemSIOp: "srem",
    arith.RemUIOp: "urem",
    arith.AndIOp: "and",
    arith.OrIOp: "or",
    arith.XOrIOp: "xor",
    arith.ShLIOp: "shl",
    arith.ShRSIOp: "ashr",
    arith.ShRUIOp: "lshr",
}
DIVISIONS = (arith.DivSIOp, arith.RemSIOp, arith.DivUIOp, arith.RemUIOp)
BIN_INTRINSIC = {
    arith.MaximumfOp: "maximum",
    arith.MinimumfOp: "minimum",
    arith.MaxnumfOp: "maxnum",
    arith.MinnumfOp: "minnum",
    arith.MaxSIOp: "smax",
    arith.MinSIOp: "smin",
    arith.MaxUIOp: "umax",
    arith.MinUIOp: "umin",
    math.PowFOp: "pow",
    math.CopySignOp: "copysign",
}
UN_INTRINSIC = {
    math.ExpOp: "exp",
    math.LogOp: "log",
    math.SqrtOp: "sqrt",
    math.AbsFOp: "fabs",
    math.FloorOp: "floor",
    math.CeilOp: "ceil",
    math.RoundOp: "round",
    math.TanhOp: "tanh",
    math.SinOp: "sin",
    math.CosOp: "cos",
    math.Log2Op: "log2",
    math.Exp2Op: "exp2",
    math.Log10Op: "log10",
    math.RoundEvenOp: "roundeven",
    math.TruncOp: "trunc",
}
LIBM = {math.ErfOp: "erf"}  # no LLVM intrinsic: a libm call
CASTS = {
    arith.SIToFPOp: "sitofp",
    arith.UIToFPOp: "uitofp",
    arith.FPToSIOp: "fptosi",
    arith.FPToUIOp: "fptoui",
    arith.ExtFOp: "fpext",
    arith.TruncFOp: "fptrunc",
    arith.ExtSIOp: "sext",
    arith.ExtUIOp: "zext",
    arith.TruncIOp: "trunc",
}


def llvm_type(t: Attribute) -> str:
    if isinstance(t, IndexType):
        return "i64"
    if isinstance(t, Float32Type):
        return "float"
    if isinstance(t, Float64Type):
        return "double"
    if isinstance(t, Float16Type):
        return "half"
    if isinstance(t, IntegerType):
        return f"i{t.width.data}"
    if isinstance(t, MemRefType):
        return "ptr"
    raise LatheError(f"the LLVM backend cannot lower type {t}")


def intrinsic_suffix(t: Attribute) -> str:
    """The type part of an overloaded intrinsic's name (llvm.fma.f32, llvm.smax.i64)."""
    return {"float": "f32", "double": "f64", "half": "f16"}.get(llvm_type(t), llvm_type(t))


def bits(t: Attribute) -> int:
    """Bits of an element in memory: an i1 takes a byte (numpy's layout)."""
    if isinstance(t, IntegerType):
        return max(8, t.width.data)
    return {"float": 32, "double": 64, "half": 16}[llvm_type(t)]


def float_literal(v: float, t: Attribute) -> str:
    """Exact: LLVM spells every float constant as the double of the value rounded to its type."""
    if isinstance(t, Float32Type):
        v = float(np.float32(v))
    elif isinstance(t, Float16Type):
        v = float(np.float16(v))
    return f"0x{struct.unpack('<Q', struct.pack('<d', v))[0]:016X}"


def divisor_is_safe(op: Operation) -> bool:
    """A constant divisor that is neither 0 nor (signed) -1: the plain instruction cannot trap."""
    d = op.operands[1].owner
    if not isinstance(d, arith.ConstantOp) or not isinstance(d.value, IntegerAttr):
        return False
    v = d.value.value.data
    return v != 0 and not (v == -1 and isinstance(op, arith.DivSIOp | arith.RemSIOp))


def checked_division(fe, t: type, ty: str, elem: str, a: str, b: str, lanes: int | None = None) -> str:
    """Integer division or remainder (scalar, or `lanes` wide) with the interpreter's answers
    where the instruction would trap (SIGFPE) or be undefined: x / 0 = x % 0 = 0, and for signed
    division INT_MIN / -1 wraps to INT_MIN and x % -1 = 0. `fe` writes the instructions it needs
    (`tmp`, `emit`); returns the result's expression."""

    def const(v: int) -> str:
        return str(v) if lanes is None else "<" + ", ".join([f"{elem} {v}"] * lanes) + ">"

    cond = "i1" if lanes is None else f"<{lanes} x i1>"
    signed = t in (arith.DivSIOp, arith.RemSIOp)
    zero = fe.tmp("dz")
    fe.emit(f"{zero} = icmp eq {ty} {b}, {const(0)}")
    bad = zero
    if signed:
        minus1, bad = fe.tmp("dm"), fe.tmp("db")
        fe.emit(f"{minus1} = icmp eq {ty} {b}, {const(-1)}")
        fe.emit(f"{bad} = or {cond} {zero}, {minus1}")
    divisor, q = fe.tmp("dd"), fe.tmp("dq")
    fe.emit(f"{divisor} = select {cond} {bad}, {ty} {const(1)}, {ty} {b}")
    fe.emit(f"{q} = {IBIN[t]} {ty} {a}, {divisor}")
    if signed:  # by -1: a / -1 = 0 - a (wrapping), a % -1 = 0
        special, by_m1 = fe.tmp("ds"), fe.tmp("dn")
        fe.emit(
            f"{by_m1} = sub {ty} {const(0)}, {a}"
            if t is arith.DivSIOp
            else f"{by_m1} = add {ty} {const(0)}, {const(0)}"
        )
        fe.emit(f"{special} = select {cond} {minus1}, {ty} {by_m1}, {ty} {q}")
        q = special
    return f"select {cond} {zero}, {ty} {const(0)}, {ty} {q}"
