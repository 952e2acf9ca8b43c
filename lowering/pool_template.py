"""The pool2d_nhwc template: max and average pooling on CPUs in NHWC, vectors along channels,
threads over output rows (the tuner's knobs declared with it).

Pooling does a few additions per element it reads, so it runs at memory speed or not at all:
per stage (fused axes, the window innermost) each output was one scalar reduction over a
9-tap window and the average's count a second one, about 1 GB/s. Here a task is an output
row; a tile of pixels × a vector of channels is accumulated in registers over the window
and its epilogue (the division by the window's count, a fused activation) applied to it."""

from __future__ import annotations

from lathe.dialects import te
from lathe.lowering.anchors import POOL2D_NHWC_AXES, POOL2D_REDUCE_AXES
from lathe.lowering.schedule_builder import UNKNOWN_CACHES, CacheInfo, KnobValue, Schedule, Space, Template, knob

POOL_TILE_WIDTH = 4  # output pixels of the register tile (the last tile of a row guarded)


def pool2d_space(
    anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES
) -> Space | None:
    """The channel block (a vector or a few), the pixels of the register tile and the order of
    the window loops. None off NHWC, or for channel counts no 4-lane vector divides (they keep
    the per-stage schedule)."""
    if tuple(anchor.axis_names) != POOL2D_NHWC_AXES + POOL2D_REDUCE_AXES:
        return None
    c = anchor.spatial_extents[3]
    blocks = [b for b in (2 * lanes, lanes, 4 * lanes, lanes // 2, lanes // 4) if b >= 4 and c % b == 0]
    if not blocks:
        return None
    ow = anchor.spatial_extents[2]
    return (
        knob("block_c", blocks, blocks[0]),
        knob("tile_w", [t for t in (1, 2, 4, 8) if t <= ow], min(POOL_TILE_WIDTH, ow)),
    )


def schedule_pool2d_nhwc(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Threads over the output's rows; in a row, tiles of tile_w pixels × block_c channels,
    each accumulated over the window (the channel vector innermost) and then written out
    through the kernel's epilogue."""
    s_out = Schedule(out)
    local = s_out.cache_write() if anchor is out else Schedule(anchor)
    an, ay, ax, ac = s_out.axes[:4]
    xo, xi = s_out.split(ax, factor=int(k["tile_w"]))
    co, ci = s_out.split(ac, factor=int(k["block_c"]))
    s_out.reorder(an, ay, xo, co, xi, ci)
    rows = s_out.fuse(an, ay)
    s_out.parallel(rows)
    s_out.unroll(xi)
    s_out.vectorize(ci)
    local.compute_at(out, co)
    _, _, x, c = POOL2D_NHWC_AXES
    local.reorder(*POOL2D_REDUCE_AXES, x, c)
    local.unroll(x)
    local.vectorize(c)
    return True


POOL2D_NHWC = Template("pool2d_nhwc", pool2d_space, schedule_pool2d_nhwc)
