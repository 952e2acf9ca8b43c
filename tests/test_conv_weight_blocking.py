"""Conv weights blocked at compile time (block-conv-weights, kernel layout OHWI{b}o): the pass's
rewrite and its block width (the template's own rule), the blocked op's shapes and errors, the
numpy reference and the compiled conv against the interpreter on the HWIO original (several
blocks, channel counts, strides, 1x1 and 3x3, bias + relu), and the tuner's space for it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import graph, make_context
from lathe.lowering.conv2d_template import BLOCKED_WEIGHT_ORDERS
from lathe.passes.conv_weight_blocking import conv_block_width
from lathe.passes.fold_constant import bind_params
from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, build_pipeline, pipeline_for, with_pass_options
from lathe.textual_ir.parser import parse_relay

pytestmark = pytest.mark.usefixtures("direct_convolutions")  # the direct template's weights and tiles


def _layer(h: int, c: int, f: int, k: int, stride: int, pad: int) -> str:
    """NHWC conv + bias + relu, its weight HWIO (what alter-op-layout makes of an export's)."""
    conv = (
        f"nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[{pad}, {pad}, {pad}, {pad}], "
        f'kernel_size=[{k}, {k}], data_layout="NHWC", kernel_layout="HWIO")'
    )
    return (
        f"def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[({k}, {k}, {c}, {f}), float32], "
        f"%b: Tensor[({f},), float32]) {{ nn.relu(nn.bias_add({conv}, %b, axis=3)) }}"
    )


def _params(rng, c: int, f: int, k: int) -> dict:
    return {
        "w": (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32),
        "b": (0.1 * rng.standard_normal(f)).astype(np.float32),
    }


def _convs_after(src: str, params: dict, lanes: int) -> list:
    """The convolutions after -O3's graph passes up to fusion (which would hide the weight's
    constant behind a kernel's parameter)."""
    m = bind_params(parse_relay(src), params)
    passes = GRAPH_PIPELINES[3].removesuffix(",fuse-ops")
    target = {"vector_lanes": lanes}  # (what a backend's graph_pass_options gives both passes)
    build_pipeline(with_pass_options(passes, {"alter-op-layout": target, "block-conv-weights": target})).apply(
        make_context(), m
    )
    return [op for op in m.walk() if isinstance(op, graph.Conv2dOp)]


@pytest.mark.parametrize(
    "h, c, f, k, stride, pad, lanes, block",
    [
        (7, 64, 128, 3, 1, 1, 16, 32),  # a deep layer's 7x7: two-vector blocks
        (14, 32, 96, 3, 2, 1, 16, 32),  # strided, three blocks
        (6, 48, 80, 1, 1, 0, 16, 16),  # 1x1; 80 filters: one-vector blocks
        (17, 16, 192, 1, 1, 0, 16, 48),  # width 17's guarded 6-pixel tile: three-vector blocks
        (9, 24, 64, 3, 1, 1, 8, 16),  # an 8-lane target's blocks, run by the 16-lane template
        (11, 8, 64, 3, 2, 0, 4, 8),  # a 4-lane target's: eight blocks of 8
    ],
)
def test_blocked_conv_agrees_with_the_interpreter(h, c, f, k, stride, pad, lanes, block, rng):
    src = _layer(h, c, f, k, stride, pad)
    params = _params(rng, c, f, k)
    (conv,) = _convs_after(src, params, lanes)
    assert conv.attrs()["kernel_layout"] == f"OHWI{block}o"
    assert graph.shape_of(conv.weight.type) == [f // block, k, k, c, block]
    assert isinstance(conv.weight.owner, graph.ConstantOp)  # folded: nothing is packed per run
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), params, x=x)
    pipeline = pipeline_for(DEFAULT_OPT_LEVEL).replace(
        "block-conv-weights", f"block-conv-weights{{vector_lanes={lanes}}}"
    )
    got = lathe.compile(parse_relay(src), params=params, num_threads=2, pipeline=pipeline).run(x)
    assert max_rel_err(got, ref) < 1e-5


def test_one_block_and_one_lane_keep_hwio(rng):
    """32 filters are one block (HWIO is already its contiguous layout); a one-lane target (the
    GPU backends') has no vector block; a weight that is an input is not a constant."""
    (conv,) = _convs_after(_layer(8, 16, 32, 3, 1, 1), _params(rng, 16, 32, 3), 16)
    assert conv.attrs()["kernel_layout"] == "HWIO"
    (conv,) = _convs_after(_layer(8, 16, 64, 3, 1, 1), _params(rng, 16, 64, 3), 1)
    assert conv.attrs()["kernel_layout"] == "HWIO"
    (conv,) = _convs_after(_layer(8, 16, 64, 3, 1, 1), {}, 16)
    assert conv.attrs()["kernel_layout"] == "HWIO"


def test_block_width_is_the_templates_default():
    """The pass blocks by the block_f the template would choose: the one rule, shared."""
    assert [conv_block_width(ow, f, 16) for ow, f in [(7, 512), (56, 64), (17, 192), (8, 192), (14, 80), (7, 24)]] == [
        32,
        32,
        48,
        32,
        16,
        None,
    ]


