"""ONNX import: small models built with onnx.helper for every op family, compared with
onnxruntime on fresh random inputs through the reference interpreter and the compiled
path (float32 bounds: 1e-5 elementwise, 1e-4 reductions and contractions); names
through `lathe import` + `lathe run`; errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import max_rel_err  # noqa: E402
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

import lathe  # noqa: E402
from lathe.errors import LatheError  # noqa: E402
from lathe.frontends.onnx import from_onnx, sanitize, unsanitize  # noqa: E402

ELEM = 1e-5
REDUCE = 1e-4
_TP = {
    np.dtype(np.float32): TP.FLOAT,
    np.dtype(np.float64): TP.DOUBLE,
    np.dtype(np.int64): TP.INT64,
    np.dtype(np.int32): TP.INT32,
    np.dtype(np.bool_): TP.BOOL,
    np.dtype(np.float16): TP.FLOAT16,
    np.dtype(np.int8): TP.INT8,
}


def make_model(nodes, inputs: dict, outputs, inits=None, opset=17, input_shapes=None):
    """inputs: name → example array (its shape and dtype are declared); outputs: names or (name, TP type)."""
    ins = [helper.make_tensor_value_info(k, _TP[v.dtype], list(v.shape)) for k, v in inputs.items()]
    outs = [helper.make_tensor_value_info(*(o if isinstance(o, tuple) else (o, TP.FLOAT)), None) for o in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    g = helper.make_graph(nodes, "test", ins, outs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="lathe-test")
    m.ir_version = 8 if opset <= 18 else 10
    return m


@dataclass
class Case:
    model: object
    inputs: dict
    bound: float = ELEM
    xfail: str | None = None
    reference: str = "onnxruntime"  # or "onnx" (onnx.reference), where onnxruntime lacks the feature


def run_onnxruntime(model, inputs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)


def run_reference(c: Case):
    if c.reference == "onnx":
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(c.model).run(None, c.inputs)
    return run_onnxruntime(c.model, c.inputs)


def compare(got, ref, bound):
    got = list(got) if isinstance(got, tuple) else [got]
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype, (g.dtype, r.dtype)
        assert g.shape == r.shape, (g.shape, r.shape)
        if r.dtype == np.bool_ or np.issubdtype(r.dtype, np.integer):
            np.testing.assert_array_equal(g, r)
        else:
            finite = np.isfinite(r)
            np.testing.assert_array_equal(g[~finite], r[~finite])  # inf and nan where expected
            err = max_rel_err(g[finite], r[finite])
            assert err <= bound, f"max relative error {err:.3e} > {bound:g}"


def check_case(c: Case):
    ref = run_reference(c)
    module, params = from_onnx(c.model)
    names = [i.name for i in c.model.graph.input if i.name in c.inputs]
    interp = lathe.interpret(module, params=params, **{sanitize(k): c.inputs[k] for k in names})
    compare(interp, ref, c.bound)
    cm = lathe.compile(module, params=params)
    assert cm.input_names == [sanitize(k) for k in names]
    compare(cm.run(*[c.inputs[k] for k in names]), ref, c.bound)
    return module, params


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def f32(rng, *shape, positive=False):
    x = rng.standard_normal(shape).astype(np.float32)
    return np.abs(x) + np.float32(0.5) if positive else x


# ---------------------------------------------------------------------------
# cases: name → builder(rng) → Case

CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


# -- convolution ----------------------------------------------------------------


@case("conv2d_bias_pads_strides_groups")
def _(rng):
    x, w, b = f32(rng, 1, 4, 9, 9), f32(rng, 6, 2, 3, 3), f32(rng, 6)
    n = node("Conv", ["x", "w", "b"], ["y"], pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2], group=2)
    return Case(make_model([n], {"x": x}, ["y"], {"w": w, "b": b}, opset=11), {"x": x}, REDUCE)


@case("conv2d_same_upper_opset9")
def _(rng):
    x, w = f32(rng, 2, 3, 7, 8), f32(rng, 4, 3, 3, 2)
    n = node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])
    return Case(make_model([n], {"x": x}, ["y"], {"w": w}, opset=9), {"x": x}, REDUCE)


@case("conv1d_same_lower")
def _(rng):
    x, w, b = f32(rng, 2, 3, 10), f32(rng, 5, 3, 4), f32(rng, 5)
    n = node("Conv", ["x", "w", "b"], ["y"], auto_pad="SAME_LOWER")
    return Case(make_model([n], {"x": x}, ["y"], {"w": w, "b": b}), {"x": x}, REDUCE)


@case("conv_transpose_stride_pads_output_padding")
def _(rng):
    x, w, b = f32(rng, 1, 4, 5, 5), f32(rng, 4, 3, 3, 3), f32(rng, 3)
    n = node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 0, 1], output_padding=[1, 0])
    return Case(make_model([n], {"x": x}, ["y"], {"w": w, "b": b}, opset=11), {"x": x}, REDUCE)


@case("conv_transpose_output_shape_groups")
def _(rng):
    x, w = f32(rng, 1, 4, 4, 4), f32(rng, 4, 1, 3, 3)
    n = node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[9, 9], group=2)
    return Case(make_model([n], {"x": x}, ["y"], {"w": w}), {"x": x}, REDUCE)


@case("conv_transpose_1d")
def _(rng):
    x, w = f32(rng, 2, 3, 6), f32(rng, 3, 2, 3)
    n = node("ConvTranspose", ["x", "w"], ["y"], strides=[3])
    return Case(make_model([n], {"x": x}, ["y"], {"w": w}), {"x": x}, REDUCE)


# -- contractions ----------------------------------------------------------------


@case("gemm_trans_alpha_beta")
def _(rng):
    a, b, c = f32(rng, 6, 4), f32(rng, 5, 6), f32(rng, 5)
    n = node("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0)
    return Case(make_model([n], {"a": a}, ["y"], {"b": b, "c": c}, opset=9), {"a": a}, REDUCE)


@case("gemm_no_c_opset13")
def _(rng):
    a, b = f32(rng, 3, 7), f32(rng, 7, 2)
    return Case(
        make_model([node("Gemm", ["a", "b"], ["y"])], {"a": a, "b": b}, ["y"], opset=13), {"a": a, "b": b}, REDUCE
    )


@pytest.mark.parametrize(
    "sa, sb",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (4, 3)),
        ((2, 3, 4), (4,)),
        ((3, 2, 4), (3, 4, 6)),
    ],
)
def test_matmul(sa, sb, rng):
    a, b = f32(rng, *sa), f32(rng, *sb)
    check_case(Case(make_model([node("MatMul", ["a", "b"], ["y"])], {"a": a, "b": b}, ["y"]), {"a": a, "b": b}, REDUCE))


# -- elementwise --------------------------------------------------------------------


@case("binary_broadcast")
def _(rng):
    a, b, c = f32(rng, 2, 3, 4), f32(rng, 3, 1), f32(rng, 4, positive=True)
    nodes = [
        node("Add", ["a", "b"], ["s"]),
        node("Sub", ["s", "c"], ["d"]),
        node("Mul", ["d", "b"], ["m"]),
        node("Div", ["m", "c"], ["y"]),
        node("Pow", ["c", "two"], ["p"]),
        node("Max", ["a", "b", "c"], ["mx"]),
        node("Min", ["a", "b"], ["mn"]),
        node("Sum", ["a", "b", "c"], ["sm"]),
        node("Mean", ["a", "c"], ["me"]),
    ]
    return Case(
        make_model(
            nodes, {"a": a, "b": b, "c": c}, ["y", "p", "mx", "mn", "sm", "me"], {"two": np.float32(2.0)}, opset=13
        ),
        {"a": a, "b": b, "c": c},
    )


@case("pow_int_exponent_opset15")
def _(rng):
    x = f32(rng, 3, 4, positive=True)
    n = node("Pow", ["x", "e"], ["y"])
    return Case(make_model([n], {"x": x}, ["y"], {"e": np.array([2, 3, 1, 0], np.int64)}, opset=15), {"x": x})


UNARY = ["Neg", "Abs", "Exp", "Tanh", "Sigmoid", "Erf", "Floor", "Ceil", "Round", "Relu"]
POSITIVE_UNARY = ["Log", "Sqrt", "Reciprocal"]


@case("unary")
def _(rng):
    x = f32(rng, 3, 17) * 2
    nodes = [node(op, ["x"], [op.lower()]) for op in UNARY]
    return Case(make_model(nodes, {"x": x}, [op.lower() for op in UNARY], opset=13), {"x": x})


@case("unary_positive")
def _(rng):
    x = f32(rng, 5, 7, positive=True)
    nodes = [node(op, ["x"], [op.lower()]) for op in POSITIVE_UNARY]
    return Case(make_model(nodes, {"x": x}, [op.lower() for op in POSITIVE_UNARY], opset=9), {"x": x})


@case("activations")
def _(rng):
    x = f32(rng, 2, 3, 4, 5) * 3
    nodes = [
        node("LeakyRelu", ["x"], ["leaky"], alpha=0.2),
        node("Elu", ["x"], ["elu"], alpha=0.7),
        node("Selu", ["x"], ["selu"]),
        node("HardSigmoid", ["x"], ["hs"], alpha=0.3, beta=0.4),
        node("Softplus", ["x"], ["sp"]),
        node("PRelu", ["x", "slope_c"], ["prelu_c"]),
        node("PRelu", ["x", "slope_w"], ["prelu_w"]),
        node("Softsign", ["x"], ["ss"]),
        node("HardSwish", ["x"], ["hsw"]),
    ]
    outs = ["leaky", "elu", "selu", "hs", "sp", "prelu_c", "prelu_w", "ss", "hsw"]
    inits = {"slope_c": f32(rng, 3, 1, 1), "slope_w": f32(rng, 5)}
    return Case(make_model(nodes, {"x": x}, outs, inits, opset=14), {"x": x})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate, rng):
    x = f32(rng, 4, 33) * 3
    m = make_model([node("Gelu", ["x"], ["y"], approximate=approximate)], {"x": x}, ["y"], opset=20)
    check_case(Case(m, {"x": x}))


@case("clip_opset6_attrs")
def _(rng):
    x = f32(rng, 4, 6)
    return Case(make_model([node("Clip", ["x"], ["y"], min=-0.5, max=0.7)], {"x": x}, ["y"], opset=6), {"x": x})


@case("clip_opset11_inputs")
def _(rng):
    x = f32(rng, 4, 6)
    nodes = [node("Clip", ["x", "lo", "hi"], ["y"]), node("Clip", ["x", "", "hi"], ["z"]), node("Clip", ["x"], ["w"])]
    return Case(
        make_model(nodes, {"x": x}, ["y", "z", "w"], {"lo": np.float32(-0.3), "hi": np.float32(0.4)}, opset=11),
        {"x": x},
    )


@case("clip_runtime_bounds_int_opset13")
def _(rng):
    x, lo = rng.integers(-9, 9, (3, 5)).astype(np.int64), np.array(-2, np.int64)
    nodes = [node("Clip", ["x", "lo"], ["y"]), node("Clip", ["x", "", "hi"], ["z"])]
    return Case(
        make_model(
            nodes, {"x": x, "lo": lo}, [("y", TP.INT64), ("z", TP.INT64)], {"hi": np.array(3, np.int64)}, opset=13
        ),
        {"x": x, "lo": lo},
    )


@case("cast_compare_logic_where")
def _(rng):
    a, b = f32(rng, 3, 4) * 4, f32(rng, 4) * 4
    nodes = [
        node("Cast", ["a"], ["ai"], to=TP.INT32),
        node("Cast", ["ai"], ["af"], to=TP.DOUBLE),
        node("Less", ["a", "b"], ["lt"]),
        node("Greater", ["a", "b"], ["gt"]),
        node("Equal", ["ai", "bi"], ["eq"]),
        node("LessOrEqual", ["a", "b"], ["le"]),
        node("GreaterOrEqual", ["a", "b"], ["ge"]),
        node("Cast", ["b"], ["bi"], to=TP.INT32),
        node("And", ["lt", "eq"], ["and"]),
        node("Or", ["gt", "eq"], ["or"]),
        node("Not", ["le"], ["not"]),
        node("Where", ["ge", "a", "b"], ["w"]),
        node("Cast", ["lt"], ["ltf"], to=TP.FLOAT),
    ]
    outs = [("ai", TP.INT32), ("af", TP.DOUBLE), ("and", TP.BOOL), ("or", TP.BOOL), ("not", TP.BOOL), "w", "ltf"]
    return Case(make_model(nodes, {"a": a, "b": b}, outs, opset=13), {"a": a, "b": b})


# -- softmax -----------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 11, 13])
@pytest.mark.parametrize("axis", [None, 1, -1])
def test_softmax(opset, axis, rng):
    x = f32(rng, 2, 3, 5) * 2
    attrs = {} if axis is None else {"axis": axis}
    nodes = [node("Softmax", ["x"], ["s"], **attrs), node("LogSoftmax", ["x"], ["l"], **attrs)]
    check_case(Case(make_model(nodes, {"x": x}, ["s", "l"], opset=opset), {"x": x}, REDUCE))


# -- normalization -----------------------------------------------------------------------


@case("layer_norm_last_axis")
def _(rng):
    x, s, b = f32(rng, 2, 5, 8), f32(rng, 8), f32(rng, 8)
    n = node("LayerNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)
    return Case(make_model([n], {"x": x}, ["y"], {"s": s, "b": b}), {"x": x}, REDUCE)


@case("layer_norm_axis1_mean_invstd_no_bias")
def _(rng):
    x, s = f32(rng, 2, 3, 4), f32(rng, 3, 4)
    n = node("LayerNormalization", ["x", "s"], ["y", "mean", "inv"], axis=1)
    return Case(make_model([n], {"x": x}, ["y", "mean", "inv"], {"s": s}, opset=18), {"x": x}, REDUCE)


@pytest.mark.parametrize("opset", [9, 15])
def test_batch_norm(opset, rng):
    x = f32(rng, 2, 3, 4, 5)
    inits = {"s": f32(rng, 3), "b": f32(rng, 3), "m": f32(rng, 3), "v": f32(rng, 3, positive=True)}
    m = make_model(
        [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
        {"x": x},
        ["y"],
        inits,
        opset=opset,
    )
    check_case(Case(m, {"x": x}, REDUCE))


@case("instance_norm_and_lrn")
def _(rng):
    x = f32(rng, 2, 5, 4, 3)
    nodes = [
        node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4),
        node("LRN", ["x"], ["l"], size=3, alpha=1e-3, beta=0.6, bias=1.5),
    ]
    return Case(make_model(nodes, {"x": x}, ["y", "l"], {"s": f32(rng, 5), "b": f32(rng, 5)}), {"x": x}, REDUCE)


# -- pooling -----------------------------------------------------------------------------


@case("max_pool_pads_strides_opset9")
def _(rng):
    x = f32(rng, 1, 3, 9, 8)
    n = node("MaxPool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1])
    return Case(make_model([n], {"x": x}, ["y"], opset=9), {"x": x})


@case("max_pool_ceil_dilation_opset12")
def _(rng):
    x = f32(rng, 2, 2, 10, 9)
    n = node("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[3, 2], dilations=[2, 1], ceil_mode=1)
    return Case(make_model([n], {"x": x}, ["y"], opset=12), {"x": x})


@case("max_pool_1d_same_upper")
def _(rng):
    x = f32(rng, 2, 3, 11)
    n = node("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")
    return Case(make_model([n], {"x": x}, ["y"]), {"x": x})


@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(include_pad, rng):
    x = f32(rng, 1, 2, 7, 6)
    n = node(
        "AveragePool",
        ["x"],
        ["y"],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 0],
        count_include_pad=include_pad,
    )
    check_case(Case(make_model([n], {"x": x}, ["y"], opset=11), {"x": x}, REDUCE))


@case("global_pools")
def _(rng):
    x, z = f32(rng, 2, 3, 5, 4), f32(rng, 2, 3, 7)
    nodes = [
        node("GlobalAveragePool", ["x"], ["a"]),
        node("GlobalMaxPool", ["x"], ["m"]),
        node("GlobalAveragePool", ["z"], ["a1"]),
    ]
    return Case(make_model(nodes, {"x": x, "z": z}, ["a", "m", "a1"]), {"x": x, "z": z}, REDUCE)


# -- pad, dropout, flatten ---------------------------------------------------------------


@case("pad_opset2_attrs")
def _(rng):
    x = f32(rng, 2, 3, 4)
    n = node("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 2, 1], value=1.5)
    return Case(make_model([n], {"x": x}, ["y"], opset=2), {"x": x})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_opset11_inputs(mode, rng):
    x = f32(rng, 2, 4, 5)
    n = node("Pad", ["x", "pads", "v"], ["y"], mode=mode)
    inits = {"pads": np.array([0, 2, 1, 0, 1, 3], np.int64), "v": np.float32(-2.0)}
    check_case(Case(make_model([n], {"x": x}, ["y"], inits, opset=11), {"x": x}))


@case("pad_opset18_axes_negative")
def _(rng):
    x = f32(rng, 3, 6, 5)
    n = node("Pad", ["x", "pads", "", "axes"], ["y"])
    inits = {"pads": np.array([-1, 2, 1, -2], np.int64), "axes": np.array([1, -1], np.int64)}
    return Case(make_model([n], {"x": x}, ["y"], inits, opset=18), {"x": x})


@case("dropout_flatten")
def _(rng):
    x = f32(rng, 2, 3, 4, 5)
    nodes = [
        node("Dropout", ["x"], ["d"], ratio=0.3),
        node("Flatten", ["d"], ["f0"], axis=0),
        node("Flatten", ["x"], ["f2"], axis=-2),
        node("Flatten", ["x"], ["f1"]),
    ]
    return Case(make_model(nodes, {"x": x}, ["d", "f0", "f2", "f1"], opset=11), {"x": x})


@case("dropout_opset13_inputs")
def _(rng):
    x = f32(rng, 4, 5)
    n = node(
        "Dropout", ["x", "r", "t"], ["y", "mask"]
    )  # (onnxruntime's opset-11 mask is all False; the spec's is True)
    inits = {"r": np.float32(0.5), "t": np.array(False)}
    return Case(make_model([n], {"x": x}, ["y", ("mask", TP.BOOL)], inits, opset=13), {"x": x})


# -- resize ---------------------------------------------------------------------------------


@case("upsample_opset9_nearest")
def _(rng):
    x = f32(rng, 1, 2, 3, 4)
    n = node("Upsample", ["x", "s"], ["y"], mode="nearest")
    return Case(make_model([n], {"x": x}, ["y"], {"s": np.array([1, 1, 2, 3], np.float32)}, opset=9), {"x": x})


@case("resize_opset10_linear")
def _(rng):
    x = f32(rng, 1, 2, 3, 4)
    n = node("Resize", ["x", "s"], ["y"], mode="linear")
    return Case(make_model([n], {"x": x}, ["y"], {"s": np.array([1, 1, 2, 2], np.float32)}, opset=10), {"x": x})


@pytest.mark.parametrize(
    "mode, coord, nearest",
    [
        ("nearest", "half_pixel", "round_prefer_floor"),
        ("nearest", "asymmetric", "floor"),
        ("nearest", "align_corners", "round_prefer_ceil"),
        ("linear", "half_pixel", None),
        ("linear", "align_corners", None),
        ("linear", "pytorch_half_pixel", None),
        ("linear", "asymmetric", None),
    ],
)
def test_resize_opset13(mode, coord, nearest, rng):
    x = f32(rng, 1, 3, 4, 5)
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if nearest:
        attrs["nearest_mode"] = nearest
    n = node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    inits = {"sizes": np.array([1, 3, 7, 9], np.int64)}
    check_case(Case(make_model([n], {"x": x}, ["y"], inits, opset=13), {"x": x}))


@case("resize_opset18_axes_scales_downsample")
def _(rng):
    x = f32(rng, 2, 3, 8, 6)
    n = node("Resize", ["x", "", "scales"], ["y"], mode="linear", axes=[2, 3])
    return Case(make_model([n], {"x": x}, ["y"], {"scales": np.array([0.5, 0.5], np.float32)}, opset=18), {"x": x})


# -- reductions -----------------------------------------------------------------------------


REDUCE_OPS = [
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSumExp",
]


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_reductions(opset, rng):
    x = f32(rng, 3, 4, 5)
    nodes, outs, inits = [], [], {"axes": np.array([0, -1], np.int64)}
    for op in REDUCE_OPS:
        as_input = opset >= 18 or (op == "ReduceSum" and opset >= 13)
        if as_input:
            nodes.append(node(op, ["x", "axes"], [op + "_k"]))
            nodes.append(node(op, ["x"], [op + "_all"], keepdims=0))
        else:
            nodes.append(node(op, ["x"], [op + "_k"], axes=[0, -1]))
            nodes.append(node(op, ["x"], [op + "_all"], keepdims=0))
        outs += [op + "_k", op + "_all"]
    if opset >= 18:
        nodes.append(node("ReduceMean", ["x", "empty"], ["noop"], noop_with_empty_axes=1))
        outs.append("noop")
        inits["empty"] = np.array([], np.int64)
    check_case(Case(make_model(nodes, {"x": x}, outs, inits, opset=opset), {"x": x}, REDUCE))


@case("argmax_argmin")
def _(rng):
    x = np.round(f32(rng, 3, 4, 5))  # ties, for select_last_index
    nodes = [
        node("ArgMax", ["x"], ["a0"]),
        node("ArgMin", ["x"], ["a1"], axis=-1, keepdims=0),
        node("ArgMax", ["x"], ["a2"], axis=1, select_last_index=1),
        node("ArgMin", ["x"], ["a3"], select_last_index=1),
    ]
    return Case(make_model(nodes, {"x": x}, [(o, TP.INT64) for o in ("a0", "a1", "a2", "a3")], opset=13), {"x": x})


# -- shapes ----------------------------------------------------------------------------------


@case("reshape_transpose_squeeze_unsqueeze_opset11")
def _(rng):
    x = f32(rng, 2, 1, 3, 4)
    nodes = [
        node("Reshape", ["x", "shape"], ["r"]),
        node("Transpose", ["r"], ["t"], perm=[2, 0, 1]),
        node("Squeeze", ["x"], ["s"], axes=[1]),
        node("Unsqueeze", ["s"], ["u"], axes=[0, -1]),
        node("Transpose", ["x"], ["tr"]),
        node("Squeeze", ["x"], ["sa"]),
    ]
    inits = {"shape": np.array([0, -1, 4], np.int64)}
    return Case(make_model(nodes, {"x": x}, ["t", "u", "tr", "sa"], inits, opset=11), {"x": x})


@case("squeeze_unsqueeze_opset13_allowzero14")
def _(rng):
    x = f32(rng, 3, 1, 4)
    nodes = [
        node("Squeeze", ["x", "ax"], ["s"]),
        node("Unsqueeze", ["s", "ax2"], ["u"]),
        node("Reshape", ["u", "shape"], ["r"], allowzero=1),
    ]
    inits = {"ax": np.array([-2], np.int64), "ax2": np.array([0, 3], np.int64), "shape": np.array([6, 2], np.int64)}
    return Case(make_model(nodes, {"x": x}, ["u", "r"], inits, opset=14), {"x": x})


@case("concat_split_opset11")
def _(rng):
    a, b = f32(rng, 2, 3), f32(rng, 2, 5)
    nodes = [
        node("Concat", ["a", "b"], ["c"], axis=-1),
        node("Split", ["c"], ["s0", "s1", "s2"], axis=1, split=[1, 3, 4]),
        node("Split", ["a"], ["e0", "e1"], axis=0),
    ]
    return Case(make_model(nodes, {"a": a, "b": b}, ["s0", "s1", "s2", "e0", "e1"], opset=11), {"a": a, "b": b})


@case("split_opset13_input_opset18_num_outputs")
def _(rng):
    x = f32(rng, 7, 3)
    m13 = make_model(
        [node("Split", ["x", "sp"], ["a", "b"])], {"x": x}, ["a", "b"], {"sp": np.array([5, 2], np.int64)}, opset=13
    )
    check_case(Case(m13, {"x": x}))
    m18 = make_model([node("Split", ["x"], ["a", "b", "c"], num_outputs=3)], {"x": x}, ["a", "b", "c"], opset=18)
    return Case(m18, {"x": x})


@case("slice_opset9_attrs")
def _(rng):
    x = f32(rng, 5, 6, 7)
    n = node("Slice", ["x"], ["y"], starts=[1, -4], ends=[100, -1], axes=[0, 2])
    return Case(make_model([n], {"x": x}, ["y"], opset=9), {"x": x})


@case("slice_opset13_inputs_negative_steps")
def _(rng):
    x = f32(rng, 5, 6, 7)
    nodes = [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"]), node("Slice", ["x", "st2", "en2"], ["z"])]
    inits = {
        "st": np.array([-1, 1], np.int64),
        "en": np.array([-1000, 6], np.int64),
        "ax": np.array([2, 1], np.int64),
        "sp": np.array([-2, 2], np.int64),
        "st2": np.array([4, 0], np.int64),
        "en2": np.array([np.iinfo(np.int64).max, -2], np.int64),
    }
    return Case(make_model(nodes, {"x": x}, ["y", "z"], inits, opset=13), {"x": x})


@case("gather_take_gather_elements")
def _(rng):
    x = f32(rng, 4, 5, 3)
    idx = rng.integers(-4, 4, (2, 3)).astype(np.int64)
    el = rng.integers(-5, 5, (4, 2, 3)).astype(np.int64)
    nodes = [
        node("Gather", ["x", "i"], ["g"], axis=0),
        node("Gather", ["x", "s"], ["gs"], axis=-1),
        node("GatherElements", ["x", "e"], ["ge"], axis=1),
        node("Gather", ["x", "ri"], ["gr"], axis=1),
        node("GatherElements", ["x", "re"], ["gre"], axis=1),
    ]
    ri = rng.integers(-5, 5, (3,)).astype(np.int64)
    re = rng.integers(-5, 5, (4, 2, 3)).astype(np.int64)
    inits = {"i": idx, "s": np.array(-1, np.int64), "e": el}
    return Case(
        make_model(nodes, {"x": x, "ri": ri, "re": re}, ["g", "gs", "ge", "gr", "gre"], inits, opset=13),
        {"x": x, "ri": ri, "re": re},
    )


@case("tile_expand")
def _(rng):
    x = f32(rng, 3, 1)
    nodes = [node("Tile", ["x", "reps"], ["t"]), node("Expand", ["x", "shape"], ["e"])]
    inits = {"reps": np.array([2, 3], np.int64), "shape": np.array([2, 1, 4], np.int64)}
    return Case(make_model(nodes, {"x": x}, ["t", "e"], inits, opset=13), {"x": x})


@case("shape_size_constant_of_shape_constants")
def _(rng):
    x = f32(rng, 2, 3, 4)
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Size", ["x"], ["n"]),
        node("Shape", ["x"], ["s1"], start=1, end=-1),
        node("ConstantOfShape", ["s1"], ["z"], value=numpy_helper.from_array(np.array([2.5], np.float32))),
        node("Constant", [], ["c1"], value_float=3.0),
        node("Constant", [], ["c2"], value_ints=[1, 2, 3, 4]),
        node("Constant", [], ["c3"], value=numpy_helper.from_array(f32(rng, 4))),
        node("Cast", ["c2"], ["c2f"], to=TP.FLOAT),
        node("Add", ["x", "c3"], ["a"]),
        node("Mul", ["a", "c1"], ["b"]),
        node("Add", ["b", "c2f"], ["y"]),
        node("Identity", ["y"], ["id"]),
        node("ConstantOfShape", ["s"], ["zz"]),
        node("Constant", [], ["c4"], value_floats=[0.5, -1.0, 2.0, 3.0]),
        node("Constant", [], ["c5"], value_int=2),
        node(
            "Constant",
            [],
            ["c6"],
            sparse_value=helper.make_sparse_tensor(
                numpy_helper.from_array(np.array([1.5, -2.0], np.float32), "sv"),
                numpy_helper.from_array(np.array([1, 7], np.int64), "si"),
                [3, 4],
            ),
        ),
        node("Mul", ["x", "c4"], ["m4"]),
        node("Cast", ["c5"], ["c5f"], to=TP.FLOAT),
        node("Mul", ["m4", "c5f"], ["m5"]),
        node("Add", ["m5", "c6"], ["m6"]),
    ]
    outs = [("s", TP.INT64), ("n", TP.INT64), "z", "id", "zz", "m6"]
    return Case(make_model(nodes, {"x": x}, outs, opset=15), {"x": x})


def test_pytorch_shape_chain_is_folded(rng):
    """Shape → Gather → Unsqueeze → Concat → Reshape, as PyTorch exports x.view(x.size(0), -1)."""
    x = f32(rng, 2, 3, 4)
    nodes = [
        node("Shape", ["input.1"], ["2"]),
        node("Constant", [], ["3"], value=numpy_helper.from_array(np.array(0))),
        node("Gather", ["2", "3"], ["4"], axis=0),
        node("Unsqueeze", ["4", "5"], ["6"]),
        node("Concat", ["6", "7"], ["8"], axis=0),
        node("Reshape", ["input.1", "8"], ["9"]),
        node("Relu", ["9"], ["output"]),
    ]
    inits = {"5": np.array([0], np.int64), "7": np.array([-1], np.int64)}
    m = make_model(nodes, {"input.1": x}, ["output"], inits, opset=13)
    module, params = check_case(Case(m, {"input.1": x}))
    names = [op.name for op in module.walk()]
    assert "graph.take" not in names and "graph.concatenate" not in names and not params
    assert names.count("graph.reshape") == 1


# -- recurrent layers ------------------------------------------------------------------------


def _rnn_case(rng, op, gates, opset=14, direction="forward", layout=0, bias=True, init=True, peep=False, **attrs):
    seq, batch, inp, hid = 3, 2, 4, 5
    dirs = 2 if direction == "bidirectional" else 1
    x = f32(rng, *((batch, seq, inp) if layout else (seq, batch, inp)))
    inits = {"W": f32(rng, dirs, gates * hid, inp) * 0.5, "R": f32(rng, dirs, gates * hid, hid) * 0.5}
    ins = ["x", "W", "R", "B" if bias else "", "", "h0" if init else ""]
    if bias:
        inits["B"] = f32(rng, dirs, 2 * gates * hid) * 0.5
    state_shape = (batch, dirs, hid) if layout else (dirs, batch, hid)
    inputs = {"x": x}
    if init:
        inputs["h0"] = f32(rng, *state_shape)
    if op == "LSTM":
        ins.append("c0" if init else "")
        if init:
            inputs["c0"] = f32(rng, *state_shape)
        if peep:
            ins.append("P")
            inits["P"] = f32(rng, dirs, 3 * hid) * 0.5
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    n = node(
        op, ins, outs, hidden_size=hid, direction=direction, **({"layout": layout} if opset >= 14 else {}), **attrs
    )
    # onnxruntime runs batch-major (layout=1) recurrent layers only on GPUs: onnx's reference then
    return Case(
        make_model([n], inputs, outs, inits, opset=opset), inputs, REDUCE, reference="onnx" if layout else "onnxruntime"
    )


@case("lstm_forward_bias_initial_peepholes")
def _(rng):
    return _rnn_case(rng, "LSTM", 4, peep=True)


@case("lstm_bidirectional_layout1")
def _(rng):
    return _rnn_case(rng, "LSTM", 4, direction="bidirectional", layout=1)


@case("lstm_reverse_no_bias_no_init_opset9")
def _(rng):
    return _rnn_case(rng, "LSTM", 4, opset=9, direction="reverse", bias=False, init=False)


@case("gru_forward")
def _(rng):
    return _rnn_case(rng, "GRU", 3)


@case("gru_bidirectional_linear_before_reset")
def _(rng):
    return _rnn_case(rng, "GRU", 3, direction="bidirectional", linear_before_reset=1)


@case("rnn_reverse_layout1")
def _(rng):
    return _rnn_case(rng, "RNN", 1, direction="reverse", layout=1)


@case("rnn_relu_activation_opset9")
def _(rng):
    return _rnn_case(rng, "RNN", 1, opset=9, activations=["Relu"])


# ---------------------------------------------------------------------------


# -- every opset --------------------------------------------------------------------------------


def _opset_model(opset: int, rng):
    """One model with the ops whose signatures changed, each written the way `opset` spells it."""
    x = f32(rng, 2, 4, 6, 6)
    inits = {"w": f32(rng, 3, 4, 3, 3), "fc": f32(rng, 5, 27), "fcb": f32(rng, 5)}
    nodes = []

    def const(name, value):
        inits[name] = np.asarray(value)
        return name

    def axes_node(op, ins, out, axes, as_input, **attrs):
        if as_input:
            nodes.append(node(op, ins + [const(out + "_axes", np.array(axes, np.int64))], [out], **attrs))
        else:
            nodes.append(node(op, ins, [out], axes=axes, **attrs))

    nodes.append(node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]))  # (2, 3, 3, 3)
    nodes.append(node("Relu", ["c"], ["r"]))
    nodes.append(node("Softmax", ["r"], ["sm"], axis=1))  # before 13: over the flattened (3·3·3) rows
    axes_node("ReduceSum", ["x"], "rs", [2], opset >= 13)
    axes_node("ReduceMean", ["x"], "rm", [1, 3], opset >= 18, keepdims=0)
    axes_node("Squeeze", ["rs"], "sq", [2], opset >= 13)
    axes_node("Unsqueeze", ["sq"], "usq", [0], opset >= 13)
    if opset >= 13:
        nodes.append(node("Split", ["x", const("split", np.array([1, 3], np.int64))], ["s0", "s1"], axis=1))
    else:
        nodes.append(node("Split", ["x"], ["s0", "s1"], axis=1, split=[1, 3]))
    if opset >= 10:
        nodes.append(
            node(
                "Slice",
                [
                    "s1",
                    const("starts", np.array([1, -1], np.int64)),
                    const("ends", np.array([5, 0], np.int64)),
                    const("sax", np.array([2, 3], np.int64)),
                    const("steps", np.array([2, -2], np.int64)),
                ],
                ["sl"],
            )
        )
    else:
        nodes.append(node("Slice", ["s1"], ["sl"], starts=[1, 1], ends=[5, 6], axes=[2, 3]))
    if opset >= 11:
        nodes.append(
            node(
                "Pad",
                ["sl", const("pads", np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64)), const("pv", np.float32(0.5))],
                ["pd"],
            )
        )
        nodes.append(node("Clip", ["pd", const("lo", np.float32(-1)), const("hi", np.float32(1))], ["cl"]))
    else:
        nodes.append(node("Pad", ["sl"], ["pd"], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=0.5))
        nodes.append(node("Clip", ["pd"], ["cl"], min=-1.0, max=1.0))
    scales = const("scales", np.array([1, 1, 2, 2], np.float32))
    if opset >= 13:  # roi optional
        nodes.append(node("Resize", ["s0", "", scales], ["up"], mode="nearest"))
    elif opset >= 11:  # roi, scales, sizes
        nodes.append(node("Resize", ["s0", const("roi", np.array([], np.float32)), scales], ["up"], mode="nearest"))
    elif opset == 10:
        nodes.append(node("Resize", ["s0", scales], ["up"], mode="nearest"))
    else:
        nodes.append(node("Upsample", ["s0", scales], ["up"]))
    nodes.append(node("Dropout", ["r"], ["dr"]))
    nodes.append(node("Flatten", ["dr"], ["fl"]))
    nodes.append(node("Shape", ["fl"], ["shp"]))
    nodes.append(node("Gemm", ["fl", "fc", "fcb"], ["gm"], transB=1))
    nodes.append(node("ArgMax", ["gm"], ["am"], axis=1))
    outs = ["sm", "rs", "rm", "usq", "cl", "up", "gm", ("am", TP.INT64), ("shp", TP.INT64)]
    return make_model(nodes, {"x": x}, outs, inits, opset=opset), {"x": x}


@pytest.mark.parametrize("opset", range(9, onnx.defs.onnx_opset_version() + 1))
def test_every_opset(opset, rng):
    model, inputs = _opset_model(opset, rng)
    check_case(Case(model, inputs, REDUCE))


# -- names ---------------------------------------------------------------------------------


NAMES = [
    "x",
    "gpu_0/data_0",
    "input.1",
    "0",
    "123abc",
    "conv1.weight",
    "fc_0",
    "a__b",
    "_",
    "__",
    "_u0041",
    "a_u002e",
    "x_1_2",
    "onnx::Gemm_17",
    "résumé",
    "emoji😀",
    "a b",
    "a-b_",
    "_9",
    "9_",
]


@pytest.mark.parametrize("name", NAMES)
def test_sanitize_round_trip(name):
    s = sanitize(name)
    assert s and (s[0].isalpha() or s[0] == "_") and all(c.isascii() and (c.isalnum() or c == "_") for c in s), s
    assert not __import__("re").search(r"_[0-9]+$", s), s  # xDSL drops such suffixes from name hints
    assert unsanitize(s) == name


def test_sanitize_is_injective_and_readable():
    assert sanitize("conv1_weight") == "conv1_weight"
    assert sanitize("gpu_0/data_0") == "gpu_0_u002fdata_u005f0"
    assert unsanitize("plain_name") == "plain_name"
    assert len({sanitize(n) for n in NAMES}) == len(NAMES)


def test_sanitize_random_strings(rng):
    alphabet = list("ab_0u9.f/:") + ["é", "😀"]
    for _ in range(300):
        name = "".join(rng.choice(alphabet, size=int(rng.integers(1, 10))))
        assert unsanitize(sanitize(name)) == name


# -- the converter registry ---------------------------------------------------------------


def test_converters_for_maps_graph_ops_back_to_onnx_ops():
    from lathe.dialects import graph
    from lathe.frontends.onnx import converters_for

    assert "Relu" in converters_for(graph.ReluOp)
    assert {"Add", "Sum"} <= set(converters_for(graph.AddOp))
    assert "Conv" in converters_for(graph.Conv2dOp)


def test_every_supported_op_has_a_registered_converter():
    from lathe.frontends.onnx import conversions, supported_ops
    from lathe.frontends.onnx.registry import converter, first_opset

    registered = {c.op_type for c in conversions() if callable(c.convert)}
    assert supported_ops() and set(supported_ops()) == registered
    for op_type in supported_ops():
        since = first_opset(op_type)
        assert since is not None and callable(converter(op_type, since)), op_type
        assert converter(op_type, since - 1) is None, op_type


# -- parameters, positional inputs ------------------------------------------------------------


def test_parameter_order_and_positional_run(rng):
    a, b = f32(rng, 2, 3), f32(rng, 3, 4)
    w1, w2 = f32(rng, 4, 4), f32(rng, 4)
    nodes = [
        node("MatMul", ["b_in", "w1"], ["m"]),
        node("Add", ["m", "w2"], ["s"]),
        node("MatMul", ["a_in", "s"], ["y"]),
    ]
    m = make_model(nodes, {"b_in": b, "a_in": a}, ["y"], {"w2": w2, "w1": w1})
    module, params = from_onnx(m)
    main = next(iter(module.ops))
    assert [arg.name_hint for arg in main.body.block.args] == ["b_in", "a_in", "w2", "w1"]
    assert set(params) == {"w1", "w2"}
    ref = run_onnxruntime(m, {"b_in": b, "a_in": a})
    compare(lathe.compile(module, params=params).run(b, a), ref, REDUCE)


# -- the command line ---------------------------------------------------------------------------


def _lathe(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "lathe.tools.lathe_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "LATHE_NUM_THREADS": "2"},
    )


def test_cli_import_and_run_round_trip(tmp_path, rng):
    x = f32(rng, 2, 3, 6, 6)
    nodes = [
        node("Conv", ["gpu_0/data_0", "conv1.weight", "conv1.bias"], ["input.4"], pads=[1, 1, 1, 1]),
        node("Relu", ["input.4"], ["5"]),
        node("Shape", ["5"], ["6"]),
        node("Gather", ["6", "zero"], ["7"]),
        node("Unsqueeze", ["7", "ax"], ["8"]),
        node("Concat", ["8", "m1"], ["9"], axis=0),
        node("Reshape", ["5", "9"], ["10"]),
        node("Gemm", ["10", "fc_0", "fc_b_1"], ["out:0"], transB=1),
    ]
    inits = {
        "conv1.weight": f32(rng, 4, 3, 3, 3),
        "conv1.bias": f32(rng, 4),
        "zero": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "m1": np.array([-1], np.int64),
        "fc_0": f32(rng, 5, 144),
        "fc_b_1": f32(rng, 5),
    }
    m = make_model(nodes, {"gpu_0/data_0": x}, ["out:0"], inits)
    onnx.save(m, tmp_path / "model.onnx")
    r = _lathe("import", str(tmp_path / "model.onnx"), "-o", str(tmp_path / "model.lathe"))
    assert r.returncode == 0, r.stderr
    assert "model.lathe" in r.stdout and "model.params.npz" in r.stdout
    text = (tmp_path / "model.lathe").read_text()
    assert "%gpu_0_u002fdata_u005f0" in text and "%conv1_u002eweight" in text
    with np.load(tmp_path / "model.params.npz") as z:
        keys = set(z.files)
    assert keys == {"conv1_u002eweight", "conv1_u002ebias", "fc_u005f0", "fc_b_u005f1"}
    assert {unsanitize(k) for k in keys} == {"conv1.weight", "conv1.bias", "fc_0", "fc_b_1"}
    np.savez(tmp_path / "in.npz", **{sanitize("gpu_0/data_0"): x})
    r = _lathe(
        "run",
        str(tmp_path / "model.lathe"),
        "--params",
        str(tmp_path / "model.params.npz"),
        "--inputs",
        str(tmp_path / "in.npz"),
        "--output",
        str(tmp_path / "out.npz"),
        "--check",
    )
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    with np.load(tmp_path / "out.npz") as z:
        got = z["output"]
    compare(got, run_onnxruntime(m, {"gpu_0/data_0": x}), REDUCE)


def _bad(tmp_path, model_or_bytes, name="bad.onnx"):
    p = tmp_path / name
    if isinstance(model_or_bytes, bytes):
        p.write_bytes(model_or_bytes)
    else:
        onnx.save(model_or_bytes, p)
    return _lathe("import", str(p), "-o", str(tmp_path / "bad.lathe"))


def _assert_clean_error(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    for s in needles:
        assert s in r.stderr, (s, r.stderr)


def test_cli_unsupported_op(tmp_path):
    x = np.zeros((2, 3), np.float32)
    m = make_model(
        [node("Relu", ["x"], ["r"], name="first"), node("CumSum", ["r", "ax"], ["y"], name="my_cumsum")],
        {"x": x},
        ["y"],
        {"ax": np.array(1, np.int64)},
        opset=13,
    )
    r = _bad(tmp_path, m)
    _assert_clean_error(r, "CumSum", "my_cumsum", "opset 13")
    assert not (tmp_path / "bad.lathe").exists()


def test_cli_corrupt_file_keeps_existing_outputs(tmp_path):
    (tmp_path / "bad.lathe").write_text("previous contents")
    r = _bad(tmp_path, b"\x08\x07this is not an onnx model\xff\xfe" * 10)
    _assert_clean_error(r, "bad.onnx", "not a valid ONNX model")
    assert (tmp_path / "bad.lathe").read_text() == "previous contents"
    _assert_clean_error(_lathe("import", str(tmp_path / "missing.onnx")), "missing.onnx")


def test_missing_and_wrong_shaped_initializers(tmp_path):
    x = np.zeros((2, 3), np.float32)
    m = make_model([node("MatMul", ["x", "w"], ["y"])], {"x": x}, ["y"])
    with pytest.raises(LatheError, match="'w' is not a graph input, an initializer"):
        from_onnx(m)
    m = make_model([node("MatMul", ["x", "w"], ["y"])], {"x": x}, ["y"], {"w": np.zeros((4, 5), np.float32)})
    with pytest.raises(LatheError, match=r"MatMul.*shape mismatch.*\[2, 3\] and \[4, 5\]"):
        from_onnx(m)
    m = make_model([node("MatMul", ["x", "w"], ["y"])], {"x": x}, ["y"], {"w": np.zeros((3, 5), np.float32)})
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:7]  # truncated: not 15 floats
    _assert_clean_error(_bad(tmp_path, m), "initializer 'w'")
    m = make_model([node("Add", ["x", "w"], ["y"])], {"x": x}, ["y"], {"w": np.zeros((2, 4), np.float32)})
    _assert_clean_error(_bad(tmp_path, m), "Add", "opset 17", "cannot be broadcast")
    # an initializer also listed as a graph input (IR < 4 style) with another declared shape
    m = make_model(
        [node("Add", ["x", "w"], ["y"])],
        {"x": x, "w": np.zeros((2, 3), np.float32)},
        ["y"],
        {"w": np.zeros((3, 3), np.float32)},
    )
    with pytest.raises(LatheError, match=r"initializer 'w' has shape \(3, 3\) but the graph input declares \(2, 3\)"):
        from_onnx(m)


def test_declared_output_shape_is_a_hint():
    """(Issue 14: a declared graph-output shape is a hint, as in ONNX Runtime, which warns; it
    was refused before.)"""
    x = np.zeros((2, 3), np.float32)
    m = make_model([node("Relu", ["x"], ["y"])], {"x": x}, ["y"])
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TP.FLOAT, [3, 2]))
    with pytest.warns(UserWarning, match=r"graph output 'y' is declared \(3, 2\)"):
        module, _ = from_onnx(m)
    assert graph_out_str(module) == "Tensor[(2, 3), float32]"


def graph_out_str(module) -> str:
    from lathe.dialects import graph

    return graph.type_str(module.ops.first.function_type.outputs.data[0])


def test_dynamic_input_dimension_is_a_question_mark(rng):
    """(Issue 14: a dim_param is a ? dimension, run on the VM at any size; it was refused before.)"""
    x = f32(rng, 2, 3)
    m = make_model([node("Relu", ["x"], ["y"])], {"x": x}, ["y"])
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    module, params = from_onnx(m)
    assert graph_out_str(module) == "Tensor[(?, 3), float32]"
    cm = lathe.compile(module)
    for n in (2, 5):
        xn = f32(rng, n, 3)
        compare(cm.run(xn), run_onnxruntime(m, {"x": xn}), ELEM)
    module, params = from_onnx(m, shapes={"x": (2, 3)})
    compare(lathe.interpret(module, x=x), run_onnxruntime(m, {"x": x}), ELEM)


def test_opset_override_and_range():
    x = np.zeros((2, 3, 4), np.float32)
    m = make_model([node("Softmax", ["x"], ["y"])], {"x": x}, ["y"], opset=13)
    with pytest.raises(LatheError, match="opset 99"):
        from_onnx(m, opset=99)
    ops13 = [op.name for op in from_onnx(m)[0].walk()]
    ops11 = [op.name for op in from_onnx(m, opset=11)[0].walk()]  # before 13: flatten to 2-D at axis 1
    assert "graph.reshape" not in ops13 and ops11.count("graph.reshape") == 2


# -- Lathe bugs the importer found (fixed; these keep them fixed) ---------------------------------


def test_reduce_max_min_bool(rng):
    x = rng.random((4, 3)) < 0.5
    nodes = [node("ReduceMax", ["x", "ax"], ["mx"]), node("ReduceMin", ["x", "ax"], ["mn"])]
    m = make_model(nodes, {"x": x}, [("mx", TP.BOOL), ("mn", TP.BOOL)], {"ax": np.array([1], np.int64)}, opset=20)
    check_case(Case(m, {"x": x}))


def test_reduce_max_min_over_empty_axis():
    x = np.zeros((2, 0, 3), np.float32)
    nodes = [node("ReduceMax", ["x", "ax"], ["mx"]), node("ReduceMin", ["x", "ax"], ["mn"])]
    m = make_model(nodes, {"x": x}, ["mx", "mn"], {"ax": np.array([1], np.int64)}, opset=18)
    check_case(Case(m, {"x": x}))


_CAST_F64_TO_F16 = """
import numpy as np, onnx, lathe
from onnx import helper, TensorProto as TP
g = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TP.FLOAT16)], "g",
                      [helper.make_tensor_value_info("x", TP.DOUBLE, [3, 4])], [helper.make_tensor_value_info("y", TP.FLOAT16, None)])
