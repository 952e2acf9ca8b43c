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

from lathe.dialects import te
from lathe.errors import LatheError
from lathe.lowering.schedule_builder import Config, KnobValue, Schedule, Space, kernel_config, knob

BLOCK_SIZES = (32, 64, 128, 256, 512, 1024)
DEFAULT_BLOCK = 256  # threads per block where the device allows it: TVM's cuda default
PER_THREAD = (1, 2, 4, 8)  # output elements each thread computes (strided by the block: coalesced)

GPU_GENERIC = "gpu_generic"  # the template of every kernel the GPU templates below do not claim


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


@dataclass(frozen=True)
class GpuPlan:
    """How a kernel is scheduled for a GPU: the template's name and its knobs here."""

    template_name: str
    space: Space


def plan_gpu_kernel(f: func.FuncOp, max_threads: int, warp_size: int) -> GpuPlan:
    return GpuPlan(GPU_GENERIC, generic_space(max_threads))


def schedule_gpu_kernel(f: func.FuncOp, max_threads: int, warp_size: int, config: Config | None = None) -> None:
    """Schedule one kernel for a GPU with `config`'s knob values (the kernel's own
    `lathe.schedule_config`, else the template's defaults)."""
    if max_threads < 1 or warp_size < 1:
        raise LatheError(f"GPU schedules: max_threads and warp_size must be positive, got {max_threads}, {warp_size}")
    plan = plan_gpu_kernel(f, max_threads, warp_size)
    config = config or kernel_config(f) or Config(plan.template_name)
    try:
        knobs = config.resolve(plan.template_name, plan.space)
    except LatheError as e:
        raise LatheError(f"@{f.sym_name.data}: {e.message}", note=e.note) from None
    schedule_generic(f, knobs)
