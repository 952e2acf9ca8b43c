"""winograd-conv: a 3x3 stride-1 NHWC convolution with a constant weight computed as Winograd
F(m x m, 3 x 3) (dialects/graph/winograd.py), where a measured rule says it wins.

    conv2d(x, w) [NHWC, HWIO, 3x3, stride 1, dilation 1, groups 1, w from constants]
      → winograd_output_transform(batch_matmul_pack(winograd_input_transform(x), pack(U)))

with U = G w Gᵀ for each (input, output) channel pair, [(m+2)², C, K] (winograd_weight_transform),
packed as alter-op-layout packs any batch_matmul's weight (BatchMatmulToPack): fold-constant
evaluates all of it once. (Spelled as two matmuls with G and the transposes between them, the
weight's transform folded through nine constants: VGG-16's fold-constant took 8.6 s, not 3.6,
and the compile's peak memory 5.5 GB, not 3.8.) The direct
convolution's template already runs near the machine's FMA peak, so the 4x fewer multiplies
(m = 4) are what can beat it; the price is the two transforms (memory-bound passes over
(m+2)²/m² = 2.25x the activations) and U, (m+2)²/9 = 4x the weight.

Run after alter-op-layout (which makes convolutions NHWC/HWIO) and before block-conv-weights
(which would block the weight for the direct template); a target of one-lane vectors (a GPU)
keeps the direct convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern

from lathe.dialects import graph
from lathe.dialects.graph import make_op
from lathe.passes.alter_op_layout import BatchMatmulToPack
from lathe.passes.channel_padding import pack_width
from lathe.passes.conv_weight_blocking import constant_weight_conv
from lathe.passes.outline import carry_location

# Measured (docs/passes.md, "Winograd convolution"; run() of one layer, direct and Winograd alternating
# in one process, 2 threads, load 2-2.8): Winograd lost only below 3x3 outputs (256 @2: F(2, 3)
# 1.13x, F(4, 3) 1.97x; 64 @1: 1.19x / 2.12x), where a tile computes mostly crop and the
# transformed weight, 16/9 or 4x the direct one, is read for a handful of pixels.
WINOGRAD_MIN_OUTPUT = 3
# F(4, 3) from 7x7 outputs (2.25 points a pixel to F(2)'s 4): 7x7 0.42-0.66x of the direct time
# to F(2)'s 0.60-0.97x, 8x8 0.55x / 0.69x. Below, its one to four tiles are mostly crop and
# its 4x weight the larger read: 3x3 F(4) 1.05-1.15x, F(2) 0.83-0.92x; 4x4 0.69-0.78x / 0.64-0.65x;
# 5x5 0.88-0.91x / 0.76-0.77x; 6x6 mixed (0.49 / 0.58 at 256 channels, 0.68 / 0.57 at 64).
WINOGRAD_F4_MIN_OUTPUT = 7
WINOGRAD_MIN_CHANNEL_BLOCK = 4  # the transforms' templates vectorize whole blocks of 4+ channels


def winograd_tile(c: int, k: int, oh: int, ow: int, lanes: int) -> int | None:
    """The measured rule: the tile m of F(m, 3) for a layer, or None where the direct template
    wins. The GEMM wants whole packed blocks of output channels, and the transforms a block of
    4 or more input channels: with 4-20 channels F(4) took 0.41-0.80x of the direct time (4 @56
    0.80x, 8 @56 0.53x, 12 @28 0.59x, 20 @56 0.41x); 3 (an image) left them to the per-stage
    schedules, 2.6-8.5x slower."""
    if c % WINOGRAD_MIN_CHANNEL_BLOCK or pack_width(k, lanes) is None or min(oh, ow) < WINOGRAD_MIN_OUTPUT:
        return None
    return 4 if min(oh, ow) >= WINOGRAD_F4_MIN_OUTPUT else 2


@dataclass
class WinogradConv(RewritePattern):
    lanes: int
    tile: int  # 0: the rule's
    every_layer: bool = False
    products: list[Operation] = field(default_factory=list)  # the batch_matmuls made: packed after the walk

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        a = constant_weight_conv(op)
        if a is None:
            return
        assert isinstance(op, graph.Conv2dOp)
        g = graph.Conv2dOp.geometry("", op.data.type, op.weight.type, a)
        if (g["kh"], g["kw"], g["sh"], g["sw"], g["dh"], g["dw"]) != (graph.WINOGRAD_KERNEL,) * 2 + (1,) * 4:
            return
        m = winograd_tile(g["c"], g["o"], g["oh"], g["ow"], self.lanes)
        if m is None and not self.every_layer:
            return
        m = self.tile or m or 4
        pads = [g["pt"], g["pl"], g["pb"], g["pr"]]
        v = make_op("nn.contrib_winograd_input_transform", [op.data], tile_size=m, padding=pads)
        u = make_op("nn.contrib_winograd_weight_transform", [op.weight], tile_size=m)
        mm = make_op("nn.batch_matmul", [v.results[0], u.results[0]], transpose_b=False)
        y = make_op(
            "nn.contrib_winograd_output_transform", [mm.results[0]], tile_size=m, output_size=[g["oh"], g["ow"]]
        )
        self.products.append(mm)
        rewriter.replace(op, carry_location(op, [v, u, mm, y]))


@dataclass(frozen=True)
class WinogradConvolution(ModulePass):
    """3x3 stride-1 NHWC convolutions with constant weights as Winograd F(m, 3) where the
    measured rule says they win (run fold-constant after it)."""

    name = "winograd-conv"

    vector_lanes: int = 16  # f32 lanes of the target's vectors; 1 (a GPU): no Winograd
    tile_size: int = 0  # m of F(m x m, 3 x 3): 2 or 4; 0: the rule's choice for each layer
    every_layer: bool = False  # every 3x3 stride-1 layer it can rewrite, not only where the rule says it wins

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from lathe.errors import LatheError

        if self.vector_lanes < 1:
            raise LatheError(f"{self.name}: vector_lanes must be positive, got {self.vector_lanes}")
        if self.tile_size and self.tile_size not in graph.WINOGRAD_MATRICES:
            raise LatheError(
                f"{self.name}: tile_size must be 0 (the rule's) or one of {sorted(graph.WINOGRAD_MATRICES)}, "
                f"got {self.tile_size}"
            )
        if self.vector_lanes == 1:
            return
        pattern = WinogradConv(self.vector_lanes, self.tile_size, self.every_layer)
        PatternRewriteWalker(pattern).rewrite_module(op)
        pack = BatchMatmulToPack(self.vector_lanes)
        for mm in pattern.products:
            pack.match_and_rewrite(mm, PatternRewriter(mm))
