"""The GPU schedule templates (lowering/gpu_schedules.py) that CUDA and OpenCL share: every
kernel comes out bound, knobs resolve and replay, and their numbers are checked through the
OpenCL backend (skipped without an OpenCL device)."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func, gpu, memref, scf
from xdsl.dialects.builtin import IntegerAttr
from xdsl.ir import Block

import lathe
from lathe.api import parse_source
from lathe.backends.registry import resolve_target
from lathe.dialects.functions import is_kernel
from lathe.dialects.loop import annotation_of
from lathe.errors import LatheError
from lathe.pipelines import pipeline_for, with_pass_options
from lathe.testing.op_cases import worst_rel_err

GPU = {"alter-op-layout": {"vector_lanes": 1}, "apply-default-schedule": {"gpu": True, "max_threads": 256}}
BACKEND, TARGET = resolve_target("opencl")
needs_opencl = pytest.mark.skipif(
    not BACKEND.capabilities(TARGET).runs_here, reason=f"no OpenCL device: {BACKEND.status()}"
)

SOFTMAX = "def @main(%x: Tensor[(6, 45), float32]) { nn.softmax(%x) }"
DENSE = "def @main(%x: Tensor[(9, 33), float32], %w: Tensor[(21, 33), float32]) { nn.relu(nn.dense(%x, %w)) }"


def _gpu_lower(module):
    return lathe.lower(module, pipeline=with_pass_options(pipeline_for(3, module), GPU))


def _config_pipeline(module, config: str, compiled: bool = False) -> str:
    """A pipeline giving `config` to the kernel of its template; gpu_generic, which every
    kernel accepts, to the one kernel another template claims (apply-schedule names it, as
    the kernels are named where `lathe.compile` adds the backend's pass options)."""
    from lathe.lowering.gpu_schedules import plan_gpu_kernel

    full = pipeline_for(3, module)
    pass_ = f'apply-schedule{{config="{config}" gpu=true max_threads=256}}'
    if config.startswith("gpu_generic"):
        prefix = with_pass_options(full, GPU) if compiled else full
        te = lathe.lower(module, pipeline=prefix.split(",apply-default-schedule")[0])
        claimed = [f.sym_name.data for f in _kernels(te) if plan_gpu_kernel(f, 256, 32).template_name != "gpu_generic"]
        if claimed:
            (name,) = claimed
            pass_ = f'apply-schedule{{config="{config}" kernel="{name}" gpu=true max_threads=256}}'
    return full.replace("apply-default-schedule", pass_)


def _top_level_loops_bound(module) -> dict[str, list[str]]:
    """Each kernel's top-level loops' annotations (an unbound loop of one iteration is removed by
    cleanup)."""
    out = {}
    for f in module.ops:
        if isinstance(f, func.FuncOp) and is_kernel(f):
            out[f.sym_name.data] = [
                (annotation_of(op).thread_axis.data if annotation_of(op) is not None else "unbound")
                for op in f.body.block.ops
                if isinstance(op, scf.ForOp)
            ]
    return out


def test_every_kernel_of_a_model_comes_out_bound():
    from lathe.models import ZOO

    module, params = lathe.from_onnx(ZOO["transformer"].build(small=True, seed=0))
    loops = _top_level_loops_bound(_gpu_lower(module))
    assert loops
    for name, axes in loops.items():
        assert "unbound" not in axes, f"@{name}: {axes}"


def test_multi_stage_kernel_is_one_grid_per_stage():
    module = parse_source(SOFTMAX, "s.lathe")
    loops = _top_level_loops_bound(lathe.lower(module, pipeline=_config_pipeline(module, "gpu_generic")))
    (axes,) = loops.values()
    # max and sum of exp over 6 rows fit one block (a blockIdx loop of one iteration, which
    # cleanup-loops keeps: a bound loop is a launch dimension); the 270 quotients take two
    assert axes == ["blockIdx.x", "blockIdx.x", "blockIdx.x"]


def test_knob_values_outside_the_device_limit_are_refused():
    module = parse_source(DENSE, "d.lathe")
    pipeline = _config_pipeline(module, "gpu_generic:block=512")
    with pytest.raises(LatheError, match="knob 'block' of template 'gpu_generic' cannot be 512"):
        lathe.lower(module, pipeline=pipeline)


@needs_opencl
@pytest.mark.parametrize(
    "config", ["gpu_generic", "gpu_generic:block=32,per_thread=4", "gpu_generic:block=64,per_thread=2"]
)
@pytest.mark.parametrize("source", [SOFTMAX, DENSE])
def test_configurations_agree_with_the_interpreter_on_opencl(config, source):
    rng = np.random.default_rng(abs(hash((config, source))) % 2**32)
    module = parse_source(source, "case.lathe")
    fn = next(iter(module.ops))
    inputs = {a.name_hint: rng.standard_normal(a.type.get_shape()).astype(np.float32) for a in fn.body.block.args}
    compiled = lathe.compile(module, target="opencl", pipeline=_config_pipeline(module, config, compiled=True))
    assert worst_rel_err(compiled.run(**inputs), lathe.interpret(module, **inputs)) <= 1e-5


# -- shared memory, barriers, cross-thread reductions ------------------------------------------

ROW_REDUCTIONS = {
    "softmax": "def @main(%x: Tensor[(6, 45), float32]) { nn.softmax(%x) }",
    "softmax_one_row": "def @main(%x: Tensor[(1, 300), float32]) { nn.softmax(%x) }",
    "log_softmax": "def @main(%x: Tensor[(5, 3, 70), float32]) { nn.log_softmax(%x) }",
    "layer_norm": "def @main(%x: Tensor[(4, 65), float32], %g: Tensor[(65), float32], %b: Tensor[(65), float32]) "
    "{ nn.layer_norm(%x, %g, %b) }",
    "mean": "def @main(%x: Tensor[(7, 37), float32]) { mean(%x, axis=[1]) }",
    "max": "def @main(%x: Tensor[(3, 5, 77), float32]) { max(%x, axis=[2]) }",
    "sum_to_scalar": "def @main(%x: Tensor[(3, 5, 77), float32]) { sum(%x) }",
}
CONTRACTIONS = {
    "dense_relu": DENSE,
    "dense_batch": "def @main(%x: Tensor[(2, 3, 40), float32], %w: Tensor[(35, 40), float32]) { nn.dense(%x, %w) }",
    # an even N: alter-op-layout packs the weight two columns wide, read at j // 2 and j % 2
    "dense_packed": "def @main(%x: Tensor[(13, 50), float32], %w: Tensor[(38, 50), float32]) { nn.dense(%x, %w) }",
    "dense_wide": "def @main(%x: Tensor[(67, 129), float32], %w: Tensor[(45, 129), float32]) { nn.dense(%x, %w) }",
    "matmul_ta": "def @main(%a: Tensor[(19, 30), float32], %b: Tensor[(19, 41), float32]) "
    "{ nn.matmul(%a, %b, transpose_a=True) }",
    "batch_matmul": "def @main(%a: Tensor[(3, 17, 23), float32], %b: Tensor[(3, 29, 23), float32]) "
    "{ nn.batch_matmul(%a, %b) }",
    "batch_matmul_broadcast": "def @main(%a: Tensor[(1, 17, 23), float32], %b: Tensor[(4, 23, 9), float32]) "
    "{ nn.batch_matmul(%a, %b, transpose_b=False) }",
}

CONVOLUTIONS = {
    "conv2d_nchw_padded": "def @main(%x: Tensor[(2, 5, 11, 13), float32], %w: Tensor[(7, 5, 3, 3), float32]) "
    "{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1]) }",
    "conv2d_strided_nhwc": "def @main(%x: Tensor[(1, 9, 10, 3), float32], %w: Tensor[(3, 3, 3, 20), float32]) "
    '{ nn.conv2d(%x, %w, strides=[2, 2], padding=[1, 1, 1, 1], data_layout="NHWC", kernel_layout="HWIO") }',
    "depthwise": "def @main(%x: Tensor[(1, 6, 12, 9), float32], %w: Tensor[(6, 1, 3, 3), float32]) "
    "{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1], groups=6) }",
    "conv2d_dilated_relu": "def @main(%x: Tensor[(1, 4, 15, 14), float32], %w: Tensor[(9, 4, 3, 2), float32]) "
    "{ nn.relu(nn.conv2d(%x, %w, dilation=[2, 1])) }",
}


def _kernels(module):
    return [f for f in module.ops if isinstance(f, func.FuncOp) and is_kernel(f)]


def _bound_ancestors(op) -> list[str]:
    axes, parent = [], op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        if isinstance(parent, scf.ForOp) and annotation_of(parent) is not None:
            axes.append(annotation_of(parent).thread_axis.data)
        elif isinstance(parent, scf.IfOp):
            axes.append("if")
        parent = parent.parent_op()
    return axes


def _enclosing_ifs(op) -> list:
    out, parent = [], op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        if isinstance(parent, scf.IfOp):
            out.append(parent)
        parent = parent.parent_op()
    return out


def _block_uniform(value) -> bool:
    """Computed from blockIdx loop variables and constants only."""
    owner = value.owner
    if isinstance(owner, Block):
        loop = owner.parent_op()
        ann = annotation_of(loop) if isinstance(loop, scf.ForOp) else None
        return ann is not None and ann.thread_axis.data.startswith("blockIdx")
    return all(_block_uniform(v) for v in owner.operands)


def _shared_allocas(module) -> list:
    return [
        op
        for op in module.walk()
        if isinstance(op, memref.AllocaOp)
        and isinstance(op.memref.type.memory_space, IntegerAttr)
        and op.memref.type.memory_space.value.data == 3
    ]


def _check_synchronisation(module) -> None:
    """The contract's places: a barrier inside a grid, outside every threadIdx loop and every
    branch but a block-uniform one; a shared alloca inside a blockIdx loop, outside threads."""
    for op in module.walk():
        if isinstance(op, gpu.BarrierOp):
            axes = _bound_ancestors(op)
            assert any(a.startswith("blockIdx") for a in axes), axes
            assert not any(a.startswith("threadIdx") for a in axes), axes
            for branch in _enclosing_ifs(op):
                assert _block_uniform(branch.cond), "a barrier under a thread-dependent branch"
    for op in _shared_allocas(module):
        axes = _bound_ancestors(op)
        bound = [a for a in axes if a != "if"]
        assert bound and bound[0].startswith("blockIdx"), axes


@pytest.mark.parametrize("name", sorted(ROW_REDUCTIONS))
def test_row_reductions_reduce_across_a_block(name):
    module = _gpu_lower(parse_source(ROW_REDUCTIONS[name], "r.lathe"))
    assert _shared_allocas(module), "no shared partials"
    assert any(isinstance(op, gpu.BarrierOp) for op in module.walk())
    _check_synchronisation(module)


@pytest.mark.parametrize("name", sorted(CONTRACTIONS))
def test_contractions_stage_operand_tiles_in_shared_memory(name):
    module = _gpu_lower(parse_source(CONTRACTIONS[name], "c.lathe"))
    shared = _shared_allocas(module)
    assert len(shared) == 2, [str(op.memref.type) for op in shared]
    _check_synchronisation(module)
    # each tile holds at most (tile rows or columns) x tile_k elements: 32 x 8 by default
    for op in shared:
        assert np.prod(op.memref.type.get_shape()) <= 32 * 8, op.memref.type


@pytest.mark.parametrize("name", sorted(CONVOLUTIONS))
def test_convolutions_stage_windows_in_shared_memory(name):
    module = _gpu_lower(parse_source(CONVOLUTIONS[name], "c.lathe"))
    assert len(_shared_allocas(module)) == 2
    _check_synchronisation(module)


def test_templates_claim_their_kernels():
    from lathe.lowering.gpu_schedules import plan_gpu_kernel

    def templates(source):
        module = parse_source(source, "t.lathe")
        pipeline = with_pass_options(pipeline_for(3, module), GPU).split(",apply-default-schedule")[0]
        lowered = lathe.lower(module, pipeline=pipeline)
        return sorted(plan_gpu_kernel(f, 256, 32).template_name for f in _kernels(lowered))

    assert "gpu_dense" in templates(DENSE)
    assert templates(SOFTMAX) == ["gpu_reduce"]
    assert templates("def @main(%x: Tensor[(6, 5), float32]) { sum(%x, axis=[1]) }") == ["gpu_generic"]  # too short
    conv = "def @main(%x: Tensor[(1, 8, 9, 9), float32], %w: Tensor[(4, 8, 3, 3), float32]) { nn.conv2d(%x, %w) }"
    assert "gpu_conv2d" in templates(conv)  # (a convolution combines two tensors: not a row reduction)
    pool = "def @main(%x: Tensor[(1, 8, 9, 9), float32]) { nn.max_pool2d(%x, pool_size=[3, 3]) }"
    assert templates(pool) == ["gpu_generic"]  # a 3 x 3 window: too short to share among threads


def test_a_dense_tile_needing_more_threads_than_the_device_has_is_refused():
    module = parse_source(DENSE, "d.lathe")
    pipeline = pipeline_for(3, module).replace(
        "apply-default-schedule",
        'apply-schedule{config="gpu_dense:tile_m=64,tile_n=64,thread_m=1,thread_n=1" gpu=true max_threads=256}',
    )
    with pytest.raises(LatheError, match="needs 4096 threads"):
        lathe.lower(module, pipeline=pipeline)


def _agrees_on_opencl(source: str, config: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    module = parse_source(source, "case.lathe")
    fn = next(iter(module.ops))
    inputs = {a.name_hint: rng.standard_normal(a.type.get_shape()).astype(np.float32) for a in fn.body.block.args}
    pipeline = with_pass_options(pipeline_for(3, module), GPU)
    if config is not None:
        pipeline = _config_pipeline(module, config, compiled=True)
    compiled = lathe.compile(module, target="opencl", pipeline=pipeline)
    assert worst_rel_err(compiled.run(**inputs), lathe.interpret(module, **inputs)) <= 1e-5


@needs_opencl
@pytest.mark.parametrize("name", sorted(ROW_REDUCTIONS))
def test_row_reductions_agree_with_the_interpreter_on_opencl(name):
    _agrees_on_opencl(ROW_REDUCTIONS[name], None, seed=len(name))


@needs_opencl
@pytest.mark.parametrize("threads", [32, 128])
def test_reduce_threads_knob_agrees_on_opencl(threads):
    _agrees_on_opencl(ROW_REDUCTIONS["layer_norm"], f"gpu_reduce:threads={threads}", seed=threads)


@needs_opencl
@pytest.mark.parametrize("name", sorted(CONTRACTIONS))
def test_contractions_agree_with_the_interpreter_on_opencl(name):
    _agrees_on_opencl(CONTRACTIONS[name], None, seed=len(name))


@needs_opencl
@pytest.mark.parametrize(
    "config",
    [
        "gpu_dense:tile_m=16,tile_n=8,tile_k=4,thread_m=1,thread_n=4,unroll=0",
        "gpu_dense:tile_m=64,tile_n=16,tile_k=32,thread_m=4,thread_n=2",
        "gpu_dense:tile_m=8,tile_n=64,tile_k=16,thread_m=8,thread_n=1",
    ],
)
def test_dense_knobs_agree_on_opencl(config):
    _agrees_on_opencl(CONTRACTIONS["dense_wide"], config, seed=len(config))


ROW_SUM = """
func.func private @row_sum(%a: tensor<3x13xf32>) -> tensor<3xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<3xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<3x13xf32> -> f32
    te.yield %1 : f32
  }
  te.split %0 {axis = "k", factor = 5, outer = "k.o", inner = "k.i"} : tensor<3xf32>
  SCHEDULE
  func.return %0 : tensor<3xf32>
}
"""


@pytest.mark.parametrize(
    "schedule, message",
    [
        ('te.bind %0 {axis = "k.i", thread_axis = "blockIdx.x"} : tensor<3xf32>', "cannot be bound to blockIdx.x"),
        (
            'te.bind %0 {axis = "k.i", thread_axis = "threadIdx.x"} : tensor<3xf32>\n'
            '  te.bind %0 {axis = "k.o", thread_axis = "threadIdx.y"} : tensor<3xf32>',
            "only one reduce axis can be bound",
        ),
        (
            'te.bind %0 {axis = "k.i", thread_axis = "threadIdx.x"} : tensor<3xf32>\n'
            '  te.bind %0 {axis = "i", thread_axis = "threadIdx.y"} : tensor<3xf32>',
            "its barriers would be inside a thread loop",
        ),
    ],
)
def test_cross_thread_reductions_refuse_what_would_deadlock(schedule, message):
    module = parse_source(ROW_SUM.replace("SCHEDULE", schedule), "r.mlir")
    with pytest.raises(LatheError, match=message):
        lathe.lower(module, pipeline="lower-te-to-loop")


def test_a_shared_tile_inside_a_thread_loop_is_refused():
    source = """
func.func private @mm(%a: tensor<9x13xf32>, %b: tensor<13x6xf32>) -> tensor<9x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "mm", axes = ["i", "j", "k"], reduce_extents = [13], combiner = "sum"} : tensor<9x6xf32> {
  ^bb0(%i: index, %j: index, %k: index):
    %x = te.read %a[%i, %k] : tensor<9x13xf32> -> f32
    %y = te.read %b[%k, %j] : tensor<13x6xf32> -> f32
    %p = arith.mulf %x, %y : f32
    te.yield %p : f32
  }
  %c = te.cache_read %a, %0 {scope = "shared"} : tensor<9x13xf32>, tensor<9x6xf32> -> tensor<9x13xf32>
  te.bind %0 {axis = "i", thread_axis = "threadIdx.x"} : tensor<9x6xf32>
  te.compute_at %c, %0 {axis = "j"} : tensor<9x13xf32>, tensor<9x6xf32>
  func.return %0 : tensor<9x6xf32>
}
"""
    with pytest.raises(LatheError, match="a shared tile must be computed at a loop outside the threads"):
        lathe.lower(parse_source(source, "mm.mlir"), pipeline="lower-te-to-loop")


@needs_opencl
@pytest.mark.parametrize("name", sorted(CONVOLUTIONS))
def test_convolutions_agree_with_the_interpreter_on_opencl(name):
    _agrees_on_opencl(CONVOLUTIONS[name], None, seed=len(name))


@needs_opencl
@pytest.mark.parametrize(
    "config",
    [
        "gpu_conv2d:tile_f=4,thread_f=1,tile_y=2,tile_x=16,tile_rc=1",
        "gpu_conv2d:tile_f=32,thread_f=4,tile_y=1,tile_rc=8",
    ],
)
def test_conv2d_knobs_agree_on_opencl(config):
    _agrees_on_opencl(CONVOLUTIONS["conv2d_nchw_padded"], config, seed=len(config))


def test_a_conv2d_tile_over_the_shared_memory_budget_is_refused():
    module = parse_source(CONVOLUTIONS["conv2d_nchw_padded"], "c.lathe")
    config = "gpu_conv2d:tile_f=32,thread_f=4,tile_y=8,tile_x=16,tile_rc=8"
    pipeline = with_pass_options(_config_pipeline(module, config), GPU)
    with pytest.raises(LatheError, match="shared elements"):
        lathe.lower(module, pipeline=pipeline)
