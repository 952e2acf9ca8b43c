"""The graph dialect's package layout and typed properties (dialects/graph/)."""

from __future__ import annotations

import inspect

import pytest
from xdsl.dialects import test as xdsl_test
from xdsl.irdl import IRDLOperation

from lathe import LatheError
from lathe.api import parse_source
from lathe.dialects import graph
from lathe.dialects.graph.core import kind_of
from lathe.textual_ir.parser import parse_relay
from lathe.textual_ir.printer import print_relay

UNTYPED = {(graph.ConstantOp, "value")}  # a dense literal, never a Relay attribute


def _value(shape, dtype=None):
    return xdsl_test.TestOp(result_types=[graph.tensor(shape, dtype or graph.DTYPES["float32"])]).results[0]


PROPERTIES = [(op, k, d) for op in graph.GRAPH_OPS for k, d in op.get_irdl_definition().properties.items()]


@pytest.mark.parametrize("op, name, d", PROPERTIES, ids=[f"{op.relay_name()}.{k}" for op, k, _ in PROPERTIES])
def test_every_property_has_a_kind_and_a_default_of_that_kind(op, name, d):
    if (op, name) in UNTYPED:
        return
    kind = kind_of(d.constr)
    assert kind is not None, f"{op.name}.{name} is not declared through an AttrKind"
    if d.default_value is not None:
        # the default read back as Python and given again is the same attribute (passes rebuild
        # ops from attrs() through make_op)
        assert kind.make(graph.py(d.default_value)) == d.default_value
        assert op.defaults()[name] == graph.py(d.default_value)


def test_graph_ops_are_collected_from_the_family_modules():
    defined = [
        c
        for family in graph.FAMILIES
        for _, c in inspect.getmembers(family, inspect.isclass)
        if issubclass(c, IRDLOperation) and c.__module__ == family.__name__ and "name" in vars(c)
    ]
    assert sorted(defined, key=lambda c: c.name) == sorted(graph.GRAPH_OPS, key=lambda c: c.name)
    assert len(set(graph.GRAPH_OPS)) == len(graph.GRAPH_OPS) == len(graph.OPS_BY_RELAY_NAME)
    assert all(getattr(graph, op.__name__) is op for op in graph.GRAPH_OPS)  # graph.XOp keeps working


def test_attrs_fill_in_defaults_from_the_property_definitions():
    x = _value([1, 3, 8, 8])
    op = graph.make_op("nn.max_pool2d", [x], pool_size=[2, 2])
    a = op.attrs()
    assert a["pool_size"] == [2, 2] and a["strides"] == [1, 1] and a["layout"] == "NCHW" and a["ceil_mode"] is False
    assert set(op.properties) == {"pool_size"}  # defaults are not stored
    assert op.pool_size == op.properties["pool_size"] and op.strides == graph.INTS.make([1, 1])  # typed accessors


@pytest.mark.parametrize(
    "relay, attrs, words",
    [
        ("sum", {"keepdims": "no"}, "sum: attribute 'keepdims' must be True or False, got 'no'"),
        ("nn.leaky_relu", {"alpha": True}, "attribute 'alpha' must be a number, got True"),
        ("nn.max_pool2d", {"layout": 3}, "attribute 'layout' must be a string, got 3"),
        ("nn.max_pool2d", {"pool_size": [2.5, 2]}, "attribute 'pool_size' must be a list of integers"),
        ("nn.softmax", {"axis": [1]}, "attribute 'axis' must be an integer, got [1]"),
        ("nn.softmax", {"axis": 2**70}, "attribute 'axis' cannot be"),
        ("nn.pad", {"pad_width": [1, 2]}, "attribute 'pad_width' must be a list of lists of integers"),
    ],
)
def test_make_op_names_the_kind_an_attribute_must_be(relay, attrs, words):
    with pytest.raises(graph.ShapeError) as info:
        graph.make_op(relay, [_value([1, 3, 8, 8])], **attrs)
    assert words in str(info.value)


def test_values_of_a_kind_are_coerced_to_its_attribute():
    x = _value([1, 3, 8, 8])
    assert graph.make_op("nn.leaky_relu", [x], alpha=1).attrs()["alpha"] == 1.0  # an int is a number
    pool = graph.make_op("nn.max_pool2d", [x], pool_size=2, strides=2)  # Relay's pool_size=2
    assert pool.attrs()["pool_size"] == [2] and graph.shape_of(pool.result.type) == [1, 3, 4, 4]
    # a reduction's axis keeps the kind it was given: int and list print differently
    assert graph.make_op("sum", [x], axis=1).attrs()["axis"] == 1
    assert graph.make_op("sum", [x], axis=[1, 2]).attrs()["axis"] == [1, 2]


def test_relay_text_keeps_explicit_attributes_and_round_trips():
    src = "def @main(%x: Tensor[(2, 4), float32]) {\n  sum(%x, axis=1, keepdims=False)\n}"
    text = print_relay(parse_relay(src))
    assert "sum(%x, axis=1, keepdims=False)" in text
    assert print_relay(parse_relay(text)) == text


def test_mlir_property_of_the_wrong_kind_is_a_located_error():
    src = (
        "func.func @main(%x: tensor<2x4xf32>) -> tensor<2xf32> {\n"
        "  %0 = graph.sum %x {axis = 1 : i64, keepdims = 1 : i64} : (tensor<2x4xf32>) -> tensor<2xf32>\n"
        "  func.return %0 : tensor<2xf32>\n}"
    )
    with pytest.raises(LatheError) as info:
        parse_source(src, "bad.mlir")
    e = info.value
    assert (e.loc.line, e.loc.col) == (2, 3) and "i1" in e.message, e.render()


def test_a_property_equal_to_its_default_is_not_printed_in_mlir():
    x = _value([2, 4])
    op = graph.make_op("nn.softmax", [x], axis=-1)
    assert "axis" not in str(op) and op.attrs()["axis"] == -1
