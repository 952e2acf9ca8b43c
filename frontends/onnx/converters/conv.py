"""Convolutions and pools: the ops with kernels, strides, dilations and padding over the spatial axes.

1-D data runs as 2-D data with a unit height."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.frontends.onnx.converters.common import reshape, to_2d_spatial
from lathe.frontends.onnx.importer import Node, value_shape
from lathe.frontends.onnx.registry import converts


def _pair_pads(pads: Sequence[int], spatial: int) -> tuple[list[int], list[int]]:
    pads = list(pads) if pads else [0] * (2 * spatial)
    return pads[:spatial], pads[spatial:]


def _auto_pads(
    n: Node, sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Begin and end padding per spatial axis, from `pads` or `auto_pad` (conv and pooling)."""
    auto = n.attr("auto_pad", "NOTSET")
    spatial = len(sizes)
    if auto in ("NOTSET", ""):
        return _pair_pads(n.attr("pads"), spatial)
    if auto == "VALID":
        return [0] * spatial, [0] * spatial
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise n.unsupported(f"auto_pad={auto!r}")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins, ends


def _spatial(n: Node, x: SSAValue) -> int:
    rank = len(value_shape(x))
    if rank not in (3, 4):
        raise n.unsupported(f"{rank - 2}-D data (rank {rank}; 1-D and 2-D are)")
    return rank - 2


@converts("Conv", makes=(graph.Conv2dOp, graph.BiasAddOp))
def _conv(n: Node):
    x, w = n.x(0), n.x(1)
    spatial = _spatial(n, x)
    ws = value_shape(w)
    kernel = n.attr("kernel_shape", ws[2:])
    strides = n.attr("strides", [1] * spatial)
    dilations = n.attr("dilations", [1] * spatial)
    begins, ends = _auto_pads(n, value_shape(x)[2:], kernel, strides, dilations)
    if spatial == 1:
        x, w = to_2d_spatial(n, x), to_2d_spatial(n, w)
        strides, dilations, begins, ends = [1, *strides], [1, *dilations], [0, *begins], [0, *ends]
    y = n.emit(
        graph.Conv2dOp,
        x,
        w,
        strides=strides,
        padding=[*begins, *ends],
        dilation=dilations,
        groups=n.attr("group", 1),
        channels=ws[0],
        kernel_size=value_shape(w)[2:],
    )
    if n.has(2):
        y = n.emit("nn.bias_add", y, n.x(2), axis=1)
    if spatial == 1:
        s = value_shape(y)
        y = reshape(n, y, [s[0], s[1], s[3]])
    return y


def _conv_transpose_pads(n: Node, sizes, kernel, strides, dilations, out_pad):
    """Begin/end padding and output padding per axis; output_shape, when given, decides the padding."""
    spatial = len(sizes)
    output_shape = n.attr("output_shape")
    auto = n.attr("auto_pad", "NOTSET")
    if output_shape is None and auto not in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = _pair_pads(n.attr("pads") if auto != "VALID" else None, spatial)
        return begins, ends, list(out_pad)
    if output_shape is None:
        output_shape = [s * st for s, st in zip(sizes, strides)]
    output_shape = list(output_shape)[-spatial:]
    begins, ends, extra = [], [], []
    for size, k, s, d, op, want in zip(sizes, kernel, strides, dilations, out_pad, output_shape):
        total = s * (size - 1) + op + (k - 1) * d + 1 - want
        if total < 0:  # the output is larger than the full transposed convolution: grow it at the end
            begins.append(0)
            ends.append(0)
            extra.append(op - total)
            continue
        small, big = total // 2, total - total // 2
        upper = auto == "SAME_UPPER"
        begins.append(small if upper else big)
        ends.append(big if upper else small)
        extra.append(op)
    return begins, ends, extra


@converts("ConvTranspose", makes=(graph.Conv2dTransposeOp, graph.BiasAddOp))
def _conv_transpose(n: Node):
    x, w = n.x(0), n.x(1)
    spatial = _spatial(n, x)
    ws = value_shape(w)
    kernel = n.attr("kernel_shape", ws[2:])
    strides = n.attr("strides", [1] * spatial)
    dilations = n.attr("dilations", [1] * spatial)
    out_pad = n.attr("output_padding", [0] * spatial)
    begins, ends, out_pad = _conv_transpose_pads(n, value_shape(x)[2:], kernel, strides, dilations, out_pad)
    if spatial == 1:
        x, w = to_2d_spatial(n, x), to_2d_spatial(n, w)
        strides, dilations, begins, ends, out_pad = (
            [1, *strides],
            [1, *dilations],
            [0, *begins],
            [0, *ends],
            [0, *out_pad],
        )
    y = n.emit(
        graph.Conv2dTransposeOp,
        x,
        w,
        strides=strides,
        padding=[*begins, *ends],
        dilation=dilations,
        groups=n.attr("group", 1),
        output_padding=out_pad,
    )
    if n.has(2):
        y = n.emit("nn.bias_add", y, n.x(2), axis=1)
    if spatial == 1:
        s = value_shape(y)
        y = reshape(n, y, [s[0], s[1], s[3]])
    return y


def _pool(op: type[graph.GraphOp]):
    def convert(n: Node):
        if op is graph.MaxPool2dOp and n.wants(1):
            raise n.unsupported("the Indices output of MaxPool")
        x = n.x(0)
        spatial = _spatial(n, x)
        kernel = n.attr("kernel_shape")
        strides = n.attr("strides", [1] * spatial)
        dilations = n.attr("dilations", [1] * spatial)
        begins, ends = _auto_pads(n, value_shape(x)[2:], kernel, strides, dilations)
        if spatial == 1:
            x = to_2d_spatial(n, x)
            kernel, strides, dilations, begins, ends = (
                [1, *kernel],
                [1, *strides],
                [1, *dilations],
                [0, *begins],
                [0, *ends],
            )
        attrs = {
            "pool_size": kernel,
            "strides": strides,
            "dilation": dilations,
            "padding": [*begins, *ends],
            "ceil_mode": bool(n.attr("ceil_mode", 0)),
        }
        if op is graph.AvgPool2dOp:
            attrs["count_include_pad"] = bool(n.attr("count_include_pad", 0))
        y = n.emit(op, x, **attrs)
        if spatial == 1:
            s = value_shape(y)
            y = reshape(n, y, [s[0], s[1], s[3]])
        return y

    return convert


converts("MaxPool", makes=graph.MaxPool2dOp)(_pool(graph.MaxPool2dOp))
converts("AveragePool", makes=graph.AvgPool2dOp)(_pool(graph.AvgPool2dOp))


def _global_pool(op: type[graph.GraphOp], reduce: type[graph.GraphOp]):
    """The 2-D op on NCHW data; a mean or max over the spatial axes for other ranks."""

    def convert(n: Node):
        x = n.x(0)
        rank = len(value_shape(x))
        if rank == 4:
            return n.emit(op, x)
        return n.emit(reduce, x, axis=list(range(2, rank)), keepdims=True)

    return convert


converts("GlobalAveragePool", makes=(graph.GlobalAvgPool2dOp, graph.MeanOp))(
    _global_pool(graph.GlobalAvgPool2dOp, graph.MeanOp)
)
converts("GlobalMaxPool", makes=(graph.GlobalMaxPool2dOp, graph.MaxOp))(
    _global_pool(graph.GlobalMaxPool2dOp, graph.MaxOp)
)
