"""Features of a candidate's loop program, for the cost model.

Read from the loop-level IR after lowering, not from knob values, and stated as quantities
that mean the same in every template and every workload (as Ansor's do, Zheng et al.,
OSDI'20 §5.2): what a tree learns from dense ("8×32 accumulators in registers, 0.1 loaded
bytes per flop out of L1, 64 parallel iterations") must say something about a conv. So most
features are ratios to the floating-point work (bytes per flop at a cache level, loop
iterations per flop), not sizes, which differ between workloads; sizes are log2'd.

The program is read as statements: the memory accesses and float ops of one loop body (not
of loops nested in it). The main statement (the one doing most of the float work, a
contraction's multiply-add) is described in detail:

- per enclosing loop, innermost first: extent, annotation (parallel/vectorize/unroll), and
  the bytes the statement touches in one run of that loop (cache lines of distinct elements,
  from the span of each index over the loops inside it);
- per access (the three with the most traffic): its stride along the innermost loop (0
  invariant, 1 contiguous, other), how many loops out its reuse is (the innermost loop its
  index does not depend on), and the bytes it moves per flop into L1 and into L2;
- registers: whether the accumulator stays in registers (its index depends only on
  unrolled and vectorized loops), its tile's bytes, and the bytes the register tile loads
  per flop (the microkernel's arithmetic intensity);
- vector width, and the shares of accesses in the vector loop that are contiguous,
  broadcast or gathered.

Whole kernel: FLOPs; bytes moved per flop into L1, L2 and L3 (for each cache, the data of
the outermost loop whose footprint fits is loaded once per run of that loop); the
compulsory bytes per flop; parallel extent, balance on 2 and 8 threads and flops per
parallel iteration; loop iterations per flop that are not unrolled; the share of memory
operations outside the main statement (copies, padding, write-back); local buffer bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xdsl.dialects import arith, memref, scf
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.ir import Block, Operation, SSAValue

from lathe.dialects.functions import is_kernel
from lathe.dialects.loop import annotation_of

VERSION = 3  # of the vector's layout and meaning: records carry it, and transfer trains only on this one
DEPTHS = 8  # loops of the main statement described one by one, innermost first
ACCESSES = 3  # accesses of the main statement described one by one, most traffic first
ANNOTATIONS = ("none", "parallel", "vectorize", "unroll")
FLOAT_OPS = (arith.AddfOp, arith.MulfOp, arith.SubfOp, arith.DivfOp, arith.MaximumfOp, arith.MinimumfOp)
LINE = 64  # bytes of a cache line
CACHES = (48 << 10, 2 << 20, 32 << 20)  # L1d, L2, a share of L3: a server core of this decade
REGISTER_FILE = 32 * 64  # bytes: 32 vector registers of 64 bytes (AVX-512)
THREADS = (2, 8)  # parallel balance is described for these thread counts
FULL_UNROLL = 128  # LLVM unrolls loops of constant trip counts up to about this many bodies by itself


def _lg(x: float) -> float:
    return math.log2(1.0 + max(x, 0.0))


def _ratio(x: float, flops: float) -> float:
    """log2 of a per-flop quantity, finite at 0."""
    return math.log2(max(x, 0.0) / max(flops, 1.0) + 2.0**-20)


def _const(v: SSAValue) -> int | None:
    op = v.owner
    if isinstance(op, arith.ConstantOp) and hasattr(op.value, "value"):
        return op.value.value.data  # type: ignore[union-attr]
    return None


def _extent(loop: scf.ForOp) -> int:
    lb, ub, step = _const(loop.lb), _const(loop.ub), _const(loop.step)
    if lb is None or ub is None or not step:
        return 1
    return max(0, (ub - lb + step - 1) // step)


def _iv(loop: scf.ForOp) -> SSAValue:
    return loop.body.block.args[0]


def _kind(loop: scf.ForOp) -> str:
    ann = annotation_of(loop)
    return ann.kind.data if ann is not None else "none"


class IndexAlgebra:
    """Spans and strides of index expressions over loops, by rules per op: an index is a
    tree of adds, multiplies by constants, divisions and remainders of induction variables."""

    def __init__(self, loops: dict[SSAValue, scf.ForOp]):
        self.loops = loops  # induction variable -> its loop
        self.memo: dict[tuple[SSAValue, frozenset], float] = {}

    def span(self, v: SSAValue, inner: frozenset) -> float:
        """max - min of `v` while the loops of the induction variables `inner` run (the others fixed)."""
        key = (v, inner)
        if key not in self.memo:
            self.memo[key] = self._span(v, inner)
        return self.memo[key]

    def _span(self, v: SSAValue, inner: frozenset) -> float:
        if v in self.loops:
            if v not in inner:
                return 0.0
            loop = self.loops[v]
            return float(max(_extent(loop) - 1, 0) * abs(_const(loop.step) or 1))
        op = v.owner
        if not isinstance(op, Operation):
            return 0.0
        if isinstance(op, arith.ConstantOp):
            return 0.0
        spans = [self.span(o, inner) for o in op.operands]
        if isinstance(op, arith.AddiOp | arith.SubiOp):
            return spans[0] + spans[1]
        if isinstance(op, arith.MuliOp):
            a, b = (_const(o) for o in op.operands)
            if a is not None:
                return spans[1] * abs(a)
            if b is not None:
                return spans[0] * abs(b)
            return math.inf if any(spans) else 0.0
        if isinstance(op, arith.FloorDivSIOp | arith.DivUIOp | arith.DivSIOp):
            c = _const(op.operands[1])
            return math.ceil(spans[0] / abs(c)) if c else spans[0]
        if isinstance(op, arith.RemSIOp | arith.RemUIOp):
            c = _const(op.operands[1])
            return min(spans[0], abs(c) - 1) if c else spans[0]
        if isinstance(op, arith.IndexCastOp | arith.MaxSIOp | arith.MinSIOp | arith.SelectOp):
            return max(spans, default=0.0)
        return math.inf if any(spans) else 0.0

    def stride(self, v: SSAValue, iv: SSAValue) -> float | None:
        """How much `v` moves per iteration of the loop of `iv` (None: not an affine move)."""
        if v is iv:
            return float(_const(self.loops[iv].step) or 1)
        op = v.owner
        if not isinstance(op, Operation) or isinstance(op, arith.ConstantOp) or v in self.loops:
            return 0.0
        if isinstance(op, arith.AddiOp | arith.SubiOp):
            a, b = (self.stride(o, iv) for o in op.operands)
            if a is None or b is None:
                return None
            return a + b if isinstance(op, arith.AddiOp) else a - b
        if isinstance(op, arith.MuliOp):
            ca, cb = (_const(o) for o in op.operands)
            a, b = (self.stride(o, iv) for o in op.operands)
            if ca is not None and b is not None:
                return b * ca
            if cb is not None and a is not None:
                return a * cb
            return 0.0 if a == 0 and b == 0 else None
        if isinstance(op, arith.FloorDivSIOp | arith.DivUIOp | arith.DivSIOp | arith.RemSIOp | arith.RemUIOp):
            # x / c and x % c move regularly along the loop only while x stays in one block
            # of c (a packed layout's vector that crosses packs is a gather), or by whole blocks
            c, a = _const(op.operands[1]), self.stride(op.operands[0], iv)
            if a is None or not c:
                return None
            within = self.span(op.operands[0], frozenset([iv])) < abs(c)
            divides = isinstance(op, arith.FloorDivSIOp | arith.DivUIOp | arith.DivSIOp)
            if a % c == 0:
                return a / c if divides else 0.0
            if within:
                return 0.0 if divides else a
            return None
        if isinstance(op, arith.IndexCastOp | arith.MaxSIOp | arith.MinSIOp | arith.SelectOp):
            strides = [self.stride(o, iv) for o in op.operands if o.type == v.type]
            return strides[0] if strides and all(s == strides[0] for s in strides) else None
        return 0.0 if all(self.stride(o, iv) == 0 for o in op.operands) else None


@dataclass
class Access:
    buffer: SSAValue
    indices: tuple[SSAValue, ...]
    shape: tuple[int, ...]
    elem: int  # bytes
    local: bool  # a buffer the kernel allocates on its stack (an accumulator, a cache tile)


@dataclass
class Statement:
    """The accesses and float ops of one loop body, and its loops, outermost first."""

    nest: list[scf.ForOp]
    accesses: list[Access] = field(default_factory=list)
    flops: int = 0  # per iteration
    guarded: bool = False  # under a condition inside its loops (a tail's guard, padding)

    @property
    def trips(self) -> float:
        return float(math.prod(_extent(l) for l in self.nest))

    def distinct(self) -> list[Access]:
        """Accesses to different data: a load and a store of one element are one."""
        seen: dict[tuple, Access] = {}
        for a in self.accesses:
            seen.setdefault((a.buffer, a.indices), a)
        return list(seen.values())


def _statements(kernel: Operation) -> list[Statement]:
    out: list[Statement] = []

    def block(b: Block, nest: list[scf.ForOp], guarded: bool = False) -> None:
        here = Statement(nest, guarded=guarded)
        for op in b.ops:
            if isinstance(op, scf.ForOp):
                block(op.body.block, [*nest, op], guarded)
            elif isinstance(op, memref.LoadOp | memref.StoreOp):
                mt = op.memref.type
                if isinstance(mt, MemRefType):
                    elem = max(1, (getattr(mt.element_type, "bitwidth", 32) or 32) // 8)
                    local = isinstance(op.memref.owner, memref.AllocaOp)
                    here.accesses.append(Access(op.memref, tuple(op.indices), tuple(mt.get_shape()), elem, local))
            elif isinstance(op, FLOAT_OPS):
                here.flops += 1
            else:
                for region in op.regions:
                    for inner in region.blocks:
                        block(inner, nest, guarded or isinstance(op, scf.IfOp))
        if here.accesses or here.flops:
            out.append(here)

    for region in kernel.regions:
        for b in region.blocks:
            block(b, [])
    return out


class _Reader:
    """The features of one kernel's statements."""

    def __init__(self, statements: list[Statement]):
        self.statements = statements
        loops = {_iv(l): l for s in statements for l in s.nest}
        self.algebra = IndexAlgebra(loops)

    def counts(self, a: Access, inner: frozenset) -> list[float]:
        """Distinct index values per dimension while the loops of `inner` run."""
        return [min(float(d), self.algebra.span(i, inner) + 1.0) for i, d in zip(a.indices, a.shape)]

    def footprint(self, a: Access, inner: frozenset) -> float:
        """Bytes of cache lines `a` touches while the loops of `inner` run."""
        counts = self.counts(a, inner)
        if not counts:
            return float(LINE)
        lines = math.ceil(counts[-1] * a.elem / LINE) * LINE
        return math.prod(counts[:-1]) * lines

    def inner_ivs(self, s: Statement, level: int) -> frozenset:
        return frozenset(_iv(l) for l in s.nest[level:])

    def traffic(self, s: Statement, capacity: float, which: list[Access] | None = None) -> float:
        """Bytes `s` loads into a cache of `capacity`: the data of the outermost loop whose
        footprint fits is loaded once per run of that loop (no fit: every access misses)."""
        accesses = s.distinct()
        for level in range(len(s.nest) + 1):
            inner = self.inner_ivs(s, level)
            if level == len(s.nest) or sum(self.footprint(a, inner) for a in accesses) <= capacity:
                runs = math.prod(_extent(l) for l in s.nest[:level])
                return runs * sum(self.footprint(a, inner) for a in (which if which is not None else accesses))
        return 0.0  # unreachable

    def stride(self, a: Access, loop: scf.ForOp) -> float | None:
        """Elements `a` moves per iteration of `loop`, in its row-major buffer."""
        total, step = 0.0, 1
        for i, d in reversed(list(zip(a.indices, a.shape))):
            s = self.algebra.stride(i, _iv(loop))
            if s is None:
                return None
            total += s * step
            step *= max(d, 1)
        return total


