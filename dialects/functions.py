"""What Lathe's IR says about a `func.func` beyond xDSL's func dialect.

Every layer reads these: the parser writes parameter names, passes outline kernels,
lowering and backends compile them, the runtimes call them. They lived in the layer that
first needed them, so lower layers imported upward for a string.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Operation

from lathe.dialects import graph
from lathe.errors import LatheError

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


# A glue function's results as the model returns them, where some are tuples: the function
# returns its leaf buffers flat and this attribute rebuilds the nesting, one entry per result
# of the graph-level function: a leaf's index among the flat results, or an array (a tuple).
RESULT_NESTING = "lathe.result_nesting"
Nesting = int | tuple["Nesting", ...]


def result_nesting(fn: func.FuncOp) -> tuple[Nesting, ...]:
    """The graph-level results of a bufferized glue function as indices into its flat results."""
    attr = fn.attributes.get(RESULT_NESTING)
    if attr is None:
        ret = fn.body.block.last_op
        return tuple(range(len(ret.operands))) if isinstance(ret, func.ReturnOp) else ()

    def decode(a: Attribute) -> Nesting:
        if isinstance(a, ArrayAttr):
            return tuple(decode(x) for x in a.data)
        if isinstance(a, IntegerAttr):
            return a.value.data
        raise LatheError(f"@{fn.sym_name.data}: malformed {RESULT_NESTING} entry {a}")

    assert isinstance(attr, ArrayAttr)
    return tuple(decode(a) for a in attr.data)


def recursive_function(module: ModuleOp) -> str | None:
    """The name of a function that calls itself, directly or through others, or None: such a
    call graph cannot be inlined into one static graph (the VM runs it, docs/vm.md)."""
    calls = {
        f.sym_name.data: {c.callee.root_reference.data for c in f.walk() if isinstance(c, func.CallOp)}
        for f in glue_functions(module)
    }
    done: set[str] = set()

    def cycle_from(name: str, path: tuple[str, ...]) -> str | None:
        if name in path:
            return name
        if name in done or name not in calls:
            return None
        for callee in sorted(calls[name]):
            if (found := cycle_from(callee, (*path, name))) is not None:
                return found
        done.add(name)
        return None

    return next((found for name in calls if (found := cycle_from(name, ())) is not None), None)
