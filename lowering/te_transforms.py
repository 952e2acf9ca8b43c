"""te → te rewrites: the schedule ops that make new stages, spelled out as computes.

`te.cache_write`, `te.cache_read` and `te.rfactor` name a stage that does not
exist yet; each rewrite here replaces one of them by the te.computes it
stands for, so that everything after it (the other schedule primitives, loop
emission) sees only computes. `lower-te-to-loop` runs them first; on their own
they show what a schedule's new stages compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.builder import ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects import te
from lathe.errors import LatheError
from lathe.lowering import te_builder as tb


def cache_write(op: te.CacheWriteOp) -> None:
    """stage C → C.local (C's computation) + C (a copy of C.local); uses of the
    cache_write result now name C.local."""
    c = op.stage.owner
    assert isinstance(c, te.ComputeOp)
    local = c.clone()
    local.properties["stage"] = StringAttr(c.stage.data + ".local")
    Rewriter.insert_op(local, InsertPoint.before(c))
    nsp = len(c.spatial_extents)
    copy = te.ComputeOp.build_empty(c.stage.data, c.result.type, c.axis_names[:nsp])  # type: ignore[arg-type]
    with ImplicitBuilder(copy.body.block):
        v = te.ReadOp(local.result, list(copy.body.block.args))
        te.YieldOp(v.result)
    Rewriter.insert_op(copy, InsertPoint.before(c))
    c.result.replace_all_uses_with(copy.result)
    op.result.replace_all_uses_with(local.result)
    Rewriter.erase_op(op)
    Rewriter.erase_op(c)


def cache_read(op: te.CacheReadOp) -> None:
    """A copy stage of the read tensor; the listed readers read the copy."""
    src = op.stage
    assert isinstance(src.type, TensorType)
    rank = len(src.type.get_shape())
    base = src.owner.stage.data if isinstance(src.owner, te.ComputeOp) else (src.name_hint or "input")
    copy = te.ComputeOp.build_empty(f"{base}.cache", src.type, [f"ax{d}" for d in range(rank)])
    with ImplicitBuilder(copy.body.block):
        v = te.ReadOp(src, list(copy.body.block.args))
        te.YieldOp(v.result)
    Rewriter.insert_op(copy, InsertPoint.before(op.readers[0].owner if op.readers else op))
    for r in op.readers:
        reader = r.owner
        if not isinstance(reader, te.ComputeOp):
            raise LatheError("te.cache_read: readers must be te.compute results")
        for read in reader.body.walk():
            if isinstance(read, te.ReadOp) and read.tensor == src:
                read.operands = [copy.result, *read.indices]
    op.result.replace_all_uses_with(copy.result)
    Rewriter.erase_op(op)


def rfactor_axes(
    names: list[str], nsp: int, axis: str, by_parts: bool, factor_axis: int | None
) -> tuple[list[str], list[str], str]:
    """The partial-sum stage's spatial and reduce axes and the final sum's reduce axis, for
    rfactor of reduce axis `axis` of a stage with axes `names` (its first nsp spatial); shared
    with the schedule builder, which names the stages' axes before they exist. By `factor` the
    partials are indexed by `axis.inner` and `axis.outer` is reduced last; by `nparts` they are
    indexed by `axis.outer` and `axis.inner` takes the axis's place among the reduce axes."""
    kept, reduced = (f"{axis}.outer", f"{axis}.inner") if by_parts else (f"{axis}.inner", f"{axis}.outer")
    spatial = list(names[:nsp])
    spatial.insert(nsp if factor_axis is None else factor_axis, kept)
    if by_parts:
        reduce = [reduced if n == axis else n for n in names[nsp:]]
    else:
        reduce = [n for n in names[nsp:] if n != axis] + [reduced]
    return spatial, reduce, kept


def rfactor_extents(extent: int, factor: int | None, nparts: int | None) -> tuple[int, int]:
    """The extents of the part of a reduce axis of `extent` that indexes the partials and of
    the part each partial still reduces: (factor, ⌈extent/factor⌉) or, by parts, (the parts
    that are not empty, ⌈extent/nparts⌉)."""
    if nparts is not None:
        step = -(-extent // max(1, min(nparts, extent)))
        return -(-extent // step), step
    assert factor is not None
    f = max(1, min(factor, extent))
    return f, -(-extent // f)


def rfactor(op: te.RfactorOp) -> None:
    """C = Σ_k f  →  Crf[.., r] = Σ_(other reduce axes, k's other part) f(k);  C = Σ_r Crf[.., r],
    with r the inner part of k = ko·F + ki (factor F) or its outer part (nparts P, k = ko·⌈K/P⌉ + ki)."""
    c = op.stage.owner
    if not isinstance(c, te.ComputeOp):
        raise LatheError("te.rfactor: the stage operand must be a te.compute result, not a kernel argument")
    by_parts = op.nparts is not None
    given = (op.nparts if by_parts else op.factor).value.data  # type: ignore[union-attr]
    if given < 1:
        raise LatheError(f"te.rfactor on stage '{c.stage.data}': factor must be >= 1, got {given}")
    names, nsp = c.axis_names, len(c.spatial_extents)
    k = op.axis.data
    if k not in names[nsp:]:
        raise LatheError(f"te.rfactor on stage '{c.stage.data}': '{k}' is not one of its reduce axes {names[nsp:]}")
    kpos = names.index(k) - nsp
    extents = c.reduce_extent_list
    kept_extent, reduced_extent = rfactor_extents(
        extents[kpos], None if by_parts else given, given if by_parts else None
    )
    f = reduced_extent if by_parts else kept_extent  # k = ko·f + ki
    overhang = kept_extent * reduced_extent != extents[kpos]
    combiner = c.combiner_name
    t = c.result.type
    assert isinstance(t, TensorType)
    fa = op.factor_axis.value.data if op.factor_axis is not None else nsp
    rf_shape = list(t.get_shape())
    rf_shape.insert(fa, kept_extent)
    rf_type = TensorType(t.element_type, rf_shape)
    spatial, reduce, kept = rfactor_axes(names, nsp, k, by_parts, fa)
    if by_parts:
        rf_extents = [reduced_extent if j == kpos else e for j, e in enumerate(extents)]
    else:
        rf_extents = [e for j, e in enumerate(extents) if j != kpos] + [reduced_extent]
    rf = te.ComputeOp.build_empty(f"{c.stage.data}.rf", rf_type, [*spatial, *reduce], rf_extents, combiner)
    args = rf.body.block.args
    kept_arg = args[fa]
    sp = [a for j, a in enumerate(args[: nsp + 1]) if j != fa]
    red = list(args[nsp + 1 :])
    reduced_arg = red[kpos] if by_parts else red[-1]
    rest = iter([a for a in red if a is not reduced_arg])
    mapping: dict = {}
    with ImplicitBuilder(rf.body.block):
        if by_parts:
            kval = tb.Expr(kept_arg) * f + tb.Expr(reduced_arg)
        else:
            kval = tb.Expr(reduced_arg) * f + tb.Expr(kept_arg)
        # the last chunk overhangs: read in bounds, add the identity
        safe = tb.minimum(kval, extents[kpos] - 1) if overhang else kval
        for j, arg in enumerate(c.body.block.args):
            if j < nsp:
                mapping[arg] = sp[j]
            elif j - nsp == kpos:
                mapping[arg] = safe.value
            else:
                mapping[arg] = next(rest)
        for o in c.body.block.ops:
            if isinstance(o, te.YieldOp):
                value = tb.Expr(mapping[o.value])
                if overhang:
                    ident = tb.combiner_identity(combiner, t.element_type)  # type: ignore[arg-type]
                    value = tb.select(kval.lt(extents[kpos]), value, tb.const(ident, t.element_type))
                te.YieldOp(value.value)
                break
            new = o.clone(value_mapper=mapping)  # (the implicit builder inserts it)
            if new.parent is None:
                rf.body.block.add_op(new)
            for a, b in zip(o.results, new.results):
                mapping[a] = b
    final = te.ComputeOp.build_empty(c.stage.data, t, [*names[:nsp], kept], [kept_extent], combiner)
    with ImplicitBuilder(final.body.block):
        a = list(final.body.block.args)
        v = te.ReadOp(rf.result, [*a[:fa], a[nsp], *a[fa:nsp]])
        te.YieldOp(v.result)
    Rewriter.insert_op(rf, InsertPoint.before(c))
    Rewriter.insert_op(final, InsertPoint.before(c))
    c.result.replace_all_uses_with(final.result)
    op.result.replace_all_uses_with(rf.result)
    Rewriter.erase_op(op)
    Rewriter.erase_op(c)


STAGE_TRANSFORMS: dict[type[Operation], Callable] = {
    te.CacheWriteOp: cache_write,
    te.CacheReadOp: cache_read,
    te.RfactorOp: rfactor,
}


def expand_stage_ops(block: Block) -> None:
    """Rewrite the stage-making schedule ops of a kernel body, in order: a later one
    may name a stage an earlier one made."""
    for op in list(block.ops):
        transform = STAGE_TRANSFORMS.get(type(op))
        if transform is not None:
            transform(op)


@dataclass(frozen=True)
class ExpandStageOps(ModulePass):
    """Replace te.cache_write, te.cache_read and te.rfactor by the te.computes they stand for."""

    name = "expand-te-stage-ops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        blocks = {o.parent_block() for o in op.walk() if type(o) in STAGE_TRANSFORMS}
        for block in blocks:
            expand_stage_ops(block)  # type: ignore[arg-type]
