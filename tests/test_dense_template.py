"""The dense_pack template: its cache-aware default configuration (the model in
cache_block), the k-block loop that a cache block's register tiles share (block_k), and the
explicit vector code its micro-kernel gets. Results are checked against the numpy
interpreter; nothing here times anything (benchmarks/kernels.py does)."""

import numpy as np
import pytest
from xdsl.dialects import scf

import lathe
from lathe.api import parse_source
from lathe.backends.llvm import vectorize as vz
from lathe.dialects import make_context
from lathe.lowering.dense_template import (
    DENSE_PACK_BLOCK_ROWS,
    DENSE_PACK_L2_SHARE,
    DENSE_PACK_MIN_ACCUMULATORS,
    DENSE_PACK_MIN_BLOCKS,
    DENSE_PACK_TILE_ROWS,
    cache_block,
    default_tile_rows,
    register_cols,
    register_rows,
)
from lathe.lowering.schedule_builder import MAX_ACCUMULATOR_SHARE
from lathe.lowering.schedules import Config, plan_kernel
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline
from lathe.tuner.search import full
from lathe.tuner.tasks import kernels_at_te

DENSE = """def @main(%x: Tensor[({rows}, {depth}), float32], %w: Tensor[({cols}, {depth}), float32],
  %b: Tensor[({cols}), float32]) {{ nn.relu(nn.bias_add(nn.dense(%x, %w), %b)) }}"""
BATCH_MATMUL = """def @main(%a: Tensor[(3, {rows}, {depth}), float32], %b: Tensor[(3, {cols}, {depth}), float32]) {{
  nn.batch_matmul(%a, %b) }}"""
L2 = 2 << 20


def _dense(rng, rows, cols, depth):
    module = parse_source(DENSE.format(rows=rows, cols=cols, depth=depth), "dense.lathe")
    params = {
        "w": rng.standard_normal((cols, depth)).astype(np.float32),
        "b": rng.standard_normal(cols).astype(np.float32),
    }
    return module, params


def _dense_kernel_space(module, params):
    from lathe.passes.fold_constant import bind_params

    m = bind_params(module.clone(), params, "main")
    build_pipeline(GRAPH_PIPELINES[3] + ",lower-graph-to-te").apply(make_context(), m)
    (f,) = [f for name, f in kernels_at_te(m).items() if "dense_pack" in name]
    return plan_kernel(f, 16)


def _run(module, params, config, inputs):
    pipe = (
        GRAPH_PIPELINES[3]
        + f',lower-graph-to-te,apply-schedule{{config="{config}"}},apply-default-schedule,lower-te-to-loop,cleanup-loops'
    )
    return lathe.compile(module, params=params, pipeline=pipe).run(**inputs)


@pytest.mark.parametrize(
    "rows, cols, depth, configs",
    [
        (64, 64, 512, ["block_k=128", "cache_i=4,block_k=64,unroll_k=4", "cache_i=2,cache_j=2,block_k=256,order=ji"]),
        (13, 48, 256, ["tile_i=1,cache_i=2,block_k=64", "cache_i=2,block_k=128,parallel=outer"]),
        (40, 64, 1024, ["tile_i=8,cache_i=4,cache_j=2,tile_j=16,block_k=512,unroll_k=2"]),
    ],
)
def test_block_k_configs_compute_the_same_function(rows, cols, depth, configs, rng):
    """A k-block loop shared by the register tiles of a cache block: the block's partial sums
    carried between k-blocks, rows the register tile does not divide guarded, an epilogue
    applied as the block is written."""
    module, params = _dense(rng, rows, cols, depth)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    ref = lathe.interpret(module, x=x, **params)
    plan = _dense_kernel_space(module, params)
    for c in configs:
        config = full("dense_pack", plan.space, Config.parse(f"dense_pack:{c}"))
        got = _run(module, params, config, {"x": x})
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max(), err_msg=str(config))


def test_block_k_on_a_batch_matmul(rng):
    module = parse_source(BATCH_MATMUL.format(rows=24, cols=32, depth=256), "bmm.lathe")
    a = rng.standard_normal((3, 24, 256)).astype(np.float32)
    b = rng.standard_normal((3, 32, 256)).astype(np.float32)
    ref = lathe.interpret(module, a=a, b=b)
    got = _run(module, {}, "dense_pack:tile_i=8,cache_i=2,block_k=64,unroll_k=2", {"a": a, "b": b})
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_the_default_block_fits_the_l2_share():
    """cache_block: a block's rows of x and one weight panel fit the L2 share over the whole
    depth, or over one k-block where the depth is too deep for enough rows; blocks are left
    for the threads; a problem that fits in L2 altogether is not blocked."""
    for rows, cols, depth in [(1024, 1024, 1024), (2048, 2048, 2048), (128, 3072, 768), (128, 768, 3072)]:
        ci, bk = cache_block(1, rows, cols, depth, 8, 32, 4, L2)
        block_rows = ci * 8
        assert block_rows <= DENSE_PACK_BLOCK_ROWS and rows // block_rows * cols // 32 >= DENSE_PACK_MIN_BLOCKS
        assert 4 * (bk or depth) * (block_rows + 32) <= L2 * DENSE_PACK_L2_SHARE, (rows, cols, depth)
        assert block_rows >= 64, (rows, cols, depth, ci, bk)
    assert cache_block(1, 1024, 1024, 1024, 8, 32, 4, L2) == (16, 0)  # 128 rows x 4 KiB + a 128 KiB panel
    assert cache_block(1, 128, 768, 3072, 8, 32, 4, L2) == (8, 0)  # 64 rows x 12 KiB + a 384 KiB panel
    ci, bk = cache_block(1, 1024, 1024, 8192, 8, 32, 4, L2)  # 32 KiB per row: split k, keep 128 rows
    assert (ci, 0 < bk < 8192) == (16, True)
    assert cache_block(1, 32, 64, 64, 8, 32, 4, L2) == (1, 0)  # 8 KiB of weights: 8 blocks of one tile
    assert cache_block(1, 1, 1000, 1280, 1, 16, 4, L2) == (1, 0)  # a GEMV has one row to block
    assert cache_block(12, 128, 128, 64, 8, 32, 4, L2)[0] == 16  # batches count as blocks


