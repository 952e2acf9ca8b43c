"""ONNX → graph dialect.

    module, params = from_onnx("model.onnx")
    cm = lathe.compile(module, params=params)
    y = cm.run(x)                       # the graph inputs, positionally, in ONNX order

`@main`'s parameters are the ONNX graph's inputs (in ONNX order), then the
initializers it uses as tensors, then the other constants it needs as tensors
(Relay text has no literal for a non-scalar constant, so those travel in
`params` too). Parameter names are ONNX names made Relay-safe by `sanitize`,
which `unsanitize` undoes; `params` is keyed by the sanitized names, which is
how `lathe run --params` binds them.

All shapes are static, so everything that depends only on shapes and
constants is computed here, at import time: the importer keeps a table of
values known as numpy arrays (initializers, Constant nodes, Shape results,
and the results of nodes whose inputs are all known and whose outputs are
small, evaluated by running the node's own conversion through the reference
interpreter). Attribute-like inputs (Reshape's shape, Slice's starts, ...)
are read from that table, which is how PyTorch's Shape → Gather → Unsqueeze →
Concat → Reshape chains disappear.

Each ONNX op has one converter, registered with `@converts(op_type, since=N)`;
a second registration with a larger `since` takes over from that opset on,
and exists only where the op's meaning changed (Softmax at 13, axes becoming
inputs, ...). Facts about the ONNX operators follow the ONNX specification
and TVM's relay/frontend/onnx.py.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, TensorType
from xdsl.ir import Block, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from lathe.dialects import graph
from lathe.errors import LatheError

__all__ = ["SUPPORTED_OPS", "from_onnx", "sanitize", "supported_ops", "unsanitize"]

FOLD_LIMIT = 1024
"""Results of nodes whose inputs are all known are computed at import time when
they have at most this many elements; larger ones stay in the graph (so that
weights are not duplicated into derived copies)."""

# ---------------------------------------------------------------------------
# names


_ESCAPE = re.compile(r"_u([0-9a-f]{4})")
_LOOKS_ESCAPED = re.compile(r"u[0-9a-f]{4}")
_TRAILING_NUMBER = re.compile(r"_[0-9]+$")


def sanitize(name: str) -> str:
    """An ONNX name as a Relay variable name, reversibly (see `unsanitize`).

    Letters and digits are kept; any other character becomes `_uXXXX` (its
    UTF-16 code unit in hex), and so does a leading digit. A `_` is kept as it
    is unless it would be misread: when it is followed by `uXXXX`, or when it
    starts a `_<digits>` suffix (xDSL drops such a suffix from name hints,
    which is where parameter names are kept).
    """
    if not name:
        raise LatheError("an ONNX value has an empty name")
    units = name.encode("utf-16-le", "surrogatepass")
    chars = [chr(int.from_bytes(units[k:k + 2], "little")) for k in range(0, len(units), 2)]
    out = []
    for k, c in enumerate(chars):
        rest = "".join(chars[k + 1:k + 6])
        if c.isascii() and c.isalnum() and not (k == 0 and c.isdigit()):
            out.append(c)
        elif c == "_" and not _LOOKS_ESCAPED.match(rest) and not _TRAILING_NUMBER.fullmatch("".join(chars[k:])):
            out.append(c)
        else:
            out.append(f"_u{ord(c):04x}")
    return "".join(out)


def unsanitize(name: str) -> str:
    """The ONNX name that `sanitize` turned into `name`."""
    units = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name)
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


# ---------------------------------------------------------------------------
# dtypes

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 3: "int8", 6: "int32", 7: "int64", 9: "bool"}
_NP_TO_LATHE = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.float64): "float64",
                np.dtype(np.int8): "int8", np.dtype(np.int32): "int32", np.dtype(np.int64): "int64",
                np.dtype(np.bool_): "bool"}


def _onnx_dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"


def _lathe_dtype(elem_type: int, what: str) -> str:
    if elem_type not in _ONNX_DTYPES:
        raise LatheError(f"{what} has ONNX type {_onnx_dtype_name(elem_type)}, which Lathe does not support",
                         note="supported: " + ", ".join(sorted(set(_ONNX_DTYPES.values()))))
    return _ONNX_DTYPES[elem_type]


def _dtype_of_array(a: np.ndarray, what: str) -> str:
    if a.dtype not in _NP_TO_LATHE:
        raise LatheError(f"{what} has dtype {a.dtype}, which Lathe does not support",
                         note="supported: " + ", ".join(sorted(set(_NP_TO_LATHE.values()))))
    return _NP_TO_LATHE[a.dtype]


def _plain(v):
    """numpy scalars and arrays → Python ints, floats, bools and lists (for op attributes)."""
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _numel(t) -> int:
    return math.prod(t.get_shape()) if isinstance(t, TensorType) else -1


# ---------------------------------------------------------------------------
# the converter registry

Converter = Callable[["Node"], Any]
_CONVERTERS: dict[str, dict[int, Converter]] = {}


def converts(*op_types: str, since: int = 1):
    """Register a converter for `op_types` from opset `since` on."""
    def register(fn: Converter) -> Converter:
        for t in op_types:
            _CONVERTERS.setdefault(t, {})[since] = fn
        return fn
    return register


def _converter(op_type: str, opset: int) -> Converter | None:
    versions = _CONVERTERS.get(op_type, {})
    usable = [v for v in versions if v <= opset]
    return versions[max(usable)] if usable else None


def supported_ops() -> list[str]:
    """The ONNX op types the importer converts (in the default domain)."""
    return sorted(_CONVERTERS)


class Unsupported(LatheError):
    """An ONNX op, or an attribute value of one, that the importer does not convert."""


class NeedsConstant(Unsupported):
    """An attribute-like input (a shape, axes, scales, ...) that is not known at import time.

    `input_name` is the ONNX value; when it is a graph input, giving it as an
    initializer instead makes the model importable.
    """

    def __init__(self, message: str, input_name: str) -> None:
        super().__init__(message)
        self.input_name = input_name


# ---------------------------------------------------------------------------
# the function under construction


class _Body:
    """One function body being built: its block, and its parameters with their bound values.

    Parameters are kept sorted by a key — (0, i) for the i-th graph input,
    (1, i) for the i-th initializer, (2, n) for other constants in order of
    first use — whatever order they are first needed in.
    """

    def __init__(self) -> None:
        self.block = Block()
        self.keys: list[tuple[int, int]] = []
        self.params: dict[str, np.ndarray] = {}

    def add_param(self, name: str, t: TensorType, key: tuple[int, int]) -> SSAValue:
        index = sum(1 for k in self.keys if k < key)
        self.keys.insert(index, key)
        arg = self.block.insert_arg(t, index)
        arg.name_hint = name
        return arg

    def function(self, name: str, results: Sequence[SSAValue]) -> func.FuncOp:
        if len(results) == 1:
            ret = results[0]
        else:
            tup = graph.TupleOp.create_inferred(list(results))
            self.block.add_op(tup)
            ret = tup.result
        self.block.add_op(func.ReturnOp(ret))
        ftype = FunctionType.from_lists([a.type for a in self.block.args], [ret.type])
        return func.FuncOp(name, ftype, Region(self.block))


class Node:
    """What a converter sees: one ONNX node, its inputs and attributes, and the builder."""

    def __init__(self, imp: _Importer, proto) -> None:
        self.imp = imp
        self.proto = proto
        self.op_type: str = proto.op_type
        self.name: str = proto.name or (proto.output[0] if proto.output else "")
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self.attrs: dict[str, Any] = {a.name: _attribute(a) for a in proto.attribute}
        self.opset: int = imp.opset

    # -- diagnostics --------------------------------------------------------
    @property
    def where(self) -> str:
        return f"ONNX node '{self.name}' ({self.op_type}, opset {self.opset})"

    def unsupported(self, what: str) -> Unsupported:
        return Unsupported(f"{self.where}: {what} is not supported")

    # -- inputs -------------------------------------------------------------
    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def x(self, i: int) -> SSAValue:
        """Input i as a tensor value in the function."""
        if not self.has(i):
            raise LatheError(f"{self.where}: input {i} is required")
        return self.imp.tensor(self.inputs[i])

    def opt_const(self, i: int) -> np.ndarray | None:
        """Input i's value if it is known at import time (None when absent or not known)."""
        return self.imp.known.get(self.inputs[i]) if self.has(i) else None

    def const(self, i: int, what: str) -> np.ndarray:
        """Input i, which must be known at import time (an attribute-like input)."""
        if not self.has(i):
            raise LatheError(f"{self.where}: input {i} ({what}) is required")
        v = self.opt_const(i)
        if v is None:
            raise self.needs_constant(i, what)
        return v

    def needs_constant(self, i: int, what: str) -> NeedsConstant:
        return NeedsConstant(f"{self.where}: a {what} computed at run time (input '{self.inputs[i]}') is not supported; "
                             "Lathe needs it known at import time", self.inputs[i])

    def ints(self, i: int, what: str) -> list[int]:
        return [int(v) for v in np.asarray(self.const(i, what)).reshape(-1)]

    def shape(self, i: int) -> list[int]:
        return self.imp.shape_of(self.inputs[i])

    def known(self, i: int) -> bool:
        return self.has(i) and self.inputs[i] in self.imp.known

    # -- attributes ---------------------------------------------------------
    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def wants(self, k: int) -> bool:
        """Whether output k is used (present and named)."""
        return k < len(self.outputs) and self.outputs[k] != ""

    # -- building -----------------------------------------------------------
    def emit(self, relay_name: str, *operands: SSAValue, **attrs) -> SSAValue:
        op = graph.make_op(relay_name, operands, **{k: _plain(v) for k, v in attrs.items()})
        self.imp.body.block.add_op(op)
        return op.results[0]

    def scalar(self, value, like: SSAValue | str) -> SSAValue:
        """A rank-0 constant with the element type of `like` (a value or a dtype name)."""
        dt = graph.DTYPES[like] if isinstance(like, str) else like.type.element_type  # type: ignore[union-attr]
        op = graph.ConstantOp.scalar(_plain(value), dt)
        self.imp.body.block.add_op(op)
        return op.result

    def constant(self, array: np.ndarray, hint: str) -> SSAValue:
        """A tensor value holding `array` (a scalar constant, or a new parameter named after this node)."""
        return self.imp.tensor(self.imp.new_constant(np.asarray(array), f"{self.outputs[0]}:{hint}"))


def _attribute(a):
    from onnx import helper, numpy_helper

    if a.type == a.GRAPH or a.type == a.GRAPHS:
        return a  # subgraphs: no converter reads them
    if a.type == a.SPARSE_TENSOR:
        return a.sparse_tensor
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if a.type == a.TENSOR:
        try:
            return numpy_helper.to_array(v)
        except Exception as e:  # a truncated or otherwise unreadable tensor
            raise LatheError(f"attribute '{a.name}' cannot be read: {_first_line(e)}") from None
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8", "replace") for s in v]
    return list(v) if isinstance(v, list | tuple) else v


def _shape(v: SSAValue) -> list[int]:
    return graph.shape_of(v.type)


def _dtype(v: SSAValue) -> str:
    return graph.dtype_name(v.type.element_type)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------
# the importer


