"""Control flow and function values: `if`, `while`, `fn` literals (closures) and calls of them.

These are not GraphOps: they compute nothing themselves, have no numpy reference, no compute
definition and no ONNX converter of their own, so they are kept out of GRAPH_OPS (and out of
the Relay operator names) and registered in the dialect beside them (CONTROL_OPS). Their
regions are not isolated from above: a branch or a function body reads any value in scope
where it is written, which is how a closure captures its free variables. Types are built by
the Relay parser from the regions it has just built (`build`), and checked again by `verify_`.

A branch may give a more specific type than its `if` (ONNX's branches differ in shape: the
`if` has their join, a dimension on which they differ is `?`), and a `while` body may give
carried values more specific than the loop's. `graph.while` has no Relay spelling (TVM writes
loops as recursion); it comes from ONNX `Loop` and prints in MLIR.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    DictionaryAttr,
    FunctionType,
    IntegerType,
    StringAttr,
    TensorType,
    TupleType,
    i1,
    i64,
)
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import IsTerminator
from xdsl.utils.exceptions import VerifyException

from lathe.dialects.graph.core import GraphOp, ShapeError, is_dynamic, tuple_type, type_str


class ControlOp(IRDLOperation):
    """Base of the control ops: what passes and runtimes test for to know a module needs the VM."""


@irdl_op_definition
class YieldOp(ControlOp):
    """The values a region gives: one for an `if` branch, a `fn` body or a `while` condition,
    the carried values and then the scanned ones for a `while` body (its parent checks which)."""

    name = "graph.yield"
    values = var_operand_def()
    traits = traits_def(IsTerminator())


def _yields(body: Region | Block, what: str) -> list[SSAValue]:
    block = body.block if isinstance(body, Region) else body
    last = block.last_op
    if not isinstance(last, YieldOp):
        raise VerifyException(f"{what} must end with graph.yield")
    return list(last.values)


def _yielded(body: Region | Block, what: str) -> SSAValue:
    values = _yields(body, what)
    if len(values) != 1:
        raise VerifyException(f"{what} gives exactly one value with graph.yield, got {len(values)}")
    return values[0]


def join_types(a: Attribute, b: Attribute) -> Attribute | None:
    """The most specific type both `a` and `b` have: equal dimensions kept, differing ones `?`
    (None when the dtypes, ranks or structures differ)."""
    if a == b:
        return a
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        sa, sb = a.get_shape(), b.get_shape()
        if a.element_type != b.element_type or len(sa) != len(sb):
            return None
        return TensorType(a.element_type, [x if x == y else DYNAMIC_INDEX for x, y in zip(sa, sb)])
    if isinstance(a, TupleType) and isinstance(b, TupleType) and len(a.types) == len(b.types):
        fields = [join_types(x, y) for x, y in zip(a.types.data, b.types.data)]
        return None if None in fields else tuple_type(fields)  # type: ignore[arg-type]
    return None


def refines(t: Attribute, general: Attribute) -> bool:
    """Whether every value of type `t` is a value of type `general`."""
    return join_types(t, general) == general


@irdl_op_definition
class IfOp(ControlOp):
    """Relay's `if (%c) { ... } else { ... }`: `%c` is a bool scalar known only at run time."""

    name = "graph.if"
    cond = operand_def(TensorType)
    result = result_def()
    then_region = region_def("single_block")
    else_region = region_def("single_block")

    @classmethod
    def build(cls, cond: SSAValue, then_block: Block, else_block: Block) -> IfOp:
        then_t = _yielded(then_block, "the then branch").type
        else_t = _yielded(else_block, "the else branch").type
        _check_cond(cond.type, "if")
        joined = join_types(then_t, else_t)
        if joined is None:
            raise ShapeError(f"if: the branches give {type_str(then_t)} and {type_str(else_t)}")
        return cls.create(operands=[cond], result_types=[joined], regions=[Region(then_block), Region(else_block)])

    def verify_(self) -> None:
        _check_cond(self.cond.type, "if")
        for region, what in ((self.then_region, "then"), (self.else_region, "else")):
            t = _yielded(region, f"the {what} branch").type
            if not refines(t, self.result.type):
                raise ShapeError(f"if: the {what} branch gives {type_str(t)}, the if {type_str(self.result.type)}")


