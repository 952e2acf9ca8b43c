"""Relay's control flow and dynamic shapes: fn literals and closures, calls of function values,
if/else, recursion through global functions and `?` dimensions; parsed into the graph
dialect's control ops, printed back, run by the reference interpreter and by the VM
(runtime/vm.py), checked against each other on random inputs."""

import numpy as np
import pytest

import lathe
from lathe import LatheError
from lathe.api import parse_source
from lathe.dialects import graph
from lathe.textual_ir.parser import parse_relay
from lathe.textual_ir.printer import print_relay

LOOP = """
def @loop(%i: int32, %acc: Tensor[(?, 4), float32], %w: Tensor[(4, 4), float32]) -> Tensor[(?, 4), float32] {
  if (%i > 0) {
    @loop(%i - 1, tanh(nn.dense(%acc, %w)) + %acc, %w)
  } else {
    %acc
  }
}
def @main(%x: Tensor[(?, 4), float32], %w: Tensor[(4, 4), float32], %n: int32, %flag: bool) {
  let %scale = fn (%t: Tensor[(?, 4), float32]) { %t * 2f + %x };
  %0 = @loop(%n, %x, %w);
  %1 = if (%flag) { %scale(%0) } else { nn.relu(%0) - %x };
  (%1, sum(%1, axis=[1]))
}
"""


def roundtrip(text: str) -> str:
    once = print_relay(parse_relay(text))
    assert print_relay(parse_relay(once)) == once, "print -> parse -> print is not a fixed point"
    return once


def loop_reference(x, w, n, flag):
    acc = x.astype(np.float64)
    for _ in range(n):
        acc = np.tanh(acc @ w.T) + acc
    out = acc * 2 + x if flag else np.maximum(acc, 0) - x
    return out, out.sum(axis=1)


# -- the language -----------------------------------------------------------------


def test_control_flow_parses_to_the_control_ops_and_round_trips():
    m = parse_relay(LOOP)
    m.verify()
    names = {op.name for op in m.walk()}
    assert {"graph.if", "graph.fn", "graph.call_value", "graph.yield", "func.call"} <= names
    text = roundtrip(LOOP)
    assert "if (" in text and "} else {" in text and "fn (%t: Tensor[(?, 4), float32])" in text
    assert "Tensor[(?, 4), float32]" in text
    # and through MLIR: the dynamic dimension is MLIR's ?, the regions print and parse back
    mlir = str(m)
    assert "tensor<?x4xf32>" in mlir and '"graph.if"' in mlir
    assert print_relay(parse_source(mlir, "t.mlir")) == print_relay(m)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("n, flag", [(0, True), (3, False), (4, True)])