class _Importer:
    def __init__(self, model, opset: int, shapes: dict[str, Sequence[int]]) -> None:
        self.model = model
        self.opset = opset
        self.shapes = shapes
        self.known: dict[str, np.ndarray] = {}
        self.values: dict[str, SSAValue] = {}
        self.body = _Body()
        self.key: dict[str, tuple[int, int]] = {}
        self._extra = 0

    # -- values ----------------------------------------------------------------
    def shape_of(self, name: str) -> list[int]:
        if name in self.values:
            return _shape(self.values[name])
        if name in self.known:
            return list(self.known[name].shape)
        raise self._undefined(name)

    def _undefined(self, name: str) -> LatheError:
        return LatheError(f"'{name}' is not a graph input, an initializer or the output of an earlier node",
                          note="the ONNX graph is incomplete or its nodes are not in topological order")

    def new_constant(self, array: np.ndarray, name: str) -> str:
        """Record a value computed here under a fresh name; returns the name."""
        while name in self.known or name in self.values:
            name += "'"
        self.known[name] = array
        return name

    def tensor(self, name: str) -> SSAValue:
        """The value called `name` in the function, materializing a known array when needed."""
        if name in self.values:
            return self.values[name]
        if name not in self.known:
            raise self._undefined(name)
        arr = self.known[name]
        dt = _dtype_of_array(arr, f"constant '{name}'")
        if arr.ndim == 0 and (dt == "bool" or not np.issubdtype(arr.dtype, np.floating) or np.isfinite(arr)):
            op = graph.ConstantOp.scalar(_plain(arr[()]), graph.DTYPES[dt])
            self.body.block.add_op(op)
            value = op.result
        else:
            if name not in self.key:
                self.key[name] = (2, self._extra)
                self._extra += 1
            pname = sanitize(name)
            value = self.body.add_param(pname, graph.tensor(arr.shape, graph.DTYPES[dt]), self.key[name])
            self.body.params[pname] = np.array(arr, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        self.values[name] = value
        return value

    # -- the graph -------------------------------------------------------------------
    def run(self):
        g = self.model.graph
        from onnx import numpy_helper

        init_names = set()
        for i, t in enumerate(g.initializer):
            try:
                arr = numpy_helper.to_array(t)
            except Exception as e:  # truncated raw_data, bad external data, ...
                raise LatheError(f"initializer '{t.name}' cannot be read: {_first_line(e)}") from None
            self.known[t.name] = arr
            self.key[t.name] = (1, i)
            init_names.add(t.name)
        for i, s in enumerate(g.sparse_initializer):
            name = s.values.name
            self.known[name] = _sparse_to_dense(s)
            self.key[name] = (1, len(g.initializer) + i)
            init_names.add(name)
        position = 0
        for inp in g.input:
            if inp.name in init_names:
                self._check_initializer(inp)
                continue
            t = self._input_type(inp)
            arg = self.body.add_param(sanitize(inp.name), t, (0, position))
            position += 1
            self.values[inp.name] = arg
        for proto in _topological(g.node, set(self.values) | set(self.known)):
            self._node(proto)
        if not g.output:
            raise LatheError("the ONNX graph has no outputs")
        results = [self._output(o) for o in g.output]
        module = ModuleOp([self.body.function("main", results)])
        try:
            module.verify()
        except VerifyException as e:
            raise LatheError(f"the imported module does not verify: {e}") from None
        return module, dict(self.body.params)

    def _input_type(self, inp) -> TensorType:
        tt = inp.type
        if tt.WhichOneof("value") != "tensor_type":
            raise LatheError(f"graph input '{inp.name}' is not a tensor ({tt.WhichOneof('value')})")
        dt = _lathe_dtype(tt.tensor_type.elem_type, f"graph input '{inp.name}'")
        if inp.name in self.shapes:
            dims = [int(d) for d in self.shapes[inp.name]]
        else:
            if not tt.tensor_type.HasField("shape"):
                raise LatheError(f"graph input '{inp.name}' has no shape",
                                 note="give it one: from_onnx(..., shapes={name: (d0, d1, ...)})")
            dims = []
            for d in tt.tensor_type.shape.dim:
                if not d.HasField("dim_value"):
                    sym = d.dim_param or "?"
                    raise LatheError(f"graph input '{inp.name}' has a dynamic dimension '{sym}'; Lathe needs static shapes",
                                     note="give it a static shape: from_onnx(..., shapes={name: (d0, d1, ...)}) "
                                          "or `lathe import --shape name=d0,d1,...`")
                dims.append(d.dim_value)
        return graph.tensor(dims, graph.DTYPES[dt])

    def _check_initializer(self, inp) -> None:
        """An initializer also listed as an input (IR < 4 style) must agree with its declaration."""
        tt = inp.type.tensor_type
        arr = self.known[inp.name]
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if len(dims) != arr.ndim or any(d is not None and d != s for d, s in zip(dims, arr.shape)):
                raise LatheError(f"initializer '{inp.name}' has shape {tuple(arr.shape)} but the graph input "
                                 f"declares {tuple('?' if d is None else d for d in dims)}")

    def _output(self, out) -> SSAValue:
        if out.name not in self.values and out.name not in self.known:
            raise self._undefined(out.name)
        v = self.tensor(out.name)
        tt = out.type.tensor_type if out.type.WhichOneof("value") == "tensor_type" else None
        if tt is not None and tt.elem_type and tt.elem_type in _ONNX_DTYPES and _ONNX_DTYPES[tt.elem_type] != _dtype(v):
            raise LatheError(f"graph output '{out.name}' is declared {_ONNX_DTYPES[tt.elem_type]} "
                             f"but the imported graph computes {graph.type_str(v.type)}")
        if tt is not None and tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            got = _shape(v)
            if len(dims) != len(got) or any(d is not None and d != s for d, s in zip(dims, got)):
                raise LatheError(f"shape mismatch: graph output '{out.name}' is declared "
                                 f"{tuple('?' if d is None else d for d in dims)} but the imported graph computes "
                                 f"{graph.type_str(v.type)}")
        return v

    # -- nodes ---------------------------------------------------------------------
    def _node(self, proto) -> None:
        try:
            n = Node(self, proto)
        except LatheError as e:
            raise LatheError(f"ONNX node '{proto.name}' ({proto.op_type}, opset {self.opset}): {e.message}") from None
        if proto.domain not in ("", "ai.onnx"):
            raise Unsupported(f"unsupported ONNX operator '{proto.domain}.{n.op_type}' (node '{n.name}', "
                              f"opset {self.opset}): only the default domain is supported")
        conv = _converter(n.op_type, self.opset)
        if conv is None:
            raise Unsupported(f"unsupported ONNX operator '{n.op_type}' (node '{n.name}', opset {self.opset})",
                              note=None if n.op_type not in _CONVERTERS else
                              f"{n.op_type} is supported from opset {min(_CONVERTERS[n.op_type])}")
        for name in n.inputs:
            if name and name not in self.values and name not in self.known:
                raise LatheError(f"{n.where}: input {self._undefined(name).message}")
        try:
            outs = None
            if all(name == "" or name in self.known for name in n.inputs):
                outs = self._fold(n, conv)
            if outs is None:
                outs = _as_list(conv(n))
        except Unsupported:
            raise
        except LatheError as e:
            if e.message.startswith("ONNX node"):
                raise
            raise LatheError(f"{n.where}: {e.message}", e.loc, e.note) from None
        except VerifyException as e:  # a type-inference error: shapes, dtypes or attributes
            raise LatheError(f"{n.where}: {e}") from None
        self._bind_outputs(n, outs)

    def _bind_outputs(self, n: Node, outs: list) -> None:
        for k, name in enumerate(n.outputs):
            if not name:
                continue
            if k >= len(outs) or outs[k] is None:
                raise n.unsupported(f"output {k} ('{name}')")
            v = outs[k]
            if isinstance(v, SSAValue):
                if not isinstance(v.type, TensorType):
                    raise LatheError(f"{n.where}: output {k} is not a tensor")
                self.values[name] = v
                self.known.pop(name, None)
            else:
                self.known[name] = np.asarray(v)
                self.values.pop(name, None)

    def _fold(self, n: Node, conv: Converter) -> list | None:
        """Convert a node whose inputs are all known in a scratch body and evaluate it.

        Returns its outputs as arrays, or None when one is too large to fold
        (the node is then converted again into the real function).
        """
        from lathe.runtime.interpreter import interpret

        saved = self.body, self.values
        self.body, self.values = _Body(), {}
        try:
            outs = _as_list(conv(n))
            values = [v for v in outs if isinstance(v, SSAValue)]
            if not values:
                return outs
            if any(_numel(v.type) < 0 or _numel(v.type) > FOLD_LIMIT for v in values):
                return None
            f = self.body.function("main", values)
            try:
                result = interpret(ModuleOp([f]), params=self.body.params)
            except LatheError:
                raise
            except Exception as e:  # numpy refusing the values (an empty reduction, ...)
                raise LatheError(f"evaluating it at import time failed: {_first_line(e)}") from None
            results = list(result) if len(values) > 1 else [result]
            it = iter(results)
            return [next(it) if isinstance(v, SSAValue) else v for v in outs]
        finally:
            self.body, self.values = saved


def _topological(nodes, available: set[str]) -> list:
    """The nodes in an order where each comes after its producers (ONNX requires it; exporters slip).

    Stable: an already sorted graph keeps its order. Nodes whose inputs never
    become available stay at the end, in order, where the importer reports them.
    """
    nodes = list(nodes)
    available = set(available) | {""}
    done = [False] * len(nodes)
    order = []
    progress = True
    while progress:
        progress = False
        for k, nd in enumerate(nodes):
            if not done[k] and all(i in available for i in nd.input):
                done[k] = progress = True
                order.append(nd)
                available.update(nd.output)
    return order + [nd for k, nd in enumerate(nodes) if not done[k]]


def _as_list(outs) -> list:
    if isinstance(outs, list):
        return outs
    if isinstance(outs, tuple):
        return list(outs)
    return [outs]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _sparse_to_dense(s) -> np.ndarray:
    from onnx import numpy_helper

    values = numpy_helper.to_array(s.values)
    indices = numpy_helper.to_array(s.indices).astype(np.int64)
    dims = tuple(s.dims)
    dense = np.zeros(dims, dtype=values.dtype)
    if indices.ndim == 1:
        dense.reshape(-1)[indices] = values
    else:
        dense[tuple(indices.T)] = values
    return dense


# ---------------------------------------------------------------------------
# the entry point


def _load(model_or_path):
    import onnx

    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, bytes):
        try:
            return onnx.load_from_string(model_or_path)
        except Exception as e:
            raise LatheError(f"not a valid ONNX model: {_first_line(e)}") from None
    path = os.fspath(model_or_path)
    if not os.path.exists(path):
        raise LatheError(f"cannot read {path}: no such file")
    try:
        return onnx.load(path)
    except Exception as e:  # DecodeError, external data that cannot be found, ...
        raise LatheError(f"{path} is not a valid ONNX model: {_first_line(e)}") from None


def _check(model) -> None:
    """The structure the importer relies on (onnx.checker is stricter than onnxruntime, e.g. about
    outputs without shapes, so it is not used; the importer checks names and types as it goes)."""
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise LatheError("not a valid ONNX model: it has no graph")
    if model.ir_version < 1:
        raise LatheError("not a valid ONNX model: its IR version is missing")


def _default_opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def from_onnx(model_or_path, opset: int | None = None, shapes: dict[str, Sequence[int]] | None = None):
    """Import an ONNX model (a ModelProto, a path or serialized bytes) → (module, params).

    `opset` overrides the model's default-domain opset; `shapes` gives static
    shapes (by ONNX name) to inputs whose declared shapes are dynamic.
    """
    import onnx

    model = _load(model_or_path)
    _check(model)
    newest = onnx.defs.onnx_opset_version()
    opset = _default_opset(model) if opset is None else int(opset)
    if not 1 <= opset <= newest:
        raise LatheError(f"opset {opset} is not one this onnx ({onnx.__version__}) defines (1 to {newest})")
    return _Importer(model, opset, dict(shapes or {})).run()


