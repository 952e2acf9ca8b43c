"""The depthwise_nhwc template: depthwise convolution on CPUs in NHWC (the tuner's knobs declared
with it).

A depthwise convolution does K² multiply-adds per output element and no sum over channels, so
it runs at memory speed or not at all. Through the general conv2d_nhwc template it ran at
3-14% of peak FLOP/s: a padded copy of its input written and read again (twice the input's
traffic), and a register tile sized for a reduction over input channels it does not have.
Here a task is an output row (and a block of channels, where rows are few); in a row, tiles
of tile_w pixels × block_c channels (vectors) are accumulated in registers over the K×K
window, the epilogue (bias, activation) applied to the registers. The padding is read in
place: each tap's bounds test is on the pixel's coordinates only, so index-set splitting
(lowering/index_split.py) cuts each row's tiles into the border ones, which keep the tests,
and the interior ones, which read without any."""

from __future__ import annotations

import math

from xdsl.ir import BlockArgument

from lathe.dialects import te
from lathe.dialects.dtypes import np_dtype
from lathe.lowering.anchors import CONV2D_NHWC_AXES, CONV2D_REDUCE_AXES, ROLE_DEPTHWISE, ROLE_PAD
from lathe.lowering.schedule_builder import (
    UNKNOWN_CACHES,
    CacheInfo,
    KnobValue,
    Schedule,
    Space,
    Template,
    divisors,
    knob,
    largest_divisor,
    max_accumulators,
    vector_registers,
)

DEPTHWISE_TILE_WIDTH = 8  # output pixels of the register tile, at most (by default, but see below)
# A tile's pixels are its independent FMA chains (one vector each): two FMA pipes at 4 cycles'
# latency need 8 in flight, and a 7-pixel tile (widths 7, 14, 28) leaves the K² FMAs of each
# chain waiting on the one before. Where the chains are long (K >= 5) and the taps overlap
# (stride 1), a wider tile of up to WIDE_TILE_WIDTH pixels pays for the extra input vectors
# it keeps. Alone (one thread, aligned buffers, one process, load 5-6), 14 pixels against 7:
# 5x5 240 @28 0.87-0.89x, 480/672 @14 0.87-0.92x, 144/256 @28 0.88x, with ReLU or SiLU (ReLU
# at 131-140 GFLOP/s), 128 @28 0.98-1.17x (by where the output buffer lies); 3x3 stride 1 at 14
# level (0.97-0.98x), stride 2 lost (1.24-1.54x: twice the input vectors per pixel). Inside
# EfficientNet-B0 (cm.profile, minima, load 7): 5x5 240 @28 0.89x, 672 @14 0.87/0.93x, 480 @14
# 1.01x; MobileNet-v3's 5x5 120(128) @28 0.98-0.99x; the FPN model's 5x5 960 @20 (hard-swish,
# 10 pixels where 5 were) 0.62/0.81x (0.90x alone).
WIDE_TILE_WIDTH = 14
# The loops the threads share: "rows" gives a task one output row, every channel block of it;
# "rows_blocks" one row × one channel block, so that a 7x7 layer's 7 rows still make tasks
# enough for every thread (and a 14x14 one's make them even); "strips" one channel block
# over a strip of rows (_strip_rows), row after row, so the K input rows a row reads are in L1
# from the rows before it (with "rows", a tile's window over every channel passes through L1).
# Strips are the tuner's choice, not the default: alone, a layer whose window over every
# channel is past L1 ran 0.66-0.86x of the default's time in strips (EfficientNet 5x5 at
# 7-28, one thread), but inside EfficientNet-B0 the same kernels ran 0.94-1.30x (minima, one
# process, the two builds alternating, load 4-5), where the input arrives from the expand conv
# before it (presumably the block's strided walk then loses what the row's contiguous one keeps).
DEPTHWISE_GRAINS = ("rows", "rows_blocks", "strips")
ROWS_PER_THREAD = 8  # fewer output rows than this per thread: the default grain is rows_blocks
STRIP_TASKS = 32  # strips are cut (at divisors of the height) until blocks x strips is this many
# PREFETCH: where the input map is larger than one core's L2 its rows come from L3 or DRAM, and
# a row of tiles walks three or five input rows at once, a line of each per channel block,
# which the hardware prefetchers follow at a third of a copy's bandwidth (8 GB/s at one thread
# against 20.8 for numpy's copy). At each output row (grain "rows") the rows the next output
# row reads for the first time are prefetched (te.prefetch through the inlined padded read: one
# row at stride 1, two at stride 2), a line or a few beside each tap. One thread, CPU time,
# each call on cold caches (one process, alternating, load 2-4): MobileNet-v3's FPN layers at
# 640x640 3x3 80 @160 0.52-0.71x, 3x3 s2 64 @320 0.72-0.77x, 5x5 s2 80 @160 0.80-0.90x, 3x3 s2
# 240 @80 0.63-0.73x, 5x5 s2 672 @40 0.83-0.87x; MobileNet-v2's 3x3 s2 96 @112 0.52x. With
# the caches warm (the same calls back to back) the maps past the L2 were level or won (0.51-
# 1.02x) but for the 5x5 stride-2 ones (1.09-1.12x); maps inside the L2 keep it off (5x5 120
# @28: 1.41x warm with it on). Inside the FPN model (cm.profile, one thread, CPU time, one
# process, load 4.7) features.2/.3/.4/.7 0.80/0.68/0.81/0.45x, to 14.8/13.9/13.8/36 GB/s.
# In a row, the channel blocks inside the pixel tiles ("xc": a tile's input pixels are read
# for all channels at once, contiguous) or outside ("cx": a block walks the whole row).
DEPTHWISE_ORDERS = ("xc", "cx")


