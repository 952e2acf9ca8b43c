"""The portable C backend: C99 from loop IR, built by the system C compiler, loaded with ctypes.

Numerics are checked against the reference interpreter on random inputs; each
test compiles one module holding many ops (a tuple of results), so the file
runs the compiler a dozen times, not a hundred. The exact MLIR semantics of
arith ops (NaN, division by zero, over-wide shifts, out-of-range casts) are
checked on hand-written loop-level kernels.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func

import lathe
from lathe.backends.c import CBackend
from lathe.backends.c import compiler as ccomp
from lathe.dialects import make_context
from lathe.dialects.functions import is_kernel, param_names
from lathe.runtime.graph_executor import GraphExecutor
from lathe.textual_ir.mlir import parse_mlir
from lathe.textual_ir.parser import parse_relay

pytestmark = pytest.mark.skipif(ccomp._find(tuple(ccomp.candidates())) is None, reason="no C compiler")

BACKEND = CBackend()
TARGET = BACKEND.parse_target("c", {})


# -- the driver: loop IR → C library → the graph executor ---------------------------------


def kernels_of(loop) -> list[str]:
    return [f.sym_name.data for f in loop.ops if isinstance(f, func.FuncOp) and is_kernel(f)]


def build_c(module, params=None, threads: int = 2, target=TARGET, backend=BACKEND, loop=None):
    """What `lathe.compile(target="c")` does: lower, compile and load with the C backend, run
    with the graph executor."""
    loop = loop or lathe.lower(module)
    lib = backend.load(loop, target)
    main = next(f for f in loop.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    return GraphExecutor(
        loop,
        {k: lib.address(k) for k in kernels_of(loop)},
        "main",
        params or {},
        param_names(main),
        before_run=lambda: lib.set_num_threads(threads),
    )


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def check(src: str, inputs: dict, rtol: float = 1e-5, executor=None):
    """Compiled C against the interpreter, output by output: integers and bools exactly,
    floats to `rtol` of each output's largest value, NaN and inf where the interpreter has them."""
    m = parse_relay(src)
    ex = executor or build_c(m)
    got, ref = as_tuple(ex.run(**inputs)), as_tuple(lathe.interpret(m, **inputs))
    assert len(got) == len(ref)
    for k, (g, r) in enumerate(zip(got, ref)):
        assert g.dtype == r.dtype and g.shape == r.shape, (k, g.dtype, r.dtype, g.shape, r.shape)
        if r.dtype == np.bool_ or np.issubdtype(r.dtype, np.integer):
            np.testing.assert_array_equal(g, r, err_msg=f"output {k}")
            continue
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(g64), np.isnan(r64), err_msg=f"output {k}: NaN differ")
        np.testing.assert_array_equal(np.isinf(g64), np.isinf(r64), err_msg=f"output {k}: inf differ")
        fin = np.isfinite(r64)
        scale = max(np.max(np.abs(r64[fin]), initial=0.0), 1e-30)
        err = np.max(np.abs(g64[fin] - r64[fin]), initial=0.0) / scale
        assert err <= rtol, f"output {k}: relative error {err:.3e} > {rtol:g}"
    return got


