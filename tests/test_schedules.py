"""Schedule primitives: every combination must compute the same function.

Kernels are written at te level by hand, scheduled with the `Schedule`
builder (which emits the schedule ops), compiled, and compared with numpy on
odd sizes where splits do not divide their extents.
"""

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.api import parse_source
from lathe.dialects import te
from lathe.lowering.schedules import Schedule

M, K, N = 13, 19, 17

MATMUL = f"""
func.func @main(%a: tensor<{M}x{K}xf32>, %b: tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32> {{
  %0 = func.call @matmul(%a, %b) : (tensor<{M}x{K}xf32>, tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32>
  func.return %0 : tensor<{M}x{N}xf32>
}}
func.func private @matmul(%a: tensor<{M}x{K}xf32>, %b: tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32> attributes {{lathe.kernel}} {{
  %0 = te.compute {{stage = "C", axes = ["i", "j", "k"], reduce_extents = [{K}], combiner = "sum"}} : tensor<{M}x{N}xf32> {{
  ^bb0(%i: index, %j: index, %k: index):
    %x = te.read %a[%i, %k] : tensor<{M}x{K}xf32> -> f32
    %y = te.read %b[%k, %j] : tensor<{K}x{N}xf32> -> f32
    %p = arith.mulf %x, %y : f32
    te.yield %p : f32
  }}
  func.return %0 : tensor<{M}x{N}xf32>
}}
"""


def _stage(module) -> te.ComputeOp:
    return next(op for op in module.walk() if isinstance(op, te.ComputeOp))


def none(s):
    s.reorder("i", "j", "k")  # an explicit identity schedule (keeps the default one away)


def tiled(s):
    io, ii = s.split("i", factor=4)
    jo, ji = s.split("j", factor=8)
    s.reorder(io, jo, "k", ii, ji)
    s.vectorize(ji)
    s.unroll(ii)
    s.parallel(io)


def split_reduce(s):
    ko, ki = s.split("k", factor=5)
    s.reorder("i", ko, "j", ki)
    s.unroll(ki)


def reduce_outermost(s):
    s.reorder("k", "i", "j")
    s.vectorize("j")


def fuse_nparts(s):
    f = s.fuse("i", "j")
    fo, fi = s.split(f, nparts=3)
    s.parallel(fo)


def parallel_inside(s):
    ko, ki = s.split("k", nparts=2)
    s.reorder(ko, "i", "j", ki)
    s.parallel("i")


def tile(s):
    io, jo, ii, ji = s.tile("i", "j", 4, 6)
    s.reorder(io, jo, "k", ii, ji)
    s.vectorize(ji)


def default(s):
    from lathe.lowering.schedules import apply_default_schedule

    apply_default_schedule(s.stage)


@pytest.mark.parametrize(
    "schedule", [none, tiled, tile, split_reduce, reduce_outermost, fuse_nparts, parallel_inside, default]
)
def test_matmul_schedules(schedule, rng):
    module = parse_source(MATMUL, "matmul.mlir")
    schedule(Schedule(_stage(module)))
    module.verify()
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    got = lathe.compile(module).run(a=a, b=b)
    assert max_rel_err(got, a @ b) <= 1e-4


def test_schedule_prints_and_replays(rng):
    """A schedule is IR: print it, parse it back, and get the same loops."""
    module = parse_source(MATMUL, "matmul.mlir")
    tiled(Schedule(_stage(module)))
    text = str(module)
    assert 'te.split %0 {axis = "i", factor = 4 : i64, outer = "i.outer", inner = "i.inner"}' in text
    again = parse_source(text, "again.mlir")
    assert str(lathe.lower(again)) == str(lathe.lower(module))


