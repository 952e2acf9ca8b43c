// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-default-schedule' | filecheck %s

// A kernel's lathe.schedule_config attribute (what compiling with a tuning record sets) is the
// configuration apply-default-schedule applies: here the per-stage schedules with 8 output
// columns accumulated together and no threads.
// CHECK-LABEL: func.func private @dense
// CHECK:      te.split %{{.*}} {axis = "j", factor = 8 : i64, outer = "j.outer", inner = "j.inner"}
// CHECK-NEXT: te.fuse
// CHECK-NEXT: te.reorder
// CHECK-NEXT: te.unroll
// CHECK-NEXT: te.vectorize %{{.*}} {axis = "k"}
// CHECK-NOT:  te.parallel
// CHECK:      func.return
func.func @main(%x: tensor<64x256xf32>, %w: tensor<128x256xf32>) -> tensor<64x128xf32> {
  %0 = func.call @dense(%x, %w) : (tensor<64x256xf32>, tensor<128x256xf32>) -> tensor<64x128xf32>
  func.return %0 : tensor<64x128xf32>
}
func.func private @dense(%0: tensor<64x256xf32>, %1: tensor<128x256xf32>) -> tensor<64x128xf32> attributes {lathe.kernel, lathe.schedule_config = "per_stage:reduce_tile_j=8,parallel=never"} {
  %2 = graph.nn.dense %0, %1 : (tensor<64x256xf32>, tensor<128x256xf32>) -> tensor<64x128xf32>
  func.return %2 : tensor<64x128xf32>
}
