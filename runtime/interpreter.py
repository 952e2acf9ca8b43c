"""The reference interpreter: runs graph-dialect IR with numpy.

It is the oracle every numeric test compares the compiler against, so each
op's implementation here is the most direct numpy spelling of its definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, TupleType
from xdsl.ir import Attribute, Operation, SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError

_NP_DTYPES = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64,
    "int8": np.int8, "int32": np.int32, "int64": np.int64, "bool": np.bool_,
}


def np_dtype(t: Attribute) -> np.dtype:
    return np.dtype(_NP_DTYPES[graph.dtype_name(t)])


def _bias_add(op, x, b):
    axis = graph.BiasAddOp.normalized_axis(x.ndim, op.properties)
    shape = [1] * x.ndim
    shape[axis] = b.shape[0]
    return x + b.reshape(shape)


def _matmul(op, a, b):
    if graph.prop_bool(op.properties, "transpose_a"):
        a = a.T
    if graph.prop_bool(op.properties, "transpose_b"):
        b = b.T
    return a @ b


def _trunc_div(a, b):
    """Integer divide rounds toward zero, as TVM's (C's) does; numpy's // floors."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


REFERENCE: dict[type[Operation], Callable] = {
    graph.ReluOp: lambda op, x: np.maximum(x, 0),
    graph.NegativeOp: lambda op, x: -x,
    graph.ExpOp: lambda op, x: np.exp(x),
    graph.TanhOp: lambda op, x: np.tanh(x),
    graph.SigmoidOp: lambda op, x: _sigmoid(x),
    graph.SqrtOp: lambda op, x: np.sqrt(x),
    graph.AddOp: lambda op, a, b: a + b,
    graph.SubtractOp: lambda op, a, b: a - b,
    graph.MultiplyOp: lambda op, a, b: a * b,
    graph.DivideOp: lambda op, a, b: _trunc_div(a, b) if np.issubdtype(a.dtype, np.integer) else a / b,
    graph.MaximumOp: lambda op, a, b: np.maximum(a, b),
    graph.MinimumOp: lambda op, a, b: np.minimum(a, b),
    graph.DenseOp: lambda op, x, w: x @ w.T,
    graph.MatmulOp: _matmul,
    graph.BiasAddOp: _bias_add,
    graph.TupleOp: lambda op, *xs: tuple(xs),
    graph.TupleGetItemOp: lambda op, t: t[op.index.value.data],
}


def constant_value(op: graph.ConstantOp) -> np.ndarray:
    t = op.result.type
    assert isinstance(t, TensorType)
    vals = op.value.get_values()  # type: ignore[union-attr]
    arr = np.asarray(vals, dtype=np_dtype(t.element_type))
    shape = tuple(t.get_shape())
    return np.full(shape, arr.reshape(-1)[0], dtype=arr.dtype) if arr.size == 1 else arr.reshape(shape)


def _cast_result(op: Operation, value):
    t = op.results[0].type
    if isinstance(t, TensorType):
        return np.asarray(value).astype(np_dtype(t.element_type), copy=False).reshape(tuple(t.get_shape()))
    return value


class Interpreter:
    def __init__(self, module: ModuleOp):
        self.functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}

    def call(self, name: str, args: list):
        f = self.functions[name]
        env: dict[SSAValue, object] = dict(zip(f.body.block.args, args))
        for op in f.body.block.ops:
            if isinstance(op, func.ReturnOp):
                vals = [env[v] for v in op.operands]
                return vals[0] if len(vals) == 1 else tuple(vals)
            if isinstance(op, func.CallOp):
                env[op.results[0]] = self.call(op.callee.root_reference.data, [env[a] for a in op.arguments])
            elif isinstance(op, graph.ConstantOp):
                env[op.result] = constant_value(op)
            elif type(op) in REFERENCE:
                env[op.results[0]] = _cast_result(op, REFERENCE[type(op)](op, *[env[a] for a in op.operands]))
            else:
                raise LatheError(f"the reference interpreter cannot run '{op.name}'")
        raise LatheError(f"@{name} has no return")


def bind_arguments(f: func.FuncOp, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray] | None,
                   fill_random: bool = False, seed: int = 0, where: str = "") -> tuple[list[np.ndarray], list[str]]:
    """Match a function's parameters by name with inputs and params, checking types.

    Returns the arguments in order and the names of those filled with seeded
    random values (only when `fill_random`).
    """
    params = params or {}
    rng = np.random.default_rng(seed)
    args, filled = [], []
    names = param_names(f)
    for what, given in (("input", inputs), ("params entry", params)):
        unknown = set(given) - set(names)
        if unknown:
            raise LatheError(f"{where}@{f.sym_name.data} has no parameter named {', '.join(sorted(unknown))} "
                             f"(given as {what})", note="its parameters: " + ", ".join(names))
    for name, arg in zip(names, f.body.block.args):
        t = arg.type
        if name in inputs:
            value = inputs[name]
        elif name in params:
            value = params[name]
        elif fill_random and isinstance(t, TensorType):
            dt = np_dtype(t.element_type)
            shape = tuple(t.get_shape())
            if np.issubdtype(dt, np.floating):
                value = rng.standard_normal(shape).astype(dt)
            else:
                value = rng.integers(0, 10, shape).astype(dt)
            filled.append(name)
        else:
            raise LatheError(f"{where}no value for parameter %{name} of @{f.sym_name.data}",
                             note=f"expected {graph.type_str(t)} in the inputs or the params file")
        args.append(check_value(name, value, t, where))
    return args, filled


def check_value(name: str, value, t: Attribute, where: str = "") -> np.ndarray:
    if isinstance(t, TupleType):
        raise LatheError(f"{where}tuple-typed parameter %{name} is not supported as an input")
    assert isinstance(t, TensorType)
    arr = np.asarray(value)
    want_shape, want_dt = tuple(t.get_shape()), np_dtype(t.element_type)
    if arr.shape != want_shape:
        raise LatheError(f"{where}%{name} has shape {arr.shape} but {graph.type_str(t)} was expected")
    if arr.dtype != want_dt:
        if np.can_cast(arr.dtype, want_dt, casting="same_kind"):
            arr = arr.astype(want_dt)
        else:
            raise LatheError(f"{where}%{name} has dtype {arr.dtype} but {graph.type_str(t)} was expected")
    return np.ascontiguousarray(arr)


def param_names(f: func.FuncOp) -> list[str]:
    return [a.name_hint or f"p{i}" for i, a in enumerate(f.body.block.args)]


def interpret(module: ModuleOp, params: Mapping[str, np.ndarray] | None = None, entry: str = "main", **inputs):
    """Run `entry` with numpy; parameters are bound from `inputs`, then `params`."""
    it = Interpreter(module)
    if entry not in it.functions:
        raise LatheError(f"the module has no function @{entry}")
    args, _ = bind_arguments(it.functions[entry], inputs, params)
    return it.call(entry, args)