def _check_cond(t: Attribute, what: str) -> None:
    if not (isinstance(t, TensorType) and t.element_type == i1 and not t.get_shape()):
        raise ShapeError(f"{what}: the condition must be a bool scalar, Tensor[(), bool], got {type_str(t)}")


def stacked(t: Attribute) -> TensorType:
    """The type of a value of type `t` given once per iteration and stacked on a new first axis."""
    if not isinstance(t, TensorType):
        raise ShapeError(f"while: a scanned value must be a tensor, got {type_str(t)}")
    return TensorType(t.element_type, [DYNAMIC_INDEX, *t.get_shape()])


@irdl_op_definition
class WhileOp(ControlOp):
    """A loop with loop-carried values, ONNX's `Loop`: while the `cond` region (its block
    arguments the carried values) yields true, the `body` region (the same arguments) runs and
    yields the next carried values, then values scanned per iteration. The results are the
    last carried values, then each scanned value stacked on a new first axis of `?` length.
    The trip count is known only at run time, so the loop is run by the interpreter or the VM,
    the body's ops as compiled primitive regions."""

    name = "graph.while"
    inits = var_operand_def()
    outs = var_result_def()
    cond = region_def("single_block")
    body = region_def("single_block")

    @classmethod
    def build(cls, inits: list[SSAValue], cond: Block, body: Block) -> WhileOp:
        """`cond` and `body` have the carried values' types as their block arguments."""
        n = len(inits)
        scans = [stacked(v.type) for v in _yields(body, "a while body")[n:]]
        op = cls.create(
            operands=list(inits),
            result_types=[a.type for a in body.args] + scans,
            regions=[Region(cond), Region(body)],
        )
        op.verify_()
        return op

    @property
    def carried(self) -> int:
        return len(self.inits)

    def verify_(self) -> None:
        n = self.carried
        carried = [r.type for r in self.outs[:n]]
        for region, what in ((self.cond, "condition"), (self.body, "body")):
            got = [a.type for a in region.block.args]
            if got != carried:
                raise ShapeError(
                    f"while: the {what}'s arguments are ({', '.join(map(type_str, got))}), "
                    f"the carried values ({', '.join(map(type_str, carried))})"
                )
        for v, t in zip(self.inits, carried):
            if not refines(v.type, t):
                raise ShapeError(f"while: an initial value is {type_str(v.type)}, carried as {type_str(t)}")
        _check_cond(_yielded(self.cond, "a while condition").type, "while")
        yields = _yields(self.body, "a while body")
        if len(yields) != len(self.outs):
            raise ShapeError(f"while: the body yields {len(yields)} values for {len(self.outs)} results")
        for v, t in zip(yields[:n], carried):
            if not refines(v.type, t):
                raise ShapeError(f"while: the body gives {type_str(v.type)} for a value carried as {type_str(t)}")
        for v, r in zip(yields[n:], self.outs[n:]):
            if stacked(v.type) != r.type:
                raise ShapeError(f"while: a scanned {type_str(v.type)} stacks to {type_str(r.type)}, not that")


@irdl_op_definition
class FnOp(ControlOp):
    """A function value, Relay's `fn (%x: T) -> R { ... }`: its block arguments are the
    parameters, and values of enclosing regions that the body reads are its captured ones."""

    name = "graph.fn"
    result = result_def(FunctionType)
    body = region_def("single_block")

    @classmethod
    def build(cls, body: Block) -> FnOp:
        out = _yielded(body, "a fn body").type
        ftype = FunctionType.from_lists([a.type for a in body.args], [out])
        return cls.create(result_types=[ftype], regions=[Region(body)])

    def verify_(self) -> None:
        out = _yielded(self.body, "a fn body").type
        want = FunctionType.from_lists([a.type for a in self.body.block.args], [out])
        if want != self.result.type:
            raise ShapeError(f"fn: its body is {type_str(want)} but its type says {type_str(self.result.type)}")


