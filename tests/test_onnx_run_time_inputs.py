"""ONNX inputs that node tests give at run time and that the importer once needed at import
time (issue 14): Trilu's k, Unsqueeze's axes, the reductions' axes (ReduceLogSumExp, and
noop_with_empty_axes), Dropout's ratio and training_mode, LSTM's sequence_lens. Each model is
built with onnx.helper and compared with onnxruntime on fresh random inputs, through the
reference interpreter and the compiled module, at several values of the run-time input."""

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
from lathe.frontends.onnx import from_onnx, sanitize  # noqa: E402


def info(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def one_node(op, inputs, outputs, opset=19, **attrs):
    """A model of one `op` node whose inputs are all graph inputs (name → value info); an
    input named "" is an absent optional one."""
    g = helper.make_graph(
        [helper.make_node(op, list(inputs), list(outputs), **attrs)],
        "test",
        [v for v in inputs.values() if v is not None],
        [info(o, t, None) for o, t in outputs.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def check(m, feeds_list, rtol=1e-5, atol=1e-6, **import_options):
    """Every feed through the interpreter and one compiled module, against onnxruntime; the
    module keeps every graph input as an input (nothing was bound at import time)."""
    module, params = from_onnx(m, **import_options)
    assert not {sanitize(i.name) for i in m.graph.input} & set(params)
    compiled = assert_like_onnxruntime(m, module, params, feeds_list, rtol=rtol, atol=atol)
    return module, compiled


rng = np.random.default_rng(1414)


@pytest.mark.parametrize("upper", [1, 0])
def test_trilu_by_a_run_time_k_keeps_static_shapes(upper):
    """k from below the last row to past the last column, on a batch of non-square matrices."""
    m = one_node(
        "Trilu", {"x": info("x", TP.FLOAT, [2, 4, 6]), "k": info("k", TP.INT64, [])}, {"y": TP.FLOAT}, upper=upper
    )
    feeds = [{"x": rng.standard_normal((2, 4, 6), np.float32), "k": np.array(k, np.int64)} for k in (-5, -1, 0, 2, 7)]
    module, compiled = check(m, feeds)
    assert not any(op.name == "graph.dyn" for op in module.walk())


def test_unsqueeze_by_run_time_axes_of_any_order_and_sign():
    """The rank is known from the axes' count; which dimensions are 1 is a graph.dyn reshape."""
    m = one_node(
        "Unsqueeze", {"x": info("x", TP.FLOAT, [3, 1, 4]), "axes": info("axes", TP.INT64, [2])}, {"y": TP.FLOAT}
    )
    x = rng.standard_normal((3, 1, 4), np.float32)
    feeds = [{"x": x, "axes": np.array(a, np.int64)} for a in ([0, 1], [4, 0], [-1, 2], [3, -5])]
    module, compiled = check(m, feeds)
    assert any(op.name == "graph.dyn" for op in module.walk())
    assert compiled.compiles == 4  # one reshape per set of axes, each compiled once
    compiled.run(x=x, axes=np.array([4, 0], np.int64))
    assert compiled.compiles == 4


def test_run_time_unsqueeze_axes_out_of_range_or_repeated_are_a_lathe_error():
    m = one_node("Unsqueeze", {"x": info("x", TP.FLOAT, [3, 4]), "axes": info("axes", TP.INT64, [2])}, {"y": TP.FLOAT})
    module, params = from_onnx(m)
    x = np.zeros((3, 4), np.float32)
    for run in (lathe.compile(module, params=params).run, lambda **f: lathe.interpret(module, params=params, **f)):
        for axes, why in (([0, 4], "are not distinct axes of a rank-4 result"), ([1, -3], "are not distinct")):
            with pytest.raises(LatheError, match=f"dyn reshape.*{why}"):
                run(x=x, axes=np.array(axes, np.int64))


@pytest.mark.parametrize("keepdims", [1, 0])
def test_reduce_log_sum_exp_over_run_time_axes_does_not_overflow(keepdims):
    """Values near 100 (exp overflows float32 at 89): the max of each reduced slice is taken
    out first, over the run-time axes too (a graph.dyn max, broadcast back, then a dyn sum)."""
    m = one_node(
        "ReduceLogSumExp",
        {"x": info("x", TP.FLOAT, [3, 4, 5]), "axes": info("axes", TP.INT64, [2])},
        {"y": TP.FLOAT},
        opset=18,
        keepdims=keepdims,
    )
    x = (rng.standard_normal((3, 4, 5)) * 3 + 100).astype(np.float32)
    check(m, [{"x": x, "axes": np.array(a, np.int64)} for a in ([0, 2], [-1, 1], [1, 0])], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMean", "ReduceLogSumExp"])
def test_noop_with_empty_axes_given_at_run_time(op):
    """An axes input of length 0 (known from its type) with noop_with_empty_axes is no
    reduction; one with axes reduces over them, keepdims or not."""
    opset = 13 if op == "ReduceSum" else 18
    x = rng.standard_normal((2, 3, 4), np.float32)
    empty = one_node(
        op,
        {"x": info("x", TP.FLOAT, [2, 3, 4]), "axes": info("axes", TP.INT64, [0])},
        {"y": TP.FLOAT},
        opset=opset,
        noop_with_empty_axes=1,
    )
    check(empty, [{"x": x, "axes": np.zeros(0, np.int64)}])
    for keepdims in (1, 0):
        some = one_node(
            op,
            {"x": info("x", TP.FLOAT, [2, 3, 4]), "axes": info("axes", TP.INT64, [1])},
            {"y": TP.FLOAT},
            opset=opset,
            noop_with_empty_axes=1,
            keepdims=keepdims,
        )
        check(some, [{"x": x, "axes": np.array([a], np.int64)} for a in (0, -1)])


SEQ, BATCH, INPUT, HIDDEN = 5, 4, 3, 6
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _recurrent(op, direction):
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    inputs = {
        "X": info("X", TP.FLOAT, [SEQ, BATCH, INPUT]),
        "W": info("W", TP.FLOAT, [dirs, g * HIDDEN, INPUT]),
        "R": info("R", TP.FLOAT, [dirs, g * HIDDEN, HIDDEN]),
        "B": info("B", TP.FLOAT, [dirs, 2 * g * HIDDEN]),
        "sequence_lens": info("sequence_lens", TP.INT32, [BATCH]),
        "initial_h": info("initial_h", TP.FLOAT, [dirs, BATCH, HIDDEN]),
    }
    outputs = {"Y": TP.FLOAT, "Y_h": TP.FLOAT}
    if op == "LSTM":
        inputs["initial_c"] = info("initial_c", TP.FLOAT, [dirs, BATCH, HIDDEN])
        inputs["P"] = info("P", TP.FLOAT, [dirs, 3 * HIDDEN])
        outputs["Y_c"] = TP.FLOAT
    m = one_node(op, inputs, outputs, opset=14, hidden_size=HIDDEN, direction=direction)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    feeds = {k: (rng.standard_normal(s) * 0.5).astype(np.float32) for k, s in shapes.items() if k != "sequence_lens"}
    return m, feeds


@pytest.mark.parametrize("recurrent", ["unroll", "loop"])
@pytest.mark.parametrize(
    "op, direction", [("LSTM", "forward"), ("LSTM", "bidirectional"), ("GRU", "reverse"), ("RNN", "bidirectional")]
)
def test_recurrent_sequence_lens_given_at_run_time(op, direction, recurrent):
    """Each batch entry runs its own length: Y is 0 past it, Y_h (Y_c) the state at its last
    step (in reverse, the step at t = 0 after starting from its last)."""
    m, weights = _recurrent(op, direction)
    lens = ([SEQ, 1, 3, 2], [2, 5, 5, 4], [SEQ] * BATCH)
    check(m, [{**weights, "sequence_lens": np.array(v, np.int32)} for v in lens], recurrent=recurrent)


def _dropout():
    return one_node(
        "Dropout",
        {"x": info("x", TP.FLOAT, [3, 4, 5]), "r": info("r", TP.FLOAT, []), "t": info("t", TP.BOOL, [])},
        {"y": TP.FLOAT, "mask": TP.BOOL},
        opset=13,
        seed=0,
    )


def test_dropout_with_run_time_ratio_and_training_mode_that_keep_everything():
    """Not training (any ratio), or training with ratio 0: the output is the input, the mask
    all True, as onnxruntime gives them."""
    x = rng.standard_normal((3, 4, 5), np.float32)
    feeds = [
        {"x": x, "r": np.array(r, np.float32), "t": np.array(t)} for r, t in ((0.5, False), (0.0, True), (0.0, False))
    ]
    module, _ = check(_dropout(), feeds)
    assert any(op.name == "graph.dyn" for op in module.walk())


def test_training_dropout_at_run_time_is_a_lathe_error_naming_it():
    """Dropping at random is what Lathe does not do: refused when the values arrive, in both
    paths, not run as the identity."""
    module, params = from_onnx(_dropout())
    feeds = {"x": np.ones((3, 4, 5), np.float32), "r": np.array(0.5, np.float32), "t": np.array(True)}
    for run in (lathe.compile(module, params=params).run, lambda **f: lathe.interpret(module, params=params, **f)):
        with pytest.raises(LatheError, match=r"dyn nn.dropout.*training=True.*drops at random"):
            run(**feeds)


def test_noop_with_empty_axes_of_a_length_known_only_at_run_time_keeps_dims():
    """An axes input whose length is a dim_param: empty at run time is no reduction, else the
    axes given are reduced (the rank kept, so the result type needs no count)."""
    m = one_node(
        "ReduceMax",
        {"x": info("x", TP.FLOAT, [2, 3, 4]), "axes": info("axes", TP.INT64, ["k"])},
        {"y": TP.FLOAT},
        opset=18,
        noop_with_empty_axes=1,
    )
    x = rng.standard_normal((2, 3, 4), np.float32)
    check(m, [{"x": x, "axes": np.array(a, np.int64)} for a in ([], [1], [0, -1])])