def test_the_interpreter_runs_recursion_branches_and_closures(batch, n, flag):
    rng = np.random.default_rng(batch * 10 + n)
    x = rng.standard_normal((batch, 4)).astype(np.float32)
    w = (rng.standard_normal((4, 4)) / 4).astype(np.float32)
    got = lathe.interpret(parse_relay(LOOP), x=x, w=w, n=np.int32(n), flag=np.bool_(flag))
    for g, e in zip(got, loop_reference(x, w, n, flag), strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_a_closure_captures_the_values_in_scope_where_it_is_made():
    src = """def @main(%a: float32) {
      let %add_a = fn (%y: float32) { %y + %a };
      let %twice = fn (%g: fn (float32) -> float32, %v: float32) { %g(%g(%v)) };
      let %make = fn (%k: float32) { fn (%z: float32) { %z * %k } };
      (%twice(%add_a, 1f), %make(3f)(%a))
    }"""
    got = lathe.interpret(parse_relay(src), a=np.float32(2.5))
    assert [float(v) for v in got] == [6.0, 7.5]
    roundtrip(src)


def test_dynamic_dimensions_are_inferred_through_ops():
    src = """def @main(%x: Tensor[(?, 8), float32], %w: Tensor[(3, 8), float32]) {
      %0 = nn.dense(%x, %w);
      %1 = reshape(%0, newshape=[-1]);
      %2 = transpose(%0);
      (%0, %1, %2, sum(%0, axis=[0]), nn.max_pool2d(reshape(%x, newshape=[-1, 2, 2, 2]), pool_size=[2, 2], strides=[2, 2]))
    }"""
    out = parse_relay(src).ops.first.function_type.outputs.data[0]
    assert graph.type_str(out) == (
        "(Tensor[(?, 3), float32], Tensor[(?), float32], Tensor[(3, ?), float32], "
        "Tensor[(3), float32], Tensor[(?, 2, 1, 1), float32])"
    )


def test_a_dynamic_shape_error_names_the_types_as_written():
    with pytest.raises(LatheError) as info:
        parse_relay("def @main(%x: Tensor[(?, 8), float32], %w: Tensor[(3, 7), float32]) { nn.dense(%x, %w) }")
    assert "?" in info.value.message and "720720" not in info.value.message


def test_a_run_time_shape_mismatch_is_a_lathe_error_naming_the_op():
    src = "def @main(%a: Tensor[(?), float32], %b: Tensor[(?), float32]) { add(%a, %b) }"
    with pytest.raises(LatheError) as info:
        lathe.interpret(parse_relay(src), a=np.ones(3, np.float32), b=np.ones(4, np.float32))
    assert "graph.add" in info.value.message and "(3,)" in info.value.message and "(4,)" in info.value.message


def test_recursion_without_a_base_case_is_stopped_by_the_depth_limit():
    m = parse_relay("def @main(%x: int32) -> int32 { @main(%x + 1) }")
    with pytest.raises(LatheError) as info:
        lathe.interpret(m, x=np.int32(0))
    assert "recursion" in info.value.message


@pytest.mark.parametrize(
    "src, message",
    [
        ("def @main() { if (True) { let %x = (); () } else { %x } }", "undefined variable %x"),
        ("def @main() { if (1) { 0 } else { 1 } }", "condition must be a bool scalar"),
        ("def @main() { if (True) { 0 } else { 1f } }", "branches give"),
        ("def @main(%x: int32) { %x(1) }", "not a function"),
        ("def @main() { let %f = fn (%x: int32) { %x }; %f(1f) }", "is called with"),
        ("def @main() { fn (%x: int32) -> float32 { %x } }", "declared to return"),
        ("def @main() { let %f = fn (%x: int32) { %x }; %f(1, 2) }", "is called with"),
        ("def @main(%x: Tensor[(?, -1), float32]) { %x }", "unexpected '-1'"),
    ],
)
def test_bad_control_flow_is_a_located_error(src, message):
    with pytest.raises(LatheError) as info:
        parse_relay(src, "t.relay")
    assert message in info.value.message and info.value.loc is not None


# -- passes and the static lowering --------------------------------------------------


def test_every_pass_refuses_control_flow_and_dynamic_shapes_by_name():
    from lathe.dialects import make_context
    from lathe.pipelines import DYNAMIC_PASSES, build_pipeline, lathe_passes

    dynamic = "def @main(%x: Tensor[(?, 3), float32]) { nn.relu(%x) }"
    for name in set(lathe_passes()) - DYNAMIC_PASSES:  # (specialize-control-flow is for such modules)
        for src, op in ((LOOP, "graph.if"), (dynamic, "graph.nn.relu")):
            with pytest.raises(LatheError) as info:
                build_pipeline(name).apply(make_context(), parse_relay(src))
            assert f"pass '{name}'" in info.value.message and f"'{op}'" in info.value.message


# -- the VM --------------------------------------------------------------------------


def test_the_vm_matches_the_interpreter_on_recursion_branches_closures_and_two_batch_sizes():
    m = parse_relay(LOOP)
    compiled = lathe.compile(m)
    assert type(compiled).__name__ == "VMModule"
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((4, 4)) / 4).astype(np.float32)
    for batch in (3, 11):
        for n, flag in ((0, False), (5, True), (2, False)):
            x = rng.standard_normal((batch, 4)).astype(np.float32)
            inputs = dict(x=x, w=w, n=np.int32(n), flag=np.bool_(flag))
            want = lathe.interpret(m, **inputs)
            got = compiled.run(**inputs)
            for g, e in zip(got, want, strict=True):
                assert g.shape == e.shape and g.dtype == e.dtype
                np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    before = compiled.compiles
    compiled.run(rng.standard_normal((3, 4)).astype(np.float32), w, np.int32(2), np.bool_(True))
    assert compiled.compiles == before, "a shape seen before runs its cached kernels"


