"""The loop dialect: what xDSL's scf/memref/arith lack at the loop level.

Loop nests are `scf.for` over `memref` buffers; this dialect adds the loop
annotations a schedule produces, attached to an `scf.for` as
`{loop.annotation = #loop.annotation<parallel>}` (also `vectorize = 16`,
`unroll = 4`, `unroll`, `bind = "threadIdx.x"`). Backends read them: the LLVM
backend runs parallel loops on all cores and vectorizes/unrolls the others.

One op: `loop.prefetch`, a software prefetch a schedule's `te.prefetch` lowers to (a kernel
that would otherwise wait on a weight block coming from L3 asks for the next block's lines
while it computes the current one).
"""

from __future__ import annotations

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IndexType, IntAttr, IntegerAttr, MemRefType, StringAttr
from xdsl.ir import Dialect, Operation, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    prop_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

KINDS = ("parallel", "vectorize", "unroll", "bind")
ANNOTATION = "loop.annotation"


@irdl_attr_definition
class LoopAnnotationAttr(ParametrizedAttribute):
    name = "loop.annotation"
    kind: StringAttr
    factor: IntAttr  # vector width or unroll factor; 0 = backend's choice / full
    thread_axis: StringAttr  # for bind: blockIdx.x, threadIdx.y, ...

    def __init__(self, kind: str, factor: int = 0, thread_axis: str = ""):
        super().__init__(StringAttr(kind), IntAttr(factor), StringAttr(thread_axis))

    def verify(self) -> None:
        if self.kind.data not in KINDS:
            raise VerifyException(f"#loop.annotation: kind must be one of {KINDS}, got '{self.kind.data}'")

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        parser.parse_punctuation("<")
        kind = parser.parse_identifier()
        factor, axis = 0, ""
        if parser.parse_optional_punctuation("="):
            if kind == "bind":
                axis = parser.parse_str_literal()
            else:
                factor = parser.parse_integer()
        parser.parse_punctuation(">")
        return [StringAttr(kind), IntAttr(factor), StringAttr(axis)]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.kind.data}")
        if self.kind.data == "bind":
            printer.print_string(f' = "{self.thread_axis.data}"')
        elif self.factor.data:
            printer.print_string(f" = {self.factor.data}")
        printer.print_string(">")


@irdl_op_definition
class PrefetchOp(IRDLOperation):
    """Asks for the cache line holding element `offset` of `buffer` (its row-major storage, the
    offset within it) to be read ahead; it changes no value, so a backend may drop it (the GPU
    backends do). `locality` is LLVM's and `__builtin_prefetch`'s: 3 keeps the line in every
    level (L1), 2 in L2 and out, 1 in L3, 0 streams it."""

    name = "loop.prefetch"
    buffer = operand_def(MemRefType)
    offset = operand_def(IndexType)
    locality = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$buffer `[` $offset `]` attr-dict `:` type($buffer)"

    def __init__(self, buffer: SSAValue, offset: SSAValue, locality: int):
        super().__init__(operands=[buffer, offset], properties={"locality": IntegerAttr(locality, 32)})

    def verify_(self) -> None:
        if not 0 <= self.locality.value.data <= 3:
            raise VerifyException(f"loop.prefetch: locality must be 0-3, got {self.locality.value.data}")


def row_major_strides(shape: list[int]) -> list[int]:
    """Elements between neighbours along each dimension of a buffer as it lies in memory:
    row-major (numpy's C order, so a buffer the runtime allocates with numpy is the one the
    generated code indexes), the last dimension contiguous."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    return strides


def constant_int(v: SSAValue) -> int | None:
    """The value of an integer or index `arith.constant`: loop bounds, steps and index
    operands that every pass and backend at this level folds or specialises on."""
    owner = v.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def annotation_of(op: Operation) -> LoopAnnotationAttr | None:
    a = op.attributes.get(ANNOTATION)
    return a if isinstance(a, LoopAnnotationAttr) else None


DEFAULT_LANES = 16  # a vectorize annotation without a factor: the backend's width, about this


def static_work(loop: Operation) -> int | None:
    """About how many instructions one run of `loop` executes: the ops of nested loops with
    constant bounds once per iteration (per `lanes` iterations in a vectorized loop); None
    when a bound is not a constant. A backend weighs it against what running the loop on
    several threads costs."""

    def trips(op: scf.ForOp) -> int | None:
        lb, ub, step = constant_int(op.lb), constant_int(op.ub), constant_int(op.step)
        if lb is None or ub is None or not step:
            return None
        return max(0, -(-(ub - lb) // step))

    def work(op: Operation) -> int | None:
        total = 0
        for region in op.regions:
            for block in region.blocks:
                for inner in block.ops:
                    w = work(inner) if inner.regions else 1
                    if w is None:
                        return None
                    total += w
        if isinstance(op, scf.ForOp):
            n = trips(op)
            if n is None:
                return None
            ann = annotation_of(op)
            if ann is not None and ann.kind.data == "vectorize":  # one vector op does `lanes` iterations
                # a factor past the machine's width (a whole row of 333) is still run as
                # vectors of about DEFAULT_LANES, so it does not make the loop cheaper
                n = -(-n // min(ann.factor.data or DEFAULT_LANES, DEFAULT_LANES))
            return n * total
        return total

    return work(loop)


Loop = Dialect("loop", [PrefetchOp], [LoopAnnotationAttr])
