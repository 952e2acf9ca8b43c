"""The importer: one ONNX graph → one `func.func @main` in the graph dialect.

Everything that depends only on shapes and constants is computed here, at
import time: the importer keeps a table of
values known as numpy arrays (initializers, Constant nodes, Shape results,
and the results of nodes whose inputs are all known and whose outputs are
small, evaluated by running the node's own conversion through the reference
interpreter). Attribute-like inputs (Reshape's shape, Slice's starts, ...)
are read from that table, which is how PyTorch's Shape → Gather → Unsqueeze →
Concat → Reshape chains disappear.

A dimension ONNX leaves open (`dim_param`, a negative `dim_value`, or none) is a `?`
dimension, and the model then runs on the VM (docs/vm.md). Subgraphs (`If`'s
branches, `Loop`'s body) are imported into the regions of the graph dialect's
control ops, in a scope that sees the enclosing graph's values; an `If` whose
condition is known here is replaced by the branch it takes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import ChainMap
from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, FunctionType, ModuleOp, NameLoc, StringAttr, TensorType, UnknownLoc
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from lathe.dialects import dtypes, graph
from lathe.errors import LatheError
from lathe.frontends.onnx.names import sanitize
from lathe.frontends.onnx.registry import (
    Converter,
    NeedsConstant,
    Unsupported,
    converter,
    first_opset,
)

FOLD_LIMIT = 1024
"""Results of nodes whose inputs are all known are computed at import time when
they have at most this many elements; larger ones stay in the graph (so that
weights are not duplicated into derived copies)."""

# ---------------------------------------------------------------------------
# dtypes

# the dtypes are dialects/dtypes.py's, which has each one's TensorProto code
_ONNX_DTYPES = {d.onnx: d.name for d in dtypes.TABLE}
_NP_TO_LATHE = {d.numpy: d.name for d in dtypes.TABLE}


def _onnx_dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"


def lathe_dtype(elem_type: int, what: str) -> str:
    if elem_type not in _ONNX_DTYPES:
        raise LatheError(
            f"{what} has ONNX type {_onnx_dtype_name(elem_type)}, which Lathe does not support",
            note="supported: " + ", ".join(sorted(set(_ONNX_DTYPES.values()))),
        )
    return _ONNX_DTYPES[elem_type]


def dtype_of_array(a: np.ndarray, what: str) -> str:
    if a.dtype not in _NP_TO_LATHE:
        raise LatheError(
            f"{what} has dtype {a.dtype}, which Lathe does not support",
            note="supported: " + ", ".join(sorted(set(_NP_TO_LATHE.values()))),
        )
    return _NP_TO_LATHE[a.dtype]


def plain(v):
    """numpy scalars and arrays → Python ints, floats, bools and lists (for op attributes)."""
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _numel(t) -> int:
    return math.prod(t.get_shape()) if isinstance(t, TensorType) and not graph.is_dynamic(t) else -1


class ShapeHintWarning(UserWarning):
    """A graph output whose declared shape is not the one the imported graph computes: ONNX
    Runtime warns and runs the model, and so does Lathe."""


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
        self.location = NameLoc(StringAttr(self.name), UnknownLoc())  # the location of every op it becomes

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
        return NeedsConstant(
            f"{self.where}: a {what} computed at run time (input '{self.inputs[i]}') is not supported; "
            "Lathe needs it known at import time",
            self.inputs[i],
        )

    def ints(self, i: int, what: str) -> list[int]:
        return [int(v) for v in np.asarray(self.const(i, what)).reshape(-1)]

    def shape(self, i: int) -> list[int]:
        """Input i's dimensions, DYNAMIC_INDEX for a `?`."""
        return self.imp.shape_of(self.inputs[i])

    def subgraph(
        self, name: str, args: Sequence[tuple[str, Attribute]] = (), inline: bool = False
    ) -> tuple[Block, list[SSAValue]]:
        """Graph attribute `name` imported into a new block whose arguments are `args` (ONNX
        name, type), or with `inline` into the current one: the block and the values of the
        subgraph's outputs."""
        g = self.attrs.get(name)
        if g is None:
            raise LatheError(f"{self.where}: attribute '{name}' (a graph) is required")
        return self.imp.subgraph(g.g, args, inline)

    def dyn(
        self, op: str, data: list[SSAValue], values: list[tuple[str, str, int | SSAValue]], result, **attrs
    ) -> SSAValue:
        """A graph op whose attributes `values` ((attribute, form, input index or a value computed
        from inputs) each) are known only at run time: a `graph.dyn` of declared type `result`
        (dimensions the values decide are `?`), built per value by the VM (docs/vm.md)."""
        given = [(a, form, i if isinstance(i, SSAValue) else self.x(i)) for a, form, i in values]
        new = graph.DynOp.build(op, data, given, {k: plain(v) for k, v in attrs.items()}, result)
        new.location = self.location
        self.imp.add(new)
        return new.result

    def length(self, i: int, what: str) -> int:
        """How many values input i (a run-time vector of axes, sizes, ...) has, from its type."""
        shape = self.shape(i)
        if len(shape) > 1 or DYNAMIC_INDEX in shape:
            raise LatheError(f"{self.where}: the {what} must be a vector of known length, got {shape}")
        return shape[0] if shape else 1

    @property
    def has_subgraphs(self) -> bool:
        """Whether the node has graph attributes, which read values of the enclosing graph
        that are not among its inputs (so it is never evaluated at import time in isolation)."""
        return any(a.type in (a.GRAPH, a.GRAPHS) for a in self.proto.attribute)

    def known(self, i: int) -> bool:
        return self.has(i) and self.inputs[i] in self.imp.known

    # -- attributes ---------------------------------------------------------
    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def wants(self, k: int) -> bool:
        """Whether output k is used (present and named)."""
        return k < len(self.outputs) and self.outputs[k] != ""

    # -- building -----------------------------------------------------------
    def emit(self, kind: str | type[graph.GraphOp], *operands: SSAValue, **attrs) -> SSAValue:
        """Append a graph op, given by class or by Relay name, with attributes as Python or numpy values."""
        relay_name = kind if isinstance(kind, str) else kind.relay_name()
        op = graph.make_op(relay_name, operands, **{k: plain(v) for k, v in attrs.items()})
        op.location = self.location  # a profile names the ONNX node a kernel's time comes from
        self.imp.add(op)
        return op.results[0]

    def scalar(self, value, like: SSAValue | str) -> SSAValue:
        """A rank-0 constant with the element type of `like` (a value or a dtype name)."""
        dt = graph.DTYPES[like] if isinstance(like, str) else like.type.element_type  # type: ignore[union-attr]
        op = graph.ConstantOp.scalar(plain(value), dt)
        self.imp.add(op)
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
        except Exception as e:  # noqa: BLE001 - a truncated or otherwise unreadable tensor
            raise LatheError(f"attribute '{a.name}' cannot be read: {_first_line(e)}") from None
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8", "replace") for s in v]
    return list(v) if isinstance(v, list | tuple) else v


