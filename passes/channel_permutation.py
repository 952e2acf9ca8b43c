"""Channel permutations as one op, take(x, P, axis), that alter-op-layout moves and removes.

A channel shuffle (ShuffleNet's reshape to (N, g, C/g, H, W), transpose, reshape back) is a
permutation of one axis spelled as three ops whose 5-D middle no layout rewrite can see
through, so in an NHWC network it pinned an NCHW island (transposes, a shuffle, NCHW split
slices) into every unit. As take with constant indices it is one op that:

* moves through transposes like a slice (alter-op-layout's SinkTranspose maps its axis), so
  the shuffle, the split after it and the concat before it all run in NHWC;
* composes: a slice of it (a split) is a take of the sliced indices, a take of a take one take,
  and indices in a run with one stride are a strided_slice (the identity, nothing);
* sinks through what treats the axis's entries one by one (elementwise ops, bias_add, pooling,
  a channel pad, a depthwise convolution: their per-channel operands permuted by P's inverse);
* vanishes into a convolution or dense layer that reads it: their weight's input channels
  are permuted instead (w' = take(w, P⁻¹)), a graph op fold-constant evaluates once, so a
  shuffle that only convolutions read costs nothing at run time.

Only permutations (each index once) move through weights; a take that selects a subset (half
of a shuffle, split off) stays a gather kernel.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import UnitAttr, i64
from xdsl.ir import Operation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.passes.canonicalize import constant_of
from lathe.passes.channel_padding import (
    CUT_BINARY,
    FINITE_UNARY,
    PAD_SLICE,
    SINK_BINARY,
    SINK_UNARY,
    finite_constant,
    marked_cut,
    pad_axis,
    padded_cut,
    padded_width,
    tensor_size,
)
from lathe.passes.outline import carry_location


def _taken(v) -> tuple | None:
    """(y, indices, axis) when v = take(y, constant 1-D indices, axis), the indices resolved
    to in-range positions by the take's mode; None for anything else."""
    t = v.owner
    if not isinstance(t, graph.TakeOp):
        return None
    a = t.attrs()
    idx = constant_of(t.indices)
    if a["axis"] is None or idx is None or idx.ndim != 1:
        return None
    axis = graph.normalize_axis("", a["axis"], len(shape_of(t.data.type)))
    n = shape_of(t.data.type)[axis]
    idx = idx.astype(np.int64)
    if a["mode"] == "wrap":
        idx = idx % n
    elif a["mode"] == "clip":
        idx = np.clip(idx, 0, n - 1)
    elif (idx < 0).any() or (idx >= n).any():
        return None  # mode fast out of range: undefined, leave it
    return t.data, idx, axis


def _is_permutation(idx: np.ndarray, n: int) -> bool:
    return len(idx) == n and bool(np.array_equal(np.sort(idx), np.arange(n)))


def _junk(v) -> bool:
    """Whether v is a take marked PAD_SLICE: the entries of its source it does not select are
    channel padding (finite wherever the real entries are), so a reader may read the source in
    their place, its weights zero there. Such a take selects each entry at most once."""
    return isinstance(v.owner, graph.TakeOp) and PAD_SLICE in v.owner.attributes


def _movable(v, idx: np.ndarray, n: int) -> bool:
    """Whether readers of v = take(y, idx) may read y in its place: idx is a permutation of y's
    n entries, or the others are padding."""
    return _is_permutation(idx, n) or _junk(v)


def _take(v, idx: np.ndarray, axis: int, junk: bool = False) -> list[Operation]:
    """take(v, idx, axis) with its constant indices (marked PAD_SLICE when the entries it
    drops are padding)."""
    c = graph.ConstantOp.from_array(np.asarray(idx, dtype=np.int64), i64)
    t = make_op("take", [v, c.result], axis=axis)
    if junk:
        t.attributes[PAD_SLICE] = UnitAttr()
    return [c, t]


