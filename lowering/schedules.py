"""Schedules: a Python handle that emits schedule-primitive ops, and the
default schedule templates (Lathe's counterpart of TVM's TOPI x86 schedules).

`Schedule(stage)` appends `te.split`/`te.reorder`/... ops after the kernel's
last compute, so the result is ordinary IR: printed, parsed back, replayed.
A kernel's template is found by its anchor stage's `anchor` mark (the graph
op it computes), never by stage names (lowering/anchors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from lathe.dialects import graph, te
from lathe.dialects.functions import defined_functions, is_kernel
from lathe.errors import LatheError
from lathe.lowering.anchors import CONV2D_NHWC_AXES, CONV2D_REDUCE_AXES, ROLE_PAD


class Schedule:
    """Builder for the schedule of one stage (TVM's `s[stage]`)."""

    def __init__(self, stage: te.ComputeOp):
        self.stage = stage
        fn = stage.parent_op()
        assert isinstance(fn, func.FuncOp)
        self.ret = fn.body.block.last_op

    def _emit(self, cls: type[te.SchedulePrimitive], **props) -> Operation:
        op = cls.create(operands=[self.stage.result], properties=props)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return op

    @property
    def axes(self) -> list[str]:
        return self.stage.axis_names

    def split(self, axis: str, factor: int | None = None, nparts: int | None = None) -> tuple[str, str]:
        outer, inner = f"{axis}.outer", f"{axis}.inner"
        props = {"axis": StringAttr(axis)}
        if factor is not None:
            props["factor"] = IntegerAttr(factor, i64)
        else:
            props["nparts"] = IntegerAttr(nparts, i64)
        props.update(outer=StringAttr(outer), inner=StringAttr(inner))
        self._emit(te.SplitOp, **props)
        return outer, inner

    def tile(self, x: str, y: str, x_factor: int, y_factor: int) -> tuple[str, str, str, str]:
        self._emit(
            te.TileOp,
            x_axis=StringAttr(x),
            y_axis=StringAttr(y),
            x_factor=IntegerAttr(x_factor, i64),
            y_factor=IntegerAttr(y_factor, i64),
        )
        return f"{x}.outer", f"{y}.outer", f"{x}.inner", f"{y}.inner"

    def bind(self, axis: str, thread_axis: str) -> None:
        self._emit(te.BindOp, axis=StringAttr(axis), thread_axis=StringAttr(thread_axis))

    def reorder(self, *axes: str) -> None:
        self._emit(te.ReorderOp, order=ArrayAttr([StringAttr(a) for a in axes]))

    def fuse(self, *axes: str) -> str:
        name = ".".join(axes) + ".fused"
        self._emit(te.FuseOp, fuse_axes=ArrayAttr([StringAttr(a) for a in axes]), fused=StringAttr(name))
        return name

    def vectorize(self, axis: str) -> None:
        self._emit(te.VectorizeOp, axis=StringAttr(axis))

    def parallel(self, axis: str) -> None:
        self._emit(te.ParallelOp, axis=StringAttr(axis))

    def unroll(self, axis: str) -> None:
        self._emit(te.UnrollOp, axis=StringAttr(axis))

    def compute_inline(self) -> None:
        self._emit(te.ComputeInlineOp)

    def compute_at(self, target: te.ComputeOp, axis: str) -> None:
        op = te.ComputeAtOp.create(operands=[self.stage.result, target.result], properties={"axis": StringAttr(axis)})
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]

    def compute_root(self) -> None:
        self._emit(te.ComputeRootOp)

    def pragma(self, axis: str, pragma: str) -> None:
        self._emit(te.PragmaOp, axis=StringAttr(axis), pragma=StringAttr(pragma))

    def storage_align(self, axis: str, factor: int, offset: int) -> None:
        self._emit(
            te.StorageAlignOp, axis=StringAttr(axis), factor=IntegerAttr(factor, i64), offset=IntegerAttr(offset, i64)
        )

    def cache_read(self, tensor, readers: list[te.ComputeOp]) -> Schedule:
        """A copy of `tensor` (a kernel argument or another stage) that `readers` read instead."""
        op = te.CacheReadOp.build(operands=[tensor, [r.result for r in readers]], result_types=[tensor.type])
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return _CachedSchedule(self.stage, op.result)

    def rfactor(self, axis: str, factor: int) -> Schedule:
        """Partial sums over the outer part of reduce axis `axis`, indexed by its inner part."""
        t = self.stage.result.type
        rf_type = type(t)(t.element_type, [*t.get_shape(), factor])  # type: ignore[union-attr]
        op = te.RfactorOp.create(
            operands=[self.stage.result],
            result_types=[rf_type],
            properties={"axis": StringAttr(axis), "factor": IntegerAttr(factor, i64)},
        )
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return _CachedSchedule(self.stage, op.result)

    def cache_write(self) -> Schedule:
        """A new stage doing this stage's computation; this one becomes its copy."""
        op = te.CacheWriteOp(self.stage.result)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return _CachedSchedule(self.stage, op.result)


