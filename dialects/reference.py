"""The numpy reference of every graph op: what each op computes, in its most direct spelling.

It is the oracle the compiler is tested against (through the interpreter) and what
fold-constant evaluates, so it belongs to the ops' definition, not to a runtime: passes
fold with it without importing one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, TensorType, TupleType
from xdsl.ir import Attribute, Operation

from lathe.dialects import dtypes, graph
from lathe.dialects.dtypes import np_dtype
from lathe.errors import LatheError


def _axis_shape(rank: int, axis: int, n: int) -> list[int]:
    shape = [1] * rank
    shape[axis] = n
    return shape


def _bias_add(op, x, b):
    axis = graph.normalize_axis("", op.attrs()["axis"], x.ndim)
    return x + b.reshape(_axis_shape(x.ndim, axis, b.shape[0]))


def _prelu(op, x, alpha):
    axis = graph.normalize_axis("", op.attrs()["axis"], x.ndim)
    al = alpha.reshape(_axis_shape(x.ndim, axis, alpha.shape[0]))
    return np.where(x < 0, al * x, x)


def _matmul(op, a, b):
    at = op.attrs()
    return (a.T if at["transpose_a"] else a) @ (b.T if at["transpose_b"] else b)


def _batch_matmul(op, a, b):
    at = op.attrs()
    a = a.transpose(0, 2, 1) if at["transpose_a"] else a
    b = b.transpose(0, 2, 1) if at["transpose_b"] else b
    return np.matmul(a, b)


def _trunc_div(a, b):
    """Integer divide rounds toward zero, as TVM's (C's) does; numpy's // floors. Where the
    hardware would trap, the compiled code's answers: x / 0 = 0, INT_MIN / -1 wraps. (|INT_MIN|
    overflows, so the quotient is not built from absolute values.)"""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        q = np.floor_divide(a, b)
        r = np.remainder(a, b)
    toward_zero = q + ((r != 0) & ((a < 0) != (b < 0))).astype(q.dtype)
    return np.where(b == 0, np.zeros_like(q), toward_zero)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _windows(x, kh, kw, sh, sw, dh, dw):
    """x: (N, C, H, W) padded → (N, C, OH, OW, KH, KW) views of the pooling/conv windows."""
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (eh, ew), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def _to_nchw(x, layout):
    return x if layout == "NCHW" else x.transpose(0, 3, 1, 2)


def _from_nchw(x, layout):
    return x if layout == "NCHW" else x.transpose(0, 2, 3, 1)


def _conv2d(op, x, w):
    g = graph.Conv2dOp.geometry("", op.data.type, op.weight.type, op.attrs())
    x = _to_nchw(x, g["layout"])
    klayout = g["klayout"]
    if g["kblock"]:  # [O/b, KH, KW, I, b] → OHWI
        w, klayout = w.transpose(0, 4, 1, 2, 3).reshape(g["o"], g["kh"], g["kw"], g["i"]), "OHWI"
    w = w.transpose([klayout.index(c) for c in "OIHW"])  # → OIHW
    xp = np.pad(x, ((0, 0), (0, 0), (g["pt"], g["pb"]), (g["pl"], g["pr"])))
    win = _windows(xp, g["kh"], g["kw"], g["sh"], g["sw"], g["dh"], g["dw"])[:, :, : g["oh"], : g["ow"]]
    G = g["groups"]
    n, c = x.shape[:2]
    win = win.reshape(n, G, c // G, g["oh"], g["ow"], g["kh"], g["kw"])
    wg = w.reshape(G, w.shape[0] // G, w.shape[1], g["kh"], g["kw"])
    out = np.einsum("ngcyxhw,gochw->ngoyx", win, wg, optimize=True).reshape(n, w.shape[0], g["oh"], g["ow"])
    return _from_nchw(out, g["layout"])


def _conv2d_transpose(op, x, w):
    g = graph.Conv2dTransposeOp.geometry("", op.data.type, op.weight.type, op.attrs())
    n, c, h, wd = x.shape
    G, og = g["groups"], g["og"]
    full_h = (h - 1) * g["sh"] + g["dh"] * (g["kh"] - 1) + 1
    full_w = (wd - 1) * g["sw"] + g["dw"] * (g["kw"] - 1) + 1
    out = np.zeros((n, G * og, max(full_h, g["pt"] + g["oh"]), max(full_w, g["pl"] + g["ow"])), dtype=np.float64)
    xg = x.reshape(n, G, c // G, h, wd).astype(np.float64)
    wg = w.reshape(G, c // G, og, g["kh"], g["kw"]).astype(np.float64)
    for i in range(g["kh"]):
        for j in range(g["kw"]):
            contrib = np.einsum("ngchw,gco->ngohw", xg, wg[:, :, :, i, j]).reshape(n, G * og, h, wd)
            y0, x0 = i * g["dh"], j * g["dw"]
            out[:, :, y0 : y0 + (h - 1) * g["sh"] + 1 : g["sh"], x0 : x0 + (wd - 1) * g["sw"] + 1 : g["sw"]] += contrib
    return out[:, :, g["pt"] : g["pt"] + g["oh"], g["pl"] : g["pl"] + g["ow"]]


def _pool(op, x, kind):
    a = op.attrs()
    g = graph.Pool2dBase.geometry("", op.data.type, a)
    x = _to_nchw(x, g["layout"]).astype(np.float64)
    # explicit padding, plus the extra rows/columns a ceil-mode window reaches
    need_h = (g["oh"] - 1) * g["sh"] + g["dh"] * (g["kh"] - 1) + 1
    need_w = (g["ow"] - 1) * g["sw"] + g["dw"] * (g["kw"] - 1) + 1
    extra_b = max(0, need_h - (g["h"] + g["pt"] + g["pb"]))
    extra_r = max(0, need_w - (g["w"] + g["pl"] + g["pr"]))
    pads = ((0, 0), (0, 0), (g["pt"], g["pb"] + extra_b), (g["pl"], g["pr"] + extra_r))
    args = (g["kh"], g["kw"], g["sh"], g["sw"], g["dh"], g["dw"])
    if kind == "max":
        xp = np.pad(x, pads, constant_values=-np.inf)
        out = _windows(xp, *args)[:, :, : g["oh"], : g["ow"]].max(axis=(4, 5))
    else:
        total = _windows(np.pad(x, pads), *args)[:, :, : g["oh"], : g["ow"]].sum(axis=(4, 5))
        ones = np.ones((1, 1, g["h"], g["w"]))
        if a["count_include_pad"]:  # the explicit padding counts, the ceil-mode overhang does not
            ones = np.pad(ones, ((0, 0), (0, 0), (g["pt"], g["pb"]), (g["pl"], g["pr"])), constant_values=1)
            cpads = ((0, 0), (0, 0), (0, extra_b), (0, extra_r))
        else:
            cpads = pads
        count = _windows(np.pad(ones, cpads), *args)[:, :, : g["oh"], : g["ow"]].sum(axis=(4, 5))
        out = total / count
    return _from_nchw(out, g["layout"])


def _global_pool(op, x, fn):
    layout = op.attrs()["layout"]
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    return fn(x, axis=axes, keepdims=True)


def _adaptive_avg_pool(op, x):
    oh, ow = graph.shape_of(op.result.type)[2:]
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), dtype=np.float64)
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def _row_max(x, axis):
    """max over axis, keeping it; an empty axis has no elements to normalise (numpy's max
    refuses it), and its -inf identity leaves the empty result empty."""
    return np.max(x, axis=axis, keepdims=True, initial=-np.inf)


def _softmax(op, x):
    axis = op.attrs()["axis"]
    e = np.exp(x - _row_max(x, axis))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(op, x):
    axis = op.attrs()["axis"]
    m = _row_max(x, axis)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _layer_norm(op, x, gamma, beta):
    a = op.attrs()
    axis = graph.normalize_axis("", a["axis"], x.ndim)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axis, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axis, keepdims=True)
    out = (x64 - mean) / np.sqrt(var + a["epsilon"])
    shape = _axis_shape(x.ndim, axis, x.shape[axis])
    if a["scale"]:
        out = out * gamma.reshape(shape)
    if a["center"]:
        out = out + beta.reshape(shape)
    return out


def _batch_norm(op, x, gamma, beta, mean, var):
    a = op.attrs()
    axis = graph.normalize_axis("", a["axis"], x.ndim)
    shape = _axis_shape(x.ndim, axis, x.shape[axis])
    out = (x.astype(np.float64) - mean.reshape(shape)) / np.sqrt(var.reshape(shape).astype(np.float64) + a["epsilon"])
    if a["scale"]:
        out = out * gamma.reshape(shape)
    if a["center"]:
        out = out + beta.reshape(shape)
    return (out.astype(x.dtype), mean, var)


def _lrn(op, x):
    a = op.attrs()
    axis = graph.normalize_axis("", a["axis"], x.ndim)
    size = a["size"]
    sq = np.moveaxis(x.astype(np.float64) ** 2, axis, 0)
    c = sq.shape[0]
    acc = np.zeros_like(sq)
    before, after = (size - 1) // 2, size // 2
    for k in range(c):
        acc[k] = sq[max(0, k - before) : min(c, k + after + 1)].sum(axis=0)
    acc = np.moveaxis(acc, 0, axis)
    return x / (a["bias"] + a["alpha"] / size * acc) ** a["beta"]


def _power(a, b):
    """Integers wrap as numpy's; a negative exponent, which numpy refuses, gives the float64
    power truncated toward zero (2 ** -1 is 0), as the compiled code and TVM compute it."""
    if np.issubdtype(a.dtype, np.floating):
        return np.power(a, b)
    negative = b < 0
    wrapped = np.power(a, np.where(negative, 0, b).astype(b.dtype))
    with np.errstate(all="ignore"):  # 0 ** -1 is inf: no integer (poison in the compiled code)
        truncated = np.trunc(np.power(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    return np.where(negative, truncated.astype(wrapped.dtype), wrapped)


def _pad(op, x):
    a = op.attrs()
    mode = a["pad_mode"]
    width = np.asarray(a["pad_width"], dtype=np.int64).reshape(x.ndim, 2)
    if x.ndim == 0:  # nothing to pad (and np.pad fails on a scalar's empty width list)
        return x.copy()
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=a["pad_value"])
    return np.pad(x, width, mode=mode)


def resize_source(mode: str, out_size: int, in_size: int, i):
    """Input coordinate of output index `i` (numpy or te expression) for one axis."""
    scale = in_size / out_size
    if mode == "half_pixel":
        return (i + 0.5) * scale - 0.5
    if mode == "pytorch_half_pixel":
        return (i + 0.5) * scale - 0.5 if out_size > 1 else i * 0.0
    if mode == "align_corners":
        return i * ((in_size - 1) / (out_size - 1)) if out_size > 1 else i * 0.0
    if mode == "tf_half_pixel_for_nn":
        return (i + 0.5) * scale
    return i * scale  # asymmetric


def nearest_rounded(src, rounding: str, floor, ceil):
    """resize2d's nearest-neighbour rounding of a source coordinate (numpy or te expression)."""
    if rounding in ("", "round", "round_prefer_ceil"):
        return floor(src + 0.5)
    if rounding == "round_prefer_floor":
        return ceil(src - 0.5)
    if rounding == "floor":
        return floor(src)
    return ceil(src)


