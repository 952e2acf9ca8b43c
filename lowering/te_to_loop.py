"""lower-te-to-loop: apply each stage's schedule and emit scf/memref loop nests.

Bufferization is destination-passing style (xDSL ships no one-shot
bufferization): a kernel `(tensor...) -> tensor...` becomes
`(memref inputs..., memref outputs...) -> ()`, and the glue function
allocates each kernel's outputs before calling it.

Schedule semantics follow TVM's TE: a stage starts with its spatial axes then
its reduce axes as leaf loops; `te.split`, `te.fuse` and `te.reorder`
rewrite the leaf list, annotations mark leaves. A reduction is initialised
just before the first loop that iterates a reduce axis and accumulated into
the output buffer. A split whose factor does not divide the extent gets a
guard, so odd sizes never read or write out of bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import arith, func, gpu, memref, scf
from xdsl.dialects.builtin import (
    ArrayAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    TupleType,
    UnitAttr,
)
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from lathe.dialects import graph, te
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import (
    KERNEL_ATTR,
    RESULT_NESTING,
    defined_functions,
    glue_functions,
    is_compute,
    is_kernel,
)
from lathe.dialects.graph import is_float
from lathe.dialects.loop import (
    ANNOTATION,
    LoopAnnotationAttr,
    PrefetchOp,
    annotation_of,
    constant_int,
    row_major_strides,
)
from lathe.errors import LatheError
from lathe.lowering.index_split import split_index_sets
from lathe.lowering.te_builder import combiner_identity
from lathe.lowering.te_transforms import expand_stage_ops
from lathe.lowering.unswitch import unswitch_vector_guards
from lathe.passes.cleanup import function_structure

ALIGNMENT = 64
READS_FOLLOWED = 64  # bound inference follows at most this many reads through inlined stages
NUM_INPUTS = "lathe.num_inputs"  # on a lowered kernel: its first N buffers are inputs, the rest outputs
INDEX = IndexType()


def memref_of(t: Attribute) -> Attribute:
    if isinstance(t, TensorType):
        return MemRefType(t.element_type, list(t.get_shape()))
    if isinstance(t, TupleType):
        return TupleType(ArrayAttr(tuple(memref_of(x) for x in t.types.data)))
    return t


# ---------------------------------------------------------------------------
# Schedule state of one stage


@dataclass
class Axis:
    name: str
    extent: int
    reduce: bool
    annotation: str | None = None


@dataclass
class Split:
    parent: str
    outer: str
    inner: str
    factor: int


@dataclass
class Fuse:
    parts: list[str]
    fused: str


@dataclass
class StageSchedule:
    compute: te.ComputeOp
    axes: dict[str, Axis] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    leaves: list[str] = field(default_factory=list)
    relations: list[Split | Fuse] = field(default_factory=list)
    inline: bool = False
    attach: tuple[te.ComputeOp, str] | None = None  # compute_at (target stage, its axis)
    shared: bool = False  # its tile is GPU shared memory (a cache_read with scope "shared")
    align: tuple[int, int, int] | None = None  # storage_align (root axis index, factor, offset)
    prefetches: list[te.PrefetchOp] = field(default_factory=list)

    @staticmethod
    def of(c: te.ComputeOp, spatial_extents: list[int] | None = None) -> StageSchedule:
        s = StageSchedule(c)
        exts = (spatial_extents or c.spatial_extents) + c.reduce_extent_list
        nsp = len(c.spatial_extents)
        for k, (n, e) in enumerate(zip(c.axis_names, exts)):
            s.axes[n] = Axis(n, e, k >= nsp)
        s.roots = list(c.axis_names)
        s.leaves = list(c.axis_names)
        return s

    def _err(self, prim: Operation, msg: str) -> LatheError:
        return LatheError(
            f"{prim.name} on stage '{self.compute.stage.data}': {msg}",
            note="leaf axes: " + ", ".join(self.leaves),
        )

    def _leaf(self, prim: Operation, name: str) -> Axis:
        if name not in self.leaves:
            raise self._err(prim, f"no leaf axis named '{name}'")
        return self.axes[name]

    def cross_thread(self, leaf: str) -> bool:
        """A reduce leaf bound to threadIdx: the block's threads reduce together (TVM's allreduce)."""
        ax = self.axes[leaf]
        return ax.reduce and (ax.annotation or "").startswith("bind:threadIdx.")

    def root_of(self, leaf: str) -> str | None:
        """The root axis a leaf derives from (None for a fusion of several roots)."""
        parent: dict[str, str | None] = {}
        for rel in self.relations:
            if isinstance(rel, Split):
                parent[rel.outer] = parent[rel.inner] = rel.parent
            else:
                parent[rel.fused] = None
        name: str | None = leaf
        while name is not None and name in parent:
            name = parent[name]
            if name is None:
                return None
        return name

    def _new(self, prim: Operation, name: str, extent: int, reduce: bool) -> None:
        if name in self.axes:
            raise self._err(prim, f"axis name '{name}' is already used")
        self.axes[name] = Axis(name, extent, reduce)

    def apply(self, prim: te.SchedulePrimitive) -> None:
        if isinstance(prim, te.SplitOp):
            ax = self._leaf(prim, prim.axis.data)
            if prim.factor is not None:
                factor = prim.factor.value.data
            else:
                nparts = prim.nparts.value.data  # type: ignore[union-attr]
                factor = -(-ax.extent // nparts)
            factor = max(1, min(factor, ax.extent))
            outer, inner = prim.outer.data, prim.inner.data
            self._new(prim, outer, -(-ax.extent // factor), ax.reduce)
            self._new(prim, inner, factor, ax.reduce)
            i = self.leaves.index(ax.name)
            self.leaves[i : i + 1] = [outer, inner]
            self.relations.append(Split(ax.name, outer, inner, factor))
        elif isinstance(prim, te.TileOp):
            x, y = prim.x_axis.data, prim.y_axis.data
            if min(prim.x_factor.value.data, prim.y_factor.value.data) < 1:
                raise self._err(
                    prim, f"factors must be >= 1, got {prim.x_factor.value.data}, {prim.y_factor.value.data}"
                )
            for axis, factor in ((x, prim.x_factor), (y, prim.y_factor)):
                self.apply(
                    te.SplitOp.create(
                        operands=[prim.stage],
                        properties={
                            "axis": StringAttr(axis),
                            "factor": factor,
                            "outer": StringAttr(f"{axis}.outer"),
                            "inner": StringAttr(f"{axis}.inner"),
                        },
                    )
                )
            self.apply(
                te.ReorderOp.create(
                    operands=[prim.stage],
                    properties={
                        "order": ArrayAttr(
                            [StringAttr(n) for n in (f"{x}.outer", f"{y}.outer", f"{x}.inner", f"{y}.inner")]
                        )
                    },
                )
            )
        elif isinstance(prim, te.BindOp):
            ax = self._leaf(prim, prim.axis.data)
            if ax.reduce and not prim.thread_axis.data.startswith("threadIdx."):
                raise self._err(prim, f"reduce axis '{ax.name}' cannot be bound to {prim.thread_axis.data}")
            if ax.reduce and any(n != ax.name and self.cross_thread(n) for n in self.leaves):
                raise self._err(prim, "only one reduce axis can be bound to a thread axis")
            ax.annotation = "bind:" + prim.thread_axis.data
        elif isinstance(prim, te.ReorderOp):
            names = [a.data for a in prim.order.data]  # type: ignore[union-attr]
            for n in names:
                self._leaf(prim, n)
            if len(set(names)) != len(names):
                raise self._err(prim, "an axis is listed twice")
            slots = sorted(self.leaves.index(n) for n in names)
            for slot, n in zip(slots, names):
                self.leaves[slot] = n
        elif isinstance(prim, te.FuseOp):
            names = [a.data for a in prim.fuse_axes.data]  # type: ignore[union-attr]
            if not names:
                raise self._err(prim, "no axes to fuse")
            axes = [self._leaf(prim, n) for n in names]
            pos = [self.leaves.index(n) for n in names]
            if pos != list(range(pos[0], pos[0] + len(pos))):
                raise self._err(prim, "fused axes must be adjacent leaves, outermost first")
            if len({a.reduce for a in axes}) != 1:
                raise self._err(prim, "cannot fuse a spatial axis with a reduce axis")
            extent = 1
            for a in axes:
                extent *= a.extent
            self._new(prim, prim.fused.data, extent, axes[0].reduce)
            self.leaves[pos[0] : pos[-1] + 1] = [prim.fused.data]
            self.relations.append(Fuse(names, prim.fused.data))
        elif isinstance(prim, te.AnnotateOp):
            ax = self._leaf(prim, prim.axis.data)
            kind = {te.VectorizeOp: "vectorize", te.ParallelOp: "parallel", te.UnrollOp: "unroll"}[type(prim)]
            if kind == "parallel" and ax.reduce:
                raise self._err(prim, f"reduce axis '{ax.name}' cannot be parallel (it would race)")
            ax.annotation = kind
        elif isinstance(prim, te.ComputeAtOp):
            target = prim.target_compute()
            if target is self.compute:
                raise self._err(prim, "a stage cannot be computed at itself")
            self.attach = (target, prim.axis.data)
        elif isinstance(prim, te.ComputeInlineOp):
            if self.compute.reduce_extent_list:
                raise self._err(prim, "a reduction cannot be inlined")
            self.inline = True
        elif isinstance(prim, te.ComputeRootOp):
            self.inline, self.attach, self.shared = False, None, False
        elif isinstance(prim, te.PragmaOp):
            ax = self._leaf(prim, prim.axis.data)
            kind = {"unroll_explicit": "unroll", "vectorize": "vectorize", "parallel": "parallel"}[prim.pragma.data]
            if kind == "parallel" and ax.reduce:
                raise self._err(prim, f"reduce axis '{ax.name}' cannot be parallel (it would race)")
            ax.annotation = kind
        elif isinstance(prim, te.PrefetchOp):
            self._leaf(prim, prim.axis.data)
            self.prefetches.append(prim)
        elif isinstance(prim, te.StorageAlignOp):
            nsp = len(self.compute.spatial_extents)
            names = self.roots[:nsp]
            if prim.axis.data not in names or names.index(prim.axis.data) != nsp - 2:
                raise self._err(prim, "storage_align applies to the second-to-last spatial axis (the rows)")
            factor, offset = prim.factor.value.data, prim.offset.value.data
            if factor < 1 or not 0 <= offset < factor:
                raise self._err(prim, f"need factor >= 1 and 0 <= offset < factor, got {factor}, {offset}")
            self.align = (nsp - 2, factor, offset)
        else:  # pragma: no cover - all primitives are handled above
            raise self._err(prim, "unsupported schedule primitive")


@dataclass
class Tile:
    """Where a compute_at stage writes: a small local buffer for one iteration of
    its target's loop, whose element 0 is the global index `bases`."""

    buffer: SSAValue
    bases: list[SSAValue]
    limits: list[int | None]  # the full extent where the tile may overhang it, else None
    below_zero: list[bool] | None = None  # where the tile may start before index 0