class _CachedSchedule(Schedule):
    """The schedule of a cache_write stage: it is named by the cache_write's result."""

    def __init__(self, original: te.ComputeOp, value):
        super().__init__(original)
        self.value = value

    def _emit(self, cls, **props):
        op = cls.create(operands=[self.value], properties=props)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return op

    def compute_at(self, target: te.ComputeOp, axis: str) -> None:
        op = te.ComputeAtOp.create(operands=[self.value, target.result], properties={"axis": StringAttr(axis)})
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]


PARALLEL_MIN_WORK = 1 << 14  # elements*reduction below which threads cost more than they save


def _pick_factor(extent: int, candidates: tuple[int, ...]) -> int | None:
    return next((f for f in candidates if extent % f == 0 and extent > f), None)


def schedule_injective(s: Schedule, lanes: int) -> None:
    """Fuse all axes, vectorize an inner part of the target's `lanes` (else the largest
    of 16/8/4 that divides), parallelize the rest when there is enough work."""
    c = s.stage
    total = 1
    for e in c.spatial_extents:
        total *= e
    axes = s.axes[: len(c.spatial_extents)]
    if not axes:
        return
    fused = s.fuse(*axes) if len(axes) > 1 else axes[0]
    f = _pick_factor(total, (lanes, 16, 8, 4))
    if f is None:
        if total >= PARALLEL_MIN_WORK:
            s.parallel(fused)
        return
    outer, inner = s.split(fused, factor=f)
    s.vectorize(inner)
    if total >= PARALLEL_MIN_WORK:
        s.parallel(outer)


REDUCTION_TILE_J = 4  # output columns accumulated together


def schedule_reduction(s: Schedule) -> None:
    """Contractions and reductions: spatial axes outside, the reduce axis
    innermost and vectorized, REDUCTION_TILE_J output columns accumulated
    together so each load of the shared operand feeds several FMAs."""
    c = s.stage
    nsp = len(c.spatial_extents)
    spatial, reduce = s.axes[:nsp], s.axes[nsp:]
    work = 1
    for e in c.spatial_extents + c.reduce_extent_list:
        work *= e
    if not spatial:
        return
    last = spatial[-1]
    inner = None
    if c.spatial_extents[-1] % REDUCTION_TILE_J == 0 and c.spatial_extents[-1] > REDUCTION_TILE_J:
        last, inner = s.split(last, factor=REDUCTION_TILE_J)
    outer_axes = spatial[:-1] + [last]
    fused = s.fuse(*outer_axes) if len(outer_axes) > 1 else outer_axes[0]
    if inner is not None:
        s.reorder(fused, *reduce, inner)
        s.unroll(inner)
    if len(reduce) == 1:
        s.vectorize(reduce[0])
    if work >= PARALLEL_MIN_WORK:
        s.parallel(fused)