def test_compute_inline_and_multi_stage_kernel(rng):
    src = """
    func.func @main(%a: tensor<9x7xf32>) -> tensor<9xf32> {
      %0 = func.call @k(%a) : (tensor<9x7xf32>) -> tensor<9xf32>
      func.return %0 : tensor<9xf32>
    }
    func.func private @k(%a: tensor<9x7xf32>) -> tensor<9xf32> attributes {lathe.kernel} {
      %sq = te.compute {stage = "sq", axes = ["i", "j"]} : tensor<9x7xf32> {
      ^bb0(%i: index, %j: index):
        %x = te.read %a[%i, %j] : tensor<9x7xf32> -> f32
        %y = arith.mulf %x, %x : f32
        te.yield %y : f32
      }
      %mx = te.compute {stage = "mx", axes = ["i", "k"], reduce_extents = [7], combiner = "max"} : tensor<9xf32> {
      ^bb0(%i: index, %k: index):
        %x = te.read %sq[%i, %k] : tensor<9x7xf32> -> f32
        te.yield %x : f32
      }
      %out = te.compute {stage = "out", axes = ["i"]} : tensor<9xf32> {
      ^bb0(%i: index):
        %x = te.read %mx[%i] : tensor<9xf32> -> f32
        %one = arith.constant 1.0 : f32
        %y = arith.addf %x, %one : f32
        te.yield %y : f32
      }
      te.compute_inline %sq : tensor<9x7xf32>
      func.return %out : tensor<9xf32>
    }"""
    module = parse_source(src, "k.mlir")
    lowered = str(lathe.lower(module))
    kernel = lowered[lowered.index("func.func private @k") :]
    assert kernel.count("memref.alloc") == 1  # mx gets a buffer; sq is inlined
    a = rng.standard_normal((9, 7)).astype(np.float32)
    got = lathe.compile(module).run(a=a)
    assert max_rel_err(got, (a * a).max(axis=1) + 1) <= 1e-6


@pytest.mark.parametrize(
    "apply, words",
    [
        (lambda s: s.split("x", factor=2), "no leaf axis named 'x'"),
        (lambda s: s.parallel("k"), "reduce axis 'k' cannot be parallel"),
        (lambda s: s.fuse("j", "k"), "cannot fuse a spatial axis with a reduce axis"),
        (lambda s: s.fuse("j", "i"), "fused axes must be adjacent leaves, outermost first"),
        (lambda s: s.compute_inline(), "a reduction cannot be inlined"),
        (lambda s: (s.split("i", factor=2), s.split("i", factor=2)), "no leaf axis named 'i'"),
    ],
)
def test_bad_schedules_are_reported(apply, words):
    module = parse_source(MATMUL, "matmul.mlir")
    apply(Schedule(_stage(module)))
    with pytest.raises(lathe.LatheError) as info:
        lathe.lower(module)
    assert words in info.value.message
    assert "stage 'C'" in info.value.message


def test_bind_is_rejected_by_the_cpu_backend():
    module = parse_source(MATMUL, "matmul.mlir")
    Schedule(_stage(module)).bind("i", "blockIdx.x")
    assert '#loop.annotation<bind = "blockIdx.x">' in str(lathe.lower(module))
    with pytest.raises(lathe.LatheError, match="CPU backend cannot run a loop bound to blockIdx.x"):
        lathe.compile(module)


EPILOGUE = f"""
func.func @main(%a: tensor<{M}x{K}xf32>, %b: tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32> {{
  %0 = func.call @mm_relu(%a, %b) : (tensor<{M}x{K}xf32>, tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32>
  func.return %0 : tensor<{M}x{N}xf32>
}}
func.func private @mm_relu(%a: tensor<{M}x{K}xf32>, %b: tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32> attributes {{lathe.kernel}} {{
  %0 = te.compute {{stage = "C", axes = ["i", "j", "k"], reduce_extents = [{K}], combiner = "sum"}} : tensor<{M}x{N}xf32> {{
  ^bb0(%i: index, %j: index, %k: index):
    %x = te.read %a[%i, %k] : tensor<{M}x{K}xf32> -> f32
    %y = te.read %b[%k, %j] : tensor<{K}x{N}xf32> -> f32
    %p = arith.mulf %x, %y : f32
    te.yield %p : f32
  }}
  %1 = te.compute {{stage = "relu", axes = ["i", "j"]}} : tensor<{M}x{N}xf32> {{
  ^bb0(%i: index, %j: index):
    %x = te.read %0[%i, %j] : tensor<{M}x{N}xf32> -> f32
    %z = arith.constant 0.0 : f32
    %r = arith.maximumf %x, %z : f32
    te.yield %r : f32
  }}
  func.return %1 : tensor<{M}x{N}xf32>
}}
"""


