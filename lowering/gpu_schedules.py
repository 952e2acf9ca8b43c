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
from lathe.lowering.te_to_loop import Span, read_spans

BLOCK_SIZES = (32, 64, 128, 256, 512, 1024)
DEFAULT_BLOCK = 256  # threads per block where the device allows it: TVM's cuda default
PER_THREAD = (1, 2, 4, 8)  # output elements each thread computes (strided by the block: coalesced)

GPU_GENERIC = "gpu_generic"  # the template of every kernel the GPU templates below do not claim
GPU_REDUCE = "gpu_reduce"  # row reductions (softmax, layer_norm, mean/sum/max): one block per output
GPU_DENSE = "gpu_dense"  # dense, matmul, batch_matmul: shared-memory tiles of the operands
GPU_CONV2D = "gpu_conv2d"  # conv2d (NCHW, NHWC; depthwise): direct, input and weight tiles in shared memory


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


def _depends(c: te.ComputeOp, read: te.ReadOp) -> set[int]:
    """The axes (positions, spatial then reduce) a read's indices depend on."""
    deps: dict[SSAValue, set[int]] = {a: {k} for k, a in enumerate(c.body.block.args)}
    for op in c.body.block.ops:
        if op is read:
            break
        found = set().union(*(deps.get(v, set()) for v in op.operands))
        for r in op.results:
            deps[r] = found
    return set().union(*(deps.get(i, set()) for i in read.indices))


