"""The conv2d_nhwc template: direct NHWC convolution on CPUs, a register tile of output pixels
× a block of output channels (the tuner's knobs declared with it)."""

from __future__ import annotations

from lathe.dialects import te
from lathe.dialects.dtypes import np_dtype
from lathe.lowering.anchors import CONV2D_NHWC_AXES, CONV2D_REDUCE_AXES, ROLE_PAD
from lathe.lowering.schedule_builder import (
    UNKNOWN_CACHES,
    CacheInfo,
    KnobValue,
    Schedule,
    Space,
    Template,
    divisors,
    knob,
    max_accumulators,
    vector_registers,
)
from lathe.passes.conv_weight_blocking import (
    CONV2D_TILE_WIDTH,
    conv_block_choices,
    conv_block_width,
    conv_tile_width,
)

# Independent accumulators a tile needs to keep two FMA pipes of 4 cycles' latency busy: a
# one-vector channel block (80 or 112 filters) at width 14 doubles its 7-pixel tile (1x1s at
# 14x14: 1.0-1.2x, one thread).
CONV2D_MIN_ACCUMULATORS = 8
# Output rows of the register tile (tile_h): a tile of rows x tile_w pixels loads each weight
# vector once for all its pixels, halving (2 rows) the weight a small map streams from L2 per
# multiply-add. One row by default: ResNet-18's 3x3 layers (7x7 to 28x28 outputs, one thread,
# the weight packed per run) ran no faster with two rows (512 @ 7: 2.05 ms both) and 64 @ 56
# slower; see TWO_ROW_MAX_PIXELS for weights blocked at compile time.
CONV2D_TILE_ROWS = (1, 2, 3, 4)
# Output pixels up to which a weight blocked at compile time takes a two-row register tile by
# default, where the tile's accumulators stay within TWO_ROW_MAX_ACCUMULATORS: with the weight
# read as contiguous blocks, the 7x7 layers ran 0.93-0.96x (median) with two rows (ResNet-18's
# 3x3 512 @ 7 and s2 256 -> 512, EfficientNet's 1x1s at 7x7; one thread, the same process);
# at 14x14 they were within 4%, and 64 @ 56 ran 1.1-2x slower.
TWO_ROW_MAX_PIXELS = 49
# AVX-512's 32 vector registers less the weight vectors and the broadcast pixel (the two-row
# default is only for targets with 32: schedule_builder.vector_registers).
TWO_ROW_MAX_ACCUMULATORS = 28
_RC, _RY, _RX = CONV2D_REDUCE_AXES
# the orders of the micro-kernel's loops over the window
CONV2D_REDUCE_ORDERS = tuple("-".join(o) for o in ((_RY, _RX, _RC), (_RC, _RY, _RX), (_RY, _RC, _RX)))
# The loops the threads share: "yxf" runs every (row, tile, channel block) as one task, the
# channel block innermost, so consecutive tasks read different weights (fine while the weight
# stays in cache); "fyx" gives each task one output-channel block and all its pixels, so its
# weights are read once per block (weight-stationary); "fyx_pack" also copies the block's
# weights into one contiguous buffer first: an HWIO block is 2 cache lines every F*4 bytes, a
# stride that defeats the prefetchers and thrashes a few cache sets.
CONV2D_ORDERS = ("yxf", "fyx", "fyx_pack")
# The largest weight the threads share in the "yxf" order, however large the L2: on a 2 MiB-L2
# core, 3x3 128->256 (1.125 MiB) and 1x1 512->1024 (2 MiB) ran 1.23x and 2.42x faster packed
# (2 threads, 28x28 stride 2), so the weight must leave most of L2 to the rows and the output.
YXF_MAX_WEIGHT_BYTES = 1 << 20
# A packed block lives on the task's stack: stay under glibc's smallest default thread stack (2 MiB).
PACK_MAX_BYTES = 3 << 19
# Multiply-adds per element of the padded copy below which a few-channel input is read in place.
# Since the copy of a 3-channel image became rows of whole pixels (schedule_rows), a 3x3
# stride-2 first layer over 32 filters (71 per element) ran 1.1x faster copying than reading
# in place with its window unrolled; over 16 filters (36 per element) the two are within 10%.
PAD_INLINE_WORK = 64
# The window loops unrolled, innermost first, where the input is read in place: the bounds
# test of a tap then is one per (row, column) of the window and pixel, shared by its channels
# and by the taps of neighbouring pixels that read the same column (3x3 stride-2 first
# layers over 16 and 32 filters at 224 and 320: 1.2-1.3x).
INLINE_UNROLLED_WINDOW = 2
# Output pixels up to which the threads' loops are weight-stationary whatever the weight's size
# (17x17, 14x14 and 7x7: Inception-v3's middle stage, EfficientNet's and MobileNet's 1x1
# expand/project convolutions). In the "yxf" order every output row, one to three register
# tiles here, reads the whole weight, from L3 on its first pass in a model run, and each thread
# all of it; a stationary packed block is read once, by one thread, and used by every pixel,
# and the few pixels' activations stay in L2 across the blocks. EfficientNet-B0's and
# MobileNet-v3's 1x1s at 14x14 and 7x7 ran 1.16-1.45x faster so, Inception-v3's 1x7, 7x1 and
# 1x1 layers at 17x17 1.0-1.18x (one thread, the weight out of L2 as in a model run);
# ResNet's 28x28 layer2 keeps "yxf".
SMALL_OUTPUT_PIXELS = 289
# PREFETCH: a weight blocked at compile time, in the "fyx" order, prefetches the next filter block while
# the current one computes (knob `prefetch`, te.prefetch: its lines spread over the window's
# channel loop, into L2), by default where the block serves two register tiles or more: its
# first tile otherwise waits on the block coming from L3. ResNet-18's 3x3 512 @7 (4 tiles a
# block), one thread, L2 evicted before each call: 0.89-0.95x (median, one process, load
# 0.3-0.6); warm 0.97-1.0x. At two threads alone it read 0.95-1.10x across runs; in the model
# run() 0.82x (median of 5 alternating old/new processes, load 1.2-2.0). An SE fc1 (one pixel:
# one tile a block, the block read once) lost 1.12x cold, so it keeps none. Under SPLIT_C a task's
# block is its part's channels of each of the window's kh*kw taps: kh*kw slices of the filter
# block, which lower-te-to-loop refuses to prefetch once they cover under half of their span (a
# 3x3 in 4 parts); a split conv prefetches only where the window is one tap.
# SPLIT_C: the input channels split into `split_c` parts across the threads (rfactor by parts):
# each task computes its part's partial sums over its tiles, reading only its part of the
# weight, and a last stage sums the parts with the epilogue fused. For small-spatial layers
# with few output-channel blocks, where the threads otherwise get too few tasks or each stream
# the whole weight. Parts must divide the channels and leave each at least a vector of them.
# Not a default anywhere (1): no shape measured a win on this 2-core machine. The layer alone,
# 2 threads, one process, contenders alternating, heaviest kernel's median (p10 under load):
# DenseNet's 3x3 128->32 @7 (idle machine) warm 0.97x, L2 evicted 1.00-1.01x with the window
# order rc-ry-rx inside a part (1.12-1.14x with ry-rx-rc: a part's weight is then 9 runs of
# 8 KB, streamed one after another); at 1 thread 1.02x / 1.05-1.06x. The 7 row tasks' 4/3
# imbalance it removes (ideal 16.3 vs 18.6 us) is about what the sum stage and its partials
# cost. Under load (2-3 on 2 cores): 1x1 512->32, 512->128, 992->128 @7 and 512->128,
# 1024->512 @14, 3x3 128->32 @14, 256 and 512 @7 and 256 @14 level to 1.16x slower (p10).
# MobileNet-v3's SE fc1 672->168 @1 (11 one-vector blocks: one accumulator a task) runs warm
# 0.92x (2 parts) and 0.80x (4) at one thread, its shorter chains overlapping; cold 1.25x and
# 0.97-1.03x; at 2 threads under load 0.79-1.10x across runs: a candidate for the tuner.
# Inside DenseNet-121 (profiler rows, one process, both builds taking turns, load 2.9) block
# 4's 3x3s split in two ran 0.99-1.20x their unsplit time.
SPLIT_C_PARTS = (1, 2, 4)
# The orders a weight already blocked at compile time (kernel layout OHWI{b}o, made by
# passes/conv_weight_blocking.py) takes: its blocks are contiguous, so there is nothing to pack.
BLOCKED_WEIGHT_ORDERS = ("yxf", "fyx")


