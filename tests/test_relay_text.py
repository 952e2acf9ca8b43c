"""Relay text as TVM's developers write it (tensor programs): infix operators, scalar types,
TVM's literal rules, nested comments, `meta[relay.Constant]` with the metadata section, nn.pad's
operand pad value, function attributes; and the programs of tests/relay_corpus/, taken from
TVM's own parser and printer tests, parsed, round-tripped and run."""

from pathlib import Path

import numpy as np
import pytest

import lathe
from lathe import LatheError
from lathe.dialects import graph
from lathe.textual_ir.parser import parse_relay
from lathe.textual_ir.printer import print_relay

CORPUS = sorted((Path(__file__).parent / "relay_corpus").glob("*.relay"))


def roundtrip(text: str) -> str:
    once = print_relay(parse_relay(text))
    assert print_relay(parse_relay(once)) == once, "print -> parse -> print is not a fixed point"
    return once


def flat(value) -> list[np.ndarray]:
    if isinstance(value, tuple | list):
        return [x for v in value for x in flat(v)]
    return [np.asarray(value)]


def random_inputs(f, rng) -> dict[str, np.ndarray]:
    from lathe.dialects import dtypes
    from lathe.dialects.functions import param_names

    inputs = {}
    for arg, name in zip(f.body.block.args, param_names(f)):
        d = dtypes.BY_MLIR[arg.type.element_type]
        shape = [3 if n < 0 else n for n in arg.type.get_shape()]  # a ? dimension: any size
        if d.is_float:
            inputs[name] = rng.standard_normal(shape).astype(d.numpy)
        else:
            inputs[name] = rng.integers(-50, 50, shape).astype(d.numpy)
    return inputs


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_program_parses_round_trips_and_runs(path):
    text = path.read_text()
    assert text.startswith("// source: "), "each corpus program says where it comes from"
    module = parse_relay(text, str(path))
    module.verify()
    printed = roundtrip(text)
    # what TVM keeps, Lathe keeps: the program read back computes the same thing
    main = next((f for f in module.ops if f.sym_name.data == "main"), None)
    if main is None:
        return
    inputs = random_inputs(main, np.random.default_rng(len(text)))
    expected = flat(lathe.interpret(module, **inputs))
    reread = flat(lathe.interpret(parse_relay(printed), **inputs))
    for e, r in zip(expected, reread, strict=True):
        np.testing.assert_array_equal(e, r)
    if inputs:  # a program of constants only has nothing to compile for
        got = flat(lathe.compile(module).run(**inputs))
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def run(src: str, **inputs):
    return lathe.interpret(parse_relay(src), **inputs)


def ops(src: str) -> list[str]:
    return [op.name for op in parse_relay(src).walk() if isinstance(op, graph.GraphOp)]


# -- infix operators --------------------------------------------------------------


def test_infix_operators_follow_tvms_precedence_and_associativity():
    src = """def @main(%a: float32, %b: float32, %c: float32) {
      (%a - %b - %c, %a / %b / %c, %a + %b * %c, (%a + %b) * %c, %a - %b * %c / %a + %c)
    }"""
    rng = np.random.default_rng(1)
    a, b, c = (np.float32(rng.uniform(1, 2)) for _ in range(3))
    got = [float(x) for x in run(src, a=a, b=b, c=c)]
    want = [a - b - c, a / b / c, a + b * c, (a + b) * c, a - b * c / a + c]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_comparisons_bind_looser_than_arithmetic_and_equality_loosest():
    # TVM's test_op_assoc shape, kept well-typed: 1 * 1 + 1 < 1 == False is ((1*1)+1 < 1) == False
    src = "def @main() { (1 * 1 + 1 < 1 == False, 2 >= 2 != 1 > 2, 3 <= 2, 1 == 1) }"
    assert [bool(x) for x in run(src)] == [True, True, False, True]
    assert ops("def @main(%a: int32, %b: int32) { %a + %b == %b }")[-1] == "graph.equal"


def test_infix_operators_are_the_graph_ops_and_print_as_calls():
    src = "def @main(%a: Tensor[(2, 3), float32], %b: Tensor[(3), float32]) { -%a * %b + %b }"
    assert ops(src) == ["graph.negative", "graph.multiply", "graph.add"]
    text = roundtrip(src)
    assert "add(multiply(" not in text and "negative(%a)" in text and "multiply(%0, %b)" in text


