"""block-conv-weights: an NHWC convolution's constant HWIO weight stored as the blocks its
kernel reads, once, at compile time.

The conv2d_nhwc template's register tile reads a block of b output channels as whole vectors.
In HWIO ([KH, KW, C, F]) that block is b floats every F floats: for ResNet's 512 -> 512 layer a
2 KB stride, which the prefetchers do not follow, over 9.4 MB. Its weight-stationary order
copied each block into a contiguous buffer on every run (fyx_pack); ONNX Runtime and TVM block
the kernel once at load time instead. This pass rewrites

    conv2d(x, w) [NHWC, HWIO, groups 1, w from constants]
      → conv2d(x, transpose(reshape(w, [KH, KW, C, F/b, b]), [3, 0, 1, 2, 4])) [OHWI{b}o]

and fold-constant evaluates the reshape and transpose once. The block width b is the one the
template would choose for the layer by default (conv_block_width, below, which both use), so
the template's block_f is then b and nothing is packed per run.

The rule lives here, not in lowering/, because graph passes may not import the lowering layer
and the template may import graph passes' helpers (docs/architecture.md, "Layers"); the
target's vector lanes reach the pass as its option, as they reach alter-op-layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern

from lathe.dialects import graph
from lathe.dialects.graph import make_op, shape_of
from lathe.passes.outline import carry_location

CONV2D_TILE_WIDTH = 8  # output pixels of the register tile, at most
# Register tiles that need not divide the output width: the last tile of a row is guarded (its
# pixels past the width skipped, a test per pixel outside the vector loop over channels). On
# widths with no divisor in 5..8 (17, 71, 73: primes) such a tile ran at 81-95% of a core's
# peak where the divisor tile (1 pixel) ran at 18-31%.
CONV2D_GUARDED_TILES = (8, 7, 6)
CONV2D_MIN_DIVISOR_TILE = 5  # a divisor tile this wide ran as fast as a guarded one (widths 10, 20)
# The widest register tile that takes a block of three vectors of channels by default where the
# tile does not divide the width (17: a guarded 6-pixel tile, 18 accumulators where two vectors
# give 12). Inception-v3's 17x17 layers with 192 filters ran 1.05-1.12x faster so (one thread,
# weight-stationary, the weight out of L2); 8x8 layers' 8-pixel tiles (24) ran no faster.
THREE_VECTOR_MAX_TILE = 6
# Output-channel blocks in vectors, by preference: two where they divide; three for the 48,
# 144 and 240 channels of mobile networks, which two do not divide (1.2-1.45x faster than
# one-vector blocks); then one, then four.
CONV2D_BLOCK_VECTORS = (2, 3, 1, 4)


def conv_tile_width(ow: int, most: int = CONV2D_TILE_WIDTH) -> int:
    """The largest divisor of the output width up to `most` when it is wide enough (or the
    whole row), else the guarded tile that wastes the fewest pixels (the widest on a tie)."""
    d = max(t for t in range(1, min(ow, most) + 1) if ow % t == 0)
    # below the widest tile (a small register file), any guarded width down to 3 pixels
    guarded = CONV2D_GUARDED_TILES if most >= CONV2D_TILE_WIDTH else tuple(range(most, 2, -1))
    if d >= min(CONV2D_MIN_DIVISOR_TILE, most) or d == ow or not guarded:
        return d
    return min(guarded, key=lambda t: (-(-ow // t) * t, -t))


def conv_block_choices(channels: int, lanes: int) -> list[int]:
    """The output-channel blocks (whole vectors) that divide `channels`, by preference."""
    return [v * lanes for v in CONV2D_BLOCK_VECTORS if channels % (v * lanes) == 0]


def conv_block_width(ow: int, channels: int, lanes: int) -> int | None:
    """The default output-channel block of an NHWC convolution with output width `ow`: the
    preferred block, or three vectors where the width leaves a guarded tile of at most
    THREE_VECTOR_MAX_TILE pixels and the threads still get several blocks (the short tile's
    weight vectors then feed more accumulators). None where no vector block divides."""
    blocks = conv_block_choices(channels, lanes)
    if not blocks:
        return None
    t = conv_tile_width(ow)
    three = 3 * lanes
    if ow % t and t <= THREE_VECTOR_MAX_TILE and channels % three == 0 and channels // three >= 4:
        return three
    return blocks[0]


def _from_constants(v: SSAValue) -> bool:
    """Whether v is computed from constants alone (fold-constant will evaluate it): the weight
    alter-op-layout transposed, and padded with zeros, is still such a chain."""
    op = v.owner
    if isinstance(op, graph.ConstantOp):
        return True
    return (
        isinstance(op, graph.GraphOp)
        and not isinstance(op, graph.ControlOp)
        and bool(op.operands)
        and all(_from_constants(o) for o in op.operands)
    )


def constant_weight_conv(op: Operation) -> dict | None:
    """The attributes of an NHWC, HWIO, ungrouped float conv2d whose weight is computed from
    constants alone: the layers whose weight a pass may lay out anew at compile time (blocked
    here, Winograd-transformed by winograd-conv). None for any other op."""
    if not isinstance(op, graph.Conv2dOp):
        return None
    a = op.attrs()
    if a["data_layout"] != "NHWC" or a["kernel_layout"] != "HWIO" or a["groups"] != 1 or a["out_dtype"]:
        return None
    if not graph.is_float(op.result.type.element_type) or not _from_constants(op.weight):
        return None
    return a


class BlockConvWeight(RewritePattern):
    """conv2d [NHWC, HWIO, groups 1, a constant float weight, F over one block] → conv2d
    [OHWI{b}o] of the weight reshaped and transposed into blocks of b filters."""

    def __init__(self, lanes: int):
        self.lanes = lanes

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        a = constant_weight_conv(op)
        if a is None:
            return
        assert isinstance(op, graph.Conv2dOp)
        kh, kw, c, f = shape_of(op.weight.type)
        b = conv_block_width(shape_of(op.result.type)[2], f, self.lanes)
        if b is None or b == f:
            return  # one block: HWIO already is its contiguous layout
        split = make_op("reshape", [op.weight], newshape=[kh, kw, c, f // b, b])
        blocks = make_op("transpose", [split.results[0]], axes=[3, 0, 1, 2, 4])
        props = {k: v for k, v in a.items() if k in op.properties}
        props["kernel_layout"] = graph.blocked_kernel_layout(b)
        conv = make_op("nn.conv2d", [op.data, blocks.results[0]], **props)
        rewriter.replace(op, carry_location(op, [split, blocks, conv]))


@dataclass(frozen=True)
class BlockConvWeights(ModulePass):
    """NHWC convolutions' constant weights blocked by output channels at compile time (run
    fold-constant after it). A target of one-lane vectors keeps HWIO: it has no vector block."""

    name = "block-conv-weights"

    vector_lanes: int = 16  # f32 lanes of the target's vectors: the block is whole vectors of them

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.vector_lanes < 1:
            from lathe.errors import LatheError

            raise LatheError(f"{self.name}: vector_lanes must be positive, got {self.vector_lanes}")
        if self.vector_lanes == 1:
            return
        PatternRewriteWalker(BlockConvWeight(self.vector_lanes)).rewrite_module(op)