def _stride_class(stride: float | None) -> float:
    return 3.0 if stride is None else 0.0 if stride == 0 else 1.0 if abs(stride) == 1 else 2.0


def kernel_features(kernel: Operation) -> dict[str, float]:
    """The features by name, in the order of the vector."""
    statements = _statements(kernel)
    reader = _Reader(statements)
    flops = sum(s.trips * s.flops for s in statements)
    main = max(statements, key=lambda s: (s.trips * s.flops, s.trips), default=Statement([]))
    main_flops = max(main.trips * main.flops, 1.0)
    nest = main.nest
    accesses = main.distinct()

    # whole kernel: traffic per flop into each cache, summed over statements
    traffic = [sum(reader.traffic(s, c) for s in statements) for c in CACHES]
    args = {a.buffer: a for s in statements for a in s.accesses if not a.local}
    compulsory = sum(a.elem * math.prod(a.shape) for a in args.values())
    memory_ops = sum(s.trips * len(s.accesses) for s in statements)
    other_ops = memory_ops - main.trips * len(main.accesses)

    # parallelism: the outermost parallel loop around the main statement
    par = next((l for l in nest if _kind(l) == "parallel"), None)
    p = float(_extent(par)) if par is not None else 1.0
    balance = [p / (math.ceil(p / t) * t) for t in THREADS]

    # registers: the innermost loops that are unrolled or vectorized are the register tile
    tile, unrolled = 0, 1
    while tile < len(nest):
        loop = nest[len(nest) - 1 - tile]
        kind, extent = _kind(loop), _extent(loop)
        if kind == "unroll" or (kind == "none" and extent * unrolled <= FULL_UNROLL):
            unrolled *= extent
        elif kind != "vectorize":
            break
        tile += 1
    tile_ivs = reader.inner_ivs(main, len(nest) - tile)
    tile_flops = main.flops * math.prod(_extent(l) for l in nest[len(nest) - tile :])
    acc = [a for a in accesses if a.local]
    every = frozenset(_iv(l) for l in nest)
    in_registers = float(
        bool(acc)
        and all(reader.algebra.span(i, tile_ivs) == reader.algebra.span(i, every) for a in acc for i in a.indices)
    )
    acc_bytes = sum(a.elem * math.prod(reader.counts(a, tile_ivs)) for a in acc)
    tile_loads = sum(a.elem * math.prod(reader.counts(a, tile_ivs)) for a in accesses if not a.local)
    vector_bytes = next((a.elem * _extent(l) for l in reversed(nest) if _kind(l) == "vectorize" for a in acc[:1]), 4)
    # live registers of the tile: its accumulators, one operand vector and a broadcast
    registers = math.ceil(acc_bytes / 64) + math.ceil(vector_bytes / 64) + 1
    looping = main.trips / max(math.prod(_extent(l) for l in nest[len(nest) - tile :]), 1)

    # the vector loop
    vec = next((l for l in reversed(nest) if _kind(l) == "vectorize"), None)
    width = float(_extent(vec)) if vec is not None else 1.0
    classes = [_stride_class(reader.stride(a, vec)) for a in main.accesses] if vec is not None else []
    share = [sum(1 for c in classes if c == k) / max(len(classes), 1) for k in (1.0, 0.0)]
    share.append(1.0 - sum(share) if classes else 0.0)

    # per access of the main statement, the most traffic (into L1) first
    innermost = nest[-1] if nest else None
    described = []
    for a in accesses:
        l1 = reader.traffic(main, CACHES[0], [a])
        l2 = reader.traffic(main, CACHES[1], [a])
        deps = frozenset().union(*(_deps(reader, i) for i in a.indices)) if a.indices else frozenset()
        reuse = next((k for k, l in enumerate(reversed(nest)) if _iv(l) not in deps), len(nest))
        stride = _stride_class(reader.stride(a, innermost)) if innermost is not None else 0.0
        described.append((l1, (stride, float(reuse), _ratio(l1, main_flops), _ratio(l2, main_flops), float(a.local))))
    described.sort(key=lambda x: -x[0])
    absent = (-1.0, -1.0, _ratio(0, 1), _ratio(0, 1), -1.0)

    local_bytes = sum(
        4.0 * math.prod(op.memref.type.get_shape())  # type: ignore[union-attr]
        for op in kernel.walk()
        if isinstance(op, memref.AllocaOp)
    )
    out = {
        "flops": _lg(flops),
        "compulsory_bytes_per_flop": _ratio(compulsory, flops),
        **{f"{c}_bytes_per_flop": _ratio(t, flops) for c, t in zip(("l1", "l2", "l3"), traffic)},
        "parallel_extent": _lg(p),
        **{f"parallel_balance_{t}": b for t, b in zip(THREADS, balance)},
        "flops_per_parallel_iteration": _lg(flops / p),
        "loop_iterations_per_flop": _ratio(looping, main_flops),
        "other_memory_ops_per_flop": _ratio(other_ops, flops),
        "main_share_of_flops": main_flops / max(flops, 1.0),
        "local_bytes": _lg(local_bytes),
        "main_depth": float(len(nest)),
        "accumulator_in_registers": in_registers,
        "accumulator_bytes": _lg(acc_bytes),
        "accumulator_register_file_share": acc_bytes / REGISTER_FILE,
        "live_register_share": registers / (REGISTER_FILE / 64),
        "register_tile_bytes_per_flop": _ratio(tile_loads, tile_flops),
        "register_tile_flops": _lg(tile_flops),
        "register_tile_loops": float(tile),
        "vector_width": _lg(width),
        "vector_contiguous_share": share[0],
        "vector_broadcast_share": share[1],
        "vector_gather_share": share[2],
    }
    for k in range(ACCESSES):
        values = described[k][1] if k < len(described) else absent
        for name, v in zip(("stride_class", "reuse_loop", "l1_bytes_per_flop", "l2_bytes_per_flop", "local"), values):
            out[f"access{k}_{name}"] = v
    for d in range(DEPTHS):  # innermost first
        if d < len(nest):
            level = len(nest) - 1 - d
            loop = nest[level]
            fp = sum(reader.footprint(a, reader.inner_ivs(main, level)) for a in accesses)
            values = (_lg(_extent(loop)), float(ANNOTATIONS.index(_kind(loop))), _lg(fp))
        else:
            values = (0.0, -1.0, 0.0)
        for name, v in zip(("extent", "annotation", "footprint_bytes"), values):
            out[f"loop{d}_{name}"] = v
    out.update(_relative_features(statements, reader, main, flops, traffic, compulsory, tile, p))
    return out


