"""Software prefetch (te.prefetch -> loop.prefetch -> llvm.prefetch / __builtin_prefetch): the
next weight block asked for while the current one computes, in the conv2d_nhwc template's
weight-stationary order and dense_pack, against the interpreter; where the lines are asked
for; and the C backend's form."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.backends.llvm.codegen import module_to_llvm_ir
from lathe.dialects import loop, make_context
from lathe.passes.fold_constant import bind_params
from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, build_pipeline
from lathe.textual_ir.parser import parse_relay


def _scheduled(src: str, params: dict, config: str):
    """The graph at -O3 up to te, every kernel of the config's template replayed from it."""
    m = bind_params(parse_relay(src), params)
    build_pipeline(GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + ",lower-graph-to-te").apply(make_context(), m)
    build_pipeline(f'apply-schedule{{config="{config}"}}').apply(make_context(), m)
    return m


def _prefetches(m) -> list[loop.PrefetchOp]:
    lowered = m.clone()
    build_pipeline("lower-te-to-loop,cleanup-loops").apply(make_context(), lowered)
    return [op for op in lowered.walk() if isinstance(op, loop.PrefetchOp)], lowered


_CONV = (
    "def @main(%x: Tensor[(1, 7, 7, 64), float32], %w: Tensor[(3, 3, 64, 128), float32], %b: Tensor[(128,), float32]) "
    '{ nn.relu(nn.bias_add(nn.conv2d(%x, %w, padding=[1, 1, 1, 1], kernel_size=[3, 3], data_layout="NHWC", '
    'kernel_layout="HWIO"), %b, axis=3)) }'
)


@pytest.mark.usefixtures("direct_convolutions")  # a 3x3 layer on the direct template
@pytest.mark.parametrize("prefetch", ["on", "off"])
def test_conv_prefetches_the_next_filter_block(prefetch, rng):
    """A weight blocked at compile time (4 blocks of 32 filters, 3 x 3 x 64 x 32 floats each) in
    the fyx order: with prefetch on, the next block's 1153 lines are asked for inside the
    window's channel loop (the busiest plain loop); the results are the interpreter's."""
    params = {
        "w": (rng.standard_normal((3, 3, 64, 128)) / 24).astype(np.float32),
        "b": (0.1 * rng.standard_normal(128)).astype(np.float32),
    }
    m = _scheduled(_CONV, params, f"conv2d_nhwc:order=fyx,prefetch={prefetch}")
    found, lowered = _prefetches(m)
    if prefetch == "off":
        assert not found
    else:
        (op,) = found
        assert op.buffer.type.get_shape() == (4, 3, 3, 64, 32)
        assert op.locality.value.data == 2
        assert op.parent_op().parent_op().body.block.args[0].name_hint == "rc"  # (inside its guard)
        assert "call void @llvm.prefetch.p0(" in module_to_llvm_ir(lowered)
    x = rng.standard_normal((1, 7, 7, 64)).astype(np.float32)
    ref = lathe.interpret(parse_relay(_CONV), params, x=x)
    got = lathe.compile(m, num_threads=2).run(x)
    assert max_rel_err(got, ref) < 1e-5


def test_dense_prefetches_the_next_panel(rng):
    """dense_pack over a weight packed at compile time: the next 32-column panel (256 x 32
    floats) is asked for during the current one; the results are the interpreter's."""
    src = "def @main(%x: Tensor[(32, 256), float32], %w: Tensor[(256, 256), float32]) { nn.matmul(%x, %w) }"
    params = {"w": (rng.standard_normal((256, 256)) / 16).astype(np.float32)}
    m = _scheduled(src, params, "dense_pack:prefetch=on")
    found, _ = _prefetches(m)
    assert found and all(len(op.buffer.type.get_shape()) == 3 for op in found)
    x = rng.standard_normal((32, 256)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), params, x=x)
    assert max_rel_err(lathe.compile(m, num_threads=2).run(x), ref) < 1e-5


@pytest.mark.usefixtures("direct_convolutions")
def test_c_backend_prefetches_with_the_builtin(rng):
    params = {
        "w": (rng.standard_normal((3, 3, 64, 128)) / 24).astype(np.float32),
        "b": (0.1 * rng.standard_normal(128)).astype(np.float32),
    }
    m = _scheduled(_CONV, params, "conv2d_nhwc:order=fyx,prefetch=on")
    cm = lathe.compile(m, target="c", num_threads=2)
    assert "__builtin_prefetch(&" in cm.source
    x = rng.standard_normal((1, 7, 7, 64)).astype(np.float32)
    assert max_rel_err(cm.run(x), lathe.interpret(parse_relay(_CONV), params, x=x)) < 1e-5


_GPU_PREFETCH = """
func.func private @k(%w: memref<4x64xf32>, %out: memref<4x64xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c64 = arith.constant 64 : index
  scf.for %b = %c0 to %c4 step %c1 {
    scf.for %t = %c0 to %c64 step %c1 {
      loop.prefetch %w[%t] {locality = 2 : i32} : memref<4x64xf32>
      %v = memref.load %w[%b, %t] : memref<4x64xf32>
      memref.store %v, %out[%b, %t] : memref<4x64xf32>
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
  func.return
}
"""


def test_gpu_backends_drop_the_hint():
    """A hand-written GPU schedule may carry a CPU prefetch over: CUDA and OpenCL emit the
    kernel without it (NVPTX selects no generic llvm.prefetch), no device needed."""
    from xdsl.parser import Parser

    from lathe.backends.cuda.codegen import module_to_nvptx_ir
    from lathe.backends.registry import resolve_target

    module = Parser(make_context(), _GPU_PREFETCH).parse_module()
    ir = module_to_nvptx_ir(module.clone())[0]
    assert "@k(" in ir and "prefetch" not in ir
    backend, target = resolve_target("opencl")
    source = backend.render(module.clone(), target)
    assert "__kernel void" in source and "prefetch" not in source
