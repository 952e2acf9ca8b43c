"""The te dialect: tensor expressions and their schedules (TVM's TE, as IR).

A `te.compute` defines one stage: its region maps output indices (block
arguments for the spatial axes, then the reduce axes) to a scalar, read from
other tensors with `te.read` and returned with `te.yield`. With reduce axes
the yielded values are combined (`sum`, `max`, `min`, `prod`).

A schedule is data, not code: it is the ordered list of schedule-primitive ops
(`te.split`, `te.tile`, `te.reorder`, `te.fuse`, `te.vectorize`,
`te.parallel`, `te.unroll`, `te.bind`, `te.compute_at`, `te.cache_write`,
`te.compute_inline`, `te.prefetch`) that follow the computes in a kernel, each
naming its stage by SSA value and its axes by name. So a schedule prints,
parses back, can be edited by hand, and a tuner generates or replays one by
emitting these ops (see `lathe.lowering.schedules`). `lower-te-to-loop`
applies them in order.

A compute definition may say what a stage is to the schedule templates, as
TOPI's `tag` does: `anchor` (the graph op whose computation the stage is, on
the stage a kernel's template is built around) or `role` (a helper stage's
part in that op, e.g. "pad"). They are data for apply-default-schedule;
lowering ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    ArrayAttr,
    IndexType,
    IntegerAttr,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException

COMBINERS = ("sum", "max", "min", "prod")


def _names(a: ArrayAttr) -> list[str]:
    return [s.data for s in a.data]  # type: ignore[union-attr]


def _ints(a: ArrayAttr) -> list[int]:
    return [x.value.data for x in a.data]  # type: ignore[union-attr]


@irdl_op_definition
class ComputeOp(IRDLOperation):
    name = "te.compute"
    stage = prop_def(StringAttr)
    axes = prop_def(ArrayAttr)  # names of the spatial then reduce axes
    reduce_extents = opt_prop_def(ArrayAttr)
    combiner = opt_prop_def(StringAttr)
    anchor = opt_prop_def(StringAttr)  # the graph op (Relay name) a template keys on
    role = opt_prop_def(StringAttr)  # a helper stage's part in its anchor's op
    body = region_def("single_block")
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict `:` type($result) $body"

    @staticmethod
    def build_empty(
        stage: str,
        out_type: TensorType,
        axis_names: Sequence[str],
        reduce_extents: Sequence[int] = (),
        combiner: str | None = None,
        anchor: str | None = None,
        role: str | None = None,
    ) -> ComputeOp:
        rank = len(out_type.get_shape())
        block = Block(arg_types=[IndexType()] * (rank + len(reduce_extents)))
        for arg, n in zip(block.args, axis_names):
            arg.name_hint = n.replace(".", "_")
        props: dict[str, Attribute] = {
            "stage": StringAttr(stage),
            "axes": ArrayAttr([StringAttr(n) for n in axis_names]),
        }
        if reduce_extents:
            props["reduce_extents"] = ArrayAttr([IntegerAttr(e, i64) for e in reduce_extents])
            props["combiner"] = StringAttr(combiner or "sum")
        if anchor is not None:
            props["anchor"] = StringAttr(anchor)
        if role is not None:
            props["role"] = StringAttr(role)
        return ComputeOp.create(result_types=[out_type], properties=props, regions=[Region(block)])

    @property
    def axis_names(self) -> list[str]:
        return _names(self.axes)

    @property
    def spatial_extents(self) -> list[int]:
        return list(self.result.type.get_shape())  # type: ignore[union-attr]

    @property
    def reduce_extent_list(self) -> list[int]:
        return _ints(self.reduce_extents) if self.reduce_extents is not None else []

    @property
    def combiner_name(self) -> str | None:
        return self.combiner.data if self.combiner is not None else None

    def verify_(self) -> None:
        block = self.body.block
        nspatial = len(self.spatial_extents)
        nreduce = len(self.reduce_extent_list)
        if len(block.args) != nspatial + nreduce:
            raise VerifyException(
                f"te.compute '{self.stage.data}': {nspatial} spatial + {nreduce} reduce axes "
                f"need {nspatial + nreduce} block arguments, got {len(block.args)}"
            )
        if len(self.axis_names) != len(block.args):
            raise VerifyException(
                f"te.compute '{self.stage.data}': 'axes' names {len(self.axis_names)} axes "
                f"but the body has {len(block.args)}"
            )
        if nreduce and self.combiner_name not in COMBINERS:
            raise VerifyException(
                f"te.compute '{self.stage.data}': combiner must be one of {COMBINERS}, got {self.combiner_name!r}"
            )
        term = block.last_op
        if not isinstance(term, YieldOp):
            raise VerifyException(f"te.compute '{self.stage.data}': body must end in te.yield")
        if term.value.type != self.result.type.element_type:  # type: ignore[union-attr]
            raise VerifyException(
                f"te.compute '{self.stage.data}': yields {term.value.type} but the result "
                f"element type is {self.result.type.element_type}"  # type: ignore[union-attr]
            )


@irdl_op_definition
class ReadOp(IRDLOperation):
    """A scalar read of a tensor at index expressions."""

    name = "te.read"
    tensor = operand_def(TensorType)
    indices = var_operand_def(IndexType)
    result = result_def()
    traits = traits_def(Pure())
    assembly_format = "$tensor `[` $indices `]` attr-dict `:` type($tensor) `->` type($result)"

    def __init__(self, tensor: SSAValue, indices: Sequence[SSAValue]):
        super().__init__(operands=[tensor, list(indices)], result_types=[tensor.type.element_type])  # type: ignore[union-attr]

    def verify_(self) -> None:
        t = self.tensor.type
        assert isinstance(t, TensorType)
        if len(self.indices) != len(t.get_shape()):
            raise VerifyException(f"te.read: {len(self.indices)} indices for a rank-{len(t.get_shape())} tensor")
        if self.result.type != t.element_type:
            raise VerifyException("te.read: result type must be the tensor's element type")


@irdl_op_definition
class YieldOp(IRDLOperation):
    name = "te.yield"
    value = operand_def()
    traits = traits_def(IsTerminator(), Pure())
    assembly_format = "$value attr-dict `:` type($value)"

    def __init__(self, value: SSAValue):
        super().__init__(operands=[value])


# ---------------------------------------------------------------------------
# Schedule primitives. No Pure trait: they must survive dead-code elimination.


class SchedulePrimitive(IRDLOperation):
    stage = operand_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$stage attr-dict `:` type($stage)"

    def compute(self) -> ComputeOp:
        owner = self.stage.owner
        if not isinstance(owner, ComputeOp):
            raise VerifyException(f"{self.name}: the stage operand must be a te.compute result")
        return owner

    def verify_(self) -> None:
        if not isinstance(self.stage.owner, ComputeOp | CacheWriteOp | CacheReadOp | RfactorOp):
            raise VerifyException(f"{self.name}: the stage operand must be a te.compute (or cache/rfactor) result")


@irdl_op_definition
class SplitOp(SchedulePrimitive):
    """axis -> (outer, inner) with inner extent `factor` (or outer extent `nparts`)."""

    name = "te.split"
    axis = prop_def(StringAttr)
    factor = opt_prop_def(IntegerAttr)
    nparts = opt_prop_def(IntegerAttr)
    outer = prop_def(StringAttr)
    inner = prop_def(StringAttr)

    def verify_(self) -> None:
        super().verify_()
        if (self.factor is None) == (self.nparts is None):
            raise VerifyException("te.split: give exactly one of 'factor' and 'nparts'")
        given = self.factor if self.factor is not None else self.nparts  # an attribute of 0 is falsy
        v = given.value.data  # type: ignore[union-attr]
        if v < 1:
            raise VerifyException(f"te.split: factor/nparts must be >= 1, got {v}")


@irdl_op_definition
class ReorderOp(SchedulePrimitive):
    name = "te.reorder"
    order = prop_def(ArrayAttr)


@irdl_op_definition
class FuseOp(SchedulePrimitive):
    """Fuses adjacent axes (outermost first) into one axis named `fused`."""

    name = "te.fuse"
    fuse_axes = prop_def(ArrayAttr)
    fused = prop_def(StringAttr)


class AnnotateOp(SchedulePrimitive):
    axis = prop_def(StringAttr)


@irdl_op_definition
class VectorizeOp(AnnotateOp):
    name = "te.vectorize"


@irdl_op_definition
class ParallelOp(AnnotateOp):
    name = "te.parallel"


@irdl_op_definition
class UnrollOp(AnnotateOp):
    name = "te.unroll"


@irdl_op_definition
class TileOp(SchedulePrimitive):
    """TVM's tile: split x and y, order (x.outer, y.outer, x.inner, y.inner)."""

    name = "te.tile"
    x_axis = prop_def(StringAttr)
    y_axis = prop_def(StringAttr)
    x_factor = prop_def(IntegerAttr)
    y_factor = prop_def(IntegerAttr)


