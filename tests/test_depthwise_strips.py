"""depthwise_nhwc's "strips" grain (a task is one channel block over a strip of rows): where the
default takes it, and its kernels against the interpreter on fresh random inputs, for 3x3 and
5x5 windows, strides 1 and 2, odd sizes, the mobile models' channel counts (72, 120, 240, 672)
and each epilogue they fuse (ReLU, ReLU6, SiLU, hard-swish)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err
from test_depthwise_template import ACTIVATIONS, _anchor, _kernel, _nchw, _nhwc, _templates

import lathe
from lathe.lowering.depthwise_template import STRIP_TASKS, _strip_rows, depthwise_space
from lathe.textual_ir.parser import parse_relay


def _grain(src: str) -> str:
    a = _anchor(src)
    return {k.name: k.default for k in depthwise_space(a, a, 16)}["grain"]


def test_strips_where_a_tiles_window_over_all_channels_is_past_l1():
    """EfficientNet's and MobileNet's wide layers at 7-28 take strips; narrow ones, 112x112
    maps and 3x3 at stride 2 (a row's input rows are mostly new) keep rows."""
    assert _grain(_nhwc(672, 14, 14, 5, 1, (2, 2, 2, 2))) == "strips"
    assert _grain(_nhwc(240, 28, 28, 5, 1, (2, 2, 2, 2))) == "strips"
    assert _grain(_nhwc(480, 14, 14, 3, 1, (1, 1, 1, 1))) == "strips"
    assert _grain(_nhwc(672, 14, 14, 5, 2, (1, 1, 2, 2))) == "strips"  # 5x5 stride 2: 3 of 5 rows reused
    assert _grain(_nhwc(576, 14, 14, 3, 2, (1, 1, 1, 1))) == "rows_blocks"  # 3x3 stride 2: 1 of 3
    assert _grain(_nhwc(240, 28, 28, 3, 2, (1, 1, 1, 1))) == "rows_blocks"  # 14 output rows: few
    assert _grain(_nhwc(128, 28, 28, 5, 1, (2, 2, 2, 2))) == "rows"  # 5 x 11 x 128 floats: 28 KiB
    assert _grain(_nhwc(32, 112, 112, 3, 1, (1, 1, 1, 1))) == "rows"
    assert _grain(_nhwc(64, 10, 10, 3, 1, (0, 0, 0, 0))) == "rows_blocks"  # no padded stage: the input's width


@pytest.mark.parametrize("oh, blocks", [(7, 72), (14, 42), (14, 30), (28, 15), (28, 1), (1, 4), (13, 2)])
def test_strips_leave_tasks_for_the_threads(oh, blocks):
    """The tallest strip dividing the height that leaves STRIP_TASKS tasks, else one row."""
    rows = _strip_rows(oh, blocks)
    assert oh % rows == 0
    assert blocks * (oh // rows) >= STRIP_TASKS or rows == 1
    taller = [d for d in range(rows + 1, oh + 1) if oh % d == 0]
    assert all(blocks * (oh // d) < STRIP_TASKS for d in taller)


# channels, size, kernel, stride, padding, activation: NCHW through the default pipeline
# (channels padded to the vector by alter-op-layout), the default knobs choosing strips
DEFAULT_STRIPS = [
    (672, 14, 5, 1, (2, 2, 2, 2), "silu"),
    (240, 28, 5, 1, (2, 2, 2, 2), "hswish"),
    (480, 14, 3, 1, (1, 1, 1, 1), "relu6"),
    (672, 14, 5, 2, (1, 1, 2, 2), "silu"),  # TF "same" at stride 2
    (1152, 7, 5, 1, (2, 2, 2, 2), "relu"),
]


@pytest.mark.parametrize("c, size, k, s, pads, act", DEFAULT_STRIPS)
def test_default_strips_agree_with_the_interpreter(c, size, k, s, pads, act, rng):
    src = _nchw(c, size, size, k, s, pads, 1, act)
    assert _grain(_nhwc(c, size, size, k, s, pads)) == "strips"
    params = {
        "w": (rng.standard_normal((c, 1, k, k)) / k).astype(np.float32),
        "b": (rng.standard_normal(c) * 0.1).astype(np.float32),
        "p": (rng.standard_normal((16, c, 1, 1)) / c**0.5).astype(np.float32),
    }
    assert "depthwise_nhwc" in _templates(src, params)
    x = rng.standard_normal((1, c, size, size)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), params=params, x=x)
    got = lathe.compile(parse_relay(src), params=params, num_threads=2).run(x=x)
    assert max_rel_err(got, ref) < 1e-5


def _nhwc_act(c: int, h: int, w: int, k: int, s: int, pads, act: str) -> str:
    """An NHWC depthwise layer with its bias and activation, as alter-op-layout leaves one."""
    return f"""def @main(%x: Tensor[(1, {h}, {w}, {c}), float32], %w: Tensor[({k}, {k}, 1, {c}), float32],
              %b: Tensor[({c}), float32]) {{
      %0 = nn.conv2d(%x, %w, strides=[{s}, {s}], padding={list(pads)}, groups={c}, kernel_size=[{k}, {k}],
                     data_layout="NHWC", kernel_layout="HWIO");
      %1 = nn.bias_add(%0, %b, axis=3);
      {ACTIVATIONS[act]}
    }}"""


# channels (72 and 120 unpadded: half-vector blocks of 8), height, width, kernel, stride, padding
FORCED = [
    (72, 15, 13, 3, 1, (1, 1, 1, 1), "relu"),  # odd sizes
    (120, 9, 11, 5, 1, (2, 2, 2, 2), "hswish"),
    (240, 13, 13, 3, 2, (1, 1, 1, 1), "silu"),
    (672, 7, 9, 5, 2, (1, 1, 2, 2), "relu6"),
    (32, 17, 17, 5, 1, (2, 2, 2, 2), "silu"),  # strips of one row: 2 blocks x 17 rows
]


@pytest.mark.parametrize("c, h, w, k, s, pads, act", FORCED)
@pytest.mark.parametrize("knobs", ["grain=strips", "grain=strips,block_c=8,tile_w=4", "grain=strips,pad=copy"])
def test_forced_strips_agree_with_the_interpreter(c, h, w, k, s, pads, act, knobs, rng):
    src = _nhwc_act(c, h, w, k, s, pads, act)
    x = rng.standard_normal((1, h, w, c)).astype(np.float32)
    wt = (rng.standard_normal((k, k, 1, c)) / k).astype(np.float32)
    b = (rng.standard_normal(c) * 0.1).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=wt, b=b)
    got = lathe.compile(_kernel(src, f"depthwise_nhwc:{knobs}"), num_threads=2).run(x=x, w=wt, b=b)
    assert max_rel_err(got, ref) < 1e-5
