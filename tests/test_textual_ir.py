"""Relay text: parse, print, round trip, and located errors."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lathe
from lathe import LatheError
from lathe.textual_ir.parser import parse_relay
from lathe.textual_ir.printer import print_relay

ROOT = Path(__file__).resolve().parents[1]


def roundtrip(text: str) -> str:
    once = print_relay(parse_relay(text))
    twice = print_relay(parse_relay(once))
    assert once == twice, "print -> parse -> print is not a fixed point"
    return once


def test_example_round_trips():
    text = roundtrip((ROOT / "examples" / "mlp.lathe").read_text())
    assert "nn.dense(%x, %w1, units=128) /* ty=Tensor[(1, 128), float32] */" in text


def test_full_grammar_round_trips():
    src = """#[version = "0.0.5"]
    /* block comment */
    def @f(%a: Tensor[(2, 3), float16]) -> Tensor[(2, 3), float16] {
      %0 = negative(%a);  // line comment
      %0
    }
    def @main(%x: Tensor[(2, 3), float16], %i: Tensor[(4), int64], %b: Tensor[(), bool]) {
      let %y: Tensor[(2, 3), float16] = @f(%x);
      let %t = (%y, %i, %b);
      (%t.0, maximum(%t.1, 3i64), multiply(%x, 2f16), add(%i, 1i64))
    }"""
    text = roundtrip(src)
    assert "maximum(%" in text and "3i64" in text and "2.0f16" in text


def test_parse_builds_verified_ir():
    m = parse_relay("def @main(%x: Tensor[(1, 4), float32]) { nn.relu(%x) }")
    m.verify()
    ops = [op.name for op in m.walk()]
    assert "graph.nn.relu" in ops and "func.return" in ops


def test_attribute_kinds():
    src = 'def @main(%x: Tensor[(3, 4), float32], %w: Tensor[(5, 4), float32]) { nn.dense(%x, %w, units=5, out_dtype="float32") }'
    assert 'units=5, out_dtype="float32"' in roundtrip(src)
    src = "def @main(%a: Tensor[(4, 3), float32], %b: Tensor[(5, 4), float32]) { nn.matmul(%a, %b, transpose_a=True, transpose_b=True) }"
    assert "transpose_a=True, transpose_b=True" in roundtrip(src)


@pytest.mark.parametrize(
    "src, line, col, words",
    [
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.relu(%x\n}", 3, 1, "unexpected '}'"),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.reluu(%x)\n}", 2, 3, "unknown operator 'nn.reluu'"),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.relu(%q)\n}", 2, 11, "undefined variable %q"),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.bias_add(%x, %x, axis=1.5)\n}", 2, 28, "attribute 'axis'"),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.dense(%x, %x, bogus=1)\n}", 2, 20, "no attribute 'bogus'"),
        (
            "def @main(%x: Tensor[(2, 4), float32], %y: Tensor[(3, 4), float32]) {\n  add(%x, %y)\n}",
            2,
            3,
            "cannot be broadcast",
        ),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  @nope(%x)\n}", 2, 3, "undefined function @nope"),
        ("def @main(%x: Tensor[(1, 4), float3]) {\n  %x\n}", 1, 30, "unknown dtype 'float3'"),
        ("def @main(%x: Tensor[(1, 4), float32]) -> Tensor[(1, 5), float32] {\n  %x\n}", 2, 3, "declared to return"),
        (
            "def @main(%x: Tensor[(1, 4), float32]) {\n  nn.relu(%x) /* ty=Tensor[(4), float32] */\n}",
            2,
            15,
            "type annotation says",
        ),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.relu(%x, %x)\n}", 2, 3, "takes 1 operands, got 2"),
    ],
)
def test_errors_are_located(src, line, col, words):
    with pytest.raises(LatheError) as info:
        parse_relay(src, "bad.lathe")
    e = info.value
    assert e.loc is not None and (e.loc.file, e.loc.line, e.loc.col) == ("bad.lathe", line, col), e.render()
    assert words in e.message or words in (e.note or ""), e.render()
    rendered = e.render()
    assert rendered.startswith(f"bad.lathe:{line}:{col}: error:")
    assert rendered.splitlines()[2].strip() == "^"


# -- property: random elementwise/broadcast programs round trip ------------------

_BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]
_UNARY = ["nn.relu", "negative", "exp", "tanh", "sigmoid", "sqrt"]


@st.composite
def programs(draw):
    shape = draw(st.lists(st.integers(1, 9), min_size=0, max_size=3))
    dims = ", ".join(map(str, shape))
    lines = []
    names = ["%x", "%y"]
    for k in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            op = draw(st.sampled_from(_BINARY))
            a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names + ["1f", "0.25f"]))
            lines.append(f"  %{k} = {op}({a}, {b});")
        else:
            op = draw(st.sampled_from(_UNARY))
            lines.append(f"  %{k} = {op}({draw(st.sampled_from(names))});")
        names.append(f"%{k}")
    body = "\n".join(lines) + f"\n  {names[-1]}"
    return f"def @main(%x: Tensor[({dims}), float32], %y: Tensor[({dims}), float32]) {{\n{body}\n}}"


@settings(max_examples=40, deadline=None)
@given(programs())
def test_random_programs_round_trip(src):
    roundtrip(src)


def test_tvm_astext_annotations_are_accepted():
    """TVM prints type annotations after parameters and spans after types."""
    src = """#[version = "0.0.5"]
