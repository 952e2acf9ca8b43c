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


def rfactor(op: te.RfactorOp) -> None:
    """C = Σ_k f  →  Crf[.., ki] = Σ_(other reduce axes, ko) f(k = ko·F + ki);  C = Σ_ki Crf[.., ki]."""
    c = op.stage.owner
    if not isinstance(c, te.ComputeOp):
        raise LatheError("te.rfactor: the stage operand must be a te.compute result, not a kernel argument")
    if op.factor.value.data < 1:
        raise LatheError(f"te.rfactor on stage '{c.stage.data}': factor must be >= 1, got {op.factor.value.data}")
    names, nsp = c.axis_names, len(c.spatial_extents)
    k = op.axis.data
    if k not in names[nsp:]:
        raise LatheError(f"te.rfactor on stage '{c.stage.data}': '{k}' is not one of its reduce axes {names[nsp:]}")
    kpos = names.index(k) - nsp
    extents = c.reduce_extent_list
    f = max(1, min(op.factor.value.data, extents[kpos]))
    outer = -(-extents[kpos] // f)
    combiner = c.combiner_name
    t = c.result.type
    assert isinstance(t, TensorType)
    rf_type = TensorType(t.element_type, [*t.get_shape(), f])
    other = [n for n in names[nsp:] if n != k]
    rf = te.ComputeOp.build_empty(
        f"{c.stage.data}.rf",
        rf_type,
        [*names[:nsp], f"{k}.inner", *other, f"{k}.outer"],
        [e for j, e in enumerate(extents) if j != kpos] + [outer],
        combiner,
    )
    args = rf.body.block.args
    sp, ki, red = args[:nsp], args[nsp], args[nsp + 1 :]
    mapping: dict = {}
    with ImplicitBuilder(rf.body.block):
        kval = tb.Expr(red[-1]) * f + tb.Expr(ki)
        if outer * f != extents[kpos]:  # the last chunk overhangs: read in bounds, add the identity
            safe = tb.minimum(kval, extents[kpos] - 1)
        else:
            safe = kval
        rest = iter(red[:-1])
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
                if outer * f != extents[kpos]:
                    ident = tb.combiner_identity(combiner, t.element_type)  # type: ignore[arg-type]
                    value = tb.select(kval.lt(extents[kpos]), value, tb.const(ident, t.element_type))
                te.YieldOp(value.value)
                break
            new = o.clone(value_mapper=mapping)  # (the implicit builder inserts it)
            if new.parent is None:
                rf.body.block.add_op(new)
            for a, b in zip(o.results, new.results):
                mapping[a] = b
    final = te.ComputeOp.build_empty(c.stage.data, t, [*names[:nsp], f"{k}.inner"], [f], combiner)
    with ImplicitBuilder(final.body.block):
        a = final.body.block.args
        v = te.ReadOp(rf.result, [*a[:nsp], a[nsp]])
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
