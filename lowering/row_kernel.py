"""Row kernels: a kernel whose reductions each reduce one whole row of its output
(softmax's max and sum of exps, layer norm's mean and variance), found here for the
per-stage schedules (schedules.schedule_row_kernel) and for a template whose output rows a
softmax normalises (dense_template.schedule_row_epilogue, attention's scores)."""

from __future__ import annotations

import math

from lathe.dialects import te


def row_statistics(out: te.ComputeOp, computes: list[te.ComputeOp], outputs) -> list[te.ComputeOp] | None:
    """The reductions of a row kernel (softmax, log_softmax, layer norm): each reduces a whole
    row of `out` (its shape is out's with the last axis 1, its one reduce axis as long as
    that axis) and is no kernel output. Computed per row inside out's row loop, a row stays
    in cache through every pass and one parallel loop runs the kernel (as separate stages
    each pass streams the whole tensor in a loop of its own, and a statistic's loop is too
    short to be worth threads). None when the kernel is not one."""
    ext = out.spatial_extents
    if out.reduce_extent_list or len(ext) < 2:
        return None
    row_shape = [*ext[:-1], 1]
    reds = [c for c in computes if c.reduce_extent_list]
    if not reds or any(c.result in outputs for c in reds):
        return None
    for c in reds:
        if c.spatial_extents != row_shape or c.reduce_extent_list != [ext[-1]]:
            return None
    return reds


def row_tiles(out: te.ComputeOp, stats: list[te.ComputeOp], computes: list[te.ComputeOp]) -> list[te.ComputeOp]:
    """The injective stages of a row kernel that a statistic reads and that are out's shape
    (softmax's exp(x - max), read by its sum and by the output): kept as a row in cache
    instead of inlined, each element is computed once, not once per reader. None of an
    empty tensor (nothing to keep; a tile of no elements bounds nothing)."""
    if not math.prod(out.spatial_extents):
        return []
    read = {op.tensor for r in stats for op in r.body.block.ops if isinstance(op, te.ReadOp)}
    return [
        c
        for c in computes
        if c.result in read and not c.reduce_extent_list and c.spatial_extents == out.spatial_extents
    ]