# ===========================================================================
# converters


def _pair_pads(pads: Sequence[int], spatial: int) -> tuple[list[int], list[int]]:
    pads = list(pads) if pads else [0] * (2 * spatial)
    return pads[:spatial], pads[spatial:]


def _auto_pads(n: Node, sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
               dilations: Sequence[int]) -> tuple[list[int], list[int]]:
    """Begin and end padding per spatial axis, from `pads` or `auto_pad` (conv and pooling)."""
    auto = n.attr("auto_pad", "NOTSET")
    spatial = len(sizes)
    if auto in ("NOTSET", ""):
        return _pair_pads(n.attr("pads"), spatial)
    if auto == "VALID":
        return [0] * spatial, [0] * spatial
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise n.unsupported(f"auto_pad={auto!r}")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins, ends


def _reshape(n: Node, x: SSAValue, shape: Sequence[int]) -> SSAValue:
    if 0 in shape:  # Relay's newshape reads 0 as "copy this dimension"
        raise n.unsupported(f"reshaping to the empty shape {list(shape)}")
    return x if _shape(x) == list(shape) else n.emit("reshape", x, newshape=list(shape))


def _to_2d_spatial(n: Node, x: SSAValue) -> SSAValue:
    """(N, C, L) → (N, C, 1, L), so that 1-D convolutions and pools run as 2-D ones."""
    s = _shape(x)
    return _reshape(n, x, s[:2] + [1] + s[2:])


def _spatial(n: Node, x: SSAValue) -> int:
    rank = len(_shape(x))
    if rank not in (3, 4):
        raise n.unsupported(f"{rank - 2}-D data (rank {rank}; 1-D and 2-D are)")
    return rank - 2


# -- convolution -----------------------------------------------------------------


@converts("Conv")
def _conv(n: Node):
    x, w = n.x(0), n.x(1)
    spatial = _spatial(n, x)
    ws = _shape(w)
    kernel = n.attr("kernel_shape", ws[2:])
    strides = n.attr("strides", [1] * spatial)
    dilations = n.attr("dilations", [1] * spatial)
    begins, ends = _auto_pads(n, _shape(x)[2:], kernel, strides, dilations)
    if spatial == 1:
        x, w = _to_2d_spatial(n, x), _to_2d_spatial(n, w)
        strides, dilations, begins, ends = [1, *strides], [1, *dilations], [0, *begins], [0, *ends]
    y = n.emit("nn.conv2d", x, w, strides=strides, padding=[*begins, *ends], dilation=dilations,
               groups=n.attr("group", 1), channels=ws[0], kernel_size=_shape(w)[2:])
    if n.has(2):
        y = n.emit("nn.bias_add", y, n.x(2), axis=1)
    if spatial == 1:
        s = _shape(y)
        y = _reshape(n, y, [s[0], s[1], s[3]])
    return y


def _conv_transpose_pads(n: Node, sizes, kernel, strides, dilations, out_pad):
    """Begin/end padding and output padding per axis; output_shape, when given, decides the padding."""
    spatial = len(sizes)
    output_shape = n.attr("output_shape")
    auto = n.attr("auto_pad", "NOTSET")
    if output_shape is None and auto not in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = _pair_pads(n.attr("pads") if auto != "VALID" else None, spatial)
        return begins, ends, list(out_pad)
    if output_shape is None:
        output_shape = [s * st for s, st in zip(sizes, strides)]
    output_shape = list(output_shape)[-spatial:]
    begins, ends, extra = [], [], []
    for size, k, s, d, op, want in zip(sizes, kernel, strides, dilations, out_pad, output_shape):
        total = s * (size - 1) + op + (k - 1) * d + 1 - want
        if total < 0:  # the output is larger than the full transposed convolution: grow it at the end
            begins.append(0)
            ends.append(0)
            extra.append(op - total)
            continue
        small, big = total // 2, total - total // 2
        upper = auto == "SAME_UPPER"
        begins.append(small if upper else big)
        ends.append(big if upper else small)
        extra.append(op)
    return begins, ends, extra


@converts("ConvTranspose")
def _conv_transpose(n: Node):
    x, w = n.x(0), n.x(1)
    spatial = _spatial(n, x)
    ws = _shape(w)
    kernel = n.attr("kernel_shape", ws[2:])
    strides = n.attr("strides", [1] * spatial)
    dilations = n.attr("dilations", [1] * spatial)
    out_pad = n.attr("output_padding", [0] * spatial)
    begins, ends, out_pad = _conv_transpose_pads(n, _shape(x)[2:], kernel, strides, dilations, out_pad)
    if spatial == 1:
        x, w = _to_2d_spatial(n, x), _to_2d_spatial(n, w)
        strides, dilations, begins, ends, out_pad = [1, *strides], [1, *dilations], [0, *begins], [0, *ends], [0, *out_pad]
    y = n.emit("nn.conv2d_transpose", x, w, strides=strides, padding=[*begins, *ends], dilation=dilations,
               groups=n.attr("group", 1), output_padding=out_pad)
    if n.has(2):
        y = n.emit("nn.bias_add", y, n.x(2), axis=1)
    if spatial == 1:
        s = _shape(y)
        y = _reshape(n, y, [s[0], s[1], s[3]])
    return y


# -- contractions ---------------------------------------------------------------------


@converts("Gemm")
def _gemm(n: Node):
    """alpha · op(A) · op(B) + beta · C: nn.dense for A · Bᵀ (PyTorch's Linear), nn.matmul otherwise."""
    a, b = n.x(0), n.x(1)
    trans_a, trans_b = bool(n.attr("transA", 0)), bool(n.attr("transB", 0))
    if trans_b and not trans_a:
        y = n.emit("nn.dense", a, b)
    else:
        y = n.emit("nn.matmul", a, b, transpose_a=trans_a, transpose_b=trans_b)
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    if alpha != 1.0:
        y = n.emit("multiply", y, n.scalar(alpha, y))
    if n.has(2) and beta != 0.0:
        c = n.x(2)
        if beta != 1.0:
            c = n.emit("multiply", c, n.scalar(beta, c))
        y = n.emit("add", y, c)
    return y


@converts("MatMul")
def _matmul(n: Node):
    """numpy matmul: 1-D operands are promoted and the added axis removed again; batch axes broadcast."""
    a, b = n.x(0), n.x(1)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        raise LatheError(f"{n.where}: MatMul operands must have rank >= 1, got {sa} and {sb}")
    if len(sa) == 1:
        a = _reshape(n, a, [1, sa[0]])
    if len(sb) == 1:
        b = _reshape(n, b, [sb[0], 1])
    y = _batched_matmul(n, a, b)
    out = _shape(y)
    if len(sa) == 1:
        out = out[:-2] + out[-1:]
    if len(sb) == 1:
        out = out[:-1]
    return _reshape(n, y, out)


def _batched_matmul(n: Node, a: SSAValue, b: SSAValue) -> SSAValue:
    sa, sb = _shape(a), _shape(b)
    (m, k), (k2, cols) = sa[-2:], sb[-2:]
    if k != k2:
        raise LatheError(f"{n.where}: shape mismatch: MatMul of {sa} and {sb} (inner dimensions {k} and {k2})")
    if len(sa) == 2 and len(sb) == 2:
        return n.emit("nn.matmul", a, b)
    if len(sb) == 2:  # (..., m, k) · (k, n): one matrix product over all the rows
        rows = math.prod(sa[:-1])
        y = n.emit("nn.matmul", _reshape(n, a, [rows, k]), b)
        return _reshape(n, y, sa[:-1] + [cols])
    try:
        batch = list(np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2])))
    except ValueError:
        raise LatheError(f"{n.where}: shape mismatch: MatMul batch dimensions {sa[:-2]} and {sb[:-2]} "
                         "do not broadcast") from None
    nb = math.prod(batch)

    def flat(x, s, rows_cols):
        lead = math.prod(s[:-2])
        if lead != 1 and s[:-2] != batch:
            x = n.emit("broadcast_to", x, shape=batch + rows_cols)
            lead = nb
        return _reshape(n, x, [lead, *rows_cols])

    y = n.emit("nn.batch_matmul", flat(a, sa, [m, k]), flat(b, sb, [k, cols]), transpose_b=False)
    return _reshape(n, y, batch + [m, cols])


# -- elementwise ------------------------------------------------------------------------

_BINARY = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide", "Equal": "equal", "Less": "less",
           "LessOrEqual": "less_equal", "Greater": "greater", "GreaterOrEqual": "greater_equal",
           "And": "logical_and", "Or": "logical_or", "Xor": "not_equal"}


def _binary(relay: str):
    def convert(n: Node):
        return n.emit(relay, n.x(0), n.x(1))
    convert.__doc__ = f"ONNX broadcasting is numpy's, as is {relay}'s."
    return convert


for _op, _relay in _BINARY.items():
    converts(_op)(_binary(_relay))


@converts("Pow")
def _pow(n: Node):
    """The exponent may have another dtype than the base (opset 12+); Lathe's power wants one."""
    x, y = n.x(0), n.x(1)
    if _dtype(y) != _dtype(x):
        y = n.emit("cast", y, dtype=_dtype(x))
    return n.emit("power", x, y)


def _variadic(relay: str, mean: bool = False):
    def convert(n: Node):
        xs = [n.x(i) for i in range(len(n.inputs)) if n.has(i)]
        y = xs[0]
        for x in xs[1:]:
            y = n.emit(relay, y, x)
        if mean:
            y = n.emit("divide", y, n.scalar(len(xs), y))
        return y
    return convert


converts("Sum")(_variadic("add"))
converts("Mean")(_variadic("add", mean=True))
converts("Max")(_variadic("maximum"))
converts("Min")(_variadic("minimum"))

_UNARY = {"Neg": "negative", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Tanh": "tanh",
          "Sigmoid": "sigmoid", "Erf": "erf", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Relu": "nn.relu",
          "Not": "logical_not"}


def _unary(relay: str):
    def convert(n: Node):
        return n.emit(relay, n.x(0))
    return convert


for _op, _relay in _UNARY.items():
    converts(_op)(_unary(_relay))


@converts("Reciprocal")
def _reciprocal(n: Node):
    x = n.x(0)
    return n.emit("divide", n.scalar(1.0, x), x)


@converts("LeakyRelu")
def _leaky_relu(n: Node):
    return n.emit("nn.leaky_relu", n.x(0), alpha=float(n.attr("alpha", 0.01)))


@converts("PRelu")
def _prelu(n: Node):
    """nn.prelu when the slope is one value per channel (axis 1); otherwise where(x < 0, x·slope, x)."""
    x, slope = n.x(0), n.x(1)
    xs, ss = _shape(x), _shape(slope)
    aligned = [1] * (len(xs) - len(ss)) + ss
    if len(xs) >= 2 and len(aligned) == len(xs) and [d for k, d in enumerate(aligned) if k != 1] == [1] * (len(xs) - 1) \
            and aligned[1] == xs[1]:
        return n.emit("nn.prelu", x, _reshape(n, slope, [xs[1]]), axis=1)
    neg = n.emit("less", x, n.scalar(0, x))
    return n.emit("where", neg, n.emit("multiply", x, slope), x)


