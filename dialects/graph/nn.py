"""Neural-network ops: contractions (dense, matmul, convolution), normalization, softmax,
pooling and dropout."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import (
    TensorType,
    TupleType,
)
from xdsl.irdl import irdl_op_definition, operand_def, result_def

from lathe.dialects.graph.core import (
    BOOL,
    INT,
    INTS,
    NUMBER,
    STRING,
    GraphOp,
    OpPattern,
    ShapeError,
    graph_traits,
    shape_of,
    tuple_type,
    type_str,
)
from lathe.dialects.graph.shapes import (
    accumulator_dtype,
    expect_float,
    expect_tensor,
    normalize_axis,
    pad4,
    pair,
    pool_out,
    same_dtype,
    string_choice,
)

# -- contractions ---------------------------------------------------------------------


@irdl_op_definition
class DenseOp(GraphOp):
    """y = x · wᵀ (Relay's nn.dense: weight is [units, in_features])."""

    name = "graph.nn.dense"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    units = INT.prop()
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        w = expect_tensor(op, types[1], "weight")
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) < 1 or len(ws) != 2:
            raise ShapeError(
                f"{op}: expects data of rank >= 1 and a rank-2 weight, got {type_str(x)} and {type_str(w)}"
            )
        if xs[-1] != ws[1]:
            raise ShapeError(
                f"{op}: data {type_str(x)} has {xs[-1]} input features but weight {type_str(w)} expects {ws[1]}"
            )
        if a["units"] is not None and a["units"] != ws[0]:
            raise ShapeError(f"{op}: units={a['units']} but weight {type_str(w)} has {ws[0]} rows")
        return TensorType(accumulator_dtype(op, a, same_dtype(op, x, w)), xs[:-1] + [ws[0]])


@irdl_op_definition
class DensePackOp(GraphOp):
    """nn.dense with the weight packed as [units / bn, in_features, bn] (TVM's
    nn.contrib_dense_pack): each block of bn output columns is contiguous along
    k, so the micro-kernel reads it as whole vectors."""

    name = "graph.nn.contrib_dense_pack"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    units = INT.prop()
    out_dtype = STRING.prop("")
    weight_layout = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        w = expect_tensor(op, types[1], "weight")
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) < 1 or len(ws) != 3:
            raise ShapeError(
                f"{op}: expects data of rank >= 1 and a rank-3 packed weight, got {type_str(x)} and {type_str(w)}"
            )
        if xs[-1] != ws[1]:
            raise ShapeError(
                f"{op}: data {type_str(x)} has {xs[-1]} input features but weight {type_str(w)} expects {ws[1]}"
            )
        dt = same_dtype(op, x, w)
        return TensorType(accumulator_dtype(op, a, dt), xs[:-1] + [ws[0] * ws[2]])


@irdl_op_definition
class BatchMatmulPackOp(GraphOp):
    """batch_matmul(a, b) with b packed as [batch, n / bn, k, bn] (a not transposed)."""

    name = "graph.nn.contrib_batch_matmul_pack"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "tensor_a")
        y = expect_tensor(op, types[1], "tensor_b")
        sa, sb = shape_of(x), shape_of(y)
        if len(sa) != 3 or len(sb) != 4:
            raise ShapeError(
                f"{op}: expects a rank-3 tensor_a and a rank-4 packed tensor_b, got {type_str(x)} and {type_str(y)}"
            )
        if sa[0] != sb[0] and 1 not in (sa[0], sb[0]):
            raise ShapeError(f"{op}: batch sizes {sa[0]} and {sb[0]} differ")
        if sa[2] != sb[2]:
            raise ShapeError(
                f"{op}: reduction dimensions differ: {type_str(x)} gives {sa[2]}, {type_str(y)} gives {sb[2]}"
            )
        dt = same_dtype(op, x, y)
        return TensorType(accumulator_dtype(op, a, dt), [max(sa[0], sb[0]), sa[1], sb[1] * sb[3]])


