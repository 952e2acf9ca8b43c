"""Schedules: a Python handle that emits schedule-primitive ops, and the
default schedule templates (Lathe's counterpart of TVM's TOPI x86 schedules).

`Schedule(stage)` appends `te.split`/`te.reorder`/... ops after the kernel's
last compute, so the result is ordinary IR: printed, parsed back, replayed.
Templates declare their knobs (`Knob`) so a tuner can search the same space
the defaults pick a point in.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from lathe.dialects import te
from lathe.passes.outline import is_kernel


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
        self._emit(te.TileOp, x_axis=StringAttr(x), y_axis=StringAttr(y),
                   x_factor=IntegerAttr(x_factor, i64), y_factor=IntegerAttr(y_factor, i64))
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


@dataclass(frozen=True)
class Knob:
    """One tunable choice of a schedule template."""

    name: str
    choices: tuple
    default: object


PARALLEL_MIN_WORK = 1 << 14  # elements*reduction below which threads cost more than they save


def _pick_factor(extent: int, candidates=(16, 8, 4)) -> int | None:
    return next((f for f in candidates if extent % f == 0 and extent > f), None)


def schedule_injective(s: Schedule) -> None:
    """Fuse all axes, vectorize a 16-wide inner part, parallelize the rest if big."""
    c = s.stage
    total = 1
    for e in c.spatial_extents:
        total *= e
    axes = s.axes
    if not axes:
        return
    fused = s.fuse(*axes) if len(axes) > 1 else axes[0]
    f = _pick_factor(total)
    if f is None:
        if total >= PARALLEL_MIN_WORK:
            s.parallel(fused)
        return
    outer, inner = s.split(fused, factor=f)
    s.vectorize(inner)
    if total >= PARALLEL_MIN_WORK:
        s.parallel(outer)


DENSE_KNOBS = (
    Knob("tile_j", (1, 2, 4, 8), 4),
)


def schedule_reduction(s: Schedule, tile_j: int = 4) -> None:
    """Contractions and reductions: spatial axes outside, the reduce axis
    innermost and vectorized, `tile_j` output columns accumulated together so
    each load of the shared operand feeds several FMAs."""
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
    if tile_j > 1 and c.spatial_extents[-1] % tile_j == 0 and c.spatial_extents[-1] > tile_j:
        last, inner = s.split(last, factor=tile_j)
    outer_axes = spatial[:-1] + [last]
    fused = s.fuse(*outer_axes) if len(outer_axes) > 1 else outer_axes[0]
    if inner is not None:
        s.reorder(fused, *reduce, inner)
        s.unroll(inner)
    if len(reduce) == 1:
        s.vectorize(reduce[0])
    if work >= PARALLEL_MIN_WORK:
        s.parallel(fused)


def apply_default_schedule(stage: te.ComputeOp) -> None:
    s = Schedule(stage)
    if stage.reduce_extent_list:
        schedule_reduction(s)
    else:
        schedule_injective(s)


def has_schedule(fn: func.FuncOp) -> bool:
    return any(isinstance(o, te.SchedulePrimitive) for o in fn.body.block.ops)


@dataclass(frozen=True)
class ApplyDefaultSchedule(ModulePass):
    """Give every kernel without a schedule its op family's default schedule."""

    name = "apply-default-schedule"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in op.ops:
            if not is_kernel(f) or has_schedule(f):  # type: ignore[arg-type]
                continue
            outputs = set(f.body.block.last_op.operands)  # type: ignore[union-attr]
            for c in [o for o in f.body.block.ops if isinstance(o, te.ComputeOp)]:  # type: ignore[union-attr]
                if c.result not in outputs and not c.reduce_extent_list:
                    Schedule(c).compute_inline()  # like TOPI: injective producers are inlined
                else:
                    apply_default_schedule(c)
