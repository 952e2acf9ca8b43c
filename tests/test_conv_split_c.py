"""conv2d_nhwc's input-channel split (knob split_c): each task computes the partial sums of one
part of the input channels over its tiles (rfactor by parts), and a last stage sums the parts
with the epilogue fused. Every combination against the interpreter on fresh random inputs:
1x1 and 3x3, stride 2, bias + relu and a residual add as epilogues, the conv as the kernel's
output, both thread orders, HWIO and compile-time blocked weights, two-row tiles and split
window loops inside a part; the buffer of partials is [parts, N, H, W, F]; the knob's
candidates."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err
from test_conv2d_template import _conv, _defaults, _run
from test_conv_weight_blocking import _block, _blocked_src

import lathe
from lathe.dialects import make_context
from lathe.errors import LatheError
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _conv_epilogue(h: int, c: int, f: int, k: int, stride: int, epilogue: str) -> str:
    """A conv with bias + relu, or + a residual input then relu (the ResNet block's end)."""
    oh = (h + 2 * (k // 2) - k) // stride + 1
    p = k // 2
    conv = (
        f"nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[{p}, {p}, {p}, {p}], "
        f'kernel_size=[{k}, {k}], data_layout="NHWC", kernel_layout="HWIO")'
    )
    if epilogue == "bias_relu":
        body, extra = f"nn.relu(nn.bias_add({conv}, %b, axis=3))", f", %b: Tensor[({f},), float32]"
    else:
        body, extra = f"nn.relu(add({conv}, %r))", f", %r: Tensor[(1, {oh}, {oh}, {f}), float32]"
    return (
        f"def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w: Tensor[({k}, {k}, {c}, {f}), float32]{extra}) "
        f"{{ {body} }}"
    )


def _inputs(rng, h, c, f, k, **more):
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    return x, w, {n: rng.standard_normal(s).astype(np.float32) for n, s in more.items()}


def _compile(src: str, config: str):
    m = parse_relay(src)
    build_pipeline(f'fuse-ops,lower-graph-to-te,apply-schedule{{config="{config}"}}').apply(make_context(), m)
    return m


@pytest.mark.parametrize(
    "h, c, f, k, stride",
    [
        (7, 128, 32, 3, 1),  # DenseNet block 4's 3x3 (scaled channels kept): one filter block
        (7, 64, 64, 1, 1),  # a 1x1 at 7x7, two filter blocks
        (14, 96, 48, 3, 2),  # stride 2, a three-vector block, 7 pixels a row
        (9, 64, 32, 3, 1),  # 9 pixels: tiles that do not divide the row
    ],
)
@pytest.mark.parametrize("epilogue", ["bias_relu", "residual"])
@pytest.mark.parametrize("parts", [2, 4])
def test_split_channels_agree(h, c, f, k, stride, epilogue, parts, rng):
    src = _conv_epilogue(h, c, f, k, stride, epilogue)
    oh = (h + 2 * (k // 2) - k) // stride + 1
    x, w, more = _inputs(rng, h, c, f, k, **({"b": (f,)} if epilogue == "bias_relu" else {"r": (1, oh, oh, f)}))
    ref = lathe.interpret(parse_relay(src), x=x, w=w, **more)
    for order in ("yxf", "fyx", "fyx_pack"):  # (fyx_pack packs nothing per part: it runs as fyx)
        m = _compile(src, f"conv2d_nhwc:split_c={parts},order={order}")
        got = lathe.compile(m, num_threads=2).run(x=x, w=w, **more)
        assert max_rel_err(got, ref) < 1e-5, order


@pytest.mark.parametrize("knobs", ["tile_h=2", "split_rc=16", "reduce_order=rc-ry-rx", "unroll_w=off,tile_w=4"])
def test_split_channels_with_the_tiles_knobs(knobs, rng):
    """The register tile inside a part is the whole micro-kernel: its other knobs still apply
    (the split window loop splits the part's channels, rc.inner)."""
    h, c, f, k = 7, 64, 32, 3
    src = _conv(h, c, f, k, 1, 1, relu=True)
    x, w, _ = _inputs(rng, h, c, f, k)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    got = _run(src, f"conv2d_nhwc:split_c=2,order=fyx,{knobs}", x, w)
    assert max_rel_err(got, ref) < 1e-5


def test_split_conv_as_the_kernels_output(rng):
    """No epilogue: the conv stage itself is the output, and its sum of the parts writes it."""
    h, c, f, k = 7, 64, 48, 3
    src = _conv(h, c, f, k, 1, 1, relu=False)
    x, w, _ = _inputs(rng, h, c, f, k)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    for order in ("yxf", "fyx"):
        got = _run(src, f"conv2d_nhwc:split_c=2,order={order}", x, w)
        assert max_rel_err(got, ref) < 1e-5, order


@pytest.mark.parametrize(
    "order, k, stride, parts",
    [("yxf", 3, 1, 2), ("fyx", 3, 1, 2), ("fyx", 3, 2, 4), ("fyx", 1, 1, 4)],
)
def test_split_channels_of_a_blocked_weight(order, k, stride, parts, rng):
    """A weight blocked at compile time (OHWI32o) with the prefetch knob on: a 3x3 split into 4
    parts reads kh*kw scattered slices of each filter block per task, which once failed to build
    (te.prefetch refused the block); a 1x1's part is one contiguous slice and keeps its prefetch
    over the fused (part, filter block) loop."""
    h, c, f, b = 14, 64, 96, 32
    src = _blocked_src(h, c, f, b, k, stride, k // 2)
    w = _block((rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32), b)
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    ref = lathe.interpret(parse_relay(src), x=x, w=w)
    m = _compile(src, f"conv2d_nhwc:split_c={parts},order={order},prefetch=on")
    got = lathe.compile(m, num_threads=2).run(x=x, w=w)
    assert max_rel_err(got, ref) < 1e-5


def test_partials_buffer_and_parallel_loops():
    """The partials are one [parts, N, H, W, F] buffer (each part a contiguous block, written by
    its own tasks); the parts' loop is parallel and so is the final sum's pixel loop."""
    m = _compile(_conv(7, 64, 32, 3, 1, 1, relu=True), "conv2d_nhwc:split_c=2,order=fyx")
    text = str(lathe.lower(m))
    assert "memref<2x1x7x7x32xf32>" in text
    assert text.count("#loop.annotation<parallel>") == 2  # the parts, the sum (the small padded copy: serial)


def test_split_candidates_divide_the_channels():
    """Parts divide the input channels and leave each a vector of them at least: 128 channels
    take 1, 2, 4; 24 channels only 1 (16 lanes); the default is 1 (no measured win, see
    SPLIT_C in conv2d_template.py)."""
    space = _space(_conv(7, 128, 32, 3, 1, 1))
    assert space["split_c"].candidates == (1, 2, 4) and space["split_c"].default == 1
    assert _space(_conv(7, 24, 32, 3, 1, 1))["split_c"].candidates == (1,)
    assert _defaults(_conv(7, 128, 32, 3, 1, 1))["split_c"] == 1


def test_a_split_the_space_does_not_have_is_refused():
    with pytest.raises(LatheError, match="cannot be 3"):
        _compile(_conv(7, 64, 32, 3, 1, 1), "conv2d_nhwc:split_c=3")


def _space(src: str) -> dict:
    from lathe.dialects import te  # noqa: F401  (the plan reads te ops)
    from lathe.lowering.schedules import plan_kernel

    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te").apply(make_context(), m)
    (fn,) = [op for op in m.walk() if "lathe.kernel" in getattr(op, "attributes", {})]
    return {kn.name: kn for kn in plan_kernel(fn, 16).space}


def test_the_tuner_lowers_and_reads_a_split_candidate():
    """A tuning task's candidate with split_c lowers through the tuner's own path and its loop
    features are read (three loop nests: padded copy, parts, sum)."""
    from lathe.tuner.features import loop_features
    from lathe.tuner.measure import lower_candidate
    from lathe.tuner.tasks import extract_tasks

    src = _conv_epilogue(7, 64, 32, 1, 1, "bias_relu")
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((1, 1, 64, 32)).astype(np.float32), "b": np.ones(32, np.float32)}
    (task,) = [t for t in extract_tasks(parse_relay(src), "llvm", params=params) if t.template == "conv2d_nhwc"]
    assert 2 in next(k for k in task.space if k.name == "split_c").candidates
    features = loop_features(lower_candidate(task.te_text, "conv2d_nhwc:split_c=2,order=fyx", task.lanes))
    assert features == loop_features(lower_candidate(task.te_text, "conv2d_nhwc:split_c=2,order=fyx", task.lanes))
    assert features != loop_features(lower_candidate(task.te_text, "conv2d_nhwc:split_c=1,order=fyx", task.lanes))