def test_the_vm_runs_a_static_model_as_the_graph_executor_does():
    src = """def @main(%x: Tensor[(4, 16), float32], %w: Tensor[(8, 16), float32], %b: Tensor[(8), float32]) {
      %0 = nn.bias_add(nn.dense(%x, %w), %b);
      (nn.softmax(nn.relu(%0)), split(%0, indices_or_sections=2, axis=1))
    }"""
    m = parse_relay(src)
    rng = np.random.default_rng(3)
    inputs = {k: rng.standard_normal(s).astype(np.float32) for k, s in (("x", (4, 16)), ("w", (8, 16)), ("b", (8,)))}
    vm, ge = lathe.compile(m, executor="vm").run(**inputs), lathe.compile(m, executor="graph").run(**inputs)
    for a, b in zip(
        [vm[0], *vm[1]],
        [ge[0], *ge[1]],
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_graph_executor_refuses_what_only_the_vm_runs():
    with pytest.raises(LatheError) as info:
        lathe.compile(parse_relay(LOOP), executor="graph")
    assert "executor='vm'" in info.value.note
    with pytest.raises(LatheError):
        lathe.compile(parse_relay(LOOP), executor="jit")


def test_the_vm_names_the_op_and_shapes_of_a_run_time_mismatch():
    src = "def @main(%a: Tensor[(?, 2), float32], %b: Tensor[(?, 2), float32]) { add(%a, %b) }"
    with pytest.raises(LatheError) as info:
        lathe.compile(parse_relay(src)).run(np.ones((3, 2), np.float32), np.ones((4, 2), np.float32))
    msg = info.value.message
    assert "graph.add" in msg and "Tensor[(3, 2), float32]" in msg and "Tensor[(4, 2), float32]" in msg


def test_the_vm_stops_a_recursion_without_a_base_case():
    m = parse_relay("def @main(%x: Tensor[(2), float32]) -> Tensor[(2), float32] { @main(%x * 2f) }")
    with pytest.raises(LatheError) as info:
        lathe.compile(m).run(np.ones(2, np.float32))
    assert "recursion" in info.value.message


def test_inlining_refuses_recursion_instead_of_growing_without_end():
    from lathe.dialects import make_context
    from lathe.pipelines import build_pipeline

    m = parse_relay(
        "def @main(%x: Tensor[(2), float32]) -> Tensor[(2), float32] { @f(%x) }\n"
        "def @f(%x: Tensor[(2), float32]) -> Tensor[(2), float32] { @main(%x * 2f) }"
    )
    with pytest.raises(LatheError) as info:
        build_pipeline("inline-calls").apply(make_context(), m)
    assert "calls itself" in info.value.message


def test_a_global_function_returning_a_function_value_is_refused_until_mlir_can_print_it():
    with pytest.raises(LatheError) as info:
        parse_relay("def @main() {\n  fn () { 0 }\n}", "t.relay")
    assert "returns a function value" in info.value.message and info.value.loc.line == 2
    roundtrip("def @main() { (fn () { 0 },) }")  # in a tuple it prints, as MLIR and as Relay
    assert "graph.fn" in str(parse_source(str(parse_relay("def @main() { (fn () { 0 },) }")), "t.mlir"))


# -- specialisation (passes/specialize.py) -----------------------------------------------

SHAPE_ONLY = """
func.func @main(%x: tensor<2x3x4xf32>, %w: tensor<4x12xf32>) -> tensor<?x?xf32> {
  %s = "graph.shape_of"(%x) : (tensor<2x3x4xf32>) -> tensor<3xi64>
  %i = graph.constant {value = dense<[0]> : tensor<1xi64>} : tensor<1xi64>
  %b = graph.take %s, %i {axis = 0 : i64} : (tensor<3xi64>, tensor<1xi64>) -> tensor<1xi64>
  %m = graph.constant {value = dense<[-1]> : tensor<1xi64>} : tensor<1xi64>
  %t = graph.tuple %b, %m : (tensor<1xi64>, tensor<1xi64>) -> tuple<tensor<1xi64>, tensor<1xi64>>
  %target = graph.concatenate %t : (tuple<tensor<1xi64>, tensor<1xi64>>) -> tensor<2xi64>
  %y = "graph.dyn"(%x, %target) <{op = "reshape", attrs = {}, bind = ["newshape"], forms = ["list"]}> : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<?x?xf32>
  %one = graph.constant {value = dense<1> : tensor<i64>} : tensor<i64>
  %d = graph.take %s, %one {axis = 0 : i64} : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %three = graph.constant {value = dense<3> : tensor<i64>} : tensor<i64>
  %c = graph.equal %d, %three : (tensor<i64>, tensor<i64>) -> tensor<i1>
  %z = "graph.if"(%c) ({
    %0 = graph.nn.relu %y : (tensor<?x?xf32>) -> tensor<?x?xf32>
    "graph.yield"(%0) : (tensor<?x?xf32>) -> ()
  }, {
    "graph.yield"(%y) : (tensor<?x?xf32>) -> ()
  }) : (tensor<i1>) -> tensor<?x?xf32>
  func.return %z : tensor<?x?xf32>
}
"""


@pytest.mark.parametrize(
    "text, path",
    [
        (SHAPE_ONLY, "t.mlir"),
        (
            """def @main(%x: Tensor[(2, 4), float32], %w: Tensor[(4, 4), float32]) {
              let %f = fn (%t: Tensor[(2, 4), float32]) { nn.dense(%t, %w) + %x };
              if (2 > 1) { %f(%x) } else { nn.relu(%x) }
            }""",
            "t.lathe",
        ),
    ],
)
def test_control_flow_that_depends_only_on_what_is_known_compiles_to_the_graph_executor(text, path):
    """A condition, a callee and shapes known at compile time are folded by
    specialize-control-flow, and the static module runs on the graph executor."""
    module = parse_source(text, path)
    rng = np.random.default_rng(7)
    shapes = [tuple(a.type.get_shape()) for a in module.ops.first.body.block.args]
    x, w = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    expected = lathe.interpret(module, x=x, w=w)
    cm = lathe.compile(module)
    assert isinstance(cm, lathe.CompiledModule) and not hasattr(cm, "vm")
    got = cm.run(x, w)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_constant_value_a_dyn_op_cannot_take_is_refused_when_specialised():
    src = SHAPE_ONLY.replace("dense<[-1]>", "dense<[5]>")  # 2 x 5 elements from 24
    with pytest.raises(LatheError) as info:
        lathe.compile(parse_source(src, "t.mlir"))
    assert "graph.dyn reshape with newshape=[2, 5]" in info.value.message