@dataclass(frozen=True)
class Span:
    """The values an index takes while the loops inside an attach point run: `base + [lo, hi]`,
    base a linear combination of values fixed there (loop variables outside). TVM's
    InferBound over intervals, for the affine indices schedules make."""

    terms: tuple[tuple[SSAValue, int], ...]  # (fixed value, coefficient), none: base 0
    lo: int
    hi: int

    @staticmethod
    def point(v: SSAValue) -> Span:
        return Span(((v, 1),), 0, 0)

    @staticmethod
    def range(extent: int) -> Span:
        return Span((), 0, max(extent, 1) - 1)

    def scale(self, c: int) -> Span:
        terms = tuple((v, k * c) for v, k in self.terms if k * c)
        return Span(terms, min(self.lo * c, self.hi * c), max(self.lo * c, self.hi * c))

    def __add__(self, other: Span) -> Span:
        coef: dict[SSAValue, int] = dict(self.terms)
        for v, k in other.terms:
            coef[v] = coef.get(v, 0) + k
        return Span(tuple((v, k) for v, k in coef.items() if k), self.lo + other.lo, self.hi + other.hi)

    def shift(self, c: int) -> Span:
        return Span(self.terms, self.lo + c, self.hi + c)

    def same_base(self, other: Span) -> bool:
        return dict(self.terms) == dict(other.terms)

    def base(self, e: Emitter) -> SSAValue:
        """The value base + lo."""
        acc = e.index(self.lo)
        for v, k in self.terms:
            acc = e.binop(arith.AddiOp, acc, v if k == 1 else e.binop(arith.MuliOp, v, e.index(k)))
        return acc


_DIVIDE = (arith.DivSIOp, arith.DivUIOp, arith.FloorDivSIOp)  # (of non-negative indices: all floor)
_REMAINDER = (arith.RemSIOp, arith.RemUIOp)


def read_spans(c: te.ComputeOp, tensor: SSAValue, roots: list[Span]) -> list[list[Span | None]]:
    """Each te.read of `tensor` in c's body: the span of each index (see all_read_spans)."""
    return [idx for t, idx in all_read_spans(c, roots) if t == tensor]


