"""cleanup-loops: tidy loop-level IR with xDSL's own canonicalize and CSE, and cancel the
index divisions the loop bounds make redundant.

Lowering emits index constants at their point of use; canonicalization folds
and CSE merges them so the printed loop IR reads like hand-written IR. (LLVM
would clean the same up; this is for people reading the IR.) The divisions are
another matter: an inlined reshape splits a flat index by div/rem that LLVM
cannot see through, and they keep a vectorized loop's addresses from being
affine in the lane (passes/index_arith.py).

One canonicalization is held back: a loop bound to a GPU id (`bind`) is kept
even with one iteration. It is a launch dimension, not a loop: removing a
blockIdx loop of extent 1 would leave its threadIdx loops and barriers outside
any grid, and removing a threadIdx loop of extent 1 would hand its body to
every thread of the block.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, scf
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.transforms.canonicalization_patterns.scf import RehoistConstInLoops
from xdsl.transforms.canonicalize import CanonicalizationRewritePattern
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination, cse
from xdsl.transforms.dead_code_elimination import region_dce

from lathe.dialects.loop import annotation_of
from lathe.passes.index_arith import SimplifyIndexDivision


def is_bound(op: Operation) -> bool:
    a = annotation_of(op)
    return a is not None and a.kind.data == "bind"


class CanonicalizeKeepingBoundLoops(RewritePattern):
    """xDSL's canonicalization patterns, but a bound scf.for only has its constants hoisted
    (scf.for's other pattern, SimplifyTrivialLoops, would inline a one-iteration launch
    dimension)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter, /) -> None:
        if isinstance(op, scf.ForOp) and is_bound(op):
            RehoistConstInLoops().match_and_rewrite(op, rewriter)
            return
        CanonicalizationRewritePattern().match_and_rewrite(op, rewriter)


@dataclass(frozen=True)
class CleanupLoops(ModulePass):
    """xDSL's canonicalize (bound loops kept) with the index-division rewrites, then CSE, on
    the loop IR after lowering."""

    name = "cleanup-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        # A kernel the same as one before it (a model's repeated layers: VGG-16's and
        # ResNet-50's identical 3x3 convolutions, each lowered to the same three Winograd
        # kernels) is cleaned once: the copies are taken out, and put back as clones of the
        # cleaned first, under their own names.
        order = list(op.body.block.ops)
        first: dict[object, func.FuncOp] = {}
        copy_of: dict[Operation, func.FuncOp] = {}
        for f in order:
            if isinstance(f, func.FuncOp) and f.body.blocks:
                key = function_structure(f)
                if key in first:
                    copy_of[f] = first[key]
                    f.detach()
                else:
                    first[key] = f
        self._clean(ctx, op)
        if not copy_of:
            return
        for f in list(op.body.block.ops):
            f.detach()
        for f in order:
            if f in copy_of:
                clone = copy_of[f].clone()
                clone.sym_name = f.sym_name
                f = clone
            op.body.block.add_op(f)

    @staticmethod
    def _clean(ctx: Context, op: ModuleOp) -> None:
        pattern = GreedyRewritePatternApplier(
            [CanonicalizeKeepingBoundLoops(), SimplifyIndexDivision()], ctx=ctx, folding_enabled=True
        )
        # The walk to its fixed point, then region DCE, again while DCE removed something: the
        # same fixed point as DCE after every walk (the walker's post_walk_func), which ran
        # region DCE over the whole module 9 times on VGG-16 with Winograd. Same kernels
        # printed, cleanup-loops 14.0-15.2 -> 10.8-11.2 s (one process, alternated, load 2.6).
        # A function at a time: the walker's worklist and DCE over one function cost less per
        # op than over the module (VGG-16 with Winograd, the same process: 2.35 s for the
        # module, 2.08 s for its functions one by one, before kernels the same were cleaned once).
        walker = PatternRewriteWalker(pattern)
        for f in op.body.block.ops:
            for region in f.regions:
                walker.rewrite_region(region)
                while region_dce(region):
                    walker.rewrite_region(region)
                cse(region)


def function_structure(f: func.FuncOp) -> object:
    """What the function computes, hashable, its own name left out: each op's name, operands
    (by their place in the function), properties, attributes, result types and regions, in
    order (printing it was as costly as cleaning it); the function itself where something in
    it does not hash."""
    ids: dict[object, int] = {}
    for op in f.walk():
        for region in op.regions:
            for block in region.blocks:
                ids[block] = len(ids)
                ids.update((arg, len(ids) + k) for k, arg in enumerate(block.args))
        ids.update((r, len(ids) + k) for k, r in enumerate(op.results))
    key = tuple(
        (
            op.name,
            tuple(ids.get(v, -1) for v in op.operands),
            tuple((k, v) for k, v in op.properties.items() if not (op is f and k == "sym_name")),
            tuple(op.attributes.items()),
            tuple(r.type for r in op.results),
            tuple((ids[b], tuple(a.type for a in b.args)) for r in op.regions for b in r.blocks),
            tuple(ids.get(b, -1) for b in op.successors),
        )
        for op in f.walk()
    )
    try:
        hash(key)
    except TypeError:
        return f
    return key


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