def test_the_default_configuration_replays_and_is_explicit_vector_code(rng):
    """The default of a big dense is cache-blocked; spelled out, it replays to the same IR; and
    every vectorized loop of the kernel becomes explicit <W x T> code: the packed weight's
    index (tile origin + lane) // 32 is uniform in a vector because the origin, computed
    outside the loop, is a multiple of 32."""
    from lathe.passes.fold_constant import bind_params

    module, params = _dense(rng, 256, 512, 1024)
    plan = _dense_kernel_space(module, params)
    default = full("dense_pack", plan.space, Config("dense_pack"))
    values = dict(default.values)
    assert values["cache_i"] > 1 and values["tile_i"] == 8
    m = bind_params(module.clone(), params, "main")
    build_pipeline(GRAPH_PIPELINES[3] + ",lower-graph-to-te").apply(make_context(), m)
    blocked_k = Config("dense_pack", tuple((k, 256 if k == "block_k" else v) for k, v in default.values))
    for config in (default, blocked_k):
        loops = m.clone()
        build_pipeline(f'apply-schedule{{config="{config}"}},lower-te-to-loop,cleanup-loops').apply(
            make_context(), loops
        )
        vector_loops = [
            op
            for op in loops.walk()
            if isinstance(op, scf.ForOp) and "vectorize" in str(op.attributes.get("loop.annotation", ""))
        ]
        assert vector_loops and all(vz.plan(op, 16) is not None for op in vector_loops), config


def test_the_register_tile_is_widened_to_enough_accumulators():
    """register_cols: 8-row tiles keep two vectors (16 accumulators), 5- and 6-row tiles (100,
    50 and 17 rows) take four and three, a wider tile never holds more than the cap, and a
    width the columns do not allow is never chosen."""
    widths = [16, 32, 48, 64]
    assert register_cols(8, widths, 32, 16) == 32
    assert register_cols(6, widths, 32, 16) == 48
    assert register_cols(5, widths, 32, 16) == 64
    assert register_cols(5, [16, 32], 32, 16) == 32  # the widest the columns allow
    for rows in range(1, 17):
        cols = register_cols(rows, widths, 16, 16)
        assert cols in widths
        assert rows * cols // 16 <= max(MAX_ACCUMULATOR_SHARE * 32, rows)
        if DENSE_PACK_MIN_ACCUMULATORS * 32 <= rows * 4 <= MAX_ACCUMULATOR_SHARE * 32:
            assert rows * cols // 16 >= DENSE_PACK_MIN_ACCUMULATORS * 32


def test_avx2_register_tiles_fit_sixteen_registers():
    """With 8 lanes (16 registers) a tile holds at most 12 accumulators, takes at most 6 rows,
    and its width divides or is a multiple of the pack width (24 over 16 straddles blocks)."""
    widths = [8, 16, 24, 32]
    assert default_tile_rows(8) == 6 and default_tile_rows(16) == DENSE_PACK_TILE_ROWS
    assert register_rows(128, default_tile_rows(8)) == 4 and register_rows(1024, default_tile_rows(8)) == 4
    assert register_cols(4, widths, 16, 8) == 16  # 4x3 would straddle the 16-column blocks
    assert register_cols(4, widths, 8, 8) == 24  # over blocks of 8, 4x3 = 12 accumulators
    assert register_cols(6, widths, 16, 8) == 16  # 6x2 = 12
    assert register_cols(8, widths, 16, 8) == 8  # 8x2 = 16 would spill


def test_rows_that_fit_one_block_are_one_block():
    """20 register tiles of 5 rows (100 rows, a GRU's input projection over 100 steps) are one
    cache block that reads each weight panel once, not blocks of 4 tiles with a k-block loop;
    25 tiles of 8 rows (200 rows) get a divisor of their count, not one tile per block."""
    assert cache_block(1, 100, 768, 512, 5, 64, 4, L2) == (20, 0)
    assert cache_block(1, 50, 768, 512, 5, 64, 4, L2) == (10, 0)
    assert cache_block(1, 200, 768, 512, 8, 32, 4, L2)[0] == 5


@pytest.mark.parametrize("rows", [1, 5, 17, 50, 100, 129])
@pytest.mark.parametrize("depth", [80, 512])
def test_the_default_computes_the_dense_at_row_counts_like_100(rows, depth, rng):
    """The default configuration (wider register tiles, one block of all rows where they fit)
    against the interpreter, with a bias and relu epilogue, at row counts whose tiles are
    partial (17, 129), a GEMV (1), and the GRU's 100 and 50."""
    module, params = _dense(rng, rows, 192, depth)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    ref = lathe.interpret(module, x=x, **params)
    got = lathe.compile(module, params=params).run(x=x)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
