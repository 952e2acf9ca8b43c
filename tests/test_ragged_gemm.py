"""GEMMs whose row count no register tile divides (BERT at sequence length 17), and the
attention row (batch_matmul + softmax): every case compiles through the default pipeline and
is compared with the interpreter on fresh random inputs, at sizes 1, 5, 17, 63 and 129."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context
from lathe.lowering.dense_template import DENSE_PACK_TILE_ROWS, register_rows
from lathe.lowering.schedules import plan_kernel
from lathe.pipelines import build_pipeline, pipeline_for
from lathe.textual_ir.parser import parse_relay
from lathe.tuner.tasks import kernels_at_te

ODD = (1, 5, 17, 63, 129)


def test_register_rows_divide_where_a_large_divisor_exists_else_balance():
    for rows in range(1, 400):
        t = register_rows(rows)
        assert 1 <= t <= DENSE_PACK_TILE_ROWS
        tiles = -(-rows // t)
        if rows % t:  # a partial tile only where no divisor of half the tile or more exists
            assert all(rows % d for d in range(DENSE_PACK_TILE_ROWS // 2, DENSE_PACK_TILE_ROWS + 1))
            assert tiles == -(-rows // DENSE_PACK_TILE_ROWS)  # the fewest tiles
            assert tiles * t - rows < tiles  # balanced: the last tile is short by less than one row per tile
    assert register_rows(17) == 6  # 6 + 6 + 5, where the largest divisor gave 17 one-row tiles
    assert register_rows(128) == 8 and register_rows(77) == 7 and register_rows(5) == 5


def _dense_src(m: int, k: int, n: int) -> str:
    return (
        f"def @main(%x: Tensor[({m}, {k}), float32], %w: Tensor[({n}, {k}), float32], %b: Tensor[({n}), float32]) {{"
        " nn.relu(nn.bias_add(nn.dense(%x, %w), %b)) }"
    )


@pytest.mark.parametrize("m", ODD)
@pytest.mark.parametrize("k, n", [(64, 48), (17, 63), (129, 5)])
def test_dense_with_ragged_rows_matches_the_interpreter(m, k, n, rng):
    module = parse_relay(_dense_src(m, k, n))
    params = {
        "w": (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32),
        "b": rng.standard_normal(n).astype(np.float32),
    }
    x = rng.standard_normal((m, k)).astype(np.float32)
    got = lathe.compile(module, params=params, num_threads=2).run(x=x)
    assert max_rel_err(got, lathe.interpret(module, x=x, **params)) < 1e-5


@pytest.mark.parametrize("m", ODD)
@pytest.mark.parametrize("k, n", [(64, 32), (5, 17), (63, 129)])
def test_batch_matmul_with_ragged_shapes_matches_the_interpreter(m, k, n, rng):
    src = (
        f"def @main(%a: Tensor[(3, {m}, {k}), float32], %b: Tensor[(3, {n}, {k}), float32]) {{"
        " nn.batch_matmul(%a, %b) }"
    )
    module = parse_relay(src)
    a = rng.standard_normal((3, m, k)).astype(np.float32)
    b = rng.standard_normal((3, n, k)).astype(np.float32)
    got = lathe.compile(module, num_threads=2).run(a=a, b=b)
    assert max_rel_err(got, lathe.interpret(module, a=a, b=b)) < 1e-5


def test_seventeen_rows_take_one_block_of_three_register_tiles():
    """BERT's FFN at seq 17: tiles of 6, 6 and 5 rows (the last guarded), one cache block
    holding all three, so each weight panel is read once for all the rows."""
    m = parse_relay(_dense_src(17, 768, 3072))
    build_pipeline(pipeline_for(3, m).split(",apply-default-schedule")[0]).apply(make_context(), m)
    (f,) = [f for name, f in kernels_at_te(m).items() if "dense_pack" in name]
    knobs = {k.name: k.default for k in plan_kernel(f, 16).space}
    assert (knobs["tile_i"], knobs["cache_i"], knobs["block_k"]) == (6, 3, 0)