def test_minus_signs_fold_into_literals_as_tvm_lexes_them():
    assert [int(x) for x in run("def @main() { (--10, ---10, - 3, -(4)) }")] == [10, -10, -3, -4]
    assert ops("def @main() { (--10, -2f) }") == ["graph.constant", "graph.constant", "graph.tuple"]


def test_an_infix_type_error_is_located_at_the_expression():
    with pytest.raises(LatheError) as info:
        parse_relay("def @main(%a: Tensor[(2), float32], %b: Tensor[(3), float32]) {\n  %a + %b\n}", "t.relay")
    assert (info.value.loc.line, info.value.loc.col) == (2, 3) and "broadcast" in info.value.message


# -- types and literals -------------------------------------------------------------


def test_scalar_types_are_rank_0_tensors():
    a = parse_relay("def @main(%x: float32) -> float32 { let %y: int32 = 3; %x }")
    b = parse_relay("def @main(%x: Tensor[(), float32]) -> Tensor[(), float32] { let %y: Tensor[(), int32] = 3; %x }")
    assert print_relay(a) == print_relay(b)


def test_the_incomplete_type_is_for_let_only():
    roundtrip("def @main() { let %x: _ = (1, 2f); %x }")
    with pytest.raises(LatheError) as info:
        parse_relay("def @main(%x: _) { %x }")
    assert "allowed only on let" in info.value.message


@pytest.mark.parametrize(
    "literal, dtype",
    [
        ("2147483647", "int32"),
        ("2147483648", "int64"),
        ("-2147483649", "int64"),
        ("9223372036854775807", "int64"),
        ("-42i", "int32"),
        ("-05", "int32"),
        ("True", "bool"),
        ("False", "bool"),
    ],
)
def test_literals_take_tvms_dtypes(literal, dtype):
    m = parse_relay(f"def @main() {{ {literal} }}")
    const = next(op for op in m.walk() if isinstance(op, graph.ConstantOp))
    assert graph.dtype_name(const.result.type.element_type) == dtype
    assert literal.lstrip("-0").removesuffix("i") in roundtrip(f"def @main() {{ {literal} }}") or literal == "-05"


def test_bool_constants_print_as_tvm_spells_them():
    text = roundtrip("def @main() { (1b, False) }")
    assert "(True, False)" in text


@pytest.mark.parametrize("literal", ["2147483648i32", "1u8", "32768i16"])
def test_literals_tvm_rejects_or_lathe_lacks_are_located_errors(literal):
    with pytest.raises(LatheError) as info:
        parse_relay(f"def @main() {{\n  {literal}\n}}", "lit.relay")
    assert (info.value.loc.line, info.value.loc.col) == (2, 3) and literal in info.value.message


# -- comments --------------------------------------------------------------------------


def test_block_comments_nest_and_ty_comments_are_checked_anywhere():
    src = """/* outer /* inner */ still a comment // not a line comment */
    def @main(%x: Tensor[(2), float32]) {
      %0 = nn.pad(%x, 0f /* ty=float32 */, pad_width=[[1, 1]]) /* ty=Tensor[(4), float32] */;
      add(%0 /* a note */, 1f /* ty=float32 */) // done
    }"""
    roundtrip(src)
    with pytest.raises(LatheError) as info:
        parse_relay("def @main(%x: float32) {\n  add(%x, 1 /* ty=float32 */)\n}", "c.relay")
    assert (info.value.loc.line, info.value.loc.col) == (2, 13) and "type annotation says" in info.value.message


def test_an_unterminated_nested_comment_is_a_located_error():
    with pytest.raises(LatheError) as info:
        parse_relay("def @main() {\n  /* a /* b */\n  1\n}", "u.relay")
    assert (info.value.loc.line, info.value.loc.col) == (2, 3) and "unterminated comment" in info.value.message


# -- meta[relay.Constant] and the metadata section ------------------------------------


def test_weights_print_as_meta_constants_and_read_back():
    from lathe.dialects.reference import constant_value
    from lathe.textual_ir.parser import RelayParser

    w = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    m = parse_relay("def @main(%x: Tensor[(2, 4), float32]) { nn.dense(%x, %x) }")
    dense = next(op for op in m.walk() if isinstance(op, graph.DenseOp))
    const = graph.ConstantOp.from_array(w, graph.DTYPES["float32"])
    dense.parent_block().insert_op_before(const, dense)
    new = graph.DenseOp.create_inferred([dense.operands[0], const.result], {})
    dense.parent_block().insert_op_before(new, dense)
    dense.results[0].replace_all_uses_with(new.results[0])
    dense.detach()
    text = roundtrip(print_relay(m))
    assert "meta[relay.Constant][0] /* ty=Tensor[(2, 4), float32] */" in text and "#[metadata]" in text
    back = RelayParser(text).parse()
    (c,) = [op for op in back.walk() if isinstance(op, graph.ConstantOp)]
    np.testing.assert_array_equal(constant_value(c), w)


