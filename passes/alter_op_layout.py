"""alter-op-layout: rewrite contractions and convolutions into the layouts CPU kernels want.

* dense(x, W) and matmul(a, b) become nn.contrib_dense_pack with the weight
  packed as [N / bn, K, bn]; batch_matmul likewise. The packing is reshape +
  transpose ops that fold-constant evaluates once for constant weights, so
  the micro-kernel reads each block of bn output columns as whole vectors.
* conv2d in NCHW becomes conv2d in NHWC (weights HWIO): channels innermost, so
  the register tile is a vector of output channels. The layout changes are
  transposes; they sink through elementwise ops, bias_add, pooling and resize, and
  two that meet cancel (canonicalize), so a ResNet (or an FPN's upsampled levels)
  stays NHWC from one convolution to the next and pays one transpose at each end.
* A channel count no vector block divides (N = 1000, 30, 77; 24, 40 or 120 output channels;
  a conv's 1, 4 or 21 too, where the generic schedule costs more than any padding: see
  conv_padded_width) is padded to the next multiple of the vector width: the weight gains zero rows, the
  padded op runs on the template, and a marked strided_slice (PAD_SLICE) cuts the result
  back. The slice rises through the epilogue (elementwise ops, bias_add, pooling, resize) and a
  convolution or dense that reads it takes the padded tensor itself, its weight padded
  with zero input channels: the padding is paid once, not at every layer.
* conv2d_transpose with a constant weight becomes a stride-1 conv2d over the stride's phases
  (their output channels side by side), depth-to-space and a crop, and so runs as a conv2d.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.passes.canonicalize import constant_of
from lathe.passes.channel_padding import (
    CUT_BINARY,
    FINITE_UNARY,
    PAD_SLICE,
    SINK_BINARY,
    SINK_UNARY,
    conv_padded_width,
    finite_constant,
    marked_cut,
    pack_width,
    pad_axis,
    padded_cut,
    padded_width,
    tensor_size,
)
from lathe.passes.outline import carry_location


class DenseToDensePack(RewritePattern):
    """dense(x, W[N, K]) → contrib_dense_pack(x, transpose(reshape(W, [N/bn, bn, K]), [0, 2, 1]))
    matmul(a, b[K, N]) → contrib_dense_pack(a, transpose(reshape(b, [K, N/bn, bn]), [1, 0, 2]))"""

    def __init__(self, lanes: int = 16):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.DenseOp):
            x, w, trans = op.data, op.weight, True
        elif isinstance(op, graph.MatmulOp) and not op.attrs()["transpose_a"]:
            x, w, trans = op.tensor_a, op.tensor_b, op.attrs()["transpose_b"]
        else:
            return
        if not graph.is_float(op.results[0].type.element_type) or op.attrs()["out_dtype"]:
            return
        ws = shape_of(w.type)
        n, k = (ws[0], ws[1]) if trans else (ws[1], ws[0])
        padded = padded_width(n, self.lanes)
        pre: list[Operation] = []
        if padded is not None and k >= 4:  # zero weight columns, cut off after the pack
            pre.append(pad_axis(w, 0 if trans else 1, padded - n))
            w, n = pre[-1].results[0], padded
        bn = pack_width(n, self.lanes)
        if bn is None or k < 4:
            return
        if trans:
            r = make_op("reshape", [w], newshape=[n // bn, bn, k])
            t = make_op("transpose", [r.results[0]], axes=[0, 2, 1])
        else:
            r = make_op("reshape", [w], newshape=[k, n // bn, bn])
            t = make_op("transpose", [r.results[0]], axes=[1, 0, 2])
        packed = make_op("nn.contrib_dense_pack", [x, t.results[0]], weight_layout=f"NC{bn}n")
        post = [marked_cut(packed.results[0], shape_of(op.results[0].type)[-1])] if pre else []
        rewriter.replace(op, carry_location(op, [*pre, r, t, packed, *post]))


class BatchMatmulToPack(RewritePattern):
    """batch_matmul(a, b[B, N, K], transpose_b) → contrib_batch_matmul_pack(a, transpose(reshape(b, [B, N/bn, bn, K]), [0, 1, 3, 2]))
    (and the [B, K, N] form without transpose_b)"""

    def __init__(self, lanes: int = 16):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.BatchMatmulOp):
            return
        a = op.attrs()
        if a["transpose_a"] or a["out_dtype"] or not graph.is_float(op.result.type.element_type):
            return
        bs = shape_of(op.tensor_b.type)
        bsz, n, k = (bs[0], bs[1], bs[2]) if a["transpose_b"] else (bs[0], bs[2], bs[1])
        bn = pack_width(n, self.lanes)
        if bn is None or k < 4:
            return
        if a["transpose_b"]:
            r = make_op("reshape", [op.tensor_b], newshape=[bsz, n // bn, bn, k])
            t = make_op("transpose", [r.results[0]], axes=[0, 1, 3, 2])
        else:
            r = make_op("reshape", [op.tensor_b], newshape=[bsz, k, n // bn, bn])
            t = make_op("transpose", [r.results[0]], axes=[0, 2, 1, 3])
        packed = make_op("nn.contrib_batch_matmul_pack", [op.tensor_a, t.results[0]])
        rewriter.replace(op, carry_location(op, [r, t, packed]))


TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


class ConvToNHWC(RewritePattern):
    """conv2d(x, w) [NCHW, OIHW] → transpose(conv2d(transpose(x), transpose(w)) [NHWC, HWIO]);
    an output-channel count no vector block divides is padded (zero filters), the result cut."""

    def __init__(self, lanes: int = 16):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, graph.Conv2dOp):
            return
        a = op.attrs()
        if a["data_layout"] != "NCHW" or a["kernel_layout"] not in ("", "OIHW") or a["out_dtype"]:
            return
        o, i = shape_of(op.weight.type)[:2]
        depthwise = a["groups"] == o and i == 1
        padded = conv_padded_width(o, self.lanes) if a["groups"] == 1 or depthwise else None
        if (a["groups"] != 1 and not depthwise) or (pack_width(o, self.lanes) is None and padded is None):
            return  # other grouped convs keep NCHW
        xt = make_op("transpose", [op.data], axes=TO_NHWC)
        wt = make_op("transpose", [op.weight], axes=[2, 3, 1, 0])
        ops = [xt, wt]
        data = xt.results[0]
        props = {k: v for k, v in op.attrs().items() if k in op.properties}
        props.update(data_layout="NHWC", kernel_layout="HWIO")
        if padded is not None:
            ops.append(pad_axis(wt.results[0], 3, padded - o))
            if depthwise:  # a channel per group: the data's channels are padded too (zeros)
                ops.insert(1, pad_axis(data, 3, padded - o))
                data = ops[1].results[0]
                props["groups"] = padded
            if props.get("channels"):
                props["channels"] = padded
        conv = make_op("nn.conv2d", [data, ops[-1].results[0]], **props)
        ops.append(conv)
        if padded is not None:
            ops.append(marked_cut(conv.results[0], o))
        back = make_op("transpose", [ops[-1].results[0]], axes=TO_NCHW)
        rewriter.replace(op, carry_location(op, [*ops, back]))


def _phase_taps(kernel: int, s: int, d: int) -> tuple[list[list[int | None]], int, int]:
    """A transposed convolution's taps along one axis, split by the stride's phases: output
    q = m*s + r gets x[m - e] * w[k] for each tap k with k*d = e*s + r. Returns taps[r][j],
    the k at offset D*j = E - 1 - e of phase r's correlation (None: no tap there), the taps
    per phase, and D, the dilation every used offset shares (d at stride 1: no zero taps)."""
    import math

    e_max = ((kernel - 1) * d) // s
    taps: list[list[int | None]] = [[None] * (e_max + 1) for _ in range(s)]
    for k in range(kernel):
        e, r = divmod(k * d, s)
        taps[r][e_max - e] = k
    used = [t for row in taps for t, k in enumerate(row) if k is not None]
    dilation = math.gcd(*used) or 1
    return [row[::dilation] for row in taps], e_max // dilation + 1, dilation


class ConvTransposeToConv(RewritePattern):
    """conv2d_transpose(x, W) [NCHW, IOHW, groups 1, W constant] → one stride-1 conv2d whose
    output channels are the stride's phases (sub-pixel convolution), then depth-to-space and a
    crop: output row q = m*sh + r takes the taps k with k*dh = e*sh + r at row m - e of x, so
    phase r is a correlation of x with those taps, and the phases share x's windows. No zero
    is multiplied where the stride divides the kernel (kernel 2 stride 2: a 1x1 conv to 4*O
    channels; stride 1 with dilation: a dilated conv); a phase with fewer taps gets zero ones.
    The conv then runs on the conv2d template like any other (ConvToNHWC). Grouped ones keep
    conv2d_transpose (per-stage schedule): their phases would be a grouped conv with
    phase-major channels."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        import numpy as np

        if not isinstance(op, graph.Conv2dTransposeOp):
            return
        a = op.attrs()
        w = constant_of(op.weight)
        if a["groups"] != 1 or a["out_dtype"] or w is None or not graph.is_float(op.result.type.element_type):
            return
        g = graph.Conv2dTransposeOp.geometry("", op.data.type, op.weight.type, a)
        (sh, sw), (dh, dw) = (g["sh"], g["sw"]), (g["dh"], g["dw"])
        taps_h, eh, ddh = _phase_taps(g["kh"], sh, dh)
        taps_w, ew, ddw = _phase_taps(g["kw"], sw, dw)
        c, o = g["c"], g["o"]
        # OIHW, output channel (rh * sw + rw) * O + o: phase-major, so depth-to-space in NHWC
        # moves runs of O channels
        phased = np.zeros((sh, sw, o, c, eh, ew), dtype=w.dtype)
        for rh in range(sh):
            for th, kh in enumerate(taps_h[rh]):
                for rw in range(sw):
                    for tw, kw in enumerate(taps_w[rw]):
                        if kh is not None and kw is not None:
                            phased[rh, rw, :, :, th, tw] = w[:, :, kh, kw].T
        full_h = max((g["h"] - 1) * sh + dh * (g["kh"] - 1) + 1, g["pt"] + g["oh"])
        full_w = max((g["w"] - 1) * sw + dw * (g["kw"] - 1) + 1, g["pl"] + g["ow"])
        mh, mw = -(-full_h // sh), -(-full_w // sw)
        weight = graph.ConstantOp.from_array(phased.reshape(sh * sw * o, c, eh, ew), op.weight.type.element_type)
        conv = make_op(
            "nn.conv2d",
            [op.data, weight.result],
            padding=[ddh * (eh - 1), ddw * (ew - 1), mh - g["h"], mw - g["w"]],
            dilation=[ddh, ddw],
            channels=sh * sw * o,
            kernel_size=[eh, ew],
        )
        n = g["n"]
        nhwc = make_op("transpose", [conv.results[0]], axes=TO_NHWC)
        split = make_op("reshape", [nhwc.results[0]], newshape=[n, mh, mw, sh, sw, o])
        interleave = make_op("transpose", [split.results[0]], axes=[0, 1, 3, 2, 4, 5])
        joined = make_op("reshape", [interleave.results[0]], newshape=[n, mh * sh, mw * sw, o])
        crop = make_op(
            "strided_slice",
            [joined.results[0]],
            begin=[g["pt"], g["pl"]],
            end=[g["pt"] + g["oh"], g["pl"] + g["ow"]],
            strides=[1, 1],
            axes=[1, 2],
        )
        back = make_op("transpose", [crop.results[0]], axes=TO_NCHW)
        rewriter.replace(op, carry_location(op, [weight, conv, nhwc, split, interleave, joined, crop, back]))


class AbsorbPadCut(RewritePattern):
    """conv2d(cut(y), w) [NHWC, HWIO, groups 1] → conv2d(y, w with zero input channels), and
    the same for a packed dense reading cut(y): the padded channels meet zero weights, so the
    layer reads the padded tensor in place of a copy of its first channels."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.Conv2dOp):
            a = op.attrs()
            if a["data_layout"] != "NHWC" or a["kernel_layout"] != "HWIO":
                return
            if a["groups"] != 1:
                self.depthwise(op, rewriter)
                return
            cut = padded_cut(op.data)
            if cut is None:
                return
            axis = 2
        elif isinstance(op, graph.DensePackOp):
            cut, axis = padded_cut(op.data), 1
            if cut is None:
                return
        else:
            return
        y, n = cut
        wide = shape_of(y.type)[-1]
        pad = pad_axis(op.operands[1], axis, wide - n)
        props = {k: v for k, v in op.attrs().items() if k in op.properties}
        new = make_op(op.relay_name(), [y, pad.results[0]], **props)
        rewriter.replace(op, carry_location(op, [pad, new]))

    @staticmethod
    def depthwise(op: graph.Conv2dOp, rewriter: PatternRewriter) -> None:
        """A depthwise conv keeps its channels apart, so it runs on all of y's channels (a
        padded channel's output is finite, and cut): dw(cut(y)) → cut(dw'(y)) with zero
        filters for the padded channels, and dw(pad(cut(y))) → dw(y) where the zero padding
        only restores y's width (what ConvToNHWC makes of a padded depthwise)."""
        kh, kw, i, o = shape_of(op.weight.type)
        if i != 1 or op.attrs()["groups"] != o:
            return
        data = op.data
        zero_pad = data.owner if isinstance(data.owner, graph.PadOp) else None
        if zero_pad is not None:
            pa = zero_pad.attrs()
            widths = [list(p) for p in pa["pad_width"]]
            cut = padded_cut(zero_pad.data)
            if (
                cut is None
                or pa["pad_mode"] != "constant"
                or any(p != [0, 0] for p in widths[:-1])
                or widths[-1][0] != 0
                or shape_of(cut[0].type) != shape_of(data.type)
            ):
                return
            props = {k: v for k, v in op.attrs().items() if k in op.properties}
            new = make_op("nn.conv2d", [cut[0], op.weight], **props)
            rewriter.replace(op, carry_location(op, [new]))
            return
        cut = padded_cut(data)
        if cut is None:
            return
        y, n = cut
        wide = shape_of(y.type)[-1]
        pad = pad_axis(op.weight, 3, wide - n)
        props = {k: v for k, v in op.attrs().items() if k in op.properties}
        props["groups"] = wide
        if props.get("channels"):
            props["channels"] = wide
        new = make_op("nn.conv2d", [y, pad.results[0]], **props)
        rewriter.replace(op, carry_location(op, [pad, new, marked_cut(new.results[0], n)]))


