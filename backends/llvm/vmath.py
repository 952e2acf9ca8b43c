"""Vectorized float32 exp, tanh and erf as LLVM IR functions.

LLVM lowers `llvm.exp.v16f32` to sixteen scalar libm calls; a transcendental
in an elementwise tail (softmax, sigmoid/SiLU, GELU, tanh) then dominates the
kernel. tanh and erf are Eigen's rational approximations, accurate to a few
ulp. exp is the Cody-Waite form ONNX Runtime's MLAS uses (16 vector operations):
within 1 ulp of float64 exp rounded to float32 for every float32 in
[EXP_UNDERFLOW, EXP_OVERFLOW] (checked exhaustively, 2.24e9 values, 99.5%
correctly rounded), exactly 0 below, inf above, NaN for NaN; from a normal x
it never forms a subnormal, and it sets no FTZ/DAZ mode that other kernels would see. Each is
written once per vector width and inlined into vectorized loops.
"""

from __future__ import annotations

from xdsl.dialects import math
from xdsl.dialects.builtin import f32

from lathe.backends.llvm.ops import float_literal


def _float(v: float) -> str:
    return f"float {float_literal(v, f32)}"


class _Body:
    def __init__(self, w: int):
        self.w = w
        self.lines: list[str] = []
        self.n = 0

    def t(self) -> str:
        return f"<{self.w} x float>"

    def c(self, v: float) -> str:
        """A splat constant."""
        return "<" + ", ".join([_float(v)] * self.w) + ">"

    def op(self, text: str) -> str:
        self.n += 1
        name = f"%r{self.n}"
        self.lines.append(f"  {name} = {text}")
        return name

    def bin(self, kind: str, a: str, b: str) -> str:
        return self.op(f"{kind} {self.t()} {a}, {b}")

    def fma(self, a: str, b: str, c: str) -> str:
        return self.op(f"call {self.t()} @llvm.fma.v{self.w}f32({self.t()} {a}, {self.t()} {b}, {self.t()} {c})")

    def clamp(self, x: str, bound: float) -> str:
        """x limited to [-bound, bound], NaN kept: `c > x ? c : x` returns x when x is NaN, and
        is exactly what x86's maxps/minps compute, one instruction each (llvm.minnum/maxnum
        would turn NaN into the bound, and then need a compare and a select to undo it)."""
        t, m = self.t(), f"<{self.w} x i1>"
        lo = self.op(f"select {m} {self.op(f'fcmp ogt {t} {self.c(-bound)}, {x}')}, {t} {self.c(-bound)}, {t} {x}")
        return self.op(f"select {m} {self.op(f'fcmp olt {t} {self.c(bound)}, {lo}')}, {t} {self.c(bound)}, {t} {lo}")

    def ret(self, name: str, r: str) -> tuple[str, str]:
        """The function's name and body returning r (NaN carried through by `clamp` and exp's selects)."""
        return name, "\n".join(self.lines) + f"\n  ret {self.t()} {r}"

    def splat_i32(self, v: int) -> str:
        return "<" + ", ".join([f"i32 {v}"] * self.w) + ">"

    def horner(self, x: str, coeffs: list[float]) -> str:
        acc = self.c(coeffs[0])
        for co in coeffs[1:]:
            acc = self.fma(acc, x, self.c(co))
        return acc


LOG2E = 1.44269504088896341
ROUND_MAGIC = 12582912.0  # 1.5 * 2^23: adding it rounds |v| < 2^22 to an integer in the low mantissa bits
LN2_HI = 0.693147182464599609375  # ln 2 rounded to float32
LN2_LO = -1.904654299957768e-09  # ln 2 - LN2_HI
# exp(r) on [-ln2/2, ln2/2], highest power first: minimax relative error 5e-9 with float32 coefficients
EXP_POLYNOMIAL = [1.3885872e-3, 8.372986e-3, 4.166749e-2, 1.6666476e-1, 4.9999994e-1, 1.0, 1.0]
EXP_UNDERFLOW = -87.33654022216797  # the least float32 whose exp is normal (>= FLT_MIN)
EXP_OVERFLOW = 88.72283172607422  # the greatest float32 whose exp rounds below inf


def _declares(w: int) -> list[str]:
    t = f"<{w} x float>"
    return [f"declare {t} @llvm.fma.v{w}f32({t}, {t}, {t})"]


