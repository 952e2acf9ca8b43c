"""Relay text: parse, print, round trip, and located errors."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ("def @main(%x: Tensor[(2, 4), float32], %y: Tensor[(3, 4), float32]) {\n  add(%x, %y)\n}", 2, 3, "cannot be broadcast"),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  @nope(%x)\n}", 2, 3, "undefined function @nope"),
        ("def @main(%x: Tensor[(1, 4), float3]) {\n  %x\n}", 1, 30, "unknown dtype 'float3'"),
        ("def @main(%x: Tensor[(1, 4), float32]) -> Tensor[(1, 5), float32] {\n  %x\n}", 2, 3, "declared to return"),
        ("def @main(%x: Tensor[(1, 4), float32]) {\n  nn.relu(%x) /* ty=Tensor[(4), float32] */\n}", 2, 15, "type annotation says"),
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
    src = '''#[version = "0.0.5"]
def @main(%data: Tensor[(1, 3, 8, 8), float32] /* ty=Tensor[(1, 3, 8, 8), float32] */,
          %weight: Tensor[(4, 3, 3, 3), float32] /* ty=Tensor[(4, 3, 3, 3), float32] span=conv.weight:0:0 */)
          -> Tensor[(1, 4, 8, 8), float32] {
  %0 = nn.conv2d(%data, %weight, padding=[1, 1, 1, 1], channels=4, kernel_size=[3, 3]) /* ty=Tensor[(1, 4, 8, 8), float32] span=aten::_convolution_0:0:0 */;
  nn.relu(%0) /* ty=Tensor[(1, 4, 8, 8), float32] */
}'''
    text = roundtrip(src)
    assert "nn.conv2d(%data, %weight, padding=[1, 1, 1, 1], channels=4, kernel_size=[3, 3])" in text
