"""The conv2d_nhwc template's thread-loop orders (weight-stationary, with packed weight
blocks), its in-place read of a few-channel input, three-vector blocks and unrolled window
loops: every knob value against the interpreter on fresh random inputs, on sizes no tile
divides too (widths 1, 7, 14, 17; padded channel counts through the whole pipeline); the
defaults by shape, and the tuner's space."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_compiles_as_interpreted, max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.lowering.conv2d_template import CONV2D_ORDERS, conv2d_space
from lathe.lowering.schedule_builder import Config
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


@pytest.mark.parametrize(
    "h, c, f, k, stride, pad",
    [
        (1, 64, 64, 1, 1, 0),  # one pixel
        (7, 96, 144, 1, 1, 0),  # EfficientNet's 7x7 1x1s, three-vector blocks
        (14, 48, 96, 1, 1, 0),  # 14x14: blocks of two or three vectors
        (14, 40, 80, 1, 1, 0),  # one-vector blocks: a 14-pixel tile
        (17, 16, 48, 3, 1, 1),  # a prime width: the last tile of a row guarded
    ],
)
def test_small_output_choices_agree(h, c, f, k, stride, pad, rng):
    """Weight-stationary packed blocks at small outputs, three-vector blocks and unrolled
    window loops (split input channels too) compute what the interpreter does."""
    src = _conv(h, c, f, k, stride, pad)
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    configs = ["conv2d_nhwc", "conv2d_nhwc:order=fyx_pack,unroll_window=3", "conv2d_nhwc:split_rc=8,unroll_window=2"]
    configs += [f"conv2d_nhwc:block_f=48,order={o}" for o in CONV2D_ORDERS if f % 48 == 0]
    for config in configs:
        assert max_rel_err(_run(src, config, x, w), ref) < 1e-5, config


@pytest.mark.parametrize("h, f, stride", [(14, 16, 2), (7, 48, 1), (17, 16, 2)])
@pytest.mark.parametrize("mode", ["copy", "inline"])
def test_first_layer_unrolled_window_agrees(h, f, stride, mode, rng):
    """A 3-channel first layer with its window loops unrolled, innermost first (the bounds
    tests of an in-place read then shared between taps), in either window order."""
    src = _conv(h, 3, f, 3, stride, 1)
    x = rng.standard_normal((1, h, h, 3)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 3, f)) / np.sqrt(27)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    for unrolled, order in ((1, "ry-rx-rc"), (2, "ry-rx-rc"), (3, "rc-ry-rx")):
        config = f"conv2d_nhwc:pad={mode},unroll_window={unrolled},reduce_order={order}"
        assert max_rel_err(_run(src, config, x, w), ref) < 1e-5, config


@pytest.mark.parametrize("size, filters", [(14, 16), (14, 24), (17, 40), (7, 24)])
def test_padded_channel_counts_compile_as_interpreted(size, filters, rng):
    """An exported stem and block (NCHW, weights bound): a 3-channel 3x3 stride-2 first layer,
    then 1x1 expand and project convolutions at the small output, with 24 and 40 filters
    padded to 32 and 48 by the layout pass, as the interpreter computes them."""
    wide = 6 * filters
    src = f"""def @main(%x: Tensor[(1, 3, {2 * size}, {2 * size}), float32], %w0: Tensor[({filters}, 3, 3, 3), float32],
    %w1: Tensor[({wide}, {filters}, 1, 1), float32], %w2: Tensor[({filters}, {wide}, 1, 1), float32]) {{
  %0 = nn.conv2d(%x, %w0, strides=[2, 2], padding=[1, 1, 1, 1], kernel_size=[3, 3]);
  %1 = nn.relu(%0);
  %2 = nn.conv2d(%1, %w1, padding=[0, 0, 0, 0], kernel_size=[1, 1]);
  %3 = nn.relu(%2);
  %4 = nn.conv2d(%3, %w2, padding=[0, 0, 0, 0], kernel_size=[1, 1]);
  add(%4, %1)
}}"""

    def weight(*shape):
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    params = {"w0": weight(filters, 3, 3, 3), "w1": weight(wide, filters, 1, 1), "w2": weight(filters, wide, 1, 1)}
    x = rng.standard_normal((1, 3, 2 * size, 2 * size)).astype(np.float32)
    assert_compiles_as_interpreted(src, params, {"x": x})


def test_small_output_and_first_layer_defaults():
    """1x1 convolutions at 14x14 and 7x7 are weight-stationary with packed blocks whatever the
    weight's size, at 28x28 a small weight keeps the shared order; 48 and 144 filters get
    blocks of three vectors, 96 keeps two; one-vector blocks (80, 112 filters) at width 14
    take 14-pixel tiles (enough accumulators for the FMA pipes); a 3-channel first layer read in place unrolls its
    window's column and channel loops, one copied (32 filters at 224) unrolls none."""
    assert _defaults(_conv(7, 192, 1152, 1, 1, 0))["order"] == "fyx_pack"
    assert _defaults(_conv(14, 112, 672, 1, 1, 0))["order"] == "fyx_pack"
    assert _defaults(_conv(14, 480, 80, 1, 1, 0))["order"] == "fyx_pack"
    assert _defaults(_conv(28, 40, 240, 1, 1, 0))["order"] == "yxf"
    assert _defaults(_conv(7, 96, 64, 1, 1, 0))["order"] == "yxf"  # two blocks of 32: too few for the threads
    assert _defaults(_conv(28, 40, 240, 1, 1, 0))["block_f"] == 48
    assert _defaults(_conv(56, 24, 144, 1, 1, 0))["block_f"] == 48
    assert _defaults(_conv(14, 48, 96, 1, 1, 0))["block_f"] == 32
    assert [_defaults(_conv(14, 480, f, 1, 1, 0))["tile_w"] for f in (80, 112, 96)] == [14, 14, 7]
    assert _defaults(_conv(7, 480, 80, 1, 1, 0))["tile_w"] == 7
    first16 = _defaults(_conv(224, 3, 16, 3, 2, 1))
    assert (first16["pad"], first16["unroll_window"]) == ("inline", 2)
    first32 = _defaults(_conv(224, 3, 32, 3, 2, 1))
    assert (first32["pad"], first32["unroll_window"]) == ("copy", 0)


