"""ADTs and `match` (docs/vm.md, "ADTs"): declarations, constructors and patterns in Relay text,
printed back as a fixed point and through MLIR; the graph dialect's checks (exhaustiveness for
`match`, not `match?`); and TensorArray-style programs, lists of tensors built by recursion and
taken apart by recursion through global functions, run by the interpreter and by the VM and
checked against numpy on random inputs."""

import numpy as np
import pytest

import lathe
from lathe import LatheError
from lathe.api import parse_source
from lathe.dialects import graph
from lathe.passes.specialize import specialize
from lathe.runtime.vm_program import GetField, JumpIfNotCtor, MakeADT, MatchFail
from lathe.textual_ir.parser import parse_relay
from lathe.textual_ir.printer import print_relay

T = "Tensor[(3, 4), float32]"
LISTS = f"""
type List[A] {{
  Cons(A, List[A]),
  Nil,
}}

def @length(%l: List[{T}]) -> int32 {{
  match (%l) {{
    Cons(_, %t) => 1 + @length(%t),
    Nil => 0,
  }}
}}

def @sum(%l: List[{T}]) -> {T} {{
  match (%l) {{
    Cons(%h, %t) => %h + @sum(%t),
    Nil => zeros(shape=[3, 4], dtype="float32"),
  }}
}}

def @nth(%l: List[{T}], %n: int32) -> {T} {{
  match? (%l) {{
    Cons(%h, %t) => if (%n == 0) {{ %h }} else {{ @nth(%t, %n - 1) }},
  }}
}}

def @map(%f: fn ({T}) -> {T}, %l: List[{T}]) -> List[{T}] {{
  match (%l) {{
    Cons(%h, %t) => Cons(%f(%h), @map(%f, %t)),
    Nil => Nil,
  }}
}}

def @stack(%l: List[{T}]) -> Tensor[(?, 3, 4), float32] {{
  match? (%l) {{
    Cons(%h, Nil) => expand_dims(%h, axis=0),
    Cons(%h, %t) => concatenate((expand_dims(%h, axis=0), @stack(%t)), axis=0),
  }}
}}

// a list of n tensors, built in a loop: h_k = tanh(dense(h_(k-1), w)), the newest first
def @build(%i: int32, %x: {T}, %w: Tensor[(4, 4), float32], %acc: List[{T}]) -> List[{T}] {{
  if (%i > 0) {{
    let %h = tanh(nn.dense(%x, %w));
    @build(%i - 1, %h, %w, Cons(%h, %acc))
  }} else {{
    %acc
  }}
}}

def @main(%x: {T}, %w: Tensor[(4, 4), float32], %n: int32) {{
  let %l = @build(%n, %x, %w, Nil);
  let %scaled = @map(fn (%t: {T}) {{ %t * %x }}, %l);
  (@stack(%l), @sum(%l), @length(%l), @nth(%l, 1), @stack(%scaled))
}}
"""


def lists_reference(x, w, n):
    hs, h = [], x.astype(np.float64)
    for _ in range(n):
        h = np.tanh(h @ w.T)
        hs.insert(0, h)
    stacked = np.stack(hs)
    return stacked, stacked.sum(0), n, hs[1], stacked * x


def parse_mlir(text: str):
    return parse_source(text, "t.mlir")


def roundtrip(text: str) -> str:
    once = print_relay(parse_relay(text))
    assert print_relay(parse_relay(once)) == once, "print -> parse -> print is not a fixed point"
    return once


def check(got, want):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-5)


# -- the language -------------------------------------------------------------------


def test_adts_parse_to_the_adt_ops_and_round_trip_in_relay_and_mlir():
    m = parse_relay(LISTS)
    m.verify()
    names = {op.name for op in m.walk()}
    assert {"graph.adt_def", "graph.construct", "graph.match"} <= names
    text = roundtrip(LISTS)
    assert "type List[A] {\n  Cons(A, List[A]),\n  Nil,\n}" in text
    assert "match? (%l) {" in text and "Cons(%h, Nil) => {" in text
    assert "Nil /* ty=List[Tensor[(3, 4), float32]] */" in text  # what types a Nil when it is read back
    mlir = str(m)
    assert '!graph.adt<"List", [tensor<3x4xf32>]>' in mlir and "#graph.pattern_constructor" in mlir
    again = parse_mlir(mlir)
    again.verify()
    assert str(again) == mlir


def test_type_arguments_come_from_fields_and_from_what_the_context_expects():
    m = parse_relay(
        """type Pair[A, B] { MkPair(A, B) }
        type List[A] { Cons(A, List[A]), Nil }
        def @main(%x: float32, %y: Tensor[(2), int32]) {
          let %e: List[int32] = Nil;
          (MkPair(%x, %y), Cons(MkPair(%y, %x), Nil), %e)
        }"""
    )
    main = m.ops.last
    assert graph.type_str(main.function_type.outputs.data[0]) == (
        "(Pair[Tensor[(), float32], Tensor[(2), int32]], List[Pair[Tensor[(2), int32], Tensor[(), float32]]], "
        "List[Tensor[(), int32]])"
    )


