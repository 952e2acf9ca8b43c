"""GPU schedule templates, shared by every GPU backend (CUDA, OpenCL): Lathe's TOPI cuda schedules.

A GPU backend asks for them through `apply-default-schedule{gpu=true max_threads=N warp_size=W}`
(its `graph_pass_options`). Every kernel comes out bound: each stage that gets a buffer
(an output, a reduction) has its output axes bound to blockIdx.x / threadIdx.x, so that
the backend launches one grid per such stage (docs/backends.md, "GPU kernels", says what the
bound loop IR means). Knobs are declared with `knob(...)` as the CPU templates' are, so
configurations print, replay through `lathe.schedule_config` and are searched by the tuner.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr
from xdsl.ir import SSAValue

from lathe.dialects import te
from lathe.errors import LatheError
from lathe.lowering.schedule_builder import Config, KnobValue, Schedule, Space, _CachedSchedule, kernel_config, knob
from lathe.lowering.te_to_loop import affine_reads

BLOCK_SIZES = (32, 64, 128, 256, 512, 1024)
DEFAULT_BLOCK = 256  # threads per block where the device allows it: TVM's cuda default
PER_THREAD = (1, 2, 4, 8)  # output elements each thread computes (strided by the block: coalesced)

GPU_GENERIC = "gpu_generic"  # the template of every kernel the GPU templates below do not claim
GPU_REDUCE = "gpu_reduce"  # row reductions (softmax, layer_norm, mean/sum/max): one block per output
GPU_DENSE = "gpu_dense"  # dense, matmul, batch_matmul: shared-memory tiles of the operands


def block_candidates(max_threads: int) -> list[int]:
    return [b for b in BLOCK_SIZES if b <= max_threads] or [max_threads]


def default_block(max_threads: int) -> int:
    return min(DEFAULT_BLOCK, max_threads)


def _spatial(s: Schedule) -> list[str]:
    return s.axes[: len(s.stage.spatial_extents)]


def bind_flat(s: Schedule, block: int, per_thread: int = 1) -> None:
    """The generic GPU schedule of one stage: fuse its output axes, split by `block` threads,
    bind the outer part to blockIdx.x and the inner to threadIdx.x; with `per_thread` > 1,
    each thread computes that many outputs `block` apart (consecutive threads touch
    consecutive elements, so accesses coalesce). A split that does not divide is guarded by
    lower-te-to-loop. Reduce axes stay inside the thread, serial. A stage with no output axes
    (a full reduction to a scalar) is left unbound: one block of one thread runs it."""
    axes = _spatial(s)
    if not axes:
        return
    fused = s.fuse(*axes) if len(axes) > 1 else axes[0]
    total = 1
    for e in s.stage.spatial_extents:
        total *= e
    if per_thread > 1 and total > block:
        outer, thread = s.split(fused, factor=block)
        grid, serial = s.split(outer, factor=per_thread)
        s.reorder(grid, thread, serial)
        s.unroll(serial)
    else:
        grid, thread = s.split(fused, factor=block)
    s.bind(grid, "blockIdx.x")
    s.bind(thread, "threadIdx.x")


def generic_space(max_threads: int) -> Space:
    return (
        knob("block", block_candidates(max_threads), default_block(max_threads)),
        knob("per_thread", PER_THREAD, 1),
    )


def schedule_generic(f: func.FuncOp, k: dict[str, KnobValue]) -> None:
    """Injective producers inlined (as on the CPU); every stage left with a buffer bound flat."""
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    computes = [o for o in f.body.block.ops if isinstance(o, te.ComputeOp)]
    for c in computes:
        if c.result not in outputs and not c.reduce_extent_list:
            Schedule(c).compute_inline()
    for c in computes:
        if c.result in outputs or c.reduce_extent_list:
            bind_flat(Schedule(c), int(k["block"]), int(k["per_thread"]))


# -- structure: what a stage reads -----------------------------------------------------------


def _reduce_dependent(c: te.ComputeOp) -> set[SSAValue]:
    """The values of c's body that depend on a reduce axis."""
    dep: set[SSAValue] = set(c.body.block.args[len(c.spatial_extents) :])
    for op in c.body.block.ops:
        if any(v in dep for v in op.operands[1 if isinstance(op, te.ReadOp) else 0 :]):
            dep.update(op.results)
    return dep