DENSE_PACK_TILE_ROWS = 8  # rows of the register tile (at most: the largest divisor of the rows)


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def schedule_dense_pack(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int) -> bool:
    """TVM's dense_pack for x86: a register tile of DENSE_PACK_TILE_ROWS rows × one packed
    block of columns accumulated over k in registers (compute_at the output's
    tile loop), the epilogue (bias, activation) applied to the tile as it is
    written, output tiles spread over threads. The block width is the packed
    layout's, which alter-op-layout chose from the target's lanes."""
    s_out = Schedule(out)
    if anchor is out:
        local = s_out.cache_write()
    else:
        local = Schedule(anchor)
    bn = anchor_pack_width(anchor)
    axes = s_out.axes[: len(out.spatial_extents)]
    *batch, i, j = axes if len(axes) >= 2 else (None, axes[0])  # type: ignore[misc]
    extents = out.spatial_extents
    outer: list[str] = list(batch)
    inner: list[str] = []
    if i is not None:
        mr = _largest_divisor(extents[-2], DENSE_PACK_TILE_ROWS)
        io, ii = s_out.split(i, factor=mr)
        outer.append(io)
        inner.append(ii)
    jo, ji = s_out.split(j, factor=bn)
    outer.append(jo)
    inner.append(ji)
    s_out.reorder(*outer, *inner)
    fused = s_out.fuse(*outer) if len(outer) > 1 else outer[0]
    if len(inner) > 1:
        s_out.unroll(inner[0])
    s_out.vectorize(ji)
    s_out.parallel(fused)
    local.compute_at(out, fused)
    k = anchor.axis_names[-1]
    spatial = anchor.axis_names[:-1]
    local.reorder(k, *spatial)
    if len(spatial) > 1:
        local.unroll(spatial[-2])
    local.vectorize(spatial[-1])
    return True


def anchor_pack_width(anchor: te.ComputeOp) -> int:
    """bn of a packed contraction's stage: the last dimension of its packed weight read."""
    for op in anchor.body.block.ops:
        if (
            isinstance(op, te.ReadOp)
            and op.tensor.type.get_shape()
            and len(op.tensor.type.get_shape()) == len(anchor.spatial_extents) + 1
        ):  # type: ignore[union-attr]
            return op.tensor.type.get_shape()[-1]  # type: ignore[union-attr]
    return 16


CONV2D_TILE_WIDTH = 8  # output pixels of the register tile (at most: the largest divisor of the width)


def schedule_conv2d_nhwc(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int) -> bool:
    """Direct NHWC convolution: a register tile of CONV2D_TILE_WIDTH output pixels ×
    one block of output channels (vectors), accumulated over (ry, rx, rc) — the
    same micro-kernel as dense_pack, the input read from a padded copy. Other
    layouts, and channel counts no vector block divides, keep the default."""
    if tuple(anchor.axis_names[:4]) != CONV2D_NHWC_AXES:
        return False
    _, _, ow, o = anchor.spatial_extents
    bn = next((b for b in (2 * lanes, lanes) if o % b == 0), None)
    if bn is None:
        return False
    s_out = Schedule(out)
    local = s_out.cache_write() if anchor is out else Schedule(anchor)
    an, ay, ax, af = s_out.axes[:4]  # the output's own names for n, y, x, f
    xr = _largest_divisor(ow, CONV2D_TILE_WIDTH)
    xo, xi = s_out.split(ax, factor=xr)
    fo, fi = s_out.split(af, factor=bn)
    s_out.reorder(an, ay, xo, fo, xi, fi)
    fused = s_out.fuse(an, ay, xo, fo)
    s_out.unroll(xi)
    s_out.vectorize(fi)
    s_out.parallel(fused)
    local.compute_at(out, fused)
    rc, ry, rx = CONV2D_REDUCE_AXES
    _, _, x, f = CONV2D_NHWC_AXES
    local.reorder(ry, rx, rc, x, f)
    local.unroll(x)
    local.vectorize(f)
    return True


