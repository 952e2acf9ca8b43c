"""The pool2d_nhwc template (max and average pooling, vectors along channels, threads over
rows): every knob value against the interpreter on fresh random inputs, with widths no tile
divides, strides, padding counted or not (the count a closed form, or one constant divisor),
and dilation; and which kernels it claims."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.lowering.pool_template import pool2d_space
from lathe.lowering.schedules import plan_kernel
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _pool(op: str, h: int, w: int, c: int, k: int, s: int, p: int, extra: str = "", layout: str = "NHWC") -> str:
    shape = f"(1, {h}, {w}, {c})" if layout == "NHWC" else f"(1, {c}, {h}, {w})"
    return (
        f"def @main(%x: Tensor[{shape}, float32]) {{ nn.relu(nn.{op}_pool2d(%x, pool_size=[{k}, {k}], "
        f'strides=[{s}, {s}], padding=[{p}, {p}, {p}, {p}], layout="{layout}"{extra})) }}'
    )


def _kernel(src: str, config: str | None = None):
    m = parse_relay(src)
    sched = f',apply-schedule{{config="{config}"}}' if config else ""
    build_pipeline("fuse-ops,lower-graph-to-te" + sched).apply(make_context(), m)
    return m


CASES = [
    ("avg", 7, 7, 48, 3, 1, 1, ", count_include_pad=True"),  # Inception's pool branch, scaled down
    ("avg", 9, 5, 32, 3, 1, 1, ""),  # padding not counted: the count varies at the border
    ("avg", 10, 11, 16, 3, 2, 1, ", ceil_mode=True, count_include_pad=True"),  # windows past the padding
    ("avg", 8, 17, 8, 2, 2, 0, ""),  # DenseNet's transition: 2x2 stride 2
    ("avg", 9, 9, 16, 3, 1, 2, ", dilation=[2, 2]"),
    ("max", 11, 11, 64, 3, 2, 0, ""),  # Inception's stem pools
    ("max", 6, 1, 32, 3, 1, 1, ""),  # one pixel wide
    ("max", 9, 13, 24, 3, 2, 1, ", ceil_mode=True"),
]


@pytest.mark.parametrize("op, h, w, c, k, s, p, extra", CASES)
def test_every_knob_value_agrees(op, h, w, c, k, s, p, extra, rng):
    src = _pool(op, h, w, c, k, s, p, extra)
    x = rng.standard_normal((1, h, w, c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x)
    m = _kernel(src)
    (f,) = [o for o in m.walk() if "lathe.kernel" in getattr(o, "attributes", {})]
    plan = plan_kernel(f, 16)
    assert plan.template_name == "pool2d_nhwc"
    for knob in plan.space:
        for v in knob.candidates:
            got = lathe.compile(_kernel(src, f"pool2d_nhwc:{knob.name}={v}"), num_threads=2).run(x=x)
            assert max_rel_err(got, ref) < 1e-5, (knob.name, v)


def test_nchw_and_odd_channels_keep_the_per_stage_schedule(rng):
    for src in (_pool("avg", 6, 6, 16, 3, 1, 1, layout="NCHW"), _pool("max", 6, 6, 3, 3, 1, 1)):
        m = _kernel(src)
        anchor = next(op for op in m.walk() if isinstance(op, te.ComputeOp) and op.anchor is not None)
        assert pool2d_space(anchor, anchor, 16) is None
        x = rng.standard_normal([int(d) for d in src.split("Tensor[(")[1].split(")")[0].split(",")]).astype(np.float32)
        got = lathe.compile(parse_relay(src), num_threads=2).run(x=x)
        assert max_rel_err(got, lathe.interpret(parse_relay(src), x=x)) < 1e-5


def test_a_constant_count_is_one_divisor():
    """Padding counted and every window inside it: the average divides by the window's size,
    no count is computed; padding not counted: the count is index arithmetic, not a reduction."""
    counted = str(_kernel(_pool("avg", 7, 7, 16, 3, 1, 1, ", count_include_pad=True")))
    assert "T_avg_pool2d_count" not in counted and "9.0" in counted
    uncounted = _kernel(_pool("avg", 7, 7, 16, 3, 1, 1))
    reductions = [op for op in uncounted.walk() if isinstance(op, te.ComputeOp) and op.reduce_extent_list]
    assert [op.stage.data for op in reductions] == ["T_avg_pool2d_sum"]