def normal(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# -- graph ops against the interpreter ------------------------------------------------------


def test_elementwise_and_broadcast(rng):
    src = """def @main(%x: Tensor[(7, 13), float32], %y: Tensor[(13), float32], %z: Tensor[(7, 1), float32]) {
      (exp(%x), tanh(%x), erf(%x), sigmoid(%x), add(%x, %y), multiply(%x, %z), subtract(%z, %y),
       divide(%x, add(abs(%y), 1f)), power(add(abs(%x), 0.5f), %z), sqrt(abs(%x)), log(add(abs(%x), 0.1f)),
       rsqrt(add(abs(%x), 0.1f)), maximum(%x, %y), minimum(%x, %z), nn.relu(%x), nn.leaky_relu(%x, alpha=0.1),
       clip(%x, a_min=-0.5, a_max=0.5), floor(%x), ceil(%x), round(multiply(%x, 4f)), negative(%x))
    }"""
    check(src, {"x": normal(rng, 7, 13), "y": normal(rng, 13), "z": normal(rng, 7, 1)})


def test_reductions_softmax_and_norms(rng):
    src = """def @main(%x: Tensor[(7, 13, 5), float32], %g: Tensor[(5), float32], %b: Tensor[(5), float32]) {
      (sum(%x, axis=[1]), max(%x, axis=[2]), mean(%x, axis=[0, 2]), argmax(%x, axis=[1]), min(%x, axis=[1]),
       sum(%x), nn.softmax(%x), nn.softmax(%x, axis=1), nn.log_softmax(%x),
       nn.layer_norm(%x, %g, %b), variance(%x, axis=[2]))
    }"""
    check(src, {"x": normal(rng, 7, 13, 5), "g": normal(rng, 5), "b": normal(rng, 5)}, rtol=1e-4)


def test_dense_matmul_batch_matmul(rng):
    src = """def @main(%x: Tensor[(7, 13), float32], %w: Tensor[(5, 13), float32], %a: Tensor[(13, 1), float32],
                   %p: Tensor[(3, 7, 13), float32], %q: Tensor[(3, 5, 13), float32]) {
      (nn.dense(%x, %w), nn.matmul(%x, %a), nn.batch_matmul(%p, %q), nn.dense(%x, %x))
    }"""
    check(
        src,
        {
            "x": normal(rng, 7, 13),
            "w": normal(rng, 5, 13),
            "a": normal(rng, 13, 1),
            "p": normal(rng, 3, 7, 13),
            "q": normal(rng, 3, 5, 13),
        },
        rtol=1e-4,
    )


def test_convolutions_and_pooling(rng):
    src = """def @main(%x: Tensor[(1, 4, 13, 13), float32], %w: Tensor[(6, 4, 3, 3), float32],
                   %d: Tensor[(4, 1, 3, 3), float32]) {
      (nn.conv2d(%x, %w, padding=[1, 1]), nn.conv2d(%x, %w, strides=[2, 2], padding=[1, 1, 1, 1]),
       nn.conv2d(%x, %d, groups=4, padding=[1, 1]), nn.conv2d(%x, %d, groups=4, strides=[2, 2]),
       nn.max_pool2d(%x, pool_size=[3, 3], strides=[2, 2], padding=[1, 1]),
       nn.avg_pool2d(%x, pool_size=[2, 2], strides=[2, 2]), nn.global_avg_pool2d(%x))
    }"""
    check(src, {"x": normal(rng, 1, 4, 13, 13), "w": normal(rng, 6, 4, 3, 3), "d": normal(rng, 4, 1, 3, 3)}, rtol=1e-4)


def test_layout_ops(rng):
    src = """def @main(%x: Tensor[(2, 7, 13), float32], %y: Tensor[(2, 1, 13), float32]) {
      (transpose(%x, axes=[2, 0, 1]), reshape(%x, newshape=[14, 13]), concatenate((%x, %y), axis=1),
       strided_slice(%x, begin=[0, 1, 2], end=[2, 7, 13], strides=[1, 2, 3]), expand_dims(%y, axis=0),
       squeeze(%y, axis=[1]), broadcast_to(%y, shape=[2, 7, 13]))
    }"""
    check(src, {"x": normal(rng, 2, 7, 13), "y": normal(rng, 2, 1, 13)})


def test_casts_integers_and_bools(rng):
    src = """def @main(%x: Tensor[(7, 13), float32], %i: Tensor[(7, 13), int32], %j: Tensor[(7, 13), int32],
                   %l: Tensor[(13), int64], %b: Tensor[(7, 13), bool], %s: Tensor[(7, 13), int8]) {
      (cast(multiply(%x, 10f), dtype="int32"), cast(%i, dtype="float32"), cast(%x, dtype="bool"),
       cast(%b, dtype="float32"), cast(%i, dtype="int64"), cast(%l, dtype="int32"), cast(%x, dtype="float64"),
       cast(%b, dtype="int32"), add(%i, %j), multiply(%i, %j), subtract(%l, cast(%i, dtype="int64")), divide(%i, %j),
       maximum(%i, %j), minimum(%s, cast(%i, dtype="int8")), add(%s, %s), logical_and(%b, less(%x, 0f)),
       logical_or(%b, greater_equal(%i, %j)), logical_not(%b), equal(%i, %j), not_equal(%x, %x),
       where(%b, %x, negative(%x)), cast(cast(%x, dtype="float16"), dtype="float32"))
    }"""
    i = rng.integers(-50, 50, (7, 13)).astype(np.int32)
    j = rng.integers(1, 9, (7, 13)).astype(np.int32) * rng.choice([-1, 1], (7, 13)).astype(np.int32)
    check(
        src,
        {
            "x": normal(rng, 7, 13),
            "i": i,
            "j": j,
            "l": rng.integers(-(2**40), 2**40, 13),
            "b": rng.random((7, 13)) < 0.5,
            "s": rng.integers(-128, 128, (7, 13)).astype(np.int8),
        },
    )


def test_float16_and_float64(rng):
    src = """def @main(%h: Tensor[(7, 13), float16], %d: Tensor[(13), float64]) {
      (add(%h, %h), multiply(%h, exp(%h)), tanh(%h), sum(%h, axis=[1]), cast(%h, dtype="float32"),
       exp(%d), divide(%d, add(abs(%d), 1f64)), cast(%h, dtype="int32"), max(%h, axis=[0]))
    }"""
    check(src, {"h": normal(rng, 7, 13, dtype=np.float16), "d": normal(rng, 13, dtype=np.float64)}, rtol=2e-3)


def test_nan_propagates_through_max_and_softmax(rng):
    src = """def @main(%x: Tensor[(4, 13), float32], %y: Tensor[(4, 13), float32]) {
      (max(%x, axis=[1]), nn.softmax(%x), maximum(%x, %y), minimum(%x, %y), nn.relu(%x),
       less(%x, %y), greater_equal(%x, %y), equal(%x, %x), not_equal(%x, %x),
       nn.max_pool2d(reshape(%x, newshape=[1, 1, 4, 13]), pool_size=[2, 2]))
    }"""
    x, y = normal(rng, 4, 13), normal(rng, 4, 13)
    x[1, 3] = np.nan
    x[2, 0] = np.inf
    y[3, 5] = np.nan
    got = check(src, {"x": x, "y": y})
    assert np.isnan(got[0][1]) and np.isnan(got[1][1]).all() and not np.isnan(got[1][0]).any()


def test_zoo_models_agree_with_the_interpreter():
    pytest.importorskip("onnx")
    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.append(repo)
    from models import ZOO
    from models.builder import random_inputs

    if getattr(lathe, "from_onnx", None) is None:
        pytest.skip("lathe.from_onnx not available")
    for name, size in (("lstm_lm", {"layers": 1, "seq_len": 4}), ("bert_base", {})):
        model = ZOO[name].build(small=True, seed=11, **size)
        inputs = random_inputs(model, 12)
        module, params = lathe.from_onnx(model)
        loop = lathe.lower(module)
        if name == "bert_base":  # its two layers' kernels are the same functions: emitted once
            src = BACKEND.render(loop, TARGET)
            assert len(re.findall(r"^static void lathe_k\d+\(", src, re.MULTILINE)) < len(kernels_of(loop))
        got = as_tuple(build_c(module, params, loop=loop).run(**inputs))
        ref = as_tuple(lathe.interpret(module, params=params, **inputs))
        for g, r in zip(got, ref):
            scale = np.max(np.abs(r))
            assert np.max(np.abs(g - r)) <= 1e-4 * scale, name


def test_thread_counts_do_not_change_results(rng):
    src = "def @main(%x: Tensor[(64, 96), float32], %w: Tensor[(80, 96), float32]) { nn.softmax(nn.dense(%x, %w)) }"
    m = parse_relay(src)
    x, w = normal(rng, 64, 96), normal(rng, 80, 96)
    one, two = (build_c(m, threads=n).run(x=x, w=w) for n in (1, 2))
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-7)


