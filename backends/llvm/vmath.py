"""Vectorized float32 exp, tanh and erf as LLVM IR functions.

LLVM lowers `llvm.exp.v16f32` to sixteen scalar libm calls; a transcendental
in an elementwise tail (softmax, GELU, tanh) then dominates the kernel. These
are the classic polynomial forms (Cephes' expf range reduction; Eigen's
rational approximations of tanh and erf), accurate to a few ulp, written
once per vector width and inlined into vectorized loops.
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

    def minmax(self, kind: str, a: str, b: str) -> str:
        return self.op(f"call {self.t()} @llvm.{kind}.v{self.w}f32({self.t()} {a}, {self.t()} {b})")

    def clamp(self, x: str, bound: float) -> str:
        """x limited to [-bound, bound], NaN kept: `c > x ? c : x` returns x when x is NaN, and
        is exactly what x86's maxps/minps compute, one instruction each (llvm.minnum/maxnum
        would turn NaN into the bound, and then need a compare and a select to undo it)."""
        t, m = self.t(), f"<{self.w} x i1>"
        lo = self.op(f"select {m} {self.op(f'fcmp ogt {t} {self.c(-bound)}, {x}')}, {t} {self.c(-bound)}, {t} {x}")
        return self.op(f"select {m} {self.op(f'fcmp olt {t} {self.c(bound)}, {lo}')}, {t} {self.c(bound)}, {t} {lo}")

    def ret(self, name: str, r: str) -> tuple[str, str]:
        """The function's name and body returning r (NaN already carried through by `clamp`)."""
        return name, "\n".join(self.lines) + f"\n  ret {self.t()} {r}"

    def finish(self, name: str, r: str) -> tuple[str, str]:
        """The function's name and body returning r, or x itself where x is NaN: the
        range clamps (minnum/maxnum) turn NaN into a bound, and numpy's exp of NaN is NaN
        (a softmax row holding a NaN must come out NaN, not 0). exp keeps these clamps: a
        NaN carried through would reach its fptosi, whose result is poison."""
        nan = self.op(f"fcmp uno {self.t()} %x, %x")
        out = self.op(f"select <{self.w} x i1> {nan}, {self.t()} %x, {self.t()} {r}")
        return name, "\n".join(self.lines) + f"\n  ret {self.t()} {out}"

    def horner(self, x: str, coeffs: list[float]) -> str:
        acc = self.c(coeffs[0])
        for co in coeffs[1:]:
            acc = self.fma(acc, x, self.c(co))
        return acc


def _declares(w: int) -> list[str]:
    t = f"<{w} x float>"
    return [
        f"declare {t} @llvm.fma.v{w}f32({t}, {t}, {t})",
        f"declare {t} @llvm.minnum.v{w}f32({t}, {t})",
        f"declare {t} @llvm.maxnum.v{w}f32({t}, {t})",
        f"declare {t} @llvm.floor.v{w}f32({t})",
    ]


def vexp(w: int) -> tuple[str, str, list[str]]:
    b = _Body(w)
    x = b.minmax("minnum", "%x", b.c(88.3762626647949))
    x = b.minmax("maxnum", x, b.c(-87.3365447504019))
    fx = b.op(f"call {b.t()} @llvm.floor.v{w}f32({b.t()} {b.fma(x, b.c(1.44269504088896341), b.c(0.5))})")
    x = b.fma(fx, b.c(-0.693359375), x)
    x = b.fma(fx, b.c(2.12194440e-4), x)
    z = b.bin("fmul", x, x)
    y = b.horner(
        x, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]
    )
    y = b.fma(y, z, x)
    y = b.bin("fadd", y, b.c(1.0))
    n = b.op(f"fptosi {b.t()} {fx} to <{w} x i32>")
    n = b.op(f"add <{w} x i32> {n}, <" + ", ".join(["i32 127"] * w) + ">")
    n = b.op(f"shl <{w} x i32> {n}, <" + ", ".join(["i32 23"] * w) + ">")
    pow2 = b.op(f"bitcast <{w} x i32> {n} to {b.t()}")
    r = b.bin("fmul", y, pow2)
    # past the clamps the polynomial saturates near FLT_MAX / FLT_MIN; numpy overflows to inf
    # (exp(inf) = inf) and underflows to 0 (exp(-inf) = 0)
    r = b.op(
        f"select <{w} x i1> {b.op(f'fcmp ogt {b.t()} %x, {b.c(88.72283935546875)}')}, {b.t()} {b.c(float('inf'))}, {b.t()} {r}"
    )
    r = b.op(
        f"select <{w} x i1> {b.op(f'fcmp olt {b.t()} %x, {b.c(-87.3365447504019)}')}, {b.t()} {b.c(0.0)}, {b.t()} {r}"
    )
    return (*b.finish(f"lathe_vexp_v{w}f32", r), _declares(w))


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
