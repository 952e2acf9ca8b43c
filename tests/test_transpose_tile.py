"""Transposes as in-register tile transposes (backends/llvm/tile_transpose.py): the shuffle
network is a transpose for every tile shape it is used for, the index algebra proves a fused
axis linear and refuses what is not, the schedule merges each side's axes, and every shape
(odd sizes, sizes below a vector, 3-D/4-D permutations, batch dimensions, a fused reshape)
computes numpy's answer through lathe.compile + run on fresh random inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lathe
from lathe.backends.llvm.codegen import module_to_llvm_ir
from lathe.backends.llvm.tile_transpose import IndexAlgebra, network
from lathe.dialects import make_context, te
from lathe.lowering.schedules import transposed_groups
from lathe.passes.index_arith import Linear
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay

TO_LOOPS = "fuse-ops,lower-graph-to-te,apply-default-schedule{vector_lanes=%d},lower-te-to-loop,cleanup-loops"


def simulate(vs: int, w: int) -> list[list[tuple[int, int]]]:
    """The (row, column) of the tile each lane of each output column's vector ends up
    holding: what the network is checked by."""
    m = w // vs
    vecs = [[(j + vs * (p // vs), p % vs) for p in range(w)] for j in range(vs)]
    steps, out = network(vs, w)
    for _, a, b, mask in steps:
        both = vecs[a] + vecs[b]
        vecs.append([both[i] for i in mask])
    assert m >= 1
    return [vecs[out[s]] for s in range(vs)]


def _src(shape, body: str) -> str:
    return f"def @main(%x: Tensor[({', '.join(map(str, shape))}), float32]) {{ {body} }}"


def _llvm(src: str, lanes: int = 16) -> str:
    m = parse_relay(src)
    build_pipeline(TO_LOOPS % lanes).apply(make_context(), m)
    return module_to_llvm_ir(m, vector_bits=32 * lanes)


@pytest.mark.parametrize("vs, w", [(4, 4), (4, 8), (4, 16), (8, 8), (8, 16), (16, 16)])
def test_the_network_transposes_every_tile_shape(vs, w):
    """Vector s ends up holding column s of the w x vs tile, rows in order."""
    assert simulate(vs, w) == [[(c, s) for c in range(w)] for s in range(vs)]


def _iv(name: str):
    from xdsl.dialects.builtin import IndexType
    from xdsl.ir import Block

    return Block(arg_types=[IndexType()]).args[0]


def test_the_algebra_cancels_a_fused_axis_and_refuses_a_quotient_left_over():
    """h * 56 + w with h = f // 56, w = f % 56 is f; f // 56 alone is not linear in the tile."""
    si, outer = _iv("si"), _iv("outer")
    alg = IndexAlgebra({si: 16})
    f = Linear({outer: 16, si: 1})  # the fused index: outer * 16 + si
    h, w = alg.div(f, 56), f.plus(alg.div(f, 56).scaled(-56))
    flat = h.scaled(56).plus(w)
    assert alg.strides(flat, si, si) is not None and flat.terms == {outer: 16, si: 1}
    assert alg.strides(h, si, _iv("ci")) is None
    assert alg.div(Linear({outer: 64, si: 1}), 16).terms == {outer: 4}  # si < 16 never reaches the next row


