"""Build one-op modules and compare compiled code with the reference interpreter."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Region

import lathe
from lathe.dialects import graph
from lathe.runtime.interpreter import np_dtype

ELEMWISE_RTOL = 1e-5
REDUCE_RTOL = 1e-4


def one_op_module(name: str, types: list, tuple_arity: int | None = None, **attrs) -> ModuleOp:
    """@main(a0, a1, ...) = name(a0, a1, ..., **attrs); with tuple_arity the first
    `tuple_arity` parameters are packed into a tuple operand (concatenate, stack)."""
    block = Block(arg_types=types)
    for k, a in enumerate(block.args):
        a.name_hint = f"a{k}"
    operands = list(block.args)
    if tuple_arity is not None:
        t = graph.make_op("tuple", operands[:tuple_arity])
        block.add_op(t)
        operands = [t.results[0], *operands[tuple_arity:]]
    op = graph.make_op(name, operands, **attrs)
    block.add_op(op)
    block.add_op(func.ReturnOp(op.results[0]))
    f = func.FuncOp("main", (types, [op.results[0].type]), Region(block))
    m = ModuleOp([f])
    m.verify()
    return m


def random_inputs(rng, types: list, positive: bool = False, int_range=(-5, 6)) -> dict:
    out = {}
    for k, t in enumerate(types):
        assert isinstance(t, TensorType)
        dt = np_dtype(t.element_type)
        shape = tuple(t.get_shape())
        if dt == np.bool_:
            v = rng.random(shape) < 0.5
        elif np.issubdtype(dt, np.integer):
            v = rng.integers(*int_range, size=shape).astype(dt)
        else:
            v = rng.standard_normal(shape).astype(dt)
            if positive:
                v = np.abs(v) + 0.5
        out[f"a{k}"] = np.asarray(v)
    return out


def rel_err(got, ref) -> float:
    got = np.asarray(got)
    ref = np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    if got.dtype == np.bool_ or np.issubdtype(got.dtype, np.integer):
        return 0.0 if np.array_equal(got, ref) else float("inf")
    g, r = got.astype(np.float64), ref.astype(np.float64)
    assert np.array_equal(np.isfinite(g), np.isfinite(r)), "non-finite values differ"
    fin = np.isfinite(r)
    if not fin.any():
        return 0.0
    scale = np.max(np.abs(r[fin]))
    err = np.max(np.abs(g[fin] - r[fin]))
    return err / scale if scale > 0 else err


def check_op(module: ModuleOp, inputs: dict, rtol: float) -> None:
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module).run(**inputs)
    refs = ref if isinstance(ref, tuple) else (ref,)
    gots = got if isinstance(got, tuple) else (got,)
    assert len(refs) == len(gots)
    for g, r in zip(gots, refs):
        e = rel_err(g, r)
        assert e <= rtol, f"relative error {e:.3e} > {rtol:g}"
