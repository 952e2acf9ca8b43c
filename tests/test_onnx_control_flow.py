"""ONNX control flow and dynamic inputs (issue 14): `If` on a run-time condition and `Loop` with
loop-carried and scanned values become graph.if / graph.while, `dim_param` and a negative `dim_value`
become `?` dimensions; each model is built with onnx.helper and compared with onnxruntime on
fresh random inputs through the reference interpreter and the VM."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

import lathe  # noqa: E402
from lathe.dialects import graph  # noqa: E402
from lathe.errors import LatheError  # noqa: E402
from lathe.frontends.onnx import from_onnx  # noqa: E402


def info(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def ort_run(m, feeds):
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def check(m, feeds, compiled=None, reference=None):
    """Lathe (interpreter and VM) against onnxruntime (on `reference` when given, a model
    onnxruntime reads as Lathe reads `m`); returns the compiled module for reuse."""
    ref = ort_run(reference or m, feeds)
    module, params = from_onnx(m)
    compiled = compiled or lathe.compile(module, params=params)
    for got in (lathe.interpret(module, params=params, **feeds), compiled.run(**feeds)):
        got = list(got) if isinstance(got, tuple) else [got]
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert g.shape == r.shape and g.dtype == r.dtype
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    return compiled


def ops_of(m) -> set[str]:
    return {op.name for op in from_onnx(m)[0].walk()}


def branch(name, nodes, outs):
    return helper.make_graph(nodes, name, [], [info(o, TP.FLOAT, None) for o in outs])


IF_MODEL = model(
    [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node(
            "If",
            ["c"],
            ["y", "z"],
            then_branch=branch(
                "then",
                [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["x"], ["t2"])],
                ["t", "t2"],
            ),
            else_branch=branch(
                "else",
                [helper.make_node("Concat", ["x", "x"], ["e"], axis=0), helper.make_node("Exp", ["x"], ["e2"])],
                ["e", "e2"],
            ),
        ),
    ],
    [info("x", TP.FLOAT, [2, 3])],
    [info("y", TP.FLOAT, None), info("z", TP.FLOAT, None)],
    [onnx.numpy_helper.from_array(np.array(0, np.float32), "zero")],
)


def test_if_on_a_run_time_condition_is_a_graph_if_whose_branches_differ_in_shape():
    module, _ = from_onnx(IF_MODEL)
    (ifop,) = [op for op in module.walk() if isinstance(op, graph.IfOp)]
    assert graph.type_str(ifop.result.type) == "(Tensor[(?, 3), float32], Tensor[(2, 3), float32])"
    rng = np.random.default_rng(0)
    compiled = None
    for sign in (1, -1):  # both branches, through the same compiled module
        x = (np.abs(rng.standard_normal((2, 3))) * sign).astype(np.float32)
        compiled = check(IF_MODEL, {"x": x}, compiled)


def test_an_if_on_a_condition_known_at_import_time_is_the_branch_it_takes():
    """torch's shape-only Ifs: the condition folds from shapes, and no control flow is left."""
    m = model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "k"], ["d"], axis=0),
            helper.make_node("Equal", ["d", "one"], ["c"]),
            helper.make_node(
                "If",
                ["c"],
                ["y"],
                then_branch=branch("then", [helper.make_node("Squeeze", ["x", "ax"], ["t"])], ["t"]),
                else_branch=branch("else", [helper.make_node("Identity", ["x"], ["e"])], ["e"]),
            ),
        ],
        [info("x", TP.FLOAT, [3, 1])],
        [info("y", TP.FLOAT, None)],
        [
            onnx.numpy_helper.from_array(np.array(1, np.int64), "k"),
            onnx.numpy_helper.from_array(np.array(1, np.int64), "one"),
            onnx.numpy_helper.from_array(np.array([1], np.int64), "ax"),
        ],
    )
    assert "graph.if" not in ops_of(m)
    compiled = check(m, {"x": np.random.default_rng(1).standard_normal((3, 1)).astype(np.float32)})
    assert isinstance(compiled, lathe.CompiledModule)  # the static graph executor


