"""Loop-level IR (func/scf/memref/arith/math + loop annotations) → one C99 translation unit.

Every SSA value becomes a C local of its type, declared where it is defined;
each op is emitted by a small function found in `_EMITTERS` by op class (as
xDSL's backend/llvm/convert_op.py does), and an op the table does not know is
a LatheError naming it. Integer ops keep MLIR's two's-complement meaning
through unsigned C arithmetic and the helpers of preamble.py; index values are
int64_t with plain signed arithmetic (the LLVM backend marks index arithmetic
`nsw` too, so both let the compiler assume it does not overflow).

Loop annotations:
  * parallel  — the outermost parallel loop (nested ones run serially) is outlined
                into a function over a range of iterations, run on Lathe's thread
                pool when the library is loaded by Lathe (OpenMP's barrier stalls
                a run whenever another process holds a core: see
                llvm/parallel_runtime.py), else `#pragma omp parallel for` with
                dynamic chunks where the compiler has OpenMP, else serially;
  * vectorize — `#pragma omp simd` where the loop provably has no dependence
                between iterations through memory (see `_simd_safe`), else left
                to the compiler's own (checked) vectorizer;
  * unroll    — `#pragma GCC unroll N` (Clang: `clang loop unroll_count`).
Each distinct kernel is one static function; every kernel name gets an exported
`void NAME__packed(void **args)`, one buffer address per argument.
"""

from __future__ import annotations

import math as pymath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import arith, func, math, memref, scf
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    MemRefType,
    ModuleOp,
    NoneAttr,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue

from lathe.backends.c.indexing import IndexFacts
from lathe.backends.c.preamble import INT_WIDTHS, preamble
from lathe.backends.llvm.parallel_runtime import worth_threads
from lathe.dialects.functions import is_kernel
from lathe.dialects.loop import PrefetchOp, annotation_of, constant_int, row_major_strides
from lathe.errors import LatheError

STACK_LIMIT = 32 * 1024  # bytes: a buffer at most this big is a stack array, else heap
FULL_UNROLL_LIMIT = 64  # trips: `unroll` without a factor unrolls fully only up to this


# -- types ---------------------------------------------------------------------------------


def _int_width(t: Attribute) -> int | None:
    return t.width.data if isinstance(t, IntegerType) else None


def value_type(t: Attribute) -> str:
    """The C type of a value of MLIR type `t`."""
    if isinstance(t, IndexType):
        return "int64_t"
    if isinstance(t, Float32Type):
        return "float"
    if isinstance(t, Float64Type):
        return "double"
    if isinstance(t, Float16Type):
        return "lathe_f16v"
    w = _int_width(t)
    if w == 1:
        return "bool"
    if w in INT_WIDTHS:
        return f"int{w}_t"
    raise LatheError(
        f"the C backend cannot represent type {t}", note="supported: index, i1, i8, i16, i32, i64, f16, f32, f64"
    )


def storage_type(t: Attribute) -> str:
    """The C type of a buffer element: bools are bytes (numpy's layout), halves lathe_f16."""
    if _int_width(t) == 1:
        return "uint8_t"
    if isinstance(t, Float16Type):
        return "lathe_f16"
    return value_type(t)


def _is_float(t: Attribute) -> bool:
    return isinstance(t, Float16Type | Float32Type | Float64Type)


