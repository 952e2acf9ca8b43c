"""fold-constant: evaluate subgraphs whose inputs are all constants.

Evaluation uses the reference interpreter, so folding is exactly as correct
as the oracle. `bind_params` turns a function's parameters into constants
(what `lathe.compile` does with `params` at -O2 and above), so weight
preprocessing — batch-norm scale and shift, transposes, concatenated Q/K/V
weights — is done once at compile time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects import graph
from lathe.dialects.functions import glue_functions, param_names, set_param_names
from lathe.dialects.reference import check_value, constant_value, evaluate


def _elements(t) -> int:
    return int(np.prod(t.get_shape())) if isinstance(t, TensorType) else 0


def fold_function(fn: func.FuncOp, max_elements: int) -> int:
    values: dict = {}
    folded = 0
    for op in list(fn.body.block.ops):
        if isinstance(op, graph.ConstantOp):
            continue
        if not isinstance(op, graph.GraphOp) or isinstance(op, graph.TupleOp | graph.TupleGetItemOp):
            continue
        if not all(isinstance(v.owner, graph.ConstantOp) for v in op.operands):
            continue
        t = op.results[0].type
        if not isinstance(t, TensorType) or _elements(t) > max([max_elements, *map(_elements, op.operand_types)]):
            continue
        args = []
        for v in op.operands:
            if v not in values:
                values[v] = constant_value(v.owner)
            args.append(values[v])
        result = np.asarray(evaluate(op, *args))
        new = graph.ConstantOp.from_array(result, t.element_type)
        Rewriter.replace_op(op, new)
        values[new.result] = result
        folded += 1
    for op in reversed(list(fn.body.block.ops)):
        if isinstance(op, graph.ConstantOp) and not op.result.uses:
            Rewriter.erase_op(op)
    return folded


@dataclass(frozen=True)
class FoldConstant(ModulePass):
    """Replace every op whose operands are all constants by its value.

    A value is folded when it has at most `max_elements` elements or no more than its largest
    operand: the bound keeps small constants from growing into large ones (a broadcast, a
    range), while a layout transform of a large weight (VGG-16's 411 MB FC6 packed into
    panels) is paid once here instead of on every run."""

    name = "fold-constant"
    max_elements: int = 1 << 24

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in glue_functions(op):
            fold_function(fn, self.max_elements)


def bind_params(module: ModuleOp, params: Mapping[str, np.ndarray], entry: str = "main") -> ModuleOp:
    """Replace the parameters of @entry named in `params` by constants (in place)."""
    fn = next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == entry)
    block = fn.body.block
    names = param_names(fn)
    kept = [n for n in names if n not in params]
    for name, arg in reversed(list(zip(names, block.args))):
        if name not in params:
            continue
        value = check_value(name, params[name], arg.type)
        const = graph.ConstantOp.from_array(value, arg.type.element_type)  # type: ignore[union-attr]
        Rewriter.insert_op(const, InsertPoint.at_start(block))
        arg.replace_all_uses_with(const.result)
        block.erase_arg(arg)
    fn.function_type = func.FunctionType.from_lists([a.type for a in block.args], list(fn.function_type.outputs.data))
    set_param_names(fn, kept)
    return module