def loop_body(nodes, carried: list[str], outs: list[str]):
    return helper.make_graph(
        nodes,
        "body",
        [info("i", TP.INT64, []), info("cin", TP.BOOL, [])] + [info(c, TP.FLOAT, None) for c in carried],
        [info("cout", TP.BOOL, [])] + [info(o, TP.FLOAT, None) for o in outs],
    )


LOOP_MODEL = model(
    [
        helper.make_node(
            "Loop",
            ["M", "", "a0"],
            ["aN", "scans"],
            body=loop_body(
                [
                    helper.make_node("MatMul", ["acc", "w"], ["h"]),
                    helper.make_node("Tanh", ["h"], ["acc2"]),
                    helper.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT),
                    helper.make_node("Mul", ["acc2", "fi"], ["scan"]),
                    helper.make_node("ReduceSum", ["acc2"], ["s"], keepdims=0),
                    helper.make_node("Less", ["s", "limit"], ["cout"]),
                ],
                ["acc"],
                ["acc2", "scan"],
            ),
        )
    ],
    [info("M", TP.INT64, []), info("a0", TP.FLOAT, ["batch", 4]), info("w", TP.FLOAT, [4, 4])],
    [info("aN", TP.FLOAT, None), info("scans", TP.FLOAT, None)],
    [onnx.numpy_helper.from_array(np.array(2.5, np.float32), "limit")],
)


@pytest.mark.parametrize("trips, batch", [(0, 2), (1, 3), (6, 2), (40, 1)])
def test_loop_with_a_trip_count_a_condition_and_a_scan_output(trips, batch):
    rng = np.random.default_rng(trips)
    feeds = {
        "M": np.array(trips, np.int64),
        "a0": rng.standard_normal((batch, 4)).astype(np.float32),
        "w": (rng.standard_normal((4, 4)) / 2).astype(np.float32),
    }
    if trips == 0:  # onnxruntime stacks no iterations as shape (0,): Lathe as (0, ?, 4), ? as 0
        module, params = from_onnx(LOOP_MODEL)
        got = lathe.compile(module, params=params).run(**feeds)
        np.testing.assert_array_equal(got[0], feeds["a0"])
        assert got[1].shape == (0, 0, 4)
        return
    check(LOOP_MODEL, feeds)


def test_a_loop_carried_value_that_grows_is_carried_with_a_question_mark():
    m = model(
        [
            helper.make_node(
                "Loop",
                ["M", "c0", "a0"],
                ["aN"],
                body=loop_body(
                    [
                        helper.make_node("Concat", ["acc", "x"], ["acc2"], axis=0),
                        helper.make_node("Identity", ["cin"], ["cout"]),
                    ],
                    ["acc"],
                    ["acc2"],
                ),
            )
        ],
        [info("M", TP.INT64, []), info("c0", TP.BOOL, []), info("a0", TP.FLOAT, [1, 3]), info("x", TP.FLOAT, [2, 3])],
        [info("aN", TP.FLOAT, [1, 4])],  # wrong: a hint, and a warning
    )
    with pytest.warns(UserWarning, match="graph output 'aN'"):
        module, _ = from_onnx(m)
    (loop,) = [op for op in module.walk() if isinstance(op, graph.WhileOp)]
    assert graph.type_str(loop.outs[2].type) == "Tensor[(?, 3), float32]"
    rng = np.random.default_rng(2)
    compiled = None
    for trips, go in ((3, True), (5, False), (0, True)):
        feeds = {
            "M": np.array(trips, np.int64),
            "c0": np.array(go),
            "a0": rng.standard_normal((1, 3)).astype(np.float32),
            "x": rng.standard_normal((2, 3)).astype(np.float32),
        }
        with pytest.warns(UserWarning):
            compiled = check(m, feeds, compiled)


def flatten_gemm(dim):
    return model(
        [
            helper.make_node("Flatten", ["x"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "w"], ["g"], transB=1),
            helper.make_node("Softmax", ["g"], ["y"], axis=-1),
        ],
        [info("x", TP.FLOAT, [dim, 2, 3]), info("w", TP.FLOAT, [5, 6])],
        [info("y", TP.FLOAT, [dim, 5])],
    )


