"""Resize between NHWC convolutions runs NHWC (issue 13: "Resize, concat, pad, pooling and
elementwise chains all stay in the chosen layout"). An FPN's upsampled levels and a YOLO neck's
upsample + concat left a transpose to NCHW before each Resize and one back after the Concat;
alter-op-layout now sinks the transpose through image.resize2d (layout NHWC, vectorised over
channels) and lifts a padded channel count's cut through it, so nothing but the model's ends
changes layout. Each case is compared with ONNX Runtime (and the interpreter) on fresh random
inputs; the IR checks say no transpose is left between two convolutions."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LAYOUT_PIPELINE, assert_compiles_as_interpreted, assert_like_onnxruntime, graph_ops_after_layout

import lathe
from lathe.dialects import graph
from lathe.passes.channel_padding import PAD_SLICE

# (mode, coordinate_transformation_mode, nearest_mode): what the ONNX importer takes
MODES = [
    ("nearest", "asymmetric", "floor"),  # torch's nn.Upsample export
    ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"),
    ("nearest", "tf_half_pixel_for_nn", "round_prefer_ceil"),
    ("linear", "half_pixel", None),
    ("linear", "align_corners", None),
    ("linear", "pytorch_half_pixel", None),
    ("linear", "asymmetric", None),
]
# (input H, W) -> output (H, W), by scales (2x) or by sizes (ratios no integer gives, and down)
SIZES = [((5, 6), (10, 12), "scales"), ((5, 7), (9, 12), "sizes"), ((9, 12), (5, 7), "sizes")]


def _fpn_like(c: int, mode: str, coord: str, nearest: str | None, hw, ohw, by: str, rng):
    """Conv 3x3 + Relu at (H, W), Resize to (OH, OW), Add with a 1x1 conv of a second input at
    (OH, OW), Concat of the upsampled map and the sum, Conv 3x3 to 16: an FPN level's
    top-down step and a YOLO neck's upsample + concat in one."""
    from onnx import TensorProto, helper, numpy_helper

    def weight(name, o, i, k):
        return numpy_helper.from_array(
            (rng.standard_normal((o, i, k, k)) / np.sqrt(i * k * k)).astype(np.float32), name
        )

    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if nearest:
        attrs["nearest_mode"] = nearest
    if by == "scales":
        scales = np.array([1, 1, ohw[0] / hw[0], ohw[1] / hw[1]], np.float32)
        resize_in, extra = ["a", "", "scales"], numpy_helper.from_array(scales, "scales")
    else:
        resize_in, extra = ["a", "", "", "sizes"], numpy_helper.from_array(np.array([1, c, *ohw], np.int64), "sizes")
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["ca"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["ca"], ["a"]),
        helper.make_node("Resize", resize_in, ["u"], **attrs),
        helper.make_node("Conv", ["z", "wb"], ["b"]),
        helper.make_node("Add", ["u", "b"], ["s"]),
        helper.make_node("Concat", ["u", "s"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "wy"], ["y"], pads=[1, 1, 1, 1]),
    ]
    g = helper.make_graph(
        nodes,
        "fpn_step",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, *hw]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, *ohw]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight("wa", c, 8, 3), weight("wb", c, 8, 1), weight("wy", 16, 2 * c, 3), extra],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _feeds(hw, ohw, rng):
    return {
        "x": rng.standard_normal((1, 8, *hw)).astype(np.float32),
        "z": rng.standard_normal((1, 8, *ohw)).astype(np.float32),
    }


def _layout_ops(model) -> list:
    """The graph ops of an ONNX model with its weights bound, after LAYOUT_PIPELINE."""
    from lathe.dialects import make_context
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import build_pipeline

    module, params = lathe.from_onnx(model)
    module = bind_params(module, params)
    build_pipeline(LAYOUT_PIPELINE).apply(make_context(), module)
    return [op for op in module.walk() if isinstance(op, graph.GraphOp)]


