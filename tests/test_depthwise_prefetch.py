"""Depthwise layers whose input map is larger than one core's L2 prefetch, at each output row,
the input rows the next row reads for the first time (te.prefetch through the inlined padded
read): the default turns it on by the map's bytes against the target's L2, and the layers
agree with the interpreter on fresh random inputs with it, at one thread and two."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.lowering.depthwise_template import depthwise_space
from lathe.lowering.schedule_builder import CacheInfo
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _nhwc(c: int, h: int, k: int, s: int, p: int) -> str:
    return f"""def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[({k}, {k}, 1, {c}), float32],
                  %b: Tensor[({c}), float32]) {{
      %0 = nn.conv2d(%x, %w, strides=[{s}, {s}], padding=[{p}, {p}, {p}, {p}], groups={c}, kernel_size=[{k}, {k}],
                     data_layout="NHWC", kernel_layout="HWIO");
      nn.relu(nn.bias_add(%0, %b, axis=3))
    }}"""


def _prefetch_default(src: str, l2_bytes: int) -> str:
    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    a = next(op for op in m.walk() if isinstance(op, te.ComputeOp) and op.anchor is not None)
    space = depthwise_space(a, a, 16, CacheInfo(l2_bytes))
    assert space is not None
    return str(next(k for k in space if k.name == "prefetch").default)


def test_the_map_against_the_l2_decides():
    """48 x 48 x 32 floats are 288 KiB: past a 256 KiB L2, inside a 1 MiB one."""
    src = _nhwc(32, 48, 3, 1, 1)
    assert _prefetch_default(src, 256 << 10) == "on"
    assert _prefetch_default(src, 1 << 20) == "off"


# channels, size, kernel, stride, padding: maps past 1 MiB (the fallback L2) so the default prefetches
CASES = [
    (32, 96, 3, 1, 1),  # the window slides a row: one new row a row
    (48, 80, 5, 2, 2),  # stride 2: two new rows of five
    (64, 66, 5, 1, 2),  # a width no tile divides (the last tile guarded)
    (32, 92, 3, 2, 0),  # no padding: the input read in place, no clamp
    (32, 96, 3, 3, 1),  # stride 3 >= the window: all three rows new, the first block starts at row -1
]


@pytest.mark.parametrize("c, h, k, s, p", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_prefetching_layers_agree_with_the_interpreter(c, h, k, s, p, threads, rng):
    src = _nhwc(c, h, k, s, p)
    assert _prefetch_default(src, 1 << 20) == "on"
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, 1, c)) / k).astype(np.float32)
    b = (rng.standard_normal(c) * 0.1).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w, b=b)
    got = lathe.compile(parse_relay(src), num_threads=threads).run(x=x, w=w, b=b)
    assert max_rel_err(got, ref) < 1e-5