def _scatter(w, idx: np.ndarray, width: int, axis: int) -> list[Operation]:
    """w' with w'[idx[c]] = w[c] along axis and zeros at the entries idx does not select, for
    a reader of take(y, idx) moved onto y (width entries): a take by the inverse permutation,
    or one of w padded with a zero entry."""
    if _is_permutation(idx, width):
        return _take(w, np.argsort(idx), axis)
    n = shape_of(w.type)[axis]
    where = np.full(width, n, dtype=np.int64)
    where[idx] = np.arange(len(idx))
    zero = pad_axis(w, axis, 1)
    return [zero, *_take(zero.results[0], where, axis)]


def _props(op: Operation) -> dict:
    return {k: v for k, v in op.attrs().items() if k in op.properties}  # type: ignore[attr-defined]


class ShuffleToTake(RewritePattern):
    """reshape(transpose(reshape(x, split one axis into factors), permute the factors), shape(x))
    → take(x, P, axis): the channel shuffle as the permutation it is."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.ReshapeOp) or not isinstance(op.data.owner, graph.TransposeOp):
            return
        t = op.data.owner
        split = t.data.owner
        if not isinstance(split, graph.ReshapeOp):
            return
        x = split.data
        xs, mid = shape_of(x.type), shape_of(split.result.type)
        if shape_of(op.result.type) != xs:
            return
        m = len(mid) - len(xs) + 1  # the factors one axis of x is split into
        axis = next(
            (
                a
                for a in range(len(xs))
                if m >= 2
                and mid[:a] == xs[:a]
                and mid[a + m :] == xs[a + 1 :]
                and int(np.prod(mid[a : a + m])) == xs[a]
            ),
            None,
        )
        if axis is None:
            return
        p = graph.TransposeOp.perm("", len(mid), t.attrs())
        if any(p[d] != d for d in range(len(mid)) if not axis <= d < axis + m):
            return  # it moves other axes too: not a permutation of one axis
        local = [p[axis + k] - axis for k in range(m)]
        idx = np.arange(xs[axis]).reshape(mid[axis : axis + m]).transpose(local).reshape(-1)
        rewriter.replace(op, carry_location(op, _take(x, idx, axis)))


def _run_of(v, axis: int) -> tuple | None:
    """(y, b, s) when v = strided_slice(y) taking y[b::s] along axis only (s ≥ 1)."""
    s = v.owner
    if not isinstance(s, graph.StridedSliceOp):
        return None
    shape = shape_of(s.data.type)
    bounds = graph.slice_bounds("", shape, s.attrs())
    if any((b, st, n) != (0, 1, shape[d]) for d, (b, st, n) in enumerate(bounds) if d != axis):
        return None
    b, st, _ = bounds[axis]
    return (s.data, b, st) if st >= 1 else None


class SimplifyTake(RewritePattern):
    """take(y, idx, axis) with idx = b, b+s, ..., (s ≥ 1) → strided_slice(y) (y itself when it
    selects everything in order); take(take(y, i, axis), j, axis) → take(y, i[j], axis), and
    take(y[b::s], idx) → take(y, b + s·idx)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.TakeOp):
            return
        t = _taken(op.results[0])
        if t is None:
            return
        y, idx, axis = t
        inner = _taken(y)
        if inner is not None and inner[2] == axis:
            rewriter.replace(op, carry_location(op, _take(inner[0], inner[1][idx], axis)))
            return
        run = _run_of(y, axis)
        if run is not None and not (PAD_SLICE in y.owner.attributes and _is_permutation(idx, len(idx))):
            # (a permutation below a padding cut stays there, where SliceOfTake puts it)  # a take of a slice (a split's half, a padding cut) reads its source
            src, b, step = run
            rewriter.replace(op, carry_location(op, _take(src, b + step * idx, axis, _junk(op.results[0]))))
            return
        n = shape_of(y.type)[axis]
        step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
        if step < 1 or not np.array_equal(idx, idx[0] + step * np.arange(len(idx))):
            return
        if idx[0] == 0 and step == 1 and len(idx) == n:
            rewriter.replace(op, [], [y])
            return
        if _junk(op.results[0]) and idx[0] == 0 and step == 1:
            s = marked_cut(y, len(idx))  # still a padding cut, for the rewrites that absorb those
        else:
            s = make_op("strided_slice", [y], begin=[int(idx[0])], end=[int(idx[-1]) + 1], strides=[step], axes=[axis])
        rewriter.replace(op, carry_location(op, [s]))


