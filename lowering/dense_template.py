"""The dense_pack template: dense, matmul and batch_matmul with a packed weight, on CPUs
(TVM's dense_pack for x86, the tuner's knobs declared with it)."""

from __future__ import annotations

import math

from xdsl.ir import BlockArgument

from lathe.dialects import te
from lathe.lowering.row_kernel import row_statistics, row_tiles
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

DENSE_PACK_TILE_ROWS = 8  # rows of the register tile (at most; see register_rows)
# Accumulator vectors of the default register tile (rows x vectors across; see register_cols),
# as a share of the vector registers (schedule_builder.vector_registers): at least MIN so that
# the loads of each k step (a broadcast per row, a vector per column block) stay well under the
# FMAs, at most schedule_builder.max_accumulators. With AVX-512's 32: 16-24; 8 rows take two
# vectors as before; 5 rows (100, 50 rows) took two too, and four
# measured 1.1-1.2x faster (docs/performance.md, "Row counts like 100"). With AVX2's 16: 12,
# the 4x3 or 6x2 tiles of OpenBLAS's Haswell kernels; 8x2 spilled (matmul 1024^3 2.47x numpy).
DENSE_PACK_MIN_ACCUMULATORS = 1 / 2
SMALL_REGISTER_FILE_TILE_ROWS = 6  # DENSE_PACK_TILE_ROWS with 16 registers: 4-6 rows
DENSE_PACK_ORDERS = ("ij", "ji")  # the order of the outer (cache-block) loops over rows and columns
DENSE_PACK_PARALLEL = ("fused", "outer")  # threads over all fused outer loops, or the outermost only
# The cache model the default configuration is derived from. A cache block's operands, its rows
# of x (block rows × depth) and the weight panel of one register tile (depth × tile width),
# are reused from L2: each register tile streams its panel from there while the block's row
# tiles take turns, and the next block along j reuses the rows. They may fill this share of
# the target's L2 (the rest holds the output, the streams from L3 and what other kernels left).
DENSE_PACK_L2_SHARE = 5 / 8  # 2048x2048x2048 was fastest at 128 rows (5/8 of a 2 MiB L2), 128x768x3072 at 64 (4/8)
DENSE_PACK_BLOCK_ROWS = 128  # the most rows a cache block takes: each weight element then feeds 256 flops
DENSE_PACK_MIN_BLOCK_ROWS = 64  # fewer rows and the weight streams from L3 too often: split k instead
DENSE_PACK_MIN_BLOCKS = 8  # cache blocks to share among threads: a block of all rows must leave this many
DENSE_PACK_BLOCK_K = (64, 128, 256, 384, 512, 768, 1024, 2048)  # k-block candidates (those dividing the depth)
# Where the kernel packs its weight, a task's panels are a buffer on the stack of the thread
# that runs it (8 MiB by default on Linux, for pool workers too): cache_j keeps them to half.
PACKED_TASK_BYTES = 4 << 20
# GEMV-shaped contractions (rows of x up to this many: one register tile of all of them)
# stream their weight once whatever the schedule, so what the default chooses for them is the
# number of independent accumulator chains per thread task: each register-tile vector is one
# FMA chain over all of k, and a weight in L1/L2 is read faster than one chain can consume it.
GEMV_ROWS = 4
GEMV_TILE_VECTORS = 4  # vectors across a GEMV's register tile (four chains; rows x vectors <= 16 registers)
GEMV_MIN_COL_TILES = 4  # a wider tile must leave this many column tiles to share among threads
ROW_EPILOGUE_TASK_TILES = 1  # register tiles of rows per thread task when a softmax normalises the rows
# Rows a softmax's later passes (exps, their sum, the output) take together, after the first
# statistic (the max) has been taken over all the task's rows in one loop: two rows' exp and
# sum chains overlap where one row's wait on their latency (12x128x128: 242 -> 216 us at one
# thread; four rows' exps no longer fit the 32 vector registers and measured slower).
ROW_EPILOGUE_GROUP_ROWS = 2


def _contraction_axes(out: te.ComputeOp) -> tuple[list[str], str | None, str]:
    axes = out.axis_names[: len(out.spatial_extents)]
    if len(axes) < 2:
        return [], None, axes[0]
    *batch, i, j = axes
    return batch, i, j