def _transposes_between_layers(ops) -> list:
    """Transposes of anything but a model input that something but the model's return reads."""
    from xdsl.dialects import func
    from xdsl.ir import BlockArgument

    return [
        op
        for op in ops
        if isinstance(op, graph.TransposeOp)
        and not isinstance(op.data, BlockArgument)
        and any(not isinstance(u.operation, func.ReturnOp) for u in op.results[0].uses)
    ]


@pytest.mark.parametrize("mode, coord, nearest", MODES)
@pytest.mark.parametrize("hw, ohw, by", SIZES)
def test_resize_between_convs_agrees_with_onnxruntime(mode, coord, nearest, hw, ohw, by, rng):
    pytest.importorskip("onnxruntime")
    model = _fpn_like(16, mode, coord, nearest, hw, ohw, by, rng)
    module, params = lathe.from_onnx(model)
    feeds = [_feeds(hw, ohw, rng) for _ in range(2)]
    assert_like_onnxruntime(model, module, params, feeds, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c", [16, 24])
@pytest.mark.parametrize("mode, coord, nearest", [MODES[0], MODES[4]])
def test_resize_runs_nhwc_and_no_transpose_is_left_between_convs(c, mode, coord, nearest, rng):
    pytest.importorskip("onnx")
    hw, ohw, by = SIZES[0]
    ops = _layout_ops(_fpn_like(c, mode, coord, nearest, hw, ohw, by, rng))
    resizes = [op for op in ops if isinstance(op, graph.Resize2dOp)]
    assert len(resizes) == 1 and resizes[0].attrs()["layout"] == "NHWC"
    assert _transposes_between_layers(ops) == []
    if c == 24:  # padded to 32: the resize reads the padded conv output, the cut rose past it
        assert graph.shape_of(resizes[0].data.type)[-1] == 32
        # to the concatenation, whose 48 channels are whole vectors: the last conv reads 48, not 64
        cuts = [op for op in ops if isinstance(op, graph.StridedSliceOp) and PAD_SLICE in op.attributes]
        assert cuts and all(isinstance(u.operation, graph.TupleOp) for op in cuts for u in op.result.uses)
        convs = [op for op in ops if isinstance(op, graph.Conv2dOp)]
        assert graph.shape_of(convs[-1].data.type)[-1] == 48


@pytest.mark.parametrize("c", [24, 40])
def test_padded_resize_between_convs_agrees_with_onnxruntime(c, rng):
    """24 and 40 channels are padded to 32 and 48: the resize and add run on the padded
    channels, the concat joins padded tensors, and the last conv's zero weights cancel them."""
    pytest.importorskip("onnxruntime")
    for mode, coord, nearest in (MODES[0], MODES[4]):
        hw, ohw, by = SIZES[1]
        model = _fpn_like(c, mode, coord, nearest, hw, ohw, by, rng)
        module, params = lathe.from_onnx(model)
        assert_like_onnxruntime(model, module, params, [_feeds(hw, ohw, rng)], rtol=1e-5, atol=1e-5)


def test_a_resize_of_a_model_input_keeps_nchw(rng):
    """Nothing NHWC reaches it: moving it would only add a transpose before it."""
    src = """
    def @main(%x: Tensor[(1, 16, 6, 5), float32], %w: Tensor[(16, 16, 3, 3), float32]) {
      nn.conv2d(image.resize2d(%x, size=[12, 10], method="nearest_neighbor"), %w, padding=[1, 1, 1, 1])
    }"""
    params = {"w": rng.standard_normal((16, 16, 3, 3)).astype(np.float32)}
    ops = graph_ops_after_layout(src, params)
    assert [op.attrs()["layout"] for op in ops if isinstance(op, graph.Resize2dOp)] == ["NCHW"]
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((1, 16, 6, 5)).astype(np.float32)})


