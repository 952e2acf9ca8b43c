"""Loop-level IR (func/scf/memref/arith/math + loop annotations) → LLVM IR text.

Written as text rather than through xDSL's llvm dialect: the shipped
memref→ptr→llvm path addresses memory with ptrtoint/inttoptr, which defeats
LLVM's vectorizer, and is slow on large modules. Here every access is an
in-bounds GEP on a `noalias align 16` kernel argument (ARGUMENT_ALIGN), so LLVM's O3 turns
annotated loops into AVX-512 (or the host's) vector code.

Loop annotations:
  * parallel  — the loop body is outlined and run by lathe_parallel_for (the
                thread pool in parallel_runtime.py), chunked dynamically;
                serial when the loop is nested in another parallel loop;
  * vectorize — llvm.loop.vectorize.enable + width metadata;
  * unroll    — llvm.loop.unroll.full / .count metadata.
A `loop.prefetch` is an `llvm.prefetch` (a read, into the data cache, at its locality).
Each kernel also gets `<name>__packed(ptr args)`, one pointer per buffer, so
the runtime calls it with a single prebuilt argument array.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects import arith, func, math, memref, scf
from xdsl.dialects.builtin import IndexType, IntegerType, MemRefType, ModuleOp
from xdsl.ir import Attribute, Block, Operation, SSAValue

from lathe.backends.interface import ALIGN, ARGUMENT_ALIGN
from lathe.backends.llvm import tile_transpose as tt
from lathe.backends.llvm import vectorize as vz
from lathe.backends.llvm.ops import (
    BIN_INTRINSIC,
    CASTS,
    CMPF,
    CMPI,
    DIVISIONS,
    FAST,
    FBIN,
    FLOAT_TYPES,
    IBIN,
    LIBM,
    MATH_FLAGS,
    UN_INTRINSIC,
    bits,
    checked_division,
    divisor_is_safe,
    float_literal,
    intrinsic_suffix,
    llvm_type,
)
from lathe.backends.llvm.parallel_runtime import (
    PARALLEL_FOR_DECL,
    runtime_ir,
    worth_threads,
)
from lathe.backends.llvm.vmath import POLYNOMIALS
from lathe.dialects.functions import is_kernel
from lathe.dialects.loop import PrefetchOp, annotation_of, row_major_strides
from lathe.errors import LatheError

# llvm_type and float_literal are read here by tests and by the vector emitter's users
__all__ = ["FunctionEmitter", "ModuleEmitter", "emit_kernel", "float_literal", "llvm_type", "module_to_llvm_ir"]


def vector_parts(lb: int, ub: int, width: int) -> list[tuple[int, int, int]]:
    """A vectorized loop's [lb, ub) as runs of whole vectors, widest first, each narrower one
    at most one vector (116 lanes: 7 of 16, then one of 4), so a row no vector divides runs
    at full width with a short vector tail; what no 2-lane vector covers is left (scalar)."""
    parts, start = [], lb
    while width >= 2 and start < ub:
        stop = start + (ub - start) // width * width
        if stop > start:
            parts.append((start, stop, width))
        start, width = stop, width // 2
    return parts


class ModuleEmitter:
    def __init__(self, parallel: bool = True, vector_bits: int = 512):
        self.parallel = parallel
        self.vector_bits = vector_bits
        self.vmath: set[str] = set()
        self.functions: list[str] = []
        self.metadata: list[str] = []
        self.declares: set[str] = set()
        self.md_count = 0

    def md(self, body_fn) -> str:
        n = self.md_count
        self.md_count += 1
        self.metadata.append(body_fn(n))
        return f"!{n}"

    def md_node(self, text: str) -> str:
        n = self.md_count
        self.md_count += 1
        self.metadata.append(f"!{n} = {text}")
        return f"!{n}"

    def add_function(self, header: str, lines: list[str]) -> None:
        """`define <header> { entry: <lines> }`; lines are already indented."""
        self.functions.append(f"define {header} {{\nentry:\n" + "\n".join(lines) + "\n}\n")

    def vector_math(self, op: Operation, width: int) -> str | None:
        """Name of a polynomial vector implementation of op (f32 exp/tanh/erf), emitting it once."""
        generate = POLYNOMIALS.get(type(op))
        if generate is None or llvm_type(op.results[0].type) != "float":
            return None
        name, body, decls = generate(width)
        if name not in self.vmath:
            self.vmath.add(name)
            for d in decls:
                self.declare(d)
            t = f"<{width} x float>"
            self.functions.append(f"define internal {t} @{name}({t} %x) #1 {{\nentry:\n{body}\n}}\n")
        return name

    def declare(self, decl: str) -> None:
        self.declares.add(decl)

    def text(self) -> str:
        parts = sorted(self.declares) + [""] + self.functions + [""] + self.metadata
        return "\n".join(parts) + "\n"


class FunctionEmitter:
    def __init__(self, mod: ModuleEmitter, name: str, in_parallel: bool = False):
        self.mod = mod
        self.name = name
        self.lines: list[str] = []
        self.names: dict[SSAValue, str] = {}
        self.literals: set[SSAValue] = set()
        self.counter = 0
        self.label = "entry"
        self.in_parallel = in_parallel
        self.n_outlined = 0
        self.allocas: list[str] = []  # hoisted to the entry block, so a loop never grows the stack

    def finished_lines(self) -> list[str]:
        return self.allocas + self.lines

    def tmp(self, hint: str = "t") -> str:
        self.counter += 1
        return f"%{hint}{self.counter}"

    def new_label(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append("  " + line)

    def start_block(self, label: str) -> None:
        self.lines.append(f"{label}:")
        self.label = label

    def v(self, value: SSAValue) -> str:
        try:
            return self.names[value]
        except KeyError:
            raise LatheError(f"LLVM backend: value {value} used before it is defined") from None

    def define(self, value: SSAValue, text: str) -> str:
        name = self.tmp("v")
        self.emit(f"{name} = {text}")
        self.names[value] = name
        return name

    # -- ops ------------------------------------------------------------------
    def block(self, block: Block) -> None:
        for op in block.ops:
            self.op(op)

    def op(self, op: Operation) -> None:
        emit = _EMIT.get(type(op))
        if emit is None:
            raise LatheError(f"the LLVM backend cannot lower '{op.name}'")
        emit(self, op)

    def nbytes(self, t: Attribute) -> int:
        assert isinstance(t, MemRefType)
        n = 1
        for d in t.get_shape():
            n *= d
        return n * max(1, bits(t.element_type) // 8)

    def elem_align(self, ref: SSAValue, indices) -> int:
        t = ref.type
        assert isinstance(t, MemRefType)
        return max(1, bits(t.element_type) // 8)

    def gep(self, ref: SSAValue, indices) -> str:
        t = ref.type
        assert isinstance(t, MemRefType)
        shape = list(t.get_shape())
        if not shape:
            return self.v(ref)
        terms = []
        for idx, st in zip(indices, row_major_strides(shape)):
            x = self.v(idx)
            if st == 1:
                terms.append(x)
            elif x == "0":
                continue
            else:
                name = self.tmp("o")
                self.emit(f"{name} = mul nsw i64 {x}, {st}")
                terms.append(name)
        terms = [x for x in terms if x != "0"] or ["0"]
        acc = terms[0]
        for x in terms[1:]:
            name = self.tmp("o")
            self.emit(f"{name} = add nsw i64 {acc}, {x}")
            acc = name
        ptr = self.tmp("p")
        elem = llvm_type(t.element_type)
        elem = "i8" if elem == "i1" else elem
        self.emit(f"{ptr} = getelementptr inbounds {elem}, ptr {self.v(ref)}, i64 {acc}")
        return ptr

    def loop_metadata(self, op: scf.ForOp) -> str:
        ann = annotation_of(op)
        if ann is None or ann.kind.data not in ("vectorize", "unroll"):
            return ""
        props = []
        if ann.kind.data == "vectorize":
            props.append(self.mod.md_node('!{!"llvm.loop.vectorize.enable", i1 true}'))
            width = 1
            while width * 2 <= min(ann.factor.data or 16, 16):
                width *= 2
            props.append(self.mod.md_node(f'!{{!"llvm.loop.vectorize.width", i32 {width}}}'))
        else:
            if ann.factor.data:
                props.append(self.mod.md_node(f'!{{!"llvm.loop.unroll.count", i32 {ann.factor.data}}}'))
            else:
                props.append(self.mod.md_node('!{!"llvm.loop.unroll.full"}'))
        loop_id = self.mod.md(lambda n: f"!{n} = distinct !{{!{n}, {', '.join(props)}}}")
        return f", !llvm.loop {loop_id}"

    def for_loop(self, op: scf.ForOp, lb: str | None = None, ub: str | None = None) -> None:
        if op.iter_args:
            raise LatheError("LLVM backend: scf.for with iter_args is not supported yet")
        lb = lb or self.v(op.lb)
        ub = ub or self.v(op.ub)
        step = self.v(op.step)
        head, body, latch, exit_ = (self.new_label(x) for x in ("for.head", "for.body", "for.latch", "for.exit"))
        pre = self.label
        iv = self.tmp("iv")
        nxt = self.tmp("ivn")
        self.emit(f"br label %{head}")
        self.start_block(head)
        self.emit(f"{iv} = phi i64 [ {lb}, %{pre} ], [ {nxt}, %{latch} ]")
        c = self.tmp("c")
        self.emit(f"{c} = icmp slt i64 {iv}, {ub}")
        self.emit(f"br i1 {c}, label %{body}, label %{exit_}")
        self.start_block(body)
        self.names[op.body.block.args[0]] = iv
        self.block(op.body.block)
        self.emit(f"br label %{latch}")
        self.start_block(latch)
        self.emit(f"{nxt} = add nsw i64 {iv}, {step}")
        self.emit(f"br label %{head}{self.loop_metadata(op)}")
        self.start_block(exit_)

    def _literal_bounds(self, op: scf.ForOp) -> tuple[int, int, int] | None:
        try:
            return int(self.v(op.lb)), int(self.v(op.ub)), int(self.v(op.step))
        except ValueError:
            return None

    def vector_loop(self, op: scf.ForOp) -> bool:
        """Explicit <W x T> code for the loop (see vectorize.py); False to fall back."""
        bounds = self._literal_bounds(op)
        if bounds is None or bounds[2] != 1 or op.iter_args:
            return False
        lb, ub, _ = bounds
        w = vz.vector_width(self.mod.vector_bits, op)
        parts = vector_parts(lb, ub, w)
        plans = [vz.plan(op, width) for _, _, width in parts]
        split = len(parts) != 1 or parts[0][1] != ub
        if not parts or any(p is None for p in plans) or (split and any(p.reductions for p in plans)):
            while w > 1 and (ub - lb) % w:  # one width for the whole loop (a reduction's accumulators)
                w //= 2
            if w < 2 or (planned := vz.plan(op, w)) is None:
                return False
            parts, plans = [(lb, ub, w)], [planned]
        for (start, stop, width), planned in zip(parts, plans, strict=True):
            vz.VectorEmitter(self, op, width, planned).run(str(start), str(stop))
        iv = op.body.block.args[0]
        for k in range(parts[-1][1], ub):  # the last odd lane, scalar
            self.names[iv] = str(k)
            self.literals.add(iv)
            self.block(op.body.block)
        self.literals.discard(iv)
        return True

    def unrolled_loop(self, op: scf.ForOp, factor: int) -> bool:
        """Full unroll of a short constant loop: the body once per iteration."""
        bounds = self._literal_bounds(op)
        if bounds is None or op.iter_args or factor:
            return False
        lb, ub, step = bounds
        trips = range(lb, ub, step)
        if len(trips) > 64:
            return False
        iv = op.body.block.args[0]
        for k in trips:
            self.names[iv] = str(k)
            self.literals.add(iv)
            self.block(op.body.block)
        self.literals.discard(iv)
        return True

    def if_op(self, op: scf.IfOp) -> None:
        then, els, end = self.new_label("if.then"), self.new_label("if.else"), self.new_label("if.end")
        self.emit(f"br i1 {self.v(op.cond)}, label %{then}, label %{els}")
        incoming = []
        for label, region in ((then, op.true_region), (els, op.false_region)):
            self.start_block(label)
            if region.blocks:
                blk = region.block
                self.block(blk)
                y = blk.last_op
                vals = [self.v(x) for x in y.operands] if isinstance(y, scf.YieldOp) else []
            else:
                vals = []
            incoming.append((vals, self.label))
            self.emit(f"br label %{end}")
        self.start_block(end)
        for k, r in enumerate(op.results):
            ty = llvm_type(r.type)
            self.define(
                r, f"phi {ty} [ {incoming[0][0][k]}, %{incoming[0][1]} ], [ {incoming[1][0][k]}, %{incoming[1][1]} ]"
            )

    def parallel_for(self, op: scf.ForOp) -> None:
        """Outline the loop into a worker over a range of iterations, run by lathe_parallel_for
        (parallel_runtime.py), which chunks the trip count dynamically."""
        inner: set[Operation] = set(op.walk())
        captured: list[SSAValue] = []
        for o in op.walk():  # in program order, not the set's: the same IR for the same loop every run
            for v in o.operands:
                owner = v.owner
                defined_inside = (owner in inner) if isinstance(owner, Operation) else (owner.parent_op() in inner)
                if not defined_inside and v not in self.literals and v not in captured:
                    captured.append(v)
        worker = f"{self.name}__par{self.n_outlined}"
        self.n_outlined += 1
        types = [llvm_type(v.type) for v in captured]
        struct_t = "{ " + ", ".join(types) + " }" if types else "{ i8 }"
        ctx = self.tmp("ctx")
        self.emit(f"{ctx} = alloca {struct_t}, align 8")
        for k, v in enumerate(captured):
            p = self.tmp("cp")
            self.emit(f"{p} = getelementptr inbounds {struct_t}, ptr {ctx}, i32 0, i32 {k}")
            self.emit(f"store {types[k]} {self.v(v)}, ptr {p}")
        lb, ub, step = self.v(op.lb), self.v(op.ub), self.v(op.step)
        span, span1, span2, trip = (self.tmp(n) for n in ("span", "span", "span", "trip"))
        self.emit(f"{span} = sub nsw i64 {ub}, {lb}")
        self.emit(f"{span1} = add nsw i64 {span}, {step}")
        self.emit(f"{span2} = sub nsw i64 {span1}, 1")
        self.emit(f"{trip} = sdiv i64 {span2}, {step}")
        self.mod.declare(PARALLEL_FOR_DECL)
        self.emit(f"call void @lathe_parallel_for(ptr @{worker}, ptr {ctx}, i64 {trip})")

        # The body function takes the captured values as parameters so that
        # pointers keep `noalias` (loaded from the context they would not).
        body = FunctionEmitter(self.mod, worker + "_body", in_parallel=True)
        for v in self.literals:
            body.names[v] = self.names[v]
        body.literals = set(self.literals)
        params = []
        for k, v in enumerate(captured):  # (a name no tmp() can produce)
            body.names[v] = f"%cap.{k}"
            attrs = " noalias nocapture" if types[k] == "ptr" else ""
            params.append(f"{types[k]}{attrs} %cap.{k}")
        body.for_loop(op, lb="%lo", ub="%hi")
        body.emit("ret void")
        self.mod.add_function(
            f"internal void @{worker}_body({', '.join(params + ['i64 %lo', 'i64 %hi'])}) #0", body.finished_lines()
        )

        def in_worker(v: SSAValue) -> str:
            return f"%cv{captured.index(v)}" if v in captured else self.v(v)

        lines = []
        args = []
        for k in range(len(captured)):
            lines.append(f"%cp{k} = getelementptr inbounds {struct_t}, ptr %ctx, i32 0, i32 {k}")
            lines.append(f"%cv{k} = load {types[k]}, ptr %cp{k}")
            args.append(f"{types[k]} %cv{k}")
        lb, step = in_worker(op.lb), in_worker(op.step)
        lines += [
            f"%o0 = mul nsw i64 %begin, {step}",
            f"%lo = add nsw i64 {lb}, %o0",
            f"%o1 = mul nsw i64 %end, {step}",
            f"%hi = add nsw i64 {lb}, %o1",
            f"call void @{worker}_body({', '.join(args + ['i64 %lo', 'i64 %hi'])})",
            "ret void",
        ]
        self.mod.add_function(
            f"internal void @{worker}(ptr noalias nocapture readonly %ctx, i64 %begin, i64 %end) #0",
            ["  " + x for x in lines],
        )


# -- op emitters ------------------------------------------------------------------
# One small function per op (or per family that differs only by a table entry in ops.py),
# found in _EMIT by the op's class, as xDSL's backend/llvm/convert_op.py does.

Emit = Callable[[FunctionEmitter, Operation], None]


def _constant(fe: FunctionEmitter, op: arith.ConstantOp) -> None:
    """A constant is no instruction: its literal is written where it is used."""
    val = op.value
    rt = op.result.type
    if isinstance(rt, IndexType | IntegerType):
        text = str(val.value.data)  # type: ignore[union-attr]
        if isinstance(rt, IntegerType) and rt.width.data == 1:
            text = "true" if val.value.data else "false"  # type: ignore[union-attr]
    else:
        text = float_literal(val.value.data, rt)  # type: ignore[union-attr]
    fe.names[op.result] = text
    fe.literals.add(op.result)


def _float_binary(fe: FunctionEmitter, op: Operation) -> None:
    ty = llvm_type(op.results[0].type)
    fe.define(op.results[0], f"{FBIN[type(op)]} {FAST} {ty} {fe.v(op.operands[0])}, {fe.v(op.operands[1])}")


def _negf(fe: FunctionEmitter, op: Operation) -> None:
    ty = llvm_type(op.results[0].type)
    fe.define(op.results[0], f"fneg {ty} {fe.v(op.operands[0])}")


def _int_binary(fe: FunctionEmitter, op: Operation) -> None:
    """Index arithmetic (i64) is `nsw`; a division that could trap is checked."""
    t = type(op)
    ty = llvm_type(op.results[0].type)
    a, b = fe.v(op.operands[0]), fe.v(op.operands[1])
    if t in DIVISIONS and not divisor_is_safe(op):
        fe.define(op.results[0], checked_division(fe, t, ty, ty, a, b))
        return
    flags = " nsw" if IBIN[t] in ("add", "mul", "sub") and ty == "i64" else ""
    fe.define(op.results[0], f"{IBIN[t]}{flags} {ty} {a}, {b}")


def _floordivsi(fe: FunctionEmitter, op: arith.FloorDivSIOp) -> None:
    """sdiv rounds toward zero: one less when the remainder's sign differs from the divisor's."""
    ty = llvm_type(op.result.type)
    a, b = fe.v(op.lhs), fe.v(op.rhs)
    q, r = fe.tmp(), fe.tmp()
    fe.emit(f"{q} = sdiv {ty} {a}, {b}")
    fe.emit(f"{r} = srem {ty} {a}, {b}")
    nz, sa, sb, diff, adj = fe.tmp(), fe.tmp(), fe.tmp(), fe.tmp(), fe.tmp()
    fe.emit(f"{nz} = icmp ne {ty} {r}, 0")
    fe.emit(f"{sa} = icmp slt {ty} {r}, 0")
    fe.emit(f"{sb} = icmp slt {ty} {b}, 0")
    fe.emit(f"{diff} = xor i1 {sa}, {sb}")
    fe.emit(f"{adj} = and i1 {nz}, {diff}")
    d = fe.tmp()
    fe.emit(f"{d} = zext i1 {adj} to {ty}")
    fe.define(op.result, f"sub {ty} {q}, {d}")


def _binary_intrinsic(fe: FunctionEmitter, op: Operation) -> None:
    ty = llvm_type(op.results[0].type)
    name = f"llvm.{BIN_INTRINSIC[type(op)]}.{intrinsic_suffix(op.results[0].type)}"
    fe.mod.declare(f"declare {ty} @{name}({ty}, {ty})")
    flags = f" {MATH_FLAGS}" if ty in FLOAT_TYPES else ""
    fe.define(op.results[0], f"call{flags} {ty} @{name}({ty} {fe.v(op.operands[0])}, {ty} {fe.v(op.operands[1])})")


def _unary_intrinsic(fe: FunctionEmitter, op: Operation) -> None:
    ty = llvm_type(op.results[0].type)
    name = f"llvm.{UN_INTRINSIC[type(op)]}.{intrinsic_suffix(op.results[0].type)}"
    fe.mod.declare(f"declare {ty} @{name}({ty})")
    fe.define(op.results[0], f"call {MATH_FLAGS} {ty} @{name}({ty} {fe.v(op.operands[0])})")


def _libm(fe: FunctionEmitter, op: Operation) -> None:
    ty = llvm_type(op.results[0].type)
    fn = LIBM[type(op)]
    if ty == "half":
        # libm has no half functions (calling erf with a half passed garbage): in float, rounded back
        fe.mod.declare(f"declare float @{fn}f(float)")
        wide, res = fe.tmp("ext"), fe.tmp("libm")
        fe.emit(f"{wide} = fpext half {fe.v(op.operands[0])} to float")
        fe.emit(f"{res} = call {MATH_FLAGS} float @{fn}f(float {wide})")
        fe.define(op.results[0], f"fptrunc float {res} to half")
        return
    name = fn + ("f" if ty == "float" else "")
    fe.mod.declare(f"declare {ty} @{name}({ty})")
    fe.define(op.results[0], f"call {MATH_FLAGS} {ty} @{name}({ty} {fe.v(op.operands[0])})")


def _fma(fe: FunctionEmitter, op: math.FmaOp) -> None:
    ty = llvm_type(op.results[0].type)
    name = f"llvm.fma.{intrinsic_suffix(op.results[0].type)}"
    fe.mod.declare(f"declare {ty} @{name}({ty}, {ty}, {ty})")
    a, b, c = (fe.v(x) for x in op.operands)
    fe.define(op.results[0], f"call {ty} @{name}({ty} {a}, {ty} {b}, {ty} {c})")


def _cmpi(fe: FunctionEmitter, op: arith.CmpiOp) -> None:
    ty = llvm_type(op.lhs.type)
    fe.define(op.result, f"icmp {CMPI[op.predicate.value.data]} {ty} {fe.v(op.lhs)}, {fe.v(op.rhs)}")


def _cmpf(fe: FunctionEmitter, op: arith.CmpfOp) -> None:
    ty = llvm_type(op.lhs.type)
    fe.define(op.result, f"fcmp {CMPF[op.predicate.value.data]} {ty} {fe.v(op.lhs)}, {fe.v(op.rhs)}")


def _select(fe: FunctionEmitter, op: arith.SelectOp) -> None:
    ty = llvm_type(op.result.type)
    c, a, b = (fe.v(x) for x in op.operands)
    fe.define(op.result, f"select i1 {c}, {ty} {a}, {ty} {b}")


def _index_cast(fe: FunctionEmitter, op: arith.IndexCastOp) -> None:
    """index is i64: a cast to or from i64 is no instruction."""
    src, dst = llvm_type(op.input.type), llvm_type(op.result.type)
    sw, dw = int(src[1:]), int(dst[1:])
    if sw == dw:
        fe.names[op.result] = fe.v(op.input)
    else:
        kind = "sext" if dw > sw else "trunc"
        fe.define(op.result, f"{kind} {src} {fe.v(op.input)} to {dst}")


def _cast(fe: FunctionEmitter, op: Operation) -> None:
    src, dst = llvm_type(op.operands[0].type), llvm_type(op.results[0].type)
    fe.define(op.results[0], f"{CASTS[type(op)]} {src} {fe.v(op.operands[0])} to {dst}")


def _load(fe: FunctionEmitter, op: memref.LoadOp) -> None:
    ptr = fe.gep(op.memref, op.indices)
    ty = llvm_type(op.res.type)
    align = fe.elem_align(op.memref, op.indices)
    if ty == "i1":  # bools are bytes in memory (numpy's layout)
        byte = fe.tmp("b")
        fe.emit(f"{byte} = load i8, ptr {ptr}, align 1")
        fe.define(op.res, f"trunc i8 {byte} to i1")
    else:
        fe.define(op.res, f"load {ty}, ptr {ptr}, align {align}")


def _store(fe: FunctionEmitter, op: memref.StoreOp) -> None:
    ptr = fe.gep(op.memref, op.indices)
    ty = llvm_type(op.value.type)
    value = fe.v(op.value)
    if ty == "i1":
        byte = fe.tmp("b")
        fe.emit(f"{byte} = zext i1 {value} to i8")
        ty, value = "i8", byte
    fe.emit(f"store {ty} {value}, ptr {ptr}, align {fe.elem_align(op.memref, op.indices)}")


def _prefetch(fe: FunctionEmitter, op: PrefetchOp) -> None:
    t = op.buffer.type
    assert isinstance(t, MemRefType)
    elem = llvm_type(t.element_type)
    ptr = fe.tmp("p")
    fe.emit(
        f"{ptr} = getelementptr inbounds {'i8' if elem == 'i1' else elem}, ptr {fe.v(op.buffer)}, i64 {fe.v(op.offset)}"
    )
    fe.mod.declare("declare void @llvm.prefetch.p0(ptr, i32, i32, i32)")
    fe.emit(f"call void @llvm.prefetch.p0(ptr {ptr}, i32 0, i32 {op.locality.value.data}, i32 1)")


def _alloc(fe: FunctionEmitter, op: memref.AllocOp) -> None:
    size = fe.nbytes(op.memref.type)
    size = max(ALIGN, -(-size // ALIGN) * ALIGN)
    fe.mod.declare("declare noalias ptr @aligned_alloc(i64, i64)")
    fe.define(op.memref, f"call ptr @aligned_alloc(i64 {ALIGN}, i64 {size})")


def _alloca(fe: FunctionEmitter, op: memref.AllocaOp) -> None:
    t = op.memref.type
    n = 1
    for d in t.get_shape():  # type: ignore[union-attr]
        n *= d
    elem = llvm_type(t.element_type)  # type: ignore[union-attr]
    name = fe.tmp("tile")
    fe.allocas.append(f"  {name} = alloca [{n} x {'i8' if elem == 'i1' else elem}], align {ALIGN}")
    fe.names[op.memref] = name


def _dealloc(fe: FunctionEmitter, op: memref.DeallocOp) -> None:
    fe.mod.declare("declare void @free(ptr)")
    fe.emit(f"call void @free(ptr {fe.v(op.memref)})")


def _copy(fe: FunctionEmitter, op: memref.CopyOp) -> None:
    fe.mod.declare("declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)")
    n = fe.nbytes(op.source.type)
    fe.emit(f"call void @llvm.memcpy.p0.p0.i64(ptr {fe.v(op.destination)}, ptr {fe.v(op.source)}, i64 {n}, i1 false)")


def _for(fe: FunctionEmitter, op: scf.ForOp) -> None:
    """The loop's annotation picks its form: explicit vectors, unrolled, on the pool, or plain."""
    ann = annotation_of(op)
    kind = ann.kind.data if ann is not None else None
    if kind == "vectorize" and fe.vector_loop(op):
        return
    if kind == "unroll" and (tile := tt.plan_tile(fe, op, fe.mod.vector_bits // 32)) is not None:
        tt.emit_tile(fe, tile)
        return
    if kind == "unroll" and fe.unrolled_loop(op, ann.factor.data):  # type: ignore[union-attr]
        return
    if kind == "bind":
        raise LatheError(
            f"the CPU backend cannot run a loop bound to {ann.thread_axis.data} (in @{fe.name})",  # type: ignore[union-attr]
            note="te.bind is for GPU targets; use te.parallel on CPU",
        )
    if kind == "parallel" and fe.mod.parallel and not fe.in_parallel and worth_threads(op):
        fe.parallel_for(op)
    else:
        fe.for_loop(op)


def _if(fe: FunctionEmitter, op: scf.IfOp) -> None:
    fe.if_op(op)


def _yield(fe: FunctionEmitter, op: scf.YieldOp) -> None:
    """Handled by the loop or if that owns it."""


def _return(fe: FunctionEmitter, op: func.ReturnOp) -> None:
    if op.operands:
        raise LatheError("LLVM backend: kernels return through output buffers, not values")
    fe.emit("ret void")


_EMIT: dict[type[Operation], Emit] = {
    arith.ConstantOp: _constant,
    **dict.fromkeys(FBIN, _float_binary),
    arith.NegfOp: _negf,
    **dict.fromkeys(IBIN, _int_binary),
    arith.FloorDivSIOp: _floordivsi,
    **dict.fromkeys(BIN_INTRINSIC, _binary_intrinsic),
    **dict.fromkeys(UN_INTRINSIC, _unary_intrinsic),
    **dict.fromkeys(LIBM, _libm),
    math.FmaOp: _fma,
    arith.CmpiOp: _cmpi,
    arith.CmpfOp: _cmpf,
    arith.SelectOp: _select,
    arith.IndexCastOp: _index_cast,
    **dict.fromkeys(CASTS, _cast),
    memref.LoadOp: _load,
    memref.StoreOp: _store,
    memref.AllocOp: _alloc,
    memref.AllocaOp: _alloca,
    memref.DeallocOp: _dealloc,
    memref.CopyOp: _copy,
    PrefetchOp: _prefetch,
    scf.ForOp: _for,
    scf.IfOp: _if,
    scf.YieldOp: _yield,
    func.ReturnOp: _return,
}


def emit_kernel(mod: ModuleEmitter, f: func.FuncOp) -> None:
    name = f.sym_name.data
    e = FunctionEmitter(mod, name)
    params = []
    for k, arg in enumerate(f.body.block.args):
        if not isinstance(arg.type, MemRefType):
            raise LatheError(f"LLVM backend: kernel @{name} argument {k} is {arg.type}, expected a memref")
        pname = f"%a{k}"
        e.names[arg] = pname
        params.append(f"ptr noalias nocapture align {ARGUMENT_ALIGN} {pname}")
    e.block(f.body.block)
    mod.add_function(f"void @{name}({', '.join(params)}) #0", e.finished_lines())
    # packed entry: void name__packed(ptr args)
    lines = []
    args = []
    for k in range(len(params)):
        lines.append(f"  %pp{k} = getelementptr inbounds ptr, ptr %args, i64 {k}")
        lines.append(f"  %p{k} = load ptr, ptr %pp{k}")
        args.append(f"ptr %p{k}")
    lines.append(f"  call void @{name}({', '.join(args)})")
    lines.append("  ret void")
    mod.add_function(f"void @{name}__packed(ptr %args) #0", lines)


def module_to_llvm_ir(
    module: ModuleOp,
    parallel: bool = True,
    kernels: list[str] | None = None,
    vector_bits: int = 512,
    runtime_for: str | None = None,
) -> str:
    """LLVM IR text for every kernel function in `module` (or those named); with
    `runtime_for` (a triple) the thread pool is included, so an object file stands alone."""
    mod = ModuleEmitter(parallel=parallel, vector_bits=vector_bits)
    for f in module.ops:
        if is_kernel(f) and (kernels is None or f.sym_name.data in kernels):  # type: ignore[union-attr]
            emit_kernel(mod, f)  # type: ignore[arg-type]
    runtime = ""
    if runtime_for is not None:
        mod.declares.discard(PARALLEL_FOR_DECL)
        runtime = runtime_ir(runtime_for)
    return (
        mod.text()
        + runtime
        + 'attributes #0 = { nounwind "frame-pointer"="none" }\nattributes #1 = { nounwind alwaysinline }\n'
    )