def _reduced_reads(c: te.ComputeOp) -> list[te.ReadOp]:
    """The reads whose indices move with the reduction: what a reduction streams through."""
    dep = _reduce_dependent(c)
    return [op for op in c.body.block.ops if isinstance(op, te.ReadOp) and any(i in dep for i in op.indices)]


def _total(extents: list[int]) -> int:
    n = 1
    for e in extents:
        n *= e
    return n


# -- gpu_reduce: one block per output, its threads reducing together --------------------------


def _row_reduction(c: te.ComputeOp, warp_size: int) -> bool:
    """A reduction that streams through one tensor (not a contraction or a convolution, which
    combine two) and is long enough to share among a warp's threads."""
    return (
        bool(c.reduce_extent_list)
        and _total(c.reduce_extent_list) >= warp_size
        and len({r.tensor for r in _reduced_reads(c)}) <= 1
    )


def reduce_space(f: func.FuncOp, max_threads: int, warp_size: int) -> Space:
    longest = max(_total(c.reduce_extent_list) for c in _computes(f) if _row_reduction(c, warp_size))
    candidates = block_candidates(max_threads)
    fit = [b for b in candidates if b >= longest and b <= default_block(max_threads)]
    return (knob("threads", candidates, fit[0] if fit else default_block(max_threads)),)


def cross_thread(s: Schedule, threads: int) -> None:
    """One block per output element (the output axes fused onto blockIdx.x); the reduce axes
    fused and split by `threads`, the inner part bound to threadIdx.x: thread t folds elements
    t, t + threads, ... (consecutive threads read consecutive elements), then the block
    combines its partials in shared memory (lower-te-to-loop's cross-thread reduction)."""
    c = s.stage
    nsp = len(c.spatial_extents)
    spatial, reduce = s.axes[:nsp], s.axes[nsp:]
    if spatial:
        s.bind(s.fuse(*spatial) if len(spatial) > 1 else spatial[0], "blockIdx.x")
    red = s.fuse(*reduce) if len(reduce) > 1 else reduce[0]
    _, inner = s.split(red, factor=threads)
    s.bind(inner, "threadIdx.x")


def schedule_reduce(f: func.FuncOp, k: dict[str, KnobValue], max_threads: int, warp_size: int) -> None:
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    for c in _computes(f):
        if c.result not in outputs and not c.reduce_extent_list:
            Schedule(c).compute_inline()
        elif _row_reduction(c, warp_size):
            cross_thread(Schedule(c), int(k["threads"]))
        else:
            bind_flat(Schedule(c), default_block(max_threads))


# -- gpu_dense: contractions through shared-memory tiles --------------------------------------

TILES = (8, 16, 32, 64)  # rows (columns) of a block's output tile
TILE_K = (4, 8, 16, 32)  # depth of the operand tiles staged in shared memory per step
PER_THREAD_TILE = (1, 2, 4)  # rows (columns) of a thread's outputs


@dataclass(frozen=True)
class Contraction:
    """C[..., i, j] = sum_k A[.. i .. k ..] * B[.. j .. k ..], each operand read once at axes
    (or constants) directly: what gpu_dense tiles."""

    stage: te.ComputeOp
    a: SSAValue
    b: SSAValue


