"""Reductions whose reads walk the output's last axis (an NHWC global pool, a squeeze-excitation
1x1 conv on a pooled vector) run with the reduce axes outside a vector of that axis, and the
small gate such a conv feeds is computed once per channel, not inlined into the map it scales;
results agree with the interpreter at odd widths."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _t(*shape) -> str:
    return f"Tensor[({', '.join(map(str, shape))}), float32]"


def _se(h: int, c: int, r: int) -> str:
    conv = 'nn.conv2d(%s, %w, padding=[0, 0, 0, 0], kernel_size=[1, 1], data_layout="NHWC", kernel_layout="HWIO")'
    return (
        f"def @main(%x: {_t(1, h, h, c)}, %s: {_t(1, 1, 1, r)}, %w: {_t(1, 1, r, c)}, %b: {_t(c)}) {{"
        f" multiply(%x, sigmoid(nn.bias_add({conv}, %b, axis=3))) }}"
    )


def _gap(h: int, c: int) -> str:
    return f'def @main(%x: {_t(2, h, h, c)}) {{ nn.global_avg_pool2d(%x, layout="NHWC") }}'


def _check(src: str, inputs: dict) -> None:
    ref = lathe.interpret(parse_relay(src), **inputs)
    got = lathe.compile(parse_relay(src), num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 1e-5


@pytest.mark.parametrize("h, c, r", [(5, 1, 1), (6, 3, 2), (7, 17, 4), (3, 116, 8), (4, 120, 5), (2, 64, 16)])
def test_se_gate_agrees(h, c, r, rng):
    inputs = {
        "x": rng.standard_normal((1, h, h, c)).astype(np.float32),
        "s": rng.standard_normal((1, 1, 1, r)).astype(np.float32),
        "w": rng.standard_normal((1, 1, r, c)).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
    }
    _check(_se(h, c, r), inputs)


@pytest.mark.parametrize("h, c", [(5, 1), (6, 3), (7, 17), (3, 116), (4, 120), (9, 64)])
def test_global_pool_agrees(h, c, rng):
    _check(_gap(h, c), {"x": rng.standard_normal((2, h, h, c)).astype(np.float32)})


def test_sum_over_a_middle_axis_agrees(rng):
    src = f"def @main(%x: {_t(3, 37, 40)}) {{ sum(%x, axis=[1]) }}"
    _check(src, {"x": rng.standard_normal((3, 37, 40)).astype(np.float32)})


@pytest.mark.parametrize("shape", [(37, 40), (5, 17), (9, 3)])
def test_sum_over_the_first_axis_of_a_matrix_agrees(shape, rng):
    """One output row, no outer axes: the reduce axis around the row's vector."""
    src = f"def @main(%x: {_t(*shape)}) {{ sum(%x, axis=[0]) }}"
    _check(src, {"x": rng.standard_normal(shape).astype(np.float32)})


def _scheduled(src: str):
    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te,apply-default-schedule").apply(make_context(), m)
    return m


def test_global_pool_vectorizes_channels_inside_the_window():
    m = _scheduled(_gap(56, 144))
    pool = next(op for op in m.walk() if isinstance(op, te.ComputeOp) and op.reduce_extent_list)
    reorder = next(op for op in m.walk() if isinstance(op, te.ReorderOp) and op.operands[0] is pool.result)
    vec = next(op for op in m.walk() if isinstance(op, te.VectorizeOp) and op.operands[0] is pool.result)
    order = [a.data for a in reorder.order]
    assert order[-1] == vec.axis.data and order[1:-1] == ["k0", "k1"]


def test_the_gate_is_a_stage_of_its_own():
    """sigmoid(conv + bias) on 1x1x144 is computed into its own buffer, once per channel; the
    56x56x144 output reads it (inlined, its exp would run once per pixel)."""
    m = _scheduled(_se(56, 144, 6))
    inlined = {op.operands[0] for op in m.walk() if isinstance(op, te.ComputeInlineOp)}
    gates = [
        op
        for op in m.walk()
        if isinstance(op, te.ComputeOp) and not op.reduce_extent_list and op.spatial_extents == [1, 1, 1, 144]
    ]
    assert any(g.result not in inlined for g in gates)
    assert sum(g.result not in inlined for g in gates) == 1
