// RUN: lathe-opt %s --split-input-file -p lower-te-to-loop | filecheck %s

// rfactor: partial sums over k.outer into a [7, 4] buffer (k = 4·ko + ki, the
// overhang of 13 = 4·4 - 3 guarded by a select of the identity), then their sum.
// CHECK-LABEL: func.func private @rowsum
// CHECK:         %[[RF:.*]] = memref.alloc() {alignment = 64 : i64} : memref<7x4xf32>
// CHECK:         scf.for %i =
// CHECK:           scf.for %k_inner =
// CHECK:             scf.for %k_outer =
// CHECK:               arith.cmpi slt
// CHECK:               arith.select
// CHECK:               memref.store %{{.*}}, %[[RF]][%i, %k_inner] : memref<7x4xf32>
// CHECK:         scf.for %i_1 =
// CHECK:             memref.load %[[RF]][%i_1, %k_inner_1] : memref<7x4xf32>
// CHECK:           } {loop.annotation = #loop.annotation<unroll>}
func.func private @rowsum(%a: tensor<7x13xf32>) -> tensor<7xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<7xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<7x13xf32> -> f32
    te.yield %1 : f32
  }
  %rf = te.rfactor %0 {axis = "k", factor = 4 : i64} : tensor<7xf32> -> tensor<7x4xf32>
  te.pragma %0 {axis = "k.inner", pragma = "unroll_explicit"} : tensor<7xf32>
  func.return %0 : tensor<7xf32>
}

// -----
// cache_read: the reader reads a copy; storage_align pads an intermediate buffer's
// rows (6 -> 8 for a stride of 8k); compute_root keeps the stage at the root.
// CHECK-LABEL: func.func private @staged
// CHECK:         %[[COPY:.*]] = memref.alloc() {alignment = 64 : i64} : memref<5x6xf32>
// CHECK:         memref.store %{{.*}}, %[[COPY]]
// CHECK:         %[[MID:.*]] = memref.alloc() {alignment = 64 : i64} : memref<5x8xf32>
// CHECK:         memref.load %[[COPY]]
// CHECK:         memref.store %{{.*}}, %[[MID]]
// CHECK:         memref.load %[[MID]]
// CHECK:         memref.store %{{.*}}, %out
func.func private @staged(%a: tensor<5x6xf32>) -> tensor<5x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "double", axes = ["i", "j"]} : tensor<5x6xf32> {
  ^bb0(%i: index, %j: index):
    %x = te.read %a[%i, %j] : tensor<5x6xf32> -> f32
    %y = arith.addf %x, %x : f32
    te.yield %y : f32
  }
  %1 = te.compute {stage = "neg", axes = ["i", "j"]} : tensor<5x6xf32> {
  ^bb0(%i: index, %j: index):
    %x = te.read %0[%i, %j] : tensor<5x6xf32> -> f32
    %y = arith.negf %x : f32
    te.yield %y : f32
  }
  %c = te.cache_read %a, %0 : tensor<5x6xf32>, tensor<5x6xf32> -> tensor<5x6xf32>
  te.compute_inline %0 : tensor<5x6xf32>
  te.compute_root %0 : tensor<5x6xf32>
  te.storage_align %0 {axis = "i", factor = 8 : i64, offset = 0 : i64} : tensor<5x6xf32>
  func.return %1 : tensor<5x6xf32>
}
