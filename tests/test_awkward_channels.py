"""Output-channel counts no vector block divides (issue 13): a segmentation head's 21 classes, a
detector's 80, 91 or 255, a probability map's 1, a ConvTranspose's 4 phases of one channel. A
convolution pads them to the vector width whatever the waste (the generic NCHW schedule costs
more than the zero filters), the model's output is cut back to its real channels, and the cut
back to NCHW takes a guarded transpose tile. Each case is compared with the interpreter, the
ONNX ones with ONNX Runtime, on fresh random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_compiles_as_interpreted, assert_like_onnxruntime, graph_ops_after_layout

import lathe
from lathe.dialects import graph, make_context, te
from lathe.passes.channel_padding import PAD_SLICE, conv_padded_width, padded_width
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay

COUNTS = (1, 2, 3, 10, 21, 80, 91, 255)


def test_a_conv_pads_every_count_no_block_divides():
    assert [conv_padded_width(n) for n in COUNTS] == [16, 16, 16, 16, 32, None, 96, 256]
    assert conv_padded_width(4, lanes=4) is None and conv_padded_width(5, lanes=4) == 8
    # a dense keeps its own rule: a GEMV's few columns run faster unpacked than padded
    assert [padded_width(n) for n in (1, 3, 10, 21)] == [None, None, None, None]


def _head(o: int, k: int, c: int = 16, h: int = 9, w: int = 10) -> str:
    return f"""
    def @main(%x: Tensor[(1, {c}, {h}, {w}), float32], %w1: Tensor[({c}, {c}, 3, 3), float32],
              %w: Tensor[({o}, {c}, {k}, {k}), float32], %b: Tensor[({o}), float32]) {{
      %0 = nn.relu(nn.conv2d(%x, %w1, padding=[1, 1, 1, 1]));
      nn.bias_add(nn.conv2d(%0, %w, padding=[{k // 2}, {k // 2}, {k // 2}, {k // 2}]), %b)
    }}"""


def _head_params(o: int, k: int, rng, c: int = 16) -> dict:
    return {
        "w1": (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32),
        "w": (rng.standard_normal((o, c, k, k)) / np.sqrt(k * k * c)).astype(np.float32),
        "b": rng.standard_normal(o).astype(np.float32),
    }


@pytest.mark.parametrize("o", COUNTS)
@pytest.mark.parametrize("k", [1, 3])
def test_a_head_of_any_count_runs_padded_in_nhwc_and_agrees(o, k, rng):
    """Both convs NHWC on whole vectors of filters, one cut (the model's output, to exactly o
    channels), and the compiled head agrees with the interpreter."""
    src, params = _head(o, k), _head_params(o, k, rng)
    ops = graph_ops_after_layout(src, params)
    convs = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    assert [c.attrs()["data_layout"] for c in convs] == ["NHWC", "NHWC"]
    assert all(graph.shape_of(c.result.type)[-1] % 16 == 0 for c in convs)
    cuts = [op for op in ops if isinstance(op, graph.StridedSliceOp)]
    if o % 16:
        assert len(cuts) == 1 and PAD_SLICE in cuts[0].attributes and graph.shape_of(cuts[0].result.type)[-1] == o
    else:
        assert not cuts
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((1, 16, 9, 10)).astype(np.float32)})


def test_a_head_read_by_another_layer_leaks_no_padded_channel(rng):
    """21 classes, then a softmax over them (a reduction over the channels: it must see the
    21 real ones only) and a 3x3 conv reading them."""
    src = """
    def @main(%x: Tensor[(1, 16, 9, 10), float32], %w: Tensor[(21, 16, 1, 1), float32], %b: Tensor[(21), float32],
              %w2: Tensor[(5, 21, 3, 3), float32]) {
      %0 = nn.bias_add(nn.conv2d(%x, %w), %b);
      (nn.softmax(%0, axis=1), nn.conv2d(%0, %w2, padding=[1, 1, 1, 1]), sum(%0, axis=[1]))
    }"""
    params = {
        "w": rng.standard_normal((21, 16, 1, 1)).astype(np.float32),
        "b": rng.standard_normal(21).astype(np.float32) + 5.0,  # a padded channel summed would show
        "w2": rng.standard_normal((5, 21, 3, 3)).astype(np.float32),
    }
    x = rng.standard_normal((1, 16, 9, 10)).astype(np.float32)
    module = parse_relay(src)
    ref = lathe.interpret(module, params=params, x=x)
    got = lathe.compile(module, params=params, num_threads=2).run(x=x)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-5 * float(np.abs(r).max()))


def _onnx_head(o: int, transpose: bool, rng):
    """Conv 3x3 + Relu, then a 1x1 Conv to o classes with bias (a segmentation head), or a 2x2
    stride-2 ConvTranspose to o channels with bias and a Sigmoid (DBNet's probability map)."""
    from onnx import TensorProto, helper, numpy_helper

    c = 8
    w1 = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    wh = (rng.standard_normal((c, o, 2, 2) if transpose else (o, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
    ]
    if transpose:
        nodes += [
            helper.make_node("ConvTranspose", ["r1", "wh", "b"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Sigmoid", ["t"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("Conv", ["r1", "wh", "b"], ["y"]))
    g = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 12, 11])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(wh, "wh"), numpy_helper.from_array(b, "b")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("o, transpose", [(1, True), (3, True), (1, False), (21, False), (91, False), (255, False)])
def test_onnx_heads_agree_with_onnxruntime(o, transpose, rng):
    pytest.importorskip("onnxruntime")
    model = _onnx_head(o, transpose, rng)
    module, params = lathe.from_onnx(model)
    feeds = [{"x": rng.standard_normal((1, 8, 12, 11)).astype(np.float32)} for _ in range(2)]
    assert_like_onnxruntime(model, module, params, feeds, rtol=1e-5, atol=1e-5)


SCHEDULED = "fuse-ops,lower-graph-to-te,apply-default-schedule"


def _cut_back_to_nchw(c: int, o: int, h: int, w: int) -> str:
    return f"""def @main(%x: Tensor[(1, {h}, {w}, {c}), float32]) {{
      transpose(strided_slice(%x, begin=[0], end=[{o}], strides=[1], axes=[3]), axes=[0, 3, 1, 2])
    }}"""


@pytest.mark.parametrize("c, o", [(32, 21), (16, 5), (256, 255), (96, 91), (16, 10)])
def test_the_cut_back_to_nchw_agrees_with_numpy(c, o, rng):
    x = rng.standard_normal((1, 7, 9, c)).astype(np.float32)
    got = lathe.compile(parse_relay(_cut_back_to_nchw(c, o, 7, 9)), num_threads=2).run(x)
    assert np.array_equal(got, x[..., :o].transpose(0, 3, 1, 2))


def test_a_cut_no_tile_divides_takes_a_guarded_tile_of_channels():
    """21 of 32 channels back to NCHW: tiles of 16 channels (the last one guarded to 5) around
    a vector of pixels, where tiles of one channel read the whole source once per channel."""
    m = parse_relay(_cut_back_to_nchw(32, 21, 16, 16))
    build_pipeline(SCHEDULED).apply(make_context(), m)
    splits = [op for op in m.walk() if isinstance(op, te.SplitOp)]
    assert {(op.axis.data, op.factor.value.data) for op in splits} == {("ax1", 16), ("ax2.ax3.fused", 16)}
