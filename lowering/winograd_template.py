"""The Winograd transforms' templates (passes/winograd.py makes the ops, graph_to_te.py their
computes): a task is a tile (and a block of channels), the (m+2)² coefficients or m² pixels
of the tile unrolled, a vector of channels innermost.

Each transform is two separable stages: the rows Bᵀ d (Aᵀ M), computed per task into a
scratch tile, then each coefficient (pixel) a combination of one scratch row. Each body
chooses its formula with selects on its index; unrolled (or cut by index splitting) those
indices are constants and the selects fold, and LLVM keeps the scratch tile in registers. A
task's loads, stores and arithmetic are the separable transform's: 36 vector loads, 36
stores, 384 additions and multiplies for F(4, 3)'s input; 37 loads, 16 stores, 206 for the
output (the optimized LLVM IR; the same as when each coefficient's body read the whole tile,
whose copies LLVM's GVN merged, at about half the loop IR to lower and clean). Left to the
per-stage schedules (fused axes, one coefficient at a time) each element recomputed the whole
tile: the conv row's (64 @56, F(4, 3)) input transform took 379 us and its output transform
199 us, with these templates 35 and 32 us (profiler, 2 threads)."""

from __future__ import annotations

from lathe.dialects import te
from lathe.lowering.anchors import (
    WINOGRAD_INPUT_AXES,
    WINOGRAD_INPUT_ROWS_AXES,
    WINOGRAD_OUTPUT_AXES,
    WINOGRAD_OUTPUT_ROWS_AXES,
)
from lathe.lowering.schedule_builder import UNKNOWN_CACHES, CacheInfo, KnobValue, Schedule, Space, Template, knob


def _channel_blocks(channels: int, lanes: int) -> list[int]:
    """Whole vectors of channels that divide the channel count, one vector first: two vectors
    ran 1.02-1.13x (input) and 1.04-1.27x (output) slower on the conv row and 256 @14 (a task's
    tile then holds twice the vectors: 72 for F(4, 3)'s 36 points, more than AVX-512's 32)."""
    return [b for b in (lanes, 2 * lanes, lanes // 2, lanes // 4) if b >= 4 and channels % b == 0]


def _coefficients(stage: te.ComputeOp) -> int:
    """m + 2, from the input transform's (m+2)² coefficients."""
    return round(stage.spatial_extents[0] ** 0.5)


def winograd_input_space(
    anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES
) -> Space | None:
    """The channel block; None where no vector of 4 or more divides the channels."""
    if tuple(anchor.axis_names) != WINOGRAD_INPUT_AXES:
        return None
    blocks = _channel_blocks(anchor.spatial_extents[2], lanes)
    return (knob("block_c", blocks, blocks[0]),) if blocks else None


def _rows_stage(anchor: te.ComputeOp, axes: tuple[str, ...]) -> te.ComputeOp:
    """The stage of the separable transform's first half (Bᵀ d, Aᵀ M) the anchor reads
    (graph_to_te.py)."""
    read = next(op for op in anchor.body.block.ops if isinstance(op, te.ReadOp))
    owner = read.tensor.owner
    assert isinstance(owner, te.ComputeOp) and tuple(owner.axis_names) == axes
    return owner


def schedule_winograd_input(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Tasks of (tile, channel block), parallel; in one, the rows Bᵀ d into a scratch tile
    (a column j at a time, its rows ξ unrolled), then the coefficients ξ and ν unrolled, each
    a combination of one scratch row, around a vector of channels."""
    s = Schedule(out)
    e, p, c = s.axes[:3]
    xi, nu = s.split(e, factor=_coefficients(anchor))
    co, ci = s.split(c, factor=int(k["block_c"]))
    s.reorder(p, co, xi, nu, ci)
    task = s.fuse(p, co)
    s.parallel(task)
    s.unroll(xi)
    s.unroll(nu)
    s.vectorize(ci)
    rows = Schedule(_rows_stage(anchor, WINOGRAD_INPUT_ROWS_AXES))
    rows.compute_root()  # schedule_kernel inlined it, as every injective producer
    rows.compute_at(out, task)
    r_xi, r_j, r_p, r_c = rows.axes[:4]
    rows.reorder(r_p, r_xi, r_j, r_c)
    rows.unroll(r_xi)
    rows.unroll(r_j)
    rows.vectorize(r_c)
    return True


def winograd_output_space(
    anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES
) -> Space | None:
    """The channel block; None where no vector of 4 or more divides the channels."""
    if tuple(anchor.axis_names) != WINOGRAD_OUTPUT_AXES:
        return None
    blocks = _channel_blocks(anchor.spatial_extents[3], lanes)
    return (knob("block_k", blocks, blocks[0]),) if blocks else None


def schedule_winograd_output(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Tasks of (image, tile row, tile column, channel block), parallel; in one, the rows Aᵀ M
    into a scratch tile (its rows i unrolled), then the tile's m x m pixels unrolled, each a
    combination of one scratch row, around a vector of channels, the epilogue applied to each
    as it is written."""
    stage = _rows_stage(anchor, WINOGRAD_OUTPUT_ROWS_AXES)
    m = stage.spatial_extents[0]  # the rows of Aᵀ M
    s = Schedule(out)
    n, y, x, c = s.axes[:4]
    yo, yi = s.split(y, factor=m)
    xo, xi = s.split(x, factor=m)
    co, ci = s.split(c, factor=int(k["block_k"]))
    s.reorder(n, yo, xo, co, yi, xi, ci)
    task = s.fuse(n, yo, xo, co)
    s.parallel(task)
    s.unroll(yi)
    s.unroll(xi)
    s.vectorize(ci)
    rows = Schedule(stage)
    rows.compute_root()  # schedule_kernel inlined it, as every injective producer
    rows.compute_at(out, task)
    r_i, r_nu, r_p, r_k = rows.axes[:4]
    rows.reorder(r_p, r_nu, r_i, r_k)
    rows.unroll(r_nu)
    rows.unroll(r_i)
    rows.vectorize(r_k)
    return True


WINOGRAD_INPUT = Template("winograd_input", winograd_input_space, schedule_winograd_input)
WINOGRAD_OUTPUT = Template("winograd_output", winograd_output_space, schedule_winograd_output)