@pytest.mark.parametrize("dim", ["N", -1])
def test_open_input_dimensions_are_question_marks(dim):
    """dim_param, and dim_value -1 as exporters write it (onnxruntime refuses -1, so it runs the
    dim_param model as the reference). A dim_value of 0 is a size, as onnxruntime reads it."""
    m = flatten_gemm(dim)
    module, _ = from_onnx(m)
    assert graph_out(module) == "Tensor[(?, 5), float32]"
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 6)).astype(np.float32)
    compiled = None
    for n in (1, 4, 7):
        feeds = {"x": rng.standard_normal((n, 2, 3)).astype(np.float32), "w": w}
        compiled = check(m, feeds, compiled, reference=flatten_gemm("N"))
    assert compiled.compiles == 3  # one specialisation per size


def graph_out(module) -> str:
    return graph.type_str(module.ops.first.function_type.outputs.data[0])


def test_shape_of_an_open_dimension_is_computed_at_run_time():
    """PyTorch's Shape -> Gather -> Concat -> Reshape with a ? batch: graph.shape_of, the index
    arithmetic as compiled kernels, and a graph.dyn reshape to the shape they give."""
    m = model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
            helper.make_node("Unsqueeze", ["b", "zeros"], ["b1"]),
            helper.make_node("Concat", ["b1", "minus_one"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["y"]),
            helper.make_node("Size", ["x"], ["n"]),
            helper.make_node("Shape", ["x"], ["tail"], start=1),
        ],
        [info("x", TP.FLOAT, ["N", 3, 4])],
        [info("y", TP.FLOAT, None), info("n", TP.INT64, None), info("tail", TP.INT64, None)],
        [
            onnx.numpy_helper.from_array(np.array(0, np.int64), "zero"),
            onnx.numpy_helper.from_array(np.array([0], np.int64), "zeros"),
            onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        ],
        opset=15,
    )
    ops = ops_of(m)
    assert "graph.shape_of" in ops and "graph.dyn" in ops
    rng = np.random.default_rng(4)
    compiled = None
    for n in (2, 5):
        compiled = check(m, {"x": rng.standard_normal((n, 3, 4)).astype(np.float32)}, compiled)


def _dynamic(op, inputs, outputs, **attrs):
    return model(
        [helper.make_node(op, list(inputs), outputs, **attrs)],
        list(inputs.values()),
        [info(o, TP.FLOAT, None) for o in outputs],
        opset=18,
    )


X = info("x", TP.FLOAT, [2, 3, 4])
RUN_TIME_VALUES = {
    "Reshape": (_dynamic("Reshape", {"x": X, "s": info("s", TP.INT64, [2])}, ["y"]), "s", [[4, -1], [0, 12]]),
    "Tile": (_dynamic("Tile", {"x": X, "r": info("r", TP.INT64, [3])}, ["y"]), "r", [[1, 2, 3], [2, 1, 1]]),
    "ReduceSum": (_dynamic("ReduceSum", {"x": X, "a": info("a", TP.INT64, [1])}, ["y"], keepdims=0), "a", [[1], [-1]]),
    "ReduceMax": (_dynamic("ReduceMax", {"x": X, "a": info("a", TP.INT64, [2])}, ["y"]), "a", [[0, 2], [1, 2]]),
    "ReduceL2": (_dynamic("ReduceL2", {"x": X, "a": info("a", TP.INT64, ["k"])}, ["y"]), "a", [[], [0], [0, 2]]),
    "Split": (_dynamic("Split", {"x": X, "s": info("s", TP.INT64, [2])}, ["y1", "y2"], axis=2), "s", [[1, 3], [2, 2]]),
    "Squeeze": (
        _dynamic("Squeeze", {"x": info("x", TP.FLOAT, [2, 1, 4]), "a": info("a", TP.INT64, [1])}, ["y"]),
        "a",
        [[1], [-2]],
    ),
    "Slice": (
        _dynamic(
            "Slice",
            {"x": X, "b": info("b", TP.INT64, [2]), "e": info("e", TP.INT64, [2]), "a": info("a", TP.INT64, [2])},
            ["y"],
        ),
        "b",
        [[0, 1], [-1, -100], [1, 0]],
    ),
    "Expand": (
        _dynamic("Expand", {"x": info("x", TP.FLOAT, [3, 1]), "s": info("s", TP.INT64, [3])}, ["y"]),
        "s",
        [[2, 1, 5], [1, 3, 1]],
    ),
}