def all_read_spans(
    c: te.ComputeOp, roots: list[Span], clamps: bool = False
) -> list[tuple[SSAValue, list[Span | None]]]:
    """Each te.read in c's body, with the span of each index, given the spans of c's
    axes (spatial then reduce), for the index arithmetic schedules and layouts make: sums,
    products by constants, and floor division and remainder by constants (a packed
    layout's j // bn, j % bn) where the base is a multiple of the divisor. None where an
    index is anything else (it then bounds nothing). Indices are taken non-negative, as
    every in-bounds read's are (a remainder of a negative index is a read to be guarded).
    With `clamps`, the min or max of an index with a constant (a padded read's clamp into its
    tensor) has its operand's span: right wherever the read is in bounds, not where it is
    clamped, so only a prefetch (a hint, never a fault) may take it."""
    spans: dict[SSAValue, Span] = dict(zip(c.body.block.args, roots))
    reads = []

    def constant(v: SSAValue) -> int | None:
        sp = spans.get(v)
        return sp.lo if sp is not None and not sp.terms and sp.lo == sp.hi else None

    for op in c.body.block.ops:
        if isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr):
            v = op.value.value.data
            spans[op.result] = Span((), v, v)
        elif isinstance(op, arith.IndexCastOp) and op.input in spans:
            spans[op.result] = spans[op.input]
        elif isinstance(op, arith.AddiOp | arith.SubiOp) and op.lhs in spans and op.rhs in spans:
            spans[op.result] = spans[op.lhs] + spans[op.rhs].scale(1 if isinstance(op, arith.AddiOp) else -1)
        elif isinstance(op, arith.MuliOp) and op.lhs in spans and op.rhs in spans:
            if constant(op.rhs) is not None:
                spans[op.result] = spans[op.lhs].scale(constant(op.rhs))  # type: ignore[arg-type]
            elif constant(op.lhs) is not None:
                spans[op.result] = spans[op.rhs].scale(constant(op.lhs))  # type: ignore[arg-type]
        elif isinstance(op, _DIVIDE) and op.lhs in spans and (d := constant(op.rhs)) is not None and d > 0:
            x = spans[op.lhs]
            if all(k % d == 0 for _, k in x.terms):
                spans[op.result] = Span(tuple((v, k // d) for v, k in x.terms), x.lo // d, x.hi // d)
        elif isinstance(op, _REMAINDER) and op.lhs in spans and (d := constant(op.rhs)) is not None and d > 0:
            x = spans[op.lhs]
            if all(k % d == 0 for _, k in x.terms):
                same = x.lo // d == x.hi // d
                spans[op.result] = Span((), x.lo % d if same else 0, x.hi % d if same else d - 1)
        elif (
            clamps
            and isinstance(op, arith.MaxSIOp | arith.MinSIOp)
            and op.lhs in spans
            and constant(op.rhs) is not None
        ):
            spans[op.result] = spans[op.lhs]
        elif isinstance(op, te.ReadOp):
            reads.append((op.tensor, [spans.get(i) for i in op.indices]))
    return reads


# ---------------------------------------------------------------------------
# Emission helpers


class Emitter:
    """Appends ops to a current block; loops push and pop blocks."""

    def __init__(self, block: Block):
        self.block = block

    def add(self, op: Operation) -> Operation:
        self.block.add_op(op)
        return op

    def index(self, v: int) -> SSAValue:
        return self.add(arith.ConstantOp(IntegerAttr(v, INDEX))).results[0]

    def scalar(self, v, t: Attribute) -> SSAValue:
        if is_float(t):
            return self.add(arith.ConstantOp(FloatAttr(v, t))).results[0]
        return self.add(arith.ConstantOp(IntegerAttr(int(v), t))).results[0]

    def binop(self, cls, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.add(cls(a, b)).results[0]

    def for_loop(self, extent: int, name: str, annotation: str | None) -> tuple[scf.ForOp, SSAValue]:
        body = Block(arg_types=[INDEX])
        body.args[0].name_hint = name.replace(".", "_")
        loop = scf.ForOp(self.index(0), self.index(extent), self.index(1), [], body)
        if annotation is not None and annotation.startswith("bind:"):
            loop.attributes[ANNOTATION] = LoopAnnotationAttr("bind", 0, annotation[5:])
        elif annotation is not None:
            factor = extent if annotation == "vectorize" else 0
            loop.attributes[ANNOTATION] = LoopAnnotationAttr(annotation, factor)
        self.add(loop)
        return loop, body.args[0]


def _combine(e: Emitter, combiner: str, acc: SSAValue, v: SSAValue) -> SSAValue:
    f = is_float(v.type)
    b = isinstance(v.type, IntegerType) and v.type.width.data == 1
    cls = {
        "sum": arith.AddfOp if f else arith.AddiOp,
        "prod": arith.MulfOp if f else arith.MuliOp,
        "max": arith.MaximumfOp if f else (arith.MaxUIOp if b else arith.MaxSIOp),
        "min": arith.MinimumfOp if f else (arith.MinUIOp if b else arith.MinSIOp),
    }[combiner]
    return e.binop(cls, acc, v)


class KernelLowering:
    def __init__(self, kernel: func.FuncOp):
        self.kernel = kernel
        self.buffers: dict[SSAValue, SSAValue] = {}  # tensor value -> memref value
        self.schedules: dict[te.ComputeOp, StageSchedule] = {}
        self.prims: dict[te.ComputeOp, list[te.SchedulePrimitive]] = {}
        self.attached: dict[tuple[te.ComputeOp, str], list[te.ComputeOp]] = {}
        self.tiles: dict[SSAValue, Tile] = {}
        self.prefetching: list[Prefetch] = []

    def run(self) -> func.FuncOp:
        k = self.kernel
        old_block = k.body.block
        ret = old_block.last_op
        assert isinstance(ret, func.ReturnOp)
        in_types = [memref_of(a.type) for a in old_block.args]
        out_types = [memref_of(v.type) for v in ret.operands]
        block = Block(arg_types=in_types + out_types)
        for a, new in zip(old_block.args, block.args):
            self.buffers[a] = new
            new.name_hint = a.name_hint
        outs = block.args[len(in_types) :]
        for n, o in enumerate(outs):
            o.name_hint = f"out{n}" if len(outs) > 1 else "out"
        e = Emitter(block)

        # a shared cache_read's stage exists only after expansion: remember its compute_at
        shared_at = {
            use.operation
            for op in old_block.ops
            if isinstance(op, te.CacheReadOp) and op.scope is not None and op.scope.data == "shared"
            for use in op.result.uses
            if isinstance(use.operation, te.ComputeAtOp) and use.index == 0
        }
        expand_stage_ops(old_block)
        computes = [op for op in old_block.ops if isinstance(op, te.ComputeOp)]
        for c in computes:
            _check_closed(c)
            self.schedules[c] = StageSchedule.of(c)
            self.prims[c] = []
        for op in old_block.ops:
            if isinstance(op, te.SchedulePrimitive):
                self.schedules[op.compute()].apply(op)
                self.prims[op.compute()].append(op)
                if op in shared_at:
                    self.schedules[op.compute()].shared = True
        for c in computes:
            s = self.schedules[c]
            if s.attach is not None:
                target, axis = s.attach
                if target not in self.schedules or axis not in self.schedules[target].leaves:
                    raise LatheError(
                        f"te.compute_at on stage '{c.stage.data}': the target has no leaf axis '{axis}'",
                        note="leaf axes: " + ", ".join(self.schedules.get(target, s).leaves),
                    )
                self.check_consumer(c, target)
                self.attached.setdefault((target, axis), []).append(c)

        returned: dict[SSAValue, SSAValue] = {}
        for v, o in zip(ret.operands, outs):
            if v in returned or not isinstance(v.owner, te.ComputeOp) or self.schedules[v.owner].inline:
                continue
            returned[v] = o
        allocs = []
        for c in computes:
            s = self.schedules[c]
            if s.inline or s.attach is not None:
                if c.result in returned:
                    raise LatheError(
                        f"stage '{c.stage.data}' is a kernel output: it cannot be inlined or "
                        "computed at another stage (cache_write it first)"
                    )
                continue
            if c.result in returned:
                if s.align is not None:
                    raise LatheError(
                        f"te.storage_align: stage '{c.stage.data}' is a kernel output; its layout is fixed"
                    )
                self.buffers[c.result] = returned[c.result]
            else:
                t = memref_of(c.result.type)
                shape = list(t.get_shape())
                if s.align is not None:  # pad the rows so their stride is factor·k + offset
                    _, factor, offset = s.align
                    n = shape[-1]
                    while n % factor != offset:
                        n += 1
                    shape[-1] = n
                buf = e.add(memref.AllocOp.get(t.element_type, ALIGNMENT, shape)).results[0]
                allocs.append(buf)
                self.buffers[c.result] = buf
            self.emit_stage(e, s)
        # outputs that are not a stage of their own: copy
        for v, o in zip(ret.operands, outs):
            if returned.get(v) is not o:
                e.add(memref.CopyOp(self.load_source(v), o))
        for buf in allocs:
            e.add(memref.DeallocOp.get(buf))
        e.add(func.ReturnOp())
        for p in self.prefetching:
            _spread_prefetch(p)
        new = func.FuncOp(k.sym_name.data, (in_types + out_types, []), Region(block), visibility="private")
        new.attributes[KERNEL_ATTR] = UnitAttr()
        new.attributes[NUM_INPUTS] = IntegerAttr(len(in_types), IntegerType(64))
        return new

    def check_consumer(self, c: te.ComputeOp, target: te.ComputeOp) -> None:
        """compute_at puts c's tile inside target's loop: only target (directly or through
        stages inlined into it) may read it, else a reader would see a tile it is not in."""
        readers = _readers(self.kernel.body.block)
        stack, seen = list(readers.get(c.result, ())), set()
        while stack:
            r = stack.pop()
            if r in seen:
                continue
            seen.add(r)
            if self.schedules[r].inline or self.attached_within(r, self.schedules[c].attach):
                stack.extend(readers.get(r.result, ()))
            elif r is not target:
                raise LatheError(
                    f"te.compute_at on stage '{c.stage.data}': stage '{r.stage.data}' reads it too, "
                    f"but its tile exists only inside '{target.stage.data}'",
                    note="compute_at needs a stage whose only consumer is the target",
                )
        if target not in seen:
            raise LatheError(
                f"te.compute_at on stage '{c.stage.data}': '{target.stage.data}' does not read it",
                note="compute_at moves a producer into the loop of its consumer",
            )

    def attached_within(self, r: te.ComputeOp, at: tuple[te.ComputeOp, str] | None) -> bool:
        """r is computed at a loop of the same target inside (or at) `at`'s: its tiles are
        computed where a tile at `at` exists (a packed weight block at the output-channel loop,
        read by the convolution's register tile at the pixel loop inside it)."""
        mine = self.schedules[r].attach
        if at is None or mine is None or mine[0] is not at[0]:
            return False
        leaves = self.schedules[at[0]].leaves
        return at[1] in leaves and mine[1] in leaves and leaves.index(mine[1]) >= leaves.index(at[1])

    def load_source(self, v: SSAValue) -> SSAValue:
        if v not in self.buffers:
            what = (
                f"stage '{v.owner.stage.data}'"
                if isinstance(v.owner, te.ComputeOp)
                else f"{v.owner.name} result"
                if isinstance(v.owner, Operation)
                else "an argument"
            )
            raise LatheError(
                f"lower-te-to-loop: kernel @{self.kernel.sym_name.data} reads {what}, which has no buffer",
                note="a stage computed at another one is only readable there, and an inlined one "
                "has no buffer (compute_root it, or read it from its consumer)",
            )
        return self.buffers[v]

    # -- one stage ------------------------------------------------------------
    def emit_stage(self, e: Emitter, s: StageSchedule, tile: Tile | None = None) -> None:
        """A stage whose block's threads synchronise (a shared tile, a cross-thread reduction)
        needs a grid around its barriers: where its schedule binds nothing to blockIdx, it runs
        in a blockIdx.x loop of one iteration (cleanup-loops keeps bound loops)."""
        c = s.compute
        gridded = any((s.axes[n].annotation or "").startswith("bind:blockIdx.") for n in s.leaves)
        synchronised = any(s.cross_thread(n) for n in s.leaves) or any(
            self.schedules[p].shared for n in s.leaves for p in self.attached.get((c, n), [])
        )
        if tile is not None or not synchronised or gridded:
            self.emit_stage_loops(e, s, tile)
            return
        loop, _ = e.for_loop(1, "blockIdx", "bind:blockIdx.x")
        saved = e.block
        e.block = loop.body.block
        self.emit_stage_loops(e, s, tile)
        e.add(scf.YieldOp())
        e.block = saved

    def emit_stage_loops(self, e: Emitter, s: StageSchedule, tile: Tile | None) -> None:
        c = s.compute
        if any(s.cross_thread(n) for n in s.leaves):
            self.emit_cross_thread(e, s, tile)
            return
        nsp = len(c.spatial_extents)
        spatial_roots, reduce_roots = s.roots[:nsp], s.roots[nsp:]
        leaf_is_reduce = [s.axes[n].reduce for n in s.leaves]
        first_reduce = leaf_is_reduce.index(True) if True in leaf_is_reduce else len(s.leaves)
        out = tile.buffer if tile else self.buffers[c.result]
        saved = e.block
        values: dict[str, SSAValue] = {}

        def open_loops(names: list[str]) -> None:
            for n in names:
                ax = s.axes[n]
                loop, iv = e.for_loop(ax.extent, n, ax.annotation)
                values[n] = iv
                e.block = loop.body.block
                for prim in s.prefetches:
                    if prim.axis.data == n:
                        self.prefetching.append(self.prefetch_region(e, s, prim, loop, values))
                self.emit_attached_at(e, s, n, values)

        def tile_guards(roots) -> list[SSAValue]:
            if tile is None:
                return []
            conds = []
            below = tile.below_zero or [False] * len(tile.bases)
            for n, base, limit, low in zip(spatial_roots, tile.bases, tile.limits, below):
                if limit is not None or low:
                    g = e.binop(arith.AddiOp, base, roots[n])
                if limit is not None:
                    conds.append(e.add(arith.CmpiOp(g, e.index(limit), "slt")).results[0])
                if low:
                    conds.append(e.add(arith.CmpiOp(g, e.index(0), "sge")).results[0])
            return conds

        def close_to(block: Block) -> None:
            b = e.block
            while True:
                b.add_op(scf.YieldOp())
                parent = b.parent_op()
                assert parent is not None
                b = parent.parent_block()
                if b is block:
                    break
            e.block = block

        open_loops(s.leaves[:first_reduce])
        outer_block = e.block
        if reduce_roots:
            identity = combiner_identity(c.combiner_name, c.result.type.element_type)  # type: ignore[union-attr]
            init_leaves = [n for n in s.leaves[first_reduce:] if not s.axes[n].reduce]
            open_loops(init_leaves)
            roots, guards = self.root_values(e, s, values, spatial_only=True)
            self.guarded(
                e,
                guards + tile_guards(roots),
                lambda: e.add(
                    memref.StoreOp.get(
                        e.scalar(identity, c.result.type.element_type), out, [roots[n] for n in spatial_roots]
                    )
                ),
            )
            if init_leaves:
                close_to(outer_block)
            open_loops(s.leaves[first_reduce:])
        roots, guards = self.root_values(e, s, values, spatial_only=False)
        guards = guards + tile_guards(roots)

        def body() -> None:
            index = [roots[n] for n in s.roots]
            if tile is not None:  # the body sees global indices; the tile is indexed locally
                index = [e.binop(arith.AddiOp, b, i) for b, i in zip(tile.bases, index[:nsp])] + index[nsp:]
            v = self.emit_body(e, c, index)
            idx = [roots[n] for n in spatial_roots]
            if reduce_roots:
                acc = e.add(memref.LoadOp.get(out, idx)).results[0]
                v = _combine(e, c.combiner_name, acc, v)  # type: ignore[arg-type]
            e.add(memref.StoreOp.get(v, out, idx))

        self.guarded(e, guards, body)
        if e.block is not saved:
            close_to(saved)

    def emit_cross_thread(self, e: Emitter, s: StageSchedule, tile: Tile | None) -> None:
        """A reduction whose reduce leaf is bound to threadIdx (TVM's allreduce): each thread
        folds its share (the other reduce leaves, serial) into a register, the partials go to
        shared memory, and a tree halves them with a barrier between levels (a count that is
        not a power of two folds its odd one out along the way); thread 0 writes the result.
        The spatial leaves must all come first and none may be a threadIdx loop, so that
        every barrier is reached by the whole block."""
        c = s.compute
        name = f"cross-thread reduction of stage '{c.stage.data}'"
        if tile is not None:
            raise LatheError(f"{name}: a stage reduced across threads must be computed at root")
        nsp = len(c.spatial_extents)
        spatial = [n for n in s.leaves if not s.axes[n].reduce]
        if s.leaves[: len(spatial)] != spatial:
            raise LatheError(f"{name}: its spatial leaves must all be outside its reduce leaves")
        if any((s.axes[n].annotation or "").startswith("bind:threadIdx") for n in spatial):
            raise LatheError(
                f"{name}: a spatial leaf is bound to threadIdx, so its barriers would be inside a thread loop"
            )
        (bound,) = [n for n in s.leaves if s.cross_thread(n)]
        threads = s.axes[bound].extent
        annotation = s.axes[bound].annotation
        serial = [n for n in s.leaves[len(spatial) :] if n != bound]
        elem = c.result.type.element_type  # type: ignore[union-attr]
        identity = combiner_identity(c.combiner_name, elem)  # type: ignore[arg-type]
        out = self.buffers[c.result]
        saved = e.block
        values: dict[str, SSAValue] = {}
        for n in spatial:
            loop, iv = e.for_loop(s.axes[n].extent, n, s.axes[n].annotation)
            values[n] = iv
            e.block = loop.body.block
            self.emit_attached_at(e, s, n, values)
        outer = e.block
        partials = memref.AllocaOp.get(elem, ALIGNMENT, [threads], memory_space=IntegerAttr(3, IntegerType(32)))
        scope = _block_scope(outer)
        if scope.first_op is None:
            scope.add_op(partials)
        else:
            scope.insert_op_before(partials, scope.first_op)
        red = partials.results[0]

        def thread_loop(extent: int, emit) -> None:
            loop, t = e.for_loop(extent, bound, annotation)
            e.block = loop.body.block
            emit(t)
            e.add(scf.YieldOp())
            e.block = outer

        def partial(t: SSAValue) -> None:
            acc = e.add(memref.AllocaOp.get(elem, ALIGNMENT, [1])).results[0]
            zero = e.index(0)
            e.add(memref.StoreOp.get(e.scalar(identity, elem), acc, [zero]))
            body_block = e.block
            vals = dict(values, **{bound: t})
            for n in serial:
                loop, iv = e.for_loop(s.axes[n].extent, n, s.axes[n].annotation)
                vals[n] = iv
                e.block = loop.body.block
            roots, guards = self.root_values(e, s, vals, spatial_only=False)

            def fold() -> None:
                v = self.emit_body(e, c, [roots[n] for n in s.roots])
                a = e.add(memref.LoadOp.get(acc, [e.index(0)])).results[0]
                e.add(memref.StoreOp.get(_combine(e, c.combiner_name, a, v), acc, [e.index(0)]))  # type: ignore[arg-type]

            self.guarded(e, guards, fold)
            while e.block is not body_block:
                e.add(scf.YieldOp())
                parent = e.block.parent_op()
                assert parent is not None
                e.block = parent.parent_block()  # type: ignore[assignment]
            v = e.add(memref.LoadOp.get(acc, [e.index(0)])).results[0]
            e.add(memref.StoreOp.get(v, red, [t]))

        thread_loop(threads, partial)
        e.add(gpu.BarrierOp())
        n = threads
        while n > 1:
            half, upper = n // 2, n - n // 2

            def level(t: SSAValue, half: int = half, upper: int = upper) -> None:
                def fold() -> None:
                    a = e.add(memref.LoadOp.get(red, [t])).results[0]
                    b = e.add(memref.LoadOp.get(red, [e.binop(arith.AddiOp, t, e.index(upper))])).results[0]
                    e.add(memref.StoreOp.get(_combine(e, c.combiner_name, a, b), red, [t]))  # type: ignore[arg-type]

                self.guarded(e, [e.add(arith.CmpiOp(t, e.index(half), "slt")).results[0]], fold)

            # (over all the threads, guarded: one launch-wide threadIdx extent per stage)
            thread_loop(threads, level)
            e.add(gpu.BarrierOp())
            n = upper

        def write(t: SSAValue) -> None:
            roots, guards = self.root_values(e, s, dict(values, **{bound: t}), spatial_only=True)
            first = e.add(arith.CmpiOp(t, e.index(0), "eq")).results[0]
            self.guarded(
                e,
                [first, *guards],
                lambda: e.add(
                    memref.StoreOp.get(
                        e.add(memref.LoadOp.get(red, [e.index(0)])).results[0],
                        out,
                        [roots[n] for n in s.roots[:nsp]],
                    )
                ),
            )

        thread_loop(threads, write)
        while e.block is not saved:
            e.add(scf.YieldOp())
            parent = e.block.parent_op()
            assert parent is not None
            e.block = parent.parent_block()  # type: ignore[assignment]

    def emit_attached(
        self, e: Emitter, target: StageSchedule, axis: str, values: dict[str, SSAValue], p: te.ComputeOp
    ) -> None:
        """Emit stage p for one iteration of target's loop `axis`: the tile target reads next."""
        q = target.compute
        if self.schedules[p].shared or p.spatial_extents != q.spatial_extents or not self.same_index(q, p):
            self.emit_attached_region(e, target, axis, values, p)
            return
        if target.axes[axis].reduce:
            raise LatheError(f"te.compute_at on stage '{p.stage.data}': '{axis}' of '{q.stage.data}' is a reduce axis")
        inner = target.leaves[target.leaves.index(axis) + 1 :]
        vals = dict(values)
        for leaf in inner:
            vals[leaf] = e.index(0)
        nsp = len(q.spatial_extents)
        origin, _ = self.root_values(e, target, vals, spatial_only=True)
        extents = []
        for root, full in zip(target.roots[:nsp], q.spatial_extents):
            ext = 1
            for leaf in inner:
                r = target.root_of(leaf)
                if r is None and not target.axes[leaf].reduce:
                    raise LatheError(
                        f"te.compute_at on stage '{p.stage.data}': a fused axis inside '{axis}' cannot bound a tile"
                    )
                if r == root:
                    ext *= target.axes[leaf].extent
            extents.append(min(ext, full))
        limits = [
            full
            if any(
                isinstance(rel, Split) and rel.parent == root and target.axes[root].extent % rel.factor
                for rel in target.relations
            )
            or full % ext
            else None
            for root, full, ext in zip(target.roots[:nsp], q.spatial_extents, extents)
        ]
        t = memref_of(p.result.type)
        buf = e.add(memref.AllocaOp.get(t.element_type, ALIGNMENT, extents)).results[0]
        tile = Tile(buf, [origin[r] for r in target.roots[:nsp]], limits)
        sp = StageSchedule.of(p, extents)
        for prim in self.prims[p]:
            if not isinstance(prim, te.ComputeAtOp):
                sp.apply(prim)
        self.emit_stage(e, sp, tile)
        self.tiles[p.result] = tile

    def emit_attached_region(
        self,
        e: Emitter,
        target: StageSchedule,
        axis: str,
        values: dict[str, SSAValue],
        p: te.ComputeOp,
    ) -> None:
        """compute_at of a producer indexed unlike its consumer (a cache_read tile of a matmul's
        operand, a window of a pooling's input): the region the consumer reads while the loops
        inside `axis` run, from the spans of its read indices (the whole extent along an index
        they do not bound; through inlined stages, their own reads'), computed into a buffer
        of that region's size (shared memory for a shared stage, between barriers), guarded
        where the region overhangs the producer."""
        q = target.compute
        name = f"te.compute_at on stage '{p.stage.data}'"
        inside = target.leaves[target.leaves.index(axis) + 1 :]
        shared = self.schedules[p].shared
        if shared:
            outer = target.leaves[: target.leaves.index(axis) + 1]
            if any((target.axes[n].annotation or "").startswith("bind:threadIdx") for n in outer):
                raise LatheError(
                    f"{name}: a shared tile must be computed at a loop outside the threads, "
                    f"but '{axis}' of '{q.stage.data}' is inside a threadIdx loop",
                    note="the block's threads compute a shared tile together, between barriers",
                )
        fixed = {n: v for n, v in values.items() if n not in inside}
        reads = self.reads_through(q, p, self.root_spans(e, target, fixed))
        hulls = self.reads_through(q, p, self.root_spans(None, target, {}))
        full = p.spatial_extents
        bases: list[SSAValue] = []
        extents: list[int] = []
        limits: list[int | None] = []
        below: list[bool] = []
        for d, n in enumerate(full):
            region = hull = None
            for read, static in zip(reads, hulls):
                r, h = read[d], static[d]
                if r is None or h is None:
                    region = None
                    break
                if region is None:
                    region, hull = r, h
                elif region.same_base(r):
                    region = Span(region.terms, min(region.lo, r.lo), max(region.hi, r.hi))
                    hull = Span((), min(hull.lo, h.lo), max(hull.hi, h.hi))  # type: ignore[union-attr]
                else:
                    region = None
                    break
            if region is None or region.hi - region.lo + 1 >= n:
                bases.append(e.index(0))
                extents.append(n)
                limits.append(None)
                below.append(False)
                continue
            assert hull is not None
            bases.append(region.base(e))
            extents.append(region.hi - region.lo + 1)
            limits.append(n if hull.hi >= n else None)
            below.append(hull.lo < 0)
        t = memref_of(p.result.type)
        if shared:
            alloc = memref.AllocaOp.get(
                t.element_type, ALIGNMENT, extents, memory_space=IntegerAttr(3, IntegerType(32))
            )
            scope = _block_scope(e.block)
            if scope.first_op is None:
                scope.add_op(alloc)
            else:
                scope.insert_op_before(alloc, scope.first_op)
            buf = alloc.results[0]
        else:
            buf = e.add(memref.AllocaOp.get(t.element_type, ALIGNMENT, extents)).results[0]
        tile = Tile(buf, bases, limits, below)
        sp = StageSchedule.of(p, extents)
        for prim in self.prims[p]:
            if not isinstance(prim, te.ComputeAtOp):
                sp.apply(prim)
        self.emit_stage(e, sp, tile)
        self.tiles[p.result] = tile

    def emit_attached_at(self, e: Emitter, s: StageSchedule, axis: str, values: dict[str, SSAValue]) -> None:
        """The stages computed at loop `axis` of s, in kernel order; shared tiles between two
        barriers (the previous iteration's readers are done; the tiles are complete before
        any thread reads them)."""
        stages = self.attached.get((s.compute, axis), [])
        shared = any(self.schedules[p].shared for p in stages)
        if shared:
            e.add(gpu.BarrierOp())
        for p in stages:
            self.emit_attached(e, s, axis, values, p)
        if shared:
            e.add(gpu.BarrierOp())

    def same_index(self, c: te.ComputeOp, p: te.ComputeOp) -> bool:
        """c reads p only at its own spatial indices, directly or through inlined stages that
        do (an epilogue): p's tile is then c's, and compute_at needs no bound inference.
        (A worklist, each stage once: a ladder of inlined stages must not recurse deeply.)"""
        stack, seen = [c], set()
        while stack:
            r = stack.pop()
            if r in seen:
                continue
            seen.add(r)
            nsp = len(r.spatial_extents)
            for op in r.body.block.ops:
                if not isinstance(op, te.ReadOp):
                    continue
                inlined = isinstance(op.tensor.owner, te.ComputeOp) and self.schedules[op.tensor.owner].inline
                if op.tensor != p.result and not inlined:
                    continue
                if list(op.indices) != list(r.body.block.args[:nsp]):
                    return False
                if inlined:
                    stack.append(op.tensor.owner)  # type: ignore[arg-type]
        return True

    def reads_through(self, c: te.ComputeOp, p: te.ComputeOp, roots: list[Span]) -> list[list[Span | None]]:
        """The spans of p's indices at each of c's reads of it, following reads of inlined stages
        into their bodies (an index they do not bound spans its whole axis there), and of the
        stages computed inside p's attach point. Past READS_FOLLOWED reads it gives up: p's
        whole extent (a ladder of inlined stages would multiply the paths)."""
        return self.reads_of(c, p.result, self.schedules[p].attach, roots)

    def reads_of(
        self,
        c: te.ComputeOp,
        value: SSAValue,
        at: tuple[te.ComputeOp, str] | None,
        roots: list[Span],
        clamps: bool = False,
    ) -> list[list[Span | None]]:
        out: list[list[Span | None]] = []
        stack = [(c, roots)]
        while stack:
            r, spans = stack.pop()
            for tensor, idx in all_read_spans(r, spans, clamps):
                if tensor == value:
                    out.append(idx)
                elif isinstance(tensor.owner, te.ComputeOp) and (
                    self.schedules[tensor.owner].inline or self.attached_within(tensor.owner, at)
                ):
                    ext = [*tensor.owner.spatial_extents, *tensor.owner.reduce_extent_list]
                    spans = [x if x is not None else Span.range(n) for x, n in zip(idx, ext)]
                    stack.append((tensor.owner, spans + [Span.range(n) for n in ext[len(spans) :]]))
            if len(out) + len(stack) > READS_FOLLOWED:
                return [[None] * len(value.type.get_shape())]  # type: ignore[union-attr]
        return out

    def prefetch_region(
        self, e: Emitter, s: StageSchedule, prim: te.PrefetchOp, loop: scf.ForOp, values: dict[str, SSAValue]
    ) -> Prefetch:
        """At the start of loop `axis`'s body: where in memory the block of the prefetched tensor
        that iteration i + distance reads starts (the hull of its reads' spans, flattened), and how
        many of its lines there are to ask for (none in the last `distance` iterations)."""
        name = f"te.prefetch on stage '{s.compute.stage.data}'"
        buf = self.buffers.get(prim.tensor)
        if not isinstance(prim.tensor, BlockArgument) or buf is None:
            raise LatheError(f"{name}: the prefetched tensor must be an argument of the kernel")
        axis, distance = prim.axis.data, prim.distance.value.data
        ahead = e.binop(arith.AddiOp, values[axis], e.index(distance))
        spans = self.root_spans(e, s, values | {axis: ahead})
        reads = self.reads_of(s.compute, prim.tensor, (s.compute, axis), spans, clamps=True)
        if not reads:
            raise LatheError(f"{name}: the stage does not read the tensor inside loop '{axis}'")
        shape = list(buf.type.get_shape())  # type: ignore[union-attr]
        regions: list[Span | None] = []
        for d in range(len(shape)):
            region = None
            for read in reads:
                r = read[d]
                if r is None or (region is not None and not region.same_base(r)):
                    region = None
                    break
                region = r if region is None else Span(r.terms, min(region.lo, r.lo), max(region.hi, r.hi))
            regions.append(region)
        _new_part(regions, _steps_with(e.block, ahead))
        offset, last, volume, below = e.index(0), 0, 1, False
        for region, n, stride in zip(regions, shape, row_major_strides(shape)):
            if region is not None and region.hi - region.lo + 1 < n:
                offset = e.binop(arith.AddiOp, offset, e.binop(arith.MuliOp, region.base(e), e.index(stride)))
                extent = region.hi - region.lo + 1
                below |= region.lo < 0
            else:
                extent = n
            last += (extent - 1) * stride
            volume *= extent
        if 2 * volume < last + 1:
            raise LatheError(
                f"{name}: the block of the tensor that loop '{axis}' reads is scattered in memory "
                f"({volume} elements over {last + 1})",
                note="prefetch a contiguous block: a packed or blocked layout",
            )
        if below:  # a padded read's window, whose first rows may lie before the tensor's
            offset = e.binop(arith.MaxSIOp, offset, e.index(0))
        per_line = max(1, CACHE_LINE // np_dtype(buf.type.element_type).itemsize)  # type: ignore[union-attr]
        lines = -(-(last + 1) // per_line) + 1  # (+1: the block need not start on a line)
        more = e.add(arith.CmpiOp(ahead, e.index(s.axes[axis].extent), "slt")).results[0]
        count = e.add(arith.SelectOp(more, e.index(lines), e.index(0))).results[0]
        return Prefetch(loop, buf, offset, count, lines, per_line, math.prod(shape), prim.locality.value.data)

    def root_spans(self, e: Emitter | None, s: StageSchedule, fixed: dict[str, SSAValue]) -> list[Span]:
        """Each root axis's span (spatial then reduce) while every leaf not in `fixed` runs
        over its extent; with no emitter, the static range over all iterations."""
        spans: dict[str, Span] = {
            n: Span.point(fixed[n]) if n in fixed else Span.range(s.axes[n].extent) for n in s.leaves
        }
        for rel in reversed(s.relations):
            if isinstance(rel, Split):
                spans[rel.parent] = spans[rel.outer].scale(rel.factor) + spans[rel.inner]
                continue
            fused = spans[rel.fused]
            if e is not None and fused.lo == fused.hi and fused.terms:  # one value: its parts
                rest = fused.base(e)
                for name in reversed(rel.parts[1:]):
                    ext = e.index(s.axes[name].extent)
                    spans[name] = Span.point(e.binop(arith.RemUIOp, rest, ext))
                    rest = e.binop(arith.DivUIOp, rest, ext)
                spans[rel.parts[0]] = Span.point(rest)
            else:  # (a part's values beyond its extent occur only in guarded iterations)
                for name in rel.parts:
                    spans[name] = Span.range(s.axes[name].extent)
        return [spans[n] for n in s.roots]

    def root_values(self, e: Emitter, s: StageSchedule, leaves: dict[str, SSAValue], spatial_only: bool):
        """Root axis values from leaf loop variables, and the guards splits need."""
        vals = dict(leaves)
        guards: list[SSAValue] = []
        for rel in reversed(s.relations):
            if isinstance(rel, Split):
                if spatial_only and s.axes[rel.parent].reduce:
                    continue
                o, i = vals[rel.outer], vals[rel.inner]
                scaled = e.binop(arith.MuliOp, o, e.index(rel.factor))
                vals[rel.parent] = e.binop(arith.AddiOp, scaled, i)
                if s.axes[rel.parent].extent % rel.factor:
                    guards.append(
                        e.add(arith.CmpiOp(vals[rel.parent], e.index(s.axes[rel.parent].extent), "slt")).results[0]
                    )
            else:
                if spatial_only and s.axes[rel.fused].reduce:
                    continue
                rest = vals[rel.fused]
                for name in reversed(rel.parts[1:]):
                    ext = e.index(s.axes[name].extent)
                    vals[name] = e.binop(arith.RemUIOp, rest, ext)
                    rest = e.binop(arith.DivUIOp, rest, ext)
                vals[rel.parts[0]] = rest
        return vals, guards

    def guarded(self, e: Emitter, guards: list[SSAValue], emit) -> None:
        if not guards:
            emit()
            return
        cond = guards[0]
        for g in guards[1:]:
            cond = e.binop(arith.AndIOp, cond, g)
        then = Block()
        e.add(scf.IfOp(cond, [], Region(then)))
        saved = e.block
        e.block = then
        emit()
        then.add_op(scf.YieldOp())
        e.block = saved

    def emit_body(self, e: Emitter, c: te.ComputeOp, index_values: list[SSAValue]) -> SSAValue:
        """Emit c's body at the given indices, substituting inlined producers' bodies for
        their reads. An explicit stack instead of recursion, so a chain of thousands of
        inlined stages cannot hit Python's recursion limit; a producer read twice at the
        same indices (a ladder or diamond of inlined stages) is emitted once, else the
        emitted code would grow exponentially with the depth."""
        emitted: dict[tuple, SSAValue] = {}
        stack = [_BodyFrame(c, index_values)]
        while True:
            f = stack[-1]
            op = next(f.ops, None)
            if op is None:
                raise LatheError(f"te.compute '{f.compute.stage.data}' has no te.yield")
            if isinstance(op, te.YieldOp):
                v = f.mapping[op.value]
                emitted[f.key] = v
                stack.pop()
                if not stack:
                    return v
                stack[-1].mapping[stack[-1].pending] = v
            elif isinstance(op, te.ReadOp):
                idx = [f.mapping[i] for i in op.indices]
                producer = op.tensor.owner
                if isinstance(producer, te.ComputeOp) and self.schedules[producer].inline:
                    key = (producer, tuple(idx))
                    if key in emitted:
                        f.mapping[op.result] = emitted[key]
                    elif any(g.compute is producer for g in stack):
                        raise LatheError(f"te.compute '{producer.stage.data}' reads its own result")
                    else:
                        f.pending = op.result
                        stack.append(_BodyFrame(producer, idx))
                else:
                    f.mapping[op.result] = self.emit_read(e, op.tensor, idx)
            else:
                new = op.clone(value_mapper=f.mapping)
                e.add(new)
                for old, nv in zip(op.results, new.results):
                    f.mapping[old] = nv

    def emit_read(self, e: Emitter, src: SSAValue, idx: list[SSAValue]) -> SSAValue:
        """A load of src at global indices: from its tile when it is computed at a loop."""
        if src in self.tiles:
            tile = self.tiles[src]
            local = [e.binop(arith.SubiOp, i, b) for i, b in zip(idx, tile.bases)]
            return e.add(memref.LoadOp.get(tile.buffer, local)).results[0]
        return e.add(memref.LoadOp.get(self.load_source(src), idx)).results[0]


def _steps_with(block: Block, ahead: SSAValue) -> set[SSAValue]:
    """The values emitted in `block` that step by one with `ahead` (itself, and sums with it
    and remainders of those: a root axis of a fused loop, apart from where it wraps)."""
    moving = {ahead}
    for op in block.ops:
        if not isinstance(op, arith.AddiOp | arith.RemUIOp | arith.RemSIOp):
            continue
        if op.lhs in moving or isinstance(op, arith.AddiOp) and op.rhs in moving:
            moving.add(op.result)
    return moving


def _new_part(regions: list[Span | None], moving: set[SSAValue]) -> None:
    """Where one dimension's window slides by k < its extent per iteration (a convolution's
    input rows, k the stride) and no other moves, iteration i + distance - 1 already reads all
    but its last k: the block is cut to those, which are all that is not in cache by then
    (a 5x5 window at stride 1 asks for one row, not five)."""
    steps = [(d, k) for d, r in enumerate(regions) if r is not None for v, k in r.terms if v in moving]
    if len(steps) != 1:
        return
    d, k = steps[0]
    r = regions[d]
    assert r is not None
    if 0 < k <= r.hi - r.lo:
        regions[d] = Span(r.terms, r.hi - k + 1, r.hi)


CACHE_LINE = 64  # bytes: the unit a prefetch asks for (x86 and current Arm server cores)


@dataclass(frozen=True)
class Prefetch:
    """A te.prefetch's block, found at the start of its loop's body, to be spread over the
    busiest plain loop inside once the body is emitted."""

    loop: scf.ForOp
    buffer: SSAValue
    start: SSAValue  # the block's first element (flat), for the iteration `distance` ahead
    count: SSAValue  # its lines to ask for in this iteration: `lines`, or none past the end
    lines: int
    per_line: int  # elements in a line
    size: int  # the buffer's elements: a line past it is never asked for
    locality: int


def _trips(loop: scf.ForOp) -> int | None:
    lb, ub, step = constant_int(loop.lb), constant_int(loop.ub), constant_int(loop.step)
    return None if lb is None or ub is None or not step else max(0, -(-(ub - lb) // step))


def _spread_prefetch(p: Prefetch) -> None:
    """The block's lines, a few per iteration of the plain (unannotated) loop inside p.loop that
    runs most often: iteration t asks for lines [t·k, t·k + k), k = lines / iterations
    rounded up, so the requests trickle in beside the compute instead of filling the
    line-fill buffers at once. Without such a loop, all at the body's start."""
    best: tuple[int, scf.ForOp, list[scf.ForOp]] | None = None
    for op in p.loop.body.walk():
        if not isinstance(op, scf.ForOp) or annotation_of(op) is not None:
            continue
        path, x, total = [], op, 1
        while x is not p.loop:
            if isinstance(x, scf.ForOp):
                n = _trips(x)
                if n is None or annotation_of(x) is not None and annotation_of(x).kind.data != "unroll":  # type: ignore[union-attr]
                    break
                path.append(x)
                total *= n
            x = x.parent_op()  # type: ignore[assignment]
        else:
            if best is None or total > best[0]:
                best = (total, op, path)
    trips, where, path = best if best is not None else (1, p.loop, [])
    per_trip = -(-p.lines // max(trips, 1))
    e = Emitter(Block())
    t, scale = e.index(0), 1
    for loop in path:  # innermost first: t counts the chosen loop's iterations in p.loop's body
        k = e.binop(arith.DivUIOp, e.binop(arith.SubiOp, loop.body.block.args[0], loop.lb), loop.step)
        t = e.binop(arith.AddiOp, t, e.binop(arith.MuliOp, k, e.index(scale)))
        scale *= _trips(loop) or 1
    first = e.binop(arith.MuliOp, t, e.index(per_trip))
    live = e.add(arith.CmpiOp(first, p.count, "slt")).results[0]
    inner = Block()
    g = Emitter(inner)
    for j in range(per_trip if best is not None else p.lines):
        line = g.binop(arith.AddiOp, first, g.index(j))
        at = g.binop(arith.AddiOp, p.start, g.binop(arith.MuliOp, line, g.index(p.per_line)))
        g.add(PrefetchOp(p.buffer, g.binop(arith.MinSIOp, at, g.index(p.size - 1)), p.locality))
    g.add(scf.YieldOp())
    e.add(scf.IfOp(live, [], Region(inner)))
    ops = list(e.block.ops)
    for op in ops:
        op.detach()
    block = where.body.block
    if block.first_op is None:
        block.add_ops(ops)
    else:
        block.insert_ops_before(ops, block.first_op)


def _block_scope(block: Block) -> Block:
    """Where a shared tile is allocated: the body of the innermost enclosing blockIdx loop
    (one array per block, outside the loops that reuse it), else the given block."""
    b: Block | None = block
    while b is not None:
        loop = b.parent_op()
        if not isinstance(loop, scf.ForOp):
            break
        ann = loop.attributes.get(ANNOTATION)
        if isinstance(ann, LoopAnnotationAttr) and ann.thread_axis.data.startswith("blockIdx."):
            return b
        b = loop.parent_block()
    return block


def _readers(block: Block) -> dict[SSAValue, list[te.ComputeOp]]:
    """Which stages read each tensor (te.read in their bodies)."""
    out: dict[SSAValue, list[te.ComputeOp]] = {}
    for c in block.ops:
        if isinstance(c, te.ComputeOp):
            for op in c.body.block.ops:
                if isinstance(op, te.ReadOp) and c not in out.setdefault(op.tensor, []):
                    out[op.tensor].append(c)
    return out


def _check_closed(c: te.ComputeOp) -> None:
    """A stage's body is emitted afresh inside loops: it may use its axes, its own values
    and te.read of tensors, nothing else computed outside it (the lowered kernel would use
    a value of the old one)."""
    inside = set(c.body.block.args)
    for op in c.body.block.ops:
        operands = op.operands[1:] if isinstance(op, te.ReadOp) else op.operands
        for v in operands:
            if v not in inside:
                raise LatheError(
                    f"te.compute '{c.stage.data}': '{op.name}' uses a value defined outside the stage's body",
                    note="a stage's body may use only its axis arguments, values it computes, and te.read",
                )
        inside.update(op.results)
        if op.regions:
            raise LatheError(
                f"te.compute '{c.stage.data}': '{op.name}' has regions; a stage's body is straight-line code"
            )


class _BodyFrame:
    """One te.compute body being emitted at some indices (see emit_body)."""

    def __init__(self, c: te.ComputeOp, index_values: list[SSAValue]):
        self.compute = c
        self.key = (c, tuple(index_values))
        self.mapping: dict[SSAValue, SSAValue] = dict(zip(c.body.block.args, index_values))
        self.ops = iter(c.body.block.ops)
        self.pending: SSAValue | None = None  # the te.read waiting for an inlined producer's value


# ---------------------------------------------------------------------------
# Glue bufferization


def _bufferize_glue(fn: func.FuncOp, module: ModuleOp, kernels: dict[str, func.FuncOp], counter: list[int]) -> None:
    block = fn.body.block
    for arg in list(block.args):
        Rewriter.replace_value_with_new_type(arg, memref_of(arg.type))
    tuples = _Tuples()
    for op in list(block.ops):
        if isinstance(op, func.CallOp) and op.callee.root_reference.data in kernels:
            allocs = []
            for r in op.results:
                t = memref_of(r.type)
                alloc = memref.AllocOp.get(t.element_type, ALIGNMENT, t.get_shape())
                Rewriter.insert_op(alloc, InsertPoint.before(op))
                alloc.results[0].name_hint = r.name_hint
                allocs.append(alloc.results[0])
            call = func.CallOp(op.callee.root_reference.data, [*op.arguments, *allocs], [])
            Rewriter.insert_op(call, InsertPoint.before(op))
            for r, a in zip(op.results, allocs):
                r.replace_all_uses_with(a)
            Rewriter.erase_op(op)
        elif isinstance(op, graph.ConstantOp):
            name = f"__constant_{counter[0]}"
            counter[0] += 1
            t = memref_of(op.result.type)
            glob = memref.GlobalOp.get(StringAttr(name), t, op.value, constant=UnitAttr(), alignment=ALIGNMENT)
            module.body.block.insert_op_before(glob, module.body.block.first_op)  # type: ignore[arg-type]
            get = memref.GetGlobalOp(name, t)
            Rewriter.replace_op(op, get)
        elif isinstance(op, graph.TupleOp | graph.TupleGetItemOp):
            tuples.resolve(op)
        elif isinstance(op, func.ReturnOp):
            tuples.flatten_return(fn, op)
        elif isinstance(op, memref.AllocOp | memref.GetGlobalOp):  # (an earlier run's)
            continue
        elif isinstance(op, func.CallOp):
            raise LatheError(_non_kernel_call(module, fn, op.callee.root_reference.data))
        else:
            raise LatheError(
                f"lower-te-to-loop: '{op.name}' in @{fn.sym_name.data} is not in a kernel; run outline-kernels first"
            )
    tuples.erase()
    ret = block.last_op
    assert isinstance(ret, func.ReturnOp)
    fn.function_type = func.FunctionType.from_lists([a.type for a in block.args], [v.type for v in ret.operands])


class _Tuples:
    """Tuples exist only between buffers, so the glue resolves them statically: a projection
    becomes the buffer it names and a returned tuple becomes its leaves (the executor and
    any other runtime deal in buffers only). A projection of a tuple-typed parameter, which
    no build can resolve, stays an op (the executor rejects such a parameter by name)."""

    def __init__(self):
        self.fields: dict[SSAValue, tuple[SSAValue, ...]] = {}
        self.ops: list[Operation] = []

    def leaves_of(self, v: SSAValue):
        return tuple(self.leaves_of(x) for x in self.fields[v]) if v in self.fields else v

    def resolve(self, op: graph.TupleOp | graph.TupleGetItemOp) -> None:
        if isinstance(op, graph.TupleOp):
            self.fields[op.result] = tuple(op.operands)
            self.ops.append(op)
        elif op.tuple in self.fields:
            item = self.fields[op.tuple][op.index.value.data]
            if item in self.fields:
                self.fields[op.result] = self.fields[item]
            else:
                op.result.replace_all_uses_with(item)
            self.ops.append(op)
        else:
            Rewriter.replace_op(op, type(op).create_inferred(list(op.operands), dict(op.properties)))

    def flatten_return(self, fn: func.FuncOp, ret: func.ReturnOp) -> None:
        if not any(v in self.fields for v in ret.operands):
            return
        flat: list[SSAValue] = []

        def encode(x) -> Attribute:
            if isinstance(x, tuple):
                return ArrayAttr(tuple(encode(y) for y in x))
            flat.append(x)
            return IntegerAttr(len(flat) - 1, 64)

        nesting = ArrayAttr(tuple(encode(self.leaves_of(v)) for v in ret.operands))
        Rewriter.replace_op(ret, func.ReturnOp(*flat))
        fn.attributes[RESULT_NESTING] = nesting

    def erase(self) -> None:
        for op in reversed(self.ops):  # users before the tuples they read
            Rewriter.erase_op(op)


def _non_kernel_call(module: ModuleOp, fn: func.FuncOp, callee: str) -> str:
    declared = any(f.sym_name.data == callee and f.is_declaration for f in module.ops if isinstance(f, func.FuncOp))
    if declared:
        return (
            f"lower-te-to-loop: @{fn.sym_name.data} calls @{callee}, which is only declared (it has no body); "
            f"Lathe compiles whole programs: give @{callee} a body"
        )
    return f"lower-te-to-loop: call to non-kernel @{callee} in @{fn.sym_name.data}; run inline-calls first"


@dataclass(frozen=True)
class LowerTeToLoop(ModulePass):
    """te computes + schedules → annotated scf.for nests over memrefs."""

    name = "lower-te-to-loop"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        kernels: dict[str, func.FuncOp] = {}
        lowered: dict[object, func.FuncOp] = {}  # a kernel the same as one before it is a clone
        for f in defined_functions(op):
            if not is_kernel(f):
                continue
            if NUM_INPUTS in f.attributes:  # lowered by an earlier run
                kernels[f.sym_name.data] = f
                continue
            stray = next((o for o in f.body.block.ops if is_compute(o)), None)
            if stray is not None:
                raise LatheError(
                    f"lower-te-to-loop: kernel @{f.sym_name.data} still has graph op '{stray.name}'",
                    note="run lower-graph-to-te first",
                )
            # every kernel is lowered, even one without a stage (a canonicalized add(0, x) just
            # returns its input): its signature must become buffers like the calls to it
            key = function_structure(f)
            if key in lowered:
                new = lowered[key].clone()
                new.sym_name = f.sym_name
            else:
                new = lowered[key] = KernelLowering(f).run()
                split_index_sets(new)
                unswitch_vector_guards(new)
            Rewriter.replace_op(f, new)
            kernels[new.sym_name.data] = new
        counter = [0]
        for f in glue_functions(op):
            _bufferize_glue(f, op, kernels, counter)