def _nearest_index(src, in_size, rounding):
    return np.clip(nearest_rounded(src, rounding, np.floor, np.ceil), 0, in_size - 1).astype(np.int64)


def _resize2d(op, x):
    a = op.attrs()
    layout = a["layout"]
    x = _to_nchw(x, layout)
    _, _, h, w = x.shape
    oh, ow = graph.pair("", a, "size")
    mode = a["coordinate_transformation_mode"]
    sy = resize_source(mode, oh, h, np.arange(oh, dtype=np.float64))
    sx = resize_source(mode, ow, w, np.arange(ow, dtype=np.float64))
    if a["method"] == "nearest_neighbor":
        rounding = a["rounding_method"] or ("floor" if mode == "asymmetric" else "round")
        yi, xi = _nearest_index(sy, h, rounding), _nearest_index(sx, w, rounding)
        out = x[:, :, yi][:, :, :, xi]
    else:
        sy, sx = np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)
        y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        fy, fx = (sy - y0)[:, None], (sx - x0)[None, :]
        xa = x.astype(np.float64)
        top = xa[:, :, y0][:, :, :, x0] * (1 - fx) + xa[:, :, y0][:, :, :, x1] * fx
        bot = xa[:, :, y1][:, :, :, x0] * (1 - fx) + xa[:, :, y1][:, :, :, x1] * fx
        out = top * (1 - fy) + bot * fy
    return _from_nchw(out, layout)