@irdl_op_definition
class MatmulOp(GraphOp):
    """Relay's nn.matmul: op(a) · op(b) with optional transposes (rank 2)."""

    name = "graph.nn.matmul"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    units = INT.prop()
    transpose_a = BOOL.prop(False)
    transpose_b = BOOL.prop(False)
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "tensor_a")
        y = expect_tensor(op, types[1], "tensor_b")
        sa, sb = shape_of(x), shape_of(y)
        if len(sa) != 2 or len(sb) != 2:
            raise ShapeError(f"{op}: expects rank-2 operands, got {type_str(x)} and {type_str(y)}")
        m, ka = (sa[1], sa[0]) if a["transpose_a"] else (sa[0], sa[1])
        kb, n = (sb[1], sb[0]) if a["transpose_b"] else (sb[0], sb[1])
        if ka != kb:
            raise ShapeError(f"{op}: reduction dimensions differ: {type_str(x)} gives {ka}, {type_str(y)} gives {kb}")
        if a["units"] is not None and a["units"] != n:
            raise ShapeError(f"{op}: units={a['units']} but the result has {n} columns")
        dt = same_dtype(op, x, y)
        return TensorType(accumulator_dtype(op, a, dt), [m, n])


@irdl_op_definition
class BatchMatmulOp(GraphOp):
    """Relay's nn.batch_matmul: [b, m, k] · [b, n, k]ᵀ by default (transpose_b=True)."""

    name = "graph.nn.batch_matmul"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    tensor_a = operand_def(TensorType)
    tensor_b = operand_def(TensorType)
    transpose_a = BOOL.prop(False)
    transpose_b = BOOL.prop(True)
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "tensor_a")
        y = expect_tensor(op, types[1], "tensor_b")
        sa, sb = shape_of(x), shape_of(y)
        if len(sa) != 3 or len(sb) != 3:
            raise ShapeError(f"{op}: expects rank-3 operands, got {type_str(x)} and {type_str(y)}")
        if sa[0] != sb[0] and 1 not in (sa[0], sb[0]):
            raise ShapeError(f"{op}: batch sizes {sa[0]} and {sb[0]} differ ({type_str(x)}, {type_str(y)})")
        m, ka = (sa[2], sa[1]) if a["transpose_a"] else (sa[1], sa[2])
        kb, n = (sb[2], sb[1]) if a["transpose_b"] else (sb[1], sb[2])
        if ka != kb:
            raise ShapeError(f"{op}: reduction dimensions differ: {type_str(x)} gives {ka}, {type_str(y)} gives {kb}")
        dt = same_dtype(op, x, y)
        return TensorType(accumulator_dtype(op, a, dt), [max(sa[0], sb[0]), m, n])


CONV_LAYOUTS = {"NCHW": "OIHW", "NHWC": "HWIO"}
# A blocked kernel layout, as TVM names it: OHWI{b}o is [O/b, KH, KW, I, b], the filters in
# blocks of b, each block's weights contiguous with its b filters innermost (what a
# convolution's register tile reads as whole vectors; passes/conv_weight_blocking.py makes it).
BLOCKED_KERNEL_PREFIX, BLOCKED_KERNEL_SUFFIX = "OHWI", "o"


def blocked_kernel_layout(block: int) -> str:
    return f"{BLOCKED_KERNEL_PREFIX}{block}{BLOCKED_KERNEL_SUFFIX}"


def kernel_block(klayout: str) -> int:
    """b of a blocked kernel layout OHWI{b}o; 0 for a plain one (OIHW, HWIO, HWOI)."""
    digits = klayout[len(BLOCKED_KERNEL_PREFIX) : -len(BLOCKED_KERNEL_SUFFIX)]
    blocked = klayout.startswith(BLOCKED_KERNEL_PREFIX) and klayout.endswith(BLOCKED_KERNEL_SUFFIX)
    return int(digits) if blocked and digits.isdigit() and int(digits) > 0 else 0


