"""MLIR-syntax input through xDSL's parser, with Lathe's error format."""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from lathe.errors import LatheError, location_in


def parse_mlir(ctx: Context, text: str, filename: str = "<string>") -> ModuleOp:
    try:
        module = Parser(ctx, text, filename).parse_module()
    except ParseError as e:
        raise parse_error(e, text, filename) from None
    try:
        module.verify()
    except VerifyException as e:
        raise LatheError(f"{filename}: verification failed: {_first_line(e)}") from None
    return module


def parse_error(e: ParseError, text: str, filename: str) -> LatheError:
    loc = e.span.get_location()
    msg = e.msg if hasattr(e, "msg") else str(e)
    return LatheError(msg, location_in(text, filename, loc.line, loc.col))


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
