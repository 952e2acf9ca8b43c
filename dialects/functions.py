"""What Lathe's IR says about a `func.func` beyond xDSL's func dialect.

Every layer reads these: the parser writes parameter names, passes outline kernels,
lowering and backends compile them, the runtimes call them. They lived in the layer that
first needed them, so lower layers imported upward for a string.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Operation

from lathe.dialects import graph

KERNEL_ATTR = "lathe.kernel"  # a unit attribute: this function is one fused kernel
PARAM_NAMES = "lathe.param_names"  # a function's parameter names, where name hints cannot hold them


def is_kernel(f: Operation) -> bool:
    return isinstance(f, func.FuncOp) and KERNEL_ATTR in f.attributes


def is_compute(op: Operation) -> bool:
    """A graph op that belongs in a kernel; constants and tuples stay in the glue function."""
    return isinstance(op, graph.GraphOp) and not isinstance(op, graph.ConstantOp | graph.TupleOp | graph.TupleGetItemOp)


def defined_functions(module: ModuleOp) -> list[func.FuncOp]:
    """The module's functions that have a body. A declaration (an external function)
    has nothing to rewrite or lower, and `body.block` does not exist on it."""
    return [f for f in module.ops if isinstance(f, func.FuncOp) and not f.is_declaration]


def glue_functions(module: ModuleOp) -> list[func.FuncOp]:
    """The defined functions that are not kernels: where compute ops are grouped."""
    return [f for f in defined_functions(module) if not is_kernel(f)]


def param_names(f: func.FuncOp) -> list[str]:
    """Parameter names: the `lathe.param_names` attribute where the parser had to keep
    them (xDSL drops a trailing _<digits> from name hints), else the arguments' name hints."""
    attr = f.attributes.get(PARAM_NAMES)
    if isinstance(attr, ArrayAttr) and len(attr.data) == len(f.body.block.args):
        return [n.data for n in attr.data if isinstance(n, StringAttr)]
    return [a.name_hint or f"p{i}" for i, a in enumerate(f.body.block.args)]


def set_param_names(f: func.FuncOp, names: list[str]) -> None:
    """Keep `names` for f's parameters where name hints would lose them."""
    if any(a.name_hint != n for a, n in zip(f.body.block.args, names, strict=True)):
        f.attributes[PARAM_NAMES] = ArrayAttr([StringAttr(n) for n in names])
    else:
        f.attributes.pop(PARAM_NAMES, None)
