"""ONNX names as Relay variable names and back, reversibly."""

from __future__ import annotations

import re

from lathe.errors import LatheError

_ESCAPE = re.compile(r"_u([0-9a-f]{4})")
_LOOKS_ESCAPED = re.compile(r"u[0-9a-f]{4}")
_TRAILING_NUMBER = re.compile(r"_[0-9]+$")


def sanitize(name: str) -> str:
    """An ONNX name as a Relay variable name, reversibly (see `unsanitize`).

    Letters and digits are kept; any other character becomes `_uXXXX` (its
    UTF-16 code unit in hex), and so does a leading digit. A `_` is kept as it
    is unless it would be misread: when it is followed by `uXXXX`, or when it
    starts a `_<digits>` suffix (xDSL drops such a suffix from name hints,
    which is where parameter names are kept).
    """
    if not name:
        raise LatheError("an ONNX value has an empty name")
    units = name.encode("utf-16-le", "surrogatepass")
    chars = [chr(int.from_bytes(units[k : k + 2], "little")) for k in range(0, len(units), 2)]
    out = []
    for k, c in enumerate(chars):
        rest = "".join(chars[k + 1 : k + 6])
        letter_or_digit = c.isascii() and c.isalnum() and not (k == 0 and c.isdigit())
        plain_underscore = (
            c == "_" and not _LOOKS_ESCAPED.match(rest) and not _TRAILING_NUMBER.fullmatch("".join(chars[k:]))
        )
        out.append(c if letter_or_digit or plain_underscore else f"_u{ord(c):04x}")
    return "".join(out)


def unsanitize(name: str) -> str:
    """The ONNX name that `sanitize` turned into `name`."""
    units = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name)
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