def test_patterns_nest_bind_tuples_and_take_wildcards():
    src = """type Option[A] { Some(A), None_ }
    def @main(%x: Tensor[(2), float32], %y: Tensor[(2), float32]) {
      let %p = (Some(%x), %y);
      match (%p) {
        (Some(%a), %b) => %a * %b,
        (None_, _) => %y,
      }
    }"""
    x, y = np.float32([1, 2]), np.float32([3, 5])
    np.testing.assert_array_equal(lathe.interpret(parse_relay(src), x=x, y=y), x * y)
    np.testing.assert_array_equal(lathe.compile(parse_relay(src)).run(x=x, y=y), x * y)
    roundtrip(src)


@pytest.mark.parametrize(
    "src, message",
    [
        ("type L { A, B }\ndef @f(%l: L) -> int32 { match (%l) { A => 1 } }", "do not cover every L"),
        ("type L[T] { C(T) }\ndef @f(%x: float32) { C(%x, %x) }", "takes 1 fields, got 2"),
        ("type L[T] { C(T), N }\ndef @f() { N }", "cannot tell the type T of N"),
        ("type L { A }\ntype L { B }", "type L is declared twice"),
        ("type L { A }\ntype M { A }", "constructor A is declared twice"),
        ("type L { M }\ntype M { A }", "constructor M has the name of a type"),
        ("type L[T] { C(T) }\ndef @f(%l: L) { 0 }", "type L takes 1 type arguments, got 0"),
        ("def @f(%l: List[int32]) { 0 }", "unknown type List"),
        ("type L { A(int32) }\ndef @f(%l: L) { match (%l) { B => 1 } }", "unknown constructor B"),
        ("type L { A(int32) }\ndef @f(%l: L) { match (%l) { A(%x, %y) => 1 } }", "has 1 fields, its pattern 2"),
        (
            "type L { A(int32) }\ndef @f(%l: L) { match (%l) { A(%x: float32) => 1 } }",
            "declared as Tensor[(), float32]",
        ),
        ("type L { A(int32, int32) }\ndef @f(%l: L) { match (%l) { A(%x, %x) => 1 } }", "bound twice"),
        ("type L { A(int32) }\ndef @f(%x: float32) { A(%x) }", "a field of type Tensor[(), int32] is given"),
        ("type L { A, B }\ndef @f(%l: L) { match (%l) { A => 1, B => 1f } }", "the clauses give"),
        ("type L[A] { C(A) }\ndef @id[A](%x: A) -> A { %x }", "generic"),
    ],
)
def test_bad_adt_programs_are_located_errors(src, message):
    with pytest.raises(LatheError) as e:
        parse_relay(src, "bad.relay")
    assert message in e.value.message, e.value.message
    assert "bad.relay:" in str(e.value)


def test_the_verifier_checks_hand_written_mlir():
    good = str(parse_relay(LISTS))
    bad = good.replace('#graph.pattern_constructor<"Nil", []>]}>', "#graph.pattern_wildcard]}>", 1)
    assert bad != good
    parse_mlir(bad).verify()  # a wildcard covers Nil too
    incomplete = good.replace(', #graph.pattern_constructor<"Nil", []>]}>', "]}>", 1)
    with pytest.raises(Exception, match="match"):
        parse_mlir(incomplete).verify()