def test_meta_constants_of_every_dtype_round_trip():
    from lathe.textual_ir.metadata import read_constants, write_constants

    rng = np.random.default_rng(3)
    arrays = [
        ("float32", rng.standard_normal((2, 3)).astype(np.float32)),
        ("float16", rng.standard_normal(5).astype(np.float16)),
        ("float64", rng.standard_normal(()).astype(np.float64)),
        ("int8", rng.integers(-128, 127, 7).astype(np.int8)),
        ("int32", rng.integers(-9, 9, (1, 2)).astype(np.int32)),
        ("int64", rng.integers(-9, 9, 4).astype(np.int64)),
        ("bool", rng.integers(0, 2, (2, 2)).astype(bool)),
    ]
    back = read_constants(write_constants(arrays))
    for (d, a), (d2, b) in zip(arrays, back, strict=True):
        assert d == d2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "tail, line, words",
    [
        ("", 2, "needs the file's #[metadata] section"),
        ("\n#[metadata]\n{\n  not json", 7, "not JSON"),
        ('\n#[metadata]\n{"root": 1, "nodes": []}', 6, "not TVM's object graph"),
        ('\n#[metadata]\n{"root": 0, "nodes": [{"type_key": "Map", "keys": []}]}', 2, "holds no constants"),
    ],
)
def test_unreadable_meta_constants_are_located_errors(tail, line, words):
    src = "def @main() {\n  meta[relay.Constant][0]\n}\n" + tail
    with pytest.raises(LatheError) as info:
        parse_relay(src, "m.relay")
    e = info.value
    assert e.loc.line == line and words in f"{e.message} {e.note}", e.render()


def test_a_corrupt_ndarray_is_a_located_error():
    text = (Path(__file__).parent / "relay_corpus" / "meta_data.relay").read_text()
    start = text.index('"P6G0')
    bad = text[:start] + '"P6G1' + text[start + 5 :]
    with pytest.raises(LatheError) as info:
        parse_relay(bad, "bad.relay")
    assert "magic" in info.value.message and info.value.loc is not None


# -- TVM's call and function forms ---------------------------------------------------


def test_pad_value_as_an_operand_as_tvm_writes_it():
    src = "def @main(%x: Tensor[(2, 2), float32]) { nn.pad(%x, 2.5f, pad_width=[[1, 0], [0, 1]]) }"
    text = roundtrip(src)
    assert "nn.pad(%x, 2.5f, pad_width=[[1, 0], [0, 1]])" in text
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    np.testing.assert_array_equal(run(src, x=x), np.pad(x, [[1, 0], [0, 1]], constant_values=2.5))
    # TVM's printer gives the pad value whatever dtype it had: 0 /* ty=int32 */ pads floats too
    assert "nn.pad(%x, 0.0f," in roundtrip(
        "def @main(%x: Tensor[(2), float32]) { nn.pad(%x, 0 /* ty=int32 */, pad_width=[[1, 1]]) }"
    )
    with pytest.raises(LatheError) as info:
        parse_relay("def @main(%x: Tensor[(2), float32], %v: float32) {\n  nn.pad(%x, %v, pad_width=[[1, 1]])\n}")
    assert info.value.loc.line == 2 and "pad_value must be a scalar constant" in info.value.message


def test_function_attributes_are_accepted_and_ignored():
    src = 'def @main(%x: Tensor[(2), float32], Primitive=1, Compiler="x", relay.reshape_only=1) { nn.relu(%x) }'
    assert "Primitive" not in roundtrip(src)


def test_one_element_tuples_round_trip_as_values_types_and_projections():
    src = """def @f(%t: (Tensor[(2), float32],)) -> (Tensor[(2), float32],) { (%t.0,) }
    def @main(%x: Tensor[(2), float32]) {
      %0 = @f((%x,)) /* ty=(Tensor[(2), float32],) */;
      let %y: ((Tensor[(2), float32],),) = (%0,);
      (%y.0.0, (1,), split(%x, indices_or_sections=1).0)
    }"""
    text = roundtrip(src)
    assert "-> (Tensor[(2), float32],)" in text and "/* ty=(Tensor[(2), float32],) */" in text