@irdl_op_definition
class BindOp(SchedulePrimitive):
    """Binds an axis to a GPU block/thread index (blockIdx.x, threadIdx.y, ...)."""

    name = "te.bind"
    axis = prop_def(StringAttr)
    thread_axis = prop_def(StringAttr)

    def verify_(self) -> None:
        super().verify_()
        valid = {f"{k}.{d}" for k in ("blockIdx", "threadIdx", "vthread") for d in "xyz"}
        if self.thread_axis.data not in valid:
            raise VerifyException(f"te.bind: thread_axis must be one of {sorted(valid)}, got '{self.thread_axis.data}'")


@irdl_op_definition
class ComputeAtOp(SchedulePrimitive):
    """Computes the stage inside `target`'s loop `axis`, one tile per iteration.

    The stage must produce what `target` reads at the same indices (an
    epilogue's producer); its buffer shrinks to the tile, which for a small
    register-sized tile means registers."""

    name = "te.compute_at"
    stage = operand_def(TensorType)  # restated so that the stage stays the first operand
    target = operand_def(TensorType)
    axis = prop_def(StringAttr)
    assembly_format = "$stage `,` $target attr-dict `:` type($stage) `,` type($target)"

    def target_compute(self) -> ComputeOp:
        owner = self.target.owner
        if not isinstance(owner, ComputeOp):
            raise VerifyException("te.compute_at: the target must be a te.compute result")
        return owner

    def verify_(self) -> None:
        super().verify_()
        if not isinstance(self.target.owner, ComputeOp | CacheWriteOp | CacheReadOp | RfactorOp):
            raise VerifyException("te.compute_at: the target must be a te.compute or te.cache_write result")