def find_contraction(f: func.FuncOp) -> Contraction | None:
    """The kernel's one contraction: a sum over one reduce axis of a product of two reads, A
    indexed by (batch axes,) i and k, B by (batch axes,) j and k, each index one axis or a
    constant (so that a tile of the output reads a tile of each operand)."""
    found = []
    for c in _computes(f):
        nsp = len(c.spatial_extents)
        if len(c.reduce_extent_list) != 1 or c.combiner_name != "sum" or nsp < 2:
            continue
        reads = _reduced_reads(c)
        if len(reads) != 2 or reads[0].tensor == reads[1].tensor:
            continue
        axes = []
        for r in reads:
            forms = affine_reads(c, r.tensor)
            if len(forms) != 1 or any(x is None or len(x[0]) > 1 or set(x[0].values()) - {1} for x in forms[0]):
                break
            axes.append({next(iter(x[0])) for x in forms[0] if x[0]})  # type: ignore[union-attr]
        if len(axes) != 2:
            continue
        i, j, kk = nsp - 2, nsp - 1, nsp
        if i in axes[1]:
            reads, axes = reads[::-1], axes[::-1]
        a, b = axes
        if {i, kk} <= a and j not in a and {j, kk} <= b and i not in b:
            found.append(Contraction(c, reads[0].tensor, reads[1].tensor))
    return found[0] if len(found) == 1 else None


