"""cleanup-loops' range-aware index simplification (passes/index_arith.py): on random index
expressions over loop nests, every value stored is the same before and after the pass (checked
by running both loop nests with Python's integer semantics for each arith op, independent of
the pass's own reasoning), and the shapes that matter come out without their divisions:
an inlined reshape's flat index read back through the loop bounds, end to end through
lathe.compile against the interpreter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import assert_matches
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import arith, func, memref, scf
from xdsl.dialects.builtin import IndexType, MemRefType, ModuleOp
from xdsl.ir import Block, Region, SSAValue

import lathe
from lathe.dialects import make_context
from lathe.passes.cleanup import CleanupLoops
from lathe.textual_ir.parser import parse_relay

U64 = 1 << 64


def _signed(x: int) -> int:
    x %= U64
    return x - U64 if x >= 1 << 63 else x


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


SEMANTICS = {  # arith's meaning on 64-bit index values, written from the dialect's definition
    arith.AddiOp: lambda a, b: _signed(a + b),
    arith.SubiOp: lambda a, b: _signed(a - b),
    arith.MuliOp: lambda a, b: _signed(a * b),
    arith.DivUIOp: lambda a, b: _signed((a % U64) // (b % U64)),
    arith.RemUIOp: lambda a, b: _signed((a % U64) % (b % U64)),
    arith.DivSIOp: _trunc_div,
    arith.RemSIOp: lambda a, b: a - b * _trunc_div(a, b),
    arith.FloorDivSIOp: lambda a, b: a // b,
    arith.MinSIOp: min,
    arith.MaxSIOp: max,
}


def _run(module: ModuleOp, extents: list[int], n: int) -> np.ndarray:
    """Every store of the kernel, by executing its loop nest."""
    f = next(iter(module.ops))
    out = np.zeros((*extents, n), dtype=object)

    def block(b: Block, env: dict[SSAValue, int]) -> None:
        for op in b.ops:
            if isinstance(op, arith.ConstantOp):
                env[op.result] = op.value.value.data  # type: ignore[union-attr]
            elif isinstance(op, scf.ForOp):
                lo, hi, step = env[op.lb], env[op.ub], env[op.step]
                for i in range(lo, hi, step):
                    block(op.body.block, {**env, op.body.block.args[0]: i})
            elif isinstance(op, memref.StoreOp):
                out[tuple(env[i] for i in op.indices)] = env[op.value]
            elif type(op) in SEMANTICS:
                env[op.results[0]] = SEMANTICS[type(op)](*(env[v] for v in op.operands))

    block(f.body.block, {})
    return out


LEAF_CONSTS = st.integers(-9, 70)
DIVISORS = st.sampled_from([1, 2, 3, 4, 7, 8, 12, 16, 24, 32, 64, 128])
BINARY = [arith.AddiOp, arith.SubiOp, arith.MinSIOp, arith.MaxSIOp]
DIVISION = [arith.DivUIOp, arith.RemUIOp, arith.DivSIOp, arith.RemSIOp, arith.FloorDivSIOp]


@st.composite
def expression(draw, depth: int):
    """A tree: ('iv', k) | ('c', v) | (op, left, right) | ('mul', e, k) | (div op, e, d), with
    the fused-index shape iv*k + iv' often, so the rewrites' bounds are met at their edges."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return ("iv", draw(st.integers(0, 2))) if draw(st.booleans()) else ("c", draw(LEAF_CONSTS))
    kind = draw(st.integers(0, 3))
    if kind == 3:  # a fused or flattened index: iv*k + iv'
        scaled = ("mul", ("iv", draw(st.integers(0, 2))), draw(st.sampled_from([4, 8, 16, 24])))
        return (arith.AddiOp, scaled, ("iv", draw(st.integers(0, 2))))
    if kind == 0:
        return (draw(st.sampled_from(BINARY)), draw(expression(depth - 1)), draw(expression(depth - 1)))
    if kind == 1:
        return ("mul", draw(expression(depth - 1)), draw(st.sampled_from([1, 2, 4, 12, 16, 64, -3])))
    return (draw(st.sampled_from(DIVISION)), draw(expression(depth - 1)), draw(DIVISORS))


def _kernel(extents: list[int], exprs: list) -> ModuleOp:
    """func @k(%out) { for i0, i1, i2 in extents: out[i0, i1, i2, e] = expr_e }"""
    index = IndexType()
    out_t = MemRefType(index, [*extents, len(exprs)])
    body = Block(arg_types=[out_t])
    ops = body

    def const(b: Block, v: int) -> SSAValue:
        c = arith.ConstantOp.from_int_and_width(v, index)
        b.add_op(c)
        return c.result

    ivs = []
    for extent in extents:
        loop_body = Block(arg_types=[index])
        loop = scf.ForOp(const(ops, 0), const(ops, extent), const(ops, 1), [], Region(loop_body))
        ops.add_op(loop)
        ivs.append(loop_body.args[0])
        ops = loop_body

    def emit(e) -> SSAValue:
        if e[0] == "iv":
            return ivs[e[1]]
        if e[0] == "c":
            return const(ops, e[1])
        if e[0] == "mul":
            op = arith.MuliOp(emit(e[1]), const(ops, e[2]))
        elif e[0] in DIVISION:
            op = e[0](emit(e[1]), const(ops, e[2]))
        else:
            op = e[0](emit(e[1]), emit(e[2]))
        ops.add_op(op)
        return op.results[0]

    for k, e in enumerate(exprs):
        ops.add_op(memref.StoreOp.get(emit(e), body.args[0], [*ivs, const(ops, k)]))
    ops.add_op(scf.YieldOp())
    for loop_body in reversed([iv.owner for iv in ivs][:-1]):
        loop_body.add_op(scf.YieldOp())
    body.add_op(func.ReturnOp())
    return ModuleOp([func.FuncOp("k", ([out_t], []), Region(body), "private")])


