"""Ops whose results are usually known at import time (shapes, constants, ranges), and the inference no-ops."""

from __future__ import annotations

import math

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX

from lathe.dialects import graph
from lathe.errors import LatheError
from lathe.frontends.onnx.converters.common import input_dtype, numpy_dtype
from lathe.frontends.onnx.importer import (
    FOLD_LIMIT,
    Node,
    dtype_of_array,
    sparse_to_dense,
    value_shape,
)
from lathe.frontends.onnx.registry import converts


@converts("Shape")
def _shape_op(n: Node):
    s = n.shape(0)
    start, end = n.attr("start", 0), n.attr("end", None)
    dims = s[start:end] if end is not None else s[start:]
    if DYNAMIC_INDEX in dims:  # known only at run time: graph.shape_of, the part asked for
        lo, hi, _ = slice(start, end).indices(len(s))
        whole = _shape_of(n)
        return whole if (lo, hi) == (0, len(s)) else n.emit("strided_slice", whole, begin=[lo], end=[max(lo, hi)])
    return np.asarray(dims, dtype=np.int64)


def _shape_of(n: Node):
    op = graph.ShapeOfOp.build(n.x(0))
    op.location = n.location
    n.imp.add(op)
    return op.result


@converts("Size")
def _size(n: Node):
    if DYNAMIC_INDEX in n.shape(0):
        return n.emit("prod", _shape_of(n))
    return np.asarray(math.prod(n.shape(0)), dtype=np.int64)


@converts("ConstantOfShape", makes=graph.FullOp)
def _constant_of_shape(n: Node):
    value = n.attr("value", np.zeros(1, dtype=np.float32))
    value = np.asarray(value).reshape(-1)
    if not n.known(0):
        dt = dtype_of_array(value, f"{n.where}: value")
        out = graph.tensor([DYNAMIC_INDEX] * n.length(0, "shape"), graph.DTYPES[dt])
        return n.dyn("full", [n.scalar(value[0], dt)], [("shape", "list", 0)], out, dtype=dt)
    shape = n.ints(0, "shape")
    if math.prod(shape) <= FOLD_LIMIT:
        return np.full(shape, value[0], dtype=value.dtype)
    dt = dtype_of_array(value, f"{n.where}: value")
    return n.emit(graph.FullOp, n.scalar(value[0], dt), shape=shape, dtype=dt)


@converts("Constant")
def _constant(n: Node):
    for key in (
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
        "sparse_value",
        "value_string",
        "value_strings",
    ):
        if key not in n.attrs:
            continue
        v = n.attrs[key]
        if key == "sparse_value":
            return sparse_to_dense(v)
        if key in ("value_float", "value_floats"):
            return np.asarray(v, dtype=np.float32)
        if key in ("value_int", "value_ints"):
            return np.asarray(v, dtype=np.int64)
        if key in ("value_string", "value_strings"):
            return np.asarray(v, dtype=object)
        return np.asarray(v)
    raise LatheError(f"{n.where}: a Constant needs a value attribute")


_RANGE_BOUNDS = ("start", "stop", "step")  # arange's names for ONNX Range's start, limit and delta


@converts("Range", since=11, makes=graph.ArangeOp)
def _range(n: Node):
    """Folded here when the bounds are known; otherwise an arange of the run-time bounds (a
    `graph.dyn`, its length known when they are)."""
    if all(n.known(i) for i in range(3)):
        start, limit, delta = (n.const(i, name).reshape(()) for i, name in enumerate(_RANGE_BOUNDS))
        return np.arange(start, limit, delta, dtype=np.result_type(start, limit, delta))
    dt = input_dtype(n, 0)
    given = [(name, "number", i) for i, name in enumerate(_RANGE_BOUNDS) if not n.known(i)]
    known = {name: n.const(i, name).reshape(-1)[0] for i, name in enumerate(_RANGE_BOUNDS) if n.known(i)}
    return n.dyn("arange", [], given, graph.tensor([DYNAMIC_INDEX], graph.DTYPES[dt]), dtype=dt, **known)


@converts("Identity")
def _identity(n: Node):
    return n.imp.known[n.inputs[0]] if n.known(0) else n.x(0)


@converts("Dropout", makes=graph.DropoutOp)
def _dropout(n: Node):
    """Identity at inference; the mask, when asked for, keeps everything. From opset 12 the
    ratio and training_mode are inputs: known here, a training mode with a ratio above 0 is
    refused now; given at run time, the output goes through a graph.dyn nn.dropout of them,
    which is the identity and refuses (a LatheError naming it and the values) the random drop
    that Lathe does not do."""
    x = n.x(0)
    if n.opset >= 12 and n.has(2):
        ratio = n.opt_const(1) if n.has(1) else np.array(0.5, np.float32)
        training = n.opt_const(2)
        rate = None if ratio is None else float(ratio.reshape(-1)[0])
        train = None if training is None else bool(training.reshape(-1)[0])
        if train is True and rate is not None and rate != 0.0:
            raise n.unsupported("training_mode=True (random dropout)")
        if train is None or (rate is None and train):
            given = [(a, form, i) for a, form, i in (("rate", "number", 1), ("training", "flag", 2)) if not n.known(i)]
            known = {k: v for k, v in (("rate", rate), ("training", train)) if v is not None}
            both = n.dyn("nn.dropout", [x], given, graph.tuple_type([x.type, x.type]), **known)
            x = n.emit(graph.TupleGetItemOp, both, index=0)
    if not n.wants(1):
        return x
    return [x, n.emit("ones", shape=value_shape(x), dtype="bool")]


@converts("EyeLike", since=9)
def _eye_like(n: Node):
    from onnx import helper

    rows, cols = n.shape(0)
    if "dtype" in n.attrs:
        dtype = helper.tensor_dtype_to_np_dtype(n.attr("dtype"))
    else:
        dtype = numpy_dtype(input_dtype(n, 0))
    return np.eye(rows, cols, k=n.attr("k", 0), dtype=dtype)
