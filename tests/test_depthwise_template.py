"""The depthwise_nhwc template (vectors along channels, a register tile of output pixels, the
padding read in place or from a copy): NCHW depthwise layers through the default pipeline
(alter-op-layout turns them NHWC and pads their channels) against the interpreter on fresh
random inputs, every knob value on NHWC kernels, and which kernels it claims."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import make_context, te
from lathe.dialects.functions import defined_functions, is_kernel
from lathe.lowering.anchors import ROLE_DEPTHWISE
from lathe.lowering.depthwise_template import depthwise_space
from lathe.lowering.schedules import plan_kernel
from lathe.passes.fold_constant import bind_params
from lathe.pipelines import DEFAULT_OPT_LEVEL, GRAPH_PIPELINES, build_pipeline
from lathe.textual_ir.parser import parse_relay

ACTIVATIONS = {
    "relu": "nn.relu(%1)",
    "relu6": "clip(%1, a_min=0f, a_max=6f)",
    "silu": "multiply(%1, sigmoid(%1))",
    "hswish": "multiply(%1, divide(clip(add(%1, 3f), a_min=0f, a_max=6f), 6f))",
}


def _nchw(c: int, h: int, w: int, k: int, s: int, pads, dilation: int, act: str) -> str:
    """A MobileNet block's depthwise conv and the pointwise conv after it (which keeps the
    depthwise output NHWC: a model's last layer would have its transpose back fused in)."""
    return f"""def @main(%x: Tensor[(1, {c}, {h}, {w}), float32], %w: Tensor[({c}, 1, {k}, {k}), float32],
              %b: Tensor[({c}), float32], %p: Tensor[(16, {c}, 1, 1), float32]) {{
      %0 = nn.conv2d(%x, %w, strides=[{s}, {s}], padding={list(pads)}, dilation=[{dilation}, {dilation}],
                     groups={c}, kernel_size=[{k}, {k}]);
      %1 = nn.bias_add(%0, %b);
      %2 = {ACTIVATIONS[act]};
      nn.conv2d(%2, %p, kernel_size=[1, 1])
    }}"""


def _nhwc(c: int, h: int, w: int, k: int, s: int, pads, dilation: int = 1) -> str:
    return f"""def @main(%x: Tensor[(1, {h}, {w}, {c}), float32], %w: Tensor[({k}, {k}, 1, {c}), float32]) {{
      nn.conv2d(%x, %w, strides=[{s}, {s}], padding={list(pads)}, dilation=[{dilation}, {dilation}], groups={c},
                kernel_size=[{k}, {k}], data_layout="NHWC", kernel_layout="HWIO")
    }}"""


def _templates(src: str, params: dict) -> list[str]:
    """The templates the default pipeline plans for the program's kernels."""
    m = bind_params(parse_relay(src), params)
    build_pipeline(GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + ",lower-graph-to-te").apply(make_context(), m)
    return [plan_kernel(f, 16).template_name for f in defined_functions(m) if is_kernel(f)]


# channels, height, width, kernel, stride, padding (top, left, bottom, right), dilation, activation
CASES = [
    (12, 14, 14, 3, 1, (1, 1, 1, 1), 1, "relu"),  # 12 channels: padded to 16 (8 stay NCHW)
    (24, 17, 17, 3, 2, (1, 1, 1, 1), 1, "relu6"),  # a width no tile divides, stride 2
    (96, 7, 7, 5, 1, (2, 2, 2, 2), 1, "silu"),  # 7x7: every tile at the border
    (120, 14, 14, 5, 2, (1, 1, 2, 2), 1, "hswish"),  # TF "same" padding at stride 2: asymmetric
    (672, 7, 7, 3, 1, (1, 1, 1, 1), 1, "silu"),
    (160, 7, 7, 5, 1, (2, 2, 2, 2), 1, "hswish"),  # two vectors a tile by default, 5 blocks
    (32, 4, 112, 3, 1, (1, 1, 1, 1), 1, "relu"),  # a wide row
    (16, 9, 1, 3, 1, (1, 1, 1, 1), 1, "relu"),  # one pixel wide
    (48, 13, 13, 3, 1, (2, 2, 2, 2), 2, "relu"),  # dilation 2
    (40, 11, 12, 3, 2, (0, 1, 1, 2), 1, "relu6"),  # every side padded differently
    (64, 10, 10, 3, 1, (0, 0, 0, 0), 1, "relu"),  # no padding: no padded stage at all
    (240, 28, 28, 5, 1, (2, 2, 2, 2), 1, "silu"),  # 14-pixel tiles by default: two a row, each at a border
    (120, 14, 14, 5, 1, (2, 2, 2, 2), 1, "hswish"),  # one 14-pixel tile a row, both borders in it
]