def register_rows(rows: int, most: int = DENSE_PACK_TILE_ROWS) -> int:
    """Rows of the default register tile: a divisor of the rows of at least half of `most`
    (no partial tile), else the fewest tiles of at most `most` rows, balanced, the last one
    partial. A split that does not divide is guarded, and lower-te-to-loop's unswitching
    moves that guard out of the vector loops, so a partial tile still runs the vector code;
    the old rule (the largest divisor) gave 17 rows (BERT at seq 17) one-row tiles, each
    streaming the whole weight: 2% of peak."""
    if rows <= most:
        return rows
    divisor = largest_divisor(rows, most)
    if 2 * divisor >= most:
        return divisor
    tiles = -(-rows // most)
    return -(-rows // tiles)


def default_tile_rows(lanes: int) -> int:
    """The most rows of the default register tile for the target's register file."""
    return DENSE_PACK_TILE_ROWS if vector_registers(lanes) >= 32 else SMALL_REGISTER_FILE_TILE_ROWS


def register_cols(rows: int, widths: list[int], pack: int, lanes: int) -> int:
    """tile_j of the default for a register tile of `rows` rows: the narrowest candidate of at
    least DENSE_PACK_MIN_ACCUMULATORS of the registers in accumulator vectors, else the widest
    of at most max_accumulators, else the pack width. With 16 registers, never a
    width that neither divides nor is a multiple of the pack width: 24 over blocks of 16 made
    BERT's FFN dense 3.67x ORT's time on AVX2, 1.18x without (AVX-512's 48 over 32, for 6-row
    tiles, measured faster than 32 and stays)."""
    registers = vector_registers(lanes)
    most, least = max_accumulators(lanes), registers * DENSE_PACK_MIN_ACCUMULATORS
    if registers < 32:
        least = most  # 8 accumulators leave 8 loads to 8 FMAs a k step: all 12 serve
        widths = [w for w in widths if w % pack == 0 or pack % w == 0]
    fitting = [w for w in sorted(widths) if rows * (w // lanes) <= most]
    enough = [w for w in fitting if rows * (w // lanes) >= least]
    if enough:
        return enough[0]
    return max(fitting or [pack]) if registers < 32 else max([pack, *fitting])


def gemv_tile_cols(rows: int, cols: int, widths: list[int], pack: int, lanes: int) -> int:
    """tile_j of the default for a GEMV (rows <= GEMV_ROWS): the widest candidate of up to
    GEMV_TILE_VECTORS vectors that leaves GEMV_MIN_COL_TILES column tiles, else the pack width.
    One row's tile of one packed panel is one or two FMA chains over k; four measured up to
    1.2x faster with the weight in L2 (one thread) and the same where it streams from L3 or
    memory, which bounds every GEMV a model has (docs/performance.md, "GEMV")."""
    if rows > GEMV_ROWS:
        return pack
    wide = [w for w in widths if w <= GEMV_TILE_VECTORS * lanes and cols // w >= GEMV_MIN_COL_TILES]
    return max([pack, *wide])


def _block_candidates(tiles: int, tile_rows: int) -> list[int]:
    """cache_i values: register tiles per cache block that divide the row tiles (up to 16), and
    all of them where they are few or their rows fit a block (20 tiles of 5 rows: one block of
    100 rows reads each weight panel once, 1.1x at one thread and 1.25x at two over blocks of 4)."""
    whole = tiles <= 16 or tiles * tile_rows <= DENSE_PACK_BLOCK_ROWS
    return sorted({c for c in range(1, 17) if tiles % c == 0} | ({tiles} if whole else set()), reverse=True)


def cache_block(
    batch: int, rows: int, cols: int, depth: int, tile_rows: int, tile_cols: int, elem_bytes: int, l2_bytes: int
) -> tuple[int, int]:
    """(cache_i, block_k) of the default: the most register tiles of rows per block (up to
    DENSE_PACK_BLOCK_ROWS rows, leaving DENSE_PACK_MIN_BLOCKS blocks) whose rows of x and one
    panel of the weight fit the L2 share over the whole depth, with at least
    DENSE_PACK_MIN_BLOCK_ROWS rows unless the whole weight fits there too (then it is reread
    from L2, not L3); where none does, the largest block with a k-block loop (block_k) short
    enough that they fit over one k-block. A block of all the row tiles is a candidate
    whatever their count (3 tiles of 17 rows), so few rows stream the weight once."""
    budget = l2_bytes * DENSE_PACK_L2_SHARE
    col_blocks = -(-cols // tile_cols)
    tiles = -(-rows // tile_rows)
    fits = [
        c
        for c in _block_candidates(tiles, tile_rows)
        if c * tile_rows <= DENSE_PACK_BLOCK_ROWS
        and (c == 1 or batch * tiles // c * col_blocks >= DENSE_PACK_MIN_BLOCKS)
    ]
    for c in fits:
        block_rows = c * tile_rows
        many_rows = block_rows >= min(rows, DENSE_PACK_MIN_BLOCK_ROWS)
        weight_in_l2 = elem_bytes * depth * (block_rows + cols) <= budget
        if elem_bytes * depth * (block_rows + tile_cols) <= budget and (many_rows or weight_in_l2):
            return c, 0
    c = fits[0]
    ks = [k for k in DENSE_PACK_BLOCK_K if depth % k == 0 and k < depth]
    fitting = [k for k in ks if elem_bytes * k * (c * tile_rows + tile_cols) <= budget]
    if fitting:
        return c, fitting[-1]
    return (c, ks[0]) if ks else (fits[-1], 0)


def panels_per_task(cols: int, depth: int, tile_cols: int, elem_bytes: int, l2_bytes: int) -> int:
    """cache_j of the default where the kernel packs its weight (packed_in_kernel): a thread's
    task is cache_j panels, each row tile of x read once from L3 and reused from L1 across
    them, so the most of 4, 2, 1 whose panels fit the L2 share over the whole depth and leave
    DENSE_PACK_MIN_BLOCKS tasks. One thread, Zen 4 (1 MiB L2), CPU time against one panel a
    task: 2048^3 0.96-0.98x (2 panels; one streamed x from L3 64 times and lost 1.04-1.06x to
    the separate pack kernel), 1024^3 level (4), 512^3 level (2)."""
    budget = l2_bytes * DENSE_PACK_L2_SHARE
    tiles = -(-cols // tile_cols)
    return next(
        c
        for c in (4, 2, 1)
        if c == 1 or (elem_bytes * depth * c * tile_cols <= budget and tiles // c >= DENSE_PACK_MIN_BLOCKS)
    )


def row_epilogue(anchor: te.ComputeOp, out: te.ComputeOp) -> tuple[list[te.ComputeOp], list[te.ComputeOp]] | None:
    """The row statistics (softmax's max and sum) and row tiles (its exp) of a contraction
    that fuse-ops fused with a softmax over its output's rows (attention's scores), or None
    for a plain (elementwise) epilogue."""
    if anchor is out:
        return None
    block = out.parent_block()
    assert block is not None and block.last_op is not None
    computes = [o for o in block.ops if isinstance(o, te.ComputeOp) and o is not anchor]
    stats = row_statistics(out, computes, list(block.last_op.operands))
    return None if stats is None else (stats, row_tiles(out, stats, computes))


def dense_pack_space(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, caches: CacheInfo = UNKNOWN_CACHES) -> Space:
    """Multi-level tiling of i, j and k: a register tile (tile_i rows × tile_j columns), a
    cache block of cache_i × cache_j register tiles, k split by tile_k inside the register
    tile (0: not split) and unrolled by unroll_k, or split by block_k into a k-block loop that
    the register tiles of a cache block share (0: none), the order of the block loops, and
    threads over the fused block loops or the outermost only, and whether the next weight panel
    is prefetched. The default is cache_block's, for the target's L2. With a softmax over the rows (row_epilogue) the space is the
    register tile, the row tiles per task (ROW_EPILOGUE_TASK_TILES by default) and the rows
    the softmax's later passes take together (group_rows, ROW_EPILOGUE_GROUP_ROWS)."""
    extents = out.spatial_extents
    batch, i, _ = _contraction_axes(out)
    rows, cols, depth = (extents[-2] if i is not None else 1), extents[-1], anchor.reduce_extent_list[-1]
    bn = anchor_pack_width(anchor)
    widths = [w for w in (lanes, 2 * lanes, 3 * lanes, 4 * lanes) if cols % w == 0 and w <= 64]
    tile_i = register_rows(rows, default_tile_rows(lanes))
    if row_epilogue(anchor, out) is not None:
        return (
            # any row tile: a partial task is guarded outside the rows' vector loops
            knob("tile_i", sorted({*divisors(rows, 16), tile_i, *(t for t in (2, 4, 8) if t < rows)}), tile_i),
            knob("tile_j", sorted({*widths, bn}), bn),
            knob("cache_i", (1, 2, 4), ROW_EPILOGUE_TASK_TILES),
            knob("group_rows", (1, 2, 4), ROW_EPILOGUE_GROUP_ROWS),
        )
    tiles = -(-rows // tile_i)
    elem_bytes = max(1, getattr(anchor.result.type.element_type, "bitwidth", 32) // 8)  # type: ignore[union-attr]
    gemv = rows <= GEMV_ROWS
    tile_j = gemv_tile_cols(rows, cols, widths, bn, lanes) if gemv else register_cols(tile_i, widths, bn, lanes)
    cache_i, block_k = cache_block(
        math.prod(extents[: len(batch)]), rows, cols, depth, tile_i, bn if gemv else tile_j, elem_bytes, caches.l2_bytes
    )
    if gemv:
        block_k = 0  # one row tile: a k-block loop has no other row tile to share its panel with
    in_kernel = packed_in_kernel(anchor) is not None
    cache_j = 1
    if in_kernel:  # the panel loop outermost and parallel: each thread packs the panels it uses
        block_k = 0
        cache_j = panels_per_task(cols, depth, tile_j, elem_bytes, caches.l2_bytes)
    return (
        knob("tile_i", sorted({*divisors(rows, 16), tile_i}), tile_i),
        knob("tile_j", widths, tile_j),
        knob(
            "cache_i",
            sorted(
                {c for c in (1, 2, 4, 8, 16) if c * DENSE_PACK_TILE_ROWS <= max(rows, 8) * 2}
                | set(_block_candidates(tiles, tile_i))
            ),
            cache_i,
        ),
        knob(
            "cache_j",
            [
                c
                for c in (1, 2, 4, 8)
                if c * bn <= max(cols, bn)
                and (c == 1 or not in_kernel or elem_bytes * depth * c * max([bn, *widths]) <= PACKED_TASK_BYTES)
            ],
            cache_j,
        ),
        knob("tile_k", [0] + [t for t in (32, 64, 128, 256, 512) if depth % t == 0 and t < depth], 0),
        knob("order", ("ji",) if in_kernel else DENSE_PACK_ORDERS, "ji" if in_kernel else "ij"),
        knob("unroll_k", (1, 2, 4, 8), 1),
        knob("parallel", ("outer",) if in_kernel else DENSE_PACK_PARALLEL, "outer" if in_kernel else "fused"),
        knob(
            "block_k",
            [0] + ([] if in_kernel else [t for t in DENSE_PACK_BLOCK_K if depth % t == 0 and t < depth]),
            block_k,
        ),
        knob(
            "prefetch",
            ("off", "on") if _packed_weight(anchor) is not None else ("off",),
            "on" if _packed_weight(anchor) is not None and rows >= 2 * tile_i else "off",
        ),
    )


def schedule_dense_pack(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """TVM's dense_pack for x86: a register tile of tile_i rows × tile_j columns accumulated
    over k in registers, the epilogue (bias, activation) applied to the tile as it is written,
    output tiles spread over threads. A cache block (cache_i × cache_j register tiles) orders
    the tiles so that consecutive ones share their rows of x or their panel of the weight.

    Without block_k the contraction is computed at the output's tile loop: per register tile
    over all of k, so its accumulators keep constant indices and stay in registers (tile_k
    splits k inside it, the partial sums stored between its parts). With block_k it is
    computed per cache block, a k-block loop outside the block's register tiles (the weight
    panel of one k-block stays in L1 while the block's row tiles take turns with it); the
    tile's partial sums then live in the block's buffer between k-blocks, and LLVM keeps them
    in registers over each k-block's loop, whose indices are constant there."""
    rows = row_epilogue(anchor, out)
    if rows is not None:
        schedule_row_epilogue(anchor, out, *rows, k, lanes)
        return True
    s_out = Schedule(out)
    local = s_out.cache_write() if anchor is out else Schedule(anchor)
    batch, i, j = _contraction_axes(out)
    mr, nr = int(k["tile_i"]), int(k["tile_j"])
    ci, cj, tk, uk, bk = (int(k[name]) for name in ("cache_i", "cache_j", "tile_k", "unroll_k", "block_k"))
    block: dict[str, str] = {}  # "i"/"j" -> the block loop over that axis
    tiles: list[str] = []  # the register-tile loops inside a block
    inner: list[str] = []
    extent = dict(zip(out.axis_names, out.spatial_extents))
    for name, axis, factor, cache in (("i", i, mr, ci), ("j", j, nr, cj)):
        if axis is None:
            continue
        if cache > 1 and -(-extent[axis] // factor) % cache:
            # a partial cache block: split the axis by the block first, so that the register
            # tiles past the end are seen as an overhang of the axis itself and the tile
            # computed at them is guarded (lower-te-to-loop bounds a tile by the splits of a
            # root axis; one of the tile loop's would leave it reading past the operands)
            o, rest = s_out.split(axis, factor=factor * cache)
            t, n = s_out.split(rest, factor=factor)
            tiles.append(t)
        else:
            o, n = s_out.split(axis, factor=factor)
            if cache > 1:
                o, t = s_out.split(o, factor=cache)
                tiles.append(t)
        inner.append(n)
        block[name] = o
    outer = list(batch) + [block[a] for a in str(k["order"]) if a in block]
    s_out.reorder(*outer, *tiles, *inner)
    pack = packed_in_kernel(anchor)
    if k["parallel"] == "fused":
        par = s_out.fuse(*outer) if len(outer) > 1 else outer[0]
    elif pack is not None and batch:  # the panel loop of every head: threads over (head, panel)
        par = s_out.fuse(*outer[: len(batch) + 1])
    else:
        par = outer[0]
    per_block = par if k["parallel"] == "fused" else outer[-1]
    if len(inner) > 1:
        s_out.unroll(inner[0])
    s_out.vectorize(inner[-1])
    s_out.parallel(par)
    local.compute_at(out, per_block if bk or not tiles else tiles[-1])
    kname = anchor.axis_names[-1]
    if bk:
        ks = list(local.split(kname, factor=bk))
    elif tk:
        ks = list(local.split(kname, factor=tk))
    else:
        ks = [kname]
    if uk > 1:
        ks = ks[:-1] + list(local.split(ks[-1], factor=uk))
    lbatch, li, lj = _contraction_axes(anchor)
    tile_loops: list[str] = []  # the block's register tiles: along j outside i, so a panel serves every row tile
    spatial = [*lbatch, *([li] if li is not None else []), lj]
    if bk:
        spatial = list(lbatch)
        pairs = [(lj, nr)] + ([(li, mr)] if li is not None else [])
        split = [local.split(axis, factor=f) for axis, f in pairs]
        tile_loops = [o for o, _ in split]
        spatial += [n for _, n in reversed(split)]
        local.reorder(*lbatch, ks[0], *tile_loops, *ks[1:], *spatial[len(lbatch) :])
    else:
        local.reorder(*ks, *spatial)
    if uk > 1:
        local.unroll(ks[-1])
    if len(spatial) > 1:
        local.unroll(spatial[-2])
    local.vectorize(spatial[-1])
    if pack is not None:  # fuse-ops put the weight's packing here: per panel, at the panel loop
        pack_weight_at(pack, out, par, lanes)
    if k["prefetch"] == "on" and (i is None or str(k["order"]).endswith("j")):
        # (the next iteration of the block loop reads the next panel only where j is innermost)
        s_out.prefetch(_packed_weight(anchor), per_block)
    return True


def schedule_row_epilogue(
    anchor: te.ComputeOp,
    out: te.ComputeOp,
    stats: list[te.ComputeOp],
    tiles: list[te.ComputeOp],
    k: dict[str, KnobValue],
    lanes: int = 16,
) -> None:
    """A contraction whose rows a softmax normalises (attention's scores): threads over
    tasks of cache_i register tiles of rows (each row whole); a task computes its rows of
    the contraction into a local buffer (register tiles along j, k inside), then the row
    kernel's passes (schedules.schedule_row_kernel) from cache, vectors along each row. The
    scores never reach memory.

    The passes are bound by the latency of their reductions as much as by their vector
    operations: one row's max waits on a chain of maxes and a horizontal reduction before
    its exps can start, its division on the chain of adds after them. So the first statistic
    (the max) and the row tiles it reads (the scaled and masked scores) are computed over all
    the task's rows in one loop, whose independent rows the core overlaps, and the rest (the
    exps, their sum, the output) per group of group_rows rows, unrolled, so two rows' chains
    interleave.

    Where the kernel packs the weight itself (fuse-ops put K's packing in it), threads take
    whole heads instead, and each packs its head's weight at the head loop
    (pack_weight_at); the row tasks run one after another inside it."""
    s_out = Schedule(out)
    batch, i, j = _contraction_axes(out)
    lbatch, li, lj = _contraction_axes(anchor)
    assert i is not None and li is not None  # a row statistic needs rows (row_statistics)
    mr, nr, ci, rg = (int(k[name]) for name in ("tile_i", "tile_j", "cache_i", "group_rows"))
    task, row = s_out.split(i, factor=mr * ci)
    pack = packed_in_kernel(anchor)
    if pack is None:
        task = par = s_out.fuse(*batch, task) if batch else task
    else:  # threads over whole heads, each packing its head's weight once (pack_weight_at)
        par = s_out.fuse(*batch) if len(batch) > 1 else batch[0]
    group = row
    if min(rg, mr * ci) > 1:
        group, in_group = s_out.split(row, factor=rg)
        s_out.unroll(in_group)
    s_out.vectorize(j)  # whole: what is uniform along the row (1 / sum) is computed once per row
    s_out.parallel(par)
    if pack is not None:
        pack_weight_at(pack, out, par, lanes)
    local = Schedule(anchor)
    ljo, lji = local.split(lj, factor=nr)
    lio, lii = local.split(li, factor=mr)
    local.reorder(*lbatch, lio, ljo, anchor.axis_names[-1], lii, lji)
    local.unroll(lii)
    local.vectorize(lji)
    local.compute_at(out, task)
    kernel_order = list(out.parent_block().ops)  # type: ignore[union-attr]
    first = min(stats, key=kernel_order.index)
    first_reads = {op.tensor for op in first.body.block.ops if isinstance(op, te.ReadOp)}
    over_task = {first, *(t for t in tiles if t.result in first_reads)}
    for r in sorted([*stats, *tiles], key=kernel_order.index):
        rs = Schedule(r)
        if r in tiles:
            rs.compute_root()  # schedule_kernel inlined it with the other injective stages
        rs.compute_at(out, task if r in over_task else group)
        rs.vectorize(rs.axes[-1])


def packed_in_kernel(anchor: te.ComputeOp) -> te.ComputeOp | None:
    """The stage of the kernel that packs the anchor's weight (fuse-ops put K's packing in an
    attention kernel), or None where the packed weight is an argument."""
    rank = len(anchor.spatial_extents) + 1
    for op in anchor.body.block.ops:
        if isinstance(op, te.ReadOp) and len(op.tensor.type.get_shape()) == rank:  # type: ignore[union-attr]
            return op.tensor.owner if isinstance(op.tensor.owner, te.ComputeOp) else None
    return None


def pack_weight_at(pack: te.ComputeOp, out: te.ComputeOp, loop: str, lanes: int) -> None:
    """The packed weight ([..., n / bn, k, bn]) computed at `loop` of out, the part of it one
    iteration reads: one head's ([1, n / bn, k, bn]) at attention's head loop, one panel's
    ([1, k, bn]) at a GEMM's panel loop. In tiles of up to 16 k by one vector of columns,
    unrolled over k: where the pack transposes (K, a dense's weight) the backend transposes
    them in registers (backends/llvm/tile_transpose.py), rows loaded whole, packed rows stored;
    matmul's [k, n] weight is 16 row pieces copied as vectors."""
    p = Schedule(pack)
    p.compute_root()  # schedule_kernel inlined it with the other injective stages
    *outer, kk, jj = p.axes[: len(pack.spatial_extents)]
    depth, bn = pack.spatial_extents[-2:]
    ko, ki = p.split(kk, factor=largest_divisor(depth, 16))
    jo, ji = p.split(jj, factor=largest_divisor(bn, lanes))
    p.reorder(*outer, ko, jo, ki, ji)
    p.unroll(ki)
    p.vectorize(ji)
    p.compute_at(out, loop)


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


# A weight packed at compile time prefetches the next panel while the current one computes
# (knob `prefetch`, te.prefetch at the block loop), by default where a panel serves two row
# tiles or more: the first row tile otherwise waits on the panel coming from L3. The zoo
# transformer's 32x256 . 256x256, one thread, L2 evicted before each call: 0.875x (44.4 -> 38.9
# us median, load 0.6), warm level (1.005x); two threads alone level (1.015x); the model's run()
# 0.96x (median of 5 alternating old/new processes, load 1.6-2.3).
def _packed_weight(anchor: te.ComputeOp):
    """The packed weight the contraction reads when it is a kernel argument (packed at compile
    time: its panels are contiguous), else None."""
    for op in anchor.body.block.ops:
        if (
            isinstance(op, te.ReadOp)
            and isinstance(op.tensor, BlockArgument)
            and len(op.tensor.type.get_shape()) == len(anchor.spatial_extents) + 1  # type: ignore[union-attr]
        ):
            return op.tensor
    return None


DENSE_PACK = Template("dense_pack", dense_pack_space, schedule_dense_pack)
