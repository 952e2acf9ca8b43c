"""lower-graph-to-te: each graph op in a kernel becomes one or more te.computes.

The compute definitions here are Lathe's TOPI: one function per op family,
written with the te_builder DSL. An op lowers to a list of stages, the last
of which is its result (softmax: max, sum of exp, normalise). Out-of-bounds
reads never happen: padding and windows read a clamped index and select the
pad value, so every stage stays a pure function of its indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, f64, i32, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import Rewriter

from lathe.dialects import dtypes, graph, te
from lathe.dialects.functions import KERNEL_ATTR, defined_functions, is_compute, is_kernel
from lathe.dialects.graph import is_float, shape_of
from lathe.errors import LatheError
from lathe.lowering import te_builder as tb
from lathe.lowering.anchors import (
    CONV2D_NCHW_AXES,
    CONV2D_NHWC_AXES,
    CONV2D_REDUCE_AXES,
    POOL2D_NCHW_AXES,
    POOL2D_NHWC_AXES,
    POOL2D_REDUCE_AXES,
    ROLE_DEPTHWISE,
    ROLE_PAD,
    WINOGRAD_INPUT_AXES,
    WINOGRAD_INPUT_ROWS_AXES,
    WINOGRAD_OUTPUT_AXES,
    WINOGRAD_OUTPUT_ROWS_AXES,
)
from lathe.lowering.te_builder import Expr, Tensor, broadcast_index, compute, index, select

Stages = list[te.ComputeOp]


def _name(op: Operation) -> str:
    return "T_" + op.relay_name().replace(".", "_")


def _in_range(i: Expr, lo: int, hi: int) -> Expr:
    """lo <= i < hi for an index expression."""
    return i.ge(lo).logical_and(i.lt(hi))


def _padded_read(t: Tensor, idx: list, valid: Expr | None, pad_value) -> Expr:
    """t[idx] where valid, else pad_value; indices are clamped so the read is safe."""
    if valid is None:
        return t[tuple(idx)]
    clamped = [tb.clamp(i, 0, n - 1) if isinstance(i, Expr) else i for i, n in zip(idx, t.shape)]
    return select(valid, t[tuple(clamped)], pad_value)


def _and_all(conds: list[Expr]) -> Expr | None:
    out = None
    for c in conds:
        out = c if out is None else out.logical_and(c)
    return out


# -- elementwise ---------------------------------------------------------------------


def _elementwise(fn: Callable[..., Expr]):
    def lower(op: Operation) -> Stages:
        x = Tensor(op.operands[0])
        return [compute(_name(op), op.results[0].type, lambda *i: fn(op, x[tuple(i)]))]

    return lower


def _broadcast(fn: Callable[[Expr, Expr], Expr]):
    def lower(op: Operation) -> Stages:
        ins = [Tensor(v) for v in op.operands]
        out = op.results[0].type
        oshape = shape_of(out)

        def body(*i):
            return fn(*[t[tuple(broadcast_index(i, t.shape, oshape))] for t in ins])

        return [compute(_name(op), out, body)]

    return lower


def _broadcast_op(fn: Callable[..., Expr]):
    """_broadcast for a formula that also takes the op."""

    def lower(op: Operation) -> Stages:
        return _broadcast(lambda *xs: fn(op, *xs))(op)

    return lower


def _leaky_relu(op, x: Expr) -> Expr:
    return select(x.lt(0), x * op.attrs()["alpha"], x)


def _clip(op, x: Expr) -> Expr:
    lo, hi = op.bounds()
    return tb.minimum(tb.maximum(x, lo), hi)


def _cast(op, x: Expr) -> Expr:
    return tb.cast(x, op.result.type.element_type)


def _divide(a: Expr, b: Expr) -> Expr:
    return a / b  # DivSI rounds toward zero for integers, as TVM


def _power(a: Expr, b: Expr) -> Expr:
    """Integers: pow in float64, truncated toward zero into int64, then wrapped to the type
    (int8 2**7 is -128, as numpy's); float64 straight to a narrow type is poison in LLVM
    when out of range (127 vectorized, -128 scalar)."""
    if is_float(a.type):
        return tb.power(a, b)
    return tb.cast(tb.cast(tb.power(tb.cast(a, f64), tb.cast(b, f64)), i64), a.type)


def _fill(value):
    def lower(op: Operation) -> Stages:
        out = op.results[0].type
        return [compute(_name(op), out, lambda *i: tb.const(value, out.element_type))]

    return lower


def _full(op: graph.FullOp) -> Stages:
    v = Tensor(op.fill_value)
    return [compute(_name(op), op.result.type, lambda *i: v[()])]


def _full_like(op: graph.FullLikeOp) -> Stages:
    v = Tensor(op.fill_value)
    return [compute(_name(op), op.result.type, lambda *i: v[()])]


def _where(op: graph.WhereOp) -> Stages:
    c, x, y = Tensor(op.condition), Tensor(op.x), Tensor(op.y)
    oshape = shape_of(op.result.type)

    def body(*i):
        def at(t):
            return t[tuple(broadcast_index(i, t.shape, oshape))]

        return select(at(c), at(x), at(y))

    return [compute(_name(op), op.result.type, body)]


# -- contractions -----------------------------------------------------------------------


def _dense(op: graph.DenseOp) -> Stages:
    x, w = Tensor(op.data), Tensor(op.weight)
    k = x.shape[-1]
    out = op.result.type
    rank = len(shape_of(out))
    dt = out.element_type

    def body(*idx):
        *batch, j, r = idx
        return tb.cast(x[(*batch, r)], dt) * tb.cast(w[j, r], dt)

    names = [f"i{d}" for d in range(rank - 1)] + ["j", "k"]
    return [compute("T_dense", out, body, reduce=[k], axis_names=names)]


def _dense_pack(op: graph.DensePackOp) -> Stages:
    x, w = Tensor(op.data), Tensor(op.weight)
    k, bn = x.shape[-1], w.shape[2]
    out = op.result.type
    rank = len(shape_of(out))
    dt = out.element_type

    def body(*idx):
        *batch, j, r = idx
        return tb.cast(x[(*batch, r)], dt) * tb.cast(w[j // bn, r, j % bn], dt)

    names = [f"i{d}" for d in range(rank - 1)] + ["j", "k"]
    return [compute("T_dense_pack", out, body, reduce=[k], axis_names=names, anchor=op.relay_name())]


def _matmul(op: graph.MatmulOp) -> Stages:
    a, b = Tensor(op.tensor_a), Tensor(op.tensor_b)
    at = op.attrs()
    ta, tbt = at["transpose_a"], at["transpose_b"]
    k = a.shape[0] if ta else a.shape[1]
    dt = op.result.type.element_type

    def body(i, j, r):
        return tb.cast(a[r, i] if ta else a[i, r], dt) * tb.cast(b[j, r] if tbt else b[r, j], dt)

    return [compute("T_matmul", op.result.type, body, reduce=[k], axis_names=["i", "j", "k"])]


def _batch_matmul(op: graph.BatchMatmulOp) -> Stages:
    a, b = Tensor(op.tensor_a), Tensor(op.tensor_b)
    at = op.attrs()
    ta, tbt = at["transpose_a"], at["transpose_b"]
    k = a.shape[1] if ta else a.shape[2]
    dt = op.result.type.element_type

    def body(n, i, j, r):
        na = 0 if a.shape[0] == 1 else n
        nb = 0 if b.shape[0] == 1 else n
        x = a[na, r, i] if ta else a[na, i, r]
        y = b[nb, j, r] if tbt else b[nb, r, j]
        return tb.cast(x, dt) * tb.cast(y, dt)

    return [compute("T_batch_matmul", op.result.type, body, reduce=[k], axis_names=["b", "i", "j", "k"])]


def _batch_matmul_pack(op: graph.BatchMatmulPackOp) -> Stages:
    a, b = Tensor(op.tensor_a), Tensor(op.tensor_b)
    k, bn = a.shape[2], b.shape[3]
    dt = op.result.type.element_type

    def body(n, i, j, r):
        na = 0 if a.shape[0] == 1 else n
        nb = 0 if b.shape[0] == 1 else n
        return tb.cast(a[na, i, r], dt) * tb.cast(b[nb, j // bn, r, j % bn], dt)

    return [
        compute(
            "T_batch_matmul_pack",
            op.result.type,
            body,
            reduce=[k],
            axis_names=["b", "i", "j", "k"],
            anchor=op.relay_name(),
        )
    ]


def _conv2d(op: graph.Conv2dOp) -> Stages:
    """A padded copy of the data (when there is padding), then the sum over (rc, ry, rx).

    Default schedules inline the padding (a clamped read and a select per tap); the
    conv template keeps it as its own stage so the inner loop reads without checks."""
    x, w = Tensor(op.data), Tensor(op.weight)
    g = graph.Conv2dOp.geometry("", op.data.type, op.weight.type, op.attrs())
    nchw = g["layout"] == "NCHW"
    cg, og = g["c"] // g["groups"], g["o"] // g["groups"]
    if og == 1 and cg == 1 and g["groups"] > 1 and not nchw:
        return _depthwise_conv2d_nhwc(op, g)
    dt = op.result.type.element_type
    stages: Stages = []
    src, off_y, off_x = x, g["pt"], g["pl"]
    if g["pt"] or g["pb"] or g["pl"] or g["pr"]:
        hp, wp = g["h"] + g["pt"] + g["pb"], g["w"] + g["pl"] + g["pr"]
        shape = [g["n"], g["c"], hp, wp] if nchw else [g["n"], hp, wp, g["c"]]

        def pad(*i):
            n, c, yy, xx = i if nchw else (i[0], i[3], i[1], i[2])
            iy, ix = yy - g["pt"], xx - g["pl"]
            valid = _in_range(iy, 0, g["h"]).logical_and(_in_range(ix, 0, g["w"]))
            return _padded_read(x, [n, c, iy, ix] if nchw else [n, iy, ix, c], valid, 0.0)

        stages.append(compute("T_pad_data", graph.tensor(shape, x.dtype), pad, role=ROLE_PAD))
        src, off_y, off_x = Tensor(stages[-1].result), 0, 0

    def body(*idx):
        if nchw:
            n, o, y, xx, rc, ry, rx = idx
        else:
            n, y, xx, o, rc, ry, rx = idx
        if g["groups"] == 1:
            c = rc
        elif og == 1:  # depthwise-like: channel o reads its own group, an affine index
            c = o * cg + rc if cg > 1 else o + rc
        else:
            c = (o // og) * cg + rc
        iy = y * g["sh"] + ry * g["dh"] - off_y if off_y else y * g["sh"] + ry * g["dh"]
        ix = xx * g["sw"] + rx * g["dw"] - off_x if off_x else xx * g["sw"] + rx * g["dw"]
        v = src[(n, c, iy, ix) if nchw else (n, iy, ix, c)]
        return tb.cast(v, dt) * tb.cast(w[_weight_index(g, o, rc, ry, rx)], dt)

    names = [*(CONV2D_NCHW_AXES if nchw else CONV2D_NHWC_AXES), *CONV2D_REDUCE_AXES]
    stages.append(
        compute(
            "T_conv2d", op.result.type, body, reduce=[cg, g["kh"], g["kw"]], axis_names=names, anchor=op.relay_name()
        )
    )
    return stages


def _weight_index(g: dict, o, rc, ry, rx) -> tuple:
    """Where filter o's tap (rc, ry, rx) lies in the weight, in its kernel layout (a blocked
    one's block o // b, lane o % b)."""
    if g["kblock"]:
        b = g["kblock"]
        return (o // b, ry, rx, rc, o % b)
    kpos = {c: k for k, c in enumerate(g["klayout"])}
    widx = [None] * 4
    widx[kpos["O"]], widx[kpos["I"]], widx[kpos["H"]], widx[kpos["W"]] = o, rc, ry, rx
    return tuple(widx)


def _bounded_tap(i: Expr, lo_ok: bool, hi_ok: bool, size: int) -> tuple[Expr, list[Expr]]:
    """A tap's input coordinate clamped where it can leave [0, size), and the tests that it did
    not (none on a side it never leaves)."""
    tests = ([] if lo_ok else [i.ge(0)]) + ([] if hi_ok else [i.lt(size)])
    if not lo_ok:
        i = tb.maximum(i, 0)
    if not hi_ok:
        i = tb.minimum(i, size - 1)
    return i, tests


def _depthwise_conv2d_nhwc(op: graph.Conv2dOp, g: dict) -> Stages:
    """One filter per channel. The padded input is a stage of its own (role pad) whose bounds
    tests are one select per comparison, nested, never and-ed, and only on the sides a tap
    can leave: the depthwise template computes it inline, where index-set splitting
    (lowering/index_split.py) decides each test on the pixels a part holds, so interior tiles
    read without any; or as a copy, where a small layer's tiles are all at the border."""
    x, w = Tensor(op.data), Tensor(op.weight)
    dt = op.result.type.element_type
    oh, ow = op.result.type.get_shape()[1:3]
    hp = (oh - 1) * g["sh"] + (g["kh"] - 1) * g["dh"] + 1  # the rows and columns the taps read
    wp = (ow - 1) * g["sw"] + (g["kw"] - 1) * g["dw"] + 1
    src = x
    stages: Stages = []
    if g["pt"] or g["pl"] or hp > g["h"] or wp > g["w"]:

        def pad(n, yy, xx, c):
            iy, y_tests = _bounded_tap(yy - g["pt"], g["pt"] == 0, hp - g["pt"] <= g["h"], g["h"])
            ix, x_tests = _bounded_tap(xx - g["pl"], g["pl"] == 0, wp - g["pl"] <= g["w"], g["w"])
            v = x[n, iy, ix, c]
            for test in reversed(y_tests + x_tests):
                v = select(test, v, 0.0)
            return v

        shape = [g["n"], hp, wp, g["c"]]
        stages.append(compute("T_pad_data", graph.tensor(shape, x.dtype), pad, role=ROLE_PAD))
        src = Tensor(stages[-1].result)

    def body(n, y, xx, o, rc, ry, rx):
        v = src[n, y * g["sh"] + ry * g["dh"], xx * g["sw"] + rx * g["dw"], o + rc]
        return tb.cast(v, dt) * tb.cast(w[_weight_index(g, o, rc, ry, rx)], dt)

    stages.append(
        compute(
            "T_conv2d",
            op.result.type,
            body,
            reduce=[1, g["kh"], g["kw"]],
            axis_names=[*CONV2D_NHWC_AXES, *CONV2D_REDUCE_AXES],
            anchor=op.relay_name(),
            role=ROLE_DEPTHWISE,
        )
    )
    return stages


def _conv2d_transpose(op: graph.Conv2dTransposeOp) -> Stages:
    """out[n, o, y, x] = Σ x[n, c, (y + pt - ry·dh)/sh, ...] · w[c, o, ry, rx] where divisible."""
    x, w = Tensor(op.data), Tensor(op.weight)
    g = graph.Conv2dTransposeOp.geometry("", op.data.type, op.weight.type, op.attrs())
    cg = g["c"] // g["groups"]
    dt = op.result.type.element_type

    def body(n, o, y, xx, rc, ry, rx):
        c = rc if g["groups"] == 1 else (o // g["og"]) * cg + rc
        ol = o if g["groups"] == 1 else o % g["og"]
        ty = y + g["pt"] - ry * g["dh"]
        tx = xx + g["pl"] - rx * g["dw"]
        conds = [ty.ge(0), tx.ge(0)]
        if g["sh"] > 1:
            conds.append((ty % g["sh"]).eq(0))
        if g["sw"] > 1:
            conds.append((tx % g["sw"]).eq(0))
        iy = ty // g["sh"] if g["sh"] > 1 else ty
        ix = tx // g["sw"] if g["sw"] > 1 else tx
        conds += [iy.lt(g["h"]), ix.lt(g["w"])]
        v = _padded_read(x, [n, c, iy, ix], _and_all(conds), 0.0)
        return tb.cast(v, dt) * tb.cast(w[c, ol, ry, rx], dt)

    return [
        compute(
            "T_conv2d_transpose",
            op.result.type,
            body,
            reduce=[cg, g["kh"], g["kw"]],
            axis_names=["n", "f", "y", "x", "rc", "ry", "rx"],
        )
    ]


# -- nn -------------------------------------------------------------------------------------


def _combination(coefs, values: list[Expr], consts: dict[float, Expr] | None = None) -> Expr:
    """Σ coefs[i] · values[i] over the nonzero coefficients, ±1 as additions and subtractions:
    what Winograd's transforms are, spelled so that nothing multiplies by 0 or 1. `consts`: the
    coefficients' constants, shared by the combinations of one body (each a te op, copied
    wherever lowering emits the body)."""
    out = None
    for c, v in zip(coefs, values):
        c = float(c)
        if c == 0.0:
            continue
        if c not in (1.0, -1.0) and consts is not None:
            if c not in consts:
                consts[c] = tb.const(c, v.type)
            c = consts[c]
        if out is None:
            out = v if c == 1.0 else -v if c == -1.0 else v * c
        else:
            out = out + v if c == 1.0 else out - v if c == -1.0 else out + v * c
    assert out is not None
    return out


def _choose(i: Expr, options: list[Expr], tests: list[Expr] | None = None) -> Expr:
    """options[i]: a chain of selects, which fold away once the schedule unrolls the loop of i
    (each unrolled copy's i a constant), leaving each copy only its own formula. `tests`:
    i == 0, 1, ... where the body has them already."""
    tests = tests or [i.eq(k) for k in range(len(options) - 1)]
    out = options[-1]
    for k in range(len(options) - 2, -1, -1):
        out = select(tests[k], options[k], out)
    return out


def _winograd_weight_transform(op: graph.WinogradWeightTransformOp) -> Stages:
    """U[e, c, k] = Σ G[ξ, i] w[i, j, c, k] G[ν, j] over the 3x3 taps, G's entries chosen by
    selects on ξ and ν (a weight that is not a constant; a constant one is folded)."""
    w = Tensor(op.weight)
    m = op.attrs()["tile_size"]
    a, g = m + 2, graph.winograd_matrices("", m)[1]
    dt = op.result.type.element_type

    def body(e, c, k):
        xi, nu = e // a, e % a
        rows = [_choose(xi, [tb.const(float(g[r][i]), dt) for r in range(a)]) for i in range(3)]
        cols = [_choose(nu, [tb.const(float(g[r][j]), dt) for r in range(a)]) for j in range(3)]
        terms = [w[i, j, c, k] * rows[i] * cols[j] for i in range(3) for j in range(3)]
        out = terms[0]
        for t in terms[1:]:
            out = out + t
        return out

    return [compute("T_winograd_weight", op.result.type, body)]


def _zero_unless(valid: Expr | None, v: Expr) -> Expr:
    return v if valid is None else select(valid, v, 0.0)


def _winograd_input_transform(op: graph.WinogradInputTransformOp) -> Stages:
    """V[e, p, c] = (Bᵀ d B)[e / (m+2), e % (m+2)] for tile p's input pixels d, as two separable
    stages: the rows R[ξ, j, p, c] = (Bᵀ d)[ξ, j], then V from row ξ of R and row ν of Bᵀ.
    Each body reads what it needs and chooses its formula by selects on its index, which fold
    once the schedule unrolls (or index splitting cuts) that loop. The template computes R per
    (tile, channel block) into a scratch tile; inlined (the per-stage schedules), V is the
    double contraction over the whole tile."""
    x = Tensor(op.data)
    g = graph.WinogradInputTransformOp.geometry("", op.data.type, op.attrs())
    m, a = g["m"], g["m"] + 2
    bt = graph.winograd_matrices("", m)[0]
    tiles = g["th"] * g["tw"]
    p_extent, channels = op.result.type.get_shape()[1:]

    def rows(xi, j, p, c):
        n = p // tiles if g["n"] > 1 else 0
        ty, tx = (p % tiles) // g["tw"], p % g["tw"]
        taps = [
            _bounded_tap(ty * m + (i - g["pt"]), i >= g["pt"], (g["th"] - 1) * m + i - g["pt"] < g["h"], g["h"])
            for i in range(a)
        ]
        cols = [
            _bounded_tap(tx * m + (jj - g["pl"]), jj >= g["pl"], (g["tw"] - 1) * m + jj - g["pl"] < g["w"], g["w"])
            for jj in range(a)
        ]

        consts: dict[float, Expr] = {}
        tests = [xi.eq(r) for r in range(a - 1)]

        def column(jj):
            ix, tx_ok = cols[jj]
            # the taps are clamped where their tests are (_bounded_tap): in bounds without
            # _padded_read's clamps, 16 te ops a read
            d = [_zero_unless(_and_all(ty_ok + tx_ok), x[n, iy, ix, c]) for iy, ty_ok in taps]
            return _choose(xi, [_combination(bt[r], d, consts) for r in range(a)], tests)

        return _choose(j, [column(jj) for jj in range(a)])

    r = compute(
        "T_winograd_input_rows",
        graph.tensor([a, a, p_extent, channels], op.result.type.element_type),
        rows,
        axis_names=list(WINOGRAD_INPUT_ROWS_AXES),
    )
    rt = Tensor(r.result)

    def body(e, p, c):
        xi, nu = e // a, e % a
        row, consts = [rt[xi, j, p, c] for j in range(a)], {}
        return _choose(nu, [_combination(bt[s], row, consts) for s in range(a)])

    return [
        r,
        compute("T_winograd_input", op.result.type, body, axis_names=list(WINOGRAD_INPUT_AXES), anchor=op.relay_name()),
    ]


def _winograd_output_transform(op: graph.WinogradOutputTransformOp) -> Stages:
    """y[n, y, x, k] = (Aᵀ M[:, p, k] A)[y % m, x % m] for the tile p holding the pixel, as two
    separable stages: the rows R[i, ν, p, k] = (Aᵀ M)[i, ν], then the pixel from row y % m of R
    and row x % m of Aᵀ, each formula chosen by selects on its index (as the input transform's)."""
    mm = Tensor(op.data)
    g = graph.WinogradOutputTransformOp.geometry("", op.data.type, op.attrs())
    m, a = g["m"], g["m"] + 2
    at = graph.winograd_matrices("", m)[2]
    p_extent, channels = op.data.type.get_shape()[1:]

    def rows(i, nu, p, k):
        column, consts = [mm[xi * a + nu, p, k] for xi in range(a)], {}
        return _choose(i, [_combination(at[ii], column, consts) for ii in range(m)])

    r = compute(
        "T_winograd_output_rows",
        graph.tensor([m, a, p_extent, channels], op.result.type.element_type),
        rows,
        axis_names=list(WINOGRAD_OUTPUT_ROWS_AXES),
    )
    rt = Tensor(r.result)

    def body(n, y, x, k):
        p = (n * g["th"] + y // m) * g["tw"] + x // m
        i = y % m
        row, consts = [rt[i, nu, p, k] for nu in range(a)], {}
        return _choose(x % m, [_combination(at[j], row, consts) for j in range(m)])

    return [
        r,
        compute(
            "T_winograd_output", op.result.type, body, axis_names=list(WINOGRAD_OUTPUT_AXES), anchor=op.relay_name()
        ),
    ]


def _bias_add(op: graph.BiasAddOp) -> Stages:
    x, b = Tensor(op.data), Tensor(op.bias)
    axis = graph.normalize_axis("", op.attrs()["axis"], len(x.shape))
    return [compute("T_add", op.result.type, lambda *i: x[tuple(i)] + b[i[axis]])]


def _prelu(op: graph.PReluOp) -> Stages:
    x, al = Tensor(op.data), Tensor(op.alpha)
    axis = graph.normalize_axis("", op.attrs()["axis"], len(x.shape))

    def body(*i):
        v = x[tuple(i)]
        return select(v.lt(0), v * al[i[axis]], v)

    return [compute("T_prelu", op.result.type, body)]


def _reduce_over_axis(name: str, src: Tensor, axis: int, combiner: str, fn=None) -> te.ComputeOp:
    """keepdims reduction of `fn(src[...])` over one axis."""
    shape = list(src.shape)
    n = shape[axis]
    shape[axis] = 1
    out = graph.tensor(shape, src.dtype)

    def body(*idx):
        *sp, r = idx
        read = list(sp)
        read[axis] = r
        v = src[tuple(read)]
        return fn(v, sp) if fn else v

    return compute(name, out, body, reduce=[n], combiner=combiner)


def _softmax(op: Operation, log: bool) -> Stages:
    x = Tensor(op.operands[0])
    axis = graph.normalize_axis("", op.attrs()["axis"], len(x.shape))
    mx = _reduce_over_axis("T_softmax_maxelem", x, axis, "max")
    mxt = Tensor(mx.result)

    def keep(sp):
        k = list(sp)
        k[axis] = 0
        return tuple(k)

    if log:
        ex = _reduce_over_axis("T_softmax_expsum", x, axis, "sum", lambda v, sp: tb.exp(v - mxt[keep(sp)]))
        ext = Tensor(ex.result)
        out = compute("T_log_softmax", op.result.type, lambda *i: x[tuple(i)] - mxt[keep(i)] - tb.log(ext[keep(i)]))
        return [mx, ex, out]
    # exp(x - max) is a stage of its own (TVM's T_softmax_exp), read by the sum and by the
    # normalisation: a row kernel keeps it as a row in cache and computes each exp once
    # (inlined, as per-stage schedules do, it is computed in both). The normalisation
    # multiplies by 1 / sum, uniform along the row, as ONNX Runtime's MLAS does: one division
    # per row, not one per element (a vdivps per vector took 13-22% of the kernel; the
    # result differs from the quotient by at most an ulp or so)
    e = compute("T_softmax_exp", op.result.type, lambda *i: tb.exp(x[tuple(i)] - mxt[keep(i)]))
    et = Tensor(e.result)
    ex = _reduce_over_axis("T_softmax_expsum", et, axis, "sum")
    ext = Tensor(ex.result)
    out = compute("T_softmax", op.result.type, lambda *i: et[tuple(i)] * (1.0 / ext[keep(i)]))
    return [mx, e, ex, out]


def _layer_norm(op: graph.LayerNormOp) -> Stages:
    a = op.attrs()
    x, gamma, beta = Tensor(op.data), Tensor(op.gamma), Tensor(op.beta)
    axis = graph.normalize_axis("", a["axis"], len(x.shape))
    n = x.shape[axis]

    def keep(sp):
        k = list(sp)
        k[axis] = 0
        return tuple(k)

    s = _reduce_over_axis("T_layer_norm_sum", x, axis, "sum")
    st = Tensor(s.result)
    var = _reduce_over_axis(
        "T_layer_norm_sqsum", x, axis, "sum", lambda v, sp: (v - st[keep(sp)] / n) * (v - st[keep(sp)] / n)
    )
    vt = Tensor(var.result)

    def body(*i):
        mean = st[keep(i)] / n
        v = (x[tuple(i)] - mean) / tb.sqrt(vt[keep(i)] / n + a["epsilon"])
        if a["scale"]:
            v = v * gamma[i[axis]]
        if a["center"]:
            v = v + beta[i[axis]]
        return v

    return [s, var, compute("T_layer_norm", op.result.type, body)]


def _lrn(op: graph.LRNOp) -> Stages:
    a = op.attrs()
    x = Tensor(op.data)
    axis = graph.normalize_axis("", a["axis"], len(x.shape))
    size = a["size"]
    c = x.shape[axis]
    # the window [k - before, k + after] is cut to the c channels there are: a window wider than
    # the axis reads nothing more, and an attribute like size=2**63-1 must not become the loop
    before, after = min((size - 1) // 2, max(c - 1, 0)), min(size // 2, max(c - 1, 0))
    sq = compute(
        "T_lrn_sqsum",
        op.result.type,
        lambda *i: _lrn_tap(x, list(i), axis, before, c),
        reduce=[before + after + 1],
        combiner="sum",
    )
    sqt = Tensor(sq.result)

    def body(*i):
        base = a["bias"] + (a["alpha"] / size) * sqt[tuple(i)]
        return x[tuple(i)] / tb.power(base, tb.const(a["beta"], x.dtype))

    return [sq, compute("T_lrn", op.result.type, body)]


def _lrn_tap(x: Tensor, idx: list, axis: int, before: int, c: int) -> Expr:
    *sp, r = idx
    ch = sp[axis] + r - before
    read = list(sp)
    read[axis] = ch
    v = _padded_read(x, read, _in_range(ch, 0, c), 0.0)
    return v * v


def _pool(op: Operation, kind: str) -> Stages:
    a = op.attrs()
    x = Tensor(op.operands[0])
    g = graph.Pool2dBase.geometry("", op.operands[0].type, a)
    nchw = g["layout"] == "NCHW"
    dt = x.dtype

    def taps(idx):
        if nchw:
            n, c, y, xx, ry, rx = idx
        else:
            n, y, xx, c, ry, rx = idx
        iy = y * g["sh"] + ry * g["dh"] - g["pt"]
        ix = xx * g["sw"] + rx * g["dw"] - g["pl"]
        return n, c, iy, ix

    def read(idx, pad_value):
        n, c, iy, ix = taps(idx)
        valid = _in_range(iy, 0, g["h"]).logical_and(_in_range(ix, 0, g["w"]))
        return _padded_read(x, [n, c, iy, ix] if nchw else [n, iy, ix, c], valid, pad_value)

    names = [*(POOL2D_NCHW_AXES if nchw else POOL2D_NHWC_AXES), *POOL2D_REDUCE_AXES]
    red = [g["kh"], g["kw"]]
    if kind == "max":
        return [
            compute(
                "T_max_pool2d",
                op.result.type,
                lambda *i: read(i, dtypes.lowest(dt)),
                reduce=red,
                combiner="max",
                axis_names=names,
                anchor=op.relay_name(),
            )
        ]
    total = compute(
        "T_avg_pool2d_sum",
        op.result.type,
        lambda *i: read(i, 0.0),
        reduce=red,
        axis_names=names,
        anchor=op.relay_name(),
    )
    if a["count_include_pad"]:
        bounds = ((-g["pt"], g["h"] + g["pb"]), (-g["pl"], g["w"] + g["pr"]))
    else:
        bounds = ((0, g["h"]), (0, g["w"]))
    geo = ((g["sh"], g["dh"], g["pt"], g["kh"]), (g["sw"], g["dw"], g["pl"], g["kw"]))
    sizes = op.result.type.get_shape()[2:] if nchw else op.result.type.get_shape()[1:3]
    const_counts = [_const_window_count(o, *gd, *b) for o, gd, b in zip(sizes, geo, bounds)]
    tt = Tensor(total.result)

    def average(*i):
        if None not in const_counts:  # every window counts the same taps: one constant divisor
            return tt[tuple(i)] / float(const_counts[0] * const_counts[1])
        y, xx = (i[2], i[3]) if nchw else (i[1], i[2])
        cy, cx = (_window_count(v, *gd, *b) for v, gd, b in zip((y, xx), geo, bounds))
        return tt[tuple(i)] / tb.cast(cy * cx, dt)

    return [total, compute("T_avg_pool2d", op.result.type, average)]


def _window_count(o: Expr, stride: int, dilation: int, pad: int, k: int, lo: int, hi: int) -> Expr:
    """How many of output position o's k taps (o*stride - pad + r*dilation) fall in [lo, hi):
    an index expression, so the count is no reduction of its own."""
    start = o * stride - pad
    first = tb.maximum((lo - start + (dilation - 1)) // dilation, 0)
    end = tb.minimum((hi - start + (dilation - 1)) // dilation, k)
    return tb.maximum(end - first, 0)


def _const_window_count(size: int, stride: int, dilation: int, pad: int, k: int, lo: int, hi: int) -> int | None:
    """_window_count's value when it is the same at every output position, else None."""
    counts = {sum(lo <= o * stride - pad + r * dilation < hi for r in range(k)) for o in range(size)}
    return counts.pop() if len(counts) == 1 else None


def _global_pool(op: Operation, kind: str) -> Stages:
    x = Tensor(op.operands[0])
    nchw = op.attrs()["layout"] == "NCHW"
    h, w = (x.shape[2], x.shape[3]) if nchw else (x.shape[1], x.shape[2])

    def body(*idx):
        if nchw:
            n, c, _, _, ry, rx = idx
            return x[n, c, ry, rx]
        n, _, _, c, ry, rx = idx
        return x[n, ry, rx, c]

    if kind == "max":
        return [compute("T_global_max_pool2d", op.result.type, body, reduce=[h, w], combiner="max")]
    s = compute("T_global_avg_pool2d_sum", op.result.type, body, reduce=[h, w])
    st = Tensor(s.result)
    return [s, compute("T_global_avg_pool2d", op.result.type, lambda *i: st[tuple(i)] / float(h * w))]


def _adaptive_avg_pool(op: graph.AdaptiveAvgPool2dOp) -> Stages:
    x = Tensor(op.data)
    _, _, h, w = x.shape
    oh, ow = shape_of(op.result.type)[2:]
    wy, wx = -(-h // oh) + 1, -(-w // ow) + 1  # the widest window

    def bounds(i, n, o):
        start = (i * n) // o
        end = (i * n + n + o - 1) // o
        return start, end

    def body(nn, c, i, j, ry, rx):
        y0, y1 = bounds(i, h, oh)
        x0, x1 = bounds(j, w, ow)
        iy, ix = y0 + ry, x0 + rx
        valid = iy.lt(y1).logical_and(ix.lt(x1))
        return _padded_read(x, [nn, c, iy, ix], valid, 0.0)

    s = compute("T_adaptive_pool_sum", op.result.type, body, reduce=[min(wy, h), min(wx, w)])
    st = Tensor(s.result)

    def avg(nn, c, i, j):
        y0, y1 = bounds(i, h, oh)
        x0, x1 = bounds(j, w, ow)
        area = tb.cast((y1 - y0) * (x1 - x0), x.dtype)
        return st[nn, c, i, j] / area

    return [s, compute("T_adaptive_avg_pool2d", op.result.type, avg)]


def _pad(op: graph.PadOp) -> Stages:
    a = op.attrs()
    x = Tensor(op.data)
    pw = a["pad_width"]
    mode = a["pad_mode"]

    def body(*i):
        src, conds = [], []
        for d, (idx, (before, after)) in enumerate(zip(i, pw)):
            n = x.shape[d]
            s = idx - before if before else idx
            if mode == "edge" and (before or after):
                s = tb.clamp(s, 0, n - 1)
            elif mode == "reflect" and (before or after):
                s = select(s.lt(0), -s, s)  # reflect about 0
                s = select(s.ge(n), (2 * (n - 1)) - s, s)  # reflect about n - 1
            elif before or after:
                conds.append(_in_range(s, 0, n))
            src.append(s)
        pad_value = a["pad_value"] if is_float(x.dtype) else int(a["pad_value"])
        return _padded_read(x, src, _and_all(conds), pad_value)

    return [compute("T_pad", op.result.type, body)]


def _resize2d(op: graph.Resize2dOp) -> Stages:
    from lathe.dialects.reference import nearest_rounded, resize_source

    a = op.attrs()
    x = Tensor(op.data)
    nchw = a["layout"] == "NCHW"
    h, w = (x.shape[2], x.shape[3]) if nchw else (x.shape[1], x.shape[2])
    oh, ow = graph.pair("", a, "size")
    mode = a["coordinate_transformation_mode"]

    def src(i, out_size, in_size):
        return resize_source(mode, out_size, in_size, tb.index_as_float(i))

    def at(n, c, yy, xx):
        return x[(n, c, yy, xx) if nchw else (n, yy, xx, c)]

    if a["method"] == "nearest_neighbor":
        rounding = a["rounding_method"] or ("floor" if mode == "asymmetric" else "round")

        def nearest(s, n):
            v = nearest_rounded(s, rounding, tb.floor, tb.ceil)
            return tb.clamp(tb.cast(v, tb.INDEX), 0, n - 1)

        def body(*i):
            n, c, y, xx = i if nchw else (i[0], i[3], i[1], i[2])
            return at(n, c, nearest(src(y, oh, h), h), nearest(src(xx, ow, w), w))

        return [compute("T_resize2d", op.result.type, body)]

    def bilinear(*i):
        n, c, y, xx = i if nchw else (i[0], i[3], i[1], i[2])
        sy = tb.minimum(tb.maximum(src(y, oh, h), 0.0), float(h - 1))
        sx = tb.minimum(tb.maximum(src(xx, ow, w), 0.0), float(w - 1))
        fy0, fx0 = tb.floor(sy), tb.floor(sx)
        y0, x0 = tb.cast(fy0, tb.INDEX), tb.cast(fx0, tb.INDEX)
        y1, x1 = tb.minimum(y0 + 1, h - 1), tb.minimum(x0 + 1, w - 1)
        dy, dx = sy - fy0, sx - fx0

        def px(yy, xv):
            return tb.cast(at(n, c, yy, xv), f64)

        top = px(y0, x0) * (1.0 - dx) + px(y0, x1) * dx
        bot = px(y1, x0) * (1.0 - dx) + px(y1, x1) * dx
        return top * (1.0 - dy) + bot * dy

    return [compute("T_resize2d", op.result.type, bilinear)]


# -- reductions --------------------------------------------------------------------------------


def _reduction_stage(op: Operation, combiner: str, name: str, fn=None, dtype=None) -> te.ComputeOp:
    """Reduce operand 0 over the op's axes; `fn(value, full_index)` transforms each element."""
    a = op.attrs()
    x = Tensor(op.operands[0])
    rank = len(x.shape)
    axes = graph.reduce_axes("", a, rank)
    out = op.results[0].type
    if dtype is not None:
        out = graph.tensor(shape_of(out), dtype)
    keep = bool(a["keepdims"])
    kept = [d for d in range(rank) if d not in axes]

    def body(*idx):
        nsp = len(shape_of(out))
        sp, red = idx[:nsp], idx[nsp:]
        full = [None] * rank
        for d, r in zip(axes, red):
            full[d] = r
        for k, d in enumerate(kept):
            full[d] = sp[d] if keep else sp[k]
        v = x[tuple(full)]
        return fn(v, full) if fn else v

    return compute(name, out, body, reduce=[x.shape[d] for d in axes] or [1], combiner=combiner)


def _reduce(combiner: str):
    def lower(op: Operation) -> Stages:
        return [_reduction_stage(op, combiner, _name(op))]

    return lower


def _count(op: Operation) -> int:
    x = op.operands[0].type
    return math.prod(shape_of(x)[d] for d in graph.reduce_axes("", op.attrs(), len(shape_of(x))))


def _mean(op: graph.MeanOp) -> Stages:
    """Integers are summed in int64 (250 int8 values overflow int8) and the quotient, truncated,
    cast back: the true mean, as the interpreter's numpy computes it."""
    dtype = op.result.type.element_type
    wide = None if graph.is_float(dtype) else graph.DTYPES["int64"]
    s = _reduction_stage(op, "sum", "T_mean_sum", fn=(lambda v, full: tb.cast(v, wide)) if wide else None, dtype=wide)
    st = Tensor(s.result)
    n = _count(op)
    if wide is None:
        return [s, compute("T_mean", op.result.type, lambda *i: st[tuple(i)] / tb.const(n, st.dtype))]
    return [s, compute("T_mean", op.result.type, lambda *i: tb.cast(st[tuple(i)] / tb.const(n, wide), dtype))]


def _variance(op: graph.VarianceOp) -> Stages:
    a = op.attrs()
    x = Tensor(op.data)
    rank = len(x.shape)
    axes = graph.reduce_axes("", a, rank)
    n = _count(op)
    keep_shape = [1 if d in axes else s for d, s in enumerate(x.shape)]
    keep_op = graph.tensor(keep_shape, x.dtype)
    # mean with keepdims, then the squared deviations summed over the same axes
    s = compute(
        "T_variance_sum",
        keep_op,
        lambda *idx: x[tuple(_full_index(idx, axes, rank))],
        reduce=[x.shape[d] for d in axes] or [1],
    )
    st = Tensor(s.result)

    def dev(v, full):
        mean = st[tuple(0 if d in axes else full[d] for d in range(rank))] / float(n)
        return (v - mean) * (v - mean)

    sq = _reduction_stage(op, "sum", "T_variance_sqsum", dev)
    sqt = Tensor(sq.result)
    denom = float(n - 1 if a["unbiased"] else n)
    return [s, sq, compute("T_variance", op.result.type, lambda *i: sqt[tuple(i)] / denom)]


def _full_index(idx, axes: list[int], rank: int) -> list:
    """Index of the input for a keepdims reduction stage: spatial then reduce block args."""
    sp, red = idx[:rank], idx[rank:]
    full = list(sp)
    for d, r in zip(axes, red):
        full[d] = r
    return full


def _arg(kind: str):
    def lower(op: Operation) -> Stages:
        a = op.attrs()
        x = Tensor(op.operands[0])
        rank = len(x.shape)
        axes = graph.reduce_axes("", a, rank)
        best = _reduction_stage(op, kind, f"T_{op.relay_name()}_value", dtype=x.dtype)
        bt = Tensor(best.result)
        strides = {}
        acc = 1
        for d in reversed(axes):
            strides[d] = acc
            acc *= x.shape[d]
        keep = bool(a["keepdims"])
        kept = [d for d in range(rank) if d not in axes]

        def pick(v, full):
            flat = tb.const(0, i32) if not axes else None
            for d in axes:
                term = tb.cast(full[d], i32) * strides[d]
                flat = term if flat is None else flat + term
            if keep:
                bidx = [0 if d in axes else full[d] for d in range(rank)]
            else:
                bidx = [full[d] for d in kept]
            hit = v.eq(bt[tuple(bidx)])
            if is_float(x.dtype):  # NaN is the extreme, as numpy's: the NaN max never compares equal
                hit = hit.logical_or(v.ne(v))
            if a["select_last_index"]:
                return select(hit, flat, -1)
            return select(hit, flat, acc)

        combiner = "max" if a["select_last_index"] else "min"
        return [best, _reduction_stage(op, combiner, f"T_{op.relay_name()}", pick)]

    return lower


# -- ordering -----------------------------------------------------------------------------------


def _topk(op: graph.TopkOp) -> Stages:
    """By rank, as a sorting network would not be in te: each element's rank is how many elements
    of its row come before it (a sum over the axis: larger, or equal with a smaller index; NaN the
    largest value, as numpy sorts), and output position p takes the index whose rank is p (a sum
    over the axis that one term is not zero in). n² + k·n compares a row, every one independent,
    so both stages are ordinary parallel, vectorizable reductions."""
    a = op.attrs()
    if a["ret_type"] == "both":
        raise LatheError(
            "lower-graph-to-te: topk with ret_type='both' gives a tuple, which no kernel returns",
            note="use ret_type='indices' and gather the values (as the ONNX importer does)",
        )
    x = Tensor(op.data)
    rank = len(x.shape)
    axis = graph.normalize_axis("", a["axis"], rank)
    n = x.shape[axis]
    shape = shape_of(op.result.type)

    def first(u: Expr, v: Expr, iu: Expr, iv: Expr) -> Expr:
        """Whether the element u (at index iu) comes before v (at iv) in the output order."""
        strict = u.lt(v) if a["is_ascend"] else u.gt(v)
        tie = u.eq(v)
        if is_float(x.dtype):  # NaN is the largest value: last in ascending order, first in descending
            u_nan, v_nan = u.ne(u), v.ne(v)
            big, small = (v_nan, u_nan) if a["is_ascend"] else (u_nan, v_nan)
            strict = strict.logical_or(big.logical_and(small.logical_not()))
            tie = tie.logical_or(u_nan.logical_and(v_nan))
        return strict.logical_or(tie.logical_and(iu.lt(iv)))

    def ranked(*idx):
        *sp, r = idx
        other = list(sp)
        other[axis] = r
        return select(first(x[tuple(other)], x[tuple(sp)], r, sp[axis]), tb.const(1, i64), 0)

    ranks = compute("T_topk_rank", graph.tensor(x.shape, i64), ranked, reduce=[n])
    rt = Tensor(ranks.result)
    idx_dtype = graph.DTYPES[a["dtype"]]

    def pick(*idx):
        *sp, j = idx
        src = list(sp)
        src[axis] = j
        return select(rt[tuple(src)].eq(tb.cast(sp[axis], i64)), tb.cast(j, idx_dtype), 0)

    chosen = compute("T_topk_indices", graph.tensor(shape, idx_dtype), pick, reduce=[n])
    if a["ret_type"] == "indices":
        return [ranks, chosen]
    ct = Tensor(chosen.result)

    def value(*i):
        src = list(i)
        src[axis] = tb.cast(ct[tuple(i)], tb.INDEX)
        return x[tuple(src)]

    return [ranks, chosen, compute("T_topk", op.result.type, value)]


def _arange(op: graph.ArangeOp) -> Stages:
    a = op.attrs()
    out = op.result.type
    if is_float(out.element_type):
        return [compute("T_arange", out, lambda i: tb.index_as_float(i) * a["step"] + a["start"])]
    return [compute("T_arange", out, lambda i: tb.cast(i, i64) * int(a["step"]) + int(a["start"]))]


# -- shape and data movement ------------------------------------------------------------------


def _delinearize(flat: Expr, shape: list[int]) -> list:
    out = []
    for d in reversed(shape):
        out.append(flat % d if d != 1 else 0)
        flat = flat // d if d != 1 else flat
    return out[::-1]


def _linearize(idx, shape: list[int]) -> Expr | int:
    flat = None
    for i, d in zip(idx, shape):
        if d == 1:
            continue
        flat = i if flat is None else flat * d + i
    return index(0) if flat is None else flat


def _reshape(op: Operation) -> Stages:
    x = Tensor(op.operands[0])
    oshape = shape_of(op.results[0].type)
    if oshape == x.shape:
        return [compute(_name(op), op.results[0].type, lambda *i: x[tuple(i)])]

    def body(*i):
        return x[tuple(_delinearize(_linearize(i, oshape), x.shape))]

    return [compute(_name(op), op.results[0].type, body)]


def _transpose(op: graph.TransposeOp) -> Stages:
    x = Tensor(op.data)
    perm = graph.TransposeOp.perm("", len(x.shape), op.attrs())

    def body(*i):
        src = [None] * len(perm)
        for k, p in enumerate(perm):
            src[p] = i[k]
        return x[tuple(src)]

    return [compute("T_transpose", op.result.type, body)]


def _tuple_fields(op: Operation) -> list[Tensor]:
    owner = op.operands[0].owner
    if not isinstance(owner, graph.TupleOp):
        raise LatheError(f"lower-graph-to-te: {op.relay_name()} needs its tuple built inside the kernel")
    return [Tensor(v) for v in owner.operands]


def _concatenate(op: graph.ConcatenateOp) -> Stages:
    fields = _tuple_fields(op)
    axis = graph.normalize_axis("", op.attrs()["axis"], len(fields[0].shape))
    offsets = [0]
    for f in fields:
        offsets.append(offsets[-1] + f.shape[axis])

    def body(*i):
        result = None
        for f, lo in reversed(list(zip(fields, offsets))):
            idx = list(i)
            idx[axis] = tb.clamp(i[axis] - lo, 0, f.shape[axis] - 1)
            v = f[tuple(idx)]
            result = v if result is None else select(i[axis].lt(lo + f.shape[axis]), v, result)
        return result

    return [compute("T_concat", op.result.type, body)]


def _stack(op: graph.StackOp) -> Stages:
    fields = _tuple_fields(op)
    axis = graph.normalize_axis("", op.attrs()["axis"], len(fields[0].shape) + 1)

    def body(*i):
        idx = tuple(i[:axis] + i[axis + 1 :])
        result = fields[-1][idx]
        for k in range(len(fields) - 2, -1, -1):
            result = select(i[axis].eq(k), fields[k][idx], result)
        return result

    return [compute("T_stack", op.result.type, body)]


def _strided_slice(op: graph.StridedSliceOp) -> Stages:
    x = Tensor(op.data)
    bounds = graph.slice_bounds("", x.shape, op.attrs())

    def body(*i):
        return x[tuple(b + s * k if (b, s) != (0, 1) else k for k, (b, s, _) in zip(i, bounds))]

    return [compute("T_strided_slice", op.result.type, body)]


def _index_value(v: Expr, n: int, mode: str) -> Expr:
    """A data-dependent index into an axis of size n, always in bounds.

    clip: clamp to [0, n-1] (TVM's take); wrap: modulo n; normalize: a negative
    index counts from the end once, then clamp (ONNX GatherElements)."""
    i = tb.cast(v, tb.INDEX)
    if mode == "wrap":
        r = i % n
        return select(r.lt(0), r + n, r)
    if mode == "normalize":
        i = select(i.lt(0), i + n, i)
    return tb.clamp(i, 0, n - 1)


def _take(op: graph.TakeOp) -> Stages:
    a = op.attrs()
    x, idx = Tensor(op.data), Tensor(op.indices)
    nd = len(idx.shape)
    if a["axis"] is None:
        total = math.prod(x.shape)
        return [
            compute(
                "T_take",
                op.result.type,
                lambda *i: x[tuple(_delinearize(_index_value(idx[tuple(i)], total, a["mode"]), x.shape))],
            )
        ]
    axis = graph.normalize_axis("", a["axis"], len(x.shape))

    def body(*i):
        sel = _index_value(idx[tuple(i[axis : axis + nd])], x.shape[axis], a["mode"])
        return x[tuple(i[:axis]) + (sel,) + tuple(i[axis + nd :])]

    return [compute("T_take", op.result.type, body)]


def _gather(op: graph.GatherOp) -> Stages:
    x, idx = Tensor(op.data), Tensor(op.indices)
    axis = graph.normalize_axis("", op.attrs()["axis"], len(x.shape))

    def body(*i):
        src = list(i)
        src[axis] = _index_value(idx[tuple(i)], x.shape[axis], "normalize")
        return x[tuple(src)]

    return [compute("T_gather", op.result.type, body)]


def _tile(op: graph.TileOp) -> Stages:
    x = Tensor(op.data)
    oshape = shape_of(op.result.type)
    offset = len(oshape) - len(x.shape)
    return [
        compute(
            "T_tile",
            op.result.type,
            lambda *i: x[tuple(i[offset + k] % d if d != 1 else 0 for k, d in enumerate(x.shape))],
        )
    ]


def _broadcast_to(op: graph.BroadcastToOp) -> Stages:
    x = Tensor(op.data)
    oshape = shape_of(op.result.type)
    return [compute("T_broadcast_to", op.result.type, lambda *i: x[tuple(broadcast_index(i, x.shape, oshape))])]


def _constant(op: graph.ConstantOp) -> Stages:
    from lathe.dialects.reference import constant_value

    value = constant_value(op)
    out = op.result.type
    if value.size != 1:
        raise LatheError("lower-graph-to-te: only scalar constants may live inside a kernel")
    return [compute("T_const", out, lambda *i: tb.const(value.reshape(-1)[0].item(), out.element_type))]


TE_COMPUTE: dict[type[Operation], Callable[[Operation], Stages]] = {
    graph.ConstantOp: _constant,
    graph.LeakyReluOp: _elementwise(_leaky_relu),
    graph.LogicalNotOp: _elementwise(lambda op, x: x.logical_not()),
    graph.ClipOp: _elementwise(_clip),
    graph.CastOp: _elementwise(_cast),
    graph.DivideOp: _broadcast(_divide),
    graph.PowerOp: _broadcast(_power),
    graph.EqualOp: _broadcast(lambda a, b: a.eq(b)),
    graph.NotEqualOp: _broadcast(lambda a, b: a.ne(b)),
    graph.LessOp: _broadcast(lambda a, b: a.lt(b)),
    graph.LessEqualOp: _broadcast(lambda a, b: a.le(b)),
    graph.GreaterOp: _broadcast(lambda a, b: a.gt(b)),
    graph.GreaterEqualOp: _broadcast(lambda a, b: a.ge(b)),
    graph.LogicalAndOp: _broadcast(lambda a, b: a.logical_and(b)),
    graph.LogicalOrOp: _broadcast(lambda a, b: a.logical_or(b)),
    graph.WhereOp: _where,
    graph.DenseOp: _dense,
    graph.DensePackOp: _dense_pack,
    graph.MatmulOp: _matmul,
    graph.BatchMatmulOp: _batch_matmul,
    graph.BatchMatmulPackOp: _batch_matmul_pack,
    graph.Conv2dOp: _conv2d,
    graph.Conv2dTransposeOp: _conv2d_transpose,
    graph.WinogradWeightTransformOp: _winograd_weight_transform,
    graph.WinogradInputTransformOp: _winograd_input_transform,
    graph.WinogradOutputTransformOp: _winograd_output_transform,
    graph.BiasAddOp: _bias_add,
    graph.PReluOp: _prelu,
    graph.SoftmaxOp: lambda op: _softmax(op, log=False),
    graph.LogSoftmaxOp: lambda op: _softmax(op, log=True),
    graph.LayerNormOp: _layer_norm,
    graph.LRNOp: _lrn,
    graph.MaxPool2dOp: lambda op: _pool(op, "max"),
    graph.AvgPool2dOp: lambda op: _pool(op, "avg"),
    graph.GlobalAvgPool2dOp: lambda op: _global_pool(op, "avg"),
    graph.GlobalMaxPool2dOp: lambda op: _global_pool(op, "max"),
    graph.AdaptiveAvgPool2dOp: _adaptive_avg_pool,
    graph.PadOp: _pad,
    graph.BatchFlattenOp: _reshape,
    graph.Resize2dOp: _resize2d,
    graph.SumOp: _reduce("sum"),
    graph.MaxOp: _reduce("max"),
    graph.MinOp: _reduce("min"),
    graph.ProdOp: _reduce("prod"),
    graph.MeanOp: _mean,
    graph.VarianceOp: _variance,
    graph.ArgmaxOp: _arg("max"),
    graph.ArgminOp: _arg("min"),
    graph.ReshapeOp: _reshape,
    graph.SqueezeOp: _reshape,
    graph.ExpandDimsOp: _reshape,
    graph.TransposeOp: _transpose,
    graph.ConcatenateOp: _concatenate,
    graph.StackOp: _stack,
    graph.StridedSliceOp: _strided_slice,
    graph.TakeOp: _take,
    graph.GatherOp: _gather,
    graph.TileOp: _tile,
    graph.BroadcastToOp: _broadcast_to,
    graph.ZerosOp: _fill(0),
    graph.OnesOp: _fill(1),
    graph.FullOp: _full,
    graph.ZerosLikeOp: _fill(0),
    graph.OnesLikeOp: _fill(1),
    graph.FullLikeOp: _full_like,
    graph.ArangeOp: _arange,
    graph.TopkOp: _topk,
}
# Elementwise ops written as a scalar formula (dialects/graph/elementwise.py's UnaryOp) need no entry.
TE_COMPUTE.update(
    {
        cls: (_elementwise if issubclass(cls, graph.UnaryOp) else _broadcast_op)(
            lambda op, *xs: type(op).scalar(tb.TE_MATH, *xs)
        )
        for cls in graph.GRAPH_OPS
        if hasattr(cls, "scalar") and cls not in TE_COMPUTE
    }
)


class LowerGraphOpToTe(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.GraphOp) or isinstance(op, graph.TupleOp):
            return
        parent = op.parent_op()
        if not (isinstance(parent, func.FuncOp) and KERNEL_ATTR in parent.attributes):
            return
        lower = TE_COMPUTE.get(type(op))
        if lower is None:
            raise LatheError(
                f"lower-graph-to-te: no te compute definition for '{op.relay_name()}'",
                note="tuple-producing ops (split, batch_norm, dropout) are expanded by simplify-inference and expand-split",
            )
        stages = lower(op)
        rewriter.replace(op, stages, [stages[-1].result])


@dataclass(frozen=True)
class LowerGraphToTe(ModulePass):
    """Replace every graph op inside a kernel function by its te.computes."""

    name = "lower-graph-to-te"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _check_outlined(op)
        PatternRewriteWalker(LowerGraphOpToTe(), apply_recursively=False).rewrite_module(op)
        for f in defined_functions(op):  # tuples built only to feed concatenate/stack are dead now
            if is_kernel(f):
                for o in reversed(list(f.body.block.ops)):
                    if isinstance(o, graph.TupleOp) and not o.result.uses:
                        Rewriter.erase_op(o)


def _check_outlined(module: ModuleOp) -> None:
    """Only kernels are lowered (compute ops left in glue functions stay as they are): in a
    module without any, the pass would silently do nothing."""
    funcs = defined_functions(module)
    if any(is_kernel(f) for f in funcs):
        return
    stray = next((o for f in funcs for o in f.body.block.ops if is_compute(o)), None)
    if stray is not None:
        raise LatheError(
            f"lower-graph-to-te: no kernels to lower ('{stray.relay_name()}' in "
            f"@{stray.parent_op().sym_name.data} is not in one)",  # type: ignore[union-attr]
            note="run outline-kernels or fuse-ops first (or lathe-opt -O N, which ends with one)",
        )
