"""Elementwise kernels whose last axis no vector divides (116 channels, 17, 3, 1): the vector
runs along the rows with the outer axes fused, and the backend covers a row with its widest
vectors and a narrower tail; results agree with the interpreter at every width."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.backends.llvm.codegen import module_to_llvm_ir, vector_parts
from lathe.dialects import make_context, te
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _t(shape) -> str:
    return f"Tensor[({', '.join(map(str, shape))}), float32]"


def _chain(shape) -> str:
    """An add, a hard-swish and a squeeze-excitation gate: a per-(n, c) sigmoid scale and a
    bias along channels, both broadcast along the rows."""
    n, c = shape[0], shape[-1]
    scale = (n,) + (1,) * (len(shape) - 2) + (c,)
    return (
        f"def @main(%x: {_t(shape)}, %y: {_t(shape)}, %s: {_t(scale)}, %b: {_t((c,))}) {{"
        " %0 = add(%x, %y);"
        " %1 = multiply(%0, divide(clip(add(%0, 3f), a_min=0f, a_max=6f), 6f));"
        " add(multiply(%1, sigmoid(%s)), %b) }"
    )


@pytest.mark.parametrize(
    "shape", [(1, 5, 7, 1), (2, 3, 5, 3), (1, 6, 5, 17), (1, 9, 7, 116), (2, 4, 3, 120), (1, 3, 7, 7)]
)
def test_odd_widths_agree_with_the_interpreter(shape, rng):
    m = parse_relay(_chain(shape))
    c = shape[-1]
    scale = (shape[0],) + (1,) * (len(shape) - 2) + (c,)
    inputs = {
        "x": rng.standard_normal(shape).astype(np.float32),
        "y": rng.standard_normal(shape).astype(np.float32),
        "s": rng.standard_normal(scale).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
    }
    ref = lathe.interpret(m, **inputs)
    got = lathe.compile(parse_relay(_chain(shape)), num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 1e-5


def _scheduled(src: str, passes: str = "fuse-ops,lower-graph-to-te,apply-default-schedule"):
    m = parse_relay(src)
    build_pipeline(passes).apply(make_context(), m)
    return m


def _schedule_ops(m) -> list[str]:
    return [op.name for op in m.walk() if isinstance(op, te.SchedulePrimitive)]


def test_a_row_no_vector_divides_is_the_vector_loop():
    """116 channels: the channel axis is vectorized whole and the pixels fused and parallel
    (fused with the pixels, a lane's channel is a remainder by 116: a gather per lane)."""
    m = _scheduled(f"def @main(%x: {_t((1, 28, 28, 116))}, %y: {_t((1, 28, 28, 116))}) {{ add(%x, %y) }}")
    fuse = next(op for op in m.walk() if isinstance(op, te.FuseOp))
    vec = next(op for op in m.walk() if isinstance(op, te.VectorizeOp))
    par = next(op for op in m.walk() if isinstance(op, te.ParallelOp))
    assert [a.data for a in fuse.fuse_axes] == ["ax0", "ax1", "ax2"]
    assert vec.axis.data == "ax3"
    assert par.axis.data == fuse.fused.data
    assert not any(isinstance(op, te.SplitOp) for op in m.walk())


def test_a_width_the_vector_divides_keeps_the_fused_form():
    m = _scheduled(f"def @main(%x: {_t((1, 28, 28, 128))}, %y: {_t((1, 28, 28, 128))}) {{ add(%x, %y) }}")
    fuse = next(op for op in m.walk() if isinstance(op, te.FuseOp))
    assert [a.data for a in fuse.fuse_axes] == ["ax0", "ax1", "ax2", "ax3"]
    assert any(isinstance(op, te.SplitOp) for op in m.walk())


def test_vector_rows_off_fuses_every_axis():
    m = _scheduled(
        f"def @main(%x: {_t((1, 28, 28, 116))}, %y: {_t((1, 28, 28, 116))}) {{ add(%x, %y) }}",
        'fuse-ops,lower-graph-to-te,apply-schedule{config="per_stage:vector_rows=off"}',
    )
    fuse = next(op for op in m.walk() if isinstance(op, te.FuseOp))
    assert [a.data for a in fuse.fuse_axes] == ["ax0", "ax1", "ax2", "ax3"]


def test_short_rows_take_the_axes_before_them():
    """A 7-wide row (NCHW at 7x7) is too short for a vector: the row is (h, w) fused."""
    m = _scheduled(f"def @main(%x: {_t((1, 64, 7, 7))}, %y: {_t((1, 64, 7, 7))}) {{ add(%x, %y) }}")
    fuses = [[a.data for a in op.fuse_axes] for op in m.walk() if isinstance(op, te.FuseOp)]
    assert ["ax2", "ax3"] in fuses
    vec = next(op for op in m.walk() if isinstance(op, te.VectorizeOp))
    assert vec.axis.data == "ax2.ax3.fused"


def test_vector_parts():
    assert vector_parts(0, 116, 16) == [(0, 112, 16), (112, 116, 4)]
    assert vector_parts(0, 58, 16) == [(0, 48, 16), (48, 56, 8), (56, 58, 2)]
    assert vector_parts(0, 17, 16) == [(0, 16, 16)]  # the 17th lane is scalar
    assert vector_parts(0, 128, 16) == [(0, 128, 16)]
    assert vector_parts(0, 1, 16) == []


def test_a_116_row_runs_16_lane_vectors_and_a_4_lane_tail():
    m = _scheduled(
        f"def @main(%x: {_t((1, 28, 28, 116))}, %y: {_t((1, 28, 28, 116))}) {{ add(%x, %y) }}",
        "fuse-ops,lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops",
    )
    adds = re.findall(r"fadd [a-z ]*(<\d+ x float>|float)", module_to_llvm_ir(m))
    assert sorted(set(adds)) == ["<16 x float>", "<4 x float>"]
