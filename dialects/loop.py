"""The loop dialect: what xDSL's scf/memref/arith lack at the loop level.

Loop nests are `scf.for` over `memref` buffers; this dialect adds the loop
annotations a schedule produces, attached to an `scf.for` as
`{loop.annotation = #loop.annotation<parallel>}` (also `vectorize = 16`,
`unroll = 4`, `unroll`, `bind = "threadIdx.x"`). Backends read them: the LLVM
backend runs parallel loops on all cores and vectorizes/unrolls the others.
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntAttr, StringAttr
from xdsl.ir import Dialect, Operation, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
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


def annotation_of(op: Operation) -> LoopAnnotationAttr | None:
    a = op.attributes.get(ANNOTATION)
    return a if isinstance(a, LoopAnnotationAttr) else None


Loop = Dialect("loop", [], [LoopAnnotationAttr])
