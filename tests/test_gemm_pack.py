"""A run-time weight's packing inside the GEMM kernel: fuse-ops puts the reshapes and transposes
that pack a matmul's second operand, or a dense's weight that is not a constant, into the packed
dense's kernel where it has GEMM_PACK_MIN_ROWS rows and GEMM_PACK_MIN_PANELS weight panels; the
dense_pack template then runs threads over the panels and packs each at the panel loop
(dense_template.pack_weight_at). Checked against numpy on random inputs: sizes no vector or
tile divides (a padded weight, a depth no 16 divides, partial row tiles), one and two threads,
the dense form (whose packing transposes), an epilogue, the template's knobs, and the
thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context
from lathe.errors import LatheError
from lathe.passes.fuse_ops import GEMM_PACK_MIN_PANELS, GEMM_PACK_MIN_ROWS
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline, pipeline_for
from lathe.textual_ir.parser import parse_relay


def _source(m: int, k: int, n: int, form: str, relu: bool = False) -> str:
    if form == "matmul":
        body, b = "nn.matmul(%a, %b)", f"({k}, {n})"
    else:
        body, b = "nn.dense(%a, %b)", f"({n}, {k})"
    body = f"nn.relu({body})" if relu else body
    return f"def @main(%a: Tensor[({m}, {k}), float32], %b: Tensor[{b}, float32]) {{ {body} }}"


def _inputs(m: int, k: int, n: int, form: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n) if form == "matmul" else (n, k)).astype(np.float32)
    ref = a.astype(np.float64) @ (b if form == "matmul" else b.T).astype(np.float64)
    return a, b, ref


def _kernels(module) -> dict[str, list[str]]:
    """Each kernel after the -O3 graph pipeline, with the graph ops fused into it."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel

    m = module.clone()
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    return {
        f.sym_name.data: [o.name for o in f.body.block.ops if o.name.startswith("graph.")]
        for f in m.ops
        if isinstance(f, func.FuncOp) and is_kernel(f)
    }


def _joined(module) -> bool:
    """Whether the packed dense's kernel holds the packing (a padded weight's pad, which is
    not a reshape or transpose, and the cut after it stay kernels of their own)."""
    (gemm,) = [ops for ops in _kernels(module).values() if "graph.nn.contrib_dense_pack" in ops]
    return gemm[:2] == ["graph.reshape", "graph.transpose"]


def _with_config(module, config: str):
    from xdsl.dialects import func
    from xdsl.dialects.builtin import StringAttr

    from lathe.dialects.functions import is_kernel
    from lathe.lowering.schedule_builder import CONFIG_ATTR

    m = module.clone()
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    for f in m.ops:
        if isinstance(f, func.FuncOp) and is_kernel(f) and "dense_pack" in f.sym_name.data:
            f.attributes[CONFIG_ATTR] = StringAttr(config)
    return m


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "m, k, n, form",
    [
        (128, 256, 256, "matmul"),
        (100, 70, 200, "matmul"),  # n padded to 208 (13 panels of 16), depth 70, partial row tiles
        (67, 33, 512, "matmul"),
        (256, 512, 384, "matmul"),
        (64, 128, 512, "dense"),
        (129, 96, 272, "dense"),
    ],
)
def test_the_packing_in_the_kernel_agrees(m, k, n, form, threads):
    module = parse_relay(_source(m, k, n, form))
    assert _joined(module)
    a, b, ref = _inputs(m, k, n, form)
    got = lathe.compile(module, num_threads=threads).run(a=a, b=b)
    assert max_rel_err(got, ref) < 1e-5
    again = _inputs(m, k, n, form, seed=1)  # fresh operands: nothing kept from the first run
    assert max_rel_err(lathe.compile(module, num_threads=threads).run(a=again[0], b=again[1]), again[2]) < 1e-5


def test_an_epilogue_and_a_weight_read_elsewhere():
    """A relu after the GEMM joins the same kernel; a weight the glue also returns (read
    outside the packing) keeps its packing in the kernel, since only the packing ops move."""
    src = _source(128, 64, 256, "matmul", relu=True)
    module = parse_relay(src)
    assert _joined(module)
    a, b, ref = _inputs(128, 64, 256, "matmul")
    assert max_rel_err(lathe.compile(module, num_threads=2).run(a=a, b=b), np.maximum(ref, 0)) < 1e-5
    src = (
        "def @main(%a: Tensor[(128, 64), float32], %b: Tensor[(64, 256), float32]) { (nn.matmul(%a, %b), add(%b, 1f)) }"
    )
    got = lathe.compile(parse_relay(src), num_threads=2).run(a=a, b=b)
    assert max_rel_err(got[0], ref) < 1e-5
    np.testing.assert_array_equal(got[1], b + 1)