def conv2d_space(
    anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES
) -> Space | None:
    """Output-width register tile (any width up to CONV2D_TILE_WIDTH: the last tile of a row is
    guarded where it does not divide), output-channel block (1-4 vectors: three for the 48,
    144 and 240 channels of mobile networks, which two do not divide), the window loop's
    input-channel split (split_rc, 0: none), the input channels' split across the threads
    (split_c, SPLIT_C below), the register tile's output rows (each weight vector a tap loads serves tile_h x
    tile_w pixels), the order of the window loops and how many of them, innermost first, are
    unrolled, whether the tile's pixels are unrolled, the order of the threads' loops, and
    whether the padded data is a copy or read in place, and whether a blocked weight's next
    block is prefetched (PREFETCH below). None for layouts other than NHWC, or
    channel counts no vector block divides (they keep the default). A weight blocked at compile
    time fixes block_f to its block and has nothing to pack."""
    if tuple(anchor.axis_names[:4]) != CONV2D_NHWC_AXES:
        return None
    _, oh, ow, o = anchor.spatial_extents
    weight, blocked = _weight(anchor)
    blocks = [blocked] if blocked else conv_block_choices(o, lanes)
    if not blocks:
        return None
    block = blocked or conv_block_width(ow, o, lanes)
    assert block is not None
    rc, ry, rx = anchor.reduce_extent_list
    pad = _default_pad(anchor, lanes)
    order = _default_order(ry * rx * rc * _weight_bytes(weight), o, block, caches.l2_bytes, oh * ow)
    tile_w = _accumulating_tile(ow, block // lanes, lanes)
    two_rows = (
        blocked
        and vector_registers(lanes) >= 32
        and oh >= 2
        and oh * ow <= TWO_ROW_MAX_PIXELS
        and 2 * tile_w * (block // lanes) <= TWO_ROW_MAX_ACCUMULATORS
    )
    tiles = -(-oh // (2 if two_rows else 1)) * -(-ow // tile_w)  # the register tiles a filter block serves
    return (
        knob("tile_w", divisors(ow, 16) + [t for t in range(4, CONV2D_TILE_WIDTH + 1) if t < ow], tile_w),
        knob("block_f", blocks, block),
        knob("tile_h", [h for h in CONV2D_TILE_ROWS if h <= oh], 2 if two_rows else 1),
        knob("split_rc", [0] + [s for s in (4, 8, 16, 32) if rc % s == 0 and s < rc], 0),
        knob("split_c", [p for p in SPLIT_C_PARTS if rc % p == 0 and rc // p >= lanes], 1),
        knob("reduce_order", CONV2D_REDUCE_ORDERS, CONV2D_REDUCE_ORDERS[0]),
        knob("unroll_w", ("on", "off"), "on"),
        knob(
            "order",
            BLOCKED_WEIGHT_ORDERS if blocked else CONV2D_ORDERS,
            "fyx" if blocked and order == "fyx_pack" else order,
        ),
        knob("pad", ("copy", "inline"), pad),
        knob("unroll_window", range(len(CONV2D_REDUCE_AXES) + 1), INLINE_UNROLLED_WINDOW if pad == "inline" else 0),
        knob("prefetch", ("off", "on") if blocked else ("off",), "on" if blocked and tiles >= 2 else "off"),
    )


def _accumulating_tile(ow: int, vectors: int, lanes: int) -> int:
    """The default tile, doubled where it divides the width and its vectors of channels are too
    few accumulators (CONV2D_MIN_ACCUMULATORS) for the FMA pipes; narrowed where its
    accumulators would pass max_accumulators. With AVX2's 16, the 8x2
    tiles held 16 accumulators beside two weight vectors and the broadcast pixel, and spilled:
    ResNet-50 1.34x, MobileNet-v2 1.52x ORT's time (docs/performance.md, AVX2)."""
    most = max(1, max_accumulators(lanes) // vectors)
    t = conv_tile_width(ow, min(CONV2D_TILE_WIDTH, most))
    if t * vectors < CONV2D_MIN_ACCUMULATORS and ow % (2 * t) == 0 and 2 * t <= min(2 * CONV2D_TILE_WIDTH, most):
        return 2 * t
    return t


def _default_pad(anchor: te.ComputeOp, lanes: int) -> str:
    """Read a few-channel input in place (bounds checks per tap) when the convolution does
    little work per element of the padded copy: the copy of a 3-channel image has no vector
    along its channels, and a first layer's 3x3 stride-2 taps over 16 channels cost less
    than it did (5x the layer's time at 320x320)."""
    pad = _padded_data(anchor)
    rc, ry, rx = anchor.reduce_extent_list
    if pad is None or rc >= lanes:
        return "copy"
    _, oh, ow, f = anchor.spatial_extents
    _, hp, wp, _ = pad.spatial_extents
    return "inline" if ry * rx * f * oh * ow < PAD_INLINE_WORK * hp * wp else "copy"


def _default_order(window_bytes: int, channels: int, block_f: int, l2_bytes: int, pixels: int) -> str:
    """Weight-stationary with packed blocks when the weight outgrows the target's L2, or
    YXF_MAX_WEIGHT_BYTES in a larger one (ResNet's layer3 and layer4: each output row
    re-streamed 2.4-9.4 MB), or the output has at most SMALL_OUTPUT_PIXELS, and the threads
    still get several blocks."""
    fits = window_bytes * channels <= min(l2_bytes, YXF_MAX_WEIGHT_BYTES) and pixels > SMALL_OUTPUT_PIXELS
    if fits or channels // block_f < 4:
        return "yxf"
    return "fyx_pack" if window_bytes * block_f <= PACK_MAX_BYTES else "fyx"


def _weight(anchor: te.ComputeOp):
    """The weight the convolution reads and its filters' block: an HWIO one ([KH, KW, C, F],
    block 0), or one blocked at compile time ([F/b, KH, KW, C, b], block b); (None, 0) if
    neither is found."""
    rc, ry, rx = anchor.reduce_extent_list
    f = anchor.spatial_extents[3]
    for op in anchor.body.walk():
        if not isinstance(op, te.ReadOp):
            continue
        shape = list(op.tensor.type.get_shape())  # type: ignore[union-attr]
        if shape == [ry, rx, rc, f]:
            return op.tensor, 0
        if len(shape) == 5 and shape[1:4] == [ry, rx, rc] and shape[0] * shape[4] == f:
            return op.tensor, shape[4]
    return None, 0


def _weight_bytes(w) -> int:
    """Bytes of one weight element (the block and L2 estimates are in bytes, and a float16 or
    int8 convolution's weight is smaller than a float32 one's)."""
    return np_dtype(w.type.element_type).itemsize if w is not None else 4  # type: ignore[union-attr]


def _padded_data(anchor: te.ComputeOp) -> te.ComputeOp | None:
    for op in anchor.body.walk():
        c = op.tensor.owner if isinstance(op, te.ReadOp) else None
        if isinstance(c, te.ComputeOp) and c.role is not None and c.role.data == ROLE_PAD:
            return c
    return None


def schedule_conv2d_nhwc(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """Direct NHWC convolution: a register tile of tile_w output pixels × one block of
    block_f output channels (vectors), accumulated over (ry, rx, rc) — the same micro-kernel
    as dense_pack, the input read from a padded copy (or, with pad=inline, through bounds
    checks: a 3-channel first layer does less work per input element than its copy costs)."""
    s_out = Schedule(out)
    bf = int(k["block_f"])
    rc, ry, rx = anchor.reduce_extent_list
    order = str(k["order"])
    weight, blocked = _weight(anchor)
    parts = int(k["split_c"])
    if order == "fyx_pack" and (
        blocked or parts > 1 or ry * rx * rc * bf * _weight_bytes(weight) > PACK_MAX_BYTES
    ):  # (blocked at compile time; a block_f the tuner chose made the block too big for a stack;
        # or split: a part's block would be packed by every task of the part's filter block)
        order = "fyx"
    w = weight if order == "fyx_pack" else None
    # (before cache_write, which copies the anchor's body: the copy then reads the block too)
    block = s_out.cache_read(w, [anchor]) if w is not None else None
    rc_name = _RC
    if parts > 1:  # SPLIT_C: the register tiles compute partial sums, one part per task
        final = s_out if anchor is out else Schedule(anchor)
        tiled = final.rfactor(_RC, nparts=parts, factor_axis=0)  # [part, n, y, x, f]
        local = tiled.cache_write()
        part, an, ay, ax, af = tiled.axes[:5]
        rc_name = f"{_RC}.inner"
    else:
        tiled = s_out
        local = s_out.cache_write() if anchor is out else Schedule(anchor)
        part, (an, ay, ax, af) = None, s_out.axes[:4]  # the output's own names for n, y, x, f
    rows = int(k["tile_h"])
    yo, yi = tiled.split(ay, factor=rows) if rows > 1 else (ay, None)
    xo, xi = tiled.split(ax, factor=int(k["tile_w"]))
    fo, fi = tiled.split(af, factor=bf)
    tile = [a for a in (yi, xi, fi) if a is not None]
    # a part is the innermost of the threads' loops: consecutive tasks read consecutive parts
    # of a filter block's weight, one contiguous stream however the threads take them
    parts_loop = [part] if part is not None else []
    if order == "yxf":
        tiled.reorder(an, yo, xo, fo, *parts_loop, *tile)
        tile_loop = tiled.fuse(an, yo, xo, fo, *parts_loop)
        tiled.parallel(tile_loop)
        task_loop = tile_loop
    else:
        tiled.reorder(fo, *parts_loop, an, yo, xo, *tile)
        tile_loop = tiled.fuse(an, yo, xo)
        task_loop = tiled.fuse(fo, *parts_loop) if parts_loop else fo
        tiled.parallel(task_loop)
    for axis in tile[:-1]:
        tiled.unroll(axis)
    tiled.vectorize(fi)
    local.compute_at(tiled, tile_loop)
    if block is not None:
        block.compute_at(out, fo)
        block.vectorize(f"ax{3}")  # (a cache stage's axes are ax0..ax3)
    if parts > 1:
        _sum_parts(final, s_out, anchor is out, bf)
    _, y, x, f = CONV2D_NHWC_AXES
    window = [rc_name if a == _RC else a for a in str(k["reduce_order"]).split("-")]
    if int(k["split_rc"]):
        rco, rci = local.split(rc_name, factor=int(k["split_rc"]))
        window = [rco] + [rci if a == rc_name else a for a in window]
    pixels = [y, x] if rows > 1 else [x]
    local.reorder(*window, *pixels, f)
    for axis in window[len(window) - int(k["unroll_window"]) :]:
        local.unroll(axis)
    if k["unroll_w"] == "on":
        for axis in pixels:
            local.unroll(axis)
    local.vectorize(f)
    pad = _padded_data(anchor)
    if pad is not None and k["pad"] == "inline":
        Schedule(pad).compute_inline()  # (the copy's own schedule, added after this, then applies to nothing)
    if order == "fyx" and k["prefetch"] == "on" and (parts == 1 or ry * rx == 1):
        tiled.prefetch(weight, task_loop)
    return True


def _sum_parts(final: Schedule, s_out: Schedule, final_is_out: bool, bf: int) -> None:
    """The split convolution's last stage: each output vector sums its parts' partials
    (vectorized along the filters) and, where the kernel has an epilogue, is computed per
    filter block of the epilogue's pixel loop, so bias, activation and the output slot are
    applied as the sums are made. Its threads take pixels: the partials are a few kB, read
    once."""
    n, y, x, f, part = final.axes
    if final_is_out:
        fo, fi = final.split(f, factor=bf)
        final.reorder(n, y, x, fo, part, fi)
        final.parallel(final.fuse(n, y, x))
        final.vectorize(fi)
        return
    an, ay, ax, af = s_out.axes[:4]
    fo, fi = s_out.split(af, factor=bf)
    s_out.reorder(an, ay, ax, fo, fi)
    s_out.parallel(s_out.fuse(an, ay, ax))
    s_out.vectorize(fi)
    final.compute_at(s_out.stage, fo)
    final.reorder(part, f)
    final.vectorize(f)


CONV2D_NHWC = Template("conv2d_nhwc", conv2d_space, schedule_conv2d_nhwc, root_roles=(ROLE_PAD,))