class HoistPadCut(RewritePattern):
    """f(cut(y)) → cut(f'(y)) for the epilogue of a padded layer: finite unary ops, bias_add
    along the cut axis (its bias padded with zeros), binary ops of two cuts of one width
    (broadcasting, as x times a squeeze-excitation gate) or of a cut
    and a finite constant (padded along the cut axis when it has one), and NHWC pooling and
    resize (each channel resized on its own, from finite values).
    What f computes on the padded channels stays finite, so a later layer's zero weights
    cancel it."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        pre: list[Operation] = []
        if isinstance(op, FINITE_UNARY):
            cut = padded_cut(op.operands[0])
            if cut is None:
                return
            y, n = cut
            new = type(op).create_inferred([y], dict(op.properties))
        elif isinstance(op, graph.BiasAddOp):
            cut = padded_cut(op.data)
            rank = len(shape_of(op.data.type))
            if cut is None or graph.normalize_axis("", op.attrs()["axis"], rank) != rank - 1:
                return
            y, n = cut
            pre.append(pad_axis(op.bias, 0, shape_of(y.type)[-1] - n))
            new = make_op("nn.bias_add", [y, pre[-1].results[0]], axis=rank - 1)
        elif isinstance(op, CUT_BINARY + (graph.DivideOp,)):
            c1, c2 = padded_cut(op.lhs), padded_cut(op.rhs)
            if c1 is not None and c2 is not None:
                if isinstance(op, graph.DivideOp) or c1[1] != c2[1]:
                    return
                if shape_of(c1[0].type)[-1] != shape_of(c2[0].type)[-1]:
                    return  # cut from different widths (a broadcast: x * an SE gate is fine)
                (y, n), (y2, _) = c1, c2
                new = type(op).create_inferred([y, y2], dict(op.properties))
            else:
                side = 0 if c1 is not None else 1
                cut = c1 if c1 is not None else c2
                other = op.operands[1 - side]
                if cut is None or (isinstance(op, graph.DivideOp) and side == 1):
                    return
                if not finite_constant(other, nonzero=isinstance(op, graph.DivideOp)):
                    return
                if op.results[0].type != op.operands[side].type:
                    return  # the constant broadcasts the result wider than the cut
                y, n = cut
                os_ = shape_of(other.type)
                if os_ and os_[-1] == n and n > 1:
                    pre.append(
                        pad_axis(
                            other,
                            len(os_) - 1,
                            shape_of(y.type)[-1] - n,
                            1.0 if isinstance(op, graph.DivideOp) else 0.0,
                        )
                    )
                    other = pre[-1].results[0]
                new = type(op).create_inferred([y, other] if side == 0 else [other, y], dict(op.properties))
        elif isinstance(op, graph.Pool2dBase | graph.GlobalPool2dBase | graph.Resize2dOp):
            cut = padded_cut(op.operands[0])
            if cut is None or op.attrs()["layout"] != "NHWC":
                return
            y, n = cut
            props = {k: v for k, v in op.attrs().items() if k in op.properties}
            new = make_op(op.relay_name(), [y], **props)
        else:
            return
        rewriter.replace(op, carry_location(op, [*pre, new, marked_cut(new.results[0], n)]))


def _transposed(v) -> tuple | None:
    """(y, p) when v = transpose(y, p). A transpose with other users stays for them; once
    they have sunk (or cancelled) too, nothing uses it and it disappears."""
    t = v.owner
    if isinstance(t, graph.TransposeOp):
        return t.data, graph.TransposeOp.perm("", len(shape_of(t.data.type)), t.attrs())
    return None


class SinkTranspose(RewritePattern):
    """f(transpose(y, p)) → transpose(f'(y), p) for layout-agnostic f: elementwise ops,
    bias_add (its axis mapped through p), binary ops of two equal transposes, 2-D pooling
    and resize (switched to NHWC: an FPN's or a YOLO neck's upsampled maps stay in the
    convolutions' layout, and the resize kernel vectorises over channels), and the ops that move data along one axis without looking at the
    others (concatenate of equal transposes, strided_slice, take along an axis), their axes
    mapped through p: ShuffleNet's split, concat and channel shuffle stay NHWC."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, graph.ConcatenateOp | graph.StridedSliceOp | graph.TakeOp):
            self.axis_op(op, rewriter)
            return
        if isinstance(op, SINK_UNARY):
            t = _transposed(op.operands[0])
            if t is None:
                return
            y, p = t
            new = type(op).create_inferred([y], dict(op.properties))
        elif isinstance(op, graph.BiasAddOp):
            t = _transposed(op.data)
            if t is None:
                return
            y, p = t
            axis = graph.normalize_axis("", op.attrs()["axis"], len(p))
            new = make_op("nn.bias_add", [y, op.bias], axis=p[axis])
        elif isinstance(op, SINK_BINARY):
            t1, t2 = _transposed(op.lhs), _transposed(op.rhs)
            if t1 is not None and t2 is not None and t1[1] == t2[1] and t1[0].type == t2[0].type:
                (y, p), (y2, _) = t1, t2
                new = type(op).create_inferred([y, y2], dict(op.properties))
            else:
                # one big transposed operand and a smaller one broadcast against it (a per-channel
                # scale): move the small one into y's layout instead
                side = 0 if t1 is not None else 1
                t = t1 if t1 is not None else t2
                other = op.operands[1 - side]
                if (
                    t is None
                    or tensor_size(other) >= tensor_size(op.operands[side])
                    or op.results[0].type != op.operands[side].type
                ):
                    return
                y, p = t
                r, k = len(p), len(shape_of(other.type))
                pre: list[Operation] = []
                v = other
                if k < r:
                    pre.append(make_op("reshape", [v], newshape=[1] * (r - k) + shape_of(v.type)))
                    v = pre[-1].results[0]
                inv = [p.index(d) for d in range(r)]  # y's layout from the transposed one
                pre.append(make_op("transpose", [v], axes=inv))
                v = pre[-1].results[0]
                operands = [y, v] if side == 0 else [v, y]
                new = type(op).create_inferred(operands, dict(op.properties))
                back = make_op("transpose", [new.results[0]], axes=p)
                rewriter.replace(op, carry_location(op, [*pre, new, back]))
                return
        elif isinstance(op, graph.Pool2dBase | graph.GlobalPool2dBase | graph.Resize2dOp):
            t = _transposed(op.operands[0])
            if t is None or t[1] != TO_NCHW or op.attrs()["layout"] != "NCHW":
                return
            y, p = t
            props = {k: v for k, v in op.attrs().items() if k in op.properties}
            props["layout"] = "NHWC"
            new = make_op(op.relay_name(), [y], **props)
        else:
            return
        back = make_op("transpose", [new.results[0]], axes=p)
        rewriter.replace(op, carry_location(op, [new, back]))

    @staticmethod
    def axis_op(op: Operation, rewriter: PatternRewriter) -> None:
        pre: list[Operation] = []
        if isinstance(op, graph.ConcatenateOp):
            fields = op.data.owner
            if not isinstance(fields, graph.TupleOp) or not fields.operands:
                return
            ts = [_transposed(v) for v in fields.operands]
            if any(t is None for t in ts) or any(t[1] != ts[0][1] for t in ts):  # type: ignore[index]
                return
            p = ts[0][1]  # type: ignore[index]
            axis = graph.normalize_axis("", op.attrs()["axis"], len(p))
            pre.append(make_op("tuple", [t[0] for t in ts]))  # type: ignore[index]
            new = make_op("concatenate", [pre[0].results[0]], axis=p[axis])
        elif isinstance(op, graph.StridedSliceOp):
            t = _transposed(op.data)
            if t is None or PAD_SLICE in op.attributes:
                return
            y, p = t
            bounds = graph.slice_bounds("", shape_of(op.data.type), op.attrs())
            if any(s < 1 or n < 1 for _, s, n in bounds):
                return  # a reversed slice's end before index 0 has no spelling as an end
            sliced = [d for d, (b, s, n) in enumerate(bounds) if (b, s, n) != (0, 1, shape_of(op.data.type)[d])]
            if not sliced:
                return  # the whole tensor: canonicalize removes it
            new = make_op(
                "strided_slice",
                [y],
                begin=[bounds[d][0] for d in sliced],
                end=[bounds[d][0] + bounds[d][1] * (bounds[d][2] - 1) + 1 for d in sliced],
                strides=[bounds[d][1] for d in sliced],
                axes=[p[d] for d in sliced],
            )
        else:
            assert isinstance(op, graph.TakeOp)
            t = _transposed(op.data)
            a = op.attrs()
            if t is None or a["axis"] is None or len(shape_of(op.indices.type)) != 1:
                return
            y, p = t
            axis = graph.normalize_axis("", a["axis"], len(p))
            props = {k: v for k, v in a.items() if k in op.properties}
            props["axis"] = p[axis]
            new = make_op("take", [y, op.indices], **props)
        back = make_op("transpose", [new.results[0]], axes=p)
        rewriter.replace(op, carry_location(op, [*pre, new, back]))


class UnitTransposeToReshape(RewritePattern):
    """transpose(y, p) → reshape(y) where p moves only axes of size 1: a layout transpose left
    at a one-channel output (DBNet's probability map, [1, H, W, 1] → [1, 1, H, W]) keeps the
    elements' order. As a transpose its kernel took the transpose template, whose parallel
    loop runs over the channels (one: the fused depth-to-space + sigmoid before it ran on one
    thread); as a reshape the kernel is an elementwise one, parallel over its pixels. Run once
    the transposes have sunk: a reshape does not cancel against the transposes around it."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        t = _transposed(op.results[0]) if isinstance(op, graph.TransposeOp) else None
        if t is None:
            return
        y, p = t
        shape = shape_of(y.type)
        moved = [d for d in p if shape[d] != 1]
        if moved != sorted(moved) or len(moved) == len(p):
            return  # the non-unit axes change order (a real transpose), or none is unit
        new = make_op("reshape", [y], newshape=shape_of(op.results[0].type))
        rewriter.replace(op, carry_location(op, [new]))


@dataclass(frozen=True)
class AlterOpLayout(ModulePass):
    """Dense, matmul and batch_matmul to packed-weight forms; conv2d (and conv2d_transpose, as
    a conv2d) to NHWC, with transposes that sink and cancel."""

    name = "alter-op-layout"

    vector_lanes: int = 16  # f32 lanes of the target's vectors: packed blocks are one or two of them

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from xdsl.transforms.canonicalize import CanonicalizePass

        from lathe.passes import channel_permutation  # its patterns build on this module's

        lanes = self.vector_lanes
        if lanes < 1:
            from lathe.errors import LatheError

            raise LatheError(f"alter-op-layout: vector_lanes must be positive, got {lanes}")
        walker = PatternRewriteWalker(
            GreedyRewritePatternApplier(
                [
                    DenseToDensePack(lanes),
                    BatchMatmulToPack(lanes),
                    ConvTransposeToConv(),
                    ConvToNHWC(lanes),
                    SinkTranspose(),
                    HoistPadCut(),
                    AbsorbPadCut(),
                    *channel_permutation.patterns(lanes),
                ]
            )
        )
        for _ in range(8):  # transposes that cancel (canonicalize) let others sink further
            changed = walker.rewrite_module(op)
            CanonicalizePass().apply(ctx, op)
            if not changed:
                break
        PatternRewriteWalker(UnitTransposeToReshape()).rewrite_module(op)