@dataclass(frozen=True)
class Template:
    """The schedule of a kernel built around one anchor stage.

    `schedule(anchor, out, lanes)` schedules the anchor and the kernel's output
    (the anchor itself, or its epilogue) and says whether it applied; stages with
    a role in `root_roles` are computed on their own (not inlined into the anchor)
    when it does."""

    schedule: Callable[[te.ComputeOp, te.ComputeOp, int], bool]
    root_roles: tuple[str, ...] = ()


# the template of each graph op that has one, found through its anchor stage
TEMPLATES: dict[type[graph.GraphOp], Template] = {
    graph.DensePackOp: Template(schedule_dense_pack),
    graph.BatchMatmulPackOp: Template(schedule_dense_pack),
    graph.Conv2dOp: Template(schedule_conv2d_nhwc, root_roles=(ROLE_PAD,)),
}


def template_of(c: te.ComputeOp) -> Template | None:
    if c.anchor is None:
        return None
    op = graph.OPS_BY_RELAY_NAME.get(c.anchor.data)
    return TEMPLATES.get(op) if op is not None else None  # type: ignore[arg-type]


def apply_default_schedule(stage: te.ComputeOp, lanes: int = 16) -> None:
    s = Schedule(stage)
    if stage.reduce_extent_list:
        schedule_reduction(s)
    else:
        schedule_injective(s, lanes)


def has_schedule(fn: func.FuncOp) -> bool:
    """Any schedule op at all: the stage-making ones (cache_write, cache_read, rfactor) too,
    or a hand-written schedule of only those would be overwritten by the default."""
    return any(
        isinstance(o, te.SchedulePrimitive | te.CacheWriteOp | te.CacheReadOp | te.RfactorOp) for o in fn.body.block.ops
    )


@dataclass(frozen=True)
class ApplyDefaultSchedule(ModulePass):
    """Give every kernel without a schedule its op family's default schedule."""

    name = "apply-default-schedule"

    vector_lanes: int = 16  # f32 lanes of the target's vectors: what templates block channels by

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.vector_lanes < 1:
            raise LatheError(f"apply-default-schedule: vector_lanes must be positive, got {self.vector_lanes}")
        for f in defined_functions(op):
            if not is_kernel(f) or has_schedule(f):
                continue
            schedule_kernel(f, self.vector_lanes)  # type: ignore[arg-type]


def schedule_kernel(f: func.FuncOp, lanes: int) -> None:
    """Inline injective producers (as TOPI does); then the anchor's template, or a
    default schedule per remaining stage."""
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    computes = [o for o in f.body.block.ops if isinstance(o, te.ComputeOp)]
    anchor = next((c for c in computes if template_of(c) is not None), None)
    out = outputs[0].owner if len(outputs) == 1 else None
    if (
        anchor is not None
        and isinstance(out, te.ComputeOp)
        and out.spatial_extents == anchor.spatial_extents
        and not [c for c in computes if c.reduce_extent_list and c is not anchor]
    ):
        template = template_of(anchor)
        assert template is not None
        roots = [c for c in computes if c.role is not None and c.role.data in template.root_roles]
        for c in computes:
            if c.result not in outputs and not c.reduce_extent_list and c not in roots:
                Schedule(c).compute_inline()
        if template.schedule(anchor, out, lanes):
            for c in roots:
                schedule_injective(Schedule(c), lanes)
            return
        for c in roots:
            Schedule(c).compute_inline()
    else:
        for c in computes:
            if c.result not in outputs and not c.reduce_extent_list:
                Schedule(c).compute_inline()
    for c in computes:
        if c.result in outputs or c.reduce_extent_list:
            apply_default_schedule(c, lanes)