# -- exact arith semantics on hand-written kernels -------------------------------------------

SEMANTICS = """
builtin.module {
  func.func private @ints(%a: memref<8xi32>, %b: memref<8xi32>, %o: memref<7x8xi32>) attributes {lathe.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c5 = arith.constant 5 : index
    %c6 = arith.constant 6 : index
    %c8 = arith.constant 8 : index
    scf.for %i = %c0 to %c8 step %c1 {
      %x = memref.load %a[%i] : memref<8xi32>
      %y = memref.load %b[%i] : memref<8xi32>
      %q = arith.divsi %x, %y : i32
      %r = arith.remsi %x, %y : i32
      %f = arith.floordivsi %x, %y : i32
      %s = arith.shli %x, %y : i32
      %t = arith.shrsi %x, %y : i32
      %u = arith.divui %x, %y : i32
      %c = arith.ceildivsi %x, %y : i32
      memref.store %q, %o[%c0, %i] : memref<7x8xi32>
      memref.store %r, %o[%c1, %i] : memref<7x8xi32>
      memref.store %f, %o[%c2, %i] : memref<7x8xi32>
      memref.store %s, %o[%c3, %i] : memref<7x8xi32>
      memref.store %t, %o[%c4, %i] : memref<7x8xi32>
      memref.store %u, %o[%c5, %i] : memref<7x8xi32>
      memref.store %c, %o[%c6, %i] : memref<7x8xi32>
    }
    func.return
  }
  func.func private @floats(%a: memref<6xf32>, %b: memref<6xf32>, %o: memref<6x6xf32>, %p: memref<8x6xi1>,
                            %n: memref<6xi32>) attributes {lathe.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c5 = arith.constant 5 : index
    %c6 = arith.constant 6 : index
    %c7 = arith.constant 7 : index
    scf.for %i = %c0 to %c6 step %c1 {
      %x = memref.load %a[%i] : memref<6xf32>
      %y = memref.load %b[%i] : memref<6xf32>
      %m1 = arith.maximumf %x, %y : f32
      %m2 = arith.minimumf %x, %y : f32
      %m3 = arith.maxnumf %x, %y : f32
      %m4 = arith.minnumf %x, %y : f32
      %p0 = arith.cmpf olt, %x, %y : f32
      memref.store %m1, %o[%c0, %i] : memref<6x6xf32>
      memref.store %m2, %o[%c1, %i] : memref<6x6xf32>
      memref.store %m3, %o[%c2, %i] : memref<6x6xf32>
      memref.store %m4, %o[%c3, %i] : memref<6x6xf32>
      %k1 = arith.cmpf ult, %x, %y : f32
      %k2 = arith.cmpf one, %x, %y : f32
      %k3 = arith.cmpf ueq, %x, %y : f32
      %k4 = arith.cmpf ord, %x, %y : f32
      %k5 = arith.cmpf uno, %x, %y : f32
      %k6 = arith.cmpf une, %x, %y : f32
      %k7 = arith.cmpf oge, %x, %y : f32
      memref.store %p0, %p[%c0, %i] : memref<8x6xi1>
      memref.store %k1, %p[%c1, %i] : memref<8x6xi1>
      memref.store %k2, %p[%c2, %i] : memref<8x6xi1>
      memref.store %k3, %p[%c3, %i] : memref<8x6xi1>
      memref.store %k4, %p[%c4, %i] : memref<8x6xi1>
      memref.store %k5, %p[%c5, %i] : memref<8x6xi1>
      memref.store %k6, %p[%c6, %i] : memref<8x6xi1>
      memref.store %k7, %p[%c7, %i] : memref<8x6xi1>
      %z = arith.fptosi %x : f32 to i32
      memref.store %z, %n[%i] : memref<6xi32>
    }
    func.return
  }
  func.func private @carried(%a: memref<8xf32>, %o: memref<3xf32>) attributes {lathe.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c8 = arith.constant 8 : index
    %zero = arith.constant 0.0 : f32
    %one = arith.constant 1.0 : f32
    %r:3 = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero, %mx = %zero, %u = %one) -> (f32, f32, f32) {
      %x = memref.load %a[%i] : memref<8xf32>
      %sum = arith.addf %acc, %x : f32
      %pos = arith.cmpf ogt, %x, %mx : f32
      %nm = scf.if %pos -> (f32) {
        scf.yield %x : f32
      } else {
        scf.yield %mx : f32
      }
      scf.yield %sum, %nm, %acc : f32, f32, f32
    }
    memref.store %r#0, %o[%c0] : memref<3xf32>
    memref.store %r#1, %o[%c1] : memref<3xf32>
    memref.store %r#2, %o[%c2] : memref<3xf32>
    func.return
  }
}
"""