@irdl_op_definition
class CallValueOp(ControlOp):
    """A call of a function value (a `fn`, or whatever a call or a branch gave)."""

    name = "graph.call_value"
    callee = operand_def(FunctionType)
    args = var_operand_def()
    result = result_def()

    @classmethod
    def build(cls, callee: SSAValue, args: list[SSAValue]) -> CallValueOp:
        ft = callee.type
        if not isinstance(ft, FunctionType):
            raise ShapeError(f"call of a value that is not a function: {type_str(ft)}")
        _check_args(ft, [a.type for a in args])
        return cls.create(operands=[callee, *args], result_types=[ft.outputs.data[0]])

    def verify_(self) -> None:
        ft = self.callee.type
        assert isinstance(ft, FunctionType)
        _check_args(ft, [a.type for a in self.args])
        if ft.outputs.data[0] != self.result.type:
            raise ShapeError(f"call_value: result {type_str(self.result.type)}, callee {type_str(ft)}")


def _check_args(ft: FunctionType, got: list[Attribute]) -> None:
    want = list(ft.inputs.data)
    if want != got:
        raise ShapeError(
            f"a function of type {type_str(ft)} is called with ({', '.join(type_str(t) for t in got)})",
        )


@irdl_op_definition
class ShapeOfOp(ControlOp):
    """The shape of a tensor as an int64 vector, Relay's `shape_of`: computed from the value a
    tensor has at run time, so it is what makes a `?` dimension a value other ops can read."""

    name = "graph.shape_of"
    data = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def build(cls, data: SSAValue) -> ShapeOfOp:
        rank = len(_tensor(data.type, "shape_of").get_shape())
        return cls.create(operands=[data], result_types=[TensorType(i64, [rank])])

    def verify_(self) -> None:
        rank = len(_tensor(self.data.type, "shape_of").get_shape())
        if self.result.type != TensorType(i64, [rank]):
            raise ShapeError(f"shape_of: the result must be Tensor[({rank}), int64], got {type_str(self.result.type)}")


def _tensor(t: Attribute, what: str) -> TensorType:
    if not isinstance(t, TensorType):
        raise ShapeError(f"{what}: expects a tensor, got {type_str(t)}")
    return t


def _broadcast_with(v: np.ndarray, data: list[Attribute]) -> list[int]:
    shape = _data_shape(data)
    try:
        return list(np.broadcast_shapes(tuple(shape), tuple(int(x) for x in v.reshape(-1))))
    except ValueError:
        raise ShapeError(f"{type_str(data[0])} cannot be broadcast with the shape {v.tolist()}") from None


def _data_shape(data: list[Attribute]) -> list[int]:
    """The first data operand's shape, for forms whose attribute depends on it: a `?` in it
    leaves the attribute undecided (before the run, with only the types known)."""
    t = _tensor(data[0], "dyn")
    if is_dynamic(t):
        raise ShapeError(f"the values are read with the shape of {type_str(t)}, known only when it runs")
    return list(t.get_shape())


def _pairs(v: np.ndarray) -> list[list[int]]:
    """ONNX's pads, every axis's begin then every axis's end, as (begin, end) pairs."""
    flat = [int(x) for x in v.reshape(-1)]
    half = len(flat) // 2
    return [[b, e] for b, e in zip(flat[:half], flat[half:])]


def _crop_end(v: np.ndarray, data: list[Attribute]) -> list[int]:
    return [d - max(0, -e) for d, (_, e) in zip(_data_shape(data), _pairs(v))]


def _sized_hw(v: np.ndarray, data: list[Attribute]) -> list[int]:
    """ONNX Resize's sizes for NCHW data: H and W, the last two; a size for every axis must keep
    N and C (resize2d resizes H and W only)."""
    sizes, shape = [int(x) for x in v.reshape(-1)], _data_shape(data)
    if len(sizes) == len(shape) and sizes[:-2] != shape[:-2]:
        raise ShapeError(f"sizes {sizes} resize more than the last two axes of {shape}")
    return sizes[-2:]


