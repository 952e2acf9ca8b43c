// RUN: lathe-opt %s --split-input-file -p lower-graph-to-te,apply-default-schedule | filecheck %s

// An NHWC conv2d: lower-graph-to-te marks the sum as the anchor of nn.conv2d and the padded
// copy by its role; the template then computes the sum per register tile of the output
// (cache_write + compute_at) and keeps the padded copy as its own stage (not inlined).
// CHECK-LABEL: func.func private @conv
// CHECK:      %[[PAD:.*]] = te.compute {stage = "T_pad_data", {{.*}}role = "pad"}
// CHECK:      %[[SUM:.*]] = te.compute {stage = "T_conv2d", {{.*}}anchor = "nn.conv2d"}
// CHECK:      %[[LOCAL:.*]] = te.cache_write %[[SUM]]
// CHECK:      te.compute_at %[[LOCAL]], %[[SUM]]
// CHECK:      te.reorder %[[LOCAL]] {order = ["ry", "rx", "rc", "x", "f"]}
// CHECK-NOT:  te.compute_inline %[[PAD]]
// CHECK:      te.fuse %[[PAD]]
// CHECK:      func.return
func.func private @conv(%x: tensor<1x5x5x3xf32>, %w: tensor<3x3x3x32xf32>) -> tensor<1x5x5x32xf32> attributes {lathe.kernel} {
  %0 = graph.nn.conv2d %x, %w {padding = [1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x5x5x3xf32>, tensor<3x3x3x32xf32>) -> tensor<1x5x5x32xf32>
  func.return %0 : tensor<1x5x5x32xf32>
}

// -----
// A stage's name is only a name: without an anchor mark, a stage called T_dense_pack gets
// the per-stage schedule, not the dense_pack template (its reads walk j in blocks of 16: a
// vector of the block, the reduction outside it).
// CHECK-LABEL: func.func private @named_only
// CHECK-NOT:  te.cache_write
// CHECK:      te.split %0 {axis = "j", factor = 16 : i64, outer = "j.outer", inner = "j.inner"}
// CHECK-NOT:  te.compute_at
// CHECK:      func.return
func.func private @named_only(%x: tensor<8x64xf32>, %w: tensor<2x64x16xf32>) -> tensor<8x32xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "T_dense_pack", axes = ["i0", "j", "k"], reduce_extents = [64], combiner = "sum"} : tensor<8x32xf32> {
  ^bb0(%i0: index, %j: index, %k: index):
    %c16 = arith.constant 16 : index
    %jo = arith.divsi %j, %c16 : index
    %ji = arith.remsi %j, %c16 : index
    %1 = te.read %x[%i0, %k] : tensor<8x64xf32> -> f32
    %2 = te.read %w[%jo, %k, %ji] : tensor<2x64x16xf32> -> f32
    %3 = arith.mulf %1, %2 : f32
    te.yield %3 : f32
  }
  func.return %0 : tensor<8x32xf32>
}