def vexp(w: int) -> tuple[str, str, list[str]]:
    """exp(x) = 2^n * P(r), n = round(x / ln2), r = x - n ln2 (Cody-Waite, two fmas), P a degree-6
    minimax polynomial on [-ln2/2, ln2/2]; 2^n enters by an integer add to P's exponent field,
    never by a float multiply. There is no clamp on x: a lane outside [UNDERFLOW, OVERFLOW]
    still reduces to |r| <= ln2/2 (or, past |x| ~ 2.9e6, to a huge r), so its float ops stay
    normal, and its integer add builds bit garbage that the two selects replace. Below
    UNDERFLOW the result is exactly 0 (numpy's exp is subnormal there; a float op that forms a
    subnormal costs a microcode assist of 100+ cycles on Intel, which made every masked
    softmax row 2.5x slower when 2^n scaled P(r) by a multiply),
    above OVERFLOW or NaN it is x + inf (inf, or NaN kept). Inside, n is in [-126, 128] and
    P(r) >= 1 where n = -126 and < 1 where n = 128, so the add never leaves the normal exponents."""
    b = _Body(w)
    i32 = f"<{w} x i32>"
    # x * log2(e) + 1.5 * 2^23 rounds to the nearest integer n, held in the low mantissa bits
    biased = b.fma("%x", b.c(LOG2E), b.c(ROUND_MAGIC))
    n = b.bin("fsub", biased, b.c(ROUND_MAGIC))
    r = b.fma(n, b.c(-LN2_HI), "%x")
    r = b.fma(n, b.c(-LN2_LO), r)
    p = b.horner(r, EXP_POLYNOMIAL)
    shift = b.op(f"shl {i32} {b.op(f'bitcast {b.t()} {biased} to {i32}')}, {b.splat_i32(23)}")
    p_bits = b.op(f"bitcast {b.t()} {p} to {i32}")
    scaled = b.op(f"bitcast {i32} {b.op(f'add {i32} {p_bits}, {shift}')} to {b.t()}")
    under = b.op(f"fcmp olt {b.t()} %x, {b.c(EXP_UNDERFLOW)}")
    r = b.op(f"select <{w} x i1> {under}, {b.t()} zeroinitializer, {b.t()} {scaled}")
    over = b.op(f"fcmp ugt {b.t()} %x, {b.c(EXP_OVERFLOW)}")
    r = b.op(f"select <{w} x i1> {over}, {b.t()} {b.bin('fadd', '%x', b.c(float('inf')))}, {b.t()} {r}")
    return (*b.ret(f"lathe_vexp_v{w}f32", r), _declares(w))


def vtanh(w: int) -> tuple[str, str, list[str]]:
    b = _Body(w)
    x = b.clamp("%x", 7.90531110763549805)
    x2 = b.bin("fmul", x, x)
    p = b.horner(
        x2,
        [
            -2.76076847742355e-16,
            2.00018790482477e-13,
            -8.60467152213735e-11,
            5.12229709037114e-08,
            1.48572235717979e-05,
            6.37261928875436e-04,
            4.89352455891786e-03,
        ],
    )
    p = b.bin("fmul", x, p)
    q = b.horner(x2, [1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03])
    r = b.bin("fdiv", p, q)
    # |x| < 0.0004: tanh(x) = x to float precision
    small = b.op(f"call {b.t()} @llvm.fabs.v{w}f32({b.t()} %x)")
    cond = b.op(f"fcmp olt {b.t()} {small}, {b.c(0.0004)}")
    r = b.op(f"select <{w} x i1> {cond}, {b.t()} %x, {b.t()} {r}")
    return (*b.ret(f"lathe_vtanh_v{w}f32", r), _declares(w) + [f"declare {b.t()} @llvm.fabs.v{w}f32({b.t()})"])


def verf(w: int) -> tuple[str, str, list[str]]:
    """erf(x) = x * P(x^2) / Q(x^2) on [-4, 4] (erf(4) is 1 in float32). x multiplies the
    ratio last: x * P first underflows to a subnormal for |x| near FLT_MIN and lost up to
    4e-6 relative there. The division stays: rcp14 + a Newton step (what LLVM emits for
    `fdiv arcp`) measured 10% slower on Zen 4, where this loop is bound by its count of
    zmm operations, not by the divider."""
    b = _Body(w)
    x = b.clamp("%x", 4.0)
    x2 = b.bin("fmul", x, x)
    p = b.horner(
        x2,
        [
            -2.72614225801306e-10,
            2.77068142495902e-08,
            -2.10102402082508e-06,
            -5.69250639462346e-05,
            -7.34990630326855e-04,
            -2.95459980854025e-03,
            -1.60960333262415e-02,
        ],
    )
    q = b.horner(
        x2,
        [
            -1.45660718464996e-05,
            -2.13374055278905e-04,
            -1.68282697438203e-03,
            -7.37332916720468e-03,
            -1.42647390514189e-02,
        ],
    )
    r = b.bin("fmul", x, b.bin("fdiv", p, q))
    return (*b.ret(f"lathe_verf_v{w}f32", r), _declares(w))


# the ops with a polynomial vector form, and the generator of each
POLYNOMIALS = {math.ExpOp: vexp, math.TanhOp: vtanh, math.ErfOp: verf}
