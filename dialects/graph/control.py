"""Relay's control flow and function values: `if`, `fn` literals (closures) and calls of them.

These are not GraphOps: they compute nothing themselves, have no numpy reference, no compute
definition and no ONNX converter of their own, so they are kept out of GRAPH_OPS (and out of
the Relay operator names) and registered in the dialect beside them (CONTROL_OPS). Their
regions are not isolated from above: a branch or a function body reads any value in scope
where it is written, which is how a closure captures its free variables. Types are built by
the Relay parser from the regions it has just built (`build`), and checked again by `verify_`.
"""

from __future__ import annotations

from xdsl.dialects.builtin import FunctionType, TensorType, i1
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import IsTerminator
from xdsl.utils.exceptions import VerifyException

from lathe.dialects.graph.core import ShapeError, type_str


class ControlOp(IRDLOperation):
    """Base of the control ops: what passes and runtimes test for to know a module needs the VM."""


@irdl_op_definition
class YieldOp(ControlOp):
    """The value an `if` branch or a `fn` body gives."""

    name = "graph.yield"
    values = var_operand_def()
    traits = traits_def(IsTerminator())

    def verify_(self) -> None:
        if len(self.values) != 1:
            raise VerifyException(f"graph.yield gives exactly one value, got {len(self.values)}")


def _yielded(body: Region | Block, what: str) -> SSAValue:
    block = body.block if isinstance(body, Region) else body
    last = block.last_op
    if not isinstance(last, YieldOp):
        raise VerifyException(f"{what} must end with graph.yield")
    return last.values[0]


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
        _check_cond(cond.type)
        if then_t != else_t:
            raise ShapeError(f"if: the branches give {type_str(then_t)} and {type_str(else_t)}")
        return cls.create(operands=[cond], result_types=[then_t], regions=[Region(then_block), Region(else_block)])

    def verify_(self) -> None:
        _check_cond(self.cond.type)
        for region, what in ((self.then_region, "then"), (self.else_region, "else")):
            t = _yielded(region, f"the {what} branch").type
            if t != self.result.type:
                raise ShapeError(f"if: the {what} branch gives {type_str(t)}, the if {type_str(self.result.type)}")


def _check_cond(t: Attribute) -> None:
    if not (isinstance(t, TensorType) and t.element_type == i1 and not t.get_shape()):
        raise ShapeError(f"if: the condition must be a bool scalar, Tensor[(), bool], got {type_str(t)}")


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


CONTROL_OPS: list[type[ControlOp]] = [YieldOp, IfOp, FnOp, CallValueOp]
