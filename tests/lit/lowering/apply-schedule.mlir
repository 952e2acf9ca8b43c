// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-schedule{config="dense_pack:tile_i=4,tile_j=16,cache_i=2,tile_k=32,order=ji,unroll_k=2,parallel=outer"}' | filecheck %s --check-prefix=BLOCK
// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-schedule{config="dense_pack"}' > %t.default
// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-default-schedule' | diff - %t.default
// RUN: not lathe-opt %s -p 'lower-graph-to-te,apply-schedule{config="dense_pack:tile_i=5"}' 2>&1 | filecheck %s --check-prefix=VALUE
// RUN: not lathe-opt %s -p 'lower-graph-to-te,apply-schedule{config="dense_pack:tile_x=4"}' 2>&1 | filecheck %s --check-prefix=KNOB
// RUN: not lathe-opt %s -p 'lower-graph-to-te,apply-schedule{config="conv2d_nhwc"}' 2>&1 | filecheck %s --check-prefix=NONE

// A configuration of the dense_pack template replays as schedule ops: a register tile of 4
// rows x 16 columns, a cache block of 2 register tiles in i (the contraction computed per
// register tile, so its accumulators stay in registers), k split by 32 and unrolled by 2
// inside the tile, the block loops in j-then-i order, threads over the outermost block loop.
// BLOCK-LABEL: func.func private @dense
// BLOCK:      %[[SUM:.*]] = te.compute {stage = "T_dense_pack"
// BLOCK:      %[[LOCAL:.*]] = te.cache_write %[[SUM]]
// BLOCK-NEXT: te.split %[[SUM]] {axis = "i0", factor = 4 : i64, outer = "i0.outer", inner = "i0.inner"}
// BLOCK-NEXT: te.split %[[SUM]] {axis = "i0.outer", factor = 2 : i64, outer = "i0.outer.outer", inner = "i0.outer.inner"}
// BLOCK-NEXT: te.split %[[SUM]] {axis = "j", factor = 16 : i64, outer = "j.outer", inner = "j.inner"}
// BLOCK-NEXT: te.reorder %[[SUM]] {order = ["j.outer", "i0.outer.outer", "i0.outer.inner", "i0.inner", "j.inner"]}
// BLOCK-NEXT: te.unroll %[[SUM]] {axis = "i0.inner"}
// BLOCK-NEXT: te.vectorize %[[SUM]] {axis = "j.inner"}
// BLOCK-NEXT: te.parallel %[[SUM]] {axis = "j.outer"}
// BLOCK-NEXT: te.compute_at %[[LOCAL]], %[[SUM]] {axis = "i0.outer.inner"}
// BLOCK-NEXT: te.split %[[LOCAL]] {axis = "k", factor = 32 : i64, outer = "k.outer", inner = "k.inner"}
// BLOCK-NEXT: te.split %[[LOCAL]] {axis = "k.inner", factor = 2 : i64, outer = "k.inner.outer", inner = "k.inner.inner"}
// BLOCK-NEXT: te.reorder %[[LOCAL]] {order = ["k.outer", "k.inner.outer", "k.inner.inner", "i0", "j"]}
// BLOCK-NEXT: te.unroll %[[LOCAL]] {axis = "k.inner.inner"}
// BLOCK-NEXT: te.unroll %[[LOCAL]] {axis = "i0"}
// BLOCK-NEXT: te.vectorize %[[LOCAL]] {axis = "j"}
// BLOCK-NEXT: func.return

// VALUE: error: @dense: knob 'tile_i' of template 'dense_pack' cannot be 5
// VALUE-NEXT: allowed values: 1, 2, 4, 8, 16
// KNOB: error: @dense: template 'dense_pack' has no knob 'tile_x'
// KNOB-NEXT: its knobs: tile_i, tile_j, cache_i, cache_j, tile_k, order, unroll_k, parallel
// NONE: error: apply-schedule: no unscheduled kernel of template 'conv2d_nhwc'
// NONE-NEXT: kernels: @dense (dense_pack)
func.func @main(%x: tensor<16x64xf32>, %w: tensor<2x64x16xf32>) -> tensor<16x32xf32> {
  %0 = func.call @dense(%x, %w) : (tensor<16x64xf32>, tensor<2x64x16xf32>) -> tensor<16x32xf32>
  func.return %0 : tensor<16x32xf32>
}
func.func private @dense(%0: tensor<16x64xf32>, %1: tensor<2x64x16xf32>) -> tensor<16x32xf32> attributes {lathe.kernel} {
  %2 = graph.nn.contrib_dense_pack %0, %1 : (tensor<16x64xf32>, tensor<2x64x16xf32>) -> tensor<16x32xf32>
  func.return %2 : tensor<16x32xf32>
}
