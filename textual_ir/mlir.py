"""MLIR-syntax input through xDSL's parser, with Lathe's error format.

This is Lathe's boundary with xDSL's parser: whatever it raises on bad input
(ParseError, a VerifyException from an attribute checked while parsing, a
RecursionError) leaves here as a LatheError with a file:line:col. The text is
scanned first (textual_ir/source.py) so the recursive descent never meets
input it cannot finish, and each op's position is recorded while parsing, so
a verification error points at the op that failed.
"""

from __future__ import annotations

import re

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException, ParseError

from lathe.dialects.verifier import first_failure
from lathe.errors import LatheError, location_in
from lathe.textual_ir.source import MLIR, check_text, location_at


class _LocatingParser(Parser):
    """xDSL's parser, remembering where each op starts (xDSL ops carry no source position)."""

    def __init__(self, ctx: Context, text: str, filename: str):
        super().__init__(ctx, text, filename)
        self.op_positions: dict[Operation, int] = {}
        self.open_ops: list[int] = []  # starts of the ops being parsed; on an error, the innermost is last

    def parse_operation(self) -> Operation:
        start = self._current_token.span.start
        self.open_ops.append(start)
        op = super().parse_operation()
        self.open_ops.pop()
        self.op_positions[op] = start
        return op


def parse_mlir(ctx: Context, text: str, filename: str = "<string>") -> ModuleOp:
    check_text(text, filename, MLIR)
    parser = None
    try:
        parser = _LocatingParser(ctx, text, filename)  # it lexes the first token already
        module = parser.parse_module()
    except ParseError as e:
        raise parse_error(e, text, filename) from None
    except (DiagnosticException, ValueError, OverflowError) as e:  # an attribute or type checked while parsing
        raise _while_parsing(parser, text, filename, _first_line(e)) from None
    except RecursionError:  # a backstop: check_text bounds nesting well below the limit
        raise _while_parsing(parser, text, filename, "input nested too deeply") from None
    if (bad := first_failure(module)) is not None:
        where = parser.op_positions.get(bad.op)
        raise LatheError(bad.message, location_at(text, filename, where) if where is not None else None) from None
    return module


def parse_error(e: ParseError, text: str, filename: str) -> LatheError:
    loc = e.span.get_location()
    msg = e.msg if hasattr(e, "msg") else str(e)
    return LatheError(msg, location_in(text, filename, loc.line, loc.col))


def _while_parsing(parser: _LocatingParser | None, text: str, filename: str, message: str) -> LatheError:
    """An error xDSL raised without a position: point at the op being parsed, and say where the
    parser stood (the token after the offending attribute or type)."""
    if parser is None:
        return LatheError(message, location_at(text, filename, 0))
    stopped = location_at(text, filename, parser._current_token.span.start)
    if not parser.open_ops:
        return LatheError(message, stopped)
    start = parser.open_ops[-1]
    name = _OP_NAME.match(text, start)
    what = name.group(1).strip('"') if name else "operation"
    return LatheError(
        f"{what}: {message}", location_at(text, filename, start), f"the parser stopped at {stopped.line}:{stopped.col}"
    )


# an op as written: optional results (`%a, %b:2 =`), then a bare or quoted name
_OP_NAME = re.compile(r'(?:%[^=]*=\s*)?("[^"\n]*"|[A-Za-z_][\w.$-]*)')


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