@pytest.mark.parametrize("c, h, w, k, s, pads, dilation, act", CASES)
def test_depthwise_layers_agree_with_the_interpreter(c, h, w, k, s, pads, dilation, act, rng):
    src = _nchw(c, h, w, k, s, pads, dilation, act)
    params = {
        "w": (rng.standard_normal((c, 1, k, k)) / k).astype(np.float32),
        "b": (rng.standard_normal(c) * 0.1).astype(np.float32),
        "p": (rng.standard_normal((16, c, 1, 1)) / c**0.5).astype(np.float32),
    }
    assert "depthwise_nhwc" in _templates(src, params)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), params=params, x=x)
    got = lathe.compile(parse_relay(src), params=params, num_threads=2).run(x=x)
    assert max_rel_err(got, ref) < 1e-5


def _kernel(src: str, config: str | None = None):
    m = parse_relay(src)
    sched = f',apply-schedule{{config="{config}"}}' if config else ""
    build_pipeline("fuse-ops,lower-graph-to-te" + sched).apply(make_context(), m)
    return m


@pytest.mark.parametrize(
    "c, h, w, k, s, pads, dilation",
    [
        (32, 6, 17, 3, 2, (0, 1, 1, 2), 1),  # asymmetric, stride 2, a width no tile divides
        (64, 7, 7, 5, 1, (2, 2, 2, 2), 1),  # two channel blocks of 32, rows few
        (16, 9, 9, 3, 1, (2, 2, 2, 2), 2),
        (8, 5, 14, 3, 1, (1, 1, 1, 1), 1),  # 8 channels: half a vector
    ],
)
def test_every_knob_value_agrees(c, h, w, k, s, pads, dilation, rng):
    src = _nhwc(c, h, w, k, s, pads, dilation)
    x = rng.standard_normal((1, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((k, k, 1, c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=wt)
    (f,) = [o for o in defined_functions(_kernel(src)) if is_kernel(o)]
    plan = plan_kernel(f, 16)
    assert plan.template_name == "depthwise_nhwc"
    for knob in plan.space:
        for v in knob.candidates:
            got = lathe.compile(_kernel(src, f"depthwise_nhwc:{knob.name}={v}"), num_threads=2).run(x=x, w=wt)
            assert max_rel_err(got, ref) < 1e-5, (knob.name, v)


def _anchor(src: str) -> te.ComputeOp:
    return next(op for op in _kernel(src).walk() if isinstance(op, te.ComputeOp) and op.anchor is not None)


def test_the_space_follows_the_layer():
    """Divisor tiles where the width has one from 4 up (7 at 7, 14 and 56, 8 at 112), a guarded
    4 at a prime width; threads over rows and channel blocks where rows are few."""
    names = ("block_c", "tile_w", "order", "grain", "pad", "prefetch")

    def defaults(src: str) -> dict:
        a = _anchor(src)
        space = depthwise_space(a, a, 16)
        assert space is not None and tuple(k.name for k in space) == names
        return {k.name: k.default for k in space}

    assert defaults(_nhwc(1152, 7, 7, 5, 1, (2, 2, 2, 2))) == dict(
        block_c=32, tile_w=7, order="xc", grain="rows_blocks", pad="inline", prefetch="off"
    )  # two vectors: 7 pixels are too few chains for 5x5 taps (below)
    assert defaults(_nhwc(1152, 7, 7, 3, 1, (1, 1, 1, 1)))["block_c"] == 16
    assert defaults(_nhwc(96, 112, 112, 3, 2, (1, 1, 1, 1)))["tile_w"] == 8
    big = defaults(_nhwc(32, 112, 112, 3, 1, (1, 1, 1, 1)))
    assert big["tile_w"] == 8 and big["grain"] == "rows"
    assert defaults(_nhwc(16, 17, 17, 3, 1, (1, 1, 1, 1)))["tile_w"] == 4


def test_long_overlapping_taps_get_eight_chains_or_more():
    """A 5x5 stride-1 layer whose width gives only 7-pixel tiles (14, 28) takes 14 pixels: 14
    independent FMA chains where 7 wait on their K² dependent FMAs. Stride 2, 3x3, dilation
    and a width of 7 (no wider divisor) keep the narrow tile; widths with an 8 keep it."""

    def tile(c, h, k, s, pad, dilation=1) -> int:
        a = _anchor(_nhwc(c, h, h, k, s, (pad,) * 4, dilation))
        space = depthwise_space(a, a, 16)
        assert space is not None
        return next(kn for kn in space if kn.name == "tile_w").default

    assert tile(672, 14, 5, 1, 2) == 14 and tile(240, 28, 5, 1, 2) == 14 and tile(32, 14, 7, 1, 3) == 14
    assert tile(672, 28, 5, 2, 2) == 7  # stride 2: output 14, twice the input vectors per pixel
    assert tile(480, 14, 3, 1, 1) == 7
    assert tile(48, 28, 5, 1, 4, dilation=2) == 7
    assert tile(1152, 7, 5, 1, 2) == 7
    assert tile(64, 56, 5, 1, 2) == 8
    assert tile(64, 18, 5, 1, 0) == 7  # no padding (output 14), no padded stage: the old rule


def test_a_seven_pixel_row_of_long_taps_takes_two_vectors():
    """At width 7 no wider tile divides the row: a 5x5 stride-1 layer takes two channel vectors
    (14 chains) where its channels allow; stride 2, 3x3 and 48 channels (three vectors) keep one."""

    def block(c, k, s, pad) -> int:
        a = _anchor(_nhwc(c, 7 * s, 7 * s, k, s, (pad,) * 4))
        space = depthwise_space(a, a, 16)
        assert space is not None
        return next(kn for kn in space if kn.name == "block_c").default

    assert block(960, 5, 1, 2) == 32 and block(64, 5, 1, 2) == 32
    assert block(672, 5, 2, 2) == 16 and block(1152, 3, 1, 1) == 16 and block(48, 5, 1, 2) == 16


def test_what_the_template_does_not_claim():
    """A grouped conv that is not depthwise keeps the general templates; an NCHW depthwise and
    one whose channels no 4-lane vector divides keep the per-stage schedules."""
    grouped = """def @main(%x: Tensor[(1, 8, 8, 32), float32], %w: Tensor[(3, 3, 8, 32), float32]) {
      nn.conv2d(%x, %w, padding=[1, 1, 1, 1], groups=4, data_layout="NHWC", kernel_layout="HWIO")
    }"""
    a = _anchor(grouped)
    assert a.role is None and depthwise_space(a, a, 16) is None
    nchw = """def @main(%x: Tensor[(1, 32, 8, 8), float32], %w: Tensor[(32, 1, 3, 3), float32]) {
      nn.conv2d(%x, %w, padding=[1, 1, 1, 1], groups=32)
    }"""
    (f,) = [o for o in defined_functions(_kernel(nchw)) if is_kernel(o)]
    assert plan_kernel(f, 16).template_name == "per_stage"
    odd = _anchor(_nhwc(6, 8, 8, 3, 1, (1, 1, 1, 1)))
    assert odd.role is not None and odd.role.data == ROLE_DEPTHWISE and depthwise_space(odd, odd, 16) is None


def test_no_padding_reads_the_input_in_place():
    stages = [op for op in _kernel(_nhwc(64, 10, 10, 3, 1, (0, 0, 0, 0))).walk() if isinstance(op, te.ComputeOp)]
    assert [s.stage.data for s in stages] == ["T_conv2d"]


def test_the_tuner_sees_a_depthwise_task_and_replays_its_default(rng):
    """extract_tasks finds the depthwise layer as a depthwise_nhwc task with the template's
    knobs; its default configuration, spelled out, gives exactly the default schedule's IR."""
    from lathe.api import parse_source
    from lathe.lowering.schedules import Config
    from lathe.tuner.search import full
    from lathe.tuner.tasks import extract_tasks

    c, k = 96, 5
    src = _nchw(c, 14, 14, k, 2, (1, 1, 2, 2), 1, "silu")
    params = {
        "w": rng.standard_normal((c, 1, k, k)).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
        "p": rng.standard_normal((16, c, 1, 1)).astype(np.float32),
    }
    tasks = [
        t
        for t in extract_tasks(parse_source(src, "block.lathe"), "llvm -mcpu=znver4", params)
        if t.template == "depthwise_nhwc"
    ]
    assert len(tasks) == 1 and tasks[0].weight == 1
    task = tasks[0]
    assert [kn.name for kn in task.space] == ["block_c", "tile_w", "order", "grain", "pad", "prefetch"]
    default = full(task.template, task.space, Config(task.template))
    assert Config.parse(str(default)) == default

    def scheduled(pipeline: str) -> str:
        m = bind_params(parse_relay(src), params)
        build_pipeline(GRAPH_PIPELINES[DEFAULT_OPT_LEVEL] + ",lower-graph-to-te," + pipeline).apply(make_context(), m)
        return str(m)

    default_ir = scheduled("apply-default-schedule{vector_lanes=16}")
    assert scheduled(f'apply-schedule{{config="{default}" vector_lanes=16}}') == default_ir
    assert scheduled('apply-schedule{config="depthwise_nhwc:pad=copy" vector_lanes=16}') != default_ir


# channels, height, width, kernel, stride, padding (top, left, bottom, right), dilation: the
# widths and strides where the loop over a row's tiles is peeled (its first and last tiles keep
# the column tests, the ones between test nothing) and those where every tile is at a border
BORDER_CASES = [
    (32, 9, 28, 5, 1, (2, 2, 2, 2), 1),  # 4 tiles of 7: two interior
    (48, 8, 14, 5, 1, (2, 2, 2, 2), 1),  # 2 tiles of 7: both at a border
    (32, 6, 28, 3, 1, (1, 1, 1, 1), 1),
    (16, 7, 14, 3, 1, (0, 1, 2, 1), 1),  # asymmetric rows
    (32, 5, 17, 5, 1, (2, 2, 2, 2), 1),  # tiles of 4, the last guarded
    (32, 5, 17, 3, 1, (1, 0, 1, 2), 1),  # asymmetric columns: only the right side is tested
    (16, 7, 7, 5, 1, (2, 2, 2, 2), 1),  # one tile
    (32, 6, 28, 5, 2, (1, 1, 2, 2), 1),  # stride 2, TF "same" padding
    (16, 9, 28, 3, 2, (1, 1, 1, 1), 1),
    (32, 8, 28, 3, 1, (2, 2, 2, 2), 2),  # dilation 2: the taps reach 2 pixels out
    (16, 6, 14, 5, 1, (4, 4, 4, 4), 2),
]


@pytest.mark.parametrize("c, h, w, k, s, pads, dilation", BORDER_CASES)
@pytest.mark.parametrize("config", [None, "depthwise_nhwc:grain=rows_blocks", "depthwise_nhwc:order=cx,tile_w=4"])
def test_border_tiles_agree_with_the_interpreter(c, h, w, k, s, pads, dilation, config, rng):
    src = _nhwc(c, h, w, k, s, pads, dilation)
    x = rng.standard_normal((1, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((k, k, 1, c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=wt)
    got = lathe.compile(_kernel(src, config), num_threads=2).run(x=x, w=wt)
    assert max_rel_err(got, ref) < 1e-5


def _defined_by(v, values) -> bool:
    """Whether the index is computed from any of the values."""
    from xdsl.ir import Block

    owner = v.owner
    return v in values or (not isinstance(owner, Block) and any(_defined_by(o, values) for o in owner.operands))


def test_only_the_first_and_last_tiles_test_columns():
    """5x5 at width 28, tiles of 7: the loop over a row's tiles keeps tiles 1-2 (the interior),
    whose selects are the row's only; the first and last tiles are peeled, each testing one side
    on its two outer pixels."""
    from xdsl.dialects import arith, scf

    from lathe.dialects.loop import annotation_of, constant_int

    m = _kernel(_nhwc(32, 28, 28, 5, 1, (2, 2, 2, 2)), "depthwise_nhwc:tile_w=7")  # (the default is 14 now)
    build_pipeline("apply-default-schedule,lower-te-to-loop,cleanup-loops").apply(make_context(), m)
    (f,) = [o for o in defined_functions(m) if is_kernel(o)]
    loops = [o for o in f.walk() if isinstance(o, scf.ForOp)]
    pixels = {o.body.block.args[0] for o in loops if (a := annotation_of(o)) is not None and a.kind.data == "unroll"}
    (tiles,) = [o for o in loops if o.body.block.args[0].name_hint == "x_outer"]
    assert (constant_int(tiles.lb), constant_int(tiles.ub)) == (1, 3)

    def column_tests(region_op) -> list:
        selects = [s for s in region_op.walk() if isinstance(s, arith.SelectOp)]
        return [s for s in selects if _defined_by(s.cond, pixels | {tiles.body.block.args[0]})]

    assert not column_tests(tiles) and any(isinstance(s, arith.SelectOp) for s in tiles.walk())
    peeled = column_tests(f)
    assert sorted(s.cond.owner.predicate.value.data for s in peeled) == [2, 5]  # one x < 28, one x >= 0
    for s in peeled:  # each in a loop over two pixels
        pixel_loop = s.parent_op()
        while pixel_loop.body.block.args[0] not in pixels:
            pixel_loop = pixel_loop.parent_op()
        assert constant_int(pixel_loop.ub) - constant_int(pixel_loop.lb) == 2