@pytest.fixture(scope="module")
def semantics_lib():
    module = parse_mlir(make_context(), SEMANTICS)
    return BACKEND.load(module, TARGET)


def call(lib, name: str, *arrays: np.ndarray) -> None:
    """Run one kernel on the arrays in place (kernels assume 64-byte aligned buffers, as the
    executor's are: these go through aligned copies)."""
    from lathe.backends.interface import aligned_empty

    buffers = [aligned_empty(a.shape, a.dtype) for a in arrays]
    for b, a in zip(buffers, arrays):
        b[...] = a
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lib.address(name))
    fn((ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers]))
    for b, a in zip(buffers, arrays):
        a[...] = b


def test_integer_division_shift_semantics(semantics_lib):
    """MLIR's meaning where C has undefined behaviour: x/0 → 0 (no SIGFPE), INT_MIN/-1 wraps,
    floordiv and ceildiv round toward -inf and +inf, an over-wide shift gives 0 (or the sign)."""
    a = np.array([7, -7, 7, -7, -(2**31), 5, -1, 9], dtype=np.int32)
    b = np.array([2, 2, -2, -2, -1, 0, 40, 3], dtype=np.int32)
    o = np.zeros((7, 8), dtype=np.int32)
    call(semantics_lib, "ints", a, b, o)
    np.testing.assert_array_equal(o[0], [3, -3, -3, 3, -(2**31), 0, 0, 3])  # divsi
    np.testing.assert_array_equal(o[1], [1, -1, 1, -1, 0, 0, -1, 0])  # remsi
    np.testing.assert_array_equal(o[2], [3, -4, -4, 3, -(2**31), 0, -1, 3])  # floordivsi
    np.testing.assert_array_equal(o[3][[0, 1, 6]], [28, -28, 0])  # shli (40 ≥ 32 → 0)
    np.testing.assert_array_equal(o[4][[0, 1, 6]], [1, -2, -1])  # shrsi (40 ≥ 32 → sign)
    np.testing.assert_array_equal(o[5][[0, 1, 5]], [3, (2**32 - 7) // 2, 0])  # divui
    np.testing.assert_array_equal(o[6][[0, 1, 2, 3, 7]], [4, -3, -3, 4, 3])  # ceildivsi


def test_float_min_max_compare_and_cast_semantics(semantics_lib):
    nan = np.float32(np.nan)
    a = np.array([nan, 1.0, 0.0, -0.0, 3e9, 2.5], dtype=np.float32)
    b = np.array([1.0, nan, -0.0, 0.0, 1.0, 2.5], dtype=np.float32)
    o = np.zeros((6, 6), dtype=np.float32)
    p = np.zeros((8, 6), dtype=np.bool_)
    n = np.zeros(6, dtype=np.int32)
    call(semantics_lib, "floats", a, b, o, p, n)
    assert np.isnan(o[0][:2]).all() and np.isnan(o[1][:2]).all()  # maximumf/minimumf propagate NaN
    np.testing.assert_array_equal(o[2][:2], [1.0, 1.0])  # maxnumf/minnumf do not
    np.testing.assert_array_equal(o[3][:2], [1.0, 1.0])
    assert not np.signbit(o[0][2]) and not np.signbit(o[0][3])  # maximum(+0, -0) = +0
    assert np.signbit(o[1][2]) and np.signbit(o[1][3])  # minimum(+0, -0) = -0
    #             NaN,1     1,NaN  0,-0   -0,0   3e9,1  2.5,2.5
    expected = [
        [0, 0, 0, 0, 0, 0],  # olt
        [1, 1, 0, 0, 0, 0],  # ult
        [0, 0, 0, 0, 1, 0],  # one
        [1, 1, 1, 1, 0, 1],  # ueq
        [0, 0, 1, 1, 1, 1],  # ord
        [1, 1, 0, 0, 0, 0],  # uno
        [1, 1, 0, 0, 1, 0],  # une
        [0, 0, 1, 1, 1, 1],
    ]  # oge
    np.testing.assert_array_equal(p, np.array(expected, dtype=bool))
    np.testing.assert_array_equal(n, [-(2**31), 1, 0, 0, -(2**31), 2])  # NaN and 3e9 → INT_MIN, not UB


def test_loop_carried_values_and_if_results(semantics_lib):
    """scf.for iter_args and scf.if results (not produced by te today, but loop IR allows them):
    a sum, a running maximum through an if, and the previous sum (the yield reads the old value)."""
    a = np.array([3, -1, 4, 1, -5, 9, 2, 6], dtype=np.float32)
    o = np.zeros(3, dtype=np.float32)
    call(semantics_lib, "carried", a, o)
    np.testing.assert_array_equal(o, [a.sum(), a.max(), a[:-1].sum()])


def test_unknown_op_is_a_lathe_error():
    module = parse_mlir(
        make_context(),
        """builtin.module {
      func.func private @k(%a: memref<4xi32>) attributes {lathe.kernel} {
        %c0 = arith.constant 0 : index
        %x = memref.load %a[%c0] : memref<4xi32>
        %y = math.ctpop %x : i32
        memref.store %y, %a[%c0] : memref<4xi32>
        func.return
      }
    }""",
    )
    with pytest.raises(lathe.LatheError, match="cannot lower 'math.ctpop'"):
        BACKEND.render(module, TARGET)


# -- loop annotations ---------------------------------------------------------------------------


def test_parallel_and_simd_pragmas_only_where_safe():
    """The dense kernel's outer loop is an OpenMP loop; softmax's sums (a store to one address
    in every iteration) must not be `omp simd`, whose lanes would race on it."""
    from xdsl.dialects import memref, scf

    from lathe.backends.c.emitter import _simd_safe
    from lathe.dialects.loop import annotation_of

    m = parse_relay(
        "def @main(%x: Tensor[(13, 64), float32], %w: Tensor[(32, 64), float32]) { nn.softmax(nn.dense(%x, %w)) }"
    )
    loop = lathe.lower(m)
    src = BACKEND.render(loop, TARGET)
    assert "#pragma omp parallel for" in src and "#pragma omp simd" in src
    verdicts = []
    for op in loop.walk():
        ann = annotation_of(op)
        if isinstance(op, scf.ForOp) and ann is not None and ann.kind.data == "vectorize":
            iv = op.body.block.args[0]
            one_address = any(
                isinstance(s, memref.StoreOp)
                and all(
                    i is not iv and i.owner is not None and not any(o is iv for o in getattr(i.owner, "operands", ()))
                    for i in s.indices
                )
                for s in op.body.block.ops
            )
            verdicts.append((one_address, _simd_safe(op)))
    assert (True, False) in verdicts and (False, True) in verdicts
    assert (True, True) not in verdicts


TILED = """
builtin.module {
  func.func private @tiled(%o: memref<4x%Nxi64>, %p: memref<4x%Nxi64>) attributes {lathe.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %cn = arith.constant %N : index
    %cb = arith.constant %B : index
    %c32 = arith.constant 32 : index
    scf.for %i = %c0 to %c4 step %c1 {
      scf.for %j = %c0 to %cn step %c1 {
        %base = arith.muli %i, %cb : index
        %x = arith.addi %base, %j : index
        %q = arith.floordivsi %x, %c32 : index
        %r = arith.remsi %x, %c32 : index
        %qi = arith.index_cast %q : index to i64
        %ri = arith.index_cast %r : index to i64
        memref.store %qi, %o[%i, %j] : memref<4x%Nxi64>
        memref.store %ri, %p[%i, %j] : memref<4x%Nxi64>
      }
    }
    func.return
  }
}
"""


@pytest.mark.parametrize("n, base, simple", [(32, 32, True), (32, 64, True), (33, 32, False), (32, 16, False)])
def test_tiled_index_division_is_simplified_only_when_exact(n, base, simple):
    """(i*B + j) / 32 and % 32 with 0 <= j < N: plain `i*B/32` and `j` when 32 divides B and
    N <= 32 (contiguous, vectorizable), the full division otherwise; the same values either way."""
    module = parse_mlir(make_context(), TILED.replace("%N", str(n)).replace("%B", str(base)))
    src = BACKEND.render(module, TARGET)
    body = src[src.index("static void lathe_k0(") :]
    assert ("% 32" not in body and "/ 32 -" not in body) == simple, body
    lib = BACKEND.load(module, TARGET)
    o, p = np.zeros((4, n), dtype=np.int64), np.zeros((4, n), dtype=np.int64)
    call(lib, "tiled", o, p)
    x = np.arange(4)[:, None] * base + np.arange(n)[None, :]
    np.testing.assert_array_equal(o, x // 32)
    np.testing.assert_array_equal(p, x % 32)


def test_dense_inner_loop_has_no_division():
    """The matmul's innermost loop reads the packed weights contiguously (what makes it vector code)."""
    m = parse_relay("def @main(%x: Tensor[(16, 64), float32], %w: Tensor[(96, 64), float32]) { nn.dense(%x, %w) }")
    src = BACKEND.render(lathe.lower(m), TARGET)
    loops = re.findall(r"#pragma omp simd\n\s*for [^{]*\{([^{}]*)\}", src)
    products = [b for b in loops if re.search(r"const float v\d+ = v\d+ \* v\d+;", b)]
    assert products and all(" / " not in b and " % " not in b for b in products), loops


def test_parallel_loops_run_on_the_thread_pool_or_openmp(rng):
    """Loaded by Lathe, parallel loops go to Lathe's thread pool; without it (a library built
    elsewhere) OpenMP runs them: both agree with one thread."""
    m = parse_relay(
        "def @main(%x: Tensor[(64, 96), float32], %w: Tensor[(80, 96), float32]) { nn.softmax(nn.dense(%x, %w)) }"
    )
    loop = lathe.lower(m)
    lib = BACKEND.load(loop, TARGET)
    assert "lathe_parallel(" in BACKEND.render(loop, TARGET)
    if sys.platform.startswith("linux"):
        assert lib._pool is not None
    main = next(f for f in loop.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    x, w = normal(rng, 64, 96), normal(rng, 80, 96)
    results = []
    for pool, threads in ((True, 1), (True, 2), (False, 2)):
        lib._lib.lathe_c_set_parallel_for(ctypes.c_void_p(lib._pool[1] if pool and lib._pool else None))
        ex = GraphExecutor(
            loop,
            {k: lib.address(k) for k in kernels_of(loop)},
            "main",
            {},
            param_names(main),
            before_run=lambda n=threads: lib.set_num_threads(n),
        )
        results.append(ex.run(x=x, w=w))
    lib._lib.lathe_c_set_parallel_for(ctypes.c_void_p(lib._pool[1] if lib._pool else None))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[0], lathe.interpret(m, x=x, w=w), rtol=1e-4, atol=1e-6)


def test_vectorized_loops_call_vector_libm(rng):
    """With glibc's libmvec, a vectorized exp/tanh/erf loop calls the vector functions
    (_ZGV...: 30x faster than one libm call per element), with the interpreter's results."""
    cc = ccomp.find_compiler()
    if not cc.mvec:
        pytest.skip("no libmvec here")
    src = "def @main(%x: Tensor[(1024), float32]) { (exp(%x), tanh(%x), erf(%x)) }"
    loop = lathe.lower(parse_relay(src))
    binary = BACKEND.compile_source(BACKEND.render(loop, TARGET), TARGET)
    for fn in (b"expf", b"tanhf", b"erff"):
        assert re.search(rb"_ZGV[b-e]N\d+v_" + fn, binary), fn
    x = normal(rng, 1024) * 3
    x[:3] = [np.nan, np.inf, -np.inf]
    check(src, {"x": x}, rtol=2e-6)


# -- targets, compilers, artifacts ----------------------------------------------------------------


def test_target_options():
    t = BACKEND.parse_target("c", {"-opt-level": "2", "-mcpu": "x86-64-v2"})
    assert t.kind == "c" and t.opt_level == 2 and t.cpu == "x86-64-v2"
    assert TARGET.vector_bits in (128, 256, 512) and TARGET.cpu == ""
    with pytest.raises(lathe.LatheError, match=r"unknown option '-mattr'.*") as e:
        BACKEND.parse_target("c", {"-mattr": "+avx2"})
    assert "-mcpu" in e.value.note and "-opt-level" in e.value.note
    with pytest.raises(lathe.LatheError, match="-opt-level must be 0..3"):
        BACKEND.parse_target("c", {"-opt-level": "9"})
    # schedules shape the loop IR, which is all this backend reads: every CPU primitive, not bind
    claimed = BACKEND.capabilities(TARGET).schedule_primitives
    assert {"split", "tile", "compute_at", "cache_write", "parallel", "vectorize", "unroll"} <= claimed
    assert "bind" not in claimed


def test_status_names_the_compiler():
    status = BACKEND.status()
    assert "OpenMP" in status and ccomp.find_compiler().version in status


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/lathe-cc")
    with pytest.raises(lathe.LatheError, match="no working C compiler.*/nonexistent/lathe-cc"):
        BACKEND.compile_source("int x;", TARGET)
    assert "no working C compiler" in BACKEND.status()


def test_compiler_errors_show_the_compiler_output():
    with pytest.raises(lathe.LatheError, match="failed on the generated source") as e:
        BACKEND.compile_source("int f(void) { return undeclared_thing; }\n", TARGET)
    assert "undeclared_thing" in e.value.note


def test_cli_error_has_no_traceback(tmp_path):
    """A missing compiler through a whole process: one error line, exit 1, no traceback."""
    code = (
        "import lathe, sys\nfrom lathe.backends.c import CBackend\n"
        "try:\n    CBackend().compile_source('int x;', CBackend().parse_target('c', {}))\n"
        "except lathe.LatheError as e:\n    print(e.render()); sys.exit(1)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CC": "no-such-compiler-xyz"},
    )
    assert r.returncode == 1 and "no-such-compiler-xyz" in r.stdout and "Traceback" not in r.stderr


def test_artifact_builds_elsewhere_and_half_fallback_agrees(tmp_path, rng):
    """kernels.c builds with nothing but the compiler (no OpenMP, no -march), and with
    _Float16 hidden (-DLATHE_NO_FLOAT16: halves through float) still matches the interpreter."""
    src = 'def @main(%h: Tensor[(5, 7), float16], %x: Tensor[(5, 7), float32]) { (multiply(%h, exp(%h)), cast(%x, dtype="float16")) }'
    m = parse_relay(src)
    loop = lathe.lower(m)
    files = BACKEND.artifact(loop, TARGET)
    assert set(files) == {"kernels.c", "kernels.h", "kernels.so"} and files["kernels.so"][:4] == b"\x7fELF"
    for k in kernels_of(loop):
        assert f"void {k}__packed(void **args);" in files["kernels.h"].decode()
    (tmp_path / "kernels.c").write_bytes(files["kernels.c"])
    cc = ccomp.find_compiler()
    r = subprocess.run(
        [*cc.argv, "-std=c99", "-c", "-o", str(tmp_path / "k.o"), str(tmp_path / "kernels.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    flags = BACKEND.flags(cc, TARGET) + ["-DLATHE_NO_FLOAT16"]
    lib = ccomp.load(files["kernels.c"].decode(), flags, cc)
    main = next(f for f in loop.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    addrs = {k: ctypes.cast(getattr(lib, f"{k}__packed"), ctypes.c_void_p).value for k in kernels_of(loop)}
    ex = GraphExecutor(loop, addrs, "main", {}, param_names(main))
    h = normal(rng, 5, 7, dtype=np.float16)
    h[0, 0], h[0, 1] = np.float16(6e-5), np.float16(-3e-7)  # a subnormal half, and one that rounds to -0
    x = normal(rng, 5, 7) * 1e4
    x[0, 0] = 7e4  # rounds to inf in half
    got, ref = ex.run(h=h, x=x), lathe.interpret(m, h=h, x=x)
    np.testing.assert_allclose(got[0].astype(np.float32), ref[0].astype(np.float32), rtol=2e-3)
    np.testing.assert_array_equal(got[1], ref[1])  # f32 → f16 rounding is exact


def test_compiled_library_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LATHE_CACHE_DIR", str(tmp_path))
    m = parse_relay("def @main(%a: Tensor[(7), float32]) { negative(%a) }")
    loop = lathe.lower(m)
    BACKEND.load(loop, TARGET)
    cached = list((tmp_path / "c").glob("*.so"))
    assert len(cached) == 1
    runs = []
    monkeypatch.setattr(ccomp, "_run", lambda *a, **k: runs.append(a))
    BACKEND.load(loop, TARGET)  # from the cache: the compiler is not run
    assert runs == []
    monkeypatch.undo()
    monkeypatch.setenv("LATHE_CACHE", "0")
    monkeypatch.setenv("LATHE_CACHE_DIR", str(tmp_path / "off"))
    a = np.arange(7, dtype=np.float32)
    np.testing.assert_array_equal(build_c(m).run(a=a), -a)
    assert not (tmp_path / "off").exists()
    leftovers = set(Path(tempfile.gettempdir()).glob("lathe-c-*"))
    build_c(parse_relay("def @main(%a: Tensor[(9), float32]) { exp(%a) }"))
    assert set(Path(tempfile.gettempdir()).glob("lathe-c-*")) == leftovers  # nothing left behind