def value_shape(v: SSAValue) -> list[int]:
    return graph.shape_of(v.type)


def value_dtype(v: SSAValue) -> str:
    return graph.dtype_name(v.type.element_type)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------
# the importer


RECURRENT_MODES = ("unroll", "loop")


class _Importer:
    def __init__(self, model, opset: int, shapes: dict[str, Sequence[int]], recurrent: str = "unroll") -> None:
        self.model = model
        self.opset = opset
        self.shapes = shapes
        self.recurrent = recurrent
        self.known: dict[str, np.ndarray] = {}
        self.values: dict[str, SSAValue] = {}
        self.body = _Body()
        self.main = self.body
        self.scope: Block | None = None  # where ops go inside a subgraph (None: the body's block)
        self.key: dict[str, tuple[int, int]] = {}
        self._extra = 0

    def add(self, op: Operation) -> None:
        (self.scope or self.body.block).add_op(op)

    def subgraph(
        self,
        g,
        args: Sequence[tuple[str, Attribute]],
        inline: bool = False,
        block: Block | None = None,
        given: dict[str, SSAValue] | None = None,
    ) -> tuple[Block, list[SSAValue]]:
        """An ONNX subgraph imported into a new block (with `inline`, into the current one, and
        without arguments; with `block`, at the end of that one, its inputs `given` as values
        already in it): its names are local to it, the enclosing graph's values are read
        directly (the control ops' regions are not isolated)."""
        from onnx import numpy_helper

        if block is None:
            block = (self.scope or self.body.block) if inline else Block(arg_types=[t for _, t in args])
        saved = self.scope, self.values, self.known
        self.scope, self.values, self.known = block, ChainMap({}, self.values), ChainMap({}, self.known)
        try:
            for (name, _), arg in zip(args, block.args):
                arg.name_hint = sanitize(name)
                self.values[name] = arg
            self.values.update(given or {})
            for t in g.initializer:
                self.known[t.name] = numpy_helper.to_array(t)
            for proto in _topological(g.node, set(self.values) | set(self.known)):
                self._node(proto)
            outs = []
            for o in g.output:
                if o.name not in self.values and o.name not in self.known:
                    raise self._undefined(o.name)
                outs.append(self.tensor(o.name))
        finally:
            self.scope, self.values, self.known = saved
        return block, outs

    # -- values ----------------------------------------------------------------
    def shape_of(self, name: str) -> list[int]:
        if name in self.values:
            return value_shape(self.values[name])
        if name in self.known:
            return list(self.known[name].shape)
        raise self._undefined(name)

    def _undefined(self, name: str) -> LatheError:
        return LatheError(
            f"'{name}' is not a graph input, an initializer or the output of an earlier node",
            note="the ONNX graph is incomplete or its nodes are not in topological order",
        )

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
        dt = dtype_of_array(arr, f"constant '{name}'")
        if arr.ndim == 0 and (dt == "bool" or not np.issubdtype(arr.dtype, np.floating) or np.isfinite(arr)):
            op = graph.ConstantOp.scalar(plain(arr[()]), graph.DTYPES[dt])
            self.add(op)
            value = op.result
        else:
            if name not in self.key:
                self.key[name] = (2, self._extra)
                self._extra += 1
            pname = sanitize(name)
            value = self.body.add_param(pname, graph.tensor(arr.shape, graph.DTYPES[dt]), self.key[name])
            self.body.params[pname] = np.array(arr, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
            if self.body is self.main and isinstance(self.values, ChainMap):
                self.values.maps[-1][name] = value  # a parameter is in scope everywhere, made once
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
            except Exception as e:  # noqa: BLE001 - truncated raw_data, bad external data, ...
                raise LatheError(f"initializer '{t.name}' cannot be read: {_first_line(e)}") from None
            self.known[t.name] = arr
            self.key[t.name] = (1, i)
            init_names.add(t.name)
        for i, s in enumerate(g.sparse_initializer):
            name = s.values.name
            self.known[name] = sparse_to_dense(s)
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
        dt = lathe_dtype(tt.tensor_type.elem_type, f"graph input '{inp.name}'")
        if inp.name in self.shapes:
            dims = [int(d) for d in self.shapes[inp.name]]
        else:
            if not tt.tensor_type.HasField("shape"):
                raise LatheError(
                    f"graph input '{inp.name}' has no shape",
                    note="give it one: from_onnx(..., shapes={name: (d0, d1, ...)})",
                )
            # dim_param, a negative dim_value (exporters' -1) or nothing: known only at run time
            # (0 is a size, as ONNX Runtime reads it: node tests feed empty tensors)
            dims = [
                d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else DYNAMIC_INDEX
                for d in tt.tensor_type.shape.dim
            ]
        return graph.tensor(dims, graph.DTYPES[dt])

    def _check_initializer(self, inp) -> None:
        """An initializer also listed as an input (IR < 4 style) must agree with its declaration."""
        tt = inp.type.tensor_type
        arr = self.known[inp.name]
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if len(dims) != arr.ndim or any(d is not None and d != s for d, s in zip(dims, arr.shape)):
                raise LatheError(
                    f"initializer '{inp.name}' has shape {tuple(arr.shape)} but the graph input "
                    f"declares {tuple('?' if d is None else d for d in dims)}"
                )

    def _output(self, out) -> SSAValue:
        if out.name not in self.values and out.name not in self.known:
            raise self._undefined(out.name)
        v = self.tensor(out.name)
        tt = out.type.tensor_type if out.type.WhichOneof("value") == "tensor_type" else None
        if (
            tt is not None
            and tt.elem_type
            and tt.elem_type in _ONNX_DTYPES
            and _ONNX_DTYPES[tt.elem_type] != value_dtype(v)
        ):
            raise LatheError(
                f"graph output '{out.name}' is declared {_ONNX_DTYPES[tt.elem_type]} "
                f"but the imported graph computes {graph.type_str(v.type)}"
            )
        if tt is not None and tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim]
            got = value_shape(v)
            known = (s != DYNAMIC_INDEX for s in got)
            if len(dims) != len(got) or any(d is not None and k and d != s for d, s, k in zip(dims, got, known)):
                warnings.warn(
                    f"graph output '{out.name}' is declared {tuple('?' if d is None else d for d in dims)} "
                    f"but the imported graph computes {graph.type_str(v.type)}; the declaration is ignored",
                    ShapeHintWarning,
                    stacklevel=4,
                )
        return v

    # -- nodes ---------------------------------------------------------------------
    def _node(self, proto) -> None:
        try:
            n = Node(self, proto)
        except LatheError as e:
            raise LatheError(f"ONNX node '{proto.name}' ({proto.op_type}, opset {self.opset}): {e.message}") from None
        if proto.domain not in ("", "ai.onnx"):
            raise Unsupported(
                f"unsupported ONNX operator '{proto.domain}.{n.op_type}' (node '{n.name}', "
                f"opset {self.opset}): only the default domain is supported"
            )
        conv = converter(n.op_type, self.opset)
        if conv is None:
            since = first_opset(n.op_type)
            raise Unsupported(
                f"unsupported ONNX operator '{n.op_type}' (node '{n.name}', opset {self.opset})",
                note=None if since is None else f"{n.op_type} is supported from opset {since}",
            )
        for name in n.inputs:
            if name and name not in self.values and name not in self.known:
                raise LatheError(f"{n.where}: input {self._undefined(name).message}")
        try:
            outs = None
            if not n.has_subgraphs and all(name == "" or name in self.known for name in n.inputs):
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
        saved = self.body, self.values, self.scope
        self.body, self.values, self.scope = _Body(), {}, None
        try:
            outs = _as_list(conv(n))
            values = [v for v in outs if isinstance(v, SSAValue)]
            if not values:
                return outs
            if any(_numel(v.type) < 0 or _numel(v.type) > FOLD_LIMIT for v in values):
                return None
            f = self.body.function("main", values)
            try:
                result = _evaluate_constant(f, self.body.params)
            except LatheError:
                raise
            except Exception as e:  # noqa: BLE001 - numpy refusing the values (an empty reduction, ...)
                raise LatheError(f"evaluating it at import time failed: {_first_line(e)}") from None
            results = list(result) if len(values) > 1 else [result]
            it = iter(results)
            return [next(it) if isinstance(v, SSAValue) else v for v in outs]
        finally:
            self.body, self.values, self.scope = saved