module, params = lathe.from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
x = np.linspace(-2, 2, 12).reshape(3, 4)
assert (lathe.compile(module).run(x) == x.astype(np.float16)).all()
"""


def test_cast_float64_to_float16_compiled():
    r = subprocess.run([sys.executable, "-c", _CAST_F64_TO_F16], capture_output=True, text=True)  # it segfaulted
    assert r.returncode == 0, r.stderr[-500:]


# -- ops beyond the core list ---------------------------------------------------------------------


@case("extras_elementwise")
def _(rng):
    x = f32(rng, 3, 4, 5) * 3
    x[0, 0, :3] = [np.inf, -np.inf, np.nan]
    y = f32(rng, 3, 4, 5) * 3
    nodes = [
        node("Sign", ["y"], ["sign"]),
        node("IsNaN", ["x"], ["nan"]),
        node("IsInf", ["x"], ["inf"]),
        node("IsInf", ["x"], ["pinf"], detect_negative=0),
        node("Celu", ["y"], ["celu"], alpha=0.8),
        node("Shrink", ["y"], ["shrink"], lambd=0.7, bias=0.2),
        node("Mish", ["y"], ["mish"]),
        node("Hardmax", ["y"], ["hardmax"], axis=1),
        node("LpNormalization", ["y"], ["l2"]),
        node("LpNormalization", ["y"], ["l1"], axis=0, p=1),
        node("Trilu", ["y", "k"], ["triu"]),
        node("Trilu", ["y"], ["tril"], upper=0),
        node("RMSNormalization", ["y", "scale"], ["rms"], axis=1),
    ]
    outs = [
        "sign",
        ("nan", TP.BOOL),
        ("inf", TP.BOOL),
        ("pinf", TP.BOOL),
        "celu",
        "shrink",
        "mish",
        "hardmax",
        "l2",
        "l1",
        "triu",
        "tril",
        "rms",
    ]
    inits = {"k": np.array(1, np.int64), "scale": f32(rng, 4, 5)}
    return Case(make_model(nodes, {"x": x, "y": y}, outs, inits, opset=23), {"x": x, "y": y}, REDUCE)


@case("extras_mod_onehot_hardmax11")
def _(rng):
    a = rng.integers(-20, 20, (4, 5)).astype(np.int64)
    b = rng.integers(1, 6, (5,)).astype(np.int64) * rng.choice([-1, 1], (5,))
    fa, fb = f32(rng, 4, 5) * 5, f32(rng, 5, positive=True)
    idx = rng.integers(-4, 4, (2, 3)).astype(np.int64)
    nodes = [
        node("Mod", ["a", "b"], ["mod"]),
        node("Mod", ["a", "b"], ["fmod"], fmod=1),
        node("Mod", ["fa", "fb"], ["ffmod"], fmod=1),
        node("OneHot", ["idx", "depth", "vals"], ["oh"], axis=1),
        node("Hardmax", ["fa"], ["hm"]),
    ]
    inits = {"depth": np.array(4, np.int64), "vals": np.array([-1.0, 2.0], np.float32)}
    ins = {"a": a, "b": b, "fa": fa, "fb": fb, "idx": idx}
    return Case(
        make_model(nodes, ins, [("mod", TP.INT64), ("fmod", TP.INT64), "ffmod", "oh", "hm"], inits, opset=11), ins
    )


@case("extras_depth_space_eye")
def _(rng):
    x = f32(rng, 2, 8, 3, 4)
    nodes = [
        node("DepthToSpace", ["x"], ["dcr"], blocksize=2),
        node("DepthToSpace", ["x"], ["crd"], blocksize=2, mode="CRD"),
        node("SpaceToDepth", ["dcr"], ["s2d"], blocksize=2),
        node("EyeLike", ["e"], ["eye"], k=1),
    ]
    return Case(
        make_model(nodes, {"x": x}, ["dcr", "crd", "s2d", "eye"], {"e": np.zeros((3, 5), np.float32)}, opset=13),
        {"x": x},
    )


# ---------------------------------------------------------------------------
# every case above (registered with @case), last so that all are collected


@pytest.mark.parametrize("name", list(CASES))
def test_op(name, rng):
    c = CASES[name](rng)
    if c.xfail:
        pytest.xfail(c.xfail)
    check_case(c)
