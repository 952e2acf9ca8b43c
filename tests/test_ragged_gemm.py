"""GEMMs whose row count no register tile divides (BERT at sequence length 17), and the
attention row (batch_matmul + softmax): every case compiles through the default pipeline and
is compared with the interpreter on fresh random inputs, at sizes 1, 5, 17, 63 and 129."""

from __future__ import annotations

import subprocess
import sys

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


# Runs in a child process: the operand `a` ends at a page that cannot be read, so a kernel
# that reads past it crashes the child, not the test session.
_GUARDED_RUN = """
import ctypes, mmap, sys
import numpy as np
import lathe
from lathe.pipelines import pipeline_for
from lathe.textual_ir.parser import parse_relay

config, seed = sys.argv[1], int(sys.argv[2])
src = ("def @main(%a: Tensor[(1, 384, 384), float32], %b: Tensor[(1, 96, 384), float32]) {"
       " nn.batch_matmul(%a, %b) }")
rng = np.random.default_rng(seed)
page = mmap.PAGESIZE
nbytes = 384 * 384 * 4
size = -(-nbytes // page) * page
mm = mmap.mmap(-1, size + page)
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
assert libc.mprotect(base + size, page, 0) == 0  # PROT_NONE
a = np.frombuffer(mm, np.float32, count=384 * 384, offset=size - nbytes).reshape(1, 384, 384)
a[...] = rng.standard_normal(a.shape)
b = rng.standard_normal((1, 96, 384)).astype(np.float32)
module = parse_relay(src)
pipe = pipeline_for(3, module).replace(
    "apply-default-schedule", 'apply-schedule{config="' + config + '"},apply-default-schedule')
got = lathe.compile(module, num_threads=2, pipeline=pipe).run(a=a, b=b)
ref = lathe.interpret(module, a=np.array(a), b=b)
err = float(np.abs(got - ref).max() / np.abs(ref).max())
print("max rel err", err)
sys.exit(0 if err < 1e-5 else 1)
"""


@pytest.mark.parametrize(
    "config",
    [
        "dense_pack:tile_i=16,tile_j=16,cache_i=16",  # 24 row tiles: the second 16-tile block is partial
        "dense_pack:tile_i=8,tile_j=32,cache_i=16,cache_j=2",  # 3 column panels: a partial 2-panel block
        "dense_pack:tile_i=16,cache_i=16,order=ji,parallel=outer",
    ],
)
def test_cache_blocks_that_do_not_divide_the_tiles_stay_in_bounds(config, rng):
    """A configuration whose cache block does not divide the register tiles (the tuner may
    pick one) reads nothing past its operands and computes the same function; the tile loop's
    split, not the axis's, carried the overhang, so the tiles past the end went unguarded and
    read past `a` (a crash where the next page is unmapped)."""
    seed = int(rng.integers(1 << 31))
    child = subprocess.run(
        [sys.executable, "-c", _GUARDED_RUN, config, str(seed)], capture_output=True, text=True, timeout=600
    )
    assert child.returncode == 0, (child.returncode, child.stdout[-2000:], child.stderr[-2000:])


@pytest.mark.parametrize("shape", [(12, 17, 17), (3, 129), (2, 5, 1), (0, 5), (2, 0), (0, 3, 7)])
def test_softmax_rows_of_any_length_match_the_interpreter(shape, rng):
    """The row of exps a softmax row kernel keeps, at row lengths no vector divides, one
    element long, and in tensors with no elements."""
    dims = ", ".join(map(str, shape))
    module = parse_relay(f"def @main(%x: Tensor[({dims}), float32]) {{ nn.softmax(%x, axis=-1) }}")
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    got = lathe.compile(module, num_threads=2).run(x=x)
    ref = lathe.interpret(module, x=x)
    assert got.shape == ref.shape
    if x.size:
        assert max_rel_err(got, ref) < 1e-5