def _scaled_hw(v: np.ndarray, data: list[Attribute]) -> list[int]:
    """ONNX Resize's scales for NCHW data: H and W, the last two, sized as floor(size · scale),
    which must be a whole number (resize2d maps coordinates by the sizes' ratio, ONNX by the
    scale, and the two agree only then); a scale for every axis must keep N and C."""
    scales, shape = [float(x) for x in v.reshape(-1)], _data_shape(data)
    if len(scales) == len(shape) and any(s != 1.0 for s in scales[:-2]):
        raise ShapeError(f"scales {scales} resize more than the last two axes of {shape}")
    out = []
    for d, s in zip(shape[-2:], scales[-2:]):
        exact = d * s
        if abs(exact - round(exact)) > 1e-6 * max(1.0, exact):
            raise ShapeError(f"a scale {s:g} on an axis of size {d} gives a fractional size {exact:g}")
        out.append(int(round(exact)))
    return out


def _unsqueezed(v: np.ndarray, data: list[Attribute]) -> list[int]:
    """ONNX Unsqueeze's axes (of the result, negative from its end, any order) as reshape's
    newshape: 1 at each axis, the data's dimensions in order elsewhere (a 0 only where it stays
    at its index, which newshape reads as a copy of it)."""
    shape = _data_shape(data)
    rank = len(shape) + v.size
    axes = [int(a) + rank if int(a) < 0 else int(a) for a in v.reshape(-1)]
    if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        raise ShapeError(f"unsqueeze axes {v.reshape(-1).tolist()} are not distinct axes of a rank-{rank} result")
    dims = iter(enumerate(shape))
    out = []
    for d in range(rank):
        if d in axes:
            out.append(1)
            continue
        i, size = next(dims)
        if size == 0 and i != d:
            raise ShapeError(f"unsqueeze axes {axes} move the empty axis {i} of {shape}, which a reshape cannot say")
        out.append(size)
    return out


VALUE_FORMS: dict[str, Callable[[np.ndarray, list[Attribute]], object]] = {
    "list": lambda v, _: [int(x) for x in v.reshape(-1)],
    "scalar": lambda v, _: int(v.reshape(-1)[0]),
    "number": lambda v, _: v.reshape(-1)[0].item(),  # an int or a float (a pad value, a range bound)
    "list_or_all": lambda v, _: [int(x) for x in v.reshape(-1)] or None,  # empty: every axis
    "offsets": lambda v, _: [int(x) for x in np.cumsum(v.reshape(-1))[:-1]],  # split sizes as cut points
    "broadcast": _broadcast_with,  # the broadcast of the first operand's shape and the value (ONNX Expand)
    "pad_width": lambda v, _: [[max(0, b), max(0, e)] for b, e in _pairs(v)],  # ONNX pads, what they add
    "crop_begin": lambda v, _: [max(0, -b) for b, _ in _pairs(v)],  # ONNX pads, where negative ones start
    "crop_end": _crop_end,  # and where they end
    "size_hw": _sized_hw,
    "scales_hw": _scaled_hw,
    "unsqueeze": _unsqueezed,  # ONNX Unsqueeze's axes as reshape's newshape
    "flag": lambda v, _: bool(v.reshape(-1)[0]),  # a bool (or int) scalar as True or False (a training mode)
}
"""How an attribute is read from the value of a `graph.dyn` operand (and the data operands' types)."""

FLOAT_FORMS = frozenset({"number", "scales_hw"})
"""The forms that read a float operand as well as an int one."""

BOOL_FORMS = frozenset({"flag"})
"""The forms that read a bool operand as well as an int one."""


def graph_op_named(relay_name: str) -> type[GraphOp] | None:
    """The graph op class with this Relay name, found among GraphOp's subclasses (the family
    modules' table, GRAPH_OPS, is assembled by the package, which imports this module)."""
    todo = [GraphOp]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if isinstance(getattr(cls, "name", None), str) and cls.relay_name() == relay_name:
            return cls
    return None