def _relative_features(statements, reader, main, flops, traffic, compulsory, tile, p) -> dict[str, float]:
    """Version 3: quantities relative to the task itself, which compare across tasks of any
    size (a conv of 7×7 and a dense of 128 rows): how often the kernel's data is read into
    each cache, what share of the work runs in guarded or scalar tails, the work and data of
    each thread's share against the caches, and per loop of the main statement the bytes per
    flop of one run of it and its working set against L1 and L2."""
    nest = main.nest
    accesses = main.distinct()
    total = max(flops, 1.0)
    work = [(s, s.trips * s.flops) for s in statements if s.flops]
    vectorised = {id(s) for s, _ in work if any(_kind(l) == "vectorize" for l in s.nest)}
    width = next((_extent(l) for l in reversed(nest) if _kind(l) == "vectorize"), 1)
    tile_loops = nest[len(nest) - tile :]
    tile_iterations = math.prod(_extent(l) for l in tile_loops) if tile_loops else 1
    tile_ivs = reader.inner_ivs(main, len(nest) - tile)
    tile_lines = sum(math.ceil(a.elem * math.prod(reader.counts(a, tile_ivs)) / LINE) for a in accesses if not a.local)
    vector_ops = max(tile_iterations / max(width, 1), 1.0)  # vector FMAs of one run of the register tile
    levels = {l: i for i, l in enumerate(nest)}
    par = next((l for l in nest if _kind(l) == "parallel"), None)
    per_task = (
        sum(reader.footprint(a, reader.inner_ivs(main, levels[par] + 1)) for a in accesses) if par is not None else 0.0
    )
    out = {
        **{f"{c}_rereads": _ratio(t, compulsory) for c, t in zip(("l1", "l2", "l3"), traffic)},
        "guarded_share_of_flops": sum(w for s, w in work if s.guarded) / total,
        "scalar_share_of_flops": sum(w for s, w in work if id(s) not in vectorised) / total,
        "float_statements": _lg(len(work)),
        "tile_vector_loads_per_fma": tile_lines / vector_ops,
        "tile_vector_fmas": _lg(vector_ops),
        "parallel_tasks_per_thread": math.log2(p / THREADS[0]),
        "parallel_task_bytes_per_l2": math.log2(max(per_task, 1.0) / CACHES[1]),
    }
    for d in range(DEPTHS):  # innermost first
        values = (0.0, -20.0, -20.0)
        if d < len(nest):
            level = len(nest) - 1 - d
            fp = sum(reader.footprint(a, reader.inner_ivs(main, level)) for a in accesses)
            body = main.flops * math.prod(_extent(l) for l in nest[level:])
            values = (_ratio(fp, body), math.log2(max(fp, 1.0) / CACHES[0]), math.log2(max(fp, 1.0) / CACHES[1]))
        for name, v in zip(("bytes_per_flop", "l1_fill", "l2_fill"), values):
            out[f"loop{d}_{name}"] = v
    return out


def _deps(reader: _Reader, v: SSAValue) -> frozenset:
    """The induction variables an index depends on."""
    return frozenset(iv for iv in reader.algebra.loops if reader.algebra.stride(v, iv) != 0)


def loop_features(module: ModuleOp) -> list[float]:
    """The features of the module's kernel (the first, in a task's candidate there is one)."""
    kernel = next((f for f in module.ops if is_kernel(f)), None)
    return list(kernel_features(kernel).values()) if kernel is not None else []