def tile_elements(c: te.ComputeOp, tiles: dict[str, int]) -> int | None:
    """Elements of the tiles of the tensors c's reduction streams through, for a block
    covering `tiles` (axis name: its extent per block; other axes one), as lower-te-to-loop's
    bound inference will size them; None where an index is not bounded by its axes."""
    extents = dict(zip(c.axis_names, c.spatial_extents + c.reduce_extent_list))
    roots = [Span.range(min(tiles.get(n, 1), extents[n])) for n in c.axis_names]
    total = 0
    for tensor in dict.fromkeys(r.tensor for r in _reduced_reads(c)):
        shape = tensor.type.get_shape()  # type: ignore[attr-defined]
        size = None
        for read in read_spans(c, tensor, roots):
            if any(x is None for x in read):
                return None
            n = 1
            for x, dim in zip(read, shape):
                n *= min(x.hi - x.lo + 1, dim)  # type: ignore[union-attr]
            size = n if size is None else max(size, n)
        total += size or 0
    return total


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
    depending on i and k but not j, B on j and k but not i (batch axes allowed), whose
    tiles bound inference can size (plain or packed layouts)."""
    found = []
    for c in _computes(f):
        nsp = len(c.spatial_extents)
        if len(c.reduce_extent_list) != 1 or c.combiner_name != "sum" or nsp < 2:
            continue
        reads = _reduced_reads(c)
        if len(reads) != 2 or reads[0].tensor == reads[1].tensor:
            continue
        i, j, kk = nsp - 2, nsp - 1, nsp
        deps = [_depends(c, r) for r in reads]
        if i in deps[1]:
            reads, deps = reads[::-1], deps[::-1]
        a, b = deps
        names = c.axis_names
        tiles = {names[i]: TILES[-1], names[j]: TILES[-1], names[kk]: TILE_K[-1]}
        if {i, kk} <= a and j not in a and {j, kk} <= b and i not in b and tile_elements(c, tiles) is not None:
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


# -- gpu_conv2d: direct convolution through shared-memory tiles --------------------------------

SHARED_FLOATS = 8192  # 32 KiB of float32 tiles per block: under every GPU's 48 KiB


def find_conv2d(f: func.FuncOp) -> te.ComputeOp | None:
    """The kernel's conv2d stage (anchor), when both of its operands are read at affine
    indices (groups of one channel or all of them: the padded input is then read over a window)."""
    convs = [c for c in _computes(f) if c.anchor is not None and c.anchor.data == "nn.conv2d"]
    if len(convs) != 1:
        return None
    c = convs[0]
    if len(_reduced_reads(c)) != 2 or tile_elements(c, {"f": 1, "y": 1, "x": 1, "rc": 1}) is None:
        return None
    return c


def conv2d_space(c: te.ComputeOp, max_threads: int) -> Space:
    tf, rf, ty, tx = 16, 2, 4, 8
    while -(-tf // rf) * ty * tx > max_threads and tx > 1:
        tx //= 2
    return (
        knob("tile_f", (4, 8, 16, 32), tf),
        knob("thread_f", (1, 2, 4), rf),
        knob("tile_y", (1, 2, 4, 8), ty),
        knob("tile_x", (1, 2, 4, 8, 16), tx),
        knob("tile_rc", (1, 2, 4, 8), 4),
    )


def schedule_conv2d(f: func.FuncOp, k: dict[str, KnobValue], max_threads: int) -> None:
    """TVM's cuda conv2d_direct: a block computes tile_f output channels x tile_y x tile_x
    output pixels of one image (blockIdx.z over images and channel tiles, blockIdx.y over
    rows, blockIdx.x over columns); its threads each compute thread_f channels of one
    pixel; for each tile_rc input channels, the padded input window and the weights they
    need are copied into shared memory by the block together, between barriers. The padded
    copy of the input is its own launch (a flat one) so that the window reads no
    conditions. Other stages: as gpu_generic."""
    c = find_conv2d(f)
    assert c is not None
    tf, rf, ty, tx, tc = (int(k[n]) for n in ("tile_f", "thread_f", "tile_y", "tile_x", "tile_rc"))
    threads = -(-tf // rf) * ty * tx
    floats = tile_elements(c, {"f": tf, "y": ty, "x": tx, "rc": tc, "ry": 1 << 30, "rx": 1 << 30}) or 0
    if rf > tf or threads > max_threads or floats > SHARED_FLOATS:
        raise LatheError(
            f"gpu_conv2d: a tile of {tf} channels x {ty} x {tx} pixels, {rf} channels per thread and "
            f"{tc} input channels per step needs {threads} threads and {floats} shared elements "
            f"(the device has {max_threads} threads; at most {SHARED_FLOATS} elements)"
        )
    s = Schedule(c)
    fo, fi = s.split("f", factor=tf)
    yo, yi = s.split("y", factor=ty)
    xo, xi = s.split("x", factor=tx)
    ft, fr = s.split(fi, factor=rf)
    rco, rci = s.split("rc", factor=tc)
    s.reorder("n", fo, yo, xo, rco, ft, yi, xi, rci, "ry", "rx", fr)
    s.bind(s.fuse("n", fo), "blockIdx.z")
    s.bind(yo, "blockIdx.y")
    s.bind(xo, "blockIdx.x")
    s.bind(s.fuse(ft, yi, xi), "threadIdx.x")
    s.unroll(fr)
    for read in _reduced_reads(c):
        cache, axes = _cache_read_shared(read.tensor, c)
        cache.compute_at(c, rco)
        fused = cache.fuse(*axes)
        outer, inner = cache.split(fused, factor=threads)
        cache.reorder(inner, outer)
        cache.bind(inner, "threadIdx.x")
    outputs = list(f.body.block.last_op.operands)  # type: ignore[union-attr]
    for other in _computes(f):
        if other is c:
            continue
        if other.result not in outputs and not other.reduce_extent_list and other.role is None:
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
    conv = find_conv2d(f)
    if conv is not None:
        space = conv2d_space(conv, max_threads)
        k = {x.name: x.default for x in space}
        tiles = {"f": k["tile_f"], "y": k["tile_y"], "x": k["tile_x"], "rc": k["tile_rc"], "ry": 1 << 30, "rx": 1 << 30}
        if (tile_elements(conv, tiles) or SHARED_FLOATS + 1) <= SHARED_FLOATS:  # type: ignore[arg-type]
            return GpuPlan(GPU_CONV2D, space)
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
    elif plan.template_name == GPU_CONV2D:
        schedule_conv2d(f, knobs, max_threads)
    elif plan.template_name == GPU_REDUCE:
        schedule_reduce(f, knobs, max_threads, warp_size)
    else:
        schedule_generic(f, knobs)
