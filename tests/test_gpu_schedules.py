"""The GPU schedule templates (lowering/gpu_schedules.py) that CUDA and OpenCL share: every
kernel comes out bound, knobs resolve and replay, and their numbers are checked through the
OpenCL backend (skipped without an OpenCL device)."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func, scf

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


def _top_level_loops_bound(module) -> dict[str, list[str]]:
    """Each kernel's top-level loops' annotations (a loop of one iteration is removed by cleanup)."""
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
    loops = _top_level_loops_bound(_gpu_lower(parse_source(SOFTMAX, "s.lathe")))
    (axes,) = loops.values()
    # max and sum of exp over 6 rows fit one block (its blockIdx loop of one iteration is
    # gone, a top-level threadIdx loop is a grid of one block); the 270 quotients take two
    assert axes == ["threadIdx.x", "threadIdx.x", "blockIdx.x"]


def test_knob_values_outside_the_device_limit_are_refused():
    module = parse_source(DENSE, "d.lathe")
    pipeline = pipeline_for(3, module).replace(
        "apply-default-schedule", 'apply-schedule{config="gpu_generic:block=512" gpu=true max_threads=256}'
    )
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
    pipeline = pipeline_for(3, module).replace(
        "apply-default-schedule", f'apply-schedule{{config="{config}" gpu=true}}'
    )
    compiled = lathe.compile(module, target="opencl", pipeline=pipeline)
    assert worst_rel_err(compiled.run(**inputs), lathe.interpret(module, **inputs)) <= 1e-5