@pytest.mark.parametrize("c", [3, 24, 96, 116])
@pytest.mark.parametrize("method", ["nearest_neighbor", "linear"])
def test_nhwc_resize_kernel_of_any_channel_count_agrees_with_the_interpreter(c, method, rng):
    """The NHWC kernel alone (fused with an add, as an FPN's top-down sum): channel counts
    a vector divides, and ones it does not (3, 24 unpadded here, ShuffleNet's 116)."""
    src = f"""
    def @main(%x: Tensor[(1, 7, 9, {c}), float32], %y: Tensor[(1, 13, 18, {c}), float32]) {{
      add(%y, image.resize2d(%x, size=[13, 18], layout="NHWC", method="{method}",
                             coordinate_transformation_mode="half_pixel"))
    }}"""
    inputs = {
        "x": rng.standard_normal((1, 7, 9, c)).astype(np.float32),
        "y": rng.standard_normal((1, 13, 18, c)).astype(np.float32),
    }
    assert_compiles_as_interpreted(src, {}, inputs)


def _dbnet_head(rng):
    """DBNet's last step: a 2x2 stride-2 ConvTranspose to one channel and a Sigmoid, after a
    3x3 conv (padded 24 -> 32 channels); its phase conv pads 4 phases to 16 filters, and the
    output is the cut, depth-to-space, bias and sigmoid of that, back to NCHW."""
    from onnx import TensorProto, helper, numpy_helper

    w1 = (rng.standard_normal((24, 8, 3, 3)) / np.sqrt(72)).astype(np.float32)
    wt = (rng.standard_normal((24, 1, 2, 2)) / np.sqrt(24)).astype(np.float32)
    b = rng.standard_normal(1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("ConvTranspose", ["r1", "wt", "b"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sigmoid", ["t"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "dbnet_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 72, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (wt, "wt"), (b, "b"))],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_a_one_channel_output_is_reshaped_not_transposed_and_its_kernel_is_parallel(rng):
    """The transpose of [1, H, W, 1] to [1, 1, H, W] keeps the elements' order: as a reshape,
    the fused cut + depth-to-space + sigmoid kernel is elementwise and parallel over pixels
    (as a transpose over one channel its only parallel loop had one iteration). 144x128
    outputs: enough work for threads (PARALLEL_MIN_WORK)."""
    pytest.importorskip("onnxruntime")
    from xdsl.dialects import scf

    from lathe.api import lower
    from lathe.dialects.functions import is_kernel
    from lathe.passes.fold_constant import bind_params

    model = _dbnet_head(rng)
    ops = _layout_ops(model)
    assert not [op for op in ops if isinstance(op, graph.TransposeOp) and graph.shape_of(op.result.type)[1] == 1]
    module, params = lathe.from_onnx(model)
    loops = lower(bind_params(module.clone(), params))
    head = [f for f in loops.ops if is_kernel(f) and "sigmoid" in f.sym_name.data]
    assert len(head) == 1
    annotations = [str(f.attributes.get("loop.annotation")) for f in head[0].walk() if isinstance(f, scf.ForOp)]
    assert any("parallel" in a for a in annotations)
    assert_like_onnxruntime(model, module, params, [{"x": rng.standard_normal((1, 8, 72, 64)).astype(np.float32)}])


def test_a_transpose_of_non_unit_axes_stays_a_transpose(rng):
    """[1, 8, 8, 16] to [1, 16, 8, 8] reorders the pixels and channels: not a reshape."""
    src = """
    def @main(%x: Tensor[(1, 16, 8, 8), float32], %w: Tensor[(16, 16, 1, 1), float32]) {
      sigmoid(nn.conv2d(%x, %w))
    }"""
    ops = graph_ops_after_layout(src, {"w": rng.standard_normal((16, 16, 1, 1)).astype(np.float32)})
    assert [graph.shape_of(op.result.type) for op in ops if isinstance(op, graph.TransposeOp)] == [
        [1, 8, 8, 16],
        [1, 16, 8, 8],
    ]
    assert not any(isinstance(op, graph.ReshapeOp) for op in ops)