def _reduce(fn):
    def run(op, x):
        a = op.attrs()
        axes = tuple(graph.reduce_axes("", a, x.ndim))
        if fn in (np.max, np.min) and x.size == 0:  # the combiner's identity, as compiled code gives
            t = op.data.type.element_type
            initial = x.dtype.type(dtypes.lowest(t) if fn is np.max else dtypes.highest(t))
            return fn(x, axis=axes, keepdims=bool(a["keepdims"]), initial=initial)
        return fn(x, axis=axes, keepdims=bool(a["keepdims"]))

    return run


def _arg_reduce(fn):
    def run(op, x):
        a = op.attrs()
        axes = graph.reduce_axes("", a, x.ndim)
        rest = [d for d in range(x.ndim) if d not in axes]
        moved = x.transpose(rest + axes).reshape([x.shape[d] for d in rest] + [math.prod(x.shape[d] for d in axes)])
        if a["select_last_index"]:
            n = moved.shape[-1]
            idx = n - 1 - fn(moved[..., ::-1], axis=-1)
        else:
            idx = fn(moved, axis=-1)
        if a["keepdims"]:
            idx = idx.reshape([1 if d in axes else x.shape[d] for d in range(x.ndim)])
        return idx

    return run


def _variance(op, x):
    a = op.attrs()
    axes = tuple(graph.reduce_axes("", a, x.ndim))
    return np.var(x.astype(np.float64), axis=axes, keepdims=bool(a["keepdims"]), ddof=1 if a["unbiased"] else 0)