SLICE_REST = {"e": np.array([2**62, -(2**62)], np.int64), "a": np.array([0, -1], np.int64)}


@pytest.mark.parametrize("op", sorted(RUN_TIME_VALUES))
def test_attribute_like_inputs_known_only_at_run_time_stay_dynamic(op):
    """(Issue 14: these were refused, needing the value at import time.) Each value gives a
    static op compiled for it and cached."""
    m, name, values = RUN_TIME_VALUES[op]
    assert "graph.dyn" in ops_of(m)
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    rest = SLICE_REST if op == "Slice" else {}  # ends past the end, axes from the back
    compiled = None
    for v in values:
        compiled = check(m, {"x": x, name: np.array(v, np.int64), **rest}, compiled)
    before = compiled.compiles
    compiled.run(x=x, **{name: np.array(values[0], np.int64)}, **rest)
    assert compiled.compiles == before  # a value seen before runs what was compiled for it


def test_constant_of_a_run_time_shape():
    m = model(
        [helper.make_node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("v", TP.FLOAT, [1], [1.5]))],
        [info("s", TP.INT64, [2])],
        [info("y", TP.FLOAT, None)],
    )
    compiled = None
    for s in ([2, 3], [4, 1]):
        compiled = check(m, {"s": np.array(s, np.int64)}, compiled)


def test_a_run_time_value_the_op_cannot_take_is_a_lathe_error_naming_it():
    m = RUN_TIME_VALUES["Reshape"][0]
    module, _ = from_onnx(m)
    x = np.zeros((2, 3, 4), np.float32)
    for run in (lathe.compile(module).run, lambda **f: lathe.interpret(module, **f)):
        with pytest.raises(LatheError, match=r"dyn reshape.*\(2, 3, 4\) with newshape=\[5, -1\]"):
            run(x=x, s=np.array([5, -1], np.int64))


def test_a_loop_carried_value_of_another_rank_is_refused_naming_it():
    m = model(
        [
            helper.make_node(
                "Loop",
                ["M", "", "a0"],
                ["aN"],
                body=loop_body(
                    [
                        helper.make_node("Unsqueeze", ["acc", "ax"], ["acc2"]),
                        helper.make_node("Identity", ["cin"], ["cout"]),
                    ],
                    ["acc"],
                    ["acc2"],
                ),
            )
        ],
        [info("M", TP.INT64, []), info("a0", TP.FLOAT, [3])],
        [info("aN", TP.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array([0], np.int64), "ax")],
    )
    with pytest.raises(LatheError, match=r"Loop.*'acc' enters as Tensor\[\(3\), float32\] and the body gives"):
        from_onnx(m)


def test_matmuls_with_question_mark_dimensions():
    """Attention's shapes with a ? sequence: (1, ?, 8) · (8, 8) rows flattened as -1, and a
    batched (1, 2, ?, 4) · (1, 2, 4, ?) whose result has two ? (reshaped back by its head)."""
    m = model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("MatMul", ["q", "k"], ["s"]),
        ],
        [
            info("x", TP.FLOAT, [1, "seq", 8]),
            info("w", TP.FLOAT, [8, 8]),
            info("q", TP.FLOAT, [1, 2, "seq", 4]),
            info("k", TP.FLOAT, [1, 2, 4, "seq"]),
        ],
        [info("h", TP.FLOAT, None), info("s", TP.FLOAT, None)],
    )
    rng = np.random.default_rng(6)
    compiled = None
    for n in (3, 9):
        feeds = {
            "x": rng.standard_normal((1, n, 8)).astype(np.float32),
            "w": rng.standard_normal((8, 8)).astype(np.float32),
            "q": rng.standard_normal((1, 2, n, 4)).astype(np.float32),
            "k": rng.standard_normal((1, 2, 4, n)).astype(np.float32),
        }
        compiled = check(m, feeds, compiled)
