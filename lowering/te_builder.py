"""A small Python DSL for writing te.compute bodies, like TVM's `te.compute`.

    out = compute("T_dense", out_type, lambda i, j, k: X[i, k] * W[j, k],
                  reduce=[K], combiner="sum")

Index and scalar arithmetic on `Expr` emits arith/math ops into the body
block being built; `Tensor[...]` emits `te.read`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.builder import ImplicitBuilder
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import FloatAttr, IndexType, IntegerAttr, IntegerType, TensorType
from xdsl.ir import Attribute, SSAValue

from lathe.dialects import te
from lathe.dialects.graph import is_float


class Expr:
    """An SSA value inside a compute body, with operators that emit arith ops."""

    def __init__(self, value: SSAValue):
        self.value = value

    @property
    def type(self) -> Attribute:
        return self.value.type

    def _lift(self, other) -> "Expr":
        return other if isinstance(other, Expr) else const(other, self.type)

    def _bin(self, other, fop, iop) -> "Expr":
        o = self._lift(other)
        op = fop if is_float(self.type) else iop
        return Expr(op(self.value, o.value).result)

    def __add__(self, o): return self._bin(o, arith.AddfOp, arith.AddiOp)
    def __radd__(self, o): return self._lift(o) + self
    def __sub__(self, o): return self._bin(o, arith.SubfOp, arith.SubiOp)
    def __rsub__(self, o): return self._lift(o) - self
    def __mul__(self, o): return self._bin(o, arith.MulfOp, arith.MuliOp)
    def __rmul__(self, o): return self._lift(o) * self
    def __truediv__(self, o): return self._bin(o, arith.DivfOp, arith.DivSIOp)
    def __rtruediv__(self, o): return self._lift(o) / self
    def __floordiv__(self, o): return self._bin(o, arith.DivfOp, arith.FloorDivSIOp)
    def __mod__(self, o): return self._bin(o, arith.RemSIOp, arith.RemSIOp)
    def __neg__(self):
        if is_float(self.type):
            return Expr(arith.NegfOp(self.value).result)
        return const(0, self.type) - self


def const(v, t: Attribute) -> Expr:
    if isinstance(t, IndexType | IntegerType):
        return Expr(arith.ConstantOp(IntegerAttr(int(v), t)).result)
    return Expr(arith.ConstantOp(FloatAttr(float(v), t)).result)


def maximum(a: Expr, b) -> Expr:
    return a._bin(b, arith.MaximumfOp, arith.MaxSIOp)


def minimum(a: Expr, b) -> Expr:
    return a._bin(b, arith.MinimumfOp, arith.MinSIOp)


def exp(a: Expr) -> Expr:
    return Expr(math.ExpOp(a.value).result)


def tanh(a: Expr) -> Expr:
    return Expr(math.TanhOp(a.value).result)


def sqrt(a: Expr) -> Expr:
    return Expr(math.SqrtOp(a.value).result)


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
        vals = [i.value if isinstance(i, Expr) else const(i, IndexType()).value for i in idx]
        return Expr(te.ReadOp(self.value, vals).result)


def compute(stage: str, out_type: TensorType, fn: Callable[..., Expr],
            reduce: Sequence[int] = (), combiner: str = "sum",
            axis_names: Sequence[str] | None = None) -> te.ComputeOp:
    rank = len(out_type.get_shape())
    if axis_names is None:
        axis_names = [f"ax{d}" for d in range(rank)] + [f"k{d}" for d in range(len(reduce))]
    op = te.ComputeOp.build_empty(stage, out_type, axis_names, reduce, combiner if reduce else None)
    block = op.body.block
    with ImplicitBuilder(block):
        result = fn(*[Expr(a) for a in block.args])
        te.YieldOp(result.value)
    return op


def broadcast_index(idx: Sequence[Expr], in_shape: Sequence[int], out_shape: Sequence[int]) -> list:
    """numpy broadcasting: the input index for an output index."""
    offset = len(out_shape) - len(in_shape)
    return [0 if d == 1 and out_shape[offset + k] != 1 else idx[offset + k] for k, d in enumerate(in_shape)]