def is_depthwise(anchor: te.ComputeOp) -> bool:
    return anchor.role is not None and anchor.role.data == ROLE_DEPTHWISE


def depthwise_space(
    anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES
) -> Space | None:
    """The channel block (a vector or a few), the pixels of the register tile, the order of
    channel blocks and tiles in a row, the threads' grain, the padding and the prefetch. None off NHWC, or for channel counts no 4-lane vector divides
    (alter-op-layout pads a depthwise convolution's channels to a multiple of the vector:
    those are the ones it left alone)."""
    if not is_depthwise(anchor) or tuple(anchor.axis_names[:4]) != CONV2D_NHWC_AXES:
        return None
    n, oh, ow, c = anchor.spatial_extents
    blocks = [b for b in (lanes, 2 * lanes, 4 * lanes, lanes // 2, lanes // 4) if b >= 4 and c % b == 0]
    if not blocks:
        return None
    rows_few = n * oh < ROWS_PER_THREAD * 2 and c // blocks[0] > 1
    wide = _long_overlapping_taps(anchor) and vector_registers(lanes) >= 32  # 14 chains need AVX-512's registers
    tile = _default_tile(ow, wide)
    return (
        knob("block_c", blocks, _default_block(blocks, lanes, tile if wide else 8)),
        knob("tile_w", sorted(set(divisors(ow, WIDE_TILE_WIDTH)) | {t for t in (2, 4, 6, 8) if t < ow}), tile),
        knob("order", DEPTHWISE_ORDERS, DEPTHWISE_ORDERS[0]),
        knob("grain", DEPTHWISE_GRAINS, "rows_blocks" if rows_few else "rows"),
        knob("pad", ("inline", "copy"), "inline"),
        knob("prefetch", ("off", "on"), "on" if _streams_from_memory(anchor, caches) else "off"),
    )


def _strip_rows(oh: int, blocks: int) -> int:
    """The tallest strip (a divisor of the height) that still leaves STRIP_TASKS tasks or more."""
    return max((d for d in divisors(oh, oh) if blocks * (oh // d) >= STRIP_TASKS), default=1)


def _padded_data(anchor: te.ComputeOp) -> te.ComputeOp | None:
    for op in anchor.body.walk():
        c = op.tensor.owner if isinstance(op, te.ReadOp) else None
        if isinstance(c, te.ComputeOp) and c.role is not None and c.role.data == ROLE_PAD:
            return c
    return None


def _input_of(anchor: te.ComputeOp, pad: te.ComputeOp | None):
    """The kernel argument the convolution's data comes from (through its padding stage, if
    any): the read indexed by the batch axis (the weight's is by the window's)."""
    stage = pad or anchor
    for op in stage.body.walk():
        if (
            isinstance(op, te.ReadOp)
            and isinstance(op.tensor, BlockArgument)
            and op.indices[0] is stage.body.block.args[0]
        ):
            return op.tensor
    return None


def _streams_from_memory(anchor: te.ComputeOp, caches: CacheInfo) -> bool:
    """The input map is larger than one core's L2, so its rows come from L3 or DRAM."""
    data = _input_of(anchor, _padded_data(anchor))
    if data is None:
        return False
    return math.prod(data.type.get_shape()) * np_dtype(data.type.element_type).itemsize > caches.l2_bytes


def _long_overlapping_taps(anchor: te.ComputeOp) -> bool:
    """A kernel of 5x5 or more at stride 1 (and dilation 1): the padded input is K - 1 wider than
    the output. Without a padded stage (no padding) the layer keeps the narrow tile."""
    ky, kx = anchor.reduce_extent_list[-2:]  # (rc, ry, rx): rc is 1
    pad = _padded_data(anchor)
    return min(ky, kx) >= 5 and pad is not None and pad.spatial_extents[2] == anchor.spatial_extents[2] + kx - 1


def _default_block(blocks: list[int], lanes: int, pixels: int) -> int:
    """One vector, or two where a tile's pixels are fewer than 8 chains (a 7x7 layer's rows with
    long overlapping taps): 5x5 1152 @7 0.90x, 960 @7 0.88-0.91x alone (one thread, minima,
    load 4.7); inside the models (profile minima, one process, load 3.6-4.2) MobileNet-v3's
    960 @7 0.68-0.83x, EfficientNet-B0's 1152 @7 (SiLU) level (0.96-1.08x). The same blocks
    lost at stride 2 (1.22-1.30x) and were level at 3x3."""
    two = pixels < 8 and 2 * lanes in blocks and 2 * pixels <= max_accumulators(lanes)  # 14 of 16 spilled
    return 2 * lanes if two else blocks[0]


def _default_tile(ow: int, wide: bool = False) -> int:
    """The largest divisor of the width up to DEPTHWISE_TILE_WIDTH when it is 4 or more (or the
    whole row), else 4 pixels with the last tile of a row guarded; with `wide`, where that
    leaves fewer than 8 chains, the largest divisor up to WIDE_TILE_WIDTH."""
    d = largest_divisor(ow, DEPTHWISE_TILE_WIDTH)
    if wide and d < 8:
        d = largest_divisor(ow, WIDE_TILE_WIDTH)
    return d if d >= 4 or d == ow else 4


def schedule_depthwise_nhwc(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Threads over output rows (× channel blocks with grain=rows_blocks), or over channel
    blocks × strips of rows (grain=strips: the block outside the rows, so `order` has nothing
    left to order); in a row, tiles of tile_w pixels × block_c channels, each accumulated over
    the window (the channel vector innermost, the tile's pixels unrolled) and then written out
    through the epilogue."""
    s_out = Schedule(out)
    local = s_out.cache_write() if anchor is out else Schedule(anchor)
    an, ay, ax, af = s_out.axes[:4]  # the output's own names for n, y, x, f
    xo, xi = s_out.split(ax, factor=int(k["tile_w"]))
    fo, fi = s_out.split(af, factor=int(k["block_c"]))
    if k["grain"] == "strips":
        n, oh, _, c = anchor.spatial_extents
        yo, yi = s_out.split(ay, factor=_strip_rows(oh, n * c // int(k["block_c"])))
        s_out.reorder(an, yo, fo, yi, xo, xi, fi)
        tile = xo
        tasks = s_out.fuse(an, yo, fo)
    elif k["order"] == "cx" or k["grain"] == "rows_blocks":
        s_out.reorder(an, ay, fo, xo, xi, fi)
        tile = xo
        tasks = s_out.fuse(an, ay, fo) if k["grain"] == "rows_blocks" else s_out.fuse(an, ay)
    else:
        s_out.reorder(an, ay, xo, fo, xi, fi)
        tile = fo
        tasks = s_out.fuse(an, ay)
    s_out.parallel(tasks)
    s_out.unroll(xi)
    s_out.vectorize(fi)
    local.compute_at(out, tile)
    _, _, x, f = CONV2D_NHWC_AXES
    local.reorder(*CONV2D_REDUCE_AXES, x, f)
    local.unroll(x)
    local.vectorize(f)
    pad = _padded_data(anchor)
    if k["prefetch"] == "on" and k["grain"] == "rows" and (pad is None or k["pad"] == "inline"):
        s_out.prefetch(_input_of(anchor, pad), tasks)  # (a copy's rows are the copy's to stream)
    if pad is not None and k["pad"] == "inline":
        Schedule(pad).compute_inline()  # (the copy's own schedule, added after this, then applies to nothing)
    return True


DEPTHWISE_NHWC = Template("depthwise_nhwc", depthwise_space, schedule_depthwise_nhwc, root_roles=(ROLE_PAD,))