def _thread_tiles(max_threads: int) -> tuple[int, int, int, int]:
    """Default tile (rows, columns, per-thread rows, per-thread columns) for the device: a
    32 x 32 output tile, each thread 2 x 2 outputs (256 threads) or more where the device
    has fewer threads."""
    for tm, rm in ((32, 2), (32, 4), (16, 4), (8, 8)):
        if (tm // rm) ** 2 <= max_threads:
            return tm, tm, rm, rm
    return 8, 8, 8, 8


def dense_space(max_threads: int) -> Space:
    tm, tn, rm, rn = _thread_tiles(max_threads)
    return (
        knob("tile_m", TILES, tm),
        knob("tile_n", TILES, tn),
        knob("tile_k", TILE_K, 8),
        knob("thread_m", PER_THREAD_TILE + (8,), rm),
        knob("thread_n", PER_THREAD_TILE + (8,), rn),
        knob("unroll", (0, 1), 1),
    )


def _cache_read_shared(tensor: SSAValue, reader: te.ComputeOp) -> tuple[Schedule, list[str]]:
    """TVM's cache_read(tensor, "shared", [reader]): the schedule of the copy and its axes."""
    op = te.CacheReadOp.build(
        operands=[tensor, [reader.result]], result_types=[tensor.type], properties={"scope": StringAttr("shared")}
    )
    s = Schedule(reader)
    assert s.ret is not None
    s.ret.parent_block().insert_op_before(op, s.ret)  # type: ignore[union-attr]
    rank = len(tensor.type.get_shape())  # type: ignore[attr-defined]
    return _CachedSchedule(reader, op.result), [f"ax{d}" for d in range(rank)]


def schedule_dense(f: func.FuncOp, k: dict[str, KnobValue], max_threads: int) -> None:
    """TVM's cuda dense/batch_matmul schedule: a block computes a tile_m x tile_n output
    tile (blockIdx.y, blockIdx.x; batch on blockIdx.z); for each tile_k step of the
    reduction its threads copy the A and B tiles into shared memory together (consecutive
    threads, consecutive elements), between barriers, then each thread accumulates its
    thread_m x thread_n outputs from them. Tiles past the edges are guarded, so any shape
    works. Other stages: as gpu_generic."""
    con = find_contraction(f)
    assert con is not None
    tm, tn, tk = int(k["tile_m"]), int(k["tile_n"]), int(k["tile_k"])
    rm, rn = int(k["thread_m"]), int(k["thread_n"])
    threads = -(-tm // rm) * -(-tn // rn)
    if rm > tm or rn > tn or threads > max_threads:
        raise LatheError(
            f"gpu_dense: a {tm} x {tn} tile with {rm} x {rn} outputs per thread needs {threads} threads "
            f"(the device has {max_threads}, and a thread's tile must fit the block's)"
        )
    c = con.stage
    s = Schedule(c)
    nsp = len(c.spatial_extents)
    *batch, i, j = s.axes[:nsp]
    (red,) = s.axes[nsp:]
    bi, ii = s.split(i, factor=tm)
    bj, jj = s.split(j, factor=tn)
    ty, ri = s.split(ii, factor=rm)
    tx, rj = s.split(jj, factor=rn)
    ko, ki = s.split(red, factor=tk)
    s.reorder(*batch, bi, bj, ko, ty, tx, ki, ri, rj)
    t = s.fuse(ty, tx)
    if batch:
        s.bind(s.fuse(*batch) if len(batch) > 1 else batch[0], "blockIdx.z")
    s.bind(bi, "blockIdx.y")
    s.bind(bj, "blockIdx.x")
    s.bind(t, "threadIdx.x")
    if k["unroll"]:
        s.unroll(ri)
        s.unroll(rj)
    for tensor in (con.a, con.b):
        cache, axes = _cache_read_shared(tensor, c)
        cache.compute_at(c, ko)
        fused = cache.fuse(*axes) if len(axes) > 1 else axes[0]
        outer, inner = cache.split(fused, factor=threads)
        cache.reorder(inner, outer)
        cache.bind(inner, "threadIdx.x")
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    for other in _computes(f):
        if other is c:
            continue
        if other.result not in outputs and not other.reduce_extent_list:
            Schedule(other).compute_inline()
        else:
            bind_flat(Schedule(other), default_block(max_threads))


def _computes(f: func.FuncOp) -> list[te.ComputeOp]:
    return [o for o in f.body.block.ops if isinstance(o, te.ComputeOp)]


@dataclass(frozen=True)
class GpuPlan:
    """How a kernel is scheduled for a GPU: the template's name and its knobs here."""

    template_name: str
    space: Space


def plan_gpu_kernel(f: func.FuncOp, max_threads: int, warp_size: int) -> GpuPlan:
    """The template that claims the kernel: a contraction's, else a row reduction's, else generic."""
    if find_contraction(f) is not None:
        return GpuPlan(GPU_DENSE, dense_space(max_threads))
    computes = _computes(f)
    reductions = [c for c in computes if c.reduce_extent_list]
    if any(_row_reduction(c, warp_size) for c in reductions) and all(
        len({r.tensor for r in _reduced_reads(c)}) <= 1 for c in reductions
    ):
        return GpuPlan(GPU_REDUCE, reduce_space(f, max_threads, warp_size))
    return GpuPlan(GPU_GENERIC, generic_space(max_threads))


def schedule_gpu_kernel(f: func.FuncOp, max_threads: int, warp_size: int, config: Config | None = None) -> None:
    """Schedule one kernel for a GPU with `config`'s knob values (the kernel's own
    `lathe.schedule_config`, else the template's defaults)."""
    if max_threads < 1 or warp_size < 1:
        raise LatheError(f"GPU schedules: max_threads and warp_size must be positive, got {max_threads}, {warp_size}")
    plan = plan_gpu_kernel(f, max_threads, warp_size)
    config = config or kernel_config(f) or Config(plan.template_name)
    if config.template == GPU_GENERIC:  # valid for every kernel: the baseline any template is measured against
        plan = GpuPlan(GPU_GENERIC, generic_space(max_threads))
    try:
        knobs = config.resolve(plan.template_name, plan.space)
    except LatheError as e:
        raise LatheError(f"@{f.sym_name.data}: {e.message}", note=e.note) from None
    if plan.template_name == GPU_DENSE:
        schedule_dense(f, knobs, max_threads)
    elif plan.template_name == GPU_REDUCE:
        schedule_reduce(f, knobs, max_threads, warp_size)
    else:
        schedule_generic(f, knobs)
