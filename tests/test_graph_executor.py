"""The graph executor: the memory plan reuses storage and never aliases what must not be
aliased, inputs are used in place and outputs returned without a copy (yet no run changes
another's results), `out=` writes into the caller's arrays, tuple results come back nested
from the tuple-free glue, and the native entry computes exactly what the per-kernel path does.
Every result is checked against the numpy interpreter on fresh random inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_matches
from xdsl.dialects import func

import lathe
from lathe.api import parse_source
from lathe.backends.interface import ALIGN, aligned_empty
from lathe.dialects.functions import is_kernel, param_names
from lathe.errors import LatheError
from lathe.runtime.graph_executor import GraphExecutor
from lathe.runtime.memory_plan import Lifetime, aligned_size, plan_memory

REPO = Path(__file__).resolve().parents[1]

# A chain whose intermediates die early (reuse is possible) and a tuple result holding a
# kernel output twice, an input and a constant.
CHAIN = """def @main(%x: Tensor[(64, 48), float32], %w: Tensor[(32, 48), float32]) {
  %0 = exp(%x);
  %1 = multiply(%0, %x);
  %2 = tanh(%1);
  %3 = add(%2, %x);
  %4 = nn.dense(%3, %w);
  %5 = nn.relu(%4);
  sigmoid(%5)
}"""
TUPLES = """def @main(%x: Tensor[(4, 8), float32], %y: Tensor[(4, 8), float32]) {
  %0 = add(%x, %y);
  %1 = multiply(%x, %y);
  %2 = (%0, %1);
  %3 = %2.1;
  (%2, exp(%3), %x, %3, ones(shape=[3], dtype="float32"))
}"""
UNARY = "def @main(%x: Tensor[(1000), float32]) { tanh(exp(%x)) }"


def compiled(src: str, **kw):
    m = parse_source(src, "test.lathe")
    return m, lathe.compile(m, **kw)


def f32(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def leaves(x) -> list:
    return [a for b in x for a in leaves(b)] if isinstance(x, tuple) else [x]


# -- the plan ----------------------------------------------------------------------------


def test_plan_reuses_dead_storage_and_keeps_live_buffers_apart(rng):
    """Random lifetimes: buffers live at the same call never share a byte, offsets are
    aligned, the arena is at least the live peak and reuse happens."""
    for _ in range(50):
        n = int(rng.integers(1, 40))
        firsts = rng.integers(0, 30, n)
        lifetimes = [Lifetime(int(a), int(a + rng.integers(0, 6))) for a in firsts]
        sizes = [int(s) for s in rng.integers(0, 5000, n)]
        plan = plan_memory(sizes, lifetimes)
        for i in range(n):
            assert plan.offsets[i] % ALIGN == 0
            for j in range(i):
                if lifetimes[i].overlaps(lifetimes[j]):
                    a, b = plan.offsets[i], plan.offsets[j]
                    assert a + aligned_size(sizes[i]) <= b or b + aligned_size(sizes[j]) <= a, (i, j)
        assert plan.live_peak_bytes <= plan.arena_bytes <= plan.total_bytes
    chain = plan_memory([4096] * 10, [Lifetime(k, k + 1) for k in range(10)])
    assert chain.arena_bytes == 2 * 4096 == chain.live_peak_bytes  # a chain needs two buffers, not ten


def test_a_kernel_never_reads_and_writes_one_storage():
    """A buffer read by call k and one written by call k overlap at k, so they are kept apart."""
    plan = plan_memory([256, 256], [Lifetime(0, 1), Lifetime(1, 2)])
    assert plan.offsets[0] != plan.offsets[1]


# -- the executor ----------------------------------------------------------------------


def test_chain_reuses_storage_and_matches_the_interpreter(rng):
    m, cm = compiled(CHAIN, opt_level=0)  # a kernel per op: six intermediates
    report = cm.memory_report()
    assert report.intermediates >= 3
    assert report.arena_bytes < report.intermediate_bytes
    assert report.live_peak_bytes <= report.arena_bytes
    for _ in range(3):  # reused storage holds no stale values between runs
        x, w = f32(rng, 64, 48), f32(rng, 32, 48)
        assert_matches(cm.run(x, w), lathe.interpret(m, x=x, w=w))


def test_zoo_model_reuses_storage_and_matches_the_interpreter(rng):
    pytest.importorskip("onnx")
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    from models import ZOO
    from models.builder import random_inputs

    model = ZOO["bert_base"].build(small=True, seed=int(rng.integers(2**31)))
    module, params = lathe.from_onnx(model)
    cm = lathe.compile(module, params=params)
    report = cm.memory_report()
    assert report.arena_bytes * 2 < report.intermediate_bytes
    for _ in range(2):
        inputs = random_inputs(model, int(rng.integers(2**31)))
        assert_matches(cm.run(**inputs), lathe.interpret(module, params=params, **inputs), rtol=1e-4)


def test_tuple_results_come_back_nested(rng):
    m, cm = compiled(TUPLES)
    main = next(f for f in cm.loop_module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    assert not [op for op in main.body.block.ops if op.name.startswith("graph.")]
    x, y = f32(rng, 4, 8), f32(rng, 4, 8)
    got = cm.run(x, y)
    assert_matches(got, lathe.interpret(m, x=x, y=y))
    assert got[2] is not x  # a returned input is a copy, as is an output returned twice
    assert got[3] is not got[0][1] and not np.shares_memory(got[3], got[0][1])
    x[...] = 0
    got[0][1][...] = 0
    assert np.all(got[2] != 0) and np.all(got[3] != 0)


def test_outputs_of_consecutive_runs_are_distinct_and_keep_their_values(rng):
    m, cm = compiled(CHAIN)
    x1, w1, x2, w2 = f32(rng, 64, 48), f32(rng, 32, 48), f32(rng, 64, 48), f32(rng, 32, 48)
    a = cm.run(x1, w1)
    b = cm.run(x2, w2)
    assert a is not b and not np.shares_memory(a, b)
    assert_matches(a, lathe.interpret(m, x=x1, w=w1))
    assert_matches(b, lathe.interpret(m, x=x2, w=w2))


def test_an_output_nothing_refers_to_is_written_again_and_one_still_seen_never_is(rng):
    """run() writes the last run's output array again when the caller dropped it (no
    allocation, its lines still cached); an array the caller still sees, itself or through
    a view, is never overwritten."""
    m, cm = compiled(CHAIN)
    x1, w1, x2, w2 = f32(rng, 64, 48), f32(rng, 32, 48), f32(rng, 64, 48), f32(rng, 32, 48)
    address = cm.run(x1, w1).ctypes.data  # dropped at once
    b = cm.run(x2, w2)
    assert b.ctypes.data == address
    assert_matches(b, lathe.interpret(m, x=x2, w=w2))
    row = b[0]  # b itself dropped, a view of it kept
    del b
    c = cm.run(x1, w1)
    assert not np.shares_memory(c, row)
    assert_matches(row, np.asarray(lathe.interpret(m, x=x2, w=w2))[0])
    assert_matches(c, lathe.interpret(m, x=x1, w=w1))


def test_inputs_in_place_when_aligned_else_copied(rng):
    m, cm = compiled(UNARY)
    ex = cm.executor
    x = aligned_empty((1000,), np.float32)
    x[...] = f32(rng, 1000) * 0.5
    ref = lathe.interpret(m, x=x)
    got = cm.run(x)
    assert ex._bound[0] is x  # used in place: no copy
    x[...] = 7.0  # changing the input afterwards does not change the result
    assert_matches(got, ref)
    assert not np.shares_memory(got, x)

    raw = np.zeros(1001 * 4 + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN + 4  # 4 bytes past a 64-byte boundary
    unaligned = raw[start : start + 4000].view(np.float32)
    unaligned[...] = f32(rng, 1000) * 0.5
    strided = (f32(rng, 2000) * 0.5)[::2]
    as_f64 = f32(rng, 1000).astype(np.float64) * 0.5
    for v in (unaligned, strided, as_f64, list(as_f64)):
        got = cm.run(v)
        assert ex._bound[0] is not v
        assert_matches(got, lathe.interpret(m, x=np.asarray(v, np.float32)))


def test_out_writes_into_the_callers_arrays(rng):
    m, cm = compiled(CHAIN)
    x, w = f32(rng, 64, 48), f32(rng, 32, 48)
    ref = lathe.interpret(m, x=x, w=w)
    out = aligned_empty((64, 32), np.float32)
    assert cm.run(x, w, out=out) is out
    assert_matches(out, ref)
    odd = np.zeros((64, 33), np.float32)[:, 1:]  # not contiguous: written through a buffer, then copied
    assert cm.run(x=x, w=w, out=odd) is odd
    assert_matches(odd, ref)
    np.testing.assert_array_equal(out, odd)

    m2, cm2 = compiled(TUPLES)
    x, y = f32(rng, 4, 8), f32(rng, 4, 8)
    outs = ((np.empty((4, 8), np.float32), np.empty((4, 8), np.float32)),) + tuple(
        np.empty(s, np.float32) for s in [(4, 8), (4, 8), (4, 8), (3,)]
    )
    got = cm2.run(x, y, out=outs)
    assert len(leaves(got)) == 6 and all(g is o for g, o in zip(leaves(got), leaves(outs)))
    assert_matches(got, lathe.interpret(m2, x=x, y=y))


def test_out_may_be_an_input(rng):
    """run(x, out=x): the input is copied first, so the kernel never reads what it writes."""
    m, cm = compiled(UNARY)
    x = aligned_empty((1000,), np.float32)
    x[...] = f32(rng, 1000) * 0.5
    ref = lathe.interpret(m, x=x.copy())
    cm.run(x, out=x)
    assert_matches(x, ref)


def test_native_entry_gives_what_the_per_kernel_path_gives(rng):
    m, cm = compiled(CHAIN)
    assert cm.executor.uses_native_entry
    main = next(f for f in cm.loop_module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    addresses = {f.sym_name.data: cm.kernels.address(f.sym_name.data) for f in cm.loop_module.ops if is_kernel(f)}
    per_kernel = GraphExecutor(cm.loop_module, addresses, "main", {}, param_names(main))
    assert not per_kernel.uses_native_entry
    for _ in range(2):
        x, w = f32(rng, 64, 48), f32(rng, 32, 48)
        np.testing.assert_array_equal(cm.run(x, w), per_kernel.run(x, w))


def test_outputs_and_inputs_never_alias_the_arena(rng):
    _, cm = compiled(CHAIN)
    ex = cm.executor
    x = aligned_empty((64, 48), np.float32)
    x[...] = f32(rng, 64, 48)
    got = cm.run(x, f32(rng, 32, 48))
    arena = ex._arena
    assert not np.shares_memory(got, arena) and not np.shares_memory(x, arena)


def test_wrong_inputs_and_outs_are_errors_that_name_them(rng):
    _, cm = compiled(CHAIN)
    x, w = f32(rng, 64, 48), f32(rng, 32, 48)
    with pytest.raises(LatheError, match="%x has shape"):
        cm.run(x[:10], w)
    with pytest.raises(LatheError, match="%w has dtype"):
        cm.run(x, w.astype(np.complex64))
    with pytest.raises(LatheError, match="missing input"):
        cm.run(x)
    with pytest.raises(LatheError, match="unknown input"):
        cm.run(x, w, z=x)
    with pytest.raises(LatheError, match=r"out has shape \(64, 31\)"):
        cm.run(x, w, out=np.empty((64, 31), np.float32))
    with pytest.raises(LatheError, match="out has shape .* dtype float64"):
        cm.run(x, w, out=np.empty((64, 32), np.float64))
    ro = np.empty((64, 32), np.float32)
    ro.flags.writeable = False
    with pytest.raises(LatheError, match="out is read-only"):
        cm.run(x, w, out=ro)
    _, cm2 = compiled(TUPLES)
    with pytest.raises(LatheError, match=r"out\[0\] must be a tuple of 2"):
        cm2.run(f32(rng, 4, 8), f32(rng, 4, 8), out=(np.empty((4, 8), np.float32),) * 5)


def test_a_model_input_named_out_keeps_its_name(rng):
    m, cm = compiled("def @main(%out: Tensor[(8), float32]) { exp(%out) }")
    v = f32(rng, 8)
    assert_matches(cm.run(out=v), lathe.interpret(m, out=v))


def test_backend_without_native_entry_runs_per_kernel(rng):
    from lathe.backends.c import compiler as ccomp

    if ccomp._find(tuple(ccomp.candidates())) is None:
        pytest.skip("no C compiler")
    m, cm = compiled(TUPLES, target="c")
    assert not cm.executor.uses_native_entry
    x, y = f32(rng, 4, 8), f32(rng, 4, 8)
    assert_matches(cm.run(x, y), lathe.interpret(m, x=x, y=y))
