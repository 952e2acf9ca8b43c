"""GEMV shapes (one to GEMV_ROWS rows of x) through dense_pack: every depth and width a model
has, down to one, with the epilogues fused after them, against the numpy interpreter; the
default's register tile for them (several FMA chains per thread task, no k-block loop); and
the tuner's configurations of a one-row dense. Nothing here times anything
(docs/performance.md, "GEMV", has the measurements)."""

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.dialects import make_context
from lathe.lowering.dense_template import GEMV_MIN_COL_TILES, GEMV_ROWS, GEMV_TILE_VECTORS, gemv_tile_cols
from lathe.lowering.schedules import Config, plan_kernel
from lathe.passes.fold_constant import bind_params
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline
from lathe.tuner.search import full
from lathe.tuner.tasks import kernels_at_te

EPILOGUES = {
    "none": "{dense}",
    "bias": "nn.bias_add({dense}, %b)",
    "bias+relu": "nn.relu(nn.bias_add({dense}, %b))",
    "bias+tanh": "tanh(nn.bias_add({dense}, %b))",
    "bias+sigmoid+add": "add(sigmoid(nn.bias_add({dense}, %b)), %b)",
}
GEMV = """def @main(%x: Tensor[({rows}, {depth}), float32], %w: Tensor[({cols}, {depth}), float32],
  %b: Tensor[({cols}), float32]) {{ {body} }}"""


def _gemv(rng, rows, depth, cols, epilogue):
    body = EPILOGUES[epilogue].format(dense="nn.dense(%x, %w)")
    module = parse_source(GEMV.format(rows=rows, depth=depth, cols=cols, body=body), "gemv.lathe")
    params = {
        "w": rng.standard_normal((cols, depth)).astype(np.float32),
        "b": rng.standard_normal(cols).astype(np.float32),
    }
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    return module, params, x


def _dense(rng, rows, cols, depth):
    module, params, _ = _gemv(rng, rows, depth, cols, "bias+relu")
    return module, params


def _plan(module, params):
    m = bind_params(module.clone(), params, "main")
    build_pipeline(GRAPH_PIPELINES[3] + ",lower-graph-to-te").apply(make_context(), m)
    (f,) = [f for name, f in kernels_at_te(m).items() if "dense_pack" in name or "batch_matmul" in name]
    return plan_kernel(f, 16)


def _defaults(module, params):
    plan = _plan(module, params)
    return dict(full("dense_pack", plan.space, Config("dense_pack")).values)


def _run(module, params, config, inputs):
    plan = _plan(module, params)
    config = full("dense_pack", plan.space, Config.parse(f"dense_pack:{config}"))
    pipe = (
        GRAPH_PIPELINES[3]
        + f',lower-graph-to-te,apply-schedule{{config="{config}"}},apply-default-schedule,lower-te-to-loop,cleanup-loops'
    )
    return lathe.compile(module, params=params, pipeline=pipe).run(**inputs)


def _check(got, ref, depth):
    """Within float32 rounding of a depth-long sum of unit-normal products (its error grows
    with the depth whatever the output's scale: tanh's output near 0 keeps it whole)."""
    atol = max(1e-5 * float(np.abs(ref).max()), 1e-6 * depth)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("depth", [1, 7, 64, 1000])
@pytest.mark.parametrize("cols", [1, 7, 64, 1000])
def test_one_row_of_every_depth_and_width(depth, cols, rng):
    """(1, K) . (N, K) + bias, relu: K and N from one (no packing: K < 4, N below a vector)
    through widths padded to a vector (7, 1000) to packed ones (64)."""
    module, params, x = _gemv(rng, 1, depth, cols, "bias+relu")
    ref = lathe.interpret(module, x=x, **params)
    _check(lathe.compile(module, params=params).run(x=x), ref, depth)