def _strided_slice(op, x):
    bounds = graph.slice_bounds("", list(x.shape), op.attrs())
    if not bounds:
        return x
    return x[np.ix_(*[b + s * np.arange(n) for b, s, n in bounds])]


def _take(op, x, idx):
    a = op.attrs()
    mode = "wrap" if a["mode"] == "wrap" else "clip"
    return np.take(x, idx, axis=a["axis"], mode=mode)


def _gather(op, x, idx):
    """ONNX GatherElements: indices may be smaller than data off the axis; negatives wrap once."""
    axis = graph.normalize_axis("", op.attrs()["axis"], x.ndim)
    n = x.shape[axis]
    sel = idx.astype(np.int64)
    sel = np.clip(np.where(sel < 0, sel + n, sel), 0, n - 1)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = sel
    return x[tuple(grid)]


def _split(op, x):
    axis, parts = graph.SplitOp.bounds("", list(x.shape), op.attrs())
    return tuple(np.take(x, range(b, e), axis=axis) for b, e in parts)


def _clip(op, x):
    lo, hi = op.bounds()
    return np.minimum(np.maximum(x, np.asarray(lo, x.dtype)), np.asarray(hi, x.dtype))


def _cast(op, x):
    return x.astype(np_dtype(op.result.type.element_type))


def _result_fill(value):
    def run(op, *args):
        return np.full(graph.shape_of(op.result.type), value, dtype=np_dtype(op.result.type.element_type))

    return run


def _arange(op):
    a = op.attrs()
    n = graph.shape_of(op.result.type)[0]
    dt = np_dtype(op.result.type.element_type)
    if np.issubdtype(dt, np.integer):
        return (int(a["start"]) + np.arange(n, dtype=np.int64) * int(a["step"])).astype(dt)
    return (a["start"] + np.arange(n, dtype=np.float64) * a["step"]).astype(dt)