@irdl_op_definition
class Conv2dOp(GraphOp):
    name = "graph.nn.conv2d"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    strides = INTS.prop([1, 1])
    padding = INTS.prop([0, 0, 0, 0])
    dilation = INTS.prop([1, 1])
    groups = INT.prop(1)
    channels = INT.prop()
    kernel_size = INTS.prop()
    data_layout = STRING.prop("NCHW")
    kernel_layout = STRING.prop("")
    out_layout = STRING.prop("")
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, w: TensorType, a: dict) -> dict:
        """Layout-independent view: n, c, h, w, o, kh, kw, groups, strides, pads, dilation, and
        kblock, the filters' block width of a blocked kernel layout (0 for a plain one)."""
        layout = string_choice(op, a, "data_layout", tuple(CONV_LAYOUTS))
        klayout = a["kernel_layout"] or CONV_LAYOUTS[layout]
        kblock = kernel_block(klayout)
        if klayout not in ("OIHW", "HWIO", "HWOI") and not kblock:
            raise ShapeError(
                f"{op}: kernel_layout must be OIHW, HWIO, HWOI or {blocked_kernel_layout(16)} (OHWI in blocks of "
                f"16 filters, any block width), got {klayout!r}"
            )
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) != 4 or len(ws) != (5 if kblock else 4):
            raise ShapeError(
                f"{op}: expects rank-4 data and a rank-{5 if kblock else 4} weight ({klayout}), "
                f"got {type_str(x)} and {type_str(w)}"
            )
        n, c, h, wd = (xs[0], xs[1], xs[2], xs[3]) if layout == "NCHW" else (xs[0], xs[3], xs[1], xs[2])
        if kblock:
            if ws[4] != kblock:
                raise ShapeError(
                    f"{op}: kernel_layout {klayout} wants a weight [O/{kblock}, KH, KW, I, {kblock}], "
                    f"got {type_str(w)} (last dimension {ws[4]})"
                )
            o, kh, kw, i = ws[0] * kblock, ws[1], ws[2], ws[3]
        else:
            dims = dict(zip(klayout, ws))
            o, i, kh, kw = dims["O"], dims["I"], dims["H"], dims["W"]
        groups = a["groups"]
        if groups < 1 or c % groups or o % groups or i * groups != c:
            raise ShapeError(
                f"{op}: data {type_str(x)} has {c} channels but weight {type_str(w)} ({klayout}) expects "
                f"{i} input channels per group with groups={groups}"
            )
        if a["channels"] is not None and a["channels"] != o:
            raise ShapeError(f"{op}: channels={a['channels']} but weight {type_str(w)} has {o} output channels")
        if a["kernel_size"] is not None and pair(op, a, "kernel_size") != [kh, kw]:
            raise ShapeError(f"{op}: kernel_size={a['kernel_size']} but weight {type_str(w)} is {kh}x{kw}")
        sh, sw = pair(op, a, "strides")
        dh, dw = pair(op, a, "dilation")
        pt, pl, pb, pr = pad4(op, a)
        if min(sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
            raise ShapeError(f"{op}: strides and dilation must be >= 1 and padding >= 0")
        oh = pool_out(op, h, kh, sh, dh, pt, pb, False)
        ow = pool_out(op, wd, kw, sw, dw, pl, pr, False)
        return dict(
            layout=layout,
            klayout=klayout,
            kblock=kblock,
            n=n,
            c=c,
            h=h,
            w=wd,
            o=o,
            i=i,
            kh=kh,
            kw=kw,
            groups=groups,
            sh=sh,
            sw=sw,
            dh=dh,
            dw=dw,
            pt=pt,
            pl=pl,
            pb=pb,
            pr=pr,
            oh=oh,
            ow=ow,
        )

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        w = expect_tensor(op, types[1], "weight")
        dt = same_dtype(op, x, w)
        g = cls.geometry(op, x, w, a)
        shape = [g["n"], g["o"], g["oh"], g["ow"]] if g["layout"] == "NCHW" else [g["n"], g["oh"], g["ow"], g["o"]]
        return TensorType(accumulator_dtype(op, a, dt), shape)


@irdl_op_definition
class Conv2dTransposeOp(GraphOp):
    """Transposed convolution, NCHW data and IOHW weight (as ONNX's ConvTranspose)."""

    name = "graph.nn.conv2d_transpose"
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    weight = operand_def(TensorType)
    strides = INTS.prop([1, 1])
    padding = INTS.prop([0, 0, 0, 0])
    dilation = INTS.prop([1, 1])
    groups = INT.prop(1)
    channels = INT.prop()
    kernel_size = INTS.prop()
    data_layout = STRING.prop("NCHW")
    kernel_layout = STRING.prop("IOHW")
    output_padding = INTS.prop([0, 0])
    out_dtype = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, w: TensorType, a: dict) -> dict:
        string_choice(op, a, "data_layout", ("NCHW",))
        string_choice(op, a, "kernel_layout", ("IOHW",))
        xs, ws = shape_of(x), shape_of(w)
        if len(xs) != 4 or len(ws) != 4:
            raise ShapeError(f"{op}: expects rank-4 data and weight, got {type_str(x)} and {type_str(w)}")
        n, c, h, wd = xs
        ci, og, kh, kw = ws
        groups = a["groups"]
        if groups < 1 or ci != c or c % groups:
            raise ShapeError(f"{op}: data {type_str(x)} has {c} channels but weight {type_str(w)} (IOHW) has {ci}")
        sh, sw = pair(op, a, "strides")
        dh, dw = pair(op, a, "dilation")
        pt, pl, pb, pr = pad4(op, a)
        oph, opw = pair(op, a, "output_padding")
        if min(sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr, oph, opw) < 0:
            raise ShapeError(f"{op}: strides and dilation must be >= 1, padding and output_padding >= 0")
        oh = (h - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1
        ow = (wd - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1
        if oh < 1 or ow < 1:
            raise ShapeError(f"{op}: the output would be empty ({oh}x{ow})")
        return dict(
            n=n,
            c=c,
            h=h,
            w=wd,
            o=og * groups,
            og=og,
            kh=kh,
            kw=kw,
            groups=groups,
            sh=sh,
            sw=sw,
            dh=dh,
            dw=dw,
            pt=pt,
            pl=pl,
            oh=oh,
            ow=ow,
        )

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        w = expect_tensor(op, types[1], "weight")
        dt = accumulator_dtype(op, a, same_dtype(op, x, w))
        g = cls.geometry(op, x, w, a)
        return TensorType(dt, [g["n"], g["o"], g["oh"], g["ow"]])


# -- nn ------------------------------------------------------------------------------


def _per_channel(op: str, types, a: dict, what: str) -> TensorType:
    """data plus a 1-D operand with one value per index of data's `axis` (bias_add, prelu)."""
    x = expect_tensor(op, types[0], "data")
    v = expect_tensor(op, types[1], what)
    xs = shape_of(x)
    axis = normalize_axis(op, a["axis"], len(xs))
    if shape_of(v) != [xs[axis]]:
        raise ShapeError(
            f"{op}: {what} {type_str(v)} must have shape ({xs[axis]}) to match axis {axis} of {type_str(x)}"
        )
    same_dtype(op, x, v)
    return x


@irdl_op_definition
class DropoutOp(GraphOp):
    """Relay's nn.dropout: (output, mask); at inference the output is the input and the
    mask all ones (simplify-inference removes it). `training` (ONNX's training_mode, which
    models give at run time through graph.dyn) with a rate above 0 would drop at random, which
    Lathe does not do: refused by name when the values are known, not run as the identity."""

    name = "graph.nn.dropout"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    data = operand_def(TensorType)
    rate = NUMBER.prop(0.5)
    training = BOOL.prop(False)
    result = result_def(TupleType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        rate = a["rate"]
        if not 0.0 <= rate < 1.0:
            raise ShapeError(f"{op}: rate must be in [0, 1), got {rate:g}")
        if a["training"] and rate > 0.0:
            raise ShapeError(f"{op}: training with rate {rate:g} drops at random, which Lathe does not do")
        return tuple_type([x, x])


@irdl_op_definition
class BiasAddOp(GraphOp):
    """Adds a 1-D bias along `axis` (Relay's nn.bias_add)."""

    name = "graph.nn.bias_add"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    data = operand_def(TensorType)
    bias = operand_def(TensorType)
    axis = INT.prop(1)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        return _per_channel(op, types, a, "bias")


@irdl_op_definition
class PReluOp(GraphOp):
    name = "graph.nn.prelu"
    PATTERN: ClassVar[OpPattern] = OpPattern.BROADCAST
    data = operand_def(TensorType)
    alpha = operand_def(TensorType)
    axis = INT.prop(1)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        return _per_channel(op, types, a, "alpha")


class SoftmaxBase(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    data = operand_def(TensorType)
    axis = INT.prop(-1)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        expect_float(op, x)
        normalize_axis(op, a["axis"], len(shape_of(x)))
        return x


@irdl_op_definition
class SoftmaxOp(SoftmaxBase):
    name = "graph.nn.softmax"


@irdl_op_definition
class LogSoftmaxOp(SoftmaxBase):
    name = "graph.nn.log_softmax"


@irdl_op_definition
class LayerNormOp(GraphOp):
    name = "graph.nn.layer_norm"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    data = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    axis = INT.prop(-1)
    epsilon = NUMBER.prop(1e-05)
    center = BOOL.prop(True)
    scale = BOOL.prop(True)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x, g, b = (expect_tensor(op, t, w) for t, w in zip(types, ("data", "gamma", "beta")))
        expect_float(op, x)
        xs = shape_of(x)
        axis = normalize_axis(op, a["axis"], len(xs))
        for t, w in ((g, "gamma"), (b, "beta")):
            if shape_of(t) != [xs[axis]]:
                raise ShapeError(
                    f"{op}: {w} {type_str(t)} must have shape ({xs[axis]}) to match axis {axis} of {type_str(x)}"
                )
        same_dtype(op, x, g, b)
        return x


@irdl_op_definition
class BatchNormOp(GraphOp):
    """Inference batch norm; like Relay, the result is (output, moving_mean, moving_var)."""

    name = "graph.nn.batch_norm"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    data = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    moving_mean = operand_def(TensorType)
    moving_var = operand_def(TensorType)
    axis = INT.prop(1)
    epsilon = NUMBER.prop(1e-05)
    center = BOOL.prop(True)
    scale = BOOL.prop(True)
    result = result_def(TupleType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        names = ("data", "gamma", "beta", "moving_mean", "moving_var")
        x, *params = (expect_tensor(op, t, w) for t, w in zip(types, names))
        expect_float(op, x)
        xs = shape_of(x)
        axis = normalize_axis(op, a["axis"], len(xs))
        for t, w in zip(params, names[1:]):
            if shape_of(t) != [xs[axis]]:
                raise ShapeError(
                    f"{op}: {w} {type_str(t)} must have shape ({xs[axis]}) to match axis {axis} of {type_str(x)}"
                )
        same_dtype(op, x, *params)
        return tuple_type([x, params[2], params[3]])


@irdl_op_definition
class LRNOp(GraphOp):
    name = "graph.nn.lrn"
    PATTERN: ClassVar[OpPattern] = OpPattern.OPAQUE
    data = operand_def(TensorType)
    size = INT.prop(5)
    axis = INT.prop(1)
    bias = NUMBER.prop(2.0)
    alpha = NUMBER.prop(1e-05)
    beta = NUMBER.prop(0.75)
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        expect_float(op, x)
        normalize_axis(op, a["axis"], len(shape_of(x)))
        if a["size"] < 1:
            raise ShapeError(f"{op}: size must be >= 1")
        return x


class Pool2dBase(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    pool_size = INTS.prop([1, 1])
    strides = INTS.prop([1, 1])
    dilation = INTS.prop([1, 1])
    padding = INTS.prop([0, 0, 0, 0])
    layout = STRING.prop("NCHW")
    out_layout = STRING.prop("")
    ceil_mode = BOOL.prop(False)
    result = result_def(TensorType)
    traits = graph_traits()

    @staticmethod
    def geometry(op: str, x: TensorType, a: dict) -> dict:
        layout = string_choice(op, a, "layout", ("NCHW", "NHWC"))
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        n, c, h, w = (xs[0], xs[1], xs[2], xs[3]) if layout == "NCHW" else (xs[0], xs[3], xs[1], xs[2])
        kh, kw = pair(op, a, "pool_size")
        sh, sw = pair(op, a, "strides")
        dh, dw = pair(op, a, "dilation")
        pt, pl, pb, pr = pad4(op, a)
        if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
            raise ShapeError(f"{op}: pool_size, strides and dilation must be >= 1 and padding >= 0")
        ceil_mode = bool(a["ceil_mode"])
        oh = pool_out(op, h, kh, sh, dh, pt, pb, ceil_mode)
        ow = pool_out(op, w, kw, sw, dw, pl, pr, ceil_mode)
        return dict(
            layout=layout,
            n=n,
            c=c,
            h=h,
            w=w,
            kh=kh,
            kw=kw,
            sh=sh,
            sw=sw,
            dh=dh,
            dw=dw,
            pt=pt,
            pl=pl,
            pb=pb,
            pr=pr,
            oh=oh,
            ow=ow,
        )

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        g = cls.geometry(op, x, a)
        shape = [g["n"], g["c"], g["oh"], g["ow"]] if g["layout"] == "NCHW" else [g["n"], g["oh"], g["ow"], g["c"]]
        return TensorType(x.element_type, shape)


@irdl_op_definition
class MaxPool2dOp(Pool2dBase):
    name = "graph.nn.max_pool2d"


@irdl_op_definition
class AvgPool2dOp(Pool2dBase):
    name = "graph.nn.avg_pool2d"
    NO_BOOL: ClassVar[bool] = True  # an average of bools, as mean
    count_include_pad = BOOL.prop(False)


class GlobalPool2dBase(GraphOp):
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    layout = STRING.prop("NCHW")
    out_layout = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        layout = string_choice(op, a, "layout", ("NCHW", "NHWC"))
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        shape = [xs[0], xs[1], 1, 1] if layout == "NCHW" else [xs[0], 1, 1, xs[3]]
        return TensorType(x.element_type, shape)


@irdl_op_definition
class GlobalAvgPool2dOp(GlobalPool2dBase):
    name = "graph.nn.global_avg_pool2d"
    NO_BOOL: ClassVar[bool] = True


@irdl_op_definition
class GlobalMaxPool2dOp(GlobalPool2dBase):
    name = "graph.nn.global_max_pool2d"


@irdl_op_definition
class AdaptiveAvgPool2dOp(GraphOp):
    name = "graph.nn.adaptive_avg_pool2d"
    NO_BOOL: ClassVar[bool] = True
    PATTERN: ClassVar[OpPattern] = OpPattern.OUT_ELEMWISE_FUSABLE
    data = operand_def(TensorType)
    output_size = INTS.prop()
    layout = STRING.prop("NCHW")
    out_layout = STRING.prop("")
    result = result_def(TensorType)
    traits = graph_traits()

    @classmethod
    def infer(cls, op, types, a):
        x = expect_tensor(op, types[0], "data")
        string_choice(op, a, "layout", ("NCHW",))
        xs = shape_of(x)
        if len(xs) != 4:
            raise ShapeError(f"{op}: expects rank-4 data, got {type_str(x)}")
        size = [1, 1] if a["output_size"] is None else pair(op, a, "output_size")
        if min(size) < 1:
            raise ShapeError(f"{op}: output_size must be >= 1, got {size}")
        return TensorType(x.element_type, [xs[0], xs[1], *size])