def _elu(n: Node, x: SSAValue, alpha: float) -> SSAValue:
    """alpha·(exp(x) − 1) below zero, x above."""
    below = n.emit("multiply", n.emit("subtract", n.emit("exp", x), n.scalar(1.0, x)), n.scalar(alpha, x))
    return n.emit("where", n.emit("less", x, n.scalar(0.0, x)), below, x)


@converts("Elu")
def _elu_op(n: Node):
    return _elu(n, n.x(0), float(n.attr("alpha", 1.0)))


@converts("Selu")
def _selu(n: Node):
    """gamma·x above zero, gamma·alpha·(exp(x) − 1) at or below it."""
    x = n.x(0)
    alpha = float(n.attr("alpha", 1.67326319217681884765625))
    gamma = float(n.attr("gamma", 1.05070102214813232421875))
    below = n.emit("multiply", n.emit("subtract", n.emit("exp", x), n.scalar(1.0, x)), n.scalar(alpha, x))
    y = n.emit("where", n.emit("greater", x, n.scalar(0.0, x)), x, below)
    return n.emit("multiply", y, n.scalar(gamma, x))


def _hard_sigmoid(n: Node, x: SSAValue, alpha: float, beta: float) -> SSAValue:
    y = n.emit("add", n.emit("multiply", x, n.scalar(alpha, x)), n.scalar(beta, x))
    return n.emit("clip", y, a_min=0.0, a_max=1.0)


@converts("HardSigmoid")
def _hard_sigmoid_op(n: Node):
    return _hard_sigmoid(n, n.x(0), float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5)))


@converts("HardSwish")
def _hard_swish(n: Node):
    x = n.x(0)
    return n.emit("multiply", x, _hard_sigmoid(n, x, 1.0 / 6.0, 0.5))


def _softplus(n: Node, x: SSAValue) -> SSAValue:
    """log(1 + exp(x)) written as max(x, 0) + log(1 + exp(−|x|)), which does not overflow."""
    tail = n.emit("log", n.emit("add", n.emit("exp", n.emit("negative", n.emit("abs", x))), n.scalar(1.0, x)))
    return n.emit("add", n.emit("nn.relu", x), tail)


@converts("Softplus")
def _softplus_op(n: Node):
    return _softplus(n, n.x(0))


@converts("Softsign")
def _softsign(n: Node):
    x = n.x(0)
    return n.emit("divide", x, n.emit("add", n.emit("abs", x), n.scalar(1.0, x)))


@converts("ThresholdedRelu")
def _thresholded_relu(n: Node):
    x = n.x(0)
    above = n.emit("greater", x, n.scalar(float(n.attr("alpha", 1.0)), x))
    return n.emit("where", above, x, n.scalar(0.0, x))


