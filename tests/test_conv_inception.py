"""Inception-v3's 17x17 and 8x8 convolutions in the conv2d_nhwc template: factorised 1x7 / 7x1
(and 1x3 / 3x1) windows, stride 2 down to 17 and 8, widths no tile divides (17 is prime), odd
input-channel counts; every order and block the 17x17 defaults choose between against the
interpreter on fresh random inputs, and the defaults by shape (weight-stationary packed blocks
up to 17x17 outputs, three-vector blocks under a guarded 6-pixel tile)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_compiles_as_interpreted, max_rel_err
from test_conv2d_template import _defaults

import lathe
from lathe.dialects import make_context
from lathe.lowering.conv2d_template import CONV2D_ORDERS
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _conv(h: int, c: int, f: int, kh: int, kw: int, stride: int = 1, ph: int = 0, pw: int = 0) -> str:
    conv = (
        f"nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[{ph}, {pw}, {ph}, {pw}], "
        f'kernel_size=[{kh}, {kw}], data_layout="NHWC", kernel_layout="HWIO")'
    )
    return (
        f"def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[({kh}, {kw}, {c}, {f}), float32]) "
        f"{{ nn.relu({conv}) }}"
    )


@pytest.mark.parametrize(
    "h, c, f, kh, kw, stride, ph, pw",
    [
        (17, 24, 192, 1, 7, 1, 0, 3),  # Mixed_6b-e's 1x7, channels scaled down
        (17, 24, 192, 7, 1, 1, 3, 0),  # and 7x1
        (17, 13, 96, 7, 1, 1, 3, 0),  # odd input channels, too few blocks for weight-stationary
        (35, 16, 192, 3, 3, 2, 0, 0),  # Mixed_6a's 3x3 stride 2 to 17x17
        (17, 24, 64, 3, 3, 2, 0, 0),  # Mixed_7a's 3x3 stride 2 to 8x8
        (8, 32, 128, 1, 3, 1, 0, 1),  # Mixed_7b-c's 1x3 at 8x8
        (8, 32, 128, 3, 1, 1, 1, 0),  # and 3x1
    ],
)
def test_inception_windows_agree(h, c, f, kh, kw, stride, ph, pw, rng):
    """The default, every thread-loop order with two- and three-vector blocks, row tiles over
    a one-axis window and guarded 6- and 8-pixel tiles: the interpreter's result."""
    src = _conv(h, c, f, kh, kw, stride, ph, pw)
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    w = (rng.standard_normal((kh, kw, c, f)) / np.sqrt(kh * kw * c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    configs = ["conv2d_nhwc"] + [f"conv2d_nhwc:order={o},block_f=32" for o in CONV2D_ORDERS]
    if f % 48 == 0:
        configs += [f"conv2d_nhwc:order={o},block_f=48" for o in CONV2D_ORDERS]
    configs += ["conv2d_nhwc:order=fyx_pack,tile_h=2,tile_w=8", "conv2d_nhwc:order=fyx_pack,tile_w=6,unroll_window=2"]
    for config in configs:
        m = parse_relay(src)
        build_pipeline(f'fuse-ops,lower-graph-to-te,apply-schedule{{config="{config}"}}').apply(make_context(), m)
        got = lathe.compile(m, num_threads=2).run(x=x, w=w)
        assert max_rel_err(got, ref) < 1e-5, config


def test_inception_defaults():
    """Up to 17x17 outputs the threads' loops are weight-stationary with packed blocks (each
    thread reads only its blocks' weights); under the guarded 6-pixel tile of width 17 the
    blocks are three vectors where they divide into four or more; 8x8 and 28x28 keep theirs."""
    mixed_6 = _defaults(_conv(17, 192, 192, 1, 7, pw=3))
    assert (mixed_6["order"], mixed_6["block_f"], mixed_6["tile_w"]) == ("fyx_pack", 48, 6)
    assert _defaults(_conv(17, 768, 192, 1, 1))["order"] == "fyx_pack"
    assert _defaults(_conv(35, 288, 384, 3, 3, 2))["block_f"] == 48  # stride 2 down to 17
    mixed_6b = _defaults(_conv(17, 128, 128, 7, 1, ph=3))
    assert (mixed_6b["order"], mixed_6b["block_f"]) == ("fyx_pack", 32)  # 48 does not divide 128
    assert _defaults(_conv(17, 96, 96, 3, 3, ph=1, pw=1))["order"] == "yxf"  # three blocks: too few
    mixed_7 = _defaults(_conv(8, 384, 384, 1, 3, pw=1))
    assert (mixed_7["order"], mixed_7["block_f"], mixed_7["tile_w"]) == ("fyx_pack", 32, 8)
    assert _defaults(_conv(28, 128, 192, 3, 3, ph=1, pw=1))["order"] == "yxf"


def test_inception_block_through_the_exported_layout(rng):
    """An exported (NCHW) 17x17 chain: a 1x1 to 192 channels, 1x7 and 7x1 with asymmetric
    padding, 40 filters padded by the layout pass, as the interpreter computes it."""
    src = """def @main(%x: Tensor[(1, 24, 17, 17), float32], %w0: Tensor[(192, 24, 1, 1), float32],
    %w1: Tensor[(192, 192, 1, 7), float32], %w2: Tensor[(40, 192, 7, 1), float32]) {
  %0 = nn.relu(nn.conv2d(%x, %w0, padding=[0, 0, 0, 0], kernel_size=[1, 1]));
  %1 = nn.relu(nn.conv2d(%0, %w1, padding=[0, 3, 0, 3], kernel_size=[1, 7]));
  nn.relu(nn.conv2d(%1, %w2, padding=[3, 0, 3, 0], kernel_size=[7, 1]))
}"""

    def weight(*shape):
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    params = {"w0": weight(192, 24, 1, 1), "w1": weight(192, 192, 1, 7), "w2": weight(40, 192, 7, 1)}
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((1, 24, 17, 17)).astype(np.float32)})