def topk_order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    """Indices that sort `x` along `axis`, equal values by index (ONNX TopK's rule), NaN as the
    largest value (numpy's sort order): a stable sort, or for descending order a stable sort of
    the reversed axis, reversed."""
    if ascending:
        return np.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    rev = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return np.flip(n - 1 - rev, axis)


def _topk(op, x):
    a = op.attrs()
    axis = graph.normalize_axis("", a["axis"], x.ndim)
    k = graph.topk_count("", a["k"], x.shape[axis])
    order = np.take(topk_order(x, axis, a["is_ascend"]), np.arange(k), axis=axis)
    values = np.take_along_axis(x, order, axis)
    indices = order.astype(np_dtype(graph.DTYPES[a["dtype"]]))
    return {"both": (values, indices), "values": values, "indices": indices}[a["ret_type"]]


def _winograd_input_transform(op, x):
    g = graph.WinogradInputTransformOp.geometry("", op.data.type, op.attrs())
    m, a = g["m"], g["m"] + 2
    bt = graph.winograd_matrices("", m)[0]
    n, th, tw = g["n"], g["th"], g["tw"]
    xp = np.zeros((n, th * m + 2, tw * m + 2, g["c"]), dtype=np.float64)  # every tile's pixels, zero outside x
    rows, cols = min(g["h"], th * m + 2 - g["pt"]), min(g["w"], tw * m + 2 - g["pl"])
    xp[:, g["pt"] : g["pt"] + rows, g["pl"] : g["pl"] + cols] = x[:, :rows, :cols]
    win = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(1, 2))[:, ::m, ::m]  # n, th, tw, c, i, j
    v = np.einsum("xi,ntwcij,yj->xyntwc", bt, win, bt, optimize=True)
    return v.reshape(a * a, n * th * tw, g["c"])


def _winograd_weight_transform(op, w):
    m, c, k = op.attrs()["tile_size"], w.shape[2], w.shape[3]
    g = graph.winograd_matrices("", m)[1]
    return np.einsum("xi,ijck,yj->xyck", g, w.astype(np.float64), g).reshape((m + 2) ** 2, c, k)


def _winograd_output_transform(op, mm):
    g = graph.WinogradOutputTransformOp.geometry("", op.data.type, op.attrs())
    m, a = g["m"], g["m"] + 2
    at = graph.winograd_matrices("", m)[2]
    t = mm.astype(np.float64).reshape(a, a, g["n"], g["th"], g["tw"], g["k"])
    y = np.einsum("ix,jy,xyntwk->ntiwjk", at, at, t, optimize=True)
    y = y.reshape(g["n"], g["th"] * m, g["tw"] * m, g["k"])
    return y[:, : g["oh"], : g["ow"]]


