"""conv2d_nhwc register tiles that do not divide the output width (the last tile of a row
guarded), and the loop unswitching that keeps such a tile's channel loop vector code: every
tile width against the interpreter on fresh random inputs, on widths with no divisor near 8."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context
from lathe.lowering.conv2d_template import CONV2D_TILE_WIDTH
from lathe.lowering.schedules import plan_kernel
from lathe.passes.conv_weight_blocking import conv_tile_width as _default_tile
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _conv(h: int, w: int, c: int, f: int, kh: int, kw: int, stride: int, ph: int, pw: int) -> str:
    conv = (
        f"nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[{ph}, {pw}, {ph}, {pw}], "
        f'kernel_size=[{kh}, {kw}], data_layout="NHWC", kernel_layout="HWIO")'
    )
    return (
        f"def @main(%x: Tensor[(1, {h}, {w}, {c}), float32], %w: Tensor[({kh}, {kw}, {c}, {f}), float32]) "
        f"{{ nn.relu({conv}) }}"
    )


def _scheduled(src: str, config: str):
    m = parse_relay(src)
    build_pipeline(f'fuse-ops,lower-graph-to-te,apply-schedule{{config="{config}"}}').apply(make_context(), m)
    return m


@pytest.mark.parametrize(
    "h, w, c, f, kh, kw, stride, ph, pw",
    [
        (3, 1, 8, 16, 3, 3, 1, 1, 1),  # one pixel wide
        (4, 5, 24, 32, 3, 3, 1, 1, 1),
        (5, 17, 16, 48, 1, 7, 1, 0, 3),  # Inception's 1x7 at 17
        (9, 17, 32, 16, 7, 1, 1, 3, 0),  # and its 7x1
        (3, 71, 8, 32, 3, 3, 1, 0, 0),  # 69 pixels, unpadded
        (5, 37, 16, 32, 3, 3, 2, 0, 0),  # strided: 18 pixels
    ],
)
def test_every_tile_width_agrees(h, w, c, f, kh, kw, stride, ph, pw, rng):
    src = _conv(h, w, c, f, kh, kw, stride, ph, pw)
    x = rng.standard_normal((1, h, w, c)).astype(np.float32)
    wt = (rng.standard_normal((kh, kw, c, f)) / np.sqrt(kh * kw * c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=wt)
    ow = ref.shape[2]
    for tile in sorted({1, 4, 5, 6, 7, CONV2D_TILE_WIDTH} | {_default_tile(ow)}):
        if tile > max(ow - 1, 1) and tile != 1:
            continue
        for order in ("yxf", "fyx_pack"):
            m = _scheduled(src, f"conv2d_nhwc:tile_w={tile},order={order},block_f=16")
            got = lathe.compile(m, num_threads=2).run(x=x, w=wt)
            assert max_rel_err(got, ref) < 1e-5, (tile, order)


def _tile_knob(src: str):
    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    (f,) = [op for op in m.walk() if "lathe.kernel" in getattr(op, "attributes", {})]
    plan = plan_kernel(f, 16)
    assert plan.template_name == "conv2d_nhwc"
    return next(k for k in plan.space if k.name == "tile_w")


def test_default_tile_by_width():
    """A divisor of 5..8 (or the whole row) is kept; a width with none (a prime) gets the
    guarded tile of 6..8 that wastes the fewest pixels."""
    assert [_default_tile(w) for w in (8, 56, 147, 35, 10, 3)] == [8, 8, 7, 7, 5, 3]
    assert [_default_tile(w) for w in (17, 71, 73, 44, 9)] == [6, 8, 7, 8, 6]


def test_tile_space_keeps_divisors_and_gains_guarded_tiles():
    k = _tile_knob(_conv(5, 17, 16, 32, 1, 7, 1, 0, 3))
    assert k.default == 6
    assert 1 in k.candidates  # every divisor up to 16 stays a choice
    assert {4, 5, 6, 7, 8} <= set(k.candidates)


def test_a_guard_outside_the_channel_vector():
    """The tile's per-pixel guard is tested once per vector loop, outside it: the vector
    loop's body has no control flow, so the backend emits it as vector code."""
    m = _scheduled(_conv(3, 17, 16, 32, 1, 3, 1, 0, 1), "conv2d_nhwc:tile_w=8,block_f=32")
    build_pipeline("lower-te-to-loop").apply(make_context(), m)
    from xdsl.dialects import scf

    from lathe.dialects.loop import annotation_of

    vector_loops = [
        op
        for op in m.walk()
        if isinstance(op, scf.ForOp) and (a := annotation_of(op)) is not None and a.kind.data == "vectorize"
    ]
    assert vector_loops
    for loop in vector_loops:
        assert not any(isinstance(op, scf.IfOp) for op in loop.body.walk())
    assert any(isinstance(loop.parent_op(), scf.IfOp) for loop in vector_loops)