def _evaluate_constant(f: func.FuncOp, params: dict[str, np.ndarray]):
    """The result of a scratch function whose parameters are all bound in `params` (a tuple when it returns one).

    The frontend's only use of an evaluator, kept here so that it can go
    through the graph dialect's own op semantics rather than the runtime.
    """
    from lathe.dialects.functions import param_names
    from lathe.dialects.reference import evaluate

    block = f.body.block
    values: dict[SSAValue, Any] = {arg: params[n] for arg, n in zip(block.args, param_names(f))}
    for op in block.ops:
        if isinstance(op, func.ReturnOp):
            return values[op.operands[0]]
        values[op.results[0]] = evaluate(op, *(values[v] for v in op.operands))
    raise AssertionError("a function body ends with func.return")


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


def sparse_to_dense(s) -> np.ndarray:
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
        except Exception as e:  # noqa: BLE001 - whatever protobuf raises for bytes that are not a model
            raise LatheError(f"not a valid ONNX model: {_first_line(e)}") from None
    path = os.fspath(model_or_path)
    if not os.path.exists(path):
        raise LatheError(f"cannot read {path}: no such file")
    try:
        return onnx.load(path)
    except Exception as e:  # noqa: BLE001 - DecodeError, external data that cannot be found, ...
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


def from_onnx(
    model_or_path,
    opset: int | None = None,
    shapes: dict[str, Sequence[int]] | None = None,
    recurrent: str = "unroll",
):
    """Import an ONNX model (a ModelProto, a path or serialized bytes) → (module, params).

    `opset` overrides the model's default-domain opset; `shapes` gives static
    shapes (by ONNX name) to inputs whose declared shapes are dynamic; `recurrent` says how
    LSTM, GRU and RNN become graph ops: "unroll" (one copy of the cell per time step, a static
    graph) or "loop" (a graph.while over time whose body is one step, run by the VM).

    "unroll" stays the default, by measurement (benchmarks/recurrent_loop.py; the numbers are
    in docs/vm.md): a loop compiles 10-30x faster, and the LSTM LM runs as fast as a loop as
    unrolled, but the GRU's loop runs past 1.5x its unrolled graph (its small steps cost more
    through the VM than their kernels), and an unrolled model is static, which the profiler,
    the graph passes and every backend take. Pass "loop" where compile time matters more.
    """
    import onnx

    if recurrent not in RECURRENT_MODES:
        raise LatheError(f"recurrent must be one of {', '.join(map(repr, RECURRENT_MODES))}, got {recurrent!r}")

    model = _load(model_or_path)
    _check(model)
    newest = onnx.defs.onnx_opset_version()
    opset = _default_opset(model) if opset is None else int(opset)
    if not 1 <= opset <= newest:
        raise LatheError(f"opset {opset} is not one this onnx ({onnx.__version__}) defines (1 to {newest})")
    return _Importer(model, opset, dict(shapes or {}), recurrent).run()