@pytest.mark.parametrize(
    "m, n",
    [(GEMM_PACK_MIN_ROWS - 1, 512), (GEMM_PACK_MIN_ROWS, 512), (128, 32 * GEMM_PACK_MIN_PANELS - 32), (128, 256)],
)
def test_the_thresholds(m, n):
    """Below GEMM_PACK_MIN_ROWS rows or GEMM_PACK_MIN_PANELS panels (of 32 columns here) the
    packing stays a kernel of its own; both forms agree with numpy."""
    module = parse_relay(_source(m, 128, n, "matmul"))
    joined = m >= GEMM_PACK_MIN_ROWS and n // 32 >= GEMM_PACK_MIN_PANELS
    assert _joined(module) == joined
    if not joined:
        assert len(_kernels(module)) == 2
    a, b, ref = _inputs(m, 128, n, "matmul")
    assert max_rel_err(lathe.compile(module, num_threads=2).run(a=a, b=b), ref) < 1e-5


def test_a_bound_weight_is_packed_at_compile_time():
    """A weight bound as a param is a constant by the time fuse-ops runs: nothing to join, and
    the GEMM reads the packed constant as before (threads over fused blocks, ij order)."""
    module = parse_relay(_source(128, 64, 256, "dense"))
    a, b, ref = _inputs(128, 64, 256, "dense")
    cm = lathe.compile(module, params={"b": b}, num_threads=2)
    assert max_rel_err(cm.run(a=a), ref) < 1e-5
    assert "fused" in str(cm.loop_module) and "reshape_transpose" not in str(cm.loop_module)


def test_the_option_keeps_the_pack_kernel():
    """fuse-ops{gemm_pack=false} (what Lathe did before) keeps the packing a kernel of its own."""
    module = parse_relay(_source(128, 256, 256, "matmul"))
    pipeline = pipeline_for(3).replace(",fuse-ops,", ",fuse-ops{gemm_pack=false},")
    assert pipeline != pipeline_for(3)
    cm = lathe.compile(module, num_threads=2, pipeline=pipeline)
    assert "@fused_reshape_transpose_0" in str(cm.loop_module)
    a, b, ref = _inputs(128, 256, 256, "matmul")
    assert max_rel_err(cm.run(a=a, b=b), ref) < 1e-5


@pytest.mark.parametrize(
    "config",
    [
        "dense_pack:tile_i=5,tile_j=16",
        "dense_pack:cache_i=2,cache_j=2,unroll_k=4",
        "dense_pack:tile_k=64,unroll_k=2",
        "dense_pack:tile_i=10,cache_j=4",
    ],
)
def test_the_knobs_replay(config):
    """The template's knobs with the packing in the kernel (the panel loop outermost, the
    pack at it whatever the tile and block sizes) agree with numpy."""
    module = parse_relay(_source(130, 256, 512, "matmul"))
    a, b, ref = _inputs(130, 256, 512, "matmul")
    got = lathe.compile(_with_config(module, config), num_threads=2).run(a=a, b=b)
    assert max_rel_err(got, ref) < 1e-5


@pytest.mark.parametrize("knob", ["order=ij", "parallel=fused", "block_k=64", "prefetch=on"])
def test_the_structure_is_fixed(knob):
    """With the packing in the kernel the panel loop must stay the outermost, parallel one (any
    other order would pack every panel once per row block, into a buffer of the whole weight),
    and there is no k-block loop and no packed argument to prefetch: other values are refused."""
    module = parse_relay(_source(128, 256, 256, "matmul"))
    with pytest.raises(LatheError, match=knob.split("=")[0]):
        lathe.compile(_with_config(module, f"dense_pack:{knob}"), num_threads=2)


def test_deep_weights_keep_their_pack_kernel(monkeypatch):
    """Past GEMM_PACK_MAX_DEPTH a register tile's rows of data no longer stay in L1 across a
    task's panels: such a weight keeps its pack kernel. Where the packing joins, cache_j stops
    where a task's panels (a buffer on its thread's stack) would pass PACKED_TASK_BYTES."""
    from lathe.lowering.dense_template import PACKED_TASK_BYTES
    from lathe.passes import fuse_ops

    deep = 2 * fuse_ops.GEMM_PACK_MAX_DEPTH
    assert not _joined(parse_relay(_source(64, deep, 256, "matmul")))
    assert _joined(parse_relay(_source(64, fuse_ops.GEMM_PACK_MAX_DEPTH, 256, "matmul")))
    depth = 8192
    monkeypatch.setattr(fuse_ops, "GEMM_PACK_MAX_DEPTH", depth)
    module = parse_relay(_source(64, depth, 256, "matmul"))
    assert _joined(module)
    assert 4 * depth * 2 * 64 <= PACKED_TASK_BYTES < 4 * depth * 4 * 64
    lathe.lower(_with_config(module, "dense_pack:cache_j=2"))
    with pytest.raises(LatheError, match="cache_j"):
        lathe.lower(_with_config(module, "dense_pack:cache_j=4"))