# -- running them -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5])
def test_tensor_lists_built_by_recursion_match_numpy_in_the_interpreter_and_the_vm(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = (rng.standard_normal((4, 4)) / 2).astype(np.float32)
    want = lists_reference(x, w, n)
    check(lathe.interpret(parse_relay(LISTS), x=x, w=w, n=np.int32(n)), want)
    cm = lathe.compile(parse_relay(LISTS))
    assert type(cm).__name__ == "VMModule"
    for _ in range(2):  # a second run reuses what the first compiled
        check(cm.run(x=x, w=w, n=np.int32(n)), want)
    kinds = {type(ins) for f in cm.program.functions.values() for ins in f.code}
    assert {MakeADT, GetField, JumpIfNotCtor, MatchFail} <= kinds


def test_a_partial_match_that_no_clause_takes_is_an_error_naming_the_op():
    x, w = np.ones((3, 4), np.float32), np.eye(4, dtype=np.float32)
    src = LISTS.replace("@nth(%l, 1)", "@nth(%l, 7)")
    for run in (
        lambda: lathe.interpret(parse_relay(src, "ta.relay"), x=x, w=w, n=np.int32(3)),
        lambda: lathe.compile(parse_relay(src, "ta.relay")).run(x=x, w=w, n=np.int32(3)),
    ):
        with pytest.raises(LatheError, match=r"graph.match at ta.relay:\d+:\d+: no clause matches a value made by Nil"):
            run()


def test_a_list_a_thousand_long_is_stopped_by_the_depth_limit():
    src = LISTS.replace("(@stack(%l), @sum(%l), @length(%l), @nth(%l, 1), @stack(%scaled))", "@length(%l)")
    x, w = np.ones((3, 4), np.float32), np.eye(4, dtype=np.float32)
    assert lathe.interpret(parse_relay(src), x=x, w=w, n=np.int32(300)) == 300
    for run in (
        lambda: lathe.interpret(parse_relay(src), x=x, w=w, n=np.int32(2000)),
        lambda: lathe.compile(parse_relay(src)).run(x=x, w=w, n=np.int32(2000)),
    ):
        with pytest.raises(LatheError, match="nested deeper than 1000"):
            run()


TENSOR_ARRAY = """
type List[A] {
  Cons(A, List[A]),
  Nil,
}

// TVM's TensorArray (python/tvm/relay/prelude.py): a list of tensor_t, each slot empty or a tensor of some rank
type tensor_float32_t {
  tensor_nil_float32,
  tensor1_float32(Tensor[(?), float32]),
  tensor2_float32(Tensor[(?, ?), float32]),
}

def @tensor_array(%n: int32) -> List[tensor_float32_t] {
  if (%n == 0) { Nil } else { Cons(tensor_nil_float32, @tensor_array(%n - 1)) }
}

def @write(%ta: List[tensor_float32_t], %i: int32, %v: tensor_float32_t) -> List[tensor_float32_t] {
  match? (%ta) {
    Cons(%h, %t) => if (%i == 0) { Cons(%v, %t) } else { Cons(%h, @write(%t, %i - 1, %v)) },
  }
}

def @read(%ta: List[tensor_float32_t], %i: int32) -> tensor_float32_t {
  match? (%ta) {
    Cons(%h, %t) => if (%i == 0) { %h } else { @read(%t, %i - 1) },
  }
}

def @stack(%ta: List[tensor_float32_t]) -> Tensor[(?, ?, ?), float32] {
  match? (%ta) {
    Cons(tensor2_float32(%t), Nil) => expand_dims(%t, axis=0),
    Cons(tensor2_float32(%t), %rest) => concatenate((expand_dims(%t, axis=0), @stack(%rest)), axis=0),
  }
}

// slot i holds sigmoid(x) * i + y, written in a loop from the last slot down
def @fill(%ta: List[tensor_float32_t], %i: int32, %x: Tensor[(2, 5), float32], %y: Tensor[(2, 5), float32]) -> List[tensor_float32_t] {
  if (%i < 0) {
    %ta
  } else {
    let %v = sigmoid(%x) * cast(%i, dtype="float32") + %y;
    @fill(@write(%ta, %i, tensor2_float32(%v)), %i - 1, %x, %y)
  }
}

def @main(%x: Tensor[(2, 5), float32], %y: Tensor[(2, 5), float32], %n: int32) {
  let %ta = @fill(@tensor_array(%n), %n - 1, %x, %y);
  let %second = match? (@read(%ta, 1)) { tensor2_float32(%t) => %t };
  (@stack(%ta), %second)
}
"""


def test_a_tensor_array_is_written_read_and_stacked_as_tvms_prelude_does():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((2, 2, 5)).astype(np.float32)
    n = 4
    slots = np.stack([1 / (1 + np.exp(-x)) * i + y for i in range(n)])
    m = parse_relay(TENSOR_ARRAY)
    m.verify()
    roundtrip(TENSOR_ARRAY)
    check(lathe.interpret(m, x=x, y=y, n=np.int32(n)), (slots, slots[1]))
    cm = lathe.compile(parse_relay(TENSOR_ARRAY))
    check(cm.run(x=x, y=y, n=np.int32(n)), (slots, slots[1]))
    check(
        cm.run(x=y, y=x, n=np.int32(3)),
        (np.stack([1 / (1 + np.exp(-y)) * i + x for i in range(3)]), 1 / (1 + np.exp(-y)) + x),
    )


def test_specialisation_takes_the_clause_a_known_constructor_selects():
    src = """type Option[A] { Some(A), None_ }
    def @main(%x: Tensor[(2), float32]) {
      match (Some(%x)) { Some(%v) => %v * 2f, None_ => %x }
    }"""
    m = parse_relay(src)
    specialize(m)
    assert not any(isinstance(op, graph.MatchOp | graph.ConstructOp) for op in m.walk())
    x = np.float32([1, 2])
    np.testing.assert_array_equal(lathe.interpret(m, x=x), x * 2)


def test_a_run_time_shape_mismatch_in_a_recursion_over_a_list_names_the_op_and_shapes():
    """(a fuzz finding: the interpreter's message for it raised numpy's ValueError on a tuple of
    tensors of different ranks)"""
    src = TENSOR_ARRAY.replace(
        "Cons(tensor2_float32(%t), Nil) => expand_dims(%t, axis=0)",
        "Cons(tensor2_float32(%t), Nil) => expand_dims(%t, axis=2)",
    )
    x = np.ones((2, 5), np.float32)
    for run in (
        lambda: lathe.interpret(parse_relay(src), x=x, y=x, n=np.int32(3)),
        lambda: lathe.compile(parse_relay(src)).run(x=x, y=x, n=np.int32(3)),
    ):
        with pytest.raises(LatheError, match=r"graph.concatenate.*\(1, 2, 5\)|graph.concatenate.*Tensor\[\(2, 5, 1\)"):
            run()