@converts("Gelu", since=20)
def _gelu(n: Node):
    """0.5·x·(1 + erf(x/√2)), or with approximate="tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    x = n.x(0)
    approx = n.attr("approximate", "none")
    if approx == "tanh":
        cube = n.emit("multiply", n.emit("multiply", x, x), x)
        inner = n.emit("add", x, n.emit("multiply", cube, n.scalar(0.044715, x)))
        t = n.emit("tanh", n.emit("multiply", inner, n.scalar(math.sqrt(2.0 / math.pi), x)))
    elif approx == "none":
        t = n.emit("erf", n.emit("multiply", x, n.scalar(1.0 / math.sqrt(2.0), x)))
    else:
        raise n.unsupported(f"approximate={approx!r}")
    half_x = n.emit("multiply", x, n.scalar(0.5, x))
    return n.emit("multiply", half_x, n.emit("add", t, n.scalar(1.0, x)))


def _limits(dtype: str) -> tuple[float | int, float | int]:
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    return _plain(info.min), _plain(info.max)


def _clip(n: Node, x: SSAValue, lo, hi) -> SSAValue:
    """clip with attribute bounds (a missing one is the dtype's limit)."""
    dmin, dmax = _limits(_dtype(x))
    lo = dmin if lo is None else lo
    hi = dmax if hi is None else hi
    if _dtype(x).startswith("float"):
        lo, hi = float(lo), float(hi)
    else:
        lo, hi = int(lo), int(hi)
    return n.emit("clip", x, a_min=lo, a_max=hi)


@converts("Clip")
def _clip_v1(n: Node):
    return _clip(n, n.x(0), n.attr("min"), n.attr("max"))


@converts("Clip", since=11)
def _clip_v11(n: Node):
    """min and max became optional inputs; bounds computed at run time become maximum/minimum."""
    x = n.x(0)
    if all(not n.has(i) or n.known(i) for i in (1, 2)):
        lo = n.opt_const(1)
        hi = n.opt_const(2)
        return _clip(n, x, None if lo is None else _plain(lo.reshape(())),
                     None if hi is None else _plain(hi.reshape(())))
    y = x
    if n.has(1):
        y = n.emit("maximum", y, n.x(1))
    if n.has(2):
        y = n.emit("minimum", y, n.x(2))
    return y


def _cast_to(n: Node, to: int) -> str:
    return _lathe_dtype(to, f"{n.where}: the target type")


@converts("Cast")
def _cast(n: Node):
    to = n.attr("to")
    if isinstance(to, str):  # opsets 1-5 name the type
        from onnx import TensorProto

        to = TensorProto.DataType.Value(to.upper())
    if n.known(0):  # shape arithmetic: stay in numpy, any dtype
        from onnx import helper

        return n.const(0, "input").astype(helper.tensor_dtype_to_np_dtype(to))
    dt = _cast_to(n, to)
    x = n.x(0)
    return x if _dtype(x) == dt else n.emit("cast", x, dtype=dt)


@converts("CastLike", since=15)
def _cast_like(n: Node):
    x = n.x(0)
    dt = graph.dtype_name(graph.DTYPES[_dtype_of_value(n, 1)])
    return x if _dtype(x) == dt else n.emit("cast", x, dtype=dt)


def _dtype_of_value(n: Node, i: int) -> str:
    if n.known(i):
        return _dtype_of_array(n.const(i, "input"), f"{n.where}: input {i}")
    return _dtype(n.x(i))


@converts("Where")
def _where(n: Node):
    return n.emit("where", n.x(0), n.x(1), n.x(2))


# -- softmax --------------------------------------------------------------------------


def _softmax_2d(relay: str):
    """Before opset 13: flatten to 2-D at `axis` (default 1), normalize each row, restore the shape."""
    def convert(n: Node):
        x = n.x(0)
        xs = _shape(x)
        axis = graph.normalize_axis(n.op_type, n.attr("axis", 1), len(xs)) if xs else 0
        rows = math.prod(xs[:axis])
        y = n.emit(relay, _reshape(n, x, [rows, math.prod(xs[axis:])]), axis=-1)
        return _reshape(n, y, xs)
    return convert


def _softmax_axis(relay: str):
    """From opset 13: along one axis (default −1)."""
    def convert(n: Node):
        return n.emit(relay, n.x(0), axis=n.attr("axis", -1))
    return convert


converts("Softmax")(_softmax_2d("nn.softmax"))
converts("LogSoftmax")(_softmax_2d("nn.log_softmax"))
converts("Softmax", since=13)(_softmax_axis("nn.softmax"))
converts("LogSoftmax", since=13)(_softmax_axis("nn.log_softmax"))


# -- normalization -------------------------------------------------------------------------


@converts("BatchNormalization")
def _batch_norm(n: Node):
    if n.attr("training_mode", 0):
        raise n.unsupported("training_mode=1")
    if not n.attr("spatial", 1):
        raise n.unsupported("spatial=0")
    args = [n.x(i) for i in range(5)]
    y = n.emit("nn.batch_norm", *args, axis=1, epsilon=float(n.attr("epsilon", 1e-5)))
    return n.emit("tuple_get_item", y, index=0)


def _channel_shaped(n: Node, v: SSAValue, rank: int) -> SSAValue:
    """A (C,) vector as (C, 1, ..., 1) so that it broadcasts along axis 1 of a rank-`rank` tensor."""
    return _reshape(n, v, [_shape(v)[0]] + [1] * (rank - 2))


@converts("InstanceNormalization")
def _instance_norm(n: Node):
    """(x − mean) / √(var + ε) · scale + B, mean and variance per sample and channel over the spatial axes."""
    x, scale, bias = n.x(0), n.x(1), n.x(2)
    rank = len(_shape(x))
    axes = list(range(2, rank))
    mean = n.emit("mean", x, axis=axes, keepdims=True)
    var = n.emit("variance", x, axis=axes, keepdims=True)
    inv = n.emit("rsqrt", n.emit("add", var, n.scalar(float(n.attr("epsilon", 1e-5)), x)))
    y = n.emit("multiply", n.emit("subtract", x, mean), inv)
    y = n.emit("multiply", y, _channel_shaped(n, scale, rank))
    return n.emit("add", y, _channel_shaped(n, bias, rank))


@converts("LayerNormalization", since=17)
def _layer_norm(n: Node):
    """Normalize over axes [axis, rank): nn.layer_norm on the rows of a 2-D view, then scale and bias.

    The optional Mean and InvStdDev outputs are computed separately (keepdims shapes).
    """
    x = n.x(0)
    xs = _shape(x)
    axis = graph.normalize_axis("LayerNormalization", n.attr("axis", -1), len(xs))
    eps = float(n.attr("epsilon", 1e-5))
    inner = xs[axis:]
    size = math.prod(inner)
    scale = _flat_param(n, n.x(1), inner)
    bias = _flat_param(n, n.x(2), inner) if n.has(2) else None
    rows = math.prod(xs[:axis])
    flat = _reshape(n, x, [rows, size])
    if bias is None:  # nn.layer_norm always takes a beta operand; center=False ignores it
        y = n.emit("nn.layer_norm", flat, scale, scale, axis=-1, epsilon=eps, center=False)
    else:
        y = n.emit("nn.layer_norm", flat, scale, bias, axis=-1, epsilon=eps)
    outs = [_reshape(n, y, xs)]
    if n.wants(1) or n.wants(2):
        axes = list(range(axis, len(xs)))
        outs.append(n.emit("mean", x, axis=axes, keepdims=True))
        var = n.emit("variance", x, axis=axes, keepdims=True)
        outs.append(n.emit("rsqrt", n.emit("add", var, n.scalar(eps, x))))
    return outs


def _flat_param(n: Node, v: SSAValue, inner: list[int]) -> SSAValue:
    """Scale or bias (broadcastable to the normalized axes) as one flat vector."""
    if _shape(v) != inner:
        v = n.emit("broadcast_to", v, shape=inner)
    return _reshape(n, v, [math.prod(inner)])


@converts("LRN")
def _lrn(n: Node):
    return n.emit("nn.lrn", n.x(0), size=n.attr("size"), axis=1, alpha=float(n.attr("alpha", 1e-4)),
                  beta=float(n.attr("beta", 0.75)), bias=float(n.attr("bias", 1.0)))


# -- pooling ----------------------------------------------------------------------------------


def _pool(relay: str):
    def convert(n: Node):
        if relay == "nn.max_pool2d" and n.wants(1):
            raise n.unsupported("the Indices output of MaxPool")
        x = n.x(0)
        spatial = _spatial(n, x)
        kernel = n.attr("kernel_shape")
        strides = n.attr("strides", [1] * spatial)
        dilations = n.attr("dilations", [1] * spatial)
        begins, ends = _auto_pads(n, _shape(x)[2:], kernel, strides, dilations)
        if spatial == 1:
            x = _to_2d_spatial(n, x)
            kernel, strides, dilations, begins, ends = [1, *kernel], [1, *strides], [1, *dilations], [0, *begins], [0, *ends]
        attrs = dict(pool_size=kernel, strides=strides, dilation=dilations, padding=[*begins, *ends],
                     ceil_mode=bool(n.attr("ceil_mode", 0)))
        if relay == "nn.avg_pool2d":
            attrs["count_include_pad"] = bool(n.attr("count_include_pad", 0))
        y = n.emit(relay, x, **attrs)
        if spatial == 1:
            s = _shape(y)
            y = _reshape(n, y, [s[0], s[1], s[3]])
        return y
    return convert


converts("MaxPool")(_pool("nn.max_pool2d"))
converts("AveragePool")(_pool("nn.avg_pool2d"))


def _global_pool(relay: str, reduce: str):
    def convert(n: Node):
        x = n.x(0)
        rank = len(_shape(x))
        if rank == 4:
            return n.emit(relay, x)
        return n.emit(reduce, x, axis=list(range(2, rank)), keepdims=True)
    return convert


converts("GlobalAveragePool")(_global_pool("nn.global_avg_pool2d", "mean"))
converts("GlobalMaxPool")(_global_pool("nn.global_max_pool2d", "max"))


# -- padding ------------------------------------------------------------------------------


def _pad(n: Node, pads: Sequence[int], value, axes: Sequence[int] | None = None):
    """nn.pad for the positive amounts, after strided_slice for the negative ones (ONNX crops)."""
    x = n.x(0)
    xs = _shape(x)
    rank = len(xs)
    axes = list(range(rank)) if axes is None else [graph.normalize_axis("Pad", a, rank) for a in axes]
    k = len(axes)
    if len(pads) != 2 * k:
        raise LatheError(f"{n.where}: pads has {len(pads)} values, expected {2 * k}")
    width = [[0, 0] for _ in range(rank)]
    for a, b, e in zip(axes, pads[:k], pads[k:]):
        width[a] = [int(b), int(e)]
    if any(b < 0 or e < 0 for b, e in width):
        begin = [max(0, -b) for b, _ in width]
        end = [d - max(0, -e) for d, (_, e) in zip(xs, width)]
        x = n.emit("strided_slice", x, begin=begin, end=end)
        width = [[max(0, b), max(0, e)] for b, e in width]
    mode = n.attr("mode", "constant")
    modes = {"constant": "constant", "edge": "edge", "reflect": "reflect"}
    if mode not in modes:
        raise n.unsupported(f"mode={mode!r}")
    if all(b == 0 and e == 0 for b, e in width):
        return x
    value = _plain(value)
    value = float(value) if _dtype(x).startswith("float") else int(value)
    return n.emit("nn.pad", x, pad_width=width, pad_value=value, pad_mode=modes[mode])


@converts("Pad")
def _pad_v2(n: Node):
    return _pad(n, n.attr("pads", n.attr("paddings", [])), n.attr("value", 0.0))


@converts("Pad", since=11)
def _pad_v11(n: Node):
    """pads (and the constant value, and from opset 18 the axes) became inputs."""
    value = n.const(2, "padding value") if n.has(2) else None
    axes = n.ints(3, "axes") if n.has(3) else None
    return _pad(n, n.ints(1, "pads"), 0 if value is None else value.reshape(-1)[0], axes)


# -- reductions -----------------------------------------------------------------------------


def _reduce_axes(n: Node, axes_input_since: int) -> list[int] | None:
    """The axes to reduce (None: all), or [] for identity (empty axes with noop_with_empty_axes)."""
    if n.opset >= axes_input_since:
        axes = n.ints(1, "axes") if n.has(1) else []
    else:
        axes = list(n.attr("axes", []))
    if not axes:
        return [] if n.attr("noop_with_empty_axes", 0) else None
    return axes


def _reduce(build: Callable[[Node, SSAValue, list[int] | None, bool], SSAValue], axes_input_since: int = 18):
    def convert(n: Node):
        x = n.x(0)
        axes = _reduce_axes(n, axes_input_since)
        if axes == []:
            return x
        return build(n, x, axes, bool(n.attr("keepdims", 1)))
    return convert


def _simple_reduce(relay: str):
    def build(n, x, axes, keepdims):
        return n.emit(relay, x, axis=axes, keepdims=keepdims)
    return build


def _sum_of(n: Node, x: SSAValue, axes, keepdims) -> SSAValue:
    return n.emit("sum", x, axis=axes, keepdims=keepdims)


def _reduce_l1(n, x, axes, keepdims):
    return _sum_of(n, n.emit("abs", x), axes, keepdims)


def _reduce_sum_square(n, x, axes, keepdims):
    return _sum_of(n, n.emit("multiply", x, x), axes, keepdims)


def _reduce_l2(n, x, axes, keepdims):
    return n.emit("sqrt", _reduce_sum_square(n, x, axes, keepdims))


def _reduce_log_sum(n, x, axes, keepdims):
    return n.emit("log", _sum_of(n, x, axes, keepdims))


def _reduce_log_sum_exp(n, x, axes, keepdims):
    """max + log(sum(exp(x − max))), which does not overflow."""
    m = n.emit("max", x, axis=axes, keepdims=True)
    s = n.emit("log", n.emit("sum", n.emit("exp", n.emit("subtract", x, m)), axis=axes, keepdims=True))
    y = n.emit("add", s, m)
    return y if keepdims else n.emit("squeeze", y, axis=axes if axes is not None else list(range(len(_shape(x)))))


converts("ReduceSum")(_reduce(_simple_reduce("sum"), axes_input_since=13))
for _op, _relay in {"ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod"}.items():
    converts(_op)(_reduce(_simple_reduce(_relay)))
for _op, _build in {"ReduceL1": _reduce_l1, "ReduceL2": _reduce_l2, "ReduceSumSquare": _reduce_sum_square,
                    "ReduceLogSum": _reduce_log_sum, "ReduceLogSumExp": _reduce_log_sum_exp}.items():
    converts(_op)(_reduce(_build))


def _arg_reduce(relay: str):
    """Lathe's argmax/argmin give int32 (as Relay's); ONNX wants int64."""
    def convert(n: Node):
        y = n.emit(relay, n.x(0), axis=[n.attr("axis", 0)], keepdims=bool(n.attr("keepdims", 1)),
                   select_last_index=bool(n.attr("select_last_index", 0)))
        return n.emit("cast", y, dtype="int64")
    return convert


converts("ArgMax")(_arg_reduce("argmax"))
converts("ArgMin")(_arg_reduce("argmin"))


# -- shapes ----------------------------------------------------------------------------------


def _reshape_target(n: Node, xs: list[int], shape: Sequence[int], allowzero: bool) -> list[int]:
    """ONNX Reshape's target: the graph dialect's rule, with allowzero, errors located at the node."""
    try:
        return graph.reshape_target("Reshape", xs, [int(d) for d in shape], allowzero)
    except graph.ShapeError as e:
        raise LatheError(f"{n.where}: shape mismatch: {e}") from None


@converts("Reshape")
def _reshape_v1(n: Node):
    return _reshape(n, n.x(0), _reshape_target(n, n.shape(0), n.attr("shape", []), False))


@converts("Reshape", since=5)
def _reshape_v5(n: Node):
    """The shape became an input: 0 copies the input's dimension (unless allowzero, opset 14), −1 is inferred."""
    target = _reshape_target(n, n.shape(0), n.ints(1, "shape"), bool(n.attr("allowzero", 0)))
    return _reshape(n, n.x(0), target)


@converts("Flatten")
def _flatten(n: Node):
    xs = n.shape(0)
    axis = n.attr("axis", 1)
    axis = axis + len(xs) if axis < 0 else axis
    return _reshape(n, n.x(0), [math.prod(xs[:axis]), math.prod(xs[axis:])])


@converts("Transpose")
def _transpose(n: Node):
    x = n.x(0)
    perm = n.attr("perm", list(range(len(_shape(x))))[::-1])
    return x if list(perm) == list(range(len(perm))) else n.emit("transpose", x, axes=list(perm))


def _squeeze(n: Node, axes: list[int] | None):
    x = n.x(0)
    xs = _shape(x)
    if axes is None:
        axes = [d for d, s in enumerate(xs) if s == 1]
    axes = sorted({graph.normalize_axis("Squeeze", a, len(xs)) for a in axes})
    for a in axes:
        if xs[a] != 1:
            raise LatheError(f"{n.where}: shape mismatch: cannot squeeze axis {a} of size {xs[a]} in {xs}")
    return _reshape(n, x, [s for d, s in enumerate(xs) if d not in axes])


def _unsqueeze(n: Node, axes: list[int]):
    x = n.x(0)
    xs = _shape(x)
    rank = len(xs) + len(axes)
    axes = sorted({graph.normalize_axis("Unsqueeze", a, rank) for a in axes})
    it = iter(xs)
    return _reshape(n, x, [1 if d in axes else next(it) for d in range(rank)])


@converts("Squeeze")
def _squeeze_v1(n: Node):
    return _squeeze(n, n.attr("axes"))


@converts("Squeeze", since=13)
def _squeeze_v13(n: Node):
    return _squeeze(n, n.ints(1, "axes") if n.has(1) else None)


@converts("Unsqueeze")
def _unsqueeze_v1(n: Node):
    return _unsqueeze(n, n.attr("axes", []))


@converts("Unsqueeze", since=13)
def _unsqueeze_v13(n: Node):
    return _unsqueeze(n, n.ints(1, "axes"))


@converts("Concat")
def _concat(n: Node):
    xs = [n.x(i) for i in range(len(n.inputs)) if n.has(i)]
    if len(xs) == 1:
        return xs[0]
    return n.emit("concatenate", n.emit("tuple", *xs), axis=n.attr("axis"))


def _split(n: Node, sizes: Sequence[int] | None, num_outputs: int | None = None):
    x = n.x(0)
    xs = _shape(x)
    axis = graph.normalize_axis("Split", n.attr("axis", 0), len(xs))
    total = xs[axis]
    count = num_outputs or len(n.outputs)
    if sizes is None:
        if num_outputs:  # opset 18: ceil-sized chunks, the last one smaller
            chunk = -(-total // count)
            sizes = [min(chunk, max(0, total - chunk * k)) for k in range(count)]
        else:
            if total % count:
                raise LatheError(f"{n.where}: shape mismatch: {total} elements on axis {axis} cannot be split "
                                 f"into {count} equal parts")
            sizes = [total // count] * count
    sizes = [int(s) for s in sizes]
    if sum(sizes) != total:
        raise LatheError(f"{n.where}: shape mismatch: split sizes {sizes} do not add up to {total} (axis {axis})")
    if len(sizes) == 1:
        return [x]
    cuts = list(np.cumsum(sizes)[:-1])
    parts = n.emit("split", x, indices_or_sections=cuts, axis=axis)
    return [n.emit("tuple_get_item", parts, index=k) for k in range(len(sizes))]


@converts("Split")
def _split_v2(n: Node):
    return _split(n, n.attr("split"))


@converts("Split", since=13)
def _split_v13(n: Node):
    return _split(n, n.ints(1, "split") if n.has(1) else None)


@converts("Split", since=18)
def _split_v18(n: Node):
    return _split(n, n.ints(1, "split") if n.has(1) else None, n.attr("num_outputs"))


def _slice(n: Node, starts, ends, axes, steps):
    """strided_slice with the bounds clamped here, as ONNX (and numpy) clamp them."""
    x = n.x(0)
    xs = _shape(x)
    rank = len(xs)
    axes = list(range(len(starts))) if axes is None else [graph.normalize_axis("Slice", int(a), rank) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise LatheError(f"{n.where}: starts, ends, axes and steps must have one value per sliced axis")
    begin, end, strides = [], [], []
    for a, b, e, s in zip(axes, starts, ends, steps):
        if s == 0:
            raise LatheError(f"{n.where}: a slice step cannot be 0")
        start, stop, step = slice(int(b), int(e), s).indices(xs[a])
        begin.append(start)
        # a negative step that runs through index 0 stops at -1, which strided_slice would read from the end
        end.append(-xs[a] - 1 if stop < 0 else stop)
        strides.append(step)
    return n.emit("strided_slice", x, begin=begin, end=end, strides=strides, axes=axes)


@converts("Slice")
def _slice_v1(n: Node):
    starts = n.attr("starts")
    return _slice(n, starts, n.attr("ends"), n.attr("axes"), None)


@converts("Slice", since=10)
def _slice_v10(n: Node):
    """starts, ends, axes and steps became inputs."""
    return _slice(n, n.ints(1, "starts"), n.ints(2, "ends"), n.ints(3, "axes") if n.has(3) else None,
                  n.ints(4, "steps") if n.has(4) else None)


def _normalized_indices(n: Node, i: int, size: int) -> SSAValue:
    """Index input i with negative entries counted from the end of an axis of `size`."""
    if n.known(i):
        idx = n.const(i, "indices")
        if np.any(idx < 0):
            return n.constant(np.where(idx < 0, idx + size, idx).astype(idx.dtype), "indices")
        return n.x(i)
    idx = n.x(i)
    neg = n.emit("less", idx, n.scalar(0, idx))
    return n.emit("where", neg, n.emit("add", idx, n.scalar(size, idx)), idx)


@converts("Gather")
def _gather(n: Node):
    x = n.x(0)
    xs = _shape(x)
    axis = graph.normalize_axis("Gather", n.attr("axis", 0), len(xs))
    return n.emit("take", x, _normalized_indices(n, 1, xs[axis]), axis=axis, mode="clip")


@converts("GatherElements")
def _gather_elements(n: Node):
    x = n.x(0)
    xs = _shape(x)
    axis = graph.normalize_axis("GatherElements", n.attr("axis", 0), len(xs))
    return n.emit("gather", x, _normalized_indices(n, 1, xs[axis]), axis=axis)


@converts("Tile")
def _tile(n: Node):
    reps = n.ints(1, "repeats")
    x = n.x(0)
    return x if all(r == 1 for r in reps) else n.emit("tile", x, reps=reps)


@converts("Expand")
def _expand(n: Node):
    """ONNX broadcasts both ways: the result has the broadcast of the input shape and `shape`."""
    x = n.x(0)
    shape = n.ints(1, "shape")
    try:
        out = list(np.broadcast_shapes(tuple(_shape(x)), tuple(shape)))
    except ValueError:
        raise LatheError(f"{n.where}: shape mismatch: {_shape(x)} cannot be expanded to {shape}") from None
    return x if out == _shape(x) else n.emit("broadcast_to", x, shape=out)


@converts("Shape")
def _shape_op(n: Node):
    s = n.shape(0)
    start, end = n.attr("start", 0), n.attr("end", None)
    return np.asarray(s[start:end] if end is not None else s[start:], dtype=np.int64)


@converts("Size")
def _size(n: Node):
    return np.asarray(math.prod(n.shape(0)), dtype=np.int64)


@converts("ConstantOfShape")
def _constant_of_shape(n: Node):
    shape = n.ints(0, "shape")
    value = n.attr("value", np.zeros(1, dtype=np.float32))
    value = np.asarray(value).reshape(-1)
    if math.prod(shape) <= FOLD_LIMIT:
        return np.full(shape, value[0], dtype=value.dtype)
    dt = _dtype_of_array(value, f"{n.where}: value")
    return n.emit("full", n.scalar(value[0], dt), shape=shape, dtype=dt)


@converts("Constant")
def _constant(n: Node):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value",
                "value_string", "value_strings"):
        if key not in n.attrs:
            continue
        v = n.attrs[key]
        if key == "sparse_value":
            return _sparse_to_dense(v)
        if key in ("value_float", "value_floats"):
            return np.asarray(v, dtype=np.float32)
        if key in ("value_int", "value_ints"):
            return np.asarray(v, dtype=np.int64)
        if key in ("value_string", "value_strings"):
            return np.asarray(v, dtype=object)
        return np.asarray(v)
    raise LatheError(f"{n.where}: a Constant needs a value attribute")


@converts("Range", since=11)
def _range(n: Node):
    start, limit, delta = (n.const(i, name).reshape(()) for i, name in enumerate(("start", "limit", "delta")))
    return np.arange(start, limit, delta, dtype=np.result_type(start, limit, delta))


@converts("Identity")
def _identity(n: Node):
    return n.imp.known[n.inputs[0]] if n.known(0) else n.x(0)


@converts("Dropout")
def _dropout(n: Node):
    """Identity at inference; the mask, when asked for, keeps everything."""
    if n.opset >= 12 and n.has(2):
        training = n.const(2, "training_mode")
        ratio = n.opt_const(1)
        if bool(training.reshape(-1)[0]) and (ratio is None or float(ratio.reshape(-1)[0]) != 0.0):
            raise n.unsupported("training_mode=True (random dropout)")
    x = n.x(0)
    if not n.wants(1):
        return x
    return [x, n.emit("ones", shape=_shape(x), dtype="bool")]


# -- resize ----------------------------------------------------------------------------------


def _resize(n: Node, x: SSAValue, sizes: list[int], method: str, coord: str, rounding: str):
    """image.resize2d on the two scaled axes: NCHW (axes 2, 3) or NHWC (1, 2); rank 3 as (N, C, 1, W)."""
    xs = _shape(x)
    if len(sizes) != len(xs):
        raise LatheError(f"{n.where}: {len(sizes)} output sizes for rank-{len(xs)} data")
    if sizes == xs:
        return x
    changed = [d for d in range(len(xs)) if sizes[d] != xs[d]]
    if len(xs) == 3 and changed == [2]:
        y = _resize(n, _to_2d_spatial(n, x), [xs[0], xs[1], 1, sizes[2]], method, coord, rounding)
        return _reshape(n, y, sizes)
    if len(xs) != 4:
        raise n.unsupported(f"resizing rank-{len(xs)} data")
    if set(changed) <= {2, 3}:
        layout, size = "NCHW", sizes[2:]
    elif set(changed) <= {1, 2}:
        layout, size = "NHWC", sizes[1:3]
    else:
        raise n.unsupported(f"resizing axes {changed} (two of the last three axes of 4-D data are)")
    if method == "nearest_neighbor":
        return n.emit("image.resize2d", x, size=size, layout=layout, method=method,
                      coordinate_transformation_mode=coord, rounding_method=rounding)
    return n.emit("image.resize2d", x, size=size, layout=layout, method=method, coordinate_transformation_mode=coord)


def _sizes_from_scales(n: Node, xs: list[int], scales: Sequence[float]) -> list[int]:
    """floor(size · scale), refusing scales whose coordinate mapping resize2d cannot express.

    resize2d maps coordinates with in/out; ONNX maps them with 1/scale. The
    two agree only when size · scale is a whole number.
    """
    if len(scales) != len(xs):
        raise LatheError(f"{n.where}: {len(scales)} scales for rank-{len(xs)} data")
    out = []
    for d, s in zip(xs, scales):
        exact = d * float(s)
        size = int(math.floor(exact + 1e-9))
        if abs(exact - round(exact)) > 1e-6 * max(1.0, exact):
            raise n.unsupported(f"scale {float(s):g} on an axis of size {d} (a fractional output size {exact:g})")
        out.append(size)
    return out


_RESIZE_MODES = {"nearest": "nearest_neighbor", "linear": "linear", "bilinear": "linear"}


def _resize_method(n: Node) -> str:
    mode = n.attr("mode", "nearest")
    if mode not in _RESIZE_MODES:
        raise n.unsupported(f"mode={mode!r}")
    return _RESIZE_MODES[mode]


@converts("Upsample")
def _upsample_v7(n: Node):
    """Upsample (until opset 10): asymmetric coordinates, nearest rounds down."""
    xs = n.shape(0)
    scales = n.attr("scales") if n.opset < 9 else [float(s) for s in n.const(1, "scales").reshape(-1)]
    return _resize(n, n.x(0), _sizes_from_scales(n, xs, scales), _resize_method(n), "asymmetric", "floor")


@converts("Resize", since=10)
def _resize_v10(n: Node):
    """Resize-10 is Upsample with scales as an input."""
    xs = n.shape(0)
    scales = [float(s) for s in n.const(1, "scales").reshape(-1)]
    return _resize(n, n.x(0), _sizes_from_scales(n, xs, scales), _resize_method(n), "asymmetric", "floor")


_NEAREST_MODES = {"round_prefer_floor": "round_prefer_floor", "round_prefer_ceil": "round_prefer_ceil",
                  "floor": "floor", "ceil": "ceil"}
_COORD_MODES = ("half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel", "tf_half_pixel_for_nn")


@converts("Resize", since=11)
def _resize_v11(n: Node):
    """roi, scales and sizes inputs; coordinate_transformation_mode, nearest_mode; axes and the
    keep_aspect_ratio_policy from opset 18."""
    xs = n.shape(0)
    method = _resize_method(n)
    coord = n.attr("coordinate_transformation_mode", "half_pixel")
    if coord not in _COORD_MODES:
        raise n.unsupported(f"coordinate_transformation_mode={coord!r}")
    nearest = n.attr("nearest_mode", "round_prefer_floor")
    if nearest not in _NEAREST_MODES:
        raise n.unsupported(f"nearest_mode={nearest!r}")
    if n.attr("antialias", 0) and method == "linear":
        raise n.unsupported("antialias=1")
    rank = len(xs)
    axes = [graph.normalize_axis("Resize", a, rank) for a in n.attr("axes", list(range(rank)))]
    scales = n.const(2, "scales") if n.has(2) else None
    sizes = n.const(3, "sizes") if n.has(3) else None
    if sizes is not None and sizes.size:
        out = _sizes_with_policy(n, [xs[a] for a in axes], [int(s) for s in sizes.reshape(-1)])
    elif scales is not None and scales.size:
        out = _sizes_from_scales(n, [xs[a] for a in axes], [float(s) for s in scales.reshape(-1)])
    else:
        raise LatheError(f"{n.where}: one of scales and sizes is required")
    full = list(xs)
    for a, s in zip(axes, out):
        full[a] = s
    return _resize(n, n.x(0), full, method, coord, _NEAREST_MODES[nearest])


def _sizes_with_policy(n: Node, xs: list[int], sizes: list[int]) -> list[int]:
    policy = n.attr("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return sizes
    if policy not in ("not_larger", "not_smaller"):
        raise n.unsupported(f"keep_aspect_ratio_policy={policy!r}")
    ratios = [s / d for s, d in zip(sizes, xs)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    return _sizes_from_scales(n, xs, [scale] * len(xs))


# -- more elementwise and shape ops -----------------------------------------------------------------


@converts("Mod", since=10)
def _mod(n: Node):
    """fmod=1: the remainder takes the dividend's sign (C's fmod); fmod=0: the divisor's (Python's %).

    a − q·b with q the quotient truncated (fmod=1) or floored (fmod=0); Lathe's integer divide
    truncates, and an integer remainder with the wrong sign moves by b."""
    a, b = n.x(0), n.x(1)
    fmod = bool(n.attr("fmod", 0))
    q = n.emit("divide", a, b)
    if _dtype(a).startswith("float"):
        q = n.emit("where", n.emit("less", q, n.scalar(0, q)), n.emit("ceil", q), n.emit("floor", q)) if fmod \
            else n.emit("floor", q)
        return n.emit("subtract", a, n.emit("multiply", q, b))
    r = n.emit("subtract", a, n.emit("multiply", q, b))
    if fmod:
        return r
    wrong_sign = n.emit("logical_and", n.emit("not_equal", r, n.scalar(0, r)),
                        n.emit("not_equal", n.emit("less", r, n.scalar(0, r)), n.emit("less", b, n.scalar(0, b))))
    return n.emit("where", wrong_sign, n.emit("add", r, b), r)


@converts("Sign")
def _sign(n: Node):
    x = n.x(0)
    neg = n.emit("where", n.emit("less", x, n.scalar(0, x)), n.scalar(-1, x), n.scalar(0, x))
    return n.emit("where", n.emit("greater", x, n.scalar(0, x)), n.scalar(1, x), neg)


@converts("IsNaN")
def _is_nan(n: Node):
    x = n.x(0)
    return n.emit("not_equal", x, x)


@converts("IsInf", since=10)
def _is_inf(n: Node):
    """|x| beyond the largest finite value (Relay text has no literal for infinity)."""
    x = n.x(0)
    big = float(np.finfo(_dtype(x)).max)
    pos = n.emit("greater", x, n.scalar(big, x)) if n.attr("detect_positive", 1) else None
    neg = n.emit("less", x, n.scalar(-big, x)) if n.attr("detect_negative", 1) else None
    if pos is not None and neg is not None:
        return n.emit("logical_or", pos, neg)
    if pos is None and neg is None:
        return n.emit("zeros", shape=_shape(x), dtype="bool")
    return pos if pos is not None else neg


@converts("Celu", since=12)
def _celu(n: Node):
    """max(0, x) + min(0, alpha·(exp(x / alpha) − 1))."""
    x = n.x(0)
    alpha = float(n.attr("alpha", 1.0))
    em1 = n.emit("subtract", n.emit("exp", n.emit("divide", x, n.scalar(alpha, x))), n.scalar(1.0, x))
    low = n.emit("minimum", n.emit("multiply", em1, n.scalar(alpha, x)), n.scalar(0.0, x))
    return n.emit("add", n.emit("nn.relu", x), low)


@converts("Shrink", since=9)
def _shrink(n: Node):
    """x + bias below −lambd, x − bias above lambd, 0 between."""
    x = n.x(0)
    lambd, bias = float(n.attr("lambd", 0.5)), float(n.attr("bias", 0.0))
    low = n.emit("where", n.emit("less", x, n.scalar(-lambd, x)), n.emit("add", x, n.scalar(bias, x)), n.scalar(0, x))
    return n.emit("where", n.emit("greater", x, n.scalar(lambd, x)), n.emit("subtract", x, n.scalar(bias, x)), low)


@converts("Mish", since=18)
def _mish(n: Node):
    x = n.x(0)
    return n.emit("multiply", x, n.emit("tanh", _softplus(n, x)))


def _iota(n: Node, size: int, axis: int, rank: int, dtype) -> SSAValue:
    """0, 1, ..., size − 1 along `axis` of a rank-`rank` constant (1 elsewhere)."""
    shape = [1] * rank
    shape[axis] = size
    return n.constant(np.arange(size, dtype=dtype).reshape(shape), "iota")


def _hardmax_axis(n: Node, x: SSAValue, axis: int) -> SSAValue:
    """1 at the first maximum along `axis`, 0 elsewhere."""
    xs = _shape(x)
    axis = graph.normalize_axis("Hardmax", axis, len(xs))
    am = n.emit("argmax", x, axis=[axis], keepdims=True)
    hit = n.emit("equal", am, _iota(n, xs[axis], axis, len(xs), np.int32))
    return n.emit("cast", hit, dtype=_dtype(x))


@converts("Hardmax")
def _hardmax_v1(n: Node):
    """Before opset 13: on the 2-D view flattened at `axis` (default 1)."""
    x = n.x(0)
    xs = _shape(x)
    axis = graph.normalize_axis("Hardmax", n.attr("axis", 1), len(xs))
    y = _hardmax_axis(n, _reshape(n, x, [math.prod(xs[:axis]), math.prod(xs[axis:])]), 1)
    return _reshape(n, y, xs)


@converts("Hardmax", since=13)
def _hardmax_v13(n: Node):
    return _hardmax_axis(n, n.x(0), n.attr("axis", -1))


@converts("DepthToSpace")
def _depth_to_space(n: Node):
    """(N, C, H, W) → (N, C/b², H·b, W·b); DCR (default) takes depth as (b, b, C'), CRD as (C', b, b)."""
    x = n.x(0)
    b = n.attr("blocksize")
    nb, c, h, w = _shape(x)
    if n.attr("mode", "DCR") == "CRD":
        y = n.emit("transpose", _reshape(n, x, [nb, c // (b * b), b, b, h, w]), axes=[0, 1, 4, 2, 5, 3])
    else:
        y = n.emit("transpose", _reshape(n, x, [nb, b, b, c // (b * b), h, w]), axes=[0, 3, 4, 1, 5, 2])
    return _reshape(n, y, [nb, c // (b * b), h * b, w * b])


@converts("SpaceToDepth")
def _space_to_depth(n: Node):
    """The inverse of DepthToSpace: DCR (default) puts the block offsets before the channel, CRD after."""
    x = n.x(0)
    b = n.attr("blocksize")
    nb, c, h, w = _shape(x)
    perm = [0, 1, 3, 5, 2, 4] if n.attr("mode", "DCR") == "CRD" else [0, 3, 5, 1, 2, 4]
    y = n.emit("transpose", _reshape(n, x, [nb, c, h // b, b, w // b, b]), axes=perm)
    return _reshape(n, y, [nb, c * b * b, h // b, w // b])


@converts("EyeLike", since=9)
def _eye_like(n: Node):
    from onnx import helper

    rows, cols = n.shape(0)
    if "dtype" in n.attrs:
        dtype = helper.tensor_dtype_to_np_dtype(n.attr("dtype"))
    else:
        dtype = _np_dtype_name(_dtype_of_value(n, 0))
    return np.eye(rows, cols, k=n.attr("k", 0), dtype=dtype)


def _np_dtype_name(lathe_dtype: str) -> np.dtype:
    return np.dtype("bool" if lathe_dtype == "bool" else lathe_dtype)


@converts("OneHot", since=9)
def _one_hot(n: Node):
    """where(indices == iota, on, off) along a new axis; negative indices count from depth."""
    idx = n.x(0)
    depth = int(np.asarray(n.const(1, "depth")).reshape(-1)[0])
    if _dtype(idx) not in ("int32", "int64"):
        idx = n.emit("cast", idx, dtype="int64")
    idx = n.emit("where", n.emit("less", idx, n.scalar(0, idx)), n.emit("add", idx, n.scalar(depth, idx)), idx)
    rank = len(_shape(idx)) + 1
    axis = graph.normalize_axis("OneHot", n.attr("axis", -1), rank)
    idx = _reshape(n, idx, _shape(idx)[:axis] + [1] + _shape(idx)[axis:])
    hit = n.emit("equal", idx, _iota(n, depth, axis, rank, _np_dtype_name(_dtype(idx))))
    values = n.x(2)
    off = n.emit("reshape", n.emit("strided_slice", values, begin=[0], end=[1]), newshape=[])
    on = n.emit("reshape", n.emit("strided_slice", values, begin=[1], end=[2]), newshape=[])
    return n.emit("where", hit, on, off)


@converts("LpNormalization")
def _lp_normalization(n: Node):
    x = n.x(0)
    axis = n.attr("axis", -1)
    p = n.attr("p", 2)
    if p == 1:
        norm = n.emit("sum", n.emit("abs", x), axis=[axis], keepdims=True)
    elif p == 2:
        norm = n.emit("sqrt", n.emit("sum", n.emit("multiply", x, x), axis=[axis], keepdims=True))
    else:
        raise n.unsupported(f"p={p}")
    zero = n.emit("equal", norm, n.scalar(0, norm))  # a zero vector stays zero
    return n.emit("where", zero, n.scalar(0, x), n.emit("divide", x, norm))


@converts("Trilu", since=14)
def _trilu(n: Node):
    """Keep the upper (or lower) triangle from diagonal k of the last two axes: a constant mask."""
    x = n.x(0)
    rows, cols = _shape(x)[-2:]
    k = int(n.const(1, "k").reshape(-1)[0]) if n.has(1) else 0
    mask = np.triu(np.ones((rows, cols), bool), k) if n.attr("upper", 1) else np.tril(np.ones((rows, cols), bool), k)
    return n.emit("where", n.constant(mask, "mask"), x, n.scalar(0, x))


@converts("RMSNormalization", since=23)
def _rms_norm(n: Node):
    """x / √(mean(x²) over axes [axis, rank) + ε) · scale."""
    x = n.x(0)
    xs = _shape(x)
    axis = graph.normalize_axis("RMSNormalization", n.attr("axis", -1), len(xs))
    ms = n.emit("mean", n.emit("multiply", x, x), axis=list(range(axis, len(xs))), keepdims=True)
    inv = n.emit("rsqrt", n.emit("add", ms, n.scalar(float(n.attr("epsilon", 1e-5)), x)))
    return n.emit("multiply", n.emit("multiply", x, inv), n.x(1))


# -- recurrent layers --------------------------------------------------------------------------


_ACTIVATIONS_WITH_ALPHA = {"LeakyRelu", "ThresholdedRelu", "Elu", "Affine", "ScaledTanh", "HardSigmoid"}
_ACTIVATIONS_WITH_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
_ACTIVATION_DEFAULTS = {"LeakyRelu": (0.01, None), "ThresholdedRelu": (1.0, None), "Elu": (1.0, None),
                        "HardSigmoid": (0.2, 0.5), "Affine": (1.0, 0.0), "ScaledTanh": (1.0, 1.0)}


def _activation(n: Node, name: str, alpha, beta) -> Callable[[SSAValue], SSAValue]:
    """An RNN gate activation by its ONNX name, as a function of a value."""
    da, db = _ACTIVATION_DEFAULTS.get(name, (None, None))
    alpha = da if alpha is None else alpha
    beta = db if beta is None else beta
    simple = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "nn.relu"}
    if name in simple:
        return lambda v: n.emit(simple[name], v)
    if name == "LeakyRelu":
        return lambda v: n.emit("nn.leaky_relu", v, alpha=float(alpha))
    if name == "ThresholdedRelu":
        return lambda v: n.emit("where", n.emit("greater", v, n.scalar(alpha, v)), v, n.scalar(0.0, v))
    if name == "Elu":
        return lambda v: _elu(n, v, float(alpha))
    if name == "HardSigmoid":
        return lambda v: _hard_sigmoid(n, v, float(alpha), float(beta))
    if name == "Affine":
        return lambda v: n.emit("add", n.emit("multiply", v, n.scalar(alpha, v)), n.scalar(beta, v))
    if name == "ScaledTanh":
        return lambda v: n.emit("multiply", n.emit("tanh", n.emit("multiply", v, n.scalar(beta, v))),
                                n.scalar(alpha, v))
    if name == "Softsign":
        return lambda v: n.emit("divide", v, n.emit("add", n.emit("abs", v), n.scalar(1.0, v)))
    if name == "Softplus":
        return lambda v: _softplus(n, v)
    raise n.unsupported(f"the activation {name!r}")


class _Recurrent:
    """What LSTM, GRU and RNN share: layouts, directions, weights per direction, unrolling, outputs.

    The sequence length is static, so each step becomes its own ops: the input
    projections of all steps are one nn.dense, and each step adds the
    recurrent nn.dense and applies the gates with strided_slice and
    elementwise ops.
    """

    def __init__(self, n: Node, gates: int, default_activations: list[str]) -> None:
        self.n = n
        self.gates = gates
        direction = n.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise n.unsupported(f"direction={direction!r}")
        self.directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        self.layout = n.attr("layout", 0)
        x = n.x(0)
        if self.layout:
            x = n.emit("transpose", x, axes=[1, 0, 2])
        self.seq, self.batch, self.input_size = _shape(x)
        self.x = x
        r = n.x(2)
        self.hidden = n.attr("hidden_size", _shape(r)[-1])
        self.clip = n.attr("clip")
        self._check_sequence_lens()
        names = n.attr("activations", default_activations * len(self.directions))
        alphas = list(n.attr("activation_alpha", []))
        betas = list(n.attr("activation_beta", []))
        per_dir = len(default_activations)
        if len(names) != per_dir * len(self.directions):
            raise LatheError(f"{n.where}: {len(names)} activations, expected {per_dir * len(self.directions)}")
        self.activations = []
        for name in names:
            alpha = alphas.pop(0) if name in _ACTIVATIONS_WITH_ALPHA and alphas else None
            beta = betas.pop(0) if name in _ACTIVATIONS_WITH_BETA and betas else None
            self.activations.append(_activation(n, name, alpha, beta))
        self.per_dir = per_dir

    def _check_sequence_lens(self) -> None:
        n = self.n
        if not n.has(4):
            return
        lens = n.const(4, "sequence_lens")
        if np.any(lens != self.seq):
            raise n.unsupported(f"sequence_lens {lens.tolist()} shorter than the sequence ({self.seq})")

    def acts(self, d: int) -> list[Callable[[SSAValue], SSAValue]]:
        return self.activations[d * self.per_dir:(d + 1) * self.per_dir]

    def direction_slice(self, v: SSAValue, d: int, axis: int = 0) -> SSAValue:
        """v[d] along `axis` (the num_directions axis), with that axis removed."""
        s = _shape(v)
        one = self.n.emit("strided_slice", v, begin=[d], end=[d + 1], axes=[axis])
        return _reshape(self.n, one, s[:axis] + s[axis + 1:])

    def rows(self, v: SSAValue, k: int, count: int = 1) -> SSAValue:
        """Gate block(s) k..k+count of a (.., G·H) value, along its last axis."""
        h = self.hidden
        return self.n.emit("strided_slice", v, begin=[k * h], end=[(k + count) * h], axes=[len(_shape(v)) - 1])

    def weights(self, d: int) -> tuple[SSAValue, SSAValue, SSAValue | None, SSAValue | None]:
        """W (G·H, I), R (G·H, H), and the input and recurrent biases (G·H) of direction d."""
        n = self.n
        w = self.direction_slice(n.x(1), d)
        r = self.direction_slice(n.x(2), d)
        wb = rb = None
        if n.has(3):
            b = self.direction_slice(n.x(3), d)
            gh = self.gates * self.hidden
            wb = n.emit("strided_slice", b, begin=[0], end=[gh])
            rb = n.emit("strided_slice", b, begin=[gh], end=[2 * gh])
        return w, r, wb, rb

    def initial(self, i: int, d: int) -> SSAValue:
        """initial_h (i=5) or initial_c (i=6) of direction d, zeros when absent."""
        n = self.n
        if not n.has(i):
            return n.emit("zeros", shape=[self.batch, self.hidden], dtype=_dtype(self.x))
        return self.direction_slice(n.x(i), d, axis=1 if self.layout else 0)

    def input_projection(self, w: SSAValue, bias: SSAValue | None) -> SSAValue:
        """X·Wᵀ (+ bias) for all steps at once: (seq, batch, G·H)."""
        n = self.n
        flat = _reshape(n, self.x, [self.seq * self.batch, self.input_size])
        y = n.emit("nn.dense", flat, w)
        if bias is not None:
            y = n.emit("add", y, bias)
        return _reshape(n, y, [self.seq, self.batch, self.gates * self.hidden])

    def rows_of_weight(self, w: SSAValue, k: int, count: int) -> SSAValue:
        """Rows k·H..(k+count)·H of a (G·H, ·) weight."""
        h = self.hidden
        return self.n.emit("strided_slice", w, begin=[k * h], end=[(k + count) * h], axes=[0])

    def step_input(self, xw: SSAValue, t: int) -> SSAValue:
        one = self.n.emit("strided_slice", xw, begin=[t], end=[t + 1], axes=[0])
        return _reshape(self.n, one, [self.batch, self.gates * self.hidden])

    def clipped(self, v: SSAValue) -> SSAValue:
        return v if self.clip is None else self.n.emit("clip", v, a_min=-float(self.clip), a_max=float(self.clip))

    def order(self, d: int) -> list[int]:
        return list(range(self.seq)) if self.directions[d] == "forward" else list(range(self.seq))[::-1]

    def outputs(self, hs: list[list[SSAValue]], finals: list[list[SSAValue]]) -> list[SSAValue]:
        """Y (seq, dirs, batch, H) from the per-step states; Y_h (and Y_c) (dirs, batch, H); then the layout."""
        n = self.n
        h = self.hidden
        per_dir = []
        for states in hs:
            steps = [_reshape(n, s, [1, 1, self.batch, h]) for s in states]
            per_dir.append(steps[0] if len(steps) == 1 else n.emit("concatenate", n.emit("tuple", *steps), axis=0))
        y = per_dir[0] if len(per_dir) == 1 else n.emit("concatenate", n.emit("tuple", *per_dir), axis=1)
        outs = [y]
        for last in finals:
            parts = [_reshape(n, v, [1, self.batch, h]) for v in last]
            outs.append(parts[0] if len(parts) == 1 else n.emit("concatenate", n.emit("tuple", *parts), axis=0))
        if self.layout:
            outs = [n.emit("transpose", outs[0], axes=[2, 0, 1, 3])] + \
                   [n.emit("transpose", v, axes=[1, 0, 2]) for v in outs[1:]]
        return outs


@converts("RNN")
def _rnn(n: Node):
    """H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)."""
    rec = _Recurrent(n, 1, ["Tanh"])
    hs, finals = [], []
    for d in range(len(rec.directions)):
        (f,) = rec.acts(d)
        w, r, wb, rb = rec.weights(d)
        bias = n.emit("add", wb, rb) if wb is not None else None
        xw = rec.input_projection(w, bias)
        h = rec.initial(5, d)
        states: list[SSAValue | None] = [None] * rec.seq
        for t in rec.order(d):
            h = f(rec.clipped(n.emit("add", rec.step_input(xw, t), n.emit("nn.dense", h, r))))
            states[t] = h
        hs.append(states)
        finals.append(h)
    return rec.outputs(hs, [finals])


@converts("GRU")
def _gru(n: Node):
    """z = f(..z), r = f(..r), ĥ = g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh + Wbh), or with linear_before_reset
    g(X·Whᵀ + r ⊙ (H·Rhᵀ + Rbh) + Wbh); H = (1 − z) ⊙ ĥ + z ⊙ H. Gate order z, r, h."""
    rec = _Recurrent(n, 3, ["Sigmoid", "Tanh"])
    before_reset = bool(n.attr("linear_before_reset", 0))
    hs, finals = [], []
    for d in range(len(rec.directions)):
        f, g = rec.acts(d)
        w, r, wb, rb = rec.weights(d)
        xw = rec.input_projection(w, wb)
        r_zr, r_h = rec.rows_of_weight(r, 0, 2), rec.rows_of_weight(r, 2, 1)
        rb_zr = rec.rows(rb, 0, 2) if rb is not None else None
        rb_h = rec.rows(rb, 2) if rb is not None else None
        h = rec.initial(5, d)
        states: list[SSAValue | None] = [None] * rec.seq
        for t in rec.order(d):
            xt = rec.step_input(xw, t)
            hzr = n.emit("nn.dense", h, r_zr)
            if rb_zr is not None:
                hzr = n.emit("add", hzr, rb_zr)
            zr = n.emit("add", rec.rows(xt, 0, 2), hzr)
            z = f(rec.clipped(rec.rows(zr, 0)))
            reset = f(rec.clipped(rec.rows(zr, 1)))
            if before_reset:
                hh = n.emit("nn.dense", h, r_h)
                if rb_h is not None:
                    hh = n.emit("add", hh, rb_h)
                pre = n.emit("add", rec.rows(xt, 2), n.emit("multiply", reset, hh))
            else:
                hh = n.emit("nn.dense", n.emit("multiply", reset, h), r_h)
                if rb_h is not None:
                    hh = n.emit("add", hh, rb_h)
                pre = n.emit("add", rec.rows(xt, 2), hh)
            cand = g(rec.clipped(pre))
            one_minus_z = n.emit("subtract", n.scalar(1.0, z), z)
            h = n.emit("add", n.emit("multiply", one_minus_z, cand), n.emit("multiply", z, h))
            states[t] = h
        hs.append(states)
        finals.append(h)
    return rec.outputs(hs, [finals])


@converts("LSTM")
def _lstm(n: Node):
    """Gates i, o, f, c (in that order in W, R, B; peepholes P in order i, o, f):
    i = f(..i + Pi ⊙ C), f = f(..f + Pf ⊙ C) (or 1 − i with input_forget), c̃ = g(..c),
    C' = f ⊙ C + i ⊙ c̃, o = f(..o + Po ⊙ C'), H = o ⊙ h(C')."""
    rec = _Recurrent(n, 4, ["Sigmoid", "Tanh", "Tanh"])
    coupled = bool(n.attr("input_forget", 0))
    hs, hfinals, cfinals = [], [], []
    for d in range(len(rec.directions)):
        f, g, act_h = rec.acts(d)
        w, r, wb, rb = rec.weights(d)
        bias = n.emit("add", wb, rb) if wb is not None else None
        xw = rec.input_projection(w, bias)
        peep = None
        if n.has(7):
            p = rec.direction_slice(n.x(7), d)
            peep = [rec.rows(p, k) for k in range(3)]  # i, o, f
        h, c = rec.initial(5, d), rec.initial(6, d)
        states: list[SSAValue | None] = [None] * rec.seq
        for t in rec.order(d):
            gates = n.emit("add", rec.step_input(xw, t), n.emit("nn.dense", h, r))
            pre_i, pre_o, pre_f, pre_c = (rec.rows(gates, k) for k in range(4))
            if peep is not None:
                pre_i = n.emit("add", pre_i, n.emit("multiply", peep[0], c))
                pre_f = n.emit("add", pre_f, n.emit("multiply", peep[2], c))
            i = f(rec.clipped(pre_i))
            forget = n.emit("subtract", n.scalar(1.0, i), i) if coupled else f(rec.clipped(pre_f))
            c = n.emit("add", n.emit("multiply", forget, c), n.emit("multiply", i, g(rec.clipped(pre_c))))
            if peep is not None:
                pre_o = n.emit("add", pre_o, n.emit("multiply", peep[1], c))
            o = f(rec.clipped(pre_o))
            h = n.emit("multiply", o, act_h(c))
            states[t] = h
        hs.append(states)
        hfinals.append(h)
        cfinals.append(c)
    return rec.outputs(hs, [hfinals, cfinals])


SUPPORTED_OPS: list[str] = supported_ops()