def @main(%data: Tensor[(1, 3, 8, 8), float32] /* ty=Tensor[(1, 3, 8, 8), float32] */,
          %weight: Tensor[(4, 3, 3, 3), float32] /* ty=Tensor[(4, 3, 3, 3), float32] span=conv.weight:0:0 */)
          -> Tensor[(1, 4, 8, 8), float32] {
  %0 = nn.conv2d(%data, %weight, padding=[1, 1, 1, 1], channels=4, kernel_size=[3, 3]) /* ty=Tensor[(1, 4, 8, 8), float32] span=aten::_convolution_0:0:0 */;
  nn.relu(%0) /* ty=Tensor[(1, 4, 8, 8), float32] */
}"""
    text = roundtrip(src)
    assert "nn.conv2d(%data, %weight, padding=[1, 1, 1, 1], channels=4, kernel_size=[3, 3])" in text


# -- malformed input ends in a located LatheError (issue 8) ------------------------------


def _mlir_error(src: str) -> LatheError:
    from lathe.api import parse_source

    with pytest.raises(LatheError) as info:
        parse_source(src, "bad.mlir")
    assert info.value.loc is not None and info.value.loc.file == "bad.mlir", info.value.render()
    return info.value


_TE_HEAD = """func.func private @k(%a: tensor<7x13xf32>) -> tensor<7xf32> {
  %0 = te.compute {stage = "s", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<7xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<7x13xf32> -> f32
    te.yield %1 : f32
  }
"""


@pytest.mark.parametrize(
    "src, line, col, words",
    [
        (
            _TE_HEAD + "  te.unroll %0 {axis = 0} : tensor<7xf32>\n  func.return %0 : tensor<7xf32>\n}",
            7,
            3,
            "te.unroll: 0 : i64 should be of base attribute string",
        ),
        (
            "func.func @f(%m: memref<16xf32>) {\n  %c0 = arith.constant 0 : index\n  scf.for %i = %c0 to %c0 step %c0 {\n"
            "  } {loop.annotation = #loop.annotation<bogus>}\n  func.return\n}",
            3,
            3,
            "kind must be one of",
        ),
        ('"graph.nn.relu"() {bogus = 99999999999999999999999 : i64} : () -> ()', 1, 1, "out of range"),
    ],
)
def test_mlir_attribute_errors_raised_while_parsing_are_located(src, line, col, words):
    e = _mlir_error(src)
    assert (e.loc.line, e.loc.col) == (line, col) and words in e.message, e.render()


@pytest.mark.parametrize(
    "src, line, what",
    [
        (
            "func.func @f() {\n  scf.for %i = %c0 to %c0 step %c0 {\n  }\n  %c0 = arith.constant 0 : index\n  func.return\n}",
            2,
            "'scf.for': operand #0 (%c0) is used before it is defined",
        ),
        (
            "func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
            "  %0 = graph.add %1, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>\n"
            "  %1 = graph.negative %x : (tensor<4xf32>) -> tensor<4xf32>\n  func.return %0 : tensor<4xf32>\n}",
            2,
            "'graph.add': operand #0",
        ),
    ],
)
def test_use_before_definition_is_a_located_verification_error(src, line, what):
    e = _mlir_error(src)
    assert e.loc.line == line and e.loc.col == 3 and what in e.message, e.render()


def test_verification_errors_name_and_locate_the_op():
    e = _mlir_error(
        "func.func @wrong(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) -> tensor<2x9xf32> {\n"
        "  %0 = graph.nn.dense %x, %w : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x9xf32>\n"
        "  func.return %0 : tensor<2x9xf32>\n}"
    )
    assert (e.loc.line, e.loc.col) == (2, 3), e.render()
    assert e.message.startswith("'graph.nn.dense' does not verify: nn.dense: result type"), e.render()


_RELAY_HEAD = "def @main(%x: Tensor[(1), float32]) {\n  "


@pytest.mark.parametrize(
    "src, fmt",
    [
        ("func.func @f(%a: " + "tuple<" * 300 + "f32" + ">" * 300 + ") {\n  func.return\n}", "mlir"),
        ('"test.op"() {a = ' + "[" * 300 + "]" * 300 + "} : () -> ()", "mlir"),
        ("builtin.module {\n" * 300 + "}\n" * 300, "mlir"),
        (_RELAY_HEAD + "nn.relu(" * 400 + "%x" + ")" * 400 + "\n}", "lathe"),
        (_RELAY_HEAD + "(" * 400 + "%x" + ",)" * 400 + "\n}", "lathe"),
        ("def @main(%x: " + "(" * 400 + "Tensor[(1), float32]" + ",)" * 400 + ") {\n  %x\n}", "lathe"),
        (_RELAY_HEAD + "nn.relu(%x) /* ty=" + "(" * 400 + "Tensor[(1), float32]" + ",)" * 400 + " */\n}", "lathe"),
    ],
)
def test_deep_nesting_is_a_clean_error(src, fmt):
    from lathe.api import parse_source

    with pytest.raises(LatheError) as info:
        parse_source(src, "deep." + fmt, fmt)
    assert "nested deeper than" in info.value.message and info.value.loc is not None, info.value.render()


def test_nesting_within_the_bound_parses_prints_and_interprets():
    import numpy as np

    from lathe.api import interpret
    from lathe.textual_ir.source import MAX_NESTING

    n = MAX_NESTING - 2
    text = roundtrip(_RELAY_HEAD + "negative(" * n + "%x" + ")" * n + "\n}")
    x = np.array([1.5], dtype=np.float32)
    np.testing.assert_array_equal(interpret(parse_relay(text), x=x), x * (-1) ** n)


def test_unterminated_string_fails_fast_in_mlir():
    """xDSL's string regex backtracks exponentially on an unterminated quote: ~1.5 s at 24
    characters, doubling with each more. 60 characters would take years."""
    import time

    t = time.perf_counter()
    e = _mlir_error('func.func @f() {\n  %0 = "' + "x" * 60 + "\n}\n")
    assert time.perf_counter() - t < 1.0
    assert (e.loc.line, e.loc.col, e.message) == (2, 8, "unterminated string literal"), e.render()
    e = _mlir_error('"test.op"() {a = "' + "x" * 60 + '\\q"} : () -> ()')
    assert e.message.startswith("invalid escape sequence") and e.loc.col == 79, e.render()


def test_file_that_is_not_utf8_is_a_located_error(tmp_path):
    from lathe.api import load

    for name, body in (
        ("bad.lathe", b"def @main(%x: Tensor[(1), float32]) {\n  nn.relu(%x) // caf\xe9\n}\n"),
        ("bad.mlir", b"func.func @f() {\n  func.return // \xff\xfe\n}\n"),
    ):
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(LatheError) as info:
            load(path)
        e = info.value
        assert "not UTF-8" in e.message and e.loc is not None and e.loc.line == 2, e.render()


@pytest.mark.parametrize(
    "literal, dtype, value",
    [
        ("9223372036854775807i64", "int64", 2**63 - 1),
        ("-128i8", "int8", -128),
        ("1e3i32", "int32", 1000),
        ("1b", "bool", True),
        ("65504f16", "float16", 65504.0),
        ("1e308f64", "float64", 1e308),
        ("7", "int32", 7),
    ],
)
def test_scalar_literals_parse_to_their_dtype(literal, dtype, value):
    from lathe.dialects import graph

    m = parse_relay(f"def @main() {{ ({literal},) }}")
    const = next(op for op in m.walk() if isinstance(op, graph.ConstantOp))
    assert graph.dtype_name(const.result.type.element_type) == dtype
    v = const.value.get_values()[0]
    assert (bool(v) if dtype == "bool" else v) == value  # xDSL stores true as i1 -1


@pytest.mark.parametrize(
    "literal, words",
    [
        ("1u8", "dtype uint8, which Lathe does not support"),
        ("2i16", "dtype int16"),
        ("42i16", "dtype int16"),
        ("3b", "out of range for bool"),
        ("-1b", "out of range for bool"),
        # TVM makes an unsuffixed integer that does not fit int32 an int64 (tests/test_relay_text.py)
        ("9223372036854775808", "out of range for int64"),
        ("-9223372036854775809", "out of range for int64"),
        ("9223372036854775808i64", "out of range for int64"),
        ("128i8", "out of range for int8"),
        ("1e308f", "out of range for float32"),
        ("1e5f16", "out of range for float16"),
        ("1e309f64", "out of range for float64"),
        ("1.5i32", "not an integer"),
    ],
)
def test_bad_scalar_literals_are_located_errors(literal, words):
    with pytest.raises(LatheError) as info:
        parse_relay(f"def @main() {{\n  ({literal},)\n}}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 4) and words in e.message and literal in e.message, e.render()


def test_integer_attribute_beyond_int64_is_a_located_error():
    with pytest.raises(LatheError) as info:
        parse_relay(
            "def @main(%x: Tensor[(2, 4), float32], %b: Tensor[(4), float32]) {\n"
            "  nn.bias_add(%x, %b, axis=99999999999999999999999)\n}",
            "bad.lathe",
        )
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 28) and "out of range" in e.message, e.render()


def test_float_attribute_beyond_float64_is_a_located_error():
    with pytest.raises(LatheError) as info:
        parse_relay("def @main(%x: Tensor[(2, 4), float32]) {\n  nn.leaky_relu(%x, alpha=1e309f)\n}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 27) and "out of range" in e.message, e.render()


@pytest.mark.parametrize(
    "call, col, words",
    [
        ('sum(%x, keepdims="no")', 20, "attribute 'keepdims' must be True or False, got 'no'"),
        ("sum(%x, exclude=1)", 19, "attribute 'exclude' must be True or False, got 1"),
        ("nn.leaky_relu(%x, alpha=True)", 27, "attribute 'alpha' must be a number"),
        ("nn.max_pool2d(%x, layout=3)", 28, "attribute 'layout' must be a string"),
    ],
)
def test_attribute_kinds_follow_their_defaults(call, col, words):
    """Type inference reads flags by truth value: keepdims="no" used to mean keepdims=True."""
    with pytest.raises(LatheError) as info:
        parse_relay(f"def @main(%x: Tensor[(1, 2, 3, 4), float32]) {{\n  {call}\n}}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, col) and words in e.message, e.render()


def test_non_ascii_string_attribute_reads_back_from_mlir():
    """xDSL prints a non-ASCII StringAttr as escaped bytes and parses it back as a BytesAttr."""
    e = _mlir_error(
        "func.func @main(%x: tensor<1x2x3x4xf32>) -> tensor<1x2x1x2xf32> {\n"
        '  %0 = graph.nn.max_pool2d %x {pool_size = [2, 2], strides = [2, 2], layout = "\\C3\\A9"} : '
        "(tensor<1x2x3x4xf32>) -> tensor<1x2x1x2xf32>\n  func.return %0 : tensor<1x2x1x2xf32>\n}"
    )
    assert "got 'é'" in e.message, e.render()


@pytest.mark.parametrize(
    "call",
    [
        "negative(%b)",
        "subtract(%b, %b)",
        "add(%b, %b)",
        "divide(%b, %b)",
        "sum(%b)",
        "mean(%b)",
        "nn.global_avg_pool2d(%b4)",
        "nn.avg_pool2d(%b4, pool_size=[1, 1])",
        "nn.adaptive_avg_pool2d(%b4, output_size=[1, 1])",
    ],
)
def test_arithmetic_without_meaning_on_bool_is_a_type_error(call):
    """All verified before; negative and subtract then crashed the interpreter (numpy has no bool
    negative), the others were compiled as i1 arithmetic (True + True = False) while the
    interpreter computed numpy's (True + True = True)."""
    with pytest.raises(LatheError) as info:
        parse_relay(f"def @main(%b: Tensor[(2), bool], %b4: Tensor[(1, 2, 2, 2), bool]) {{\n  {call}\n}}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 3) and "expects a numeric tensor" in e.message, e.render()


def test_one_field_tuple_type_round_trips():
    """Its type printed as (T), which reads back as T: (T,) it must be."""
    text = roundtrip("def @main(%x: Tensor[(2), float32]) { (%x,) }")
    assert "-> (Tensor[(2), float32],) {" in text


@pytest.mark.parametrize(
    "call",
    [
        "sum(%a, axis=0)",
        "argmax(%a, axis=0)",
        "nn.softmax(%a, axis=0)",
        "concatenate((%a, %a), axis=0)",
        "squeeze(%a, axis=[0])",
        "take(%a, 0, axis=0)",
        "split(%a, indices_or_sections=1, axis=0)",
    ],
)
def test_a_scalar_has_no_axis_0(call):
    """Each verified, then crashed the interpreter, the lowering or type inference itself."""
    with pytest.raises(LatheError) as info:
        parse_relay(f"def @main(%a: Tensor[(), float32]) {{\n  {call}\n}}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 3) and "axis 0 is out of range for rank 0" in e.message, e.render()


def test_a_scalar_still_gains_axis_0():
    assert "Tensor[(1), float32]" in roundtrip("def @main(%a: Tensor[(), float32]) { expand_dims(%a, axis=0) }")
    assert "Tensor[(2), float32]" in roundtrip("def @main(%a: Tensor[(), float32]) { stack((%a, %a), axis=0) }")


@pytest.mark.parametrize(
    "name, body",
    [
        ("bad.lathe", b"def @main(%x: Tensor[(1), float32]) {\n  nn.relu(%x) // caf\xe9\n}\n"),
        ("bad.mlir", b"func.func @f() {\n  te.unroll %0 {axis = 0} : tensor<7xf32>\n}\n"),
        ("deep.mlir", b"func.func @f(%a: " + b"tuple<" * 300 + b"f32" + b">" * 300 + b") {\n  func.return\n}\n"),
    ],
)
def test_lathe_run_reports_bad_input_as_an_ordinary_error(tmp_path, name, body):
    """These were 'internal error' with exit code 2 (lathe-opt said 'error', exit 1)."""
    import subprocess
    import sys

    path = tmp_path / name
    path.write_bytes(body)
    lathe = Path(sys.executable).parent / "lathe"
    r = subprocess.run([str(lathe), "run", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith(f"{path}:") and "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "params, call",
    [
        ("%a: Tensor[(2, 2), float32]", 'nn.matmul(%a, %a, out_dtype="bool")'),
        ("%a: Tensor[(2, 2), bool]", "nn.dense(%a, %a)"),
        ("%a: Tensor[(1, 2, 2), bool]", "nn.batch_matmul(%a, %a)"),
        (
            "%a: Tensor[(1, 2, 3, 3), float32], %w: Tensor[(2, 2, 2, 2), float32]",
            'nn.conv2d_transpose(%a, %w, out_dtype="bool")',
        ),
    ],
)
def test_accumulating_ops_have_no_bool_result(params, call):
    """matmul with out_dtype="bool" verified, and compiled code disagreed with the interpreter."""
    with pytest.raises(LatheError) as info:
        parse_relay(f"def @main({params}) {{\n  {call}\n}}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 3) and "result cannot be bool" in e.message, e.render()


def test_conv2d_transpose_honours_out_dtype():
    """It accepted out_dtype and ignored it."""
    text = roundtrip(
        "def @main(%a: Tensor[(1, 2, 3, 3), float32], %w: Tensor[(2, 2, 2, 2), float32]) {\n"
        '  nn.conv2d_transpose(%a, %w, out_dtype="float64")\n}'
    )
    assert "-> Tensor[(1, 2, 4, 4), float64]" in text


def test_the_pre_scan_skips_comments_and_strings():
    """Quotes and brackets inside comments and strings neither count nor end anything."""
    text = roundtrip(
        "def @main(%x: Tensor[(2, 3), float32], %w: Tensor[(4, 3), float32]) {\n"
        '  // a "quote and ((( brackets in a comment\n'
        '  /* and "another" [[[ */ nn.dense(%x, %w, out_dtype="float32")\n}'
    )
    assert 'out_dtype="float32"' in text
    with pytest.raises(LatheError) as info:
        parse_relay(
            "def @main(%x: Tensor[(2, 3), float32], %w: Tensor[(4, 3), float32]) {\n"
            '  nn.dense(%x, %w, out_dtype="float32)\n}',
            "bad.lathe",
        )
    e = info.value
    assert (e.loc.line, e.loc.col, e.message) == (2, 30, "unterminated string literal"), e.render()


def test_mlir_error_on_the_first_token_is_located():
    """xDSL's Parser lexes the first token in its constructor, outside the parse call."""
    e = _mlir_error("\\\n")
    assert (e.loc.line, e.loc.col) == (1, 1) and "Unexpected character" in e.message, e.render()


def test_projection_beyond_the_tuple_is_a_located_error():
    """.99999999999999999999 did not fit the i64 index attribute: a VerifyException escaped."""
    with pytest.raises(LatheError) as info:
        parse_relay(
            "def @main(%x: Tensor[(6), float32]) {\n  %0 = split(%x, indices_or_sections=3);\n"
            "  %0.99999999999999999999\n}",
            "bad.lathe",
        )
    e = info.value
    assert e.loc.line == 3 and "projection .99999999999999999999 of a tuple with 3 fields" in e.message, e.render()


def test_a_loop_level_function_is_not_graph_level():
    """An empty function over memrefs passed as graph level and printed as Relay text that
    did not read back."""
    from lathe.api import parse_source
    from lathe.textual_ir.printer import is_graph_level

    m = parse_source(
        "func.func @n(%a: memref<2xf32>) -> memref<2xf32> {\n  func.return %a : memref<2xf32>\n}", "loop.mlir"
    )
    assert not is_graph_level(m)


def test_non_finite_floats_round_trip():
    """An attribute or constant of inf or nan printed as `inff`, which did not parse back."""
    text = roundtrip(
        "def @main(%x: Tensor[(3), float32]) {\n"
        "  %0 = clip(%x, a_min=-inff, a_max=inff);\n"
        '  (nn.leaky_relu(%0, alpha=nanf), add(%0, -inff), cast(%0, dtype="float16"), nanf16)\n}'
    )
    for spelled in ("a_min=-inff", "a_max=inff", "alpha=nanf", "-inff)", "nanf16"):
        assert spelled in text, text
    assert "def @inff(" in roundtrip("def @inff(%x: Tensor[(2), float32]) { %x }")  # still a name


def test_a_negative_result_dimension_is_a_located_error():
    """It verified, printed as MLIR's dynamic `?` and did not parse back."""
    with pytest.raises(LatheError) as info:
        parse_relay("def @main() {\n  broadcast_to(2, shape=[3, -1])\n}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 3) and "negative dimension" in e.message, e.render()


def test_split_by_zero_is_a_located_error():
    """factor = 0 is a falsy attribute: the verifier took nparts instead and crashed on None."""
    e = _mlir_error(
        "func.func private @k(%a: tensor<7xf32>) -> tensor<7xf32> attributes {lathe.kernel} {\n"
        '  %0 = te.compute {stage = "s", axes = ["i"]} : tensor<7xf32> {\n'
        "  ^bb0(%i: index):\n"
        "    %1 = te.read %a[%i] : tensor<7xf32> -> f32\n"
        "    te.yield %1 : f32\n"
        "  }\n"
        '  te.split %0 {axis = "i", factor = 0, outer = "i.o", inner = "i.i"} : tensor<7xf32>\n'
        "  func.return %0 : tensor<7xf32>\n}"
    )
    assert (e.loc.line, e.loc.col) == (7, 3) and "must be >= 1, got 0" in e.message, e.render()


def test_a_bool_pad_value_operand_is_a_located_error():
    """nn.pad's operand pad value of the wrong kind escaped as a ShapeError (fuzz, seed 50000)."""
    with pytest.raises(LatheError) as info:
        parse_relay("def @n() {\n  nn.pad(1, 0b, pad_width=[])\n}", "bad.lathe")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 3) and "'pad_value' must be a number" in e.message, e.render()


def test_gpu_loop_ir_loads(tmp_path):
    """GPU schedules write gpu.barrier into loop IR, which lathe-opt wrote and lathe.load refused."""
    path = tmp_path / "k.mlir"
    path.write_text('func.func @k(%a: memref<4xf32>) {\n  "gpu.barrier"() : () -> ()\n  func.return\n}\n')
    assert '"gpu.barrier"()' in str(lathe.load(path))
