"""The dense_pack template: dense, matmul and batch_matmul with a packed weight, on CPUs
(TVM's dense_pack for x86, the tuner's knobs declared with it)."""

from __future__ import annotations

from lathe.dialects import te
from lathe.lowering.schedule_builder import KnobValue, Schedule, Space, Template, divisors, knob, largest_divisor

DENSE_PACK_TILE_ROWS = 8  # rows of the register tile (at most: the largest divisor of the rows)
DENSE_PACK_ORDERS = ("ij", "ji")  # the order of the outer (cache-block) loops over rows and columns
DENSE_PACK_PARALLEL = ("fused", "outer")  # threads over all fused outer loops, or the outermost only


def _contraction_axes(out: te.ComputeOp) -> tuple[list[str], str | None, str]:
    axes = out.axis_names[: len(out.spatial_extents)]
    if len(axes) < 2:
        return [], None, axes[0]
    *batch, i, j = axes
    return batch, i, j


def dense_pack_space(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int) -> Space:
    """Multi-level tiling of i, j and k: a register tile (tile_i rows × tile_j columns), a
    cache block of cache_i × cache_j register tiles, k split by tile_k (0: not split) and
    unrolled by unroll_k, the order of the block loops, and threads over the fused block
    loops or the outermost only."""
    extents = out.spatial_extents
    _, i, _ = _contraction_axes(out)
    rows, cols, depth = (extents[-2] if i is not None else 1), extents[-1], anchor.reduce_extent_list[-1]
    bn = anchor_pack_width(anchor)
    widths = [w for w in (lanes, 2 * lanes, 3 * lanes, 4 * lanes) if cols % w == 0 and w <= 64]
    return (
        knob("tile_i", divisors(rows, 16), largest_divisor(rows, DENSE_PACK_TILE_ROWS)),
        knob("tile_j", widths, bn),
        knob("cache_i", [c for c in (1, 2, 4, 8, 16) if c * DENSE_PACK_TILE_ROWS <= max(rows, 8) * 2], 1),
        knob("cache_j", [c for c in (1, 2, 4, 8) if c * bn <= max(cols, bn)], 1),
        knob("tile_k", [0] + [t for t in (32, 64, 128, 256, 512) if depth % t == 0 and t < depth], 0),
        knob("order", DENSE_PACK_ORDERS, "ij"),
        knob("unroll_k", (1, 2, 4, 8), 1),
        knob("parallel", DENSE_PACK_PARALLEL, "fused"),
    )


def schedule_dense_pack(anchor: te.ComputeOp, out: te.ComputeOp, lanes: int, k: dict[str, KnobValue]) -> bool:
    """TVM's dense_pack for x86: a register tile of tile_i rows × tile_j columns accumulated
    over k in registers (the contraction computed at the output's tile loop), the epilogue
    (bias, activation) applied to the tile as it is written, output tiles spread over threads.
    A cache block (cache_i × cache_j register tiles) orders the tiles so that consecutive
    ones share their rows of x or their panel of the weight; the contraction stays per
    register tile, so its accumulators keep constant indices and stay in registers (computed
    per block they would be indexed by the tile loop, and LLVM keeps them in memory).
    tile_k splits k inside the register tile, the partial sums stored between its parts."""
    s_out = Schedule(out)
    local = s_out.cache_write() if anchor is out else Schedule(anchor)
    batch, i, j = _contraction_axes(out)
    mr, nr = int(k["tile_i"]), int(k["tile_j"])
    ci, cj, tk, uk = int(k["cache_i"]), int(k["cache_j"]), int(k["tile_k"]), int(k["unroll_k"])
    block: dict[str, str] = {}  # "i"/"j" -> the block loop over that axis
    tiles: list[str] = []  # the register-tile loops inside a block
    inner: list[str] = []
    for name, axis, factor, cache in (("i", i, mr, ci), ("j", j, nr, cj)):
        if axis is None:
            continue
        o, n = s_out.split(axis, factor=factor)
        inner.append(n)
        if cache > 1:
            o, t = s_out.split(o, factor=cache)
            tiles.append(t)
        block[name] = o
    outer = list(batch) + [block[a] for a in str(k["order"]) if a in block]
    s_out.reorder(*outer, *tiles, *inner)
    if k["parallel"] == "fused":
        par = s_out.fuse(*outer) if len(outer) > 1 else outer[0]
    else:
        par = outer[0]
    at = tiles[-1] if tiles else (par if k["parallel"] == "fused" else outer[-1])
    if len(inner) > 1:
        s_out.unroll(inner[0])
    s_out.vectorize(inner[-1])
    s_out.parallel(par)
    local.compute_at(out, at)
    kname = anchor.axis_names[-1]
    spatial = anchor.axis_names[:-1]
    ks = [kname]
    if tk > 0:
        ks = list(local.split(kname, factor=tk))
    if uk > 1:
        ks = ks[:-1] + list(local.split(ks[-1], factor=uk))
    local.reorder(*ks, *spatial)
    if uk > 1:
        local.unroll(ks[-1])
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


DENSE_PACK = Template("dense_pack", dense_pack_space, schedule_dense_pack)
