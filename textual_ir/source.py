"""Checks on raw input text, made before any parser sees it.

xDSL's MLIR parser and Lathe's Relay tree walk are recursive descents: a few
hundred nested brackets exhaust Python's stack, and xDSL's string-literal
regex backtracks exponentially on an unterminated `"`. One linear scan over
the text rejects both with a located error, so the parsers only ever see
input they can finish; the same scan serves both languages, which differ only
in their comments, strings and brackets.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lathe.errors import LatheError, Location, location_in

# Deep enough for any real program (a lowered kernel nests ~20 levels), shallow
# enough that parsing, verifying, printing and the passes all stay far from
# Python's recursion limit.
MAX_NESTING = 64


@dataclass(frozen=True)
class Syntax:
    """What the scan must step over as a whole, and what nests."""

    skip: str  # comments, complete string literals, tokens that look like brackets (`->`)
    string_start: str  # an opening quote: where `skip` did not match, the string is unterminated
    opens: str
    closes: str


# The string rule is xDSL's own (mlir_lexer._unescaped_characters_regex) written with
# one character per repetition, so a failed match costs linear time instead of exponential.
MLIR = Syntax(
    skip=r'//[^\n]*|"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"|->',
    string_start='"',
    opens="([{<",
    closes=")]}>",
)
RELAY = Syntax(
    skip=r'//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/|"(?:[^"\\\n]|\\.)*"|->',
    string_start='"',
    opens="([{",
    closes=")]}",
)


@functools.cache
def _tokens(syntax: Syntax) -> re.Pattern:
    brackets = re.escape(syntax.opens + syntax.closes)
    return re.compile(f"(?P<skip>{syntax.skip})|(?P<bracket>[{brackets}])|(?P<quote>{syntax.string_start})")


def check_text(text: str, filename: str, syntax: Syntax) -> None:
    """Raise a located LatheError on unterminated strings and on nesting deeper than MAX_NESTING."""
    depth = 0
    for m in _tokens(syntax).finditer(text):
        kind = m.lastgroup
        if kind == "bracket":
            if m.group() in syntax.opens:
                depth += 1
                if depth > MAX_NESTING:
                    raise _error(
                        text,
                        filename,
                        m.start(),
                        f"brackets nested deeper than {MAX_NESTING} levels",
                        f"Lathe reads at most {MAX_NESTING} levels of nested {_pairs(syntax)}",
                    )
            else:
                depth = max(depth - 1, 0)
        elif kind == "quote":
            raise _unterminated(text, filename, m.start(), syntax)


def _pairs(syntax: Syntax) -> str:
    return ", ".join(o + c for o, c in zip(syntax.opens, syntax.closes))


def _unterminated(text: str, filename: str, pos: int, syntax: Syntax) -> LatheError:
    """Say whether the string runs off its line or holds an escape the language lacks."""
    end = pos + 1
    while end < len(text) and text[end] not in '"\n\\':
        end += 1
    if end < len(text) and text[end] == "\\":
        return _error(
            text,
            filename,
            end,
            f"invalid escape sequence in string literal: {text[end : end + 2]!r}",
            'expected \\", \\\\, \\n, \\t or two hex digits' if syntax is MLIR else None,
        )
    return _error(text, filename, pos, "unterminated string literal", 'expected a closing " on the same line')


def _error(text: str, filename: str, pos: int, message: str, note: str | None = None) -> LatheError:
    return LatheError(message, location_at(text, filename, pos), note)


def location_at(text: str, filename: str, pos: int) -> Location:
    """The Location of a character offset into `text`."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return location_in(text, filename, line, col)


def decode(data: bytes, filename: str) -> str:
    """Source bytes → text; anything but UTF-8 is a located error, not a UnicodeDecodeError."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        shown = data.decode("utf-8", errors="replace")
        line = data.count(b"\n", 0, e.start) + 1
        col = len(data[data.rfind(b"\n", 0, e.start) + 1 : e.start].decode("utf-8", errors="replace")) + 1
        raise LatheError(
            f"the file is not UTF-8 text (byte 0x{data[e.start]:02x} cannot be decoded)",
            location_in(shown, filename, line, col),
        ) from None


# Relay text as TVM reads it: block comments nest, and `#[metadata]` ends the program (the
# rest of the file is the JSON of its constants). `/* ty=... */` comments are Lathe's type
# annotations, so they are kept; every other comment becomes blanks (newlines kept, so
# positions do not move) and the Lark grammar never sees a comment it cannot lex.
_RELAY_SCAN = re.compile(r'/\*|//[^\n]*|"(?:[^"\\\n]|\\.)*"|#\[\s*metadata\s*\]')
_IN_COMMENT = re.compile(r"/\*|\*/")  # inside a comment only these count: no strings, no //


@dataclass(frozen=True)
class RelaySource:
    program: str  # the text before the metadata section, its comments blanked
    metadata: str | None  # the JSON after `#[metadata]`, if there is one
    metadata_at: int  # the offset of that JSON in the original text


def split_relay(text: str, filename: str) -> RelaySource:
    """Blank Relay comments (nested as TVM nests them) and cut off the metadata section."""
    out: list[str] = []
    pos = 0
    while (m := _RELAY_SCAN.search(text, pos)) is not None:
        out.append(text[pos : m.start()])
        tok = m.group()
        if tok == "/*":
            end = _comment_end(text, m.start(), filename)
            comment = text[m.start() : end]
            keep = re.match(r"/\*\s*ty=", comment) and comment.count("/*") == 1
            out.append(comment if keep else re.sub(r"[^\n]", " ", comment))
            pos = end
        elif tok.startswith("//"):
            out.append(" " * len(tok))
            pos = m.end()
        elif tok.startswith("#"):
            return RelaySource("".join(out), text[m.end() :], m.end())
        else:  # a string literal, as it is
            out.append(tok)
            pos = m.end()
    out.append(text[pos:])
    return RelaySource("".join(out), None, len(text))


def _comment_end(text: str, start: int, filename: str) -> int:
    depth = 0
    for m in _IN_COMMENT.finditer(text, start):
        depth += 1 if m.group() == "/*" else -1
        if depth == 0:
            return m.end()
    raise _error(text, filename, start, "unterminated comment", "expected */ (block comments nest in Relay)")