@pytest.mark.parametrize(
    "depth, cols", [(4096, 64), (64, 4096), (25088 // 16, 1000), (4096, 7)]
)  # VGG's FC6 depth / 16 with FC8's width: the real ones are memory-bound, not different code
@pytest.mark.parametrize("epilogue", list(EPILOGUES))
def test_one_row_deep_and_wide_with_epilogues(depth, cols, epilogue, rng):
    module, params, x = _gemv(rng, 1, depth, cols, epilogue)
    ref = lathe.interpret(module, x=x, **params)
    _check(lathe.compile(module, params=params).run(x=x), ref, depth)


@pytest.mark.parametrize("rows", range(2, GEMV_ROWS + 1))
def test_a_few_rows_take_the_gemv_tile(rows, rng):
    depth = 256
    module, params, x = _gemv(rng, rows, depth, 768, "bias+tanh")
    defaults = _defaults(module, params)
    assert (defaults["tile_i"], defaults["tile_j"]) == (rows, 64)
    ref = lathe.interpret(module, x=x, **params)
    _check(lathe.compile(module, params=params).run(x=x), ref, depth)


def test_the_gemv_default_has_several_chains_and_no_k_blocks(rng):
    """A one-row tile of one packed panel is one FMA chain over all of k: the default takes
    the widest tile of up to GEMV_TILE_VECTORS vectors that leaves GEMV_MIN_COL_TILES column
    tiles, and no k-block loop (it would have no other row tile to share a panel with)."""
    assert gemv_tile_cols(1, 768, [16, 32, 48, 64], 32, 16) == 64
    assert gemv_tile_cols(1, 1008, [16, 48], 16, 16) == 48  # 1000 classes padded to 1008
    assert gemv_tile_cols(1, 2608, [16], 16, 16) == 16  # the LSTM's 4 x 650 gates, padded
    assert gemv_tile_cols(1, 128, [16, 32, 64], 32, 16) == 32  # 64 would leave 2 column tiles
    assert gemv_tile_cols(GEMV_ROWS + 1, 768, [16, 32, 48, 64], 32, 16) == 32  # dense_pack's own tile
    assert GEMV_TILE_VECTORS * GEMV_ROWS <= 16 and GEMV_MIN_COL_TILES >= 2
    # deep enough that the old default (a GEMM's cache model) split k into blocks
    defaults = _defaults(*_dense(rng, 1, 2048, 4096))
    assert (defaults["tile_i"], defaults["tile_j"], defaults["block_k"]) == (1, 64, 0)
    assert _defaults(*_dense(rng, 64, 2048, 4096))["tile_j"] == 32


@pytest.mark.parametrize(
    "config",
    [
        "tile_j=16",
        "tile_j=48",
        "tile_j=16,cache_j=4",
        "tile_j=48,unroll_k=4,parallel=outer",
        "tile_j=16,block_k=512",
        "tile_j=48,tile_k=256,order=ji",
    ],
)
def test_one_row_tuner_configurations_compute_the_same_function(config, rng):
    module, params = _dense(rng, 1, 1008, 2048)
    x = rng.standard_normal((1, 2048)).astype(np.float32)
    ref = lathe.interpret(module, x=x, **params)
    _check(_run(module, params, config, {"x": x}), ref, 2048)


def test_a_batch_matmul_of_one_row(rng):
    """batch_matmul with M = 1 (a decoder step's attention scores): each batch a GEMV."""
    module = parse_source(
        "def @main(%a: Tensor[(3, 1, 200), float32], %b: Tensor[(3, 96, 200), float32]) { nn.batch_matmul(%a, %b) }",
        "bmm.lathe",
    )
    a = rng.standard_normal((3, 1, 200)).astype(np.float32)
    b = rng.standard_normal((3, 96, 200)).astype(np.float32)
    ref = lathe.interpret(module, a=a, b=b)
    _check(lathe.compile(module).run(a=a, b=b), ref, 200)
    got = _run(module, {}, "tile_i=1,tile_j=32,unroll_k=2", {"a": a, "b": b})
    _check(got, ref, 200)