@settings(max_examples=150, deadline=None)
@given(
    extents=st.lists(st.integers(1, 17), min_size=3, max_size=3),
    exprs=st.lists(expression(4), min_size=1, max_size=4),
)
def test_simplified_index_arithmetic_stores_the_same_values(extents, exprs):
    module = _kernel(extents, exprs)
    module.verify()
    before = _run(module, extents, len(exprs))
    CleanupLoops().apply(make_context(), module)
    module.verify()
    assert (before == _run(module, extents, len(exprs))).all()


@pytest.mark.parametrize("k", [4, 8, 16])
@pytest.mark.parametrize("inner", [-1, 0, 1])
def test_fused_index_at_the_bounds_edges(k, inner):
    """(i*k + j + c) div/rem d with j's extent k - 1, k, k + 1: the rest fits below k (or d) or
    reaches it by one, where a split would be wrong."""
    fused = [(arith.AddiOp, (arith.AddiOp, ("mul", ("iv", 0), k), ("iv", 1)), ("c", c)) for c in (0, 3, k)]
    exprs = [(op, e, d) for e in fused for d in (k, 2 * k, 3 * k, 4 * k, 24) for op in (arith.DivUIOp, arith.RemSIOp)]
    extents = [9, k + inner, 2]
    module = _kernel(extents, exprs)
    before = _run(module, extents, len(exprs))
    CleanupLoops().apply(make_context(), module)
    assert (before == _run(module, extents, len(exprs))).all()


def _flat_index_kernel() -> ModuleOp:
    """out[i, j, k] = (i*768 + j*64 + k) split back by 64, 12, 768: a reshape's read."""
    e_flat = ("add", ("mul", ("iv", 0), 768), ("add", ("mul", ("iv", 1), 64), ("iv", 2)))

    def tree(e):
        if e[0] == "add":
            return (arith.AddiOp, tree(e[1]), tree(e[2]))
        if e[0] == "mul":
            return ("mul", tree(e[1]), e[2])
        return e

    flat = tree(e_flat)
    exprs = [
        (arith.RemSIOp, flat, 64),
        (arith.RemSIOp, (arith.FloorDivSIOp, flat, 64), 12),
        (arith.FloorDivSIOp, flat, 768),
        (arith.RemUIOp, (arith.AddiOp, ("mul", ("iv", 1), 16), ("iv", 2)), 64),
    ]
    return _kernel([3, 12, 16], exprs)


def test_flat_index_divisions_cancel():
    module = _flat_index_kernel()
    before = _run(module, [3, 12, 16], 4)
    CleanupLoops().apply(make_context(), module)
    assert (before == _run(module, [3, 12, 16], 4)).all()
    divisions = [op.name for op in module.walk() if type(op) in (*DIVISION,)]
    # (j*16 + k) rem 64 with k < 16 keeps one division, of j alone: (j rem 4)*16 + k
    assert divisions == ["arith.remui"]


@pytest.mark.parametrize(
    "src",
    [
        "def @main(%q: Tensor[(12, 128, 64), float32], %k: Tensor[(12, 128, 64), float32]) { nn.batch_matmul(%q, %k) }",
        "def @main(%x: Tensor[(1, 37, 96), float32]) { %0 = reshape(%x, newshape=[1, 37, 6, 16]); "
        "transpose(%0, axes=[0, 2, 1, 3]) }",
    ],
    ids=["bert-k-packing", "head-split"],
)
def test_reshape_transpose_packing_matches_interpreter(src, rng):
    """BERT's K^T packing for batch_matmul and a head split, through the default pipeline."""
    fn = parse_relay(src).ops.first
    inputs = {
        a.name_hint: rng.standard_normal(tuple(a.type.get_shape())).astype(np.float32)
        for a in fn.body.block.args  # type: ignore[union-attr]
    }
    ref = lathe.interpret(parse_relay(src), **inputs)
    assert_matches(lathe.compile(parse_relay(src), num_threads=2).run(**inputs), ref)


def test_every_store_is_checked():
    """The executor above really runs the loops: a wrong op table entry would show."""
    module = _kernel([2, 3, 1], [(arith.AddiOp, ("iv", 0), ("iv", 1))])
    got = _run(module, [2, 3, 1], 1)
    assert [got[i, j, 0, 0] for i, j in itertools.product(range(2), range(3))] == [0, 1, 2, 1, 2, 3]