@irdl_op_definition
class DynOp(ControlOp):
    """A graph op with attributes given as tensors known only at run time, TVM's `dyn.*` ops
    (a reshape to a computed shape, a reduction over run-time axes, a split by run-time sizes):
    `op` is the graph op's Relay name, `attrs` its attributes known here, and the operands are
    its own, then one int tensor per name in `bind`, read in its `forms` entry's way
    (VALUE_FORMS). The result type is declared (its dimensions `?` where the values decide
    them) and checked when the op runs: the interpreter and the VM build the static op from
    the values (`static_props`), and the VM compiles it per shapes and values, cached."""

    name = "graph.dyn"
    args = var_operand_def()
    result = result_def()
    op = prop_def(StringAttr)
    attrs = prop_def(DictionaryAttr)
    bind = prop_def(ArrayAttr[StringAttr])
    forms = prop_def(ArrayAttr[StringAttr])

    @classmethod
    def build(
        cls, op: str, data: list[SSAValue], values: list[tuple[str, str, SSAValue]], attrs: dict, result: Attribute
    ) -> DynOp:
        """`values`: (attribute, form, tensor) for each attribute given at run time."""
        target = graph_op_named(op)
        if target is None:
            raise ShapeError(f"dyn: unknown operator '{op}'")
        props = {k: target.coerce(k, v) for k, v in attrs.items() if v is not None}
        new = cls.create(
            operands=[*data, *(v for _, _, v in values)],
            result_types=[result],
            properties={
                "op": StringAttr(op),
                "attrs": DictionaryAttr(props),
                "bind": ArrayAttr([StringAttr(a) for a, _, _ in values]),
                "forms": ArrayAttr([StringAttr(f) for _, f, _ in values]),
            },
        )
        new.verify_()
        return new

    @property
    def target(self) -> type[GraphOp]:
        found = graph_op_named(self.op.data)
        assert found is not None, "verified"
        return found

    @property
    def data_count(self) -> int:
        return len(self.args) - len(self.bind)

    def verify_(self) -> None:
        if graph_op_named(self.op.data) is None:
            raise ShapeError(f"dyn: unknown operator '{self.op.data}'")
        known = self.target.get_irdl_definition().properties
        if len(self.bind) != len(self.forms) or len(self.bind) > len(self.args):
            raise ShapeError("dyn: bind and forms name one attribute per value operand")
        for name, form, v in zip(self.bind, self.forms, self.args[self.data_count :]):
            if name.data not in known:
                raise ShapeError(f"dyn: {self.op.data} has no attribute '{name.data}'")
            if form.data not in VALUE_FORMS:
                raise ShapeError(f"dyn: unknown value form '{form.data}' (known: {', '.join(VALUE_FORMS)})")
            t = _tensor(v.type, f"dyn {self.op.data}")
            numeric = isinstance(t.element_type, IntegerType) or form.data in FLOAT_FORMS
            if not numeric or (t.element_type == i1 and form.data not in BOOL_FORMS) or len(t.get_shape()) > 1:
                kind = "a number vector" if form.data in FLOAT_FORMS else "an int vector"
                raise ShapeError(f"dyn: attribute '{name.data}' is given by {type_str(t)}, not {kind}")

    def static_props(self, data_types: list[Attribute], values: list[np.ndarray]) -> dict[str, Attribute]:
        """The static op's properties, with the run-time values of the bound attributes."""
        props = dict(self.attrs.data)
        for name, form, v in zip(self.bind, self.forms, values):
            value = VALUE_FORMS[form.data](np.asarray(v), data_types)
            if value is None:
                props.pop(name.data, None)
            else:
                props[name.data] = self.target.coerce(name.data, value)
        return props

    def static_op(self, data_types: list[Attribute], values: list[np.ndarray]) -> IRDLOperation:
        """The static op over operands of `data_types` (block arguments of a detached block),
        its type checked against this op's: a mismatch is the op's and the shapes' ShapeError."""
        block = Block(arg_types=data_types)
        op = self.target.create_inferred(list(block.args), self.static_props(data_types, values))
        if not refines(op.results[0].type, self.result.type):
            raise ShapeError(
                f"dyn {self.op.data}: gives {type_str(op.results[0].type)}, declared {type_str(self.result.type)}"
            )
        return op


CONTROL_OPS: list[type[ControlOp]] = [YieldOp, IfOp, WhileOp, FnOp, CallValueOp, ShapeOfOp, DynOp]
