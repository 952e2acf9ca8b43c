"""Whole-module verification that names the offending op.

`ModuleOp.verify()` raises the first op's exception with no way back to the
op, and xDSL checks no dominance: a value used before its definition verifies,
then crashes every later stage that maps values to their producers. This walk
runs the same per-op verifiers in the same order, adds the dominance rule, and
returns the failing op so a front end can point at it in the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from xdsl.dialects.builtin import StringAttr, SymbolRefAttr
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.traits import SymbolOpInterface, SymbolTable
from xdsl.utils.exceptions import DiagnosticException


@dataclass(frozen=True)
class Failure:
    op: Operation
    message: str


def first_failure(root: Operation) -> Failure | None:
    """The first op that does not verify (its own verifier, or an operand not defined before it)."""
    with symbols_indexed():
        return _walk(root, set())


def verify(root: Operation) -> None:
    """`root.verify()` in time linear in the number of calls (see symbols_indexed)."""
    with symbols_indexed():
        root.verify()


@contextmanager
def symbols_indexed() -> Iterator[None]:
    """xDSL's SymbolTable.lookup_symbol scans its table on every lookup, so verifying a
    module of n kernels and n calls to them is O(n²): a 10,000-op ladder (9,700 kernels)
    spent minutes there. While nothing changes the IR (verification), each symbol table's
    names are indexed on first use; the first definition of a name wins, as in the scan."""
    original = SymbolTable.__dict__["lookup_symbol"]
    scan = SymbolTable.lookup_symbol
    tables: dict[Operation, dict[str, Operation]] = {}

    def lookup(op: Operation, name: str | StringAttr | SymbolRefAttr) -> Operation | None:
        ref = SymbolRefAttr(name) if isinstance(name, str | StringAttr) else name
        anchor: Operation | None = op
        while anchor is not None and not anchor.has_trait(SymbolTable):
            anchor = anchor.parent_op()
        if anchor is None or ref.nested_references.data or len(anchor.regions[0].blocks) != 1:
            return scan(op, name)
        if anchor not in tables:
            index: dict[str, Operation] = {}
            for o in anchor.regions[0].block.ops:
                sym = o.get_trait(SymbolOpInterface)
                sym_name = sym.get_sym_attr_name(o) if sym is not None else None
                if sym_name is not None:
                    index.setdefault(sym_name.data, o)
            tables[anchor] = index
        return tables[anchor].get(ref.root_reference.data)

    SymbolTable.lookup_symbol = staticmethod(lookup)  # type: ignore[method-assign]
    try:
        yield
    finally:
        SymbolTable.lookup_symbol = original  # type: ignore[method-assign]


def _walk(op: Operation, defined: set[SSAValue]) -> Failure | None:
    for i, operand in enumerate(op.operands):
        if operand not in defined:
            return Failure(
                op,
                f"'{op.name}': operand #{i} ({_value_name(operand)}) is used before it is defined "
                "(a value must be defined earlier in its block or in an enclosing one)",
            )
    for region in op.regions:
        if (bad := _walk_region(region, defined)) is not None:
            return bad
    try:
        op.verify(verify_nested_ops=False)
    except (DiagnosticException, ValueError) as e:
        return Failure(op, _message(op, e))
    return None


def _walk_region(region: Region, defined: set[SSAValue]) -> Failure | None:
    """Blocks of one region see what encloses the region; in a multi-block region a value may
    reach a sibling block through the control flow, which this check does not model, so every
    value of such a region counts as defined throughout it."""
    added: list[SSAValue] = []
    if len(region.blocks) > 1:
        for block in region.blocks:
            added += _block_values(block)
    defined.update(added)
    try:
        for block in region.blocks:
            if (bad := _walk_block(block, defined)) is not None:
                return bad
    finally:
        defined.difference_update(added)
    return None


def _walk_block(block: Block, defined: set[SSAValue]) -> Failure | None:
    added: list[SSAValue] = list(block.args)
    defined.update(block.args)
    try:
        for op in block.ops:
            if (bad := _walk(op, defined)) is not None:
                return bad
            defined.update(op.results)
            added += op.results
    finally:
        defined.difference_update(added)
    return None


def _block_values(block: Block) -> list[SSAValue]:
    return [*block.args, *(r for op in block.ops for r in op.results)]


def _value_name(v: SSAValue) -> str:
    return "%" + v.name_hint if v.name_hint else f"a value of type {v.type}"


def _message(op: Operation, e: Exception) -> str:
    text = str(e).strip()
    return f"'{op.name}' does not verify: " + (text.splitlines()[0] if text else type(e).__name__)