def element_bytes(t: Attribute) -> int:
    if isinstance(t, Float16Type):
        return 2
    if isinstance(t, Float32Type):
        return 4
    if isinstance(t, Float64Type | IndexType):
        return 8
    return max(1, (_int_width(t) or 8) // 8)


def static_shape(t: Attribute, where: str) -> list[int]:
    if not isinstance(t, MemRefType):
        raise LatheError(f"C backend: {where} is {t}, expected a memref")
    shape = list(t.get_shape())
    if any(d < 0 for d in shape):
        raise LatheError(f"C backend: {where} has a dynamic shape ({t}); kernels need static shapes")
    if not isinstance(t.layout, NoneAttr):
        raise LatheError(f"C backend: {where} has a non-identity layout ({t})")
    return shape


def float_literal(v: float, t: Attribute) -> str:
    """Exact: a hexadecimal literal of the value rounded to the type."""
    if isinstance(t, Float16Type):
        v = float(np.float16(v))
    elif isinstance(t, Float32Type):
        v = float(np.float32(v))
    if pymath.isnan(v):
        return "NAN"
    if pymath.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = v.hex()
    return text if isinstance(t, Float64Type) else text + "f"


def int_literal(v: int, t: Attribute) -> str:
    w = 64 if isinstance(t, IndexType) else _int_width(t)
    if w == 1:
        return "true" if v & 1 else "false"
    v = ((v + (1 << (w - 1))) % (1 << w)) - (1 << (w - 1))  # the signless bits, read as signed
    if w == 64:
        return str(v) if abs(v) < 1 << 31 else "INT64_MIN" if v == -(1 << 63) else f"INT64_C({v})"
    if w == 32:
        return "INT32_MIN" if v == -(1 << 31) else str(v)
    return f"((int{w}_t){v})"


# -- symbols -------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def packed_symbol(kernel: str) -> str:
    """The exported entry of kernel `kernel`: NAME__packed, any character C does not allow
    in a name spelled _xHH_."""
    if not _IDENT.fullmatch(kernel):
        kernel = "".join(c if c.isalnum() and c.isascii() or c == "_" else f"_x{ord(c):02x}_" for c in kernel)
        if kernel[0].isdigit():
            kernel = "_" + kernel
    return f"{kernel}__packed"


# -- kernels -------------------------------------------------------------------------------


@dataclass
class _Scope:
    heap: list[str] = field(default_factory=list)  # buffers to free when the scope closes


class KernelEmitter:
    """One kernel function's body, statement by statement."""

    def __init__(self, name: str, cname: str, functions: list[str]):
        self.name = name
        self.cname = cname  # the C function being written
        self.functions = functions  # functions it needs, written before it (outlined loop bodies)
        self.n_outlined = 0
        self.lines: list[str] = []
        self.names: dict[SSAValue, str] = {}
        self.counter = 0
        self.scopes: list[_Scope] = [_Scope()]
        self.in_parallel = False
        self.facts = IndexFacts()

    # -- plumbing
    def line(self, text: str) -> None:
        self.lines.append("    " * len(self.scopes) + text)

    def fresh(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def v(self, value: SSAValue) -> str:
        try:
            return self.names[value]
        except KeyError:
            raise LatheError(f"C backend: in @{self.name}, a value is used before it is defined") from None

    def define(self, result: SSAValue, expr: str) -> None:
        name = self.fresh()
        self.line(f"const {value_type(result.type)} {name} = {expr};")
        self.names[result] = name

    def fround(self, t: Attribute, expr: str) -> str:
        """`expr`, rounded to half when `t` is f16 (a no-op where _Float16 assignments round)."""
        return f"LATHE_F16R({expr})" if isinstance(t, Float16Type) else expr

    def open_scope(self, header: str) -> None:
        self.line(f"{header} {{" if header else "{")
        self.scopes.append(_Scope())

    def close_scope(self) -> None:
        self.free(self.scopes[-1])
        self.scopes.pop()
        self.line("}")

    def free(self, scope: _Scope) -> None:
        for buf in scope.heap:
            self.line(f"lathe_free({buf});")
        scope.heap.clear()

    def block(self, block: Block) -> None:
        for op in block.ops:
            self.op(op)

    def op(self, op: Operation) -> None:
        emit = _EMITTERS.get(type(op))
        if emit is None:
            raise LatheError(f"the C backend cannot lower '{op.name}' (in kernel @{self.name})")
        emit(self, op)

    # -- values seen as signed or unsigned (MLIR integers are signless)
    def signed(self, value: SSAValue) -> str:
        x = self.v(value)
        return f"(-(int)({x}))" if _int_width(value.type) == 1 else x

    def unsigned(self, value: SSAValue) -> str:
        x, t = self.v(value), value.type
        if isinstance(t, IndexType):
            return f"((uint64_t)({x}))"
        w = _int_width(t)
        return f"((unsigned)({x}))" if w == 1 else f"((uint{w}_t)({x}))"

    def wrap(self, t: Attribute, expr: str) -> str:
        """An integer expression computed in a wider or unsigned type, brought back to `t`."""
        w = _int_width(t)
        if w == 1:
            return f"(bool)(({expr}) & 1)"
        return f"(int{w}_t)({expr})" if w is not None else expr

    def element(self, ref: SSAValue, indices) -> str:
        """The C lvalue of ref[indices]: the index linearised with the static row-major strides."""
        shape = static_shape(ref.type, f"a buffer of @{self.name}")
        terms = []
        for idx, st in zip(indices, row_major_strides(shape)):
            x = self.v(idx)
            if x == "0":
                continue
            terms.append(x if st == 1 else f"{x} * {st}")
        return f"{self.v(ref)}[{' + '.join(terms) or '0'}]"


# -- op emitters ---------------------------------------------------------------------------

Emit = Callable[[KernelEmitter, Operation], None]


def _constant(e: KernelEmitter, op: arith.ConstantOp) -> None:
    t, val = op.result.type, op.value
    if isinstance(t, IndexType | IntegerType):
        e.names[op.result] = int_literal(val.value.data, t)  # type: ignore[union-attr]
    elif _is_float(t):
        e.names[op.result] = float_literal(val.value.data, t)  # type: ignore[union-attr]
    else:
        raise LatheError(f"C backend: cannot emit the constant {val} (in @{e.name})")


def _float_binary(symbol: str) -> Emit:
    def emit(e: KernelEmitter, op: Operation) -> None:
        a, b = (e.v(x) for x in op.operands)
        e.define(op.results[0], e.fround(op.results[0].type, f"{a} {symbol} {b}"))

    return emit


def _negf(e: KernelEmitter, op: Operation) -> None:
    e.define(op.results[0], f"-{e.v(op.operands[0])}")


def _int_binary(symbol: str) -> Emit:
    """Wrapping arithmetic: signed for index (never overflows), unsigned for data integers."""

    def emit(e: KernelEmitter, op: Operation) -> None:
        t = op.results[0].type
        if isinstance(t, IndexType):
            a, b = (e.v(x) for x in op.operands)
            if None not in (constant_int(x) for x in op.operands):
                a = f"(int64_t){a}"  # two literals: not in int arithmetic
            e.define(op.results[0], f"{a} {symbol} {b}")
            return
        w = _int_width(t)
        wide = "uint64_t" if w == 64 else "uint32_t"
        a, b = (f"({wide}){e.unsigned(x)}" for x in op.operands)
        e.define(op.results[0], e.wrap(t, f"{a} {symbol} {b}"))

    return emit


def _bitwise(symbol: str) -> Emit:
    def emit(e: KernelEmitter, op: Operation) -> None:
        t = op.results[0].type
        expr = f"{e.v(op.operands[0])} {symbol} {e.v(op.operands[1])}"
        e.define(op.results[0], expr if isinstance(t, IndexType) else f"({value_type(t)})({expr})")

    return emit


# index arithmetic by a positive constant (every index div/rem te emits): plain C, which the
# compiler strength-reduces and vectorizes; otherwise the guarded helper.
_INDEX_BY_CONSTANT = {
    "divsi": "{a} / {c}",
    "remsi": "{a} % {c}",
    "divui": "(int64_t)((uint64_t){a} / {c})",
    "remui": "(int64_t)((uint64_t){a} % {c})",
    "floordivsi": "({a} / {c} - ({a} % {c} < 0))",
    "ceildivsi": "({a} / {c} + ({a} % {c} > 0))",
    "ceildivui": "(int64_t)(((uint64_t){a} + {c} - 1) / {c})",
}


def _int_helper(kind: str) -> Emit:
    """Division, remainder and shifts: helpers that keep MLIR's meaning without C's UB."""

    def emit(e: KernelEmitter, op: Operation) -> None:
        t = op.results[0].type
        w = 64 if isinstance(t, IndexType) else _int_width(t)
        a, b = (e.v(x) for x in op.operands)
        c = constant_int(op.operands[1])
        if isinstance(t, IndexType) and c is not None and c > 0 and kind in _INDEX_BY_CONSTANT:
            if not _simpler_divrem(e, op, kind, c):
                e.define(op.results[0], _INDEX_BY_CONSTANT[kind].format(a=a, c=c))
            return
        if w == 1:
            raise LatheError(f"C backend: '{op.name}' on i1 is not supported (in @{e.name})")
        e.define(op.results[0], f"lathe_{kind}_i{w}({a}, {b})")

    return emit


def _simpler_divrem(e: KernelEmitter, op: Operation, kind: str, c: int) -> bool:
    """base/c and j for (base + j)/c and (base + j)%c, where indexing.py knows that c divides
    base and 0 <= j < c: contiguous accesses the C compiler can vectorize, not gathers."""
    found = e.facts.divrem(kind, op.operands[0], c)
    if found is None:
        return False
    what, value = found
    result = op.results[0]
    if what == "zero":
        e.names[result] = "0"
    elif what == "rem":
        e.names[result] = e.v(value)  # type: ignore[arg-type]
    else:
        mul = value.owner  # type: ignore[union-attr]
        k = constant_int(mul.rhs) if isinstance(mul, arith.MuliOp) else None
        if k is not None and k % c == 0:
            e.define(result, e.v(mul.lhs) if k == c else f"{e.v(mul.lhs)} * {k // c}")
        else:
            e.define(result, f"{e.v(value)} / {c}")  # type: ignore[arg-type]
    return True


_CMPI = {  # predicate number → (C operator, unsigned?)
    0: ("==", False),
    1: ("!=", False),
    2: ("<", False),
    3: ("<=", False),
    4: (">", False),
    5: (">=", False),
    6: ("<", True),
    7: ("<=", True),
    8: (">", True),
    9: (">=", True),
}


def _cmpi(e: KernelEmitter, op: arith.CmpiOp) -> None:
    symbol, unsigned = _CMPI[op.predicate.value.data]
    view = e.unsigned if unsigned else e.signed
    e.define(op.result, f"{view(op.lhs)} {symbol} {view(op.rhs)}")


# arith.cmpf predicates, exactly as MLIR defines them: ordered ones are false on NaN,
# unordered ones true; C's <, <=, >, >=, == are ordered and != is unordered.
_CMPF = [
    "false",
    "{a} == {b}",
    "{a} > {b}",
    "{a} >= {b}",
    "{a} < {b}",
    "{a} <= {b}",
    "({a} < {b} || {a} > {b})",
    "!isunordered({a}, {b})",
    "!({a} < {b} || {a} > {b})",
    "!({a} <= {b})",
    "!({a} < {b})",
    "!({a} >= {b})",
    "!({a} > {b})",
    "{a} != {b}",
    "isunordered({a}, {b})",
    "true",
]


def _cmpf(e: KernelEmitter, op: arith.CmpfOp) -> None:
    e.define(op.result, _CMPF[op.predicate.value.data].format(a=e.v(op.lhs), b=e.v(op.rhs)))


def _select(e: KernelEmitter, op: arith.SelectOp) -> None:
    c, a, b = (e.v(x) for x in op.operands)
    e.define(op.result, f"{c} ? {a} : {b}")


def _int_minmax(symbol: str, unsigned: bool) -> Emit:
    def emit(e: KernelEmitter, op: Operation) -> None:
        view = e.unsigned if unsigned else e.signed
        a, b = op.operands
        e.define(op.results[0], f"{view(a)} {symbol} {view(b)} ? {e.v(a)} : {e.v(b)}")

    return emit


def _suffix(t: Attribute) -> str:
    """libm's suffix: f for float (and half, computed in float), none for double."""
    return "" if isinstance(t, Float64Type) else "f"


def _float_minmax(kind: str) -> Emit:
    """maximumf/minimumf propagate NaN (a helper); maxnumf/minnumf return the other operand (libm)."""

    def emit(e: KernelEmitter, op: Operation) -> None:
        t = op.results[0].type
        a, b = (e.v(x) for x in op.operands)
        if kind in ("maximumf", "minimumf"):
            call = f"lathe_{kind}_{'f64' if isinstance(t, Float64Type) else 'f32'}({a}, {b})"
        else:
            call = f"f{kind[:3]}{_suffix(t)}({a}, {b})"
        e.define(op.results[0], call)

    return emit


def _libm(fn: str) -> Emit:
    def emit(e: KernelEmitter, op: Operation) -> None:
        t = op.results[0].type
        args = ", ".join(e.v(x) for x in op.operands)
        e.define(op.results[0], e.fround(t, f"{fn}{_suffix(t)}({args})"))

    return emit


def _rsqrt(e: KernelEmitter, op: Operation) -> None:
    t = op.results[0].type
    one = "1.0" if isinstance(t, Float64Type) else "1.0f"
    e.define(op.results[0], e.fround(t, f"{one} / sqrt{_suffix(t)}({e.v(op.operands[0])})"))


def _absi(e: KernelEmitter, op: Operation) -> None:
    t, x = op.results[0].type, op.operands[0]
    if isinstance(t, IndexType):
        e.define(op.results[0], f"{e.v(x)} < 0 ? -{e.v(x)} : {e.v(x)}")
        return
    w = _int_width(t)
    wide = "uint64_t" if w == 64 else "uint32_t"
    e.define(op.results[0], e.wrap(t, f"{e.signed(x)} < 0 ? 0u - ({wide}){e.unsigned(x)} : ({wide}){e.unsigned(x)}"))


# -- casts


def _float_to_int(signed: bool) -> Emit:
    """fptosi/fptoui without UB: through int32 (widths up to 32) or int64, as x86 does."""

    def emit(e: KernelEmitter, op: Operation) -> None:
        src, dst = op.operands[0].type, op.results[0].type
        w = 64 if isinstance(dst, IndexType) else _int_width(dst)
        x = e.v(op.operands[0])
        s = "f64" if isinstance(src, Float64Type) else "f32"
        if not signed and w == 64:
            expr = f"lathe_f64_to_u64({x})"
        elif not signed:
            expr = f"lathe_{s}_to_i64({x})"
        else:
            expr = f"lathe_{s}_to_i{64 if w == 64 else 32}({x})"
        e.define(op.results[0], expr if w in (32, 64) and signed else e.wrap(dst, f"(uint64_t){expr}"))

    return emit


def _int_to_float(signed: bool) -> Emit:
    def emit(e: KernelEmitter, op: Operation) -> None:
        x = op.operands[0]
        t = op.results[0].type
        view = e.signed(x) if signed else e.unsigned(x)
        e.define(op.results[0], e.fround(t, f"({value_type(t)}){view}"))

    return emit


def _float_cast(e: KernelEmitter, op: Operation) -> None:
    t = op.results[0].type
    e.define(op.results[0], e.fround(t, f"({value_type(t)}){e.v(op.operands[0])}"))


def _int_extend(signed: bool) -> Emit:
    def emit(e: KernelEmitter, op: Operation) -> None:
        x = op.operands[0]
        t = op.results[0].type
        e.define(op.results[0], f"({value_type(t)}){e.signed(x) if signed else e.unsigned(x)}")

    return emit


def _int_truncate(e: KernelEmitter, op: Operation) -> None:
    e.define(op.results[0], e.wrap(op.results[0].type, e.unsigned(op.operands[0])))


def _index_cast(e: KernelEmitter, op: Operation) -> None:
    """index ↔ integer: sign-extends when widening, wraps when narrowing."""
    x, t = op.operands[0], op.results[0].type
    if isinstance(t, IndexType):
        e.define(op.results[0], f"(int64_t){e.signed(x)}")
    else:
        e.define(op.results[0], e.wrap(t, e.unsigned(x)))


# -- memory


def _load(e: KernelEmitter, op: memref.LoadOp) -> None:
    t = op.res.type
    cell = e.element(op.memref, op.indices)
    if _int_width(t) == 1:
        e.define(op.res, f"{cell} != 0")
    elif isinstance(t, Float16Type):
        e.define(op.res, f"LATHE_LDH({cell})")
    else:
        e.define(op.res, cell)


def _store(e: KernelEmitter, op: memref.StoreOp) -> None:
    t, x = op.value.type, e.v(op.value)
    if _int_width(t) == 1:
        x = f"(uint8_t){x}"
    elif isinstance(t, Float16Type):
        x = f"LATHE_STH({x})"
    e.line(f"{e.element(op.memref, op.indices)} = {x};")


def _prefetch(e: KernelEmitter, op: PrefetchOp) -> None:
    e.line(f"__builtin_prefetch(&{e.v(op.buffer)}[{e.v(op.offset)}], 0, {op.locality.value.data});")


def _alloc(e: KernelEmitter, op: Operation) -> None:
    """alloc and alloca alike: a stack array when small, else heap freed when its C scope ends."""
    ref = op.results[0]
    shape = static_shape(ref.type, f"a buffer allocated in @{e.name}")
    elem = ref.type.element_type  # type: ignore[union-attr]
    count = max(1, pymath.prod(shape))
    name = e.fresh("m")
    ctype = storage_type(elem)
    if count * element_bytes(elem) <= STACK_LIMIT:
        e.line(f"{ctype} {name}[{count}] LATHE_ALIGN64;")
    else:
        e.line(f"{ctype} *restrict {name} = ({ctype} *)lathe_alloc({count * element_bytes(elem)});")
        e.scopes[-1].heap.append(name)
    e.names[ref] = name


def _dealloc(e: KernelEmitter, op: memref.DeallocOp) -> None:
    """Free now when the buffer belongs to this scope; otherwise its scope's end frees it."""
    name = e.v(op.memref)
    heap = e.scopes[-1].heap
    if name in heap:
        heap.remove(name)
        e.line(f"lathe_free({name});")


def _copy(e: KernelEmitter, op: memref.CopyOp) -> None:
    shape = static_shape(op.source.type, f"a copied buffer in @{e.name}")
    nbytes = max(1, pymath.prod(shape)) * element_bytes(op.source.type.element_type)  # type: ignore[union-attr]
    e.line(f"memcpy({e.v(op.destination)}, {e.v(op.source)}, {nbytes});")


# -- control flow


def declare_carried(e: KernelEmitter, values, inits) -> list[str]:
    names = []
    for v, init in zip(values, inits):
        name = e.fresh("r")
        e.line(f"{value_type(v.type)} {name}{' = ' + e.v(init) if init is not None else ''};")
        names.append(name)
    return names


def assign_yield(e: KernelEmitter, block: Block, targets: list[str]) -> None:
    """scf.yield into the carried variables, through temporaries (a yield may swap them)."""
    y = block.last_op
    if not targets or not isinstance(y, scf.YieldOp):
        return
    temps = []
    for value in y.operands:
        t = e.fresh("y")
        e.line(f"const {value_type(value.type)} {t} = {e.v(value)};")
        temps.append(t)
    for target, t in zip(targets, temps):
        e.line(f"{target} = {t};")


def _for(e: KernelEmitter, op: scf.ForOp) -> None:
    ann = annotation_of(op)
    kind = ann.kind.data if ann is not None else None
    if kind == "bind":
        raise LatheError(
            f"the CPU backend cannot run a loop bound to {ann.thread_axis.data} (in @{e.name}, target c)",  # type: ignore[union-attr]
            note="te.bind is for GPU targets; use te.parallel on CPU",
        )
    if kind == "parallel" and not e.in_parallel and not op.iter_args and worth_threads(op):
        _parallel_for(e, op)
        return
    lb, ub, step = e.v(op.lb), e.v(op.ub), e.v(op.step)
    carried = declare_carried(e, op.results, op.iter_args)
    for pragma in loop_pragmas(op, kind):
        e.line(pragma)
    iv = e.fresh("i")
    body = op.body.block
    e.names[body.args[0]] = iv
    for arg, name in zip(body.args[1:], carried):
        e.names[arg] = name
    e.open_scope(f"for (int64_t {iv} = {lb}; {iv} < {ub}; {iv} += {step})")
    e.block(body)
    assign_yield(e, body, carried)
    e.close_scope()
    for r, name in zip(op.results, carried):
        e.names[r] = name


_VARIABLE = re.compile(r"[a-z]\d+")  # the names fresh() gives and kernel arguments; not literals


def _parallel_for(e: KernelEmitter, op: scf.ForOp) -> None:
    """The loop becomes a function over a range of its iterations, `f(ctx, begin, end)`, run by
    lathe_parallel (preamble.py: Lathe's thread pool, else OpenMP, else serially); the values it
    uses from outside travel in a struct and keep their names, pointers their `restrict`."""
    inside = set(op.walk())
    captured: list[SSAValue] = []
    for o in inside:
        for v in o.operands:
            owner = v.owner
            outside = owner not in inside if isinstance(owner, Operation) else owner.parent_op() not in inside
            if outside and v not in captured and _VARIABLE.fullmatch(e.v(v)):
                captured.append(v)
    captured.sort(key=lambda v: int(e.v(v)[1:]) + (0 if e.v(v)[0] == "a" else 1 << 40))
    fn = f"{e.cname}_par{e.n_outlined}"
    e.n_outlined += 1
    body = KernelEmitter(e.name, fn, e.functions)
    body.names, body.counter, body.facts, body.in_parallel = dict(e.names), e.counter, e.facts, True
    fields = []
    body.line(f"const struct {fn}_ctx *ctx = (const struct {fn}_ctx *)ctx_;")
    for v in captured:
        name = e.v(v)
        if isinstance(v.type, MemRefType):
            ctype = storage_type(v.type.element_type)
            fields.append(f"{ctype} *{name};")
            body.line(f"{ctype} *restrict {name} = LATHE_ASSUME_ALIGNED(ctx->{name});")
        else:
            fields.append(f"{value_type(v.type)} {name};")
            body.line(f"const {value_type(v.type)} {name} = ctx->{name};")
    lb, ub, step = e.v(op.lb), e.v(op.ub), e.v(op.step)
    iv = body.fresh("i")
    body.names[op.body.block.args[0]] = iv
    body.open_scope(f"for (int64_t {iv} = {lb} + begin * {step}; {iv} < {lb} + end * {step}; {iv} += {step})")
    body.block(op.body.block)
    body.close_scope()
    e.counter = body.counter
    e.functions.append(
        f"struct {fn}_ctx {{ {' '.join(fields) or 'char unused;'} }};\n"
        f"static void {fn}(void *ctx_, int64_t begin, int64_t end) {{\n" + "\n".join(body.lines) + "\n}\n"
    )
    ctx = e.fresh("ctx")
    e.open_scope("")
    e.line(f"struct {fn}_ctx {ctx} = {{ {', '.join(e.v(v) for v in captured) or '0'} }};")
    e.line(f"lathe_parallel({fn}, &{ctx}, ({ub} - {lb} + {step} - 1) / {step});")
    e.close_scope()


def loop_pragmas(op: scf.ForOp, kind: str | None) -> list[str]:
    if kind == "vectorize":
        return ["#pragma omp simd" if _simd_safe(op) else "LATHE_VECTORIZE"]
    if kind == "unroll":
        factor = annotation_of(op).factor.data  # type: ignore[union-attr]
        if not factor:
            bounds = [constant_int(v) for v in (op.lb, op.ub, op.step)]
            if None in bounds or bounds[2] <= 0:  # type: ignore[operator]
                return []
            factor = len(range(*bounds))  # type: ignore[arg-type]
            if not 1 < factor <= FULL_UNROLL_LIMIT:
                return []
        return [f"LATHE_UNROLL({factor})"]
    return []


def _simd_safe(loop: scf.ForOp) -> bool:
    """May the iterations run as SIMD lanes? Only if no iteration reads or writes what
    another one writes: a straight-line body, every buffer it stores to stored at one
    index that advances by a non-zero stride with the induction variable, and read (if at
    all) only at that same index. Anything else is left to the compiler's own checks."""
    body = loop.body.block
    if loop.iter_args:
        return False
    stores: dict[SSAValue, list] = {}
    for op in body.ops:
        if op.regions:
            return False
        if isinstance(op, memref.StoreOp):
            stores.setdefault(op.memref, []).append(list(op.indices))
    for index_lists in stores.values():
        first = index_lists[0]
        if any(ix != first for ix in index_lists) or not _advances(first, body):
            return False
    return all(
        list(op.indices) == stores[op.memref][0]
        for op in body.ops
        if isinstance(op, memref.LoadOp) and op.memref in stores
    )


def _advances(indices: list[SSAValue], body: Block) -> bool:
    """The last index is iv·s + (invariant) with s ≠ 0 and the others invariant."""
    if not indices:
        return False
    *outer, last = indices
    return all(_stride(i, body) == 0 for i in outer) and _stride(last, body) not in (0, None)


def _stride(v: SSAValue, body: Block) -> int | None:
    """How much `v` grows per iteration when it is affine in the induction variable; None if not."""
    if v is body.args[0]:
        return 1
    owner = v.owner
    if not isinstance(owner, Operation) or owner.parent_block() is not body:
        return 0  # defined outside the loop (or a block argument of an enclosing one)
    if isinstance(owner, arith.ConstantOp):
        return 0
    if isinstance(owner, arith.AddiOp | arith.SubiOp):
        a, b = (_stride(x, body) for x in owner.operands)
        if a is None or b is None:
            return None
        return a + b if isinstance(owner, arith.AddiOp) else a - b
    if isinstance(owner, arith.MuliOp):
        a, b = (_stride(x, body) for x in owner.operands)
        ca, cb = (constant_int(x) for x in owner.operands)
        if a == 0 and b == 0:
            return 0
        if a is not None and cb is not None:
            return a * cb
        if b is not None and ca is not None:
            return b * ca
        return None
    if isinstance(owner, arith.IndexCastOp):
        return _stride(owner.operands[0], body)
    strides = [_stride(x, body) for x in owner.operands]
    return 0 if all(s == 0 for s in strides) and not isinstance(owner, memref.LoadOp) else None


def _if(e: KernelEmitter, op: scf.IfOp) -> None:
    results = declare_carried(e, op.results, [None] * len(op.results))
    e.open_scope(f"if ({e.v(op.cond)})")
    e.block(op.true_region.block)
    assign_yield(e, op.true_region.block, results)
    e.close_scope()
    if op.false_region.blocks:
        e.open_scope("else")
        e.block(op.false_region.block)
        assign_yield(e, op.false_region.block, results)
        e.close_scope()
    for r, name in zip(op.results, results):
        e.names[r] = name


def _yield(e: KernelEmitter, op: Operation) -> None:
    """Handled by the loop or if that owns it."""


def _return(e: KernelEmitter, op: func.ReturnOp) -> None:
    if op.operands:
        raise LatheError(f"C backend: kernel @{e.name} returns values; kernels return through output buffers")
    for scope in reversed(e.scopes):
        e.free(scope)
    e.line("return;")


_EMITTERS: dict[type[Operation], Emit] = {
    arith.ConstantOp: _constant,
    arith.AddfOp: _float_binary("+"),
    arith.SubfOp: _float_binary("-"),
    arith.MulfOp: _float_binary("*"),
    arith.DivfOp: _float_binary("/"),
    arith.NegfOp: _negf,
    arith.AddiOp: _int_binary("+"),
    arith.SubiOp: _int_binary("-"),
    arith.MuliOp: _int_binary("*"),
    arith.AndIOp: _bitwise("&"),
    arith.OrIOp: _bitwise("|"),
    arith.XOrIOp: _bitwise("^"),
    arith.DivSIOp: _int_helper("divsi"),
    arith.RemSIOp: _int_helper("remsi"),
    arith.DivUIOp: _int_helper("divui"),
    arith.RemUIOp: _int_helper("remui"),
    arith.FloorDivSIOp: _int_helper("floordivsi"),
    arith.CeilDivSIOp: _int_helper("ceildivsi"),
    arith.CeilDivUIOp: _int_helper("ceildivui"),
    arith.ShLIOp: _int_helper("shli"),
    arith.ShRSIOp: _int_helper("shrsi"),
    arith.ShRUIOp: _int_helper("shrui"),
    arith.CmpiOp: _cmpi,
    arith.CmpfOp: _cmpf,
    arith.SelectOp: _select,
    arith.MaxSIOp: _int_minmax(">", False),
    arith.MinSIOp: _int_minmax("<", False),
    arith.MaxUIOp: _int_minmax(">", True),
    arith.MinUIOp: _int_minmax("<", True),
    arith.MaximumfOp: _float_minmax("maximumf"),
    arith.MinimumfOp: _float_minmax("minimumf"),
    arith.MaxnumfOp: _float_minmax("maxnumf"),
    arith.MinnumfOp: _float_minmax("minnumf"),
    arith.SIToFPOp: _int_to_float(True),
    arith.UIToFPOp: _int_to_float(False),
    arith.FPToSIOp: _float_to_int(True),
    arith.FPToUIOp: _float_to_int(False),
    arith.ExtFOp: _float_cast,
    arith.TruncFOp: _float_cast,
    arith.ExtSIOp: _int_extend(True),
    arith.ExtUIOp: _int_extend(False),
    arith.TruncIOp: _int_truncate,
    arith.IndexCastOp: _index_cast,
    math.ExpOp: _libm("exp"),
    math.Exp2Op: _libm("exp2"),
    math.ExpM1Op: _libm("expm1"),
    math.LogOp: _libm("log"),
    math.Log2Op: _libm("log2"),
    math.Log10Op: _libm("log10"),
    math.Log1pOp: _libm("log1p"),
    math.SqrtOp: _libm("sqrt"),
    math.RsqrtOp: _rsqrt,
    math.CbrtOp: _libm("cbrt"),
    math.AbsFOp: _libm("fabs"),
    math.AbsIOp: _absi,
    math.FloorOp: _libm("floor"),
    math.CeilOp: _libm("ceil"),
    math.RoundOp: _libm("round"),
    math.RoundEvenOp: _libm("rint"),
    math.TruncOp: _libm("trunc"),
    math.TanhOp: _libm("tanh"),
    math.SinhOp: _libm("sinh"),
    math.CoshOp: _libm("cosh"),
    math.SinOp: _libm("sin"),
    math.CosOp: _libm("cos"),
    math.TanOp: _libm("tan"),
    math.AsinOp: _libm("asin"),
    math.AcosOp: _libm("acos"),
    math.AtanOp: _libm("atan"),
    math.Atan2Op: _libm("atan2"),
    math.AsinhOp: _libm("asinh"),
    math.AcoshOp: _libm("acosh"),
    math.AtanhOp: _libm("atanh"),
    math.ErfOp: _libm("erf"),
    math.PowFOp: _libm("pow"),
    math.CopySignOp: _libm("copysign"),
    math.FmaOp: _libm("fma"),
    memref.LoadOp: _load,
    memref.StoreOp: _store,
    memref.AllocOp: _alloc,
    memref.AllocaOp: _alloc,
    memref.DeallocOp: _dealloc,
    memref.CopyOp: _copy,
    PrefetchOp: _prefetch,
    scf.ForOp: _for,
    scf.IfOp: _if,
    scf.YieldOp: _yield,
    func.ReturnOp: _return,
}


# -- the translation unit ------------------------------------------------------------------


def _kernel_function(f: func.FuncOp, cname: str) -> str:
    """The kernel's C function, after the functions its parallel loops were outlined into."""
    name = f.sym_name.data
    functions: list[str] = []
    e = KernelEmitter(name, cname, functions)
    params = []
    for k, arg in enumerate(f.body.block.args):
        static_shape(arg.type, f"argument {k} of kernel @{name}")
        ctype = storage_type(arg.type.element_type)  # type: ignore[union-attr]
        params.append(f"{ctype} *restrict a{k}_")
        e.line(f"{ctype} *restrict a{k} = LATHE_ASSUME_ALIGNED(a{k}_);")
        e.names[arg] = f"a{k}"
    e.block(f.body.block)
    return (
        "".join(functions) + f"static void {cname}({', '.join(params) or 'void'}) {{\n" + "\n".join(e.lines) + "\n}\n"
    )


def _packed_entry(f: func.FuncOp, cname: str) -> str:
    args = ", ".join(f"args[{k}]" for k in range(len(f.body.block.args)))
    return f"void {packed_symbol(f.sym_name.data)}(void **args) {{ {cname}({args}); }}\n"


@dataclass
class CSource:
    text: str
    kernels: list[str]  # kernel names; each has an exported packed_symbol(name)

    def header(self) -> str:
        decls = "".join(f"void {packed_symbol(k)}(void **args);\n" for k in self.kernels)
        return (
            "/* Lathe kernels: each takes one buffer address per argument. */\n#ifndef LATHE_KERNELS_H\n"
            '#define LATHE_KERNELS_H\n#ifdef __cplusplus\nextern "C" {\n#endif\n'
            "void lathe_c_set_num_threads(int n);\n" + decls + "#ifdef __cplusplus\n}\n#endif\n#endif\n"
        )


def emit_module(module: ModuleOp, key: Callable[[func.FuncOp], str]) -> CSource:
    """The C source of every kernel of `module`; kernels with equal `key` (structurally
    identical, like a BERT's twelve layers) share one function."""
    kernels = [f for f in module.ops if isinstance(f, func.FuncOp) and is_kernel(f)]
    functions: dict[str, str] = {}  # key → C name
    parts = [preamble()]
    entries = []
    for f in kernels:
        k = key(f)
        if k not in functions:
            functions[k] = f"lathe_k{len(functions)}"
            parts.append(f"/* @{f.sym_name.data} */\n" + _kernel_function(f, functions[k]))
        entries.append(_packed_entry(f, functions[k]))
    return CSource("\n".join(parts) + "\n" + "".join(entries), [f.sym_name.data for f in kernels])
