"""The conv2d_nhwc template: direct NHWC convolution on CPUs, a register tile of output pixels
× a block of output channels (the tuner's knobs declared with it)."""

from __future__ import annotations

from lathe.dialects import te
from lathe.lowering.anchors import CONV2D_NHWC_AXES, CONV2D_REDUCE_AXES, ROLE_PAD
from lathe.lowering.schedule_builder import KnobValue, Schedule, Space, Template, divisors, knob, largest_divisor

CONV2D_TILE_WIDTH = 8  # output pixels of the register tile (at most: the largest divisor of the width)
_RC, _RY, _RX = CONV2D_REDUCE_AXES
# the orders of the micro-kernel's loops over the window
CONV2D_REDUCE_ORDERS = tuple("-".join(o) for o in ((_RY, _RX, _RC), (_RC, _RY, _RX), (_RY, _RC, _RX)))


def conv2d_space(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int) -> Space | None:
    """Output-width register tile, output-channel block, input-channel split (0: none), the
    order of the window loops, and whether the tile's pixels are unrolled. None for layouts
    other than NHWC, or channel counts no vector block divides (they keep the default)."""
    if tuple(anchor.axis_names[:4]) != CONV2D_NHWC_AXES:
        return None
    _, _, ow, o = anchor.spatial_extents
    blocks = [b for b in (2 * lanes, lanes, 4 * lanes) if o % b == 0]
    if not blocks:
        return None
    rc = anchor.reduce_extent_list[0]
    return (
        knob("tile_w", divisors(ow, 16), largest_divisor(ow, CONV2D_TILE_WIDTH)),
        knob("block_f", blocks, blocks[0]),
        knob("split_rc", [0] + [s for s in (4, 8, 16, 32) if rc % s == 0 and s < rc], 0),
        knob("reduce_order", CONV2D_REDUCE_ORDERS, CONV2D_REDUCE_ORDERS[0]),
        knob("unroll_w", ("on", "off"), "on"),
    )


def schedule_conv2d_nhwc(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Direct NHWC convolution: a register tile of tile_w output pixels × one block of
    block_f output channels (vectors), accumulated over (ry, rx, rc) — the same micro-kernel
    as dense_pack, the input read from a padded copy."""
    s_out = Schedule(out)
    local = s_out.cache_write() if anchor is out else Schedule(anchor)
    an, ay, ax, af = s_out.axes[:4]  # the output's own names for n, y, x, f
    xo, xi = s_out.split(ax, factor=int(k["tile_w"]))
    fo, fi = s_out.split(af, factor=int(k["block_f"]))
    s_out.reorder(an, ay, xo, fo, xi, fi)
    fused = s_out.fuse(an, ay, xo, fo)
    s_out.unroll(xi)
    s_out.vectorize(fi)
    s_out.parallel(fused)
    local.compute_at(out, fused)
    _, _, x, f = CONV2D_NHWC_AXES
    window = str(k["reduce_order"]).split("-")
    if int(k["split_rc"]):
        rco, rci = local.split(_RC, factor=int(k["split_rc"]))
        window = [rco] + [rci if a == _RC else a for a in window]
    local.reorder(*window, x, f)
    if k["unroll_w"] == "on":
        local.unroll(x)
    local.vectorize(f)
    return True


CONV2D_NHWC = Template("conv2d_nhwc", conv2d_space, schedule_conv2d_nhwc, root_roles=(ROLE_PAD,))