REFERENCE: dict[type[Operation], Callable] = {
    graph.LeakyReluOp: lambda op, x: np.where(x < 0, op.attrs()["alpha"] * x, x),
    graph.LogicalNotOp: lambda op, x: np.logical_not(x),
    graph.ClipOp: _clip,
    graph.CastOp: _cast,
    graph.DropoutOp: lambda op, x: (x, np.ones_like(x)),
    graph.DivideOp: lambda op, a, b: _trunc_div(a, b) if np.issubdtype(a.dtype, np.integer) else a / b,
    graph.PowerOp: lambda op, a, b: _power(a, b),
    graph.EqualOp: lambda op, a, b: a == b,
    graph.NotEqualOp: lambda op, a, b: a != b,
    graph.LessOp: lambda op, a, b: a < b,
    graph.LessEqualOp: lambda op, a, b: a <= b,
    graph.GreaterOp: lambda op, a, b: a > b,
    graph.GreaterEqualOp: lambda op, a, b: a >= b,
    graph.LogicalAndOp: lambda op, a, b: np.logical_and(a, b),
    graph.LogicalOrOp: lambda op, a, b: np.logical_or(a, b),
    graph.WhereOp: lambda op, c, a, b: np.where(c, a, b),
    graph.DenseOp: lambda op, x, w: np.matmul(x, w.T),
    graph.DensePackOp: lambda op, x, w: np.matmul(x, w.transpose(0, 2, 1).reshape(-1, w.shape[1]).T),
    graph.BatchMatmulPackOp: lambda op, a, b: np.matmul(a, b.transpose(0, 2, 1, 3).reshape(b.shape[0], b.shape[2], -1)),
    graph.MatmulOp: _matmul,
    graph.BatchMatmulOp: _batch_matmul,
    graph.Conv2dOp: _conv2d,
    graph.Conv2dTransposeOp: _conv2d_transpose,
    graph.WinogradWeightTransformOp: _winograd_weight_transform,
    graph.WinogradInputTransformOp: _winograd_input_transform,
    graph.WinogradOutputTransformOp: _winograd_output_transform,
    graph.BiasAddOp: _bias_add,
    graph.PReluOp: _prelu,
    graph.SoftmaxOp: _softmax,
    graph.LogSoftmaxOp: _log_softmax,
    graph.LayerNormOp: _layer_norm,
    graph.BatchNormOp: _batch_norm,
    graph.LRNOp: _lrn,
    graph.MaxPool2dOp: lambda op, x: _pool(op, x, "max"),
    graph.AvgPool2dOp: lambda op, x: _pool(op, x, "avg"),
    graph.GlobalAvgPool2dOp: lambda op, x: _global_pool(op, x, np.mean),
    graph.GlobalMaxPool2dOp: lambda op, x: _global_pool(op, x, np.max),
    graph.AdaptiveAvgPool2dOp: _adaptive_avg_pool,
    graph.PadOp: _pad,
    graph.BatchFlattenOp: lambda op, x: x.reshape(graph.shape_of(op.result.type)),  # (-1 is ambiguous at batch 0)
    graph.Resize2dOp: _resize2d,
    graph.SumOp: _reduce(np.sum),
    graph.MeanOp: _reduce(np.mean),
    graph.MaxOp: _reduce(np.max),
    graph.MinOp: _reduce(np.min),
    graph.ProdOp: _reduce(np.prod),
    graph.ArgmaxOp: _arg_reduce(np.argmax),
    graph.ArgminOp: _arg_reduce(np.argmin),
    graph.VarianceOp: _variance,
    graph.ReshapeOp: lambda op, x: x.reshape(graph.shape_of(op.result.type)),
    graph.TransposeOp: lambda op, x: x.transpose(graph.TransposeOp.perm("", x.ndim, op.attrs())),
    graph.SqueezeOp: lambda op, x: x.reshape(graph.shape_of(op.result.type)),
    graph.ExpandDimsOp: lambda op, x: x.reshape(graph.shape_of(op.result.type)),
    graph.ConcatenateOp: lambda op, t: np.concatenate(t, axis=op.attrs()["axis"]),
    graph.StackOp: lambda op, t: np.stack(t, axis=op.attrs()["axis"]),
    graph.SplitOp: _split,
    graph.StridedSliceOp: _strided_slice,
    graph.TakeOp: _take,
    graph.GatherOp: _gather,
    graph.TileOp: lambda op, x: np.tile(x, op.attrs()["reps"]),
    graph.BroadcastToOp: lambda op, x: np.broadcast_to(x, op.attrs()["shape"]),
    graph.ZerosOp: _result_fill(0),
    graph.OnesOp: _result_fill(1),
    graph.FullOp: lambda op, v: np.full(op.attrs()["shape"], v, dtype=np_dtype(op.result.type.element_type)),
    graph.ZerosLikeOp: _result_fill(0),
    graph.OnesLikeOp: _result_fill(1),
    graph.FullLikeOp: lambda op, x, v: np.full(x.shape, v, dtype=x.dtype),
    graph.ArangeOp: _arange,
    graph.TopkOp: _topk,
    graph.TupleOp: lambda op, *xs: tuple(xs),
    graph.TupleGetItemOp: lambda op, t: t[op.index.value.data],
}