CASES = [
    ((1, 64, 56, 56), "transpose(%x, axes=[0, 2, 3, 1])"),  # the conv row's input: [h, w] x [c], 16 x 16
    ((1, 56, 56, 64), "transpose(%x, axes=[0, 3, 1, 2])"),  # and its output: [c] x [h, w]
    ((64, 3136), "transpose(%x, axes=[1, 0])"),
    ((24, 3136), "transpose(%x, axes=[1, 0])"),  # 24 output channels: 8 x 8 tiles
    ((2, 40, 32), "transpose(%x, axes=[0, 2, 1])"),  # a batch dimension; 8 x 8 tiles
    ((2, 48, 40), "transpose(%x, axes=[0, 2, 1])"),  # 8 x 16 tiles
    ((2, 16, 20), "transpose(%x, axes=[0, 2, 1])"),  # 4 x 16 tiles: four rows to a vector before the network
    ((12, 128, 64), "transpose(%x, axes=[0, 2, 1])"),
    ((1, 12, 20, 20), "transpose(%x, axes=[0, 2, 3, 1])"),  # 12 channels: 4 x 4 tiles
    ((3, 4, 5, 16), "transpose(%x, axes=[2, 0, 3, 1])"),
    ((2, 3, 16, 32), "transpose(%x, axes=[1, 3, 0, 2])"),
    ((4, 8, 16), "transpose(%x, axes=[2, 1, 0])"),
    ((1, 3, 17, 33), "transpose(%x, axes=[0, 2, 3, 1])"),  # 3 channels, odd sizes: no tile
    ((1, 3, 20, 32), "transpose(%x, axes=[0, 2, 3, 1])"),  # 3 channels: rows of 16 pixels interleaved
    ((2, 2, 6, 8), "transpose(%x, axes=[0, 2, 3, 1])"),  # 2 channels, rows of 8
    ((2, 3, 12), "transpose(%x, axes=[0, 2, 1])"),  # rows of 4
    ((7, 5, 3), "transpose(%x, axes=[2, 0, 1])"),  # sizes below a vector
    ((5, 13), "transpose(%x, axes=[1, 0])"),
    ((1, 20, 7, 7), "transpose(%x, axes=[0, 2, 3, 1])"),  # 49 pixels: 4 x 4 tiles of 20 channels only by 4
    ((12, 128, 64), "transpose(reshape(%x, newshape=[12, 4, 32, 64]), axes=[0, 1, 3, 2])"),  # the k pack
    ((12, 128, 64), "transpose(reshape(%x, newshape=[12, 8, 16, 64]), axes=[0, 1, 3, 2])"),
    ((128, 768), "transpose(reshape(%x, newshape=[128, 12, 64]), axes=[1, 2, 0])"),
    ((6, 3136), "transpose(reshape(%x, newshape=[6, 56, 56]), axes=[1, 2, 0])"),
    ((1, 16, 12, 21), "transpose(%x, axes=[0, 3, 1, 2])"),  # 21 channels back to NCHW: one whole tile, one short
    ((1, 8, 8, 255), "transpose(%x, axes=[0, 3, 1, 2])"),  # 15 whole tiles of channels and a short one
    ((2, 33, 48), "transpose(%x, axes=[0, 2, 1])"),  # a guarded tile under a batch dimension
    ((1, 6, 10, 20), "transpose(%x, axes=[0, 3, 1, 2])"),  # 20 channels in 16-wide tiles: only 4 in the short one
]


def _numpy(shape, body: str, x: np.ndarray) -> np.ndarray:
    axes = [int(v) for v in re.search(r"axes=\[([^\]]*)\]", body).group(1).split(",")]  # type: ignore[union-attr]
    new = re.search(r"newshape=\[([^\]]*)\]", body)
    if new:
        x = x.reshape([int(v) for v in new.group(1).split(",")])
    return np.transpose(x, axes)


