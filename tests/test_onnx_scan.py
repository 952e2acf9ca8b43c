"""ONNX Scan (issue 14) as graph.while: scan inputs sliced per iteration along their axes (either
direction), scan outputs stacked and moved to their axes (either direction), state variables
carried; compared with onnxruntime on fresh random inputs through the interpreter and the VM."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

import lathe  # noqa: E402
from lathe.errors import LatheError  # noqa: E402
from lathe.frontends.onnx import from_onnx  # noqa: E402


def info(name, shape, elem=TP.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def scan_model(length, in_axes, in_dirs, out_axes, out_dirs):
    """state s (3,) and two scan inputs a (T, 3) on `in_axes[0]`, b (3, T) on `in_axes[1]`; the body
    gives s + a_t * b_t, and the scan outputs s' and tanh(a_t)."""
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["a_t", "b_t"], ["ab"]),
            helper.make_node("Add", ["s_in", "ab"], ["s_out"]),
            helper.make_node("Identity", ["s_out"], ["y1"]),
            helper.make_node("Tanh", ["a_t"], ["y2"]),
        ],
        "body",
        [info("s_in", [3]), info("a_t", [3]), info("b_t", [3])],
        [info("s_out", [3]), info("y1", [3]), info("y2", [3])],
    )
    a_shape = [length, 3] if in_axes[0] == 0 else [3, length]
    b_shape = [length, 3] if in_axes[1] == 0 else [3, length]
    node = helper.make_node(
        "Scan",
        ["s", "a", "b"],
        ["s_final", "ys1", "ys2"],
        body=body,
        num_scan_inputs=2,
        scan_input_axes=in_axes,
        scan_input_directions=in_dirs,
        scan_output_axes=out_axes,
        scan_output_directions=out_dirs,
    )
    g = helper.make_graph(
        [node],
        "scan",
        [info("s", [3]), info("a", a_shape), info("b", b_shape)],
        [info("s_final", None), info("ys1", None), info("ys2", None)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)])
    m.ir_version = 8
    return m, a_shape, b_shape


@pytest.mark.parametrize(
    "in_axes, in_dirs, out_axes, out_dirs",
    [([0, 0], [0, 0], [0, 0], [0, 0]), ([0, 1], [1, 0], [1, -1], [0, 1]), ([1, 1], [0, 1], [0, 1], [1, 1])],
)
@pytest.mark.parametrize("length", [5, "T"])
def test_scan_matches_onnxruntime(in_axes, in_dirs, out_axes, out_dirs, length):
    m, a_shape, b_shape = scan_model(length, in_axes, in_dirs, out_axes, out_dirs)
    module, params = from_onnx(m)
    assert "graph.while" in {op.name for op in module.walk()}
    compiled = lathe.compile(module, params=params)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(9)
    for t in [5] if length == 5 else [4, 7]:
        feeds = {
            "s": rng.standard_normal(3).astype(np.float32),
            "a": rng.standard_normal([t if d == "T" else d for d in a_shape]).astype(np.float32),
            "b": rng.standard_normal([t if d == "T" else d for d in b_shape]).astype(np.float32),
        }
        ref = session.run(None, feeds)
        for got in (lathe.interpret(module, params=params, **feeds), compiled.run(**feeds)):
            assert len(got) == 3
            for g, r in zip(got, ref):
                assert g.shape == r.shape
                np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def test_a_state_of_another_rank_is_refused_naming_it():
    body = helper.make_graph(
        [helper.make_node("Concat", ["s_in", "x_t"], ["s_out"], axis=0), helper.make_node("Identity", ["x_t"], ["y"])],
        "body",
        [info("s_in", [2]), info("x_t", [2])],
        [info("s_out", None), info("y", None)],
    )
    g = helper.make_graph(
        [helper.make_node("Scan", ["s", "x"], ["sf", "ys"], body=body, num_scan_inputs=1)],
        "scan",
        [info("s", [2]), info("x", [3, 2])],
        [info("sf", None), info("ys", None)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)])
    m.ir_version = 8
    module, _ = from_onnx(m)  # a state that grows is carried as `?`, as for Loop
    x = np.ones((3, 2), np.float32)
    got = lathe.compile(module).run(s=np.zeros(2, np.float32), x=x)
    assert got[0].shape == (8,) and got[1].shape == (3, 2)
    bad = helper.make_graph(
        [helper.make_node("ReduceSum", ["s_in"], ["s_out"], keepdims=0), helper.make_node("Identity", ["x_t"], ["y"])],
        "body",
        [info("s_in", [2]), info("x_t", [2])],
        [info("s_out", None), info("y", None)],
    )
    m.graph.node[0].attribute[0].g.CopyFrom(bad)
    with pytest.raises(LatheError, match="state variable 's_in' enters as Tensor\\[\\(2\\), float32\\]"):
        from_onnx(m)
