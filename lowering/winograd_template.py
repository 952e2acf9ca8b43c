"""The Winograd transforms' templates (passes/winograd.py makes the ops, graph_to_te.py their
computes): a task is a tile (and a block of channels), the (m+2)² coefficients or m² pixels
of the tile unrolled, a vector of channels innermost.

Each compute's body reads its whole tile and chooses its own formula with selects on the
coefficient's (pixel's) index; unrolled, those indices are constants, the selects fold, and
the copies share the tile's reads and the rows of the separable transform (LLVM's GVN), so a
task does the transform's real work once, in registers. Left to the per-stage schedules
(fused axes, one coefficient at a time) each element recomputed the whole tile: the conv
row's (64 @56, F(4, 3)) input transform took 379 us and its output transform 199 us, with these
templates 35 and 32 us (profiler, 2 threads). A task's loads, stores and arithmetic are then
the separable transform's: 36 vector loads, 36 stores, 288 additions and multiplies for the
input; 36 loads, 16 stores, 206 for the output (the optimized LLVM IR)."""

from __future__ import annotations

from lathe.dialects import te
from lathe.lowering.anchors import WINOGRAD_INPUT_AXES, WINOGRAD_OUTPUT_AXES
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


def schedule_winograd_input(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Tasks of (tile, channel block), parallel; in one, the coefficients ξ and ν unrolled
    around a vector of channels."""
    s = Schedule(out)
    e, p, c = s.axes[:3]
    xi, nu = s.split(e, factor=_coefficients(anchor))
    co, ci = s.split(c, factor=int(k["block_c"]))
    s.reorder(p, co, xi, nu, ci)
    s.parallel(s.fuse(p, co))
    s.unroll(xi)
    s.unroll(nu)
    s.vectorize(ci)
    return True


def winograd_output_space(
    anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES
) -> Space | None:
    """The channel block; None where no vector of 4 or more divides the channels."""
    if tuple(anchor.axis_names) != WINOGRAD_OUTPUT_AXES:
        return None
    blocks = _channel_blocks(anchor.spatial_extents[3], lanes)
    return (knob("block_k", blocks, blocks[0]),) if blocks else None


def _output_tile(anchor: te.ComputeOp) -> int:
    """m, from the products the output transform reads: [(m+2)², tiles, K]."""
    read = next(op for op in anchor.body.block.ops if isinstance(op, te.ReadOp))
    return round(read.tensor.type.get_shape()[0] ** 0.5) - 2  # type: ignore[attr-defined]


def schedule_winograd_output(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Tasks of (image, tile row, tile column, channel block), parallel; in one, the tile's m x m
    pixels unrolled around a vector of channels, the epilogue applied to each as it is written."""
    m = _output_tile(anchor)
    s = Schedule(out)
    n, y, x, c = s.axes[:4]
    yo, yi = s.split(y, factor=m)
    xo, xi = s.split(x, factor=m)
    co, ci = s.split(c, factor=int(k["block_k"]))
    s.reorder(n, yo, xo, co, yi, xi, ci)
    s.parallel(s.fuse(n, yo, xo, co))
    s.unroll(yi)
    s.unroll(xi)
    s.vectorize(ci)
    return True


WINOGRAD_INPUT = Template("winograd_input", winograd_input_space, schedule_winograd_input)
WINOGRAD_OUTPUT = Template("winograd_output", winograd_output_space, schedule_winograd_output)
