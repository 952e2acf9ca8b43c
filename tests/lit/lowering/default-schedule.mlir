// RUN: lathe-opt %s --split-input-file -p apply-default-schedule | filecheck %s

// A contraction: the last spatial axis is tiled by 4 for register reuse, the
// reduce axis goes innermost (vectorized), the outer spatial axes are fused and
// parallel because the work is large enough.
// CHECK-LABEL: func.func private @dense
// CHECK:      te.split %0 {axis = "j", factor = 4 : i64, outer = "j.outer", inner = "j.inner"}
// CHECK-NEXT: te.fuse %0 {fuse_axes = ["i0", "j.outer"], fused = "i0.j.outer.fused"}
// CHECK-NEXT: te.reorder %0 {order = ["i0.j.outer.fused", "k", "j.inner"]}
// CHECK-NEXT: te.unroll %0 {axis = "j.inner"}
// CHECK-NEXT: te.vectorize %0 {axis = "k"}
// CHECK-NEXT: te.parallel %0 {axis = "i0.j.outer.fused"}
// CHECK-NEXT: func.return
func.func private @dense(%x: tensor<64x256xf32>, %w: tensor<128x256xf32>) -> tensor<64x128xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "T_dense", axes = ["i0", "j", "k"], reduce_extents = [256], combiner = "sum"} : tensor<64x128xf32> {
  ^bb0(%i0: index, %j: index, %k: index):
    %1 = te.read %x[%i0, %k] : tensor<64x256xf32> -> f32
    %2 = te.read %w[%j, %k] : tensor<128x256xf32> -> f32
    %3 = arith.mulf %1, %2 : f32
    te.yield %3 : f32
  }
  func.return %0 : tensor<64x128xf32>
}

// -----
// Elementwise: all axes fused, a 16-wide vector inner loop; too small to be parallel.
// CHECK-LABEL: func.func private @relu
// CHECK:      te.fuse %0 {fuse_axes = ["ax0", "ax1"], fused = "ax0.ax1.fused"}
// CHECK-NEXT: te.split %0 {axis = "ax0.ax1.fused", factor = 16 : i64, outer = "ax0.ax1.fused.outer", inner = "ax0.ax1.fused.inner"}
// CHECK-NEXT: te.vectorize %0 {axis = "ax0.ax1.fused.inner"}
// CHECK-NOT:  te.parallel
func.func private @relu(%a: tensor<4x32xf32>) -> tensor<4x32xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "relu", axes = ["ax0", "ax1"]} : tensor<4x32xf32> {
  ^bb0(%ax0: index, %ax1: index):
    %1 = te.read %a[%ax0, %ax1] : tensor<4x32xf32> -> f32
    %2 = arith.constant 0.0 : f32
    %3 = arith.maximumf %1, %2 : f32
    te.yield %3 : f32
  }
  func.return %0 : tensor<4x32xf32>
}
