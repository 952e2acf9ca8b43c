"""schedule_rows, the schedule of a template's padded copy: every channel count copies the
same tensor, and a few channels (a first layer's image) make the row the fused (x, c) axes
with the outer axes parallel instead of one parallel iteration per pixel."""

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.dialects import te
from lathe.lowering.schedules import Schedule, schedule_rows

PAD = 3


def pad_module(h: int, w: int, c: int):
    """A kernel that is only an NHWC zero-padded copy, as the conv template's pad stage reads."""
    x, y = f"1x{h}x{w}x{c}xf32", f"1x{h + 2 * PAD}x{w + 2 * PAD}x{c}xf32"

    def inside(axis: str, extent: int, n: int) -> str:
        return f"""
      %{axis}s = arith.subi %{axis}, %p : index
      %{axis}lo = arith.cmpi sge, %{axis}s, %zero : index
      %{axis}e = arith.constant {extent} : index
      %{axis}hi = arith.cmpi slt, %{axis}s, %{axis}e : index
      %{axis}in = arith.andi %{axis}lo, %{axis}hi : i1
      %{axis}m = arith.constant {n} : index
      %{axis}a = arith.maxsi %{axis}s, %zero : index
      %{axis}c = arith.minsi %{axis}a, %{axis}m : index"""

    return parse_source(
        f"""
func.func @main(%a: tensor<{x}>) -> tensor<{y}> {{
  %0 = func.call @k(%a) : (tensor<{x}>) -> tensor<{y}>
  func.return %0 : tensor<{y}>
}}
func.func private @k(%a: tensor<{x}>) -> tensor<{y}> attributes {{lathe.kernel}} {{
  %0 = te.compute {{stage = "T_pad_data", axes = ["n", "h", "w", "c"], role = "pad"}} : tensor<{y}> {{
  ^bb0(%n: index, %h: index, %w: index, %c: index):
    %p = arith.constant {PAD} : index
    %zero = arith.constant 0 : index{inside("h", h, h - 1)}{inside("w", w, w - 1)}
    %in = arith.andi %hin, %win : i1
    %v = te.read %a[%n, %hc, %wc, %c] : tensor<{x}> -> f32
    %f = arith.constant 0.0 : f32
    %r = arith.select %in, %v, %f : f32
    te.yield %r : f32
  }}
  func.return %0 : tensor<{y}>
}}""",
        "pad.mlir",
    )


def _scheduled(h: int, w: int, c: int):
    module = pad_module(h, w, c)
    stage = next(op for op in module.walk() if isinstance(op, te.ComputeOp))
    schedule_rows(Schedule(stage), 16)
    return module, stage


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 32])
def test_padded_copy_is_exact(c, rng):
    module, _ = _scheduled(37, 45, c)
    x = rng.standard_normal((1, 37, 45, c)).astype(np.float32)
    got = lathe.compile(module).run(x)
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0))))


@pytest.mark.parametrize("c", [3, 4, 6])
def test_few_channels_fuse_the_row(c):
    """The row is (x, c) fused and vectorized, and the parallel loop is over the image's rows
    (230 iterations), not its pixels."""
    module, _ = _scheduled(224, 224, c)
    prims = [op for op in module.walk() if isinstance(op, te.SchedulePrimitive)]
    fused = {op.fused.data: [a.data for a in op.fuse_axes.data] for op in prims if isinstance(op, te.FuseOp)}
    parallel = [op.axis.data for op in prims if isinstance(op, te.ParallelOp)]
    vectorized = [op.axis.data for op in prims if isinstance(op, te.VectorizeOp)]
    assert fused["w.c.fused"] == ["w", "c"]
    assert parallel == ["n.h.fused"] and fused["n.h.fused"] == ["n", "h"]
    assert len(vectorized) == 1 and vectorized[0].startswith("w.c.fused")


def test_vector_channels_keep_their_rows():
    """16 channels: vectors along c, every pixel's vector its own iteration of the fused rest."""
    module, _ = _scheduled(224, 224, 16)
    prims = [op for op in module.walk() if isinstance(op, te.SchedulePrimitive)]
    assert [op.axis.data for op in prims if isinstance(op, te.VectorizeOp)] == ["c.inner"]
    assert [op.axis.data for op in prims if isinstance(op, te.ParallelOp)] == ["n.h.w.c.outer.fused"]
