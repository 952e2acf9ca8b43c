"""What a padded channel is: the vocabulary alter-op-layout's rewrites share.

A channel count no vector block divides is padded to the next multiple of the vector width
(zero weights), and a marked strided_slice (PAD_SLICE) cuts the real channels back. The
padding's invariant: a padded channel holds a finite value wherever the real ones are finite,
so a later layer's zero weights cancel it. The op groups below say which ops keep it
(finite at finite inputs) and which treat every entry alike (transposes and takes sink
through them).
"""

from __future__ import annotations

from xdsl.dialects.builtin import UnitAttr
from xdsl.ir import Operation

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.passes.canonicalize import constant_of


def pack_width(n: int, lanes: int = 16) -> int | None:
    """Columns per packed block: two of the target's vectors, else one, when they divide N."""
    for bn in (2 * lanes, lanes):
        if n % bn == 0:
            return bn
    return None


PAD_SLICE = "lathe.pad_slice"  # marks a strided_slice that cuts channels padded with zero weights
MIN_PADDED = 8  # fewer dense columns than this stay unpadded (padding would more than double the work)


def conv_padded_width(n: int, lanes: int = 16) -> int | None:
    """A convolution's output channels padded to the next multiple of the vector width however
    much work the zero filters add, or None when a block divides n. Unpadded, such a conv keeps
    NCHW and the generic schedule, which ran 1.4x (1 filter, 3x3 over 32 channels at 64x64) to
    65x (21 filters, 1x1 at 128x128) slower than the template on 16 filters, one or two
    vectors of them being the template's cost whatever fraction is real (kernels alone, 2
    threads, same process)."""
    if pack_width(n, lanes) is not None:
        return None
    return -(-n // lanes) * lanes


def padded_width(n: int, lanes: int = 16) -> int | None:
    """The column count to pad a dense's or a gather's n to (the next multiple of the vector
    width), or None when n needs no padding or is too small to be worth it: unpadded, a dense
    keeps a vectorized schedule of its own (a GEMV of 2-21 columns ran 2x faster so than
    padded and packed; at 128 rows, 9-21 columns ran 1.4-2.3x faster padded)."""
    padded = conv_padded_width(n, lanes)
    if padded is None or n < min(MIN_PADDED, lanes) or 2 * (padded - n) > n:
        return None  # (more than half again as much work: N = 8 or 10 of 16 lanes, a GEMV's 10 classes)
    return padded


def pad_axis(v, axis: int, amount: int, value: float = 0.0) -> Operation:
    rank = len(shape_of(v.type))
    widths = [[0, amount if d == axis % rank else 0] for d in range(rank)]
    return make_op("nn.pad", [v], pad_width=widths, pad_value=value)


def marked_cut(v, n: int) -> Operation:
    """strided_slice of v's first n entries along its last axis, marked as a padding cut."""
    rank = len(shape_of(v.type))
    s = make_op("strided_slice", [v], begin=[0], end=[n], strides=[1], axes=[rank - 1])
    s.attributes[PAD_SLICE] = UnitAttr()
    return s


def padded_cut(v) -> tuple | None:
    """(y, n) when v = the marked cut of y to n channels (y's extra channels are finite)."""
    s = v.owner
    if isinstance(s, graph.StridedSliceOp) and PAD_SLICE in s.attributes:
        return s.data, shape_of(v.type)[-1]
    return None


FINITE_UNARY = (  # finite at every finite input: the padded channels stay finite
    graph.ReluOp,
    graph.LeakyReluOp,
    graph.ClipOp,
    graph.SigmoidOp,
    graph.TanhOp,
    graph.NegativeOp,
    graph.AbsOp,
    graph.ErfOp,
)
CUT_BINARY = (graph.AddOp, graph.SubtractOp, graph.MultiplyOp, graph.MaximumOp, graph.MinimumOp)


def finite_constant(v, nonzero: bool = False) -> bool:
    import numpy as np

    while isinstance(v.owner, graph.ReshapeOp | graph.TransposeOp):  # how SinkTranspose moves a constant
        v = v.owner.data
    arr = constant_of(v)
    if arr is None or not graph.is_float(v.type.element_type):
        return False
    return bool(np.all(np.isfinite(arr)) and (not nonzero or np.all(arr != 0)))


SINK_UNARY = (
    graph.ReluOp,
    graph.LeakyReluOp,
    graph.ClipOp,
    graph.SigmoidOp,
    graph.TanhOp,
    graph.ExpOp,
    graph.NegativeOp,
    graph.AbsOp,
    graph.ErfOp,
    graph.SqrtOp,
    graph.RsqrtOp,
)
SINK_BINARY = (graph.AddOp, graph.SubtractOp, graph.MultiplyOp, graph.DivideOp, graph.MaximumOp, graph.MinimumOp)


def tensor_size(v) -> int:
    import math

    return math.prod(shape_of(v.type))
