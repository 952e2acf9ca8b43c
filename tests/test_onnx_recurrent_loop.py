"""LSTM, GRU and RNN as a loop over time (`from_onnx(..., recurrent="loop")`, issue 14): a
graph.while whose body is one step, against the unrolled import and onnxruntime on fresh random
inputs, through the interpreter and the VM; the zoo's LSTM language model and GRU (test sizes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # models/ is a folder of scripts, not part of the lathe package
    sys.path.append(str(REPO))

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

import lathe  # noqa: E402
from lathe.errors import LatheError  # noqa: E402
from lathe.frontends.onnx import from_onnx  # noqa: E402

rng = np.random.default_rng(41)
SEQ, BATCH, IN, HID = 5, 2, 3, 4


def info(name, shape):
    return helper.make_tensor_value_info(name, TP.FLOAT, shape)


def recurrent_model(op, direction="forward", layout=0, seq=SEQ, initial=False, **attrs):
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    dirs = 2 if direction == "bidirectional" else 1
    x_shape = [BATCH, seq, IN] if layout else [seq, BATCH, IN]
    state = [BATCH, dirs, HID] if layout else [dirs, BATCH, HID]
    inits = {
        "W": rng.uniform(-0.5, 0.5, (dirs, gates * HID, IN)),
        "R": rng.uniform(-0.5, 0.5, (dirs, gates * HID, HID)),
        "B": rng.uniform(-0.5, 0.5, (dirs, 2 * gates * HID)),
    }
    if op == "LSTM" and initial:
        inits["P"] = rng.uniform(-0.5, 0.5, (dirs, 3 * HID))
    names = ["x", "W", "R", "B", "", "h0" if initial else ""]
    outputs = ["y", "y_h"]
    inputs = [info("x", x_shape)] + ([info("h0", state)] if initial else [])
    if op == "LSTM":
        names += ["c0" if initial else "", "P" if initial else ""]
        outputs.append("y_c")
        inputs += [info("c0", state)] if initial else []
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, outputs, hidden_size=HID, direction=direction, layout=layout, **attrs)
    g = helper.make_graph(
        [node],
        "rnn",
        inputs,
        [info(o, None) for o in outputs],
        initializer=[onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def feeds_for(m, seq=SEQ):
    out = {}
    for i in m.graph.input:
        shape = [seq if d.dim_param else d.dim_value for d in i.type.tensor_type.shape.dim]
        out[i.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def check_loop(m, feeds_list, unrolled=True):
    """The loop import (interpreter and VM) against the unrolled import and onnxruntime (ONNX's
    reference evaluator for batch-first layouts, which onnxruntime refuses)."""
    module, params = from_onnx(m, recurrent="loop")
    assert "graph.while" in {op.name for op in module.walk()}
    vm = lathe.compile(module, params=params)
    if m.graph.node[0].attribute and any(a.name == "layout" and a.i for a in m.graph.node[0].attribute):
        from onnx.reference import ReferenceEvaluator

        session = ReferenceEvaluator(m)
    else:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        ref = session.run(None, feeds)
        if unrolled:
            umod, uparams = from_onnx(m, recurrent="unroll")
            expected = lathe.interpret(umod, params=uparams, **feeds)
        else:
            expected = ref
        for got in (lathe.interpret(module, params=params, **feeds), vm.run(**feeds)):
            got = list(got) if isinstance(got, tuple) else [got]
            assert len(got) == len(ref)
            for g, u, r in zip(got, expected, ref):
                assert g.shape == r.shape
                np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(g, u, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_a_recurrent_layer_as_a_loop_matches_the_unrolled_one_and_onnxruntime(op, direction):
    m = recurrent_model(op, direction, initial=True)
    check_loop(m, [feeds_for(m)])


@pytest.mark.parametrize(
    "op, layout, attrs",
    [("GRU", 0, {"linear_before_reset": 1}), ("LSTM", 0, {"clip": 0.5}), ("RNN", 1, {}), ("LSTM", 1, {})],
)
def test_batch_first_layout_and_attributes_in_the_loop(op, layout, attrs):
    """(ONNX's reference evaluator, the only one for layout 1, ignores `clip`: clip is checked
    against onnxruntime.)"""
    m = recurrent_model(op, "bidirectional", layout=layout, **attrs)
    check_loop(m, [feeds_for(m)])


def test_a_sequence_known_only_at_run_time_loops_as_long_as_it_is():
    m = recurrent_model("LSTM", "bidirectional", seq="T")
    check_loop(m, [feeds_for(m, 3), feeds_for(m, 7)], unrolled=False)
    with pytest.raises(LatheError, match="unrolling a sequence whose length is known only at run time"):
        from_onnx(m, recurrent="unroll")


@pytest.mark.parametrize("name", ["lstm_lm", "gru"])
def test_zoo_recurrent_models_as_loops(name):
    from models import ZOO
    from models.builder import random_inputs

    model = ZOO[name].build(small=True)
    inputs = random_inputs(model, 3)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)
    module, params = from_onnx(model, recurrent="loop")
    umod, uparams = from_onnx(model, recurrent="unroll")
    unrolled = lathe.compile(umod, params=uparams).run(**inputs)
    got = lathe.compile(module, params=params).run(**inputs)
    for g, u, r in zip(*(list(x) if isinstance(x, tuple | list) else [x] for x in (got, unrolled, ref)), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g, u, rtol=1e-5, atol=1e-6)


def test_an_unknown_recurrent_mode_is_refused():
    with pytest.raises(LatheError, match="recurrent must be one of 'unroll', 'loop', got 'scan'"):
        from_onnx(recurrent_model("RNN"), recurrent="scan")