@irdl_op_definition
class CacheWriteOp(IRDLOperation):
    """TVM's cache_write: the stage's computation moves to a new stage (the result,
    to be scheduled, typically compute_at) and the stage becomes a copy of it."""

    name = "te.cache_write"
    stage = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$stage attr-dict `:` type($stage) `->` type($result)"

    def __init__(self, stage: SSAValue):
        super().__init__(operands=[stage], result_types=[stage.type])

    def verify_(self) -> None:
        if not isinstance(self.stage.owner, ComputeOp | RfactorOp):
            raise VerifyException("te.cache_write: the stage operand must be a te.compute (or rfactor) result")


@irdl_op_definition
class ComputeInlineOp(SchedulePrimitive):
    """Substitutes an injective stage's body into its consumers; it gets no buffer."""

    name = "te.compute_inline"


@irdl_op_definition
class ComputeRootOp(SchedulePrimitive):
    """Computes the stage at the root of the kernel (undoes compute_at / compute_inline)."""

    name = "te.compute_root"


CACHE_SCOPES = ("global", "shared", "local")
PRAGMAS = ("unroll_explicit", "vectorize", "parallel")


@irdl_op_definition
class PragmaOp(SchedulePrimitive):
    """A loop pragma: unroll_explicit (unroll the loop in the generated code), vectorize, parallel."""

    name = "te.pragma"
    axis = prop_def(StringAttr)
    pragma = prop_def(StringAttr)

    def verify_(self) -> None:
        super().verify_()
        if self.pragma.data not in PRAGMAS:
            raise VerifyException(f"te.pragma: pragma must be one of {PRAGMAS}, got '{self.pragma.data}'")