@pytest.mark.parametrize("shape, body", CASES)
def test_transposes_agree_with_numpy(shape, body, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    got = lathe.compile(parse_relay(_src(shape, body)), num_threads=2).run(x)
    assert np.array_equal(got, _numpy(shape, body, x))


@pytest.mark.parametrize(
    "shape, body, tile",
    [
        ((1, 64, 56, 56), "transpose(%x, axes=[0, 2, 3, 1])", 16),
        ((1, 56, 56, 64), "transpose(%x, axes=[0, 3, 1, 2])", 16),
        ((24, 3136), "transpose(%x, axes=[1, 0])", 8),  # 24 output channels: 8 x 8 tiles
        ((12, 128, 64), "transpose(reshape(%x, newshape=[12, 4, 32, 64]), axes=[0, 1, 3, 2])", 16),
        ((2, 48, 40), "transpose(%x, axes=[0, 2, 1])", 16),  # 40 source columns: tiles of 8 x 16, rows concatenated
    ],
)
def test_tiles_are_transposed_in_registers(shape, body, tile):
    """Whole-vector loads and stores, shuffles between them, and nothing left to LLVM's loop vectorizer."""
    ir = _llvm(_src(shape, body))
    assert f"store <{tile} x float>" in ir
    assert f"shufflevector <{tile} x float>" in ir
    assert "llvm.loop.vectorize" not in ir


def test_a_guarded_tiles_whole_tiles_are_transposed_in_registers():
    """A side no tile divides (21 channels cut from a padded NHWC tensor back to NCHW) takes a
    guarded tile: the whole ones are register transposes, and so is the short one, its loads
    masked to the rows that exist and a store for each of them only."""
    ir = _llvm(_src((1, 16, 12, 21), "transpose(%x, axes=[0, 3, 1, 2])"))
    whole = ir[ir.index("\ntile.whole") : ir.index("\ntile.short")]
    assert whole.count("shufflevector <16 x float>") == 64 and whole.count("store <16 x float>") == 16
    short = ir[ir.index("\ntile.short") : ir.index("\ntile.end")]
    assert short.count("@llvm.masked.load.v16f32") == 16 and short.count("shufflevector <16 x float>") == 64
    assert short.count("extractelement <16 x i1>") == 16 and "llvm.loop.vectorize" not in short
    assert "icmp slt i64" in ir[: ir.index("\ntile.whole")]  # the guard, tested at the tile's last row


def test_three_channels_are_interleaved_into_one_contiguous_store():
    """An image's NCHW -> NHWC: three rows of 16 pixels, one shuffle, 48 floats stored at once."""
    ir = _llvm(_src((1, 3, 20, 32), "transpose(%x, axes=[0, 2, 3, 1])"))
    assert "store <48 x float>" in ir and "llvm.loop.vectorize" not in ir
    assert "<48 x i32> <i32 0, i32 16, i32 32, i32 1, i32 17, i32 33" in ir


def test_a_narrower_target_gets_narrower_tiles():
    ir = _llvm(_src((64, 3136), "transpose(%x, axes=[1, 0])"), lanes=8)
    assert "shufflevector <8 x float>" in ir and "<16 x float>" not in ir


def test_the_conv_rows_sides_are_merged():
    for body, groups in (
        ("transpose(%x, axes=[0, 2, 3, 1])", ([1, 2], [3])),
        ("transpose(%x, axes=[0, 3, 1, 2])", ([1], [2, 3])),
    ):
        m = parse_relay(_src((1, 8, 8, 8), body))
        build_pipeline("outline-kernels,lower-graph-to-te").apply(make_context(), m)
        (stage,) = [op for op in m.walk() if isinstance(op, te.ComputeOp)]
        assert transposed_groups(stage) == groups


def test_a_transpose_fused_with_arithmetic_keeps_the_vector_loop(rng):
    """Not a pure copy: the tile transpose does not apply, the former form runs, same answer."""
    src = "def @main(%x: Tensor[(1, 32, 16, 16), float32]) { nn.relu(transpose(%x, axes=[0, 2, 3, 1])) }"
    x = rng.standard_normal((1, 32, 16, 16)).astype(np.float32)
    got = lathe.compile(parse_relay(src), num_threads=2).run(x)
    assert np.array_equal(got, np.maximum(np.transpose(x, (0, 2, 3, 1)), 0))


def test_int32_tiles_too(rng):
    src = "def @main(%x: Tensor[(48, 64), int32]) { transpose(%x, axes=[1, 0]) }"
    assert "shufflevector <16 x i32>" in _llvm(src)
    x = rng.integers(-1000, 1000, (48, 64)).astype(np.int32)
    assert np.array_equal(lathe.compile(parse_relay(src), num_threads=2).run(x), x.T)


def test_int32_short_tiles_are_masked_too(rng):
    src = "def @main(%x: Tensor[(1, 16, 12, 21), int32]) { transpose(%x, axes=[0, 3, 1, 2]) }"
    assert "@llvm.masked.load.v16i32" in _llvm(src)
    x = rng.integers(-1000, 1000, (1, 16, 12, 21)).astype(np.int32)
    assert np.array_equal(lathe.compile(parse_relay(src), num_threads=2).run(x), np.transpose(x, [0, 3, 1, 2]))
