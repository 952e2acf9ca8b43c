"""The conv2d_nhwc template's thread-loop orders (weight-stationary, with packed weight
blocks) and its in-place read of a few-channel input: every knob value against the
interpreter on fresh random inputs, on sizes no tile divides too; the defaults by shape."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.lowering.conv2d_template import CONV2D_ORDERS, conv2d_space
from lathe.lowering.schedules import plan_kernel
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _conv(h: int, c: int, f: int, k: int, stride: int, pad: int, relu: bool = True) -> str:
    conv = (
        f"nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[{pad}, {pad}, {pad}, {pad}], "
        f'kernel_size=[{k}, {k}], data_layout="NHWC", kernel_layout="HWIO")'
    )
    body = f"nn.relu({conv})" if relu else conv
    return f"def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[({k}, {k}, {c}, {f}), float32]) {{ {body} }}"


def _run(src: str, config: str, x, w):
    m = parse_relay(src)
    build_pipeline(f'fuse-ops,lower-graph-to-te,apply-schedule{{config="{config}"}}').apply(make_context(), m)
    return lathe.compile(m, num_threads=2).run(x=x, w=w)


@pytest.mark.parametrize(
    "h, c, f, k, stride, pad, relu",
    [
        (7, 64, 64, 3, 1, 1, True),  # a deep layer's 7x7, scaled down
        (10, 32, 96, 3, 2, 1, False),  # strided, the conv is the kernel's output
        (6, 48, 128, 1, 1, 0, True),  # 1x1, no padding (the weight read directly)
        (11, 16, 32, 3, 1, 1, True),  # 11 pixels: tiles that do not divide
    ],
)
@pytest.mark.parametrize("order", CONV2D_ORDERS)
def test_thread_loop_orders_agree(h, c, f, k, stride, pad, relu, order, rng):
    src = _conv(h, c, f, k, stride, pad, relu)
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    for block_f in (16, 32):
        got = _run(src, f"conv2d_nhwc:order={order},block_f={block_f}", x, w)
        assert max_rel_err(got, ref) < 1e-5, (order, block_f)


@pytest.mark.parametrize("k, stride, pad", [(3, 2, 1), (7, 2, 3), (3, 1, 0)])
@pytest.mark.parametrize("mode", ["copy", "inline"])
def test_a_few_channels_read_in_place_agree(k, stride, pad, mode, rng):
    """A first layer (3 channels): the padded copy or bounds checks per tap, the same function."""
    src = _conv(19, 3, 16, k, stride, pad)
    x = rng.standard_normal((1, 19, 19, 3)).astype(np.float32)
    w = (rng.standard_normal((k, k, 3, 16)) / np.sqrt(k * k * 3)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    for reduce_order in ("ry-rx-rc", "rc-ry-rx"):
        got = _run(src, f"conv2d_nhwc:pad={mode},reduce_order={reduce_order}", x, w)
        assert max_rel_err(got, ref) < 1e-5, (mode, reduce_order)


def _defaults(src: str) -> dict:
    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    (f,) = [op for op in m.walk() if "lathe.kernel" in getattr(op, "attributes", {})]
    plan = plan_kernel(f, 16)
    assert plan.template_name == "conv2d_nhwc"
    return {kn.name: kn.default for kn in plan.space}


def test_defaults_follow_the_shape():
    """Weight-stationary with packed blocks where the weight outgrows L2 (ResNet's layer3 and
    layer4, ResNet-50's wide 1x1s), the old order where it stays in cache (layer1, layer2); a
    3-channel first layer with few filters reads its input in place, a wider one copies it."""
    assert _defaults(_conv(7, 512, 512, 3, 1, 1))["order"] == "fyx_pack"
    assert _defaults(_conv(14, 256, 256, 3, 1, 1))["order"] == "fyx_pack"
    assert _defaults(_conv(7, 2048, 512, 1, 1, 0))["order"] == "fyx_pack"
    assert _defaults(_conv(56, 64, 64, 3, 1, 1))["order"] == "yxf"
    assert _defaults(_conv(28, 128, 128, 3, 1, 1))["order"] == "yxf"
    assert _defaults(_conv(320, 3, 16, 3, 2, 1))["pad"] == "inline"
    assert _defaults(_conv(224, 3, 64, 7, 2, 3))["pad"] == "copy"
    assert _defaults(_conv(56, 64, 64, 3, 1, 1))["pad"] == "copy"


def test_packed_block_is_a_tile_of_the_output_channel_loop():
    """fyx_pack: the weight's cache_read is computed at the output-channel block loop (the
    threads' loop), outside the register tile's compute_at, and lowers to one buffer per block."""
    m = parse_relay(_conv(7, 64, 64, 3, 1, 1))
    build_pipeline('fuse-ops,lower-graph-to-te,apply-schedule{config="conv2d_nhwc:order=fyx_pack,block_f=32"}').apply(
        make_context(), m
    )
    text = str(m)
    assert "te.cache_read" in text and "te.compute_at" in text
    build_pipeline("lower-te-to-loop").apply(make_context(), m)
    assert "memref<3x3x64x32xf32>" in str(m)  # the block: every tap and input channel of 32 filters


def test_conv2d_space_is_none_off_nhwc():
    m = parse_relay(
        "def @main(%x: Tensor[(1, 16, 5, 5), float32], %w: Tensor[(32, 16, 3, 3), float32]) "
        "{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1]) }"
    )
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    anchor = next(op for op in m.walk() if isinstance(op, te.ComputeOp) and op.anchor is not None)
    assert conv2d_space(anchor, anchor, 16) is None
