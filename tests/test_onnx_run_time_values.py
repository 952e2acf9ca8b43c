"""ONNX ops whose attribute-like inputs are known only at run time (issue 14): TopK's k, Range's
bounds, OneHot's depth, Pad's pads, value and axes, Resize's scales and sizes. Each is a
`graph.dyn` (or an arange of one) that the VM builds per value; each model is built with
onnx.helper and compared with onnxruntime on fresh random inputs, through the reference
interpreter and the VM, at several values."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import assert_like_onnxruntime  # noqa: E402
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

import lathe  # noqa: E402
from lathe.errors import LatheError  # noqa: E402
from lathe.frontends.onnx import from_onnx  # noqa: E402


def info(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def one_node(op, inputs, outputs, opset=19, **attrs):
    """A model of one `op` node whose inputs are all graph inputs (name → value info)."""
    g = helper.make_graph(
        [helper.make_node(op, list(inputs), list(outputs), **attrs)],
        "test",
        list(inputs.values()),
        [info(o, t, None) for o, t in outputs.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def check(m, feeds_list, exact=False):
    """Every feed through the interpreter and one compiled VM module, against onnxruntime."""
    module, params = from_onnx(m)
    assert any(op.name == "graph.dyn" for op in module.walk())
    return assert_like_onnxruntime(m, module, params, feeds_list, exact=exact)


rng = np.random.default_rng(14)


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_with_a_run_time_k(largest):
    """Ties (a few distinct values) come in index order, as onnxruntime gives them."""
    m = one_node(
        "TopK",
        {"x": info("x", TP.FLOAT, [4, 9]), "k": info("k", TP.INT64, [1])},
        {"v": TP.FLOAT, "i": TP.INT64},
        axis=1,
        largest=largest,
    )
    x = rng.integers(-3, 4, (4, 9)).astype(np.float32)
    compiled = check(m, [{"x": x, "k": np.array([k], np.int64)} for k in (1, 4, 9)], exact=True)
    before = compiled.compiles
    compiled.run(x=x, k=np.array([4], np.int64))
    assert compiled.compiles == before  # a k seen before runs what was compiled for it


def test_topk_with_k_known_at_import_time_is_a_static_topk():
    g = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=0)],
        "test",
        [info("x", TP.FLOAT, [7, 3])],
        [info("v", TP.FLOAT, None), info("i", TP.INT64, None)],
        initializer=[onnx.numpy_helper.from_array(np.array([3], np.int64), "k")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 8
    module, params = from_onnx(m)
    assert "graph.topk" in {op.name for op in module.walk()} and "graph.dyn" not in {op.name for op in module.walk()}
    x = rng.standard_normal((7, 3)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for got in (lathe.interpret(module, params=params, x=x), lathe.compile(module, params=params).run(x=x)):
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize(
    "dtype, values",
    [
        (TP.INT64, [(0, 10, 3), (10, -3, -4), (5, 1, 1)]),
        (TP.FLOAT, [(0.5, 3.0, 0.25), (1.0, -1.0, -0.5)]),
    ],
)
def test_range_of_run_time_bounds(dtype, values):
    m = one_node(
        "Range",
        {n: info(n, dtype, []) for n in ("start", "limit", "delta")},
        {"y": dtype},
        opset=11,
    )
    np_dt = np.int64 if dtype == TP.INT64 else np.float32
    feeds = [{n: np.array(v, np_dt) for n, v in zip(("start", "limit", "delta"), vs)} for vs in values]
    check(m, feeds)


def test_one_hot_of_a_run_time_depth():
    m = one_node(
        "OneHot",
        {
            "i": info("i", TP.INT64, [2, 3]),
            "depth": info("depth", TP.FLOAT, []),
            "values": info("values", TP.FLOAT, [2]),
        },
        {"y": TP.FLOAT},
        opset=11,
        axis=1,
    )
    values = np.array([-1.0, 2.5], np.float32)
    feeds = [
        {"i": rng.integers(-d, d, (2, 3)).astype(np.int64), "depth": np.array(d, np.float32), "values": values}
        for d in (3, 6)
    ]
    check(m, feeds)


PAD_INPUTS = {"x": info("x", TP.FLOAT, [2, 3, 4]), "pads": info("pads", TP.INT64, [6])}


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_by_run_time_pads_that_may_crop(mode):
    m = one_node("Pad", PAD_INPUTS, {"y": TP.FLOAT}, mode=mode)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    pads = ([0, 1, 2, 1, 0, 1], [1, -1, 0, 0, 1, -2], [0, 0, 0, 0, 0, 0])
    check(m, [{"x": x, "pads": np.array(p, np.int64)} for p in pads])


def test_pad_by_a_run_time_value_and_run_time_axes():
    m = one_node(
        "Pad",
        {
            "x": info("x", TP.FLOAT, [2, 3, 4]),
            "pads": info("pads", TP.INT64, [4]),
            "value": info("value", TP.FLOAT, []),
            "axes": info("axes", TP.INT64, [2]),
        },
        {"y": TP.FLOAT},
    )
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    cases = [([1, 0, 2, 1], 1.5, [0, 2]), ([0, -1, 1, 2], -3.0, [-1, 1]), ([2, 1, 0, 0], 0.0, [2, 0])]
    feeds = [
        {"x": x, "pads": np.array(p, np.int64), "value": np.array(v, np.float32), "axes": np.array(a, np.int64)}
        for p, v, a in cases
    ]
    check(m, feeds)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_by_run_time_scales(mode):
    x = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    m = one_node(
        "Resize",
        {"x": info("x", TP.FLOAT, [1, 2, 4, 6]), "roi": info("roi", TP.FLOAT, [0]), "s": info("s", TP.FLOAT, [4])},
        {"y": TP.FLOAT},
        mode=mode,
    )
    roi = np.zeros(0, np.float32)
    check(m, [{"x": x, "roi": roi, "s": np.array(s, np.float32)} for s in ([1, 1, 2, 0.5], [1, 1, 0.25, 1.5])])


def _resize_by_sizes(axes, policy="stretch"):
    g = helper.make_graph(
        [
            helper.make_node(
                "Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", axes=axes, keep_aspect_ratio_policy=policy
            )
        ],
        "test",
        [info("x", TP.FLOAT, [1, 2, 4, 6]), info("sizes", TP.INT64, [2])],
        [info("y", TP.FLOAT, None)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 9
    return m


@pytest.mark.parametrize("axes, policy", [([2, 3], "stretch"), ([3, 2], "stretch"), ([2, 3], "not_larger")])
def test_resize_by_run_time_sizes_of_listed_axes(axes, policy):
    x = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    sizes = ([8, 3], [2, 12]) if policy == "stretch" else ([8, 18], [2, 3])
    check(_resize_by_sizes(axes, policy), [{"x": x, "sizes": np.array(s, np.int64)} for s in sizes])


def test_a_run_time_scale_resize2d_cannot_follow_is_a_lathe_error_naming_it():
    module, params = from_onnx(_resize_by_sizes([2, 3], "not_smaller"))
    x = np.zeros((1, 2, 4, 6), np.float32)
    for run in (lathe.compile(module, params=params).run, lambda **f: lathe.interpret(module, params=params, **f)):
        with pytest.raises(LatheError, match=r"dyn image.resize2d.*fractional size"):
            run(x=x, sizes=np.array([3, 3], np.int64))  # scale 0.75 on 4 and 6 → 3 and 4.5
