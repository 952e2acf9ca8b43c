"""One error type for everything a user can get wrong.

Every stage (text parser, verifier, pass pipeline, params binding, ONNX import, targets)
raises `LatheError`; the command-line tools print it and exit 1, never a
traceback. A location, when known, is rendered like a compiler diagnostic:
file:line:col, the source line, and a caret under the column.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    source_line: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class LatheError(Exception):
    """A user-facing error: what went wrong, where, and what was expected."""

    def __init__(self, message: str, loc: Location | None = None, note: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.note = note

    def render(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc is not None and self.loc.source_line is not None:
            src = self.loc.source_line.rstrip("\n").expandtabs(1)
            lines.append("  " + src)
            lines.append("  " + " " * (self.loc.col - 1) + "^")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def location_in(text: str, file: str, line: int, col: int) -> Location:
    """A Location that carries the offending source line for the caret."""
    lines = text.splitlines()
    src = lines[line - 1] if 0 < line <= len(lines) else None
    return Location(file, line, col, src)


def internal_error(e: BaseException) -> int:
    """Report a bug in Lathe itself: one line, exit code 2; LATHE_TRACEBACK=1 shows the stack."""
    import os
    import sys
    import traceback

    if os.environ.get("LATHE_TRACEBACK"):
        traceback.print_exception(e)
    else:
        print(
            f"internal error: {type(e).__name__}: {e} (a bug in Lathe; rerun with LATHE_TRACEBACK=1 for the stack)",
            file=sys.stderr,
        )
    return 2