class SliceOfTake(RewritePattern):
    """strided_slice(take(y, idx, axis)) along axis → take(y, the sliced idx, axis): a split
    after a shuffle gathers each half straight from the unshuffled tensor. A padding cut
    (PAD_SLICE) of a take is a padding take (what it drops is padding either way) when the take
    is one, or, when the take keeps the first n channels among themselves, the take of the cut
    (cut(y) first): takes stay below cuts, so the padding rewrites still see theirs."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.StridedSliceOp):
            return
        t = _taken(op.data)
        if t is None:
            return
        y, idx, axis = t
        shape = shape_of(op.data.type)
        bounds = graph.slice_bounds("", shape, op.attrs())
        if any((b, s, n) != (0, 1, shape[d]) for d, (b, s, n) in enumerate(bounds) if d != axis):
            return
        b, s, n = bounds[axis]
        sub = idx[b + s * np.arange(n)]
        if PAD_SLICE in op.attributes:
            if axis != len(shape) - 1 or not _movable(op.data, idx, shape_of(y.type)[axis]):
                return  # (PadTake's widened gathers stay cut where they are)
            if _junk(op.data):
                rewriter.replace(op, carry_location(op, _take(y, sub, axis, junk=True)))
                return
            if not _is_permutation(sub, n):
                return
            cut = marked_cut(y, n)
            same = np.array_equal(sub, np.arange(n))
            rewriter.replace(op, carry_location(op, [cut] if same else [cut, *_take(cut.results[0], sub, axis)]))
            return
        rewriter.replace(op, carry_location(op, _take(y, sub, axis)))


class SinkTake(RewritePattern):
    """f(take(y, P, axis)) → take(f'(y), P, axis) for f that treats the axis's entries one by
    one, where P is a permutation or the take a padding one (then only f that keeps the padding
    finite, as HoistPadCut): elementwise ops, bias_add (its bias permuted by P⁻¹ along the axis,
    zero on padding), binary ops of two equal takes or of a take and a smaller operand (permuted
    by P⁻¹ where it spans the axis), pooling over other axes, and a constant pad (P extended
    over the new entries)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        pre: list[Operation] = []
        t = _taken(op.operands[0]) if op.operands else None
        if t is None:
            return
        y, idx, axis = t
        junk = _junk(op.operands[0])
        width = shape_of(y.type)[axis]
        if not _movable(op.operands[0], idx, width):
            return
        if isinstance(op, SINK_UNARY):
            if junk and not isinstance(op, FINITE_UNARY):
                return
            new = type(op).create_inferred([y], dict(op.properties))
        elif isinstance(op, graph.BiasAddOp):
            bias = op.bias
            if graph.normalize_axis("", op.attrs()["axis"], len(shape_of(y.type))) == axis:
                pre = _scatter(bias, idx, width, 0)
                bias = pre[-1].results[0]
            new = make_op("nn.bias_add", [y, bias], **_props(op))
        elif isinstance(op, SINK_BINARY):
            found = self.binary(op, junk)
            if found is None:
                return
            pre, operands = found
            new = type(op).create_inferred(operands, dict(op.properties))
        elif isinstance(op, graph.Pool2dBase | graph.GlobalPool2dBase):
            layout = op.attrs()["layout"]
            if len(layout) != len(shape_of(y.type)) or layout[axis] in "HW":
                return
            new = make_op(op.relay_name(), [y], **_props(op))
        elif isinstance(op, graph.PadOp):
            a = op.attrs()
            if a["pad_mode"] != "constant" or not np.isfinite(a["pad_value"]):
                return
            lo, hi = a["pad_width"][axis]
            if junk and lo + hi:
                return  # a padding take widened for a depthwise conv: AbsorbTake reads through both
            idx = np.concatenate([np.arange(lo), idx + lo, lo + width + np.arange(hi)])
            new = make_op("nn.pad", [y], **_props(op))
        else:
            return
        rewriter.replace(op, carry_location(op, [*pre, new, *_take(new.results[0], idx, axis, junk)]))

    @staticmethod
    def binary(op: Operation, junk: bool) -> tuple | None:
        if junk and not isinstance(op, CUT_BINARY):
            return None
        t1, t2 = _taken(op.operands[0]), _taken(op.operands[1])
        if t1 is not None and t2 is not None:
            (y1, i1, a1), (y2, i2, a2) = t1, t2
            if a1 != a2 or y1.type != y2.type or not np.array_equal(i1, i2) or junk != _junk(op.operands[1]):
                return None
            return [], [y1, y2]
        if t1 is None or op.results[0].type != op.operands[0].type:
            return None  # the other operand broadcasts the result wider than the take
        y, idx, axis = t1
        other = op.operands[1]
        os_, rank = shape_of(other.type), len(shape_of(y.type))
        at = axis - (rank - len(os_))  # the other operand's axis that broadcasts against axis
        if junk and not finite_constant(other):
            return None
        pre: list[Operation] = []
        if at >= 0 and os_[at] != 1:
            if tensor_size(other) >= tensor_size(op.operands[0]):
                return None
            pre = _scatter(other, idx, shape_of(y.type)[axis], at)
            other = pre[-1].results[0]
        return pre, [y, other]


def _conv_axes(a: dict) -> tuple[int, int, int] | None:
    """(the data's channel axis, the weight's input- and output-channel axes) of a conv2d."""
    kernel = a["kernel_layout"] or ("OIHW" if a["data_layout"] == "NCHW" else "HWIO")
    if sorted(a["data_layout"]) != sorted("NCHW") or sorted(kernel) != sorted("OIHW"):
        return None
    return a["data_layout"].index("C"), kernel.index("I"), kernel.index("O")


def _tail_zero_pad(v, axis: int) -> tuple | None:
    """(x, k) when v = nn.pad(x) by k zeros at the end of axis only (how ConvToNHWC widens a
    depthwise conv's data to the vector width)."""
    pad = v.owner
    if not isinstance(pad, graph.PadOp):
        return None
    a = pad.attrs()
    widths = [list(w) for w in a["pad_width"]]
    if a["pad_mode"] != "constant" or a["pad_value"] != 0 or widths[axis][0] != 0:
        return None
    if any(w != [0, 0] for d, w in enumerate(widths) if d != axis):
        return None
    return pad.data, widths[axis][1]


class AbsorbTake(RewritePattern):
    """conv2d(take(y, P, channels), w) → conv2d(y, w'), w' = w's input channels scattered by P
    (zero where a padding take drops channels); the same for dense and packed dense (their K
    axis): the take moves into the weight, which fold-constant evaluates. A depthwise conv2d
    keeps channels apart, so the take moves past it: dw(take(y, P), w) → take(dw(y, w'), P), w'
    its filters scattered likewise; dw(pad(take(y, P), k zeros)) → take(dw(y, w'), P + k entries
    of padding, where the conv's zero filters make zeros) for ConvToNHWC's widened depthwise."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.Conv2dOp):
            self.conv(op, rewriter)
        elif isinstance(op, graph.DenseOp | graph.DensePackOp):
            t = _taken(op.data)
            rank = len(shape_of(op.data.type))
            if t is None or t[2] != rank - 1 or not _movable(op.data, t[1], shape_of(t[0].type)[-1]):
                return
            y, idx, _ = t
            w = _scatter(op.operands[1], idx, shape_of(y.type)[-1], 1)  # dense [N, K]; packed [N/bn, K, bn]
            new = make_op(op.relay_name(), [y, w[-1].results[0]], **_props(op))
            rewriter.replace(op, carry_location(op, [*w, new]))

    @staticmethod
    def conv(op: graph.Conv2dOp, rewriter: PatternRewriter) -> None:
        a = op.attrs()
        axes = _conv_axes(a)
        if axes is None or a["out_dtype"]:
            return
        c_axis, i_axis, o_axis = axes
        data, extra = op.data, 0
        ws = shape_of(op.weight.type)
        depthwise = a["groups"] == ws[o_axis] and ws[i_axis] == 1 and a["groups"] > 1
        widened = _tail_zero_pad(data, c_axis) if depthwise else None
        if widened is not None and _junk(widened[0]):
            data, extra = widened
        t = _taken(data)
        if t is None or t[2] != c_axis:
            return
        y, idx, _ = t
        width = shape_of(y.type)[c_axis]
        if not _movable(data, idx, width):
            return
        if a["groups"] == 1:
            w = _scatter(op.weight, idx, width, i_axis)
            new = make_op("nn.conv2d", [y, w[-1].results[0]], **_props(op))
            rewriter.replace(op, carry_location(op, [*w, new]))
            return
        if not depthwise:
            return
        n = len(idx)
        junk = _junk(data)
        w = _scatter(op.weight, idx, width, o_axis) if not extra else []
        if extra:  # the pad's filters see zeros: their outputs are zeros, as at a dropped channel
            head = make_op("strided_slice", [op.weight], begin=[0], end=[n], strides=[1], axes=[o_axis])
            w = [head, *_scatter(head.results[0], idx, width, o_axis)]
            spare = np.setdiff1d(np.arange(width), idx)
            if not len(spare):
                return
            idx = np.concatenate([idx, np.full(extra, spare[0])])
        props = _props(op)
        props["groups"] = width
        if props.get("channels"):
            props["channels"] = width
        new = make_op("nn.conv2d", [y, w[-1].results[0]], **props)
        rewriter.replace(op, carry_location(op, [*w, new, *_take(new.results[0], idx, c_axis, junk)]))


def _fields(concat: graph.ConcatenateOp) -> list | None:
    t = concat.data.owner
    return list(t.operands) if isinstance(t, graph.TupleOp) else None


def _gathered_concat(v, axis: int) -> graph.ConcatenateOp | None:
    """v's concatenate along axis when every use of v is a take of constant indices along it."""
    c = v.owner
    if not isinstance(c, graph.ConcatenateOp) or _fields(c) is None:
        return None
    if graph.normalize_axis("", c.attrs()["axis"], len(shape_of(v.type))) != axis:
        return None
    for use in v.uses:
        t = _taken(use.operation.results[0]) if isinstance(use.operation, graph.TakeOp) else None
        if t is None or use.index != 0 or t[2] != axis:
            return None
    return c


class TakeWholeFields(RewritePattern):
    """take(concatenate(.., f, ..), idx) → take(concatenate(.., y, ..), idx') where a field f is
    a padding cut of y (its first n channels), a padding take of y, or a permutation of y along
    the axis: the take reads y's entries where f's were, so the concatenation copies no cut
    (and its width stays the padded one, a multiple of the vector). Only where takes are all
    that read the concatenation (another reader would keep the old one), and not for a take
    that moves into the weights that read it (AbsorbTake, SinkTake)."""

    def __init__(self, lanes: int = 16):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.TakeOp):
            return
        t = _taken(op.results[0])
        if t is None:
            return
        y, idx, axis = t
        concat = _gathered_concat(y, axis)
        if concat is None or _movable(op.results[0], idx, shape_of(y.type)[axis]):
            return
        widened = _whole_fields(concat, axis, self.lanes)
        if widened is None:
            return
        whole, at, keep = widened
        tup = make_op("tuple", whole)
        cat = make_op("concatenate", [tup.results[0]], **_props(concat))
        rewriter.replace(op, carry_location(op, [tup, cat, *_take(cat.results[0], keep[idx], axis)]))