def constant_value(op: graph.ConstantOp) -> np.ndarray:
    t = op.result.type
    assert isinstance(t, TensorType)
    name = graph.dtype_name(t.element_type)
    raw = np.frombuffer(op.value.data.data, dtype=dtypes.BY_NAME[name].storage)  # type: ignore[union-attr]
    arr = (raw != 0) if name == "bool" else raw.astype(np_dtype(t.element_type), copy=False)
    shape = tuple(t.get_shape())
    if arr.size == 1:  # a splat
        return np.full(shape, arr[0], dtype=arr.dtype)
    return arr.reshape(shape).copy()


def cast_result(op: Operation, value):
    t = op.results[0].type
    if isinstance(t, TensorType):
        arr = np.asarray(value).astype(np_dtype(t.element_type), copy=False)
        if not graph.is_dynamic(t):
            return arr.reshape(tuple(t.get_shape()))
        if not fits(arr.shape, t):
            raise LatheError(f"{op.name}: its result has shape {arr.shape} but {graph.type_str(t)} was inferred")
        return arr
    return value


def fits(shape: tuple[int, ...], t: TensorType | MemRefType) -> bool:
    """Whether an array of `shape` is a value of `t`: a `?` dimension takes any size."""
    want = tuple(t.get_shape())
    return len(shape) == len(want) and all(w in (DYNAMIC_INDEX, s) for w, s in zip(want, shape))


def check_value(name: str, value, t: Attribute, where: str = "") -> np.ndarray:
    if isinstance(t, TupleType):
        raise LatheError(f"{where}tuple-typed parameter %{name} is not supported as an input")
    if not isinstance(t, TensorType | MemRefType):
        raise LatheError(f"{where}parameter %{name} of type {graph.type_str(t)} cannot be given as an input")
    arr = np.asarray(value)
    want_dt = np_dtype(t.element_type)
    if not fits(arr.shape, t):
        raise LatheError(f"{where}%{name} has shape {arr.shape} but {graph.type_str(t)} was expected")
    if arr.dtype != want_dt:
        if np.can_cast(arr.dtype, want_dt, casting="same_kind"):
            arr = arr.astype(want_dt)
        else:
            raise LatheError(f"{where}%{name} has dtype {arr.dtype} but {graph.type_str(t)} was expected")
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d arrays 1-d)


# The math namespace an op's `scalar` formula is written in, for numpy. Floats are computed
# in float64 and rounded once to the result dtype: the oracle is at least as exact as any
# compiled code it judges.
NUMPY_MATH = SimpleNamespace(
    exp=np.exp,
    log=np.log,
    sqrt=np.sqrt,
    tanh=np.tanh,
    erf=_erf,
    floor=np.floor,
    ceil=np.ceil,
    round_even=np.round,
    abs=np.abs,
    maximum=np.maximum,
    minimum=np.minimum,
)


def _from_scalar(op, *xs):
    xs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in xs]
    with np.errstate(all="ignore"):  # inf and NaN are values here, as in compiled code
        return type(op).scalar(NUMPY_MATH, *xs)


REFERENCE.update({cls: _from_scalar for cls in graph.GRAPH_OPS if hasattr(cls, "scalar") and cls not in REFERENCE})


# Ops that, as in TVM's computes, cast their operands to the result dtype (`out_dtype`) before
# multiplying, so float operands with an int8 out_dtype are truncated term by term, not summed first.
PRODUCTS_IN_RESULT_DTYPE = (
    graph.DenseOp,
    graph.DensePackOp,
    graph.MatmulOp,
    graph.BatchMatmulOp,
    graph.BatchMatmulPackOp,
    graph.Conv2dOp,
    graph.Conv2dTransposeOp,
)


def evaluate(op: Operation, *args):
    """op's result on numpy arrays, in its result dtype and shape."""
    if isinstance(op, graph.ConstantOp):
        return constant_value(op)
    if isinstance(op, PRODUCTS_IN_RESULT_DTYPE):
        dt = np_dtype(op.result.type.element_type)
        with np.errstate(all="ignore"):
            args = tuple(a.astype(dt) for a in args)
    return cast_result(op, REFERENCE[type(op)](op, *args))