@irdl_op_definition
class PrefetchOp(SchedulePrimitive):
    """Software prefetch: while the stage's loop `axis` runs iteration i, the region of `tensor`
    (a kernel argument) that iteration i + distance reads, through the stages computed inside
    that loop, is asked for one cache line at a time (`loop.prefetch`, at `locality`), spread
    over the iterations of the busiest plain loop inside, so that a block's lines arrive while
    the block before it computes instead of stalling its first reader."""

    name = "te.prefetch"
    stage = operand_def(TensorType)  # restated so that the stage stays the first operand
    tensor = operand_def(TensorType)
    axis = prop_def(StringAttr)
    distance = prop_def(IntegerAttr)
    locality = prop_def(IntegerAttr)
    assembly_format = "$stage `,` $tensor attr-dict `:` type($stage) `,` type($tensor)"

    def verify_(self) -> None:
        super().verify_()
        if self.distance.value.data < 1:
            raise VerifyException(f"te.prefetch: distance must be >= 1, got {self.distance.value.data}")
        if not 0 <= self.locality.value.data <= 3:
            raise VerifyException(f"te.prefetch: locality must be 0-3, got {self.locality.value.data}")


@irdl_op_definition
class StorageAlignOp(SchedulePrimitive):
    """Pads the stage's buffer so that the stride of `axis` is factor·k + offset elements
    (rows start on aligned boundaries, or off a cache-conflicting power of two)."""

    name = "te.storage_align"
    axis = prop_def(StringAttr)
    factor = prop_def(IntegerAttr)
    offset = prop_def(IntegerAttr)


@irdl_op_definition
class CacheReadOp(IRDLOperation):
    """TVM's cache_read: a new stage copying `stage` (a tensor the kernel reads), which the
    listed reader stages read instead (the result, to be scheduled). `scope = "shared"` puts
    the copy in GPU work-group memory (memref memory space 3, one array per block) when it
    is computed at a loop of its reader outside the threads: the block's threads then copy
    it together, between barriers."""

    name = "te.cache_read"
    stage = operand_def(TensorType)
    readers = var_operand_def(TensorType)
    scope = opt_prop_def(StringAttr)  # "shared", "local" or "global" (the default: where the tile falls)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$stage `,` $readers attr-dict `:` type($stage) `,` type($readers) `->` type($result)"

    def verify_(self) -> None:
        if self.scope is not None and self.scope.data not in CACHE_SCOPES:
            raise VerifyException(f"te.cache_read: scope must be one of {CACHE_SCOPES}, got '{self.scope.data}'")


@irdl_op_definition
class RfactorOp(IRDLOperation):
    """TVM's rfactor: the reduce axis `axis` splits and one part of it becomes a spatial axis of
    a new stage of partial sums (the result, to be scheduled: vectorized or parallelized); the
    stage then sums those partials. With `factor` F the partials are indexed by the inner part
    (`axis.inner`, extent F: partial i sums k = i, i + F, ...); with `nparts` P by the outer
    part (`axis.outer`, extent P: partial p sums one contiguous run of k, so threads that
    each take a partial each read their own rows of the operands). `factor_axis` is where the
    partials' axis lies among the result's dimensions (TVM's name; default last): first makes
    each partial one contiguous block that a thread writes alone."""

    name = "te.rfactor"
    stage = operand_def(TensorType)
    axis = prop_def(StringAttr)
    factor = opt_prop_def(IntegerAttr)
    nparts = opt_prop_def(IntegerAttr)
    factor_axis = opt_prop_def(IntegerAttr)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$stage attr-dict `:` type($stage) `->` type($result)"

    def verify_(self) -> None:
        if (self.factor is None) == (self.nparts is None):
            raise VerifyException("te.rfactor: give exactly one of 'factor' and 'nparts'")
        t = self.stage.type  # (a factor < 1 is the expansion's located error)
        rank = len(t.get_shape()) if isinstance(t, TensorType) else 0
        if self.factor_axis is not None and not 0 <= self.factor_axis.value.data <= rank:
            raise VerifyException(f"te.rfactor: factor_axis must be in [0, {rank}], got {self.factor_axis.value.data}")


SCHEDULE_OPS = [
    SplitOp,
    TileOp,
    ReorderOp,
    FuseOp,
    VectorizeOp,
    ParallelOp,
    UnrollOp,
    BindOp,
    ComputeAtOp,
    CacheWriteOp,
    ComputeInlineOp,
    ComputeRootOp,
    PragmaOp,
    PrefetchOp,
    StorageAlignOp,
    CacheReadOp,
    RfactorOp,
]

TE = Dialect("te", [ComputeOp, ReadOp, YieldOp, *SCHEDULE_OPS], [])