def _whole_fields(concat: graph.ConcatenateOp, axis: int, lanes: int) -> tuple | None:
    """(fields, offsets, keep) for concat with each field that is a padding cut, a padding take
    or a permutation of a tensor y along axis replaced by y, where y is no wider than the field
    rounded up to whole vectors: entry k of the old concatenation is entry keep[k] of the new
    one. None when no field is such."""
    fields = _fields(concat) or []
    whole, maps = [], []
    for f in fields:
        n = shape_of(f.type)[axis]
        cut = padded_cut(f) if axis == len(shape_of(f.type)) - 1 else None
        inner = _taken(f)
        if cut is not None and shape_of(cut[0].type)[axis] <= -(-n // lanes) * lanes:
            whole.append(cut[0])
            maps.append(np.arange(n))
        elif (
            inner is not None
            and inner[2] == axis
            and shape_of(inner[0].type)[axis] <= -(-n // lanes) * lanes
            and _movable(f, inner[1], shape_of(inner[0].type)[axis])
        ):
            whole.append(inner[0])
            maps.append(inner[1])
        else:
            whole.append(f)
            maps.append(np.arange(n))
    if all(w is f for w, f in zip(whole, fields)):
        return None
    at = np.cumsum([0] + [shape_of(w.type)[axis] for w in whole])
    keep = np.concatenate([at[i] + m for i, m in enumerate(maps)]).astype(np.int64)
    return whole, at, keep


def _reads_padding(v, axis: int) -> bool:
    """Whether every reader of v can read a wider tensor with padding channels in its place:
    an NHWC conv2d (or depthwise, also through ConvToNHWC's widening pad) or packed dense
    reading it as data, along its channel axis."""
    for use in v.uses:
        user = use.operation
        if isinstance(user, graph.PadOp) and _tail_zero_pad(user.results[0], axis) is not None:
            if not all(_is_depthwise_nhwc(u.operation) and u.index == 0 for u in user.results[0].uses):
                return False
        elif isinstance(user, graph.Conv2dOp) and use.index == 0:
            a = user.attrs()
            if a["data_layout"] != "NHWC" or a["kernel_layout"] != "HWIO" or axis != 3:
                return False
            if a["groups"] != 1 and not _is_depthwise_nhwc(user):
                return False
        elif not (isinstance(user, graph.DensePackOp) and use.index == 0 and axis == 1):
            return False
    return bool(v.uses)


def _is_depthwise_nhwc(op: Operation) -> bool:
    if not isinstance(op, graph.Conv2dOp):
        return False
    a = op.attrs()
    ws = shape_of(op.weight.type)
    return a["data_layout"] == "NHWC" and a["kernel_layout"] == "HWIO" and ws[2] == 1 and a["groups"] == ws[3] > 1


class WidenConcat(RewritePattern):
    """concatenate(.., cut(y), ..) → padding take(concatenate(.., y, ..), the real channels)
    when convolutions read it (_reads_padding): AbsorbTake moves the take into their weights
    (zero where it drops padding), so the concatenation runs at its padded, vector-multiple
    width and no channel of it is cut or padded again. Not where the concatenation's own
    width is whole vectors already: there the padding only adds to the readers' work, which
    grows with their input channels, while the copy costs the same either way (a DBNet FPN's
    four 24-channel levels padded to 32: its 3x3 head conv read 128 channels for 96, 11 ->
    15 ms)."""

    def __init__(self, lanes: int = 16):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.ConcatenateOp) or _fields(op) is None:
            return
        rank = len(shape_of(op.result.type))
        axis = graph.normalize_axis("", op.attrs()["axis"], rank)
        if axis != rank - 1 or shape_of(op.result.type)[axis] % self.lanes == 0:
            return
        if not _reads_padding(op.result, axis):
            return
        widened = _whole_fields(op, axis, self.lanes)
        if widened is None:
            return
        whole, _, keep = widened
        tup = make_op("tuple", whole)
        cat = make_op("concatenate", [tup.results[0]], **_props(op))
        rewriter.replace(op, carry_location(op, [tup, cat, *_take(cat.results[0], keep, axis, junk=True)]))


def _absorbs_cut(v, axis: int) -> bool:
    """Whether every reader of v takes a padding cut of it in place of v: what reads padding
    (_reads_padding: AbsorbPadCut), or a concatenation along the axis that only takes read
    (TakeWholeFields) or that reads padding itself (WidenConcat)."""
    for use in v.uses:
        user = use.operation
        if not isinstance(user, graph.TupleOp):
            continue
        for u in user.results[0].uses:
            c = u.operation
            if not isinstance(c, graph.ConcatenateOp):
                return False
            if _gathered_concat(c.results[0], axis) is None and not _reads_padding(c.results[0], axis):
                return False
        if not user.results[0].uses:
            return False
    others = [u for u in v.uses if not isinstance(u.operation, graph.TupleOp)]
    return bool(v.uses) and all(_reads_padding_use(u, axis) for u in others)


def _reads_padding_use(use, axis: int) -> bool:
    user = use.operation
    if isinstance(user, graph.Conv2dOp) and use.index == 0:
        a = user.attrs()
        return a["data_layout"] == "NHWC" and a["kernel_layout"] == "HWIO" and axis == 3
    return isinstance(user, graph.DensePackOp) and use.index == 0 and axis == 1


class PadTake(RewritePattern):
    """take(y, idx, last axis) → cut(take(y, idx + fillers)) to the next multiple of the vector
    width when its readers absorb a padding cut (see _absorbs_cut): the gather, and the copies
    after it, then run over whole vectors of channels. A run of y's channels (a strided_slice of
    stride 1, a split's half) is widened the same way, by the channels after it where y has
    them. A filler is a real entry of y, so the padded channels are finite wherever y is (the
    padding's invariant)."""

    def __init__(self, lanes: int = 16):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.TakeOp | graph.StridedSliceOp) or PAD_SLICE in op.attributes:
            return
        if not graph.is_float(op.results[0].type.element_type):
            return
        found = self.selection(op)
        if found is None:
            return
        y, idx, axis = found
        rank, width = len(shape_of(y.type)), shape_of(y.type)[axis]
        padded = padded_width(len(idx), self.lanes)
        if axis != rank - 1 or padded is None or (isinstance(op, graph.TakeOp) and _movable(op.results[0], idx, width)):
            return  # what moves into weights needs no padding
        if not _absorbs_cut(op.results[0], axis):
            return
        more = np.arange(idx[-1] + 1, idx[-1] + 1 + padded - len(idx))  # continue a run where y has room
        fillers = more if more[-1] < width else np.full(padded - len(idx), idx[0])
        wide = _take(y, np.concatenate([idx, fillers]), axis)
        rewriter.replace(op, carry_location(op, [*wide, marked_cut(wide[-1].results[0], len(idx))]))

    @staticmethod
    def selection(op: Operation) -> tuple | None:
        """(y, idx, axis): what op selects of y along one axis."""
        if isinstance(op, graph.TakeOp):
            return _taken(op.results[0])
        shape = shape_of(op.data.type)  # type: ignore[attr-defined]
        bounds = graph.slice_bounds("", shape, op.attrs())  # type: ignore[attr-defined]
        sliced = [d for d, (b, s, n) in enumerate(bounds) if (b, s, n) != (0, 1, shape[d])]
        if len(sliced) != 1 or bounds[sliced[0]][1] != 1:
            return None
        b, _, n = bounds[sliced[0]]
        return op.data, np.arange(b, b + n), sliced[0]  # type: ignore[attr-defined]


def patterns(lanes: int = 16) -> tuple[RewritePattern, ...]:
    """alter-op-layout's patterns for permutations, for a target with `lanes` f32 lanes."""
    return (
        ShuffleToTake(),
        SimplifyTake(),
        SliceOfTake(),
        SinkTake(),
        AbsorbTake(),
        TakeWholeFields(lanes),
        WidenConcat(lanes),
        PadTake(lanes),
    )
