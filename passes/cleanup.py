"""cleanup-loops: tidy loop-level IR with xDSL's own canonicalize and CSE.

Lowering emits index constants at their point of use; canonicalization folds
and CSE merges them so the printed loop IR reads like hand-written IR. (LLVM
would clean the same up; this is for people reading the IR.)
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination


@dataclass(frozen=True)
class CleanupLoops(ModulePass):
    """xDSL's canonicalize and CSE on the loop IR, after lowering."""

    name = "cleanup-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        CanonicalizePass().apply(ctx, op)
        CommonSubexpressionElimination().apply(ctx, op)


@dataclass(frozen=True)
class EliminateCommonSubexpr(ModulePass):
    """Relay's EliminateCommonSubexpr: xDSL's CSE, which merges pure ops (all graph
    ops) with equal operands and attributes."""

    name = "eliminate-common-subexpr"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        CommonSubexpressionElimination().apply(ctx, op)


@dataclass(frozen=True)
class DeadCodeElimination(ModulePass):
    """xDSL's DCE: removes pure ops whose results are unused."""

    name = "dead-code-elimination"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from xdsl.transforms.dead_code_elimination import DeadCodeElimination as XDCE

        XDCE().apply(ctx, op)
