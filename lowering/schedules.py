"""The default schedule templates (Lathe's counterpart of TVM's TOPI x86 schedules) and the
passes that apply them, the GPU ones (gpu_schedules.py) where the target is a GPU.

The `Schedule` builder and knob configurations live in schedule_builder.py (shared with the
GPU templates) and are re-exported here. A kernel's template is found by its anchor stage's `anchor` mark (the graph
op it computes), never by stage names (lowering/anchors.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from lathe.dialects import graph, te
from lathe.dialects.functions import defined_functions, is_kernel
from lathe.errors import LatheError
from lathe.lowering.anchors import ROLE_DEPTHWISE
from lathe.lowering.conv2d_template import CONV2D_NHWC
from lathe.lowering.dense_template import DENSE_PACK
from lathe.lowering.depthwise_template import DEPTHWISE_NHWC
from lathe.lowering.pool_template import POOL2D_NHWC
from lathe.lowering.row_kernel import row_statistics, row_tiles
from lathe.lowering.schedule_builder import (
    CONFIG_ATTR,
    FALLBACK_L2_BYTES,
    UNKNOWN_CACHES,
    CacheInfo,
    Config,
    Knob,
    KnobValue,
    Schedule,
    Space,
    Template,
    _CachedSchedule,
    default_config,
    kernel_config,
    knob,
)
from lathe.lowering.winograd_template import WINOGRAD_INPUT, WINOGRAD_OUTPUT

__all__ = [
    "CONFIG_ATTR",
    "ApplyDefaultSchedule",
    "ApplySchedule",
    "CacheInfo",
    "Config",
    "Knob",
    "KnobValue",
    "Schedule",
    "Space",
    "_CachedSchedule",
    "default_config",
    "kernel_config",
    "knob",
]


# -- per-stage schedules: the kernels no template claims ----------------------------------

PARALLEL_MIN_WORK = 1 << 14  # elements*reduction below which threads cost more than they save
PARALLEL_POLICIES = ("auto", "always", "never")  # auto: when the stage does PARALLEL_MIN_WORK


def _pick_factor(extent: int, candidates: tuple[int, ...]) -> int | None:
    return next((f for f in candidates if extent % f == 0 and extent > f), None)


def _parallel_wanted(work: int, policy: KnobValue) -> bool:
    return policy == "always" or (policy == "auto" and work >= PARALLEL_MIN_WORK)


ROW_MIN_LANES = 8  # a last axis this long or longer is a vector row of its own when no vector divides it


def schedule_injective(
    s: Schedule,
    lanes: int,
    vector_width: int | None = None,
    parallel: KnobValue = "auto",
    rows: KnobValue = "on",
) -> None:
    """Fuse all axes, vectorize an inner part of `vector_width` (default: the target's
    lanes; else the largest of 16/8/4 that divides), parallelize the rest when there is
    enough work. Where the vector does not divide the last axis (116 channels), a lane's
    multi-dimensional index would be a division by that axis, and the loads gathers; there
    (`rows` on) the vector runs along the rows instead (see `schedule_vector_rows`)."""
    c = s.stage
    ext = c.spatial_extents
    total = math.prod(ext)
    axes = s.axes[: len(ext)]
    if not axes:
        return
    f = _pick_factor(total, (vector_width or lanes, 16, 8, 4))
    if rows == "on" and len(ext) > 1 and ext[-1] % (vector_width or lanes) and schedule_vector_rows(s, lanes, parallel):
        return
    fused = s.fuse(*axes) if len(axes) > 1 else axes[0]
    if f is None:
        if _parallel_wanted(total, parallel):
            s.parallel(fused)
        return
    outer, inner = s.split(fused, factor=f)
    s.vectorize(inner)
    if _parallel_wanted(total, parallel):
        s.parallel(outer)


def schedule_vector_rows(s: Schedule, lanes: int, parallel: KnobValue = "auto") -> bool:
    """Vectors along a row, the last axes fused until the row has `ROW_MIN_LANES` elements
    (a 116-channel row alone; 7-wide NCHW rows with their channel), the outer axes fused
    and parallel. The row is vectorized whole: its reads of contiguous operands, and of
    broadcast ones along it (a bias, a squeeze-excitation's per-channel scale), stay vector
    loads, and the backend picks the widest vector that fits with a narrower tail. False
    when the whole stage is one short row (nothing to gain over the fused form)."""
    c = s.stage
    ext = c.spatial_extents
    axes = s.axes[: len(ext)]
    k = len(ext) - 1
    while k > 0 and math.prod(ext[k:]) < ROW_MIN_LANES:
        k -= 1
    if k == 0:
        return False
    row = s.fuse(*axes[k:]) if k < len(ext) - 1 else axes[-1]
    s.vectorize(row)
    outer = s.fuse(*axes[:k]) if k > 1 else axes[0]
    if _parallel_wanted(math.prod(ext), parallel) and math.prod(ext[:k]) > 1:
        s.parallel(outer)
    return True


def schedule_rows(s: Schedule, lanes: int) -> None:
    """A padded copy: vectors along the last axis only, the other axes fused and parallel, so
    the bounds check of a row is one test per vector (fused with the last axis, every lane
    divides the flat index to find its row and the copy gathers). A channel count no 8-lane
    vector divides (3: a first layer's image) makes the row the last two axes, (x, c) fused,
    with the outer axes parallel: per-pixel rows of 3 were ~40,000 parallel iterations of a
    few lanes each (230x230x3 on 2 threads: 1.25 ms, now 85 us; 12 channels 1.0 ms -> 0.43)."""
    c = s.stage
    ext = c.spatial_extents
    row_factors = (lanes, 16, 8)
    f = next((f for f in row_factors if ext and ext[-1] % f == 0), None)
    if len(ext) < 2 or (f is None and len(ext) < 3):
        schedule_injective(s, lanes)
        return
    total = 1
    for e in ext:
        total *= e
    axes = s.axes[: len(ext)]
    if f is not None:
        outer, inner = s.split(axes[-1], factor=f)
        s.vectorize(inner)
        fused = s.fuse(*axes[:-1], outer)
    else:
        row = s.fuse(axes[-2], axes[-1])
        width = ext[-2] * ext[-1]
        f = next((f for f in row_factors if width % f == 0 and width > f and f % ext[-1] == 0), None)
        if f is not None:  # whole vectors of whole pixels; else LLVM's vectorizer takes the row
            _, inner = s.split(row, factor=f)
            s.vectorize(inner)
        else:
            s.vectorize(row)
        fused = s.fuse(*axes[:-2]) if len(axes) > 3 else axes[0]
    if _parallel_wanted(total, "auto"):
        s.parallel(fused)


REDUCTION_TILE_J = 4  # output columns accumulated together


def schedule_reduction(
    s: Schedule, tile_j: int = REDUCTION_TILE_J, parallel: KnobValue = "auto", lanes: int = 16
) -> None:
    """Contractions and reductions: spatial axes outside, the reduce axis innermost and
    vectorized, `tile_j` output columns accumulated together (1: none) so each load of the
    shared operand feeds several FMAs."""
    c = s.stage
    nsp = len(c.spatial_extents)
    spatial, reduce = s.axes[:nsp], s.axes[nsp:]
    work = 1
    for e in c.spatial_extents + c.reduce_extent_list:
        work *= e
    if not spatial:
        return
    if along_last_spatial_axis(c) and c.spatial_extents[-1] > 1:
        schedule_reduction_across_rows(s, lanes, parallel)
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
    if _parallel_wanted(work, parallel):
        s.parallel(fused)


def _depends_on(v, arg, depth: int = 16) -> bool:
    if v is arg:
        return True
    op = v.owner
    return (
        depth > 0
        and isinstance(op, Operation)
        and op.dialect_name() == "arith"
        and any(_depends_on(o, arg, depth - 1) for o in op.operands)
    )


def along_last_spatial_axis(stage: te.ComputeOp) -> bool:
    """Every read of the reduction walks its source's last axis with the output's last axis
    (an NHWC global pool, a sum over a middle axis) or is uniform along it (the pooled vector
    of a squeeze-excitation's 1x1 conv, whose HWIO weight is read along the output channels).
    There the reduce axes stride across rows, and a vector along the output's last axis is a
    contiguous load per reduce step. Reads of inlined producers must walk it."""
    return last_axis_walk(stage) is not None


def _last_by_constant(v, last, kinds) -> int:
    """d where v is `last <op> d` for an op of `kinds` and a constant d, else 0."""
    op = _unclamped(v).owner
    if not isinstance(op, kinds) or _unclamped(op.lhs) is not last:
        return 0
    d = op.rhs.owner
    return d.value.value.data if isinstance(d, arith.ConstantOp) and isinstance(d.value, IntegerAttr) else 0


def last_axis_walk(stage: te.ComputeOp) -> int | None:
    """The block in which `along_last_spatial_axis`'s reads walk the last axis (None where they
    do not): 1, or b where a read walks it as [last // b, ..., last % b], a weight that
    block-conv-weights laid out by blocks of b filters. A squeeze-excitation's fc2 fused with
    its scale (a per-stage kernel: its output is the scaled map) reads such a weight; a vector
    of the whole block then loads contiguous rows (its index arithmetic folds), where the
    contraction schedule it took before ran scalar (EfficientNet-B0's 48 -> 1152 fc2 and scale
    at 7x7: 46-52 -> 26-31 us)."""
    args = list(stage.body.block.args)
    last = args[len(stage.spatial_extents) - 1]
    walks, block = False, 1
    for op in stage.body.block.ops:
        if not isinstance(op, te.ReadOp) or not op.indices:
            continue
        b = _last_by_constant(op.indices[-1], last, (arith.RemSIOp, arith.RemUIOp))
        if _unclamped(op.indices[-1]) is last:
            walks = True
        elif b > 1 and all(
            _last_by_constant(v, last, (arith.FloorDivSIOp, arith.DivSIOp, arith.DivUIOp)) == b
            or not _depends_on(v, last)
            for v in op.indices[:-1]
        ):
            walks, block = True, max(block, b)
            continue
        elif any(_depends_on(v, last) for v in op.indices):
            return None
        producer = op.tensor.owner
        if isinstance(producer, te.ComputeOp) and not producer.reduce_extent_list:
            mapped = [a for a, v in zip(producer.body.block.args, op.indices) if _unclamped(v) is last]
            if mapped != [producer.body.block.args[-1]] or not all(
                idx and idx[-1] is mapped[0] for idx in _reads(producer, {mapped[0]: mapped[0]})
            ):
                return None
    return block if walks else None


def schedule_reduction_across_rows(s: Schedule, lanes: int, parallel: KnobValue = "auto") -> None:
    """The reduce axes outside, a vector of the last spatial axis inside (accumulated in the
    output, in cache), the outer spatial axes and the vectors fused and parallel: each thread
    streams its own cache lines once. (Reduce axes innermost, as for a contraction, read
    four strided floats per step and the whole input once per four channels.)"""
    c = s.stage
    ext = c.spatial_extents
    nsp = len(ext)
    spatial, reduce = s.axes[:nsp], s.axes[nsp:]
    block = last_axis_walk(c) or 1
    vector = block if block > 1 and ext[-1] % block == 0 else lanes  # a blocked read's block is whole in a vector
    if ext[-1] % vector == 0 and ext[-1] > vector:
        last, inner = s.split(spatial[-1], factor=vector)
        outer_axes = [*spatial[:-1], last]
    else:
        inner, outer_axes = spatial[-1], spatial[:-1]
    if not outer_axes:  # one row: the reduce axes around its vector
        s.reorder(*reduce, inner)
        s.vectorize(inner)
        return
    fused = s.fuse(*outer_axes) if len(outer_axes) > 1 else outer_axes[0]
    s.reorder(fused, *reduce, inner)
    s.vectorize(inner)
    outer = math.prod(ext) // (vector if ext[-1] % vector == 0 and ext[-1] > vector else ext[-1])
    if outer > 1 and _parallel_wanted(math.prod(ext + c.reduce_extent_list), parallel):
        s.parallel(fused)


def schedule_row_kernel(
    s: Schedule, stats: list[te.ComputeOp], tiles: list[te.ComputeOp] = (), parallel: KnobValue = "auto"
) -> None:
    """One parallel loop over the rows; in it each statistic's pass over the row (its reduce
    axis vectorized: vector accumulators, reduced across lanes once at the end) and each row
    tile's (a vector at a time, into a row-sized buffer), in kernel order, then the row's
    outputs, a vector at a time."""
    c = s.stage
    ext = c.spatial_extents
    axes = s.axes[: len(ext)]
    row = s.fuse(*axes[:-1]) if len(axes) > 2 else axes[0]
    s.vectorize(axes[-1])  # whole: what is uniform along the row (1 / sum) is computed once per row
    kernel_order = list(c.parent_block().ops)  # type: ignore[union-attr]
    for r in sorted([*stats, *tiles], key=kernel_order.index):
        rs = Schedule(r)
        rs.compute_at(c, row)
        rs.vectorize(rs.axes[-1])
    if _parallel_wanted(math.prod(ext) * (1 + len(stats)), parallel):
        s.parallel(row)


TRANSPOSE_TILE = 16  # the tile of a transposing stage along the axis its input is contiguous in


def _unclamped(v):
    """v without the clamps (max/min with constants) a padded read puts around its index."""
    while isinstance(v.owner, arith.MaxSIOp | arith.MinSIOp) and any(
        isinstance(o.owner, arith.ConstantOp) for o in v.owner.operands
    ):
        v = next(o for o in v.owner.operands if not isinstance(o.owner, arith.ConstantOp))
    return v


def _reads(stage: te.ComputeOp, index_of: dict):
    """The index lists of every read in `stage` and in the injective producers it reads (which
    a per-stage schedule inlines), each index as the reading stage's block argument it is,
    else None."""
    for op in stage.body.block.ops:
        if isinstance(op, te.ReadOp):
            mapped = [index_of.get(_unclamped(v)) for v in op.indices]
            yield mapped
            producer = op.tensor.owner
            if isinstance(producer, te.ComputeOp) and not producer.reduce_extent_list:
                yield from _reads(producer, {a: m for a, m in zip(producer.body.block.args, mapped) if m is not None})


def transposed_axis(stage: te.ComputeOp) -> int | None:
    """The output axis a transposing read walks its source along (the source's last index is
    that axis, not the output's last one): a layout change, where fusing every axis and
    vectorizing the flat index gathers with a division per lane. Reads of injective producers
    count (a transpose fused with a pad or a slice). None for other stages."""
    args = list(stage.body.block.args)
    nsp = len(stage.spatial_extents)
    if nsp < 2:
        return None
    last = args[nsp - 1]
    for idx in _reads(stage, {a: a for a in args}):
        if idx and idx[-1] in args[: nsp - 1] and last in idx[:-1]:
            return args.index(idx[-1])
    return None


def transposed_groups(stage: te.ComputeOp) -> tuple[list[int], list[int]] | None:
    """The two sides of a transpose as groups of output axes: those the transposing read's
    last source dimensions walk in order, ending at its contiguous one, and the output's
    trailing axes that walk consecutive source dimensions. NCHW -> NHWC is [h, w] x [c],
    NHWC -> NCHW [c] x [h, w]: each side merged, a tile of 16 fits where no single axis of
    56 takes one. None for stages `transposed_axis` does not find transposing."""
    args = list(stage.body.block.args)
    nsp = len(stage.spatial_extents)
    if transposed_axis(stage) is None:
        return None
    last = args[nsp - 1]
    for idx in _reads(stage, {a: a for a in args}):
        if not (idx and idx[-1] in args[: nsp - 1] and last in idx[:-1]):
            continue
        axis_of = [args.index(a) if a is not None else None for a in idx]  # per source dimension
        ins = [axis_of[-1]]
        for a in reversed(axis_of[:-1]):
            if a is None or a != ins[0] - 1:
                break
            ins.insert(0, a)
        dim_of = {a: d for d, a in enumerate(axis_of) if a is not None}
        outs = [nsp - 1]
        while outs[0] - 1 in dim_of and dim_of[outs[0] - 1] == dim_of[outs[0]] - 1:
            outs.insert(0, outs[0] - 1)
        if set(ins) & set(outs):
            return None
        return ins, outs
    return None


def schedule_transpose(s: Schedule, axis: int, tile: int, parallel: KnobValue = "auto", lanes: int = 16) -> bool:
    """A tiled transpose: blocks of (tile along `axis`) x (a vector of the output's last axis),
    each side's group of axes merged first (`transposed_groups`), the tile no taller than it
    is wide, so the backend transposes it in registers (backends/llvm/tile_transpose.py):
    contiguous loads of its source rows, shuffles, contiguous stores. Where the last axis
    has too few elements for a vector (3 channels), the vector runs along `axis` instead,
    and 2 or 3 channels are unrolled around it: the backend interleaves their rows into
    one contiguous store. A side no factor of 4 or more divides takes a guarded tile where the
    other side takes a vector. The side with more tiles is the outer, parallel loop (pixels,
    in either direction of a CNN's layout change). False when no factor of 4 or more divides
    either side."""
    c = s.stage
    ext = list(c.spatial_extents)
    axes = s.axes[: len(ext)]
    groups = transposed_groups(c)
    widths = [f for f in (16, 8, 4) if f <= max(lanes, 4)]  # a vector of the target at most
    fc = next((f for f in widths if ext[-1] % f == 0), 1)
    if groups is not None and (fc >= 4 or math.prod(ext[d] for d in groups[1]) % 4 == 0):
        ins, outs = groups
        side_s = s.fuse(*(axes[d] for d in ins)) if len(ins) > 1 else axes[ins[0]]
        side_c = s.fuse(*(axes[d] for d in outs)) if len(outs) > 1 else axes[outs[0]]
        ext_s, ext_c = math.prod(ext[d] for d in ins), math.prod(ext[d] for d in outs)
        outer = [a for d, a in enumerate(axes) if d not in ins and d not in outs]
    else:
        side_s, side_c, ext_s, ext_c = axes[axis], axes[-1], ext[axis], ext[-1]
        outer = [a for d, a in enumerate(axes[:-1]) if d != axis]
    fc = next((f for f in widths if ext_c % f == 0), 1)
    fs = next((f for f in (tile, 16, 8, 4) if f <= tile and ext_s % f == 0), 1)
    if fs < 4 and fc >= 4 and ext_s >= 4:
        # no factor divides (21 or 255 channels cut from a padded NHWC tensor back to NCHW): a
        # guarded tile, whose source rows serve a tile of channels each, where tiles of one
        # channel streamed the whole source once per channel (1x128x128x21: 1271 -> 219 us,
        # x255: 54 -> 8.6 ms, as fast as 256's tile transpose; the guard keeps the tile's
        # loads from becoming one register transpose)
        fs = next(f for f in (tile, 16, 8, 4) if f <= tile and f <= ext_s)
    if max(fc, fs) < 4:
        return False
    if fc >= 4:
        fs = min(fs, fc)
    so, si = s.split(side_s, factor=fs)
    tiles = so  # the loop over tiles that runs in parallel
    if fc >= 4:
        co, ci = s.split(side_c, factor=fc)
        if ext_c // fc > -(-ext_s // fs):
            # the side with more tiles outermost and parallel: NHWC -> NCHW splits its pixels
            # as NCHW -> NHWC and the conv between them do, so each thread reads what its own
            # core wrote (split by channels, half of every read came from the other core's
            # L2: 48-51 -> 20-23 us at 2 threads, a C model of the conv row's data flow)
            s.reorder(*outer, co, so, si, ci)
            tiles = co
        else:
            s.reorder(*outer, so, co, si, ci)
        s.unroll(si)
        s.vectorize(ci)
    elif ext_c <= 3:  # a whole pixel of 3 channels per lane: the tile is one contiguous run, interleaved
        s.reorder(*outer, so, side_c, si)
        s.unroll(side_c)
        s.vectorize(si)
    else:
        co, ci = s.split(side_c, factor=fc)
        s.reorder(*outer, so, co, ci, si)
        s.vectorize(si)
    if _parallel_wanted(math.prod(ext), parallel):
        s.parallel(s.fuse(*outer, tiles) if outer else tiles)
    return True


def apply_default_schedule(stage: te.ComputeOp, lanes: int = 16, knobs: dict[str, KnobValue] | None = None) -> None:
    k = knobs or {}
    s = Schedule(stage)
    if stage.reduce_extent_list:
        schedule_reduction(s, int(k.get("reduce_tile_j", REDUCTION_TILE_J)), k.get("parallel", "auto"), lanes)
        return
    axis = transposed_axis(stage)
    tile = int(k.get("transpose_tile", TRANSPOSE_TILE))
    if axis is not None and tile and schedule_transpose(s, axis, tile, k.get("parallel", "auto"), lanes):
        return
    schedule_injective(
        s, lanes, int(k.get("vector_width", lanes)), k.get("parallel", "auto"), k.get("vector_rows", "on")
    )


def per_stage_space(lanes: int) -> Space:
    """The knobs of the per-stage schedules, shared by every stage of a kernel no template claims."""
    return (
        knob("vector_width", (4, 8, 16, 32, 64), lanes),
        knob("reduce_tile_j", (1, 2, 4, 8, 16), REDUCTION_TILE_J),
        knob("parallel", PARALLEL_POLICIES, "auto"),
        knob("transpose_tile", (0, 4, 8, 16, 32), TRANSPOSE_TILE),  # 0: transposes fuse and vectorize as any stage
        knob("row_kernel", ("on", "off"), "on"),  # off: a row kernel's stages each run their own loop
        knob("vector_rows", ("on", "off"), "on"),  # off: a last axis no vector divides is fused with the rest
    )


PER_STAGE = "per_stage"  # the name of the per-stage schedules' knob space (kernels no template claims)

# the template of each graph op that has one, found through its anchor stage; (op, role): the
# template of an anchor with that role (a variant of the op with a template of its own)
TEMPLATES: dict[type[graph.GraphOp] | tuple[type[graph.GraphOp], str], Template] = {
    graph.DensePackOp: DENSE_PACK,
    graph.BatchMatmulPackOp: DENSE_PACK,
    graph.Conv2dOp: CONV2D_NHWC,
    (graph.Conv2dOp, ROLE_DEPTHWISE): DEPTHWISE_NHWC,
    graph.MaxPool2dOp: POOL2D_NHWC,
    graph.AvgPool2dOp: POOL2D_NHWC,
    graph.WinogradInputTransformOp: WINOGRAD_INPUT,
    graph.WinogradOutputTransformOp: WINOGRAD_OUTPUT,
}


def template_of(c: te.ComputeOp) -> Template | None:
    if c.anchor is None:
        return None
    op = graph.OPS_BY_RELAY_NAME.get(c.anchor.data)
    if op is None:
        return None
    return TEMPLATES.get((op, c.role.data)) if c.role is not None else TEMPLATES.get(op)  # type: ignore[arg-type]


def has_schedule(fn: func.FuncOp) -> bool:
    """Any schedule op at all: the stage-making ones (cache_write, cache_read, rfactor) too,
    or a hand-written schedule of only those would be overwritten by the default."""
    return any(
        isinstance(o, te.SchedulePrimitive | te.CacheWriteOp | te.CacheReadOp | te.RfactorOp) for o in fn.body.block.ops
    )


@dataclass(frozen=True)
class KernelPlan:
    """How a kernel is scheduled: by `template` around `anchor` (its output `out`), or, with
    no template, by the per-stage schedules; and the knobs that schedule has here."""

    template: Template | None
    anchor: te.ComputeOp | None
    out: te.ComputeOp | None
    space: Space

    @property
    def template_name(self) -> str:
        return self.template.name if self.template else PER_STAGE


def plan_kernel(f: func.FuncOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES) -> KernelPlan:
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    computes = [o for o in f.body.block.ops if isinstance(o, te.ComputeOp)]
    anchor = next((c for c in computes if template_of(c) is not None), None)
    out = outputs[0].owner if len(outputs) == 1 else None
    others = [c for c in computes if c is not anchor]
    if (
        anchor is not None
        and isinstance(out, te.ComputeOp)
        and out.spatial_extents == anchor.spatial_extents
        and (  # other reductions only as the statistics of out's rows (a fused softmax)
            not [c for c in others if c.reduce_extent_list] or row_statistics(out, others, outputs) is not None
        )
    ):
        template = template_of(anchor)
        assert template is not None
        space = template.space(anchor, out, lanes, caches)
        if space is not None:
            return KernelPlan(template, anchor, out, space)
    return KernelPlan(None, None, None, per_stage_space(lanes))


def schedule_kernel(
    f: func.FuncOp, lanes: int, config: Config | None = None, caches: CacheInfo = UNKNOWN_CACHES
) -> None:
    """Inline injective producers (as TOPI does); then the anchor's template, or the
    per-stage schedules, with `config`'s knob values (the kernel's own, else the defaults
    for the target's `caches`)."""
    plan = plan_kernel(f, lanes, caches)
    config = config or kernel_config(f) or Config(plan.template_name)
    try:
        knobs = config.resolve(plan.template_name, plan.space)
    except LatheError as e:
        raise LatheError(f"@{f.sym_name.data}: {e.message}", note=e.note) from None
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    computes = [o for o in f.body.block.ops if isinstance(o, te.ComputeOp)]
    if plan.template is not None:
        assert plan.anchor is not None and plan.out is not None
        roots = [c for c in computes if c.role is not None and c.role.data in plan.template.root_roles]
        for c in computes:
            if c.result not in outputs and not c.reduce_extent_list and c not in roots:
                Schedule(c).compute_inline()
        plan.template.schedule(plan.anchor, plan.out, lanes, knobs)
        for c in roots:
            schedule_rows(Schedule(c), lanes)
        return
    out = outputs[0].owner if len(outputs) == 1 else None
    stats = row_statistics(out, computes, outputs) if isinstance(out, te.ComputeOp) else None
    if knobs["row_kernel"] != "on":
        stats = None
    tiles = row_tiles(out, stats, computes) if stats is not None else []  # type: ignore[arg-type]
    kept = broadcast_stages(computes, outputs) if stats is None else []
    for c in computes:
        if c.result not in outputs and not c.reduce_extent_list and c not in tiles and c not in kept:
            Schedule(c).compute_inline()
    if stats is not None:
        schedule_row_kernel(Schedule(out), stats, tiles, knobs["parallel"])
        return
    for c in computes:
        if c.result in outputs or c.reduce_extent_list or c in kept:
            # A map scaled by a broadcast stage (a squeeze-excitation's gate) runs as vector
            # rows, pixels parallel and a pixel's channels one row: a flat vector index cost a
            # division and a remainder per vector to find the gate's channel (EfficientNet-B0's
            # fc2+scale kernels 0.47-0.94x, MobileNet-v3's 0.69-0.85x, one process, alternating,
            # load 2.1-2.5; 56x56x144 level).
            if (
                c not in kept
                and _reads_any(c, kept)
                and knobs["vector_rows"] == "on"
                and schedule_vector_rows(Schedule(c), lanes, knobs["parallel"])
            ):
                continue
            apply_default_schedule(c, lanes, knobs)


def _reads_any(stage: te.ComputeOp, stages: list[te.ComputeOp]) -> bool:
    tensors = {c.result for c in stages}
    return any(isinstance(op, te.ReadOp) and op.tensor in tensors for op in stage.body.block.ops)


BROADCAST_RATIO = 8  # a stage read by one this many times larger is computed once, not inlined


def broadcast_stages(computes: list[te.ComputeOp], outputs) -> list[te.ComputeOp]:
    """Injective stages read (broadcast) by a stage at least BROADCAST_RATIO times their size:
    a squeeze-excitation gate, sigmoid(conv(pooled) + bias) on 1x1xC, scaling a 56x56xC map.
    Inlined, its sigmoid would be computed once per pixel of the map instead of once per
    channel; as a stage of its own it is a C-long loop before the map's."""
    sizes = {c.result: math.prod(c.spatial_extents) for c in computes}
    readers: dict = {}
    for c in computes:
        for op in c.body.block.ops:
            if isinstance(op, te.ReadOp) and op.tensor in sizes:
                readers.setdefault(op.tensor, []).append(sizes[c.result])
    return [
        c
        for c in computes
        if c.result not in outputs
        and not c.reduce_extent_list
        and any(r >= BROADCAST_RATIO * max(sizes[c.result], 1) for r in readers.get(c.result, ()))
    ]


def _check_options(options: ApplyDefaultSchedule | ApplySchedule) -> None:
    for option in ("vector_lanes", "l2_bytes"):
        value = getattr(options, option)
        if value < 1:
            raise LatheError(f"{options.name}: {option} must be positive, got {value}")


def _caches(options: ApplyDefaultSchedule | ApplySchedule) -> CacheInfo:
    return CacheInfo(options.l2_bytes)


@dataclass(frozen=True)
class ApplyDefaultSchedule(ModulePass):
    """Give every kernel without a schedule its template's schedule: with the configuration in
    its `lathe.schedule_config` attribute (what a tuning record sets), else the default."""

    name = "apply-default-schedule"

    vector_lanes: int = 16  # f32 lanes of the target's vectors: what templates block channels by
    l2_bytes: int = FALLBACK_L2_BYTES  # one core's L2: what the CPU templates' defaults block for
    gpu: bool = False  # schedule for a GPU: lowering/gpu_schedules.py, every kernel bound to blocks/threads
    max_threads: int = 1024  # a GPU's most threads per block
    warp_size: int = 32  # a GPU's threads per warp (sub-group)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _check_options(self)
        for f in defined_functions(op):
            if is_kernel(f) and not has_schedule(f):
                _schedule(self, f, None)  # type: ignore[arg-type]


def _schedule(options: ApplyDefaultSchedule | ApplySchedule, f: func.FuncOp, config: Config | None) -> None:
    """One kernel with a pass's target options: the GPU templates for a GPU, else the CPU ones."""
    if options.gpu:
        from lathe.lowering.gpu_schedules import schedule_gpu_kernel

        schedule_gpu_kernel(f, options.max_threads, options.warp_size, config)
    else:
        schedule_kernel(f, options.vector_lanes, config, _caches(options))


def _template_name(options: ApplyDefaultSchedule | ApplySchedule, f: func.FuncOp) -> str:
    if options.gpu:
        from lathe.lowering.gpu_schedules import plan_gpu_kernel

        return plan_gpu_kernel(f, options.max_threads, options.warp_size).template_name
    return plan_kernel(f, options.vector_lanes, _caches(options)).template_name


@dataclass(frozen=True)
class ApplySchedule(ModulePass):
    """Schedule the kernels of `config`'s template (or only `kernel`) with that configuration,
    the others as apply-default-schedule does: how a configuration replays, and how lathe-opt
    shows the schedule ops it expands to."""

    name = "apply-schedule"

    config: str = ""
    kernel: str = ""  # a kernel's name: only it takes `config`
    vector_lanes: int = 16
    l2_bytes: int = FALLBACK_L2_BYTES
    gpu: bool = False
    max_threads: int = 1024
    warp_size: int = 32

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _check_options(self)
        try:
            config = Config.parse(self.config)
        except LatheError as e:  # the option is the user's input: name the pass it was given to
            raise LatheError(f"apply-schedule: option config: {e.message}", note=e.note) from None
        kernels = [f for f in defined_functions(op) if is_kernel(f) and not has_schedule(f)]
        chosen = [
            f
            for f in kernels
            if (self.kernel and f.sym_name.data == self.kernel)  # type: ignore[union-attr]
            or (not self.kernel and _template_name(self, f) == config.template)  # type: ignore[arg-type]
        ]
        if not chosen:
            have = sorted({f"@{f.sym_name.data} ({_template_name(self, f)})" for f in kernels})  # type: ignore[arg-type]
            raise LatheError(
                f"apply-schedule: no unscheduled kernel {'named ' + repr(self.kernel) if self.kernel else 'of template ' + repr(config.template)}",
                note="kernels: " + (", ".join(have) or "none"),
            )
        for f in kernels:
            _schedule(self, f, config if f in chosen else None)  # type: ignore[arg-type]