def _blocked_src(h: int, c: int, f: int, b: int, k: int, stride: int, pad: int) -> str:
    conv = (
        f"nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[{pad}, {pad}, {pad}, {pad}], "
        f'kernel_size=[{k}, {k}], data_layout="NHWC", kernel_layout="OHWI{b}o")'
    )
    return (
        f"def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[({f // b}, {k}, {k}, {c}, {b}), float32]) "
        f"{{ nn.relu({conv}) }}"
    )


def _block(w_hwio: np.ndarray, b: int) -> np.ndarray:
    kh, kw, c, f = w_hwio.shape
    return np.ascontiguousarray(w_hwio.reshape(kh, kw, c, f // b, b).transpose(3, 0, 1, 2, 4))


@pytest.mark.parametrize("b, f", [(16, 64), (32, 96), (48, 96)])
def test_reference_reads_the_blocked_layout(b, f, rng):
    """The interpreter on OHWI{b}o equals it on the HWIO weight the blocks came from."""
    c, k = 24, 3
    w = rng.standard_normal((k, k, c, f)).astype(np.float32)
    x = rng.standard_normal((1, 9, 9, c)).astype(np.float32)
    hwio = _blocked_src(9, c, f, b, k, 2, 1).replace(f'kernel_layout="OHWI{b}o"', 'kernel_layout="HWIO"')
    hwio = hwio.replace(f"({f // b}, {k}, {k}, {c}, {b})", f"({k}, {k}, {c}, {f})")
    ref = lathe.interpret(parse_relay(hwio), x=x, w=w)
    got = lathe.interpret(parse_relay(_blocked_src(9, c, f, b, k, 2, 1)), x=x, w=_block(w, b))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", BLOCKED_WEIGHT_ORDERS)
@pytest.mark.parametrize("tile_h", [1, 2])
def test_blocked_weight_as_an_input_every_order(order, tile_h, rng):
    """A blocked weight passed at run time (not folded): graph_to_te's index o // b, o % b,
    scheduled in both orders the template allows, one and two register rows."""
    h, c, f, b, k = 7, 32, 96, 32, 3
    src = _blocked_src(h, c, f, b, k, 1, 1)
    w = _block((rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32), b)
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    m = parse_relay(src)
    config = f"conv2d_nhwc:order={order},tile_h={tile_h}"
    build_pipeline(f'fuse-ops,lower-graph-to-te,apply-schedule{{config="{config}"}}').apply(make_context(), m)
    got = lathe.compile(m, num_threads=2).run(x=x, w=w)
    assert max_rel_err(got, ref) < 1e-5


@pytest.mark.parametrize(
    "layout, shape, message",
    [
        ("OHWI16o", (3, 3, 16, 32), "rank-5 weight"),
        ("OHWI16o", (2, 3, 3, 16, 32), r"wants a weight \[O/16, KH, KW, I, 16\]"),
        ("OHWI16o", (4, 3, 3, 8, 16), "expects 8 input channels"),
        ("OHWI0o", (2, 3, 3, 16, 16), "kernel_layout must be"),
        ("OHWIo", (2, 3, 3, 16, 16), "kernel_layout must be"),
        ("OHWI16i", (2, 3, 3, 16, 16), "kernel_layout must be"),
    ],
)
def test_malformed_blocked_kernels_are_refused(layout, shape, message):
    src = (
        f"def @main(%x: Tensor[(1, 8, 8, 16), float32], %w: Tensor[{shape}, float32]) "
        f'{{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1], data_layout="NHWC", kernel_layout="{layout}") }}'
    )
    with pytest.raises(lathe.LatheError, match=message):
        parse_relay(src)


# the register-tile defaults below are AVX-512's (32 vector registers), whatever this host has
AVX512 = "llvm -mcpu=znver4"


def test_tuner_space_of_a_blocked_conv(rng):
    """The tuner sees the blocked kernel: block_f has one choice, the weight's block, and the
    orders are those with nothing to pack."""
    from lathe.tuner.tasks import extract_tasks

    src = _layer(7, 64, 128, 3, 1, 1)
    (task,) = [
        t
        for t in extract_tasks(parse_relay(src), AVX512, params=_params(rng, 64, 128, 3))
        if t.template == "conv2d_nhwc"
    ]
    space = {kn.name: kn for kn in task.space}
    assert list(space["block_f"].candidates) == [32]
    assert set(space["order"].candidates) == set(BLOCKED_WEIGHT_ORDERS)
    assert space["order"].default == "fyx"  # weight-stationary at 7x7, was fyx_pack
    assert space["tile_h"].default == 2  # two rows of 7 pixels x two vectors: 28 accumulators


@pytest.mark.parametrize("h, f, rows", [(7, 128, 2), (5, 64, 2), (7, 192, 2), (14, 128, 1), (8, 64, 1), (1, 64, 1)])
def test_two_row_tiles_by_default_on_small_blocked_maps(h, f, rows, rng):
    """A blocked weight's register tile takes two rows up to 7x7 outputs (two rows of 7 pixels x
    two vectors: 28 accumulators, within AVX-512's registers), one row above (8x8 would hold 32)
    and on a one-row map."""
    from lathe.tuner.tasks import extract_tasks

    src = _layer(h, 32, f, 3, 1, 1)
    (task,) = [
        t for t in extract_tasks(parse_relay(src), AVX512, params=_params(rng, 32, f, 3)) if t.template == "conv2d_nhwc"
    ]
    assert {kn.name: kn for kn in task.space}["tile_h"].default == rows
