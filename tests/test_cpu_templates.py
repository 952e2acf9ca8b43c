"""The CPU schedules for layer shapes real exports have (issue 13): tiled transposes, and
the templates for depthwise convolutions. Every case compiles through the default pipeline
and is compared with the interpreter on fresh random inputs, on sizes no tile divides too."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.lowering.schedules import transposed_axis
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _stages(src: str) -> list[te.ComputeOp]:
    m = parse_relay(src)
    build_pipeline("outline-kernels,lower-graph-to-te").apply(make_context(), m)
    return [op for op in m.walk() if isinstance(op, te.ComputeOp)]


def _scheduled(src: str) -> str:
    m = parse_relay(src)
    build_pipeline("outline-kernels,lower-graph-to-te,apply-default-schedule").apply(make_context(), m)
    return str(m)


@pytest.mark.parametrize(
    "shape, axes",
    [
        ((1, 120, 10, 16), (0, 2, 3, 1)),  # NCHW -> NHWC, 120 channels
        ((1, 16, 10, 24), (0, 3, 1, 2)),  # NHWC -> NCHW, 24 channels
        ((1, 3, 20, 20), (0, 2, 3, 1)),  # 3 channels: the vector runs along the width
        ((2, 40, 32), (0, 2, 1)),
        ((7, 5, 3), (2, 0, 1)),  # nothing divides: the fused schedule
        ((48, 64), (1, 0)),
    ],
)
def test_transposes_agree(shape, axes, rng):
    dims = ", ".join(map(str, shape))
    src = f"def @main(%x: Tensor[({dims}), float32]) {{ transpose(%x, axes={list(axes)}) }}"
    x = rng.standard_normal(shape).astype(np.float32)
    got = lathe.compile(parse_relay(src), num_threads=2).run(x=x)
    assert np.array_equal(got, np.transpose(x, axes))


def test_a_transpose_is_tiled_and_elementwise_stages_are_not():
    nchw_to_nhwc = "def @main(%x: Tensor[(1, 120, 10, 16), float32]) { transpose(%x, axes=[0, 2, 3, 1]) }"
    (stage,) = _stages(nchw_to_nhwc)
    assert transposed_axis(stage) == 2  # the input is contiguous along the output's width
    text = _scheduled(nchw_to_nhwc)
    assert "te.unroll" in text and "te.vectorize" in text and "te.fuse" in text
    (add,) = _stages("def @main(%x: Tensor[(4, 16), float32]) { add(%x, %x) }")
    assert transposed_axis(add) is None


def test_transpose_tile_is_a_knob(rng):
    """transpose_tile=0 turns the tiled schedule off; every value computes the same function."""
    src = "def @main(%x: Tensor[(1, 40, 12, 32), float32]) { transpose(%x, axes=[0, 2, 3, 1]) }"
    x = rng.standard_normal((1, 40, 12, 32)).astype(np.float32)
    for tile in (0, 4, 8, 16, 32):
        m = parse_relay(src)
        build_pipeline(
            f'outline-kernels,lower-graph-to-te,apply-schedule{{config="per_stage:transpose_tile={tile}"}}'
        ).apply(make_context(), m)
        got = lathe.compile(m, num_threads=2).run(x=x)
        assert max_rel_err(got, np.transpose(x, (0, 2, 3, 1))) == 0


def test_a_transpose_fused_with_a_channel_pad_is_tiled(rng):
    """What alter-op-layout makes of a depthwise conv's input with 72 channels: the pad's read
    of the inlined transpose (clamped indices) still counts as transposing."""
    src = """
    def @main(%x: Tensor[(1, 72, 6, 32), float32]) {
      nn.pad(transpose(%x, axes=[0, 2, 3, 1]), 0f, pad_width=[[0, 0], [0, 0], [0, 0], [0, 8]])
    }"""
    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    pad = next(op for op in m.walk() if isinstance(op, te.ComputeOp) and op.stage.data == "T_pad")
    assert transposed_axis(pad) == 2
    x = rng.standard_normal((1, 72, 6, 32)).astype(np.float32)
    got = lathe.compile(parse_relay(src), num_threads=2).run(x=x)
    assert np.array_equal(got, np.pad(np.transpose(x, (0, 2, 3, 1)), [(0, 0), (0, 0), (0, 0), (0, 8)]))
