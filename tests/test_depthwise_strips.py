"""depthwise_nhwc's "strips" grain (a task is one channel block over a strip of rows; the tuner's
choice, not the default): its strip heights, and its kernels against the interpreter on fresh
random inputs, for 3x3 and 5x5 windows, strides 1 and 2, odd sizes, the mobile models' channel
counts (72, 120, 240, 672) and each epilogue they fuse (ReLU, ReLU6, SiLU, hard-swish)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err
from test_depthwise_template import ACTIVATIONS, _kernel

import lathe
from lathe.lowering.depthwise_template import STRIP_TASKS, _strip_rows
from lathe.textual_ir.parser import parse_relay


@pytest.mark.parametrize("oh, blocks", [(7, 72), (14, 42), (14, 30), (28, 15), (28, 1), (1, 4), (13, 2)])
def test_strips_leave_tasks_for_the_threads(oh, blocks):
    """The tallest strip dividing the height that leaves STRIP_TASKS tasks, else one row."""
    rows = _strip_rows(oh, blocks)
    assert oh % rows == 0
    assert blocks * (oh // rows) >= STRIP_TASKS or rows == 1
    taller = [d for d in range(rows + 1, oh + 1) if oh % d == 0]
    assert all(blocks * (oh // d) < STRIP_TASKS for d in taller)


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
