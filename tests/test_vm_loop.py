"""The VM's loop fast path (runtime/vm.py `Loop`, issue 14): a graph.while whose condition is
integer scalars runs as one instruction, the condition on the host and the body's kernel on
the last step's outputs. Checked against the interpreter and onnxruntime on fresh random
inputs: the body compiles once however many steps run, a carried value that changes shape is
specialised again at each new shape, a loop the fast path does not take runs as before, and
the zoo's LSTM language model as a loop equals its unrolled import."""

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
from lathe.frontends.onnx import from_onnx  # noqa: E402
from lathe.runtime.vm_program import Loop  # noqa: E402


def info(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def loop_model(body_nodes, carried, inputs, outputs, loop_inputs, loop_outputs, inits=()):
    body = helper.make_graph(
        body_nodes,
        "body",
        [info("i", TP.INT64, []), info("cin", TP.BOOL, [])] + [info(c, TP.FLOAT, None) for c in carried],
        [info("cout", TP.BOOL, [])] + [info(o, TP.FLOAT, None) for o in loop_outputs[1]],
    )
    node = helper.make_node("Loop", loop_inputs, loop_outputs[0], body=body)
    g = helper.make_graph([node], "loop", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


# acc <- tanh(acc @ w) + i, scanning acc * 2; the condition is the trip count and the carried bool
RECURRENCE = loop_model(
    [
        helper.make_node("MatMul", ["acc", "w"], ["h"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT),
        helper.make_node("Add", ["t", "fi"], ["acc2"]),
        helper.make_node("Add", ["acc2", "acc2"], ["scan"]),
        helper.make_node("Identity", ["cin"], ["cout"]),
    ],
    ["acc"],
    [info("M", TP.INT64, []), info("go", TP.BOOL, []), info("a0", TP.FLOAT, [3, 4]), info("w", TP.FLOAT, [4, 4])],
    [info("aN", TP.FLOAT, [3, 4]), info("scans", TP.FLOAT, None)],
    ["M", "go", "a0"],
    (["aN", "scans"], ["acc2", "scan"]),
)


def loops_of(compiled) -> list[Loop]:
    return [ins for f in compiled.program.functions.values() for ins in f.code if isinstance(ins, Loop)]


def check(m, module, params, compiled, feeds):
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for got in (lathe.interpret(module, params=params, **feeds), compiled.run(**feeds)):
        got = list(got) if isinstance(got, tuple) else [got]
        for g, r in zip(got, ref, strict=True):
            assert g.shape == r.shape and g.dtype == r.dtype
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def test_a_loop_over_scalars_is_one_instruction_whose_body_compiles_once():
    module, params = from_onnx(RECURRENCE)
    compiled = lathe.compile(module, params=params)
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((4, 4)) / 2).astype(np.float32)

    def feeds(trips, go=True):
        a0 = rng.standard_normal((3, 4)).astype(np.float32)
        return {"M": np.array(trips, np.int64), "go": np.array(go), "a0": a0, "w": w}

    check(RECURRENCE, module, params, compiled, feeds(6))
    (loop,) = loops_of(compiled)
    assert [op.name for op, _ in loop.cond] == ["graph.less", "graph.logical_and"], "i < M and cond, on the host"
    assert len(loop.region.compiled) == 1, "six steps of one shape: one specialisation of the body"
    compiles, modules = compiled.compiles, compiled.compile_stats.modules
    for trips in (1, 25, 3):
        check(RECURRENCE, module, params, compiled, feeds(trips))
    assert compiled.compiles == compiles and compiled.compile_stats.modules == modules, "no step compiles again"
    # no step at all: the initial values, and an empty stack of the scanned values
    f = feeds(0)
    got = compiled.run(**f)
    np.testing.assert_array_equal(got[0], f["a0"])
    assert got[1].shape == (0, 3, 4)
    got = compiled.run(**feeds(4, go=False))
    assert got[1].shape == (0, 3, 4)


def test_a_carried_value_that_changes_shape_is_specialised_again_at_each_new_shape():
    m = loop_model(
        [
            helper.make_node("Concat", ["acc", "x"], ["acc2"], axis=0),
            helper.make_node("Identity", ["cin"], ["cout"]),
        ],
        ["acc"],
        [info("M", TP.INT64, []), info("c0", TP.BOOL, []), info("a0", TP.FLOAT, [1, 3]), info("x", TP.FLOAT, [2, 3])],
        [info("aN", TP.FLOAT, None)],
        ["M", "c0", "a0"],
        (["aN"], ["acc2"]),
    )
    module, params = from_onnx(m)
    compiled = lathe.compile(module, params=params)
    rng = np.random.default_rng(11)

    def feeds(trips):
        return {
            "M": np.array(trips, np.int64),
            "c0": np.array(True),
            "a0": rng.standard_normal((1, 3)).astype(np.float32),
            "x": rng.standard_normal((2, 3)).astype(np.float32),
        }

    check(m, module, params, compiled, feeds(3))
    assert len(loops_of(compiled)) == 1
    before = compiled.compiles
    check(m, module, params, compiled, feeds(5))  # steps 4 and 5 meet shapes (7, 3) and (9, 3)
    assert compiled.compiles == before + 2
    check(m, module, params, compiled, feeds(4))
    assert compiled.compiles == before + 2


def test_a_loop_whose_body_branches_keeps_the_general_path():
    branch = {
        name: helper.make_graph([helper.make_node(op, ["h"], [out])], name, [], [info(out, TP.FLOAT, None)])
        for name, op, out in (("then", "Tanh", "t1"), ("else", "Neg", "t2"))
    }
    m = loop_model(
        [
            helper.make_node("MatMul", ["acc", "w"], ["h"]),
            helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0),
            helper.make_node("Less", ["s", "limit"], ["c"]),
            helper.make_node("If", ["c"], ["acc2"], then_branch=branch["then"], else_branch=branch["else"]),
            helper.make_node("Identity", ["cin"], ["cout"]),
        ],
        ["acc"],
        [info("M", TP.INT64, []), info("a0", TP.FLOAT, [2, 4]), info("w", TP.FLOAT, [4, 4])],
        [info("aN", TP.FLOAT, [2, 4]), info("scans", TP.FLOAT, None)],
        ["M", "", "a0"],
        (["aN", "scans"], ["acc2", "h"]),
        [onnx.numpy_helper.from_array(np.array(0.5, np.float32), "limit")],
    )
    module, params = from_onnx(m)
    compiled = lathe.compile(module, params=params)
    rng = np.random.default_rng(13)
    for trips in (1, 4, 9):
        feeds = {
            "M": np.array(trips, np.int64),
            "a0": rng.standard_normal((2, 4)).astype(np.float32),
            "w": rng.standard_normal((4, 4)).astype(np.float32),
        }
        check(m, module, params, compiled, feeds)
    assert loops_of(compiled) == [], "a body of several steps runs as jumps over the VM's instructions"


def test_the_lstm_language_model_as_a_loop_equals_its_unrolled_import():
    from models import ZOO
    from models.builder import random_inputs

    model = ZOO["lstm_lm"].build(small=True)
    module, params = from_onnx(model, recurrent="loop")
    umod, uparams = from_onnx(model, recurrent="unroll")
    loop, unrolled = lathe.compile(module, params=params), lathe.compile(umod, params=uparams)
    for seed in (1, 2):
        inputs = random_inputs(model, seed)
        got, want = loop.run(**inputs), unrolled.run(**inputs)
        for g, u in zip(*(list(x) if isinstance(x, tuple) else [x] for x in (got, want)), strict=True):
            assert g.shape == u.shape and g.dtype == u.dtype
            np.testing.assert_allclose(g, u, rtol=1e-6, atol=1e-7)
        if seed == 1:
            compiles = loop.compiles
            assert len(loops_of(loop)) == 2, "one loop over time per LSTM layer, both on the fast path"
    assert loop.compiles == compiles, "the second run compiles nothing: each step's body is the same kernel"
