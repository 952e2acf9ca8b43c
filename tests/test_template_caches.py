"""The CPU templates' defaults follow the target's L2: the size reaches them as an option of
the scheduling passes (set by the backend's graph_pass_options, printed and parsed in a
pipeline string like vector_lanes), and the tuner's tasks default to what the compiler does."""

from __future__ import annotations

import numpy as np

from lathe.backends.registry import resolve_target
from lathe.dialects import make_context
from lathe.dialects.functions import is_kernel
from lathe.lowering.schedule_builder import FALLBACK_L2_BYTES, CacheInfo
from lathe.lowering.schedules import ApplyDefaultSchedule, plan_kernel
from lathe.pipelines import build_pipeline, with_pass_options
from lathe.textual_ir.mlir import parse_mlir
from lathe.textual_ir.parser import parse_relay
from lathe.tuner.measure import lower_candidate
from lathe.tuner.tasks import extract_tasks

MIB = 1 << 20

DENSE = """builtin.module {{
func.func private @dense(%0: tensor<{m}x{k}xf32>, %1: tensor<{nb}x{k}x32xf32>) -> tensor<{m}x{n}xf32> attributes {{lathe.kernel}} {{
  %2 = graph.nn.contrib_dense_pack %0, %1 : (tensor<{m}x{k}xf32>, tensor<{nb}x{k}x32xf32>) -> tensor<{m}x{n}xf32>
  func.return %2 : tensor<{m}x{n}xf32>
}}
}}"""


def _te_kernel(module):
    build_pipeline("lower-graph-to-te").apply(make_context(), module)
    (f,) = [f for f in module.ops if is_kernel(f)]
    return f


def _dense_defaults(m: int, n: int, k: int, caches: CacheInfo) -> dict:
    f = _te_kernel(parse_mlir(make_context(), DENSE.format(m=m, n=n, k=k, nb=n // 32), "<dense>"))
    plan = plan_kernel(f, 16, caches)
    assert plan.template_name == "dense_pack"
    return {kn.name: kn.default for kn in plan.space}


def _conv_defaults(h: int, c: int, f: int, caches: CacheInfo) -> dict:
    src = (
        f"def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[(3, 3, {c}, {f}), float32]) "
        '{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1], kernel_size=[3, 3], data_layout="NHWC", kernel_layout="HWIO") }'
    )
    m = parse_relay(src)
    build_pipeline("fuse-ops").apply(make_context(), m)
    plan = plan_kernel(_te_kernel(m), 16, caches)
    assert plan.template_name == "conv2d_nhwc"
    return {kn.name: kn.default for kn in plan.space}


def test_unknown_caches_are_the_fallback():
    assert CacheInfo().l2_bytes == FALLBACK_L2_BYTES == ApplyDefaultSchedule().l2_bytes


def test_dense_default_blocks_for_the_l2_given():
    """128x768x3072: 64 rows of x and a weight panel fit 5/8 of a 2 MiB L2 over all of k; in
    1 MiB no block of 64 rows does, so the block keeps 128 rows over k-blocks of 1024."""
    two = _dense_defaults(128, 768, 3072, CacheInfo(2 * MIB))
    one = _dense_defaults(128, 768, 3072, CacheInfo(1 * MIB))
    assert (two["cache_i"], two["block_k"]) == (8, 0)
    assert (one["cache_i"], one["block_k"]) == (16, 1024)
    assert _dense_defaults(128, 768, 3072, CacheInfo()) == one


def test_conv_default_order_follows_the_l2_given():
    """A 3x3 128->128 weight (576 KiB) stays in a 1 MiB L2 (the threads share it in the old
    order) and outgrows a 512 KiB one (weight-stationary, packed blocks); a larger L2 than
    1 MiB keeps packing a 1.125 MiB weight (YXF_MAX_WEIGHT_BYTES: measured faster packed)."""
    assert _conv_defaults(28, 128, 128, CacheInfo(1 * MIB))["order"] == "yxf"
    assert _conv_defaults(28, 128, 128, CacheInfo(MIB // 2))["order"] == "fyx_pack"
    assert _conv_defaults(14, 128, 256, CacheInfo(2 * MIB))["order"] == "fyx_pack"
    assert _conv_defaults(14, 128, 256, CacheInfo(1 * MIB))["order"] == "fyx_pack"


def test_llvm_options_carry_a_known_l2_only():
    """The host's caches reach apply-default-schedule; a target whose caches are unknown (a
    cross target) leaves the option out, so the pass keeps its fallback."""
    backend, target = resolve_target("llvm -mcpu=znver4")  # AVX-512: 16 lanes, whatever the host has
    known = target.with_(cache_bytes=(48 << 10, 2 * MIB, 32 * MIB))
    assert backend.graph_pass_options(known)["apply-default-schedule"] == {"vector_lanes": 16, "l2_bytes": 2 * MIB}
    unknown = target.with_(cache_bytes=())
    assert "l2_bytes" not in backend.graph_pass_options(unknown)["apply-default-schedule"]
    _, cross = resolve_target("llvm -mtriple=aarch64-linux-gnu")
    assert "l2_bytes" not in backend.graph_pass_options(cross)["apply-default-schedule"]


def test_the_option_prints_and_parses_in_a_pipeline():
    spec = with_pass_options(
        "lower-graph-to-te,apply-default-schedule", {"apply-default-schedule": {"l2_bytes": 3 * MIB}}
    )
    assert spec == "lower-graph-to-te,apply-default-schedule{l2_bytes=3145728}"
    passes = build_pipeline(spec).passes
    assert passes[-1].l2_bytes == 3 * MIB
    assert str(build_pipeline('apply-schedule{config="dense_pack" l2_bytes=2097152}').passes[0].l2_bytes) == "2097152"


def test_tasks_default_to_the_compilers_schedule(rng):
    """A task's default configuration, replayed without the target's options (as a tuning
    candidate is built), schedules the kernel exactly as the compiler's apply-default-schedule
    does with them: the task saw the target's L2."""
    src = "def @main(%x: Tensor[(128, 3072), float32], %w: Tensor[(768, 3072), float32]) { nn.dense(%x, %w) }"
    params = {"w": rng.standard_normal((768, 3072)).astype(np.float32)}
    backend, target = resolve_target("llvm")
    (task,) = [t for t in extract_tasks(parse_relay(src), "llvm", params) if t.template == "dense_pack"]
    options = backend.graph_pass_options(target)
    compiled = parse_mlir(make_context(), task.module_text(), "<task>")
    build_pipeline(with_pass_options("apply-default-schedule,lower-te-to-loop,cleanup-loops", options)).apply(
        make_context(), compiled
    )
    assert str(lower_candidate(task.module_text(), str(task.default), task.lanes)) == str(compiled)
    l2 = options["apply-default-schedule"].get("l2_bytes", FALLBACK_L2_BYTES)
    (f,) = [f for f in parse_mlir(make_context(), task.module_text(), "<task>").ops if is_kernel(f)]
    assert task.space == plan_kernel(f, task.lanes, CacheInfo(l2)).space
