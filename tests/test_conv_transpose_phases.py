"""alter-op-layout's ConvTransposeToConv: a transposed convolution with constant weights
becomes one stride-1 conv2d whose output channels are the stride's phases, then
depth-to-space and a crop. Checked against the interpreter (and ONNX Runtime) on random
inputs over strides, kernels, padding, output_padding, dilation and non-square shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.dialects import graph
from lathe.textual_ir.parser import parse_relay


def _source(c, o, h, w, k, s, p, op, d, groups=1) -> str:
    return f"""
def @main(%x: Tensor[(1, {c}, {h}, {w}), float32], %w: Tensor[({c}, {o // groups}, {k[0]}, {k[1]}), float32],
          %b: Tensor[({o}), float32]) {{
  %0 = nn.conv2d_transpose(%x, %w, strides={list(s)}, padding={list(p)}, dilation={list(d)},
                           output_padding={list(op)}, groups={groups}, channels={o}, kernel_size={list(k)});
  nn.relu(nn.bias_add(%0, %b))
}}
"""


def _after_layout(src: str, params: dict) -> list:
    from lathe.dialects import make_context
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import build_pipeline

    m = bind_params(parse_relay(src), params)
    build_pipeline("alter-op-layout,fold-constant,canonicalize,dead-code-elimination").apply(make_context(), m)
    return [op for op in m.walk() if isinstance(op, graph.GraphOp)]


CASES = [  # c, o, h, w, kernel, strides, padding (t, l, b, r), output_padding, dilation
    (8, 24, 10, 10, (2, 2), (2, 2), (0, 0, 0, 0), (0, 0), (1, 1)),
    (5, 7, 9, 11, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1)),
    (5, 7, 9, 11, (3, 4), (3, 2), (1, 0, 2, 1), (2, 0), (1, 1)),
    (6, 16, 6, 7, (4, 4), (1, 1), (1, 1, 1, 1), (0, 0), (1, 1)),
    (6, 16, 6, 7, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), (1, 1)),
    (5, 16, 6, 7, (3, 3), (2, 3), (0, 1, 1, 0), (1, 1), (2, 3)),
    (4, 6, 5, 5, (2, 2), (3, 3), (0, 0, 0, 0), (0, 0), (1, 1)),  # stride > kernel: a phase with no taps
    (3, 32, 8, 5, (2, 3), (1, 3), (0, 2, 0, 1), (0, 2), (2, 1)),
    (6, 16, 9, 8, (3, 2), (1, 1), (2, 1, 0, 3), (0, 0), (2, 3)),  # stride 1: a dilated conv
    (4, 8, 7, 6, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (3, 3)),  # dilation 3 at stride 2
]


def _params(c, o, k, rng, groups=1):
    return {
        "w": (rng.standard_normal((c, o // groups, *k)) / np.sqrt(c * k[0] * k[1])).astype(np.float32),
        "b": rng.standard_normal(o).astype(np.float32),
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[4])) + f"s{c[5]}p{c[6]}op{c[7]}d{c[8]}")
def test_phases_agree_with_the_interpreter(case, rng):
    c, o, h, w, k, s, p, op, d = case
    src, params = _source(*case), _params(c, o, k, rng)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    module = parse_relay(src)
    ref = lathe.interpret(module, params=params, x=x)
    got = lathe.compile(module, params=params, num_threads=2).run(x=x)
    assert max_rel_err(got, ref) < 2e-5


@pytest.mark.parametrize("case", CASES[:3], ids=str)
def test_phases_agree_with_onnx_runtime(case, rng):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    c, o, h, w, k, s, p, op, d = case
    params = _params(c, o, k, rng)
    pads = [p[0], p[1], p[2], p[3]]  # (top, left, bottom, right) is ONNX's (h_begin, w_begin, h_end, w_end)
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w", "b"],
        ["y"],
        kernel_shape=list(k),
        strides=list(s),
        pads=pads,
        output_padding=list(op),
        dilations=list(d),
    )
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(params["w"], "w"), numpy_helper.from_array(params["b"], "b")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    module, weights = lathe.from_onnx(model)
    got = lathe.compile(module, params=weights, num_threads=2).run(x)
    assert max_rel_err(got, ref) < 2e-5


def test_kernel_two_stride_two_is_one_pointwise_conv(rng):
    """The phases of a 2x2 stride-2 layer share x's pixel: one 1x1 conv to 4*O channels, with
    no zero weight multiplied, and no conv2d_transpose left."""
    case = CASES[0]
    c, o = case[0], case[1]
    ops = _after_layout(_source(*case), _params(c, o, case[4], rng))
    assert not [op for op in ops if isinstance(op, graph.Conv2dTransposeOp)]
    (conv,) = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    a = conv.attrs()
    assert a["strides"] == [1, 1] and a["kernel_size"] == [1, 1] and a["data_layout"] == "NHWC"
    assert graph.shape_of(conv.result.type) == [1, 10, 10, 4 * o]
    (weight,) = [op for op in ops if isinstance(op, graph.ConstantOp) and op.result is conv.weight]
    from lathe.dialects.reference import constant_value

    assert np.count_nonzero(constant_value(weight)) == 4 * o * c


def test_a_kernel_the_stride_does_not_divide_pads_the_phases_with_zero_taps(rng):
    """3x3 stride 2: a 2x2 conv of 4*O = 28 channels (padded to 32 by ConvToNHWC), the odd
    phases with one tap per axis."""
    case = CASES[1]
    c, o = case[0], case[1]
    ops = _after_layout(_source(*case), _params(c, o, case[4], rng))
    (conv,) = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    assert conv.attrs()["kernel_size"] == [2, 2] and graph.shape_of(conv.weight.type)[-1] == 32


def test_grouped_keeps_conv2d_transpose(rng):
    case = (4, 6, 5, 7, (3, 3), (2, 2), (1, 1, 1, 1), (1, 0), (1, 1))
    params = _params(4, 6, (3, 3), rng, groups=2)
    src = _source(*case, groups=2)
    ops = _after_layout(src, params)
    assert [op for op in ops if isinstance(op, graph.Conv2dTransposeOp)]
    x = rng.standard_normal((1, 4, 5, 7)).astype(np.float32)
    module = parse_relay(src)
    ref = lathe.interpret(module, params=params, x=x)
    assert max_rel_err(lathe.compile(module, params=params, num_threads=2).run(x=x), ref) < 2e-5


def test_a_weight_known_only_at_run_time_keeps_conv2d_transpose(rng):
    c, o, h, w, k, s, p, op, d = CASES[1]
    src = _source(c, o, h, w, k, s, p, op, d)
    ops = _after_layout(src, {"b": rng.standard_normal(o).astype(np.float32)})
    assert [op for op in ops if isinstance(op, graph.Conv2dTransposeOp)]


DECODER = """
def @main(%x: Tensor[(1, 32, 10, 9), float32], %w: Tensor[(32, 16, 2, 2), float32], %b: Tensor[(16), float32],
          %w2: Tensor[(16, 16, 3, 3), float32]) {
  %0 = nn.conv2d_transpose(%x, %w, strides=[2, 2], channels=16, kernel_size=[2, 2]);
  %1 = nn.relu(nn.bias_add(%0, %b));
  nn.conv2d(%1, %w2, padding=[1, 1, 1, 1])
}
"""


def _decoder_params(rng):
    return {
        "w": (rng.standard_normal((32, 16, 2, 2)) * 0.2).astype(np.float32),
        "b": rng.standard_normal(16).astype(np.float32),
        "w2": (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32),
    }


def test_a_decoder_stays_nhwc_from_the_upsampling_to_the_next_conv(rng):
    """The crop's transpose back to NCHW sinks through bias and relu and cancels with the next
    conv's: the only transposes left are the model's two ends and the depth-to-space."""
    params = _decoder_params(rng)
    ops = _after_layout(DECODER, params)
    transposes = [graph.shape_of(op.result.type) for op in ops if isinstance(op, graph.TransposeOp)]
    assert transposes == [[1, 10, 9, 32], [1, 10, 2, 9, 2, 16], [1, 16, 20, 18]]
    x = rng.standard_normal((1, 32, 10, 9)).astype(np.float32)
    module = parse_relay(DECODER)
    ref = lathe.interpret(module, params=params, x=x)
    assert max_rel_err(lathe.compile(module, params=params, num_threads=2).run(x=x), ref) < 2e-5


def test_stride_one_with_dilation_is_a_dilated_conv_with_no_zero_taps(rng):
    """Stride 1, dilation (2, 3): the taps sit every 2 rows and 3 columns of the correlation,
    so the conv keeps the 3x2 kernel and takes the dilation, not a 5x4 kernel of zeros."""
    case = CASES[8]
    c, o = case[0], case[1]
    ops = _after_layout(_source(*case), _params(c, o, case[4], rng))
    (conv,) = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    a = conv.attrs()
    assert a["kernel_size"] == [3, 2] and a["dilation"] == [2, 3] and a["strides"] == [1, 1]