@pytest.mark.parametrize("tile", [(4, 8), (5, 16), (13, 17), (1, 4)])
def test_compute_at_register_tile_with_epilogue(tile, rng):
    """C computed per tile of relu's loops, in a local buffer; tiles that do not divide
    13 x 17 are guarded."""
    module = parse_source(EPILOGUE, "mm.mlir")
    stages = [op for op in module.walk() if isinstance(op, te.ComputeOp)]
    c, out = Schedule(stages[0]), Schedule(stages[1])
    io, ii = out.split("i", factor=tile[0])
    jo, ji = out.split("j", factor=tile[1])
    out.reorder(io, jo, ii, ji)
    out.vectorize(ji)
    c.compute_at(stages[1], jo)
    c.reorder("k", "i", "j")
    c.vectorize("j")
    lowered = str(lathe.lower(module))
    assert "memref.alloca" in lowered and "memref.alloc()" not in lowered.split("@mm_relu")[1]
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    got = lathe.compile(module).run(a=a, b=b)
    assert max_rel_err(got, np.maximum(a @ b, 0)) <= 1e-4


def test_cache_write_of_an_output_stage(rng):
    module = parse_source(MATMUL, "matmul.mlir")
    stage = _stage(module)
    s = Schedule(stage)
    local = s.cache_write()
    io, ii = s.split("i", factor=4)
    jo, ji = s.split("j", factor=16)
    s.reorder(io, jo, ii, ji)
    local.compute_at(stage, jo)
    local.reorder("k", "i", "j")
    text = str(module)
    assert "te.cache_write" in text and "te.compute_at" in text
    again = parse_source(text, "again.mlir")  # the schedule replays from its printed form
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    assert max_rel_err(lathe.compile(again).run(a=a, b=b), a @ b) <= 1e-4


def _epilogue_stages():
    module = parse_source(EPILOGUE, "mm.mlir")
    stages = [op for op in module.walk() if isinstance(op, te.ComputeOp)]
    return module, stages


@pytest.mark.parametrize("factor", [4, 5, 19, 32])
def test_rfactor(factor, rng):
    """Partial sums over the outer part of k (non-divisible factors guarded), then their sum."""
    module = parse_source(MATMUL, "matmul.mlir")
    stage = _stage(module)
    s = Schedule(stage)
    rf = s.rfactor("k", factor)
    rf.reorder("i", "j", "k.outer", "k.inner")
    rf.vectorize("k.inner")
    s.parallel("i")
    lowered = str(lathe.lower(module))
    assert lowered.count("memref.alloc()") >= 1  # the partial sums' buffer
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    assert max_rel_err(lathe.compile(module).run(a=a, b=b), a @ b) <= 1e-4


def test_cache_read_storage_align_pragma_compute_root(rng):
    module, (c, out) = _epilogue_stages()
    a_arg = next(
        op for op in module.walk() if getattr(op, "sym_name", None) and op.sym_name.data == "mm_relu"
    ).body.block.args[0]
    sc, so = Schedule(c), Schedule(out)
    sc.cache_read(a_arg, [c])
    sc.storage_align("i", 16, 0)  # rows of C padded to a stride of 16k elements: 17 -> 32
    so.pragma("j", "unroll_explicit")
    so.compute_root()
    lowered = str(lathe.lower(module))
    kernel = lowered[lowered.index("@mm_relu") :]
    assert f"memref<{M}x{K}xf32>" in kernel and "memref<13x32xf32>" in kernel  # the copy of a; C's padded rows
    assert "#loop.annotation<unroll>" in kernel
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    assert max_rel_err(lathe.compile(module).run(a=a, b=b), np.maximum(a @ b, 0)) <= 1e-4