def test_space_gains_the_new_choices_and_keeps_the_old():
    """The tuner's space: three-vector blocks and 0-3 unrolled window loops are choices; every
    value the space offered before (two-, one- and four-vector blocks, every order and pad
    mode, no unrolled window) is still one."""
    m = parse_relay(_conv(14, 48, 192, 1, 1, 0))
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    (f,) = [op for op in m.walk() if "lathe.kernel" in getattr(op, "attributes", {})]
    space = {kn.name: kn.candidates for kn in plan_kernel(f, 16).space}
    assert set(space["block_f"]) == {16, 32, 48, 64}
    assert set(space["unroll_window"]) == {0, 1, 2, 3}
    assert set(space["order"]) == set(CONV2D_ORDERS) and set(space["pad"]) == {"copy", "inline"}
    old = Config.parse("conv2d_nhwc:tile_w=7,block_f=64,split_rc=16,order=fyx,pad=inline,unroll_w=off")
    assert old.resolve("conv2d_nhwc", plan_kernel(f, 16).space)["unroll_window"] == 0


@pytest.mark.parametrize(
    "h, c, f, k, stride, pad",
    [
        (7, 64, 64, 3, 1, 1),  # ResNet's 512 @ 7, scaled down: 7 rows, no row tile divides but 1
        (9, 32, 32, 3, 2, 1),  # stride 2 to 5x5: the last row tile guarded
        (11, 16, 48, 3, 1, 0),  # no padding, 9x9 out, three-vector blocks
        (6, 48, 32, 1, 1, 0),  # 1x1: the weight read directly
    ],
)
def test_row_tiles_agree(h, c, f, k, stride, pad, rng):
    """Register tiles of several output rows (tile_h), in every thread-loop order, with the
    pixels unrolled or not, split input channels and narrow or guarded columns, compute what
    the interpreter does."""
    src = _conv(h, c, f, k, stride, pad)
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    configs = [
        "conv2d_nhwc:tile_h=2,order=yxf",
        "conv2d_nhwc:tile_h=3,order=fyx",
        "conv2d_nhwc:tile_h=4,order=fyx_pack,tile_w=4",
        "conv2d_nhwc:tile_h=2,order=fyx_pack,unroll_w=off,reduce_order=rc-ry-rx",
        "conv2d_nhwc:tile_h=3,split_rc=8,unroll_window=2,block_f=16",
    ]
    for config in configs:
        assert max_rel_err(_run(src, config, x, w), ref) < 1e-5, config


def test_row_tiles_in_the_space():
    """tile_h offers 1-4 rows (no more than the output has) and defaults to one row, so every
    configuration written before it replays the schedule it named."""
    for h, rows in ((14, {1, 2, 3, 4}), (3, {1, 2, 3})):
        m = parse_relay(_conv(h, 32, 64, 3, 1, 1))
        build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
        (f,) = [op for op in m.walk() if "lathe.kernel" in getattr(op, "attributes", {})]
        space = {kn.name: kn for kn in plan_kernel(f, 16).space}
        assert set(space["tile_h"].candidates) == rows and space["tile_h"].default == 1
        old = Config.parse("conv2d_nhwc:block_f=32,order=fyx_pack,unroll_w=off")
        assert old.resolve("conv2d_nhwc", plan_kernel(f, 16).space)["tile_h"] == 1
