"""Which converter turns each ONNX op into graph ops, from which opset on, and which graph ops it makes.

Each ONNX op has one converter, registered with `@converts(op_type, since=N)`;
a second registration with a larger `since` takes over from that opset on,
and exists only where the op's meaning changed (Softmax at 13, axes becoming
inputs, ...). `makes` names the graph op classes an ONNX op maps onto, so
that the mapping can be read in both directions (`converters_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lathe.errors import LatheError

if TYPE_CHECKING:
    from lathe.dialects.graph import GraphOp
    from lathe.frontends.onnx.importer import Node

Converter = Callable[["Node"], Any]


@dataclass(frozen=True)
class Conversion:
    """One registration: ONNX `op_type` from opset `since` on, by `convert`, onto the graph ops `makes`."""

    op_type: str
    since: int
    convert: Converter
    makes: tuple[type[GraphOp], ...] = ()


_CONVERSIONS: dict[str, dict[int, Conversion]] = {}


def converts(*op_types: str, since: int = 1, makes: type[GraphOp] | Iterable[type[GraphOp]] = ()):
    """Register a converter for `op_types` from opset `since` on.

    `makes` is the graph op (or ops) that carries the ONNX op's meaning, when
    there is one; reshapes and casts around it, and decompositions into
    several elementwise ops, are not declared.
    """
    made = (makes,) if isinstance(makes, type) else tuple(makes)

    def register(fn: Converter) -> Converter:
        for t in op_types:
            _CONVERSIONS.setdefault(t, {})[since] = Conversion(t, since, fn, made)
        return fn

    return register


def converter(op_type: str, opset: int) -> Converter | None:
    """The converter for `op_type` at `opset`: the registration with the largest `since` not above it."""
    versions = _CONVERSIONS.get(op_type, {})
    usable = [v for v in versions if v <= opset]
    return versions[max(usable)].convert if usable else None


def first_opset(op_type: str) -> int | None:
    """The first opset at which `op_type` converts (None: at none)."""
    versions = _CONVERSIONS.get(op_type)
    return min(versions) if versions else None


def supported_ops() -> list[str]:
    """The ONNX op types the importer converts (in the default domain)."""
    return sorted(_CONVERSIONS)


def conversions() -> list[Conversion]:
    """Every registration, by op type and then opset."""
    return [c for t in sorted(_CONVERSIONS) for _, c in sorted(_CONVERSIONS[t].items())]


def converters_for(op_class: type[GraphOp]) -> list[str]:
    """The ONNX op types whose converter (at some opset) declares that it makes `op_class`."""
    return sorted({c.op_type for c in conversions() if op_class in c.makes})


class Unsupported(LatheError):
    """An ONNX op, or an attribute value of one, that the importer does not convert."""


class NeedsConstant(Unsupported):
    """An attribute-like input (a shape, axes, scales, ...) that is not known at import time.

    `input_name` is the ONNX value; when it is a graph input, giving it as an
    initializer instead makes the model importable.
    """

    def __init__(self, message: str, input_name: str) -> None:
        super().__init__(message)
        self.input_name = input_name
