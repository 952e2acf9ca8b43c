"""A small Python DSL for writing te.compute bodies, like TVM's `te.compute`.

    out = compute("T_dense", out_type, lambda i, j, k: X[i, k] * W[j, k],
                  reduce=[K], combiner="sum")

Arithmetic on `Expr` emits arith/math ops into the body block being built
(index arithmetic for indices, float or integer arithmetic for values);
`Tensor[...]` emits `te.read`. Comparisons are methods (`a.lt(b)`) so that
`==` keeps its Python meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

from xdsl.builder import ImplicitBuilder
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    TensorType,
    f32,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, SSAValue

from lathe.dialects import dtypes, te
from lathe.dialects.graph import is_float

INDEX = IndexType()
_FLOAT_WIDTH = {Float16Type: 16, Float32Type: 32, Float64Type: 64}


class Expr:
    """An SSA value inside a compute body, with operators that emit arith ops."""

    def __init__(self, value: SSAValue):
        self.value = value

    @property
    def type(self) -> Attribute:
        return self.value.type

    def _lift(self, other) -> Expr:
        return other if isinstance(other, Expr) else const(other, self.type)

    def _bin(self, other, fop, iop) -> Expr:
        o = self._lift(other)
        op = fop if is_float(self.type) else iop
        return Expr(op(self.value, o.value).result)

    def __add__(self, o):
        return self._bin(o, arith.AddfOp, arith.AddiOp)

    def __radd__(self, o):
        return self._lift(o) + self

    def __sub__(self, o):
        return self._bin(o, arith.SubfOp, arith.SubiOp)

    def __rsub__(self, o):
        return self._lift(o) - self

    def __mul__(self, o):
        return self._bin(o, arith.MulfOp, arith.MuliOp)

    def __rmul__(self, o):
        return self._lift(o) * self

    def __truediv__(self, o):
        return self._bin(o, arith.DivfOp, arith.DivSIOp)

    def __rtruediv__(self, o):
        return self._lift(o) / self

    def __floordiv__(self, o):
        return self._bin(o, arith.DivfOp, arith.FloorDivSIOp)

    def __mod__(self, o):
        return self._bin(o, arith.RemSIOp, arith.RemSIOp)

    def __neg__(self):
        if is_float(self.type):
            return Expr(arith.NegfOp(self.value).result)
        return const(0, self.type) - self

    def _cmp(self, other, fpred: str, ipred: str) -> Expr:
        o = self._lift(other)
        if is_float(self.type):
            return Expr(arith.CmpfOp(self.value, o.value, fpred).result)
        if _is_bool(self.type):  # true is 1, not -1: compare unsigned
            ipred = {"slt": "ult", "sle": "ule", "sgt": "ugt", "sge": "uge"}.get(ipred, ipred)
        return Expr(arith.CmpiOp(self.value, o.value, ipred).result)

    def lt(self, o):
        return self._cmp(o, "olt", "slt")

    def le(self, o):
        return self._cmp(o, "ole", "sle")

    def gt(self, o):
        return self._cmp(o, "ogt", "sgt")

    def ge(self, o):
        return self._cmp(o, "oge", "sge")

    def eq(self, o):
        return self._cmp(o, "oeq", "eq")

    def ne(self, o):
        return self._cmp(o, "une", "ne")

    def logical_and(self, o):
        return Expr(arith.AndIOp(self.value, self._lift(o).value).result)

    def logical_or(self, o):
        return Expr(arith.OrIOp(self.value, self._lift(o).value).result)

    def logical_not(self):
        return Expr(arith.XOrIOp(self.value, const(1, i1).value).result)


def combiner_identity(combiner: str, t: Attribute):
    """The value a reduction with `combiner` starts from: combining it changes nothing."""
    return dtypes.reduction_identity(combiner, t)


def const(v, t: Attribute) -> Expr:
    if isinstance(t, IndexType | IntegerType):
        if isinstance(t, IntegerType) and t.width.data == 1:
            v = 1 if v else 0
        return Expr(arith.ConstantOp(IntegerAttr(int(v), t)).result)
    return Expr(arith.ConstantOp(FloatAttr(float(v), t)).result)


def index(v: int) -> Expr:
    return const(v, INDEX)


def select(cond: Expr, a, b) -> Expr:
    a_ = a if isinstance(a, Expr) else const(a, b.type)
    b_ = b if isinstance(b, Expr) else const(b, a_.type)
    return Expr(arith.SelectOp(cond.value, a_.value, b_.value).result)


def _is_bool(t) -> bool:
    return isinstance(t, IntegerType) and t.width.data == 1


def maximum(a: Expr, b) -> Expr:
    return a._bin(b, arith.MaximumfOp, arith.MaxUIOp if _is_bool(a.type) else arith.MaxSIOp)


def minimum(a: Expr, b) -> Expr:
    return a._bin(b, arith.MinimumfOp, arith.MinUIOp if _is_bool(a.type) else arith.MinSIOp)


def clamp(i: Expr, lo, hi) -> Expr:
    return minimum(maximum(i, lo), hi)


def _unary(op_cls):
    def f(a: Expr) -> Expr:
        return Expr(op_cls(a.value).result)

    return f


exp = _unary(math.ExpOp)
log = _unary(math.LogOp)
tanh = _unary(math.TanhOp)
sqrt = _unary(math.SqrtOp)
erf = _unary(math.ErfOp)
floor = _unary(math.FloorOp)
ceil = _unary(math.CeilOp)
round_even = _unary(math.RoundEvenOp)
fabs = _unary(math.AbsFOp)


# The math namespace a graph op's `scalar` formula is written in (dialects/graph/elementwise.py's
# UnaryOp), for te: the same formula that gives the op's numpy reference gives its compute.
def absolute(x: Expr) -> Expr:
    return fabs(x) if is_float(x.type) else select(x.lt(0), -x, x)


TE_MATH = SimpleNamespace(
    exp=exp,
    log=log,
    sqrt=sqrt,
    tanh=tanh,
    erf=erf,
    floor=floor,
    ceil=ceil,
    round_even=round_even,
    abs=absolute,
    maximum=maximum,
    minimum=minimum,
)


def power(a: Expr, b: Expr) -> Expr:
    return Expr(math.PowFOp(a.value, b.value).result)


def cast(x: Expr, to: Attribute) -> Expr:
    """Numeric conversion with C semantics (float→int truncates toward zero)."""
    src = x.type
    if src == to:
        return x
    if isinstance(to, IntegerType) and to.width.data == 1:  # to bool: x != 0
        return x.ne(0)
    if isinstance(src, IndexType):
        return cast(Expr(arith.IndexCastOp(x.value, i64).result), to)
    if isinstance(to, IndexType):
        x = cast(x, i64) if not isinstance(src, IntegerType) or src.width.data != 64 else x
        return Expr(arith.IndexCastOp(x.value, INDEX).result)
    if is_float(src) and is_float(to):
        widths = {_FLOAT_WIDTH[type(src)], _FLOAT_WIDTH[type(to)]}
        if widths == {16, 64}:  # through f32: the JIT has no __truncdfhf2 / __extendhfdf2
            return cast(cast(x, f32), to)
        wider = _FLOAT_WIDTH[type(to)] > _FLOAT_WIDTH[type(src)]
        return Expr((arith.ExtFOp if wider else arith.TruncFOp)(x.value, to).result)
    if is_float(src):
        return Expr(arith.FPToSIOp(x.value, to).result)
    assert isinstance(src, IntegerType)
    if is_float(to):
        cls = arith.UIToFPOp if src.width.data == 1 else arith.SIToFPOp
        return Expr(cls(x.value, to).result)
    assert isinstance(to, IntegerType)
    if to.width.data > src.width.data:
        cls = arith.ExtUIOp if src.width.data == 1 else arith.ExtSIOp
        return Expr(cls(x.value, to).result)
    return Expr(arith.TruncIOp(x.value, to).result)


def index_as_float(i: Expr) -> Expr:
    """An index as f64, for coordinate arithmetic (resize)."""
    return cast(i, f64)


class Tensor:
    """A tensor a compute body may read: `T[i, j]` emits te.read."""

    def __init__(self, value: SSAValue):
        self.value = value
        assert isinstance(value.type, TensorType)
        self.shape = list(value.type.get_shape())
        self.dtype = value.type.element_type

    def __getitem__(self, idx) -> Expr:
        if not isinstance(idx, tuple):
            idx = (idx,)
        vals = [i.value if isinstance(i, Expr) else index(i).value for i in idx]
        return Expr(te.ReadOp(self.value, vals).result)


def compute(
    stage: str,
    out_type: TensorType,
    fn: Callable[..., Expr],
    reduce: Sequence[int] = (),
    combiner: str = "sum",
    axis_names: Sequence[str] | None = None,
    anchor: str | None = None,
    role: str | None = None,
) -> te.ComputeOp:
    """`anchor` and `role` are the marks schedule templates key on (lowering/anchors.py)."""
    rank = len(out_type.get_shape())
    if axis_names is None:
        axis_names = [f"ax{d}" for d in range(rank)] + [f"k{d}" for d in range(len(reduce))]
    op = te.ComputeOp.build_empty(
        stage, out_type, axis_names, reduce, combiner if reduce else None, anchor=anchor, role=role
    )
    block = op.body.block
    with ImplicitBuilder(block):
        result = fn(*[Expr(a) for a in block.args])
        if not isinstance(result, Expr):
            result = const(result, out_type.element_type)
        if result.type != out_type.element_type:
            result = cast(result, out_type.element_type)
        te.YieldOp(result.value)
    return op


def broadcast_index(idx: Sequence, in_shape: Sequence[int], out_shape: Sequence[int]) -> list:
    """numpy broadcasting: the input index for an output index."""
    offset = len(out_shape) - len(in_shape)
    return [0 if d == 1 and out_shape[offset + k] != 1 else idx[offset + k] for k, d in enumerate(in_shape)]
